use super::*;
use crate::control::handle_frame;
use crate::rtp::write_rtp;
use proptest::prelude::*;
use wavegate_shared::protocol::{
    self, Answer, CommandKind, Delete, Incoming, Offer, Ping, Query, decode_incoming, decode_reply, encode_request,
};
use wavegate_shared::RequestId;

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

fn relay() -> Relay {
    Relay::new(
        RelayConfig {
            shard: ShardId(0),
            ports: "30000-30099".parse().unwrap(),
            announce_ip: "127.0.0.1".parse().unwrap(),
            media_timeout_secs: 5,
        },
        7,
    )
}

fn id(s: &str) -> CallId {
    CallId::new(s).unwrap()
}
fn tag(s: &str) -> LegTag {
    LegTag::new(s).unwrap()
}

const OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0 8 96 101\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\na=sendrecv\r\n";
const ANSWER: &str = "v=0\r\no=bob 2 2 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 8 111 100\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:100 telephone-event/8000\r\n";
const MUX_OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0\r\na=rtcp-mux\r\n";
const MUX_ANSWER: &str = "v=0\r\no=bob 2 2 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\na=rtcp-mux\r\n";

fn a_peer() -> SocketAddr {
    "10.0.0.1:4000".parse().unwrap()
}
fn b_peer() -> SocketAddr {
    "10.0.0.2:6000".parse().unwrap()
}

/// A call offered and answered; returns (A-side port, B-side port).
fn setup(r: &mut Relay, offer: &str, answer: &str) -> (u16, u16) {
    let b_sdp = r.offer(0, &id("c1"), &tag("ft"), offer, &OfferFlags::default(), &mut NoSockets).unwrap();
    let a_sdp = r.answer(0, &id("c1"), &tag("ft"), &tag("tt"), answer, &mut NoSockets).unwrap();
    let a = r.leg_ports(&id("c1"), Side::Offerer).unwrap()[0];
    let b = r.leg_ports(&id("c1"), Side::Answerer).unwrap()[0];
    assert!(b_sdp.contains(&format!("m=audio {b} RTP/AVP 0 8 96 101")) || b_sdp.contains(&format!("m=audio {b} ")));
    assert!(a_sdp.contains(&format!("m=audio {a} ")));
    (a, b)
}

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 172];
    write_rtp(&mut buf, pt, seq, ts, ssrc, &[0xd5; 160]).unwrap();
    buf
}

fn forward(v: Verdict) -> Forward {
    match v {
        Verdict::Forward(f) => f,
        Verdict::Drop(d) => panic!("dropped: {d:?}"),
    }
}

#[test]
fn offer_answer_sdp_points_at_our_ports() {
    let mut r = relay();
    let b_sdp = r.offer(0, &id("c1"), &tag("ft"), OFFER, &OfferFlags::default(), &mut NoSockets).unwrap();
    let b = r.leg_ports(&id("c1"), Side::Answerer).unwrap();
    let a = r.leg_ports(&id("c1"), Side::Offerer).unwrap();
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_ne!(a[0], b[0]);
    assert!(a[0].is_multiple_of(2) && b[0].is_multiple_of(2));
    assert!(b_sdp.contains(&format!("m=audio {} RTP/AVP 0 8 96 101\r\n", b[0])), "{b_sdp}");
    assert!(b_sdp.contains("c=IN IP4 127.0.0.1\r\n") && !b_sdp.contains("10.0.0.1\r\nt="));
    assert!(b_sdp.contains("a=fmtp:101 0-16"));
    let a_sdp = r.answer(0, &id("c1"), &tag("ft"), &tag("tt"), ANSWER, &mut NoSockets).unwrap();
    assert!(a_sdp.contains(&format!("m=audio {} RTP/AVP 8 111 100\r\n", a[0])), "{a_sdp}");
    assert_eq!(r.port_owner(a[0] + 1).map(|o| o.1), Some(Side::Offerer));
}

#[test]
fn repeated_offer_is_idempotent() {
    let mut r = relay();
    let first = r.offer(0, &id("c1"), &tag("ft"), OFFER, &OfferFlags::default(), &mut NoSockets).unwrap();
    let free = r.free_pairs();
    let again = r.offer(MS, &id("c1"), &tag("ft"), OFFER, &OfferFlags::default(), &mut NoSockets).unwrap();
    assert_eq!(first, again);
    assert_eq!(r.free_pairs(), free, "no new ports");
    let other = r.offer(MS, &id("c1"), &tag("intruder"), OFFER, &OfferFlags::default(), &mut NoSockets);
    assert_eq!(other.unwrap_err().code, ErrorCode::UnknownLeg);
}

#[test]
fn errors_have_codes() {
    let mut r = relay();
    let bad = r.offer(0, &id("c1"), &tag("ft"), "garbage", &OfferFlags::default(), &mut NoSockets);
    assert_eq!(bad.unwrap_err().code, ErrorCode::BadSdp);
    assert_eq!(r.call_count(), 0);
    let ans = r.answer(0, &id("nope"), &tag("ft"), &tag("tt"), ANSWER, &mut NoSockets);
    assert_eq!(ans.unwrap_err().code, ErrorCode::UnknownCall);
    r.offer(0, &id("c1"), &tag("ft"), OFFER, &OfferFlags::default(), &mut NoSockets).unwrap();
    let wrong = r.answer(0, &id("c1"), &tag("other"), &tag("tt"), ANSWER, &mut NoSockets);
    assert_eq!(wrong.unwrap_err().code, ErrorCode::UnknownLeg);
    let two = format!("{ANSWER}m=video 7000 RTP/AVP 31\r\n");
    assert_eq!(r.answer(0, &id("c1"), &tag("ft"), &tag("tt"), &two, &mut NoSockets).unwrap_err().code, ErrorCode::BadSdp);
    assert_eq!(r.delete(0, &id("nope"), &mut NoSockets).unwrap_err().code, ErrorCode::UnknownCall);
}

#[test]
fn ports_run_out_and_come_back() {
    let mut r = relay(); // 50 pairs: 25 single-stream calls
    for i in 0..25 {
        r.offer(0, &id(&format!("c{i}")), &tag("ft"), OFFER, &OfferFlags::default(), &mut NoSockets).unwrap();
    }
    let full = r.offer(0, &id("c25"), &tag("ft"), OFFER, &OfferFlags::default(), &mut NoSockets);
    assert_eq!(full.unwrap_err().code, ErrorCode::NoPorts);
    assert_eq!(r.call_count(), 25, "failed offer leaves nothing behind");
    r.delete(0, &id("c3"), &mut NoSockets).unwrap();
    assert_eq!(r.free_pairs(), 2);
    r.offer(0, &id("c25"), &tag("ft"), OFFER, &OfferFlags::default(), &mut NoSockets).unwrap();
}

/// Refuses to bind the first `fail` pairs it is asked for, and records opens and closes.
struct Flaky {
    fail: usize,
    open: Vec<u16>,
}
impl PortSockets for Flaky {
    fn open(&mut self, p: u16) -> std::io::Result<()> {
        if self.fail > 0 {
            self.fail -= 1;
            return Err(std::io::Error::other("in use"));
        }
        self.open.push(p);
        Ok(())
    }
    fn close(&mut self, p: u16) {
        self.open.retain(|x| *x != p);
    }
}

#[test]
fn unbindable_pairs_are_skipped_and_delete_closes_sockets() {
    let mut r = relay();
    let mut s = Flaky { fail: 3, open: Vec::new() };
    r.offer(0, &id("c1"), &tag("ft"), OFFER, &OfferFlags::default(), &mut s).unwrap();
    assert_eq!(s.open.len(), 2);
    let stats = r.delete(0, &id("c1"), &mut s).unwrap();
    assert_eq!(stats.call, Some(id("c1")));
    assert!(s.open.is_empty());
    assert_eq!(r.free_pairs(), 50);
}

#[test]
fn forwards_both_ways_with_rewrites_and_pt_map() {
    let mut r = relay();
    let (a, b) = setup(&mut r, OFFER, ANSWER);
    // A -> B: PCMA 8 stays 8, opus 96 becomes 111.
    let mut p = rtp(96, 100, 5000, 0x1111);
    let f = forward(r.on_packet(MS, a, a_peer(), &mut p));
    assert_eq!((f.dst, f.out_port, f.len), (b_peer(), b, 172));
    let out = RtpPacket::parse(&mut p).unwrap();
    assert_eq!((out.payload_type(), out.sequence(), out.timestamp()), (111, 100, 5000));
    let a_to_b_ssrc = out.ssrc();
    assert_ne!(a_to_b_ssrc, 0x1111);
    // B -> A: 100 (telephone-event) becomes 101.
    let mut p = rtp(100, 7, 9, 0x2222);
    let f = forward(r.on_packet(MS, b, b_peer(), &mut p));
    assert_eq!((f.dst, f.out_port), (a_peer(), a));
    let out = RtpPacket::parse(&mut p).unwrap();
    assert_eq!(out.payload_type(), 101);
    assert_ne!(out.ssrc(), a_to_b_ssrc, "one outgoing SSRC per direction");
    let stats = r.query(2 * MS, &id("c1")).unwrap();
    assert_eq!((stats.offerer.rtp_packets_in, stats.offerer.rtp_packets_out), (1, 1));
    assert_eq!((stats.answerer.rtp_packets_in, stats.answerer.rtp_bytes_out), (1, 172));
    assert_eq!(stats.offerer.tag, Some(tag("ft")));
    assert_eq!(stats.answerer.tag, Some(tag("tt")));
    assert_eq!(stats.age_ms, 2);
}

#[test]
fn unknown_pt_is_dropped_and_counted() {
    let mut r = relay();
    let (a, _) = setup(&mut r, OFFER, ANSWER);
    // PCMU was offered but not answered.
    assert_eq!(r.on_packet(0, a, a_peer(), &mut rtp(0, 1, 1, 1)), Verdict::Drop(DropReason::UnknownPayloadType));
    assert_eq!(r.on_packet(0, a, a_peer(), &mut rtp(50, 1, 1, 1)), Verdict::Drop(DropReason::UnknownPayloadType));
    assert_eq!(r.query(0, &id("c1")).unwrap().offerer.dropped, 2);
}

#[test]
fn latching_and_strangers() {
    let mut r = relay();
    let (a, b) = setup(&mut r, OFFER, ANSWER);
    // The offerer is behind NAT: its packets come from elsewhere than its SDP said.
    let nat: SocketAddr = "198.51.100.7:31000".parse().unwrap();
    forward(r.on_packet(0, a, nat, &mut rtp(8, 1, 1, 1)));
    let f = forward(r.on_packet(0, b, b_peer(), &mut rtp(8, 1, 1, 2)));
    assert_eq!(f.dst, nat, "B's media goes to the latched address");
    let stranger: SocketAddr = "203.0.113.9:5555".parse().unwrap();
    assert_eq!(r.on_packet(0, a, stranger, &mut rtp(8, 2, 2, 1)), Verdict::Drop(DropReason::Stranger));
    assert_eq!(r.on_packet(0, a, a_peer(), &mut rtp(8, 2, 2, 1)), Verdict::Drop(DropReason::Stranger));
    let stats = r.query(0, &id("c1")).unwrap();
    assert_eq!(stats.offerer.dropped, 2);
    assert_eq!(stats.offerer.remote_rtp, Some(nat));
    assert_eq!(r.on_packet(0, 31000, nat, &mut rtp(8, 1, 1, 1)), Verdict::Drop(DropReason::UnknownPort));
}

#[test]
fn no_destination_before_answer_then_early_media() {
    let mut r = relay();
    r.offer(0, &id("c1"), &tag("ft"), OFFER, &OfferFlags::default(), &mut NoSockets).unwrap();
    let a = r.leg_ports(&id("c1"), Side::Offerer).unwrap()[0];
    let b = r.leg_ports(&id("c1"), Side::Answerer).unwrap()[0];
    assert_eq!(r.on_packet(0, a, a_peer(), &mut rtp(0, 1, 1, 1)), Verdict::Drop(DropReason::NoDestination));
    // Early media from the answerer (it knows our B port from the offer) reaches A.
    let f = forward(r.on_packet(0, b, b_peer(), &mut rtp(0, 1, 1, 2)));
    assert_eq!(f.dst, a_peer());
    // Now A -> B works too: B was latched.
    assert_eq!(forward(r.on_packet(0, a, a_peer(), &mut rtp(0, 2, 2, 1))).dst, b_peer());
}

#[test]
fn seq_and_ts_continue_when_ssrc_changes() {
    let mut r = relay();
    let (a, _) = setup(&mut r, OFFER, ANSWER);
    let mut last = (0, 0, 0);
    for i in 0..5u16 {
        let mut p = rtp(8, 1000 + i, 80_000 + 160 * u32::from(i), 0xaaaa);
        forward(r.on_packet(u64::from(i) * 20 * MS, a, a_peer(), &mut p));
        let o = RtpPacket::parse(&mut p).unwrap();
        last = (o.sequence(), o.timestamp(), o.ssrc());
    }
    let mut p = rtp(8, 42, 7, 0xbbbb);
    forward(r.on_packet(100 * MS, a, a_peer(), &mut p));
    let o = RtpPacket::parse(&mut p).unwrap();
    assert_eq!(o.ssrc(), last.2);
    assert_eq!(o.sequence(), last.0.wrapping_add(1));
    assert_eq!(o.timestamp(), last.1.wrapping_add(160));
}

fn rtcp_rr(sender: u32, about: u32) -> Vec<u8> {
    let mut b = vec![0x81, 201, 0, 7];
    b.extend_from_slice(&sender.to_be_bytes());
    b.extend_from_slice(&about.to_be_bytes());
    b.extend_from_slice(&[0; 20]);
    b
}

#[test]
fn rtcp_without_mux_uses_port_pairs() {
    let mut r = relay();
    let (a, b) = setup(&mut r, OFFER, ANSWER);
    let mut p = rtp(8, 1, 1, 0xaaaa);
    forward(r.on_packet(0, a, a_peer(), &mut p));
    let a_out = RtpPacket::parse(&mut p).unwrap().ssrc();
    // B reports about the stream it receives (our A->B SSRC); A must see its own SSRC.
    let mut rr = rtcp_rr(0xbbbb, a_out);
    let b_rtcp: SocketAddr = "10.0.0.2:6001".parse().unwrap();
    let f = forward(r.on_packet(0, b + 1, b_rtcp, &mut rr));
    assert_eq!((f.dst, f.out_port), ("10.0.0.1:4001".parse().unwrap(), a + 1));
    let c = RtcpCompound::parse(&mut rr).unwrap();
    assert_ne!(c.word(4), Some(0xbbbb), "sender SSRC rewritten");
    assert_eq!(c.word(8), Some(0xaaaa), "report block names A's own SSRC");
    assert_eq!(r.query(0, &id("c1")).unwrap().answerer.rtcp_packets_in, 1);
    assert_eq!(r.query(0, &id("c1")).unwrap().offerer.rtcp_packets_out, 1);
    // RTP arriving on an RTCP port is malformed there.
    assert_eq!(r.on_packet(0, b + 1, b_rtcp, &mut rtp(8, 1, 1, 1)), Verdict::Drop(DropReason::Malformed));
}

#[test]
fn rtcp_mux_demultiplexes_on_the_rtp_port() {
    let mut r = relay();
    let (a, b) = setup(&mut r, MUX_OFFER, MUX_ANSWER);
    forward(r.on_packet(0, a, a_peer(), &mut rtp(0, 1, 1, 0xaaaa)));
    let f = forward(r.on_packet(0, b, b_peer(), &mut rtcp_rr(0xbbbb, 0)));
    assert_eq!((f.dst, f.out_port), (a_peer(), a), "muxed RTCP goes to the RTP address");
    let stats = r.query(0, &id("c1")).unwrap();
    assert_eq!((stats.answerer.rtcp_packets_in, stats.answerer.rtp_packets_in), (1, 0));
}

#[test]
fn mux_offered_but_not_answered_falls_back_to_pairs() {
    let mut r = relay();
    let (a, b) = setup(&mut r, MUX_OFFER, ANSWER.replace("8 111 100", "0").as_str());
    let f = forward(r.on_packet(0, b + 1, "10.0.0.2:6001".parse().unwrap(), &mut rtcp_rr(1, 2)));
    assert_eq!((f.dst, f.out_port), ("10.0.0.1:4001".parse().unwrap(), a + 1));
}

#[test]
fn media_timeout_once_per_silence() {
    let mut r = relay(); // default 5 s
    let (a, _) = setup(&mut r, OFFER, ANSWER);
    r.offer(0, &id("quiet"), &tag("x"), OFFER, &OfferFlags { media_timeout_secs: Some(0), ..Default::default() }, &mut NoSockets).unwrap();
    let mut ev = Vec::new();
    r.poll_timeouts(4 * SEC, &mut ev);
    assert!(ev.is_empty());
    r.poll_timeouts(5 * SEC, &mut ev);
    assert_eq!(ev, vec![MediaEvent::MediaTimeout { call: id("c1"), idle_secs: 5 }]);
    r.poll_timeouts(9 * SEC, &mut ev);
    assert_eq!(ev.len(), 1, "not again during the same silence");
    forward(r.on_packet(10 * SEC, a, a_peer(), &mut rtp(8, 1, 1, 1)));
    r.poll_timeouts(14 * SEC, &mut ev);
    assert_eq!(ev.len(), 1);
    r.poll_timeouts(15 * SEC, &mut ev);
    assert_eq!(ev.len(), 2, "a new silence period");
}

fn reply<R: protocol::Request>(r: &mut Relay, req: &R) -> Result<R::Reply, ControlError> {
    let mut frame = Vec::new();
    encode_request(RequestId(9), req, &mut frame).unwrap();
    let mut out = Vec::new();
    handle_frame(r, 0, &frame, &mut NoSockets, &mut out).unwrap();
    let Incoming::Reply { id, kind, body } = decode_incoming(&out).unwrap() else { panic!("not a reply") };
    assert_eq!(id, RequestId(9));
    decode_reply::<R>(kind, body).unwrap()
}

#[test]
fn control_frames_round_trip() {
    let mut r = relay();
    assert_eq!(reply(&mut r, &Ping).unwrap().calls, 0);
    let offer = Offer { call: id("c1"), from_tag: tag("ft"), sdp: OFFER.into(), flags: OfferFlags::default() };
    assert!(reply(&mut r, &offer).unwrap().sdp.starts_with("v=0\r\n"));
    let answer = Answer { call: id("c1"), from_tag: tag("ft"), to_tag: tag("tt"), sdp: ANSWER.into() };
    assert!(reply(&mut r, &answer).is_ok());
    assert_eq!(reply(&mut r, &Ping).unwrap().calls, 1);
    assert_eq!(reply(&mut r, &Query { call: id("c1") }).unwrap().call, Some(id("c1")));
    assert!(reply(&mut r, &Delete { call: id("c1") }).is_ok());
    assert_eq!(reply(&mut r, &Query { call: id("c1") }).unwrap_err().code, ErrorCode::UnknownCall);
    let bad = Offer { sdp: "nonsense".into(), ..offer };
    assert_eq!(reply(&mut r, &bad).unwrap_err().code, ErrorCode::BadSdp);
}

#[test]
fn undecodable_frames_get_error_replies() {
    let mut r = relay();
    let mut out = Vec::new();
    let mut frame = vec![0x33];
    frame.extend_from_slice(&77u64.to_le_bytes());
    handle_frame(&mut r, 0, &frame, &mut NoSockets, &mut out).unwrap();
    let Incoming::Reply { id, kind, body } = decode_incoming(&out).unwrap() else { panic!() };
    assert_eq!((id, kind), (RequestId(77), 0x33));
    let decoded: Result<(), ControlError> = protocol::decode_body(kind | protocol::REPLY_BIT, body).unwrap();
    assert_eq!(decoded.unwrap_err().code, ErrorCode::BadRequest);
    // Known kind, garbage body: the typed decoder reads it as an error reply to a Query.
    let mut frame = vec![CommandKind::Query as u8];
    frame.extend_from_slice(&78u64.to_le_bytes());
    frame.extend_from_slice(&[0xff, 0xff, 0xff]);
    handle_frame(&mut r, 0, &frame, &mut NoSockets, &mut out).unwrap();
    let Incoming::Reply { kind, body, .. } = decode_incoming(&out).unwrap() else { panic!() };
    assert_eq!(decode_reply::<Query>(kind, body).unwrap().unwrap_err().code, ErrorCode::BadRequest);
    handle_frame(&mut r, 0, &[1], &mut NoSockets, &mut out).unwrap();
    assert!(matches!(decode_incoming(&out).unwrap(), Incoming::Reply { id: RequestId(0), .. }));
}

proptest! {
    #[test]
    fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut r = relay();
        let mut out = Vec::new();
        handle_frame(&mut r, 0, &bytes, &mut NoSockets, &mut out).unwrap();
        prop_assert!(decode_incoming(&out).is_ok());
    }

    #[test]
    fn arbitrary_packets_never_panic(port_off in 0u16..8, data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut r = relay();
        let (a, _) = setup(&mut r, OFFER, ANSWER);
        let mut data = data;
        let _ = r.on_packet(0, a - 2 + port_off, a_peer(), &mut data);
    }

    #[test]
    fn forwarded_sequence_stays_contiguous(switches in proptest::collection::vec((any::<u32>(), any::<u16>(), 1usize..20), 1..6)) {
        let mut r = relay();
        let (a, _) = setup(&mut r, OFFER, ANSWER);
        let mut expected: Option<u16> = None;
        let mut now = 0;
        for (ssrc, start, n) in switches {
            for i in 0..n as u16 {
                now += 20 * MS;
                let mut p = rtp(8, start.wrapping_add(i), 0, ssrc);
                forward(r.on_packet(now, a, a_peer(), &mut p));
                let seq = RtpPacket::parse(&mut p).unwrap().sequence();
                if let Some(e) = expected { prop_assert_eq!(seq, e); }
                expected = Some(seq.wrapping_add(1));
            }
        }
    }
}

#[test]
fn reoffer_after_answer_remaps_payload_types_and_keeps_ports() {
    let mut r = relay();
    let (a, b) = setup(&mut r, OFFER, ANSWER);
    // The offerer now numbers opus 98 instead of 96; the answer still says 111.
    let reoffer = OFFER.replace("0 8 96 101", "0 8 98 101").replace("rtpmap:96", "rtpmap:98");
    r.offer(MS, &id("c1"), &tag("ft"), &reoffer, &OfferFlags::default(), &mut NoSockets).unwrap();
    assert_eq!(r.leg_ports(&id("c1"), Side::Offerer).unwrap(), vec![a]);
    assert_eq!(r.leg_ports(&id("c1"), Side::Answerer).unwrap(), vec![b]);
    let mut p = rtp(98, 1, 1, 1);
    forward(r.on_packet(MS, a, a_peer(), &mut p));
    assert_eq!(RtpPacket::parse(&mut p).unwrap().payload_type(), 111);
    let mut p = rtp(111, 1, 1, 2);
    forward(r.on_packet(MS, b, b_peer(), &mut p));
    assert_eq!(RtpPacket::parse(&mut p).unwrap().payload_type(), 98);
    assert_eq!(r.on_packet(MS, a, a_peer(), &mut rtp(96, 2, 2, 1)), Verdict::Drop(DropReason::UnknownPayloadType));
}
