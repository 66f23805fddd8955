use super::*;
use crate::relay::RelayConfig;
use crate::rtp::write_rtp;
use crate::sdp::Sdp;
use crate::webrtc::bridge_setup::sip_sdp_text;
use crate::webrtc::leg::LegCodec;
use std::time::Instant;
use str0m::format::Codec;
use str0m::media::Direction;
use str0m::media::MediaKind;
use str0m::{Candidate, RtcConfig};
use wavegate_shared::ShardId;
use wavegate_shared::protocol::OfferFlags;

const S: u64 = 1_000_000_000;

/// Binds nothing; records what the bridge sends.
#[derive(Default)]
struct Wire {
    webrtc: Vec<SocketAddr>,
    rtp: Vec<(u16, SocketAddr, Vec<u8>)>,
}

impl PortSockets for Wire {
    fn open(&mut self, _: u16) -> std::io::Result<()> {
        Ok(())
    }
    fn close(&mut self, _: u16) {}
}

impl BridgeIo for Wire {
    fn send_webrtc(&mut self, dst: SocketAddr, _: &[u8]) {
        self.webrtc.push(dst);
    }
    fn send_rtp(&mut self, from_port: u16, dst: SocketAddr, buf: &[u8]) {
        self.rtp.push((from_port, dst, buf.to_vec()));
    }
}

fn setup() -> (Bridge, Relay, String) {
    let clock = Clock::new(Instant::now());
    let shard: SocketAddr = "127.0.0.1:41000".parse().unwrap();
    let cert = super::super::leg::generate_certificate().unwrap();
    let bridge = Bridge::new(clock, LegAddr::direct(shard), cert, "127.0.0.1".parse().unwrap());
    let config = RelayConfig {
        shard: ShardId(0),
        ports: "30000-30019".parse().unwrap(),
        announce_ip: "127.0.0.1".parse().unwrap(),
        media_timeout_secs: 60,
    };
    let mut rtc = RtcConfig::new()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_pcmu(true, false)
        .build(clock.instant(0));
    rtc.add_local_candidate(Candidate::host("127.0.0.1:50000".parse().unwrap(), "udp").unwrap()).unwrap();
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, _pending) = change.apply().unwrap();
    (bridge, Relay::new(config, 3), offer.to_sdp_string())
}

fn sip_answer(pt: u8, map: &str) -> String {
    format!(
        "v=0\r\no=s 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP {pt}\r\na=rtpmap:{pt} {map}\r\n"
    )
}

#[test]
fn call_life_cycle_media_timeout_latching_and_delete() {
    let (mut bridge, mut relay, offer) = setup();
    bridge.set_transcoding(false);
    let mut wire = Wire::default();
    let call = CallId::new("w@t").unwrap();
    let (ft, tt) = (LegTag::new("b").unwrap(), LegTag::new("s").unwrap());
    let flags = OfferFlags { media_timeout_secs: Some(2), ..Default::default() };
    let free = relay.free_pairs();
    let reply = bridge.offer(0, &call, &ft, &offer, &flags, &mut relay, &mut wire).unwrap();
    assert!(reply.browser_answer.contains("a=ice-lite"));
    assert_eq!(relay.free_pairs(), free - 1, "one pair for the SIP side");
    let again = bridge.offer(0, &call, &ft, &offer, &flags, &mut relay, &mut wire).unwrap();
    assert_eq!(again, reply, "the same offer again is a retry: the same reply");
    assert_eq!(relay.free_pairs(), free - 1, "and no new port");
    let sip = Sdp::parse(&reply.sip_offer).unwrap();
    let sip_port = sip.media[0].desc.port;
    assert!(sip.media[0].payload_types().any(|pt| pt == 0), "PCMU offered: {}", reply.sip_offer);

    // Transcoding off (set before the offer): an answer with a codec the browser does not
    // have fails with the cause.
    let refused = bridge.answer(&call, &tt, &sip_answer(18, "G729/8000")).unwrap_err();
    assert_eq!(refused.code, ErrorCode::TranscodingDisabled, "no transcoding");
    assert_eq!(bridge.answer(&call, &tt, &sip_answer(0, "PCMU/8000")).unwrap(), "");
    let stats = bridge.query(0, &call).unwrap();
    assert_eq!(stats.answerer.remote_rtp, Some("127.0.0.1:6000".parse().unwrap()));

    // Silence: one MediaTimeout after 2 s, not repeated.
    let mut events = Vec::new();
    bridge.poll_timeouts(S, &mut events);
    assert!(events.is_empty());
    bridge.poll_timeouts(2 * S, &mut events);
    assert_eq!(events, vec![MediaEvent::MediaTimeout { call: call.clone(), idle_secs: 2 }]);
    bridge.poll_timeouts(3 * S, &mut events);
    assert_eq!(events.len(), 1, "once per silence");

    // SIP RTP latches its sender and restarts the silence; a stranger is dropped.
    let peer: SocketAddr = "127.0.0.1:6002".parse().unwrap();
    let mut pkt = [0u8; 64];
    let n = write_rtp(&mut pkt, 0, 1, 160, 9, &[1, 2, 3]).unwrap();
    assert!(bridge.on_sip_packet(3 * S, sip_port, peer, &mut pkt[..n], &mut wire));
    let n = write_rtp(&mut pkt, 0, 2, 320, 9, &[1, 2, 3]).unwrap();
    assert!(bridge.on_sip_packet(3 * S, sip_port, "127.0.0.1:7000".parse().unwrap(), &mut pkt[..n], &mut wire));
    assert!(!bridge.on_sip_packet(3 * S, sip_port + 2, peer, &mut pkt[..n], &mut wire), "not a bridge port");
    let stats = bridge.query(3 * S, &call).unwrap();
    assert_eq!((stats.answerer.rtp_packets_in, stats.answerer.dropped), (1, 1));
    assert_eq!(stats.answerer.remote_rtp, Some(peer), "latched");
    bridge.poll_timeouts(4 * S, &mut events);
    assert_eq!(events.len(), 1);
    bridge.poll_timeouts(5 * S, &mut events);
    assert_eq!(events.len(), 2, "a new silence is reported again");

    bridge.delete(5 * S, &call, &mut relay, &mut wire).unwrap();
    assert!(!bridge.has_call(&call));
    assert_eq!(relay.free_pairs(), free, "the pair is back");
    assert!(bridge.query(5 * S, &call).is_err());
    assert!(!bridge.on_sip_packet(5 * S, sip_port, peer, &mut pkt[..n], &mut wire));
}

#[test]
fn sip_offer_lists_the_browser_codecs_and_parses() {
    let codecs = [
        LegCodec { pt: 111, codec: Codec::Opus, clock_rate: 48_000, channels: Some(2), profile_level_id: None },
        LegCodec { pt: 0, codec: Codec::PCMU, clock_rate: 8000, channels: None, profile_level_id: None },
        LegCodec { pt: 126, codec: Codec::Tele, clock_rate: 8000, channels: None, profile_level_id: None },
    ];
    let text = sip_sdp_text(
        "127.0.0.1".parse().unwrap(),
        30_000,
        1,
        &codecs,
        &[],
        crate::sdp::Direction::SendRecv,
        None,
        None,
        None,
    );
    let sdp = Sdp::parse(&text).unwrap();
    let m = &sdp.media[0];
    assert_eq!((m.desc.port, m.desc.proto.as_str()), (30_000, "RTP/AVP"));
    assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![111, 0, 126]);
    assert_eq!(m.rtpmap(111).map(|r| r.clock_rate), Some(48_000));
    assert_eq!(m.rtpmap(126).map(|r| r.encoding.as_str()), Some("telephone-event"));
    assert!(text.contains("a=fmtp:126 0-16\r\n"));
    assert_eq!(sdp.media_address(0), Some("127.0.0.1".parse().unwrap()));
}

// ---- Virtual-time calls with a str0m browser: our offer, DTMF both ways ----

use str0m::change::SdpOffer;
use str0m::format::FormatParams;
use str0m::media::{Frequency, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Event, Input, Output, Rtc};
use wavegate_shared::protocol::DtmfToward;

const MS: u64 = 1_000_000;
const SHARD: &str = "127.0.0.1:41000";
const BROWSER: &str = "127.0.0.1:50000";
const SIP_PEER: &str = "127.0.0.1:6000";

/// Records everything the bridge sends, with contents.
#[derive(Default)]
struct Net {
    to_browser: Vec<Vec<u8>>,
    to_sip: Vec<(u16, SocketAddr, Vec<u8>)>,
}

impl PortSockets for Net {
    fn open(&mut self, _: u16) -> std::io::Result<()> {
        Ok(())
    }
    fn close(&mut self, _: u16) {}
}

impl BridgeIo for Net {
    fn send_webrtc(&mut self, _: SocketAddr, buf: &[u8]) {
        self.to_browser.push(buf.to_vec());
    }
    fn send_rtp(&mut self, from_port: u16, dst: SocketAddr, buf: &[u8]) {
        self.to_sip.push((from_port, dst, buf.to_vec()));
    }
}

/// RTP the browser received: (pt, seq, timestamp, marker, payload).
type Got = (u8, u16, u32, bool, Vec<u8>);

struct Browser {
    rtc: Rtc,
    clock: Clock,
    mid: Option<Mid>,
    connected: bool,
    disconnected: bool,
    got: Vec<Got>,
}

impl Browser {
    /// A full-ICE str0m peer with the given payload formats.
    fn new(clock: Clock, formats: &[(u8, Codec, u32, Option<u8>)]) -> Self {
        let mut config = RtcConfig::new().set_rtp_mode(true).clear_codecs();
        for (pt, codec, rate, ch) in formats {
            let rate = Frequency::new(*rate).unwrap();
            config.codec_config().add_config((*pt).into(), None, *codec, rate, *ch, FormatParams::default());
        }
        let mut rtc = config.build(clock.instant(0));
        rtc.add_local_candidate(Candidate::host(BROWSER.parse().unwrap(), "udp").unwrap()).unwrap();
        Self { rtc, clock, mid: None, connected: false, disconnected: false, got: Vec::new() }
    }

    fn answer(&mut self, offer: &str) -> String {
        let answer = self.rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(offer).unwrap()).unwrap();
        let text = answer.to_sdp_string();
        let mid = text.lines().find_map(|l| l.strip_prefix("a=mid:")).unwrap();
        self.mid = Some(Mid::from(mid.trim()));
        text
    }

    fn send(&mut self, now: u64, pt: u8, seq: u64, ts: u32, marker: bool, payload: &[u8]) {
        let mid = self.mid.unwrap();
        let at = self.clock.instant(now);
        let mut api = self.rtc.direct_api();
        let tx = api.stream_tx_by_mid(mid, None).unwrap();
        tx.write_rtp(RtpWrite::new(pt.into(), seq.into(), ts, at, payload.to_vec()).marker(marker));
    }
}

/// Drains the browser (str0m keeps one received packet until the next poll, so this runs after
/// every input).
fn drain_browser(bridge: &mut Bridge, b: &mut Browser, net: &mut Net, now: u64) {
    let browser: SocketAddr = BROWSER.parse().unwrap();
    for _ in 0..1000 {
        match b.rtc.poll_output().unwrap() {
            Output::Timeout(_) => break,
            Output::Transmit(t) => bridge.on_webrtc_datagram(now, browser, &t.contents, net),
            Output::Event(Event::Connected) => b.connected = true,
            Output::Event(Event::IceConnectionStateChange(str0m::IceConnectionState::Disconnected)) => {
                b.disconnected = true
            }
            Output::Event(Event::RtpPacket(p)) => b.got.push((
                *p.header.payload_type,
                p.header.sequence_number,
                p.header.timestamp,
                p.header.marker,
                p.payload.to_vec(),
            )),
            Output::Event(_) => {}
        }
    }
}

/// One millisecond of the world: the browser's output to the bridge, the bridge's to the browser.
fn step(bridge: &mut Bridge, b: &mut Browser, net: &mut Net, now: u64) {
    let browser: SocketAddr = BROWSER.parse().unwrap();
    let shard: SocketAddr = SHARD.parse().unwrap();
    b.rtc.handle_input(Input::Timeout(b.clock.instant(now))).unwrap();
    drain_browser(bridge, b, net, now);
    bridge.on_timeout(now, net);
    // Bounded: each round delivers what the previous one produced; the browser's replies stop.
    for _ in 0..100 {
        if net.to_browser.is_empty() {
            break;
        }
        for d in std::mem::take(&mut net.to_browser) {
            let r = Receive {
                proto: Protocol::Udp,
                source: shard,
                destination: browser,
                contents: d.as_slice().try_into().unwrap(),
            };
            b.rtc.handle_input(Input::Receive(b.clock.instant(now), r)).unwrap();
            drain_browser(bridge, b, net, now);
        }
    }
}

/// Runs the world until `done` or `limit_ms` virtual milliseconds; returns the time reached.
fn run(
    bridge: &mut Bridge,
    b: &mut Browser,
    net: &mut Net,
    from: u64,
    limit_ms: u64,
    done: impl Fn(&Browser, &Net) -> bool,
) -> u64 {
    let mut now = from;
    for _ in 0..limit_ms {
        step(bridge, b, net, now);
        if done(b, net) {
            return now;
        }
        now += MS;
    }
    now
}

fn new_bridge() -> (Bridge, Relay, Clock) {
    let (bridge, relay, _) = setup();
    let clock = bridge.clock;
    (bridge, relay, clock)
}

fn sip_rtp(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let n = write_rtp(&mut buf, pt, seq, ts, 0x5151, payload).unwrap();
    if marker {
        buf[1] |= 0x80;
    }
    buf[..n].to_vec()
}

/// The telephone-events among `packets` (pt, seq, ts, marker, event).
fn events_of(packets: &[Got], pt: u8) -> Vec<(u16, u32, bool, super::super::dtmf::TelephoneEvent)> {
    packets
        .iter()
        .filter(|p| p.0 == pt)
        .map(|p| (p.1, p.2, p.3, super::super::dtmf::TelephoneEvent::parse(&p.4).unwrap()))
        .collect()
}

/// Checks an RFC 4733 train: one start with marker, continuations, three E packets, one
/// timestamp, consecutive sequence numbers.
fn check_train(ev: &[(u16, u32, bool, super::super::dtmf::TelephoneEvent)], code: u8, duration: u16) {
    assert!(ev.len() >= 5, "start + continuation + 3 ends: {ev:?}");
    assert!(ev[0].2 && !ev[0].3.end, "start has the marker: {:?}", ev[0]);
    assert!(ev[1..].iter().all(|e| !e.2), "one marker");
    assert!(ev.iter().all(|e| e.1 == ev[0].1 && e.3.event == code), "one timestamp and event");
    for w in ev.windows(2) {
        assert_eq!(w[1].0, w[0].0.wrapping_add(1), "increasing sequence numbers");
    }
    let ends: Vec<_> = ev.iter().filter(|e| e.3.end).collect();
    assert_eq!(ends.len(), 3, "three end packets");
    assert!(ends.iter().all(|e| e.3.duration == duration), "{ends:?}");
    assert!(ev[ev.len() - 3..].iter().all(|e| e.3.end), "ends come last");
}

fn dtmf_events(bridge: &mut Bridge) -> Vec<MediaEvent> {
    let mut out = Vec::new();
    bridge.take_events(&mut out);
    out
}

/// An incoming SIP call (PCMA, PCMU, telephone-event/8000 from 127.0.0.1:6000, and a video
/// m-line) answered by a str0m browser and connected.
struct Incoming {
    bridge: Bridge,
    _relay: Relay,
    net: Net,
    b: Browser,
    call: CallId,
    sip_tag: LegTag,
    browser_tag: LegTag,
    sip_port: u16,
    now: u64,
}

fn incoming_call() -> Incoming {
    let (mut bridge, mut relay, clock) = new_bridge();
    let mut net = Net::default();
    let call = CallId::new("in@t").unwrap();
    let (sip_tag, browser_tag) = (LegTag::new("caller").unwrap(), LegTag::new("web").unwrap());
    let sip_offer = "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 6000 RTP/AVP 8 0 18 101\r\na=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-15\r\na=sendrecv\r\nm=video 6002 RTP/AVP 34\r\n";
    let reply = bridge
        .offer_to_browser(0, &call, &sip_tag, Some(sip_offer), &OfferFlags::default(), &mut relay, &mut net)
        .unwrap();
    let offer = &reply.browser_offer;
    for needle in [
        "a=ice-lite",
        "a=setup:actpass",
        "a=fingerprint:sha-256",
        "127.0.0.1 41000 typ host",
        "PCMA/8000",
        "PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
    ] {
        assert!(offer.contains(needle), "{needle} in\n{offer}");
    }
    assert!(
        !offer.contains("G729") && !offer.contains("opus"),
        "only what the SIP side offered and a browser takes\n{offer}"
    );
    assert!(bridge.answer(&call, &browser_tag, "v=0\r\n").is_err(), "no SIP answer expected");

    let mut b = Browser::new(
        clock,
        &[(8, Codec::PCMA, 8000, None), (0, Codec::PCMU, 8000, None), (101, Codec::Tele, 8000, None)],
    );
    let answer = b.answer(offer);
    let sip_answer = bridge.browser_answer(0, &call, &browser_tag, &answer, &mut net).unwrap();
    let sdp = Sdp::parse(&sip_answer).unwrap();
    assert_eq!(sdp.media.len(), 2, "one m-line per offered one\n{sip_answer}");
    let m = &sdp.media[0];
    assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![8, 0, 101], "the SIP side's numbers\n{sip_answer}");
    assert_eq!((m.desc.proto.as_str(), sdp.media[1].desc.port), ("RTP/AVP", 0), "video rejected");
    let sip_port = m.desc.port;
    assert!(bridge.browser_answer(0, &call, &browser_tag, &answer, &mut net).is_err(), "answered once");

    let now = run(&mut bridge, &mut b, &mut net, 0, 5000, |b, _| b.connected);
    assert!(b.connected, "ICE + DTLS up with us as offerer");
    Incoming { bridge, _relay: relay, net, b, call, sip_tag, browser_tag, sip_port, now }
}

#[test]
fn sip_offer_to_browser_then_media_and_dtmf_both_ways() {
    let Incoming { mut bridge, _relay, mut net, mut b, call, sip_tag, browser_tag, sip_port, now } = incoming_call();
    let stats = bridge.query(now, &call).unwrap();
    assert_eq!(stats.offerer.tag.as_ref(), Some(&sip_tag), "the SIP caller offered");
    assert_eq!(stats.answerer.tag.as_ref(), Some(&browser_tag));

    // Audio both ways, PCMA as numbered by the SIP side, one packet each 20 ms (a new source's
    // first packets may be held back by str0m's source validation).
    let peer: SocketAddr = SIP_PEER.parse().unwrap();
    let mut now = now;
    for i in 0..6u16 {
        let mut p = sip_rtp(8, 100 + i, 160 * u32::from(i), false, &[0xA0, i as u8]);
        assert!(bridge.on_sip_packet(now, sip_port, peer, &mut p, &mut net));
        b.send(now, 8, 7000 + u64::from(i), 160 * u32::from(i), false, &[0xB0, i as u8]);
        now = run(&mut bridge, &mut b, &mut net, now, 20, |_, _| false);
    }
    assert!(b.got.len() >= 3, "browser got {:?}", b.got);
    for w in b.got.windows(2) {
        assert_eq!(w[1].4[1], w[0].4[1] + 1, "in order, none lost once flowing");
    }
    assert!(b.got.iter().all(|g| g.0 == 8 && g.4[0] == 0xA0));
    assert_eq!(b.got.last().unwrap().4[1], 5);
    assert!(net.to_sip.len() >= 3, "SIP got {}", net.to_sip.len());
    assert!(
        net.to_sip.iter().all(|(port, dst, _)| (*port, *dst) == (sip_port, peer)),
        "to the offered address, from our port"
    );
    let audio_to_sip: Vec<Vec<u8>> = net.to_sip.drain(..).map(|t| t.2).collect();
    let mut last_seq = None;
    for mut raw in audio_to_sip {
        let p = RtpPacket::parse(&mut raw).unwrap();
        assert_eq!((p.payload_type(), &p.payload()[..1]), (8, &[0xB0][..]));
        if let Some(l) = last_seq {
            assert_eq!(p.sequence(), u16::wrapping_add(l, 1));
        }
        last_seq = Some(p.sequence());
    }
    let last_seq = last_seq.unwrap();
    b.got.clear();

    // Browser DTMF "5" (tele/8000): passed through to the SIP side, reported once.
    let mut t = now;
    let ts = 480;
    for (k, (end, dur)) in
        [(false, 0u16), (false, 400), (false, 800), (true, 960), (true, 960), (true, 960)].into_iter().enumerate()
    {
        let ev = super::super::dtmf::TelephoneEvent { event: 5, end, volume: 10, duration: dur };
        b.send(t, 101, 7006 + k as u64, ts, k == 0, &ev.to_bytes());
        step(&mut bridge, &mut b, &mut net, t);
        t += 20 * MS;
    }
    let to_sip: Vec<(u16, u32, bool, super::super::dtmf::TelephoneEvent)> = net
        .to_sip
        .drain(..)
        .map(|(_, _, mut raw)| {
            let p = RtpPacket::parse(&mut raw).unwrap();
            assert_eq!(p.payload_type(), 101);
            (p.sequence(), p.timestamp(), p.marker(), super::super::dtmf::TelephoneEvent::parse(p.payload()).unwrap())
        })
        .collect();
    assert_eq!(to_sip.len(), 6);
    assert_eq!(to_sip[0].0, last_seq.wrapping_add(1), "continues the audio's numbering");
    check_train(&to_sip, 5, 960);
    let events = dtmf_events(&mut bridge);
    assert_eq!(
        events,
        vec![MediaEvent::DtmfReceived {
            call: call.clone(),
            tag: Some(browser_tag.clone()),
            digit: '5',
            duration_ms: 120
        }]
    );

    // SIP DTMF "#" toward the browser, reported once with the SIP caller's tag.
    for (k, (end, dur)) in [(false, 0u16), (false, 400), (true, 800), (true, 800), (true, 800)].into_iter().enumerate()
    {
        let ev = super::super::dtmf::TelephoneEvent { event: 11, end, volume: 10, duration: dur };
        let mut p = sip_rtp(101, 106 + k as u16, 9000, k == 0, &ev.to_bytes());
        assert!(bridge.on_sip_packet(t, sip_port, peer, &mut p, &mut net));
    }
    let got_before = b.got.len();
    t = run(&mut bridge, &mut b, &mut net, t, 200, |b, _| b.got.len() >= got_before + 5);
    let ev = events_of(&b.got[got_before..], 101);
    check_train(&ev, 11, 800);
    assert_eq!(
        dtmf_events(&mut bridge),
        vec![MediaEvent::DtmfReceived { call: call.clone(), tag: Some(sip_tag.clone()), digit: '#', duration_ms: 100 }]
    );

    // Injected toward each side: 120 ms digits on a virtual clock.
    assert_eq!(
        bridge.inject_dtmf(t, &call, DtmfToward::Sip, 'x', 100, &mut net).unwrap_err().code,
        ErrorCode::BadRequest
    );
    bridge.inject_dtmf(t, &call, DtmfToward::Sip, '9', 120, &mut net).unwrap();
    bridge.inject_dtmf(t, &call, DtmfToward::Browser, '*', 120, &mut net).unwrap();
    bridge.inject_dtmf(t, &call, DtmfToward::Browser, '1', 60, &mut net).unwrap();
    let got_before = b.got.len();
    assert!(bridge.next_deadline() <= t + 50 * MS, "the senders' timers join the deadline");
    run(&mut bridge, &mut b, &mut net, t, 1000, |_, _| false);
    let to_sip: Vec<_> = net
        .to_sip
        .drain(..)
        .map(|(_, _, mut raw)| {
            let p = RtpPacket::parse(&mut raw).unwrap();
            (p.sequence(), p.timestamp(), p.marker(), super::super::dtmf::TelephoneEvent::parse(p.payload()).unwrap())
        })
        .collect();
    check_train(&to_sip, 9, 960);
    assert_eq!(to_sip.len(), 1 + 2 + 3, "start, continuations at 50 and 100 ms, three ends");
    let ev = events_of(&b.got[got_before..], 101);
    let (star, one): (Vec<_>, Vec<_>) = ev.into_iter().partition(|e| e.3.event == 10);
    check_train(&star, 10, 960);
    check_train(&one, 1, 480);
    assert!(one[0].1 > star[0].1, "the queued digit starts later on the timeline");
    assert_eq!(one[0].0, star[star.len() - 1].0.wrapping_add(1), "one numbering toward the browser");
    assert!(dtmf_events(&mut bridge).is_empty(), "our own digits are not reported");
}

#[path = "bridge_hold_tests.rs"]
mod hold;

#[path = "bridge_drops_tests.rs"]
mod drops;

#[path = "bridge_transcode_tests.rs"]
mod transcode;

#[path = "bridge_video_tests.rs"]
mod video;
