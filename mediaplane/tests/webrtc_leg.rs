//! WebRTC legs end to end on virtual time, in memory: two "browsers" (full-ICE str0m `Rtc`s acting
//! as DTLS clients, offering one Opus m-line) call two `WebRtcLeg`s that share one shard address.
//! Every datagram for the shard goes through `Demux`; nothing touches a socket or the real clock
//! beyond one base `Instant`. Asserts ICE + DTLS connect on both calls and that RTP written on
//! either side arrives as RTP on the other, on the right call, across a sequence-number wrap.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use wavegate_mediaplane::webrtc::Clock;
use wavegate_mediaplane::webrtc::demux::{Demux, LegId, Routed};
use wavegate_mediaplane::webrtc::leg::{
    LegAddr, LegEvent, LegOutput, OutRtp, WebRtcLeg, generate_certificate,
};

const MS: u64 = 1_000_000;
/// One-way network latency of the in-memory network.
const LATENCY: u64 = MS;
/// Virtual-time budget for the whole test.
const MAX_TIME: u64 = 10_000 * MS;
/// Leg -> browser sequence numbers start just below the wrap, so SRTP's rollover is exercised.
const LEG_SEQ0: u16 = 65_533;
const PACKETS: u16 = 5;

struct Datagram {
    at: u64,
    src: SocketAddr,
    dst: SocketAddr,
    bytes: Vec<u8>,
}

struct Browser {
    rtc: Rtc,
    addr: SocketAddr,
    mid: Mid,
    opus_pt: u8,
    connected: bool,
    rtp_in: Vec<(u16, u32, u8, Vec<u8>)>,
    next_seq: u64,
}

struct Call {
    id: LegId,
    leg: WebRtcLeg,
    mid: Option<Mid>,
    events: Vec<LegEvent>,
    rtp_in: Vec<(Option<Mid>, u8, u16, Vec<u8>)>,
    next_seq: u16,
}

/// A browser that has made its offer; the pending offer waits for our answer. With
/// `candidate_in_offer` false the offer carries no candidate (as when a browser trickles them and
/// the signalling does not forward them): the ICE-lite leg must learn the browser's address from
/// its connectivity checks (peer-reflexive).
fn browser(clock: Clock, addr: SocketAddr, candidate_in_offer: bool) -> (Browser, String, SdpPendingOffer) {
    let mut rtc = RtcConfig::new().set_rtp_mode(true).clear_codecs().enable_opus(true, false).build(clock.instant(0));
    if candidate_in_offer {
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap()).unwrap();
    }
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    if !candidate_in_offer {
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap()).unwrap();
    }
    let offer_sdp = offer.to_sdp_string();
    let opus_pt = rtc.codec_config().find(|p| p.spec().codec == Codec::Opus).map(|p| *p.pt()).unwrap();
    (Browser { rtc, addr, mid, opus_pt, connected: false, rtp_in: Vec::new(), next_seq: 1_000 }, offer_sdp, pending)
}

fn drain_browser(b: &mut Browser, now: u64, net: &mut VecDeque<Datagram>) {
    for _ in 0..10_000 {
        match b.rtc.poll_output().unwrap() {
            Output::Timeout(_) => return,
            Output::Transmit(t) => net.push_back(Datagram {
                at: now + LATENCY,
                src: t.source,
                dst: t.destination,
                bytes: t.contents.into(),
            }),
            Output::Event(Event::Connected) => b.connected = true,
            Output::Event(Event::RtpPacket(p)) => {
                b.rtp_in.push((p.header.sequence_number, *p.header.ssrc, *p.header.payload_type, p.payload.to_vec()))
            }
            Output::Event(_) => {}
        }
    }
    panic!("browser poll did not reach a timeout");
}

fn drain_leg(c: &mut Call, now: u64, net: &mut VecDeque<Datagram>) {
    for _ in 0..10_000 {
        match c.leg.poll().unwrap() {
            LegOutput::Timeout(_) => return,
            LegOutput::Transmit(t) => {
                // The driver sends from its bound socket; a 1:1 NAT then shows the public address.
                let addr = c.leg.addr();
                assert_eq!(t.source, addr.bind, "legs transmit from the bound address");
                let bytes = t.contents.into();
                net.push_back(Datagram { at: now + LATENCY, src: addr.announce, dst: t.destination, bytes })
            }
            LegOutput::Rtp(r) => c.rtp_in.push((r.mid, r.pt, r.seq, r.payload.to_vec())),
            LegOutput::Event(e) => c.events.push(e),
        }
    }
    panic!("leg poll did not reach a timeout");
}

#[test]
fn two_browsers_connect_and_exchange_rtp_through_one_port() {
    two_calls(true, None);
}

#[test]
fn browser_candidates_not_in_the_offer_are_learnt_from_checks() {
    two_calls(false, None);
}

#[test]
fn behind_a_one_to_one_nat_the_announced_address_is_the_candidate() {
    two_calls(true, Some("127.0.0.2:41000".parse().unwrap()));
}

/// `announce`: the shard sits behind a 1:1 NAT that maps this public address to its socket.
fn two_calls(candidate_in_offer: bool, announce: Option<SocketAddr>) {
    let clock = Clock::new(Instant::now());
    let shard: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let cert = generate_certificate().unwrap();
    let mut fingerprints = Vec::new();
    let leg_addr = LegAddr { bind: shard, announce: announce.unwrap_or(shard) };
    let mut demux = Demux::new();
    let mut net: VecDeque<Datagram> = VecDeque::new();
    let mut browsers = Vec::new();
    let mut calls = Vec::new();

    for i in 0..2u16 {
        let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 50_001 + i));
        let (mut b, offer, pending) = browser(clock, addr, candidate_in_offer);
        assert_eq!(offer.contains("typ host"), candidate_in_offer);
        let mut leg = WebRtcLeg::new(clock, 0, leg_addr, &cert).unwrap();
        let id = LegId(u32::from(i) + 1);
        demux.insert(id, leg.local_ufrag()).unwrap();
        let answer = leg.handle_offer(0, &offer).unwrap();
        assert!(answer.contains("a=ice-lite"), "answer is ICE-lite:\n{answer}");
        fingerprints.extend(answer.lines().filter(|l| l.starts_with("a=fingerprint:")).map(str::to_owned));
        let candidate = format!("{} {} typ host", leg_addr.announce.ip(), leg_addr.announce.port());
        assert!(answer.contains(&candidate), "one host candidate, the announced address:\n{answer}");
        assert_eq!(answer.matches("a=candidate").count(), 1, "only one candidate:\n{answer}");
        b.rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap()).unwrap();
        assert_eq!(leg.media(), &[(b.mid, MediaKind::Audio)], "the leg knows the browser's audio m-line");
        let mid = Some(b.mid);
        let mut call = Call { id, leg, mid, events: Vec::new(), rtp_in: Vec::new(), next_seq: LEG_SEQ0 };
        drain_leg(&mut call, 0, &mut net);
        assert_eq!(call.leg.payload_type(Codec::Opus), Some(b.opus_pt), "Opus keeps the offer's payload type");
        drain_browser(&mut b, 0, &mut net);
        browsers.push(b);
        calls.push(call);
    }

    assert_eq!(fingerprints.len(), 2, "one fingerprint per answer: {fingerprints:?}");
    assert_eq!(fingerprints[0], fingerprints[1], "legs of a shard share its certificate");
    let mut by_ufrag = 0;
    let mut by_tuple = 0;
    let mut now = 0;
    let mut last_write = 0;
    let mut written = 0u16;
    while now < MAX_TIME {
        now += MS;
        // Deliver what is due; the leg side goes through the demultiplexer like the driver will.
        while net.front().is_some_and(|d| d.at <= now) {
            let Some(mut d) = net.pop_front() else { break };
            if d.dst == leg_addr.announce {
                d.dst = leg_addr.bind; // the NAT (identity without one)
            }
            if d.dst == shard {
                let routed = demux.route(d.src, d.dst, &d.bytes).unwrap();
                match routed {
                    Routed::ByUfrag(_) => by_ufrag += 1,
                    Routed::ByTuple(_) => by_tuple += 1,
                }
                let call = calls.iter_mut().find(|c| c.id == routed.leg()).unwrap();
                call.leg.handle_input(now, d.src, d.dst, &d.bytes).unwrap();
                drain_leg(call, now, &mut net);
            } else {
                let b = browsers.iter_mut().find(|b| b.addr == d.dst).unwrap();
                let receive = Receive {
                    proto: Protocol::Udp,
                    source: d.src,
                    destination: d.dst,
                    contents: d.bytes.as_slice().try_into().unwrap(),
                };
                b.rtc.handle_input(Input::Receive(clock.instant(now), receive)).unwrap();
                drain_browser(b, now, &mut net);
            }
        }
        for b in &mut browsers {
            b.rtc.handle_input(Input::Timeout(clock.instant(now))).unwrap();
            drain_browser(b, now, &mut net);
        }
        for c in &mut calls {
            c.leg.handle_timeout(now).unwrap();
            drain_leg(c, now, &mut net);
        }

        let all_up =
            browsers.iter().all(|b| b.connected) && calls.iter().all(|c| c.events.contains(&LegEvent::DtlsConnected));
        if all_up && written < PACKETS && now >= last_write + 20 * MS {
            last_write = now;
            written += 1;
            for (i, (b, c)) in browsers.iter_mut().zip(calls.iter_mut()).enumerate() {
                let to_leg = vec![0xB0 + i as u8, written as u8, 1, 2, 3];
                let mut api = b.rtc.direct_api();
                let tx = api.stream_tx_by_mid(b.mid, None).unwrap();
                let seq = b.next_seq;
                b.next_seq += 1;
                tx.write_rtp(RtpWrite::new(b.opus_pt.into(), seq.into(), 960 * seq as u32, clock.instant(now), to_leg));
                drain_browser(b, now, &mut net);

                let to_browser = [0xC0 + i as u8, written as u8, 9, 8];
                let mid = c.mid.unwrap();
                let out = OutRtp {
                    pt: b.opus_pt,
                    seq: c.next_seq,
                    timestamp: 960 * u32::from(written),
                    marker: written == 1,
                    payload: &to_browser,
                };
                c.next_seq = c.next_seq.wrapping_add(1);
                c.leg.write_rtp(now, mid, out).unwrap();
                drain_leg(c, now, &mut net);
            }
        }
        if written == PACKETS
            && calls.iter().all(|c| c.rtp_in.len() == PACKETS as usize)
            && browsers.iter().all(|b| b.rtp_in.len() == PACKETS as usize)
        {
            break;
        }
    }

    assert!(by_ufrag > 0 && by_tuple > 0, "both routes used: {by_ufrag} by ufrag, {by_tuple} by 5-tuple");
    assert_eq!(demux.tuple_count(), 2, "one learnt 5-tuple per browser");
    for (i, (b, c)) in browsers.iter().zip(&mut calls).enumerate() {
        assert!(b.connected, "browser {i} connected");
        assert!(c.events.contains(&LegEvent::IceConnected), "leg {i} ICE: {:?}", c.events);
        assert!(c.events.contains(&LegEvent::DtlsConnected), "leg {i} DTLS: {:?}", c.events);
        assert!(c.leg.is_connected());
        assert!(
            c.events.contains(&LegEvent::MediaAdded { mid: b.mid, kind: MediaKind::Audio }),
            "leg {i}: {:?}",
            c.events
        );

        // Browser -> leg: every packet, on this call only, decrypted, with its header fields.
        let got: Vec<_> = c.rtp_in.iter().map(|(mid, pt, seq, p)| (*mid, *pt, *seq, p.clone())).collect();
        let want: Vec<_> = (1..=PACKETS)
            .map(|n| (Some(b.mid), b.opus_pt, 1_000 + n - 1, vec![0xB0 + i as u8, n as u8, 1, 2, 3]))
            .collect();
        assert_eq!(got, want, "leg {i} RTP in");

        // Leg -> browser: every packet, across the 16-bit wrap, on the SSRC from the answer.
        let ssrc = c.leg.send_ssrc(c.mid.unwrap()).unwrap();
        let got = b.rtp_in.clone();
        let want: Vec<_> = (1..=PACKETS)
            .map(|n| (LEG_SEQ0.wrapping_add(n - 1), ssrc, b.opus_pt, vec![0xC0 + i as u8, n as u8, 9, 8]))
            .collect();
        assert_eq!(got, want, "browser {i} RTP in");
    }
}
