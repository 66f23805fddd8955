//! Per-packet cost of the media plane's video relay path (VP8 passthrough), without sockets.
//!
//! One shard's `Bridge` holds N connected calls, each with an audio and a VP8 video m-line
//! (the browser is a str0m `Rtc` with full ICE on virtual time; the SIP side answers VP8 with
//! another payload type). Only video flows: 1,100-byte payloads, one packet per 10 ms per call
//! (100 packets/s, ~0.9 Mbit/s), so the leg's timers and RTCP are amortised over the packets as
//! in a real call. Groups (N = 1 and 50):
//!
//! - `webrtc_video/browser_to_sip/N`: browser SRTP video datagram in -> plain RTP out of the
//!   call's video port (payload type mapped, SSRC/sequence/timestamp rewritten).
//! - `webrtc_video/sip_to_browser/N`: SIP video RTP in -> SRTP datagram out to the browser.
//!
//! Times are the measuring thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`). Under `cargo test
//! --benches` (no `--bench` argument) only 1 and 2 calls run, a few hundred packets each.

mod webrtc_common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use wavegate_mediaplane::relay::{PortSockets, Relay, RelayConfig};
use wavegate_mediaplane::rtp::{PacketClass, classify, write_rtp};
use wavegate_mediaplane::sdp::Sdp;
use wavegate_mediaplane::webrtc::Clock;
use wavegate_mediaplane::webrtc::bridge::{Bridge, BridgeIo};
use wavegate_mediaplane::webrtc::leg::{LegAddr, generate_certificate};
use wavegate_shared::protocol::OfferFlags;
use wavegate_shared::{CallId, LegTag, ShardId};
use webrtc_common::{alloc, thread_cpu_ns};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

const MS: u64 = 1_000_000;
/// Packet interval of every call's video.
const INTERVAL: u64 = 10 * MS;
const PAYLOAD: usize = 1_100;
/// The SIP side's VP8 payload type (the browser's is str0m's 96).
const SIP_PT: u8 = 100;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    BrowserToSip,
    SipToBrowser,
}

struct Browser {
    rtc: Rtc,
    addr: SocketAddr,
    vmid: Mid,
    vp8: u8,
    seq: u64,
    deadline: Instant,
    connected: bool,
    video_port: u16,
    sip_peer: SocketAddr,
    sip_seq: u16,
    phase: u64,
}

#[derive(Default)]
struct Wire {
    to_browser: Vec<(SocketAddr, Vec<u8>)>,
    video_to_sip: u64,
    srtp_to_browser: u64,
}

impl PortSockets for Wire {
    fn open(&mut self, _: u16) -> std::io::Result<()> {
        Ok(())
    }
    fn close(&mut self, _: u16) {}
}

impl BridgeIo for Wire {
    fn send_webrtc(&mut self, dst: SocketAddr, buf: &[u8]) {
        if classify(buf) == PacketClass::Rtp {
            self.srtp_to_browser += 1; // not decrypted by the browsers: their cost is not ours
        } else {
            self.to_browser.push((dst, buf.to_vec()));
        }
    }
    fn send_rtp(&mut self, _: u16, _: SocketAddr, buf: &[u8]) {
        if classify(buf) == PacketClass::Rtp {
            self.video_to_sip += 1;
        }
    }
}

struct Rig {
    clock: Clock,
    bridge: Bridge,
    relay: Relay,
    browsers: Vec<Browser>,
    shard: SocketAddr,
    wire: Wire,
    now: u64,
    to_shard: Vec<(SocketAddr, Vec<u8>)>,
    bridge_time: Duration,
}

fn addr(net: u8, i: usize, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, net, (i >> 8) as u8, (i & 0xff) as u8)), port)
}

impl Rig {
    fn new(calls: usize) -> Self {
        let clock = Clock::new(Instant::now());
        let shard: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let config = RelayConfig {
            shard: ShardId(0),
            ports: "20000-39999".parse().expect("range"),
            announce_ip: "127.0.0.1".parse().expect("ip"),
            media_timeout_secs: 0,
        };
        let mut bridge = Bridge::new(clock, LegAddr::direct(shard), generate_certificate().expect("cert"), shard.ip());
        bridge.set_keyframe_interval_ms(0);
        let mut rig = Self {
            clock,
            bridge,
            relay: Relay::new(config, 7),
            browsers: Vec::new(),
            shard,
            wire: Wire::default(),
            now: 0,
            to_shard: Vec::new(),
            bridge_time: Duration::ZERO,
        };
        for i in 0..calls {
            rig.add_call(i, calls);
        }
        // Bounded: 20 s of virtual time to connect.
        for _ in 0..20_000 {
            if rig.browsers.iter().all(|b| b.connected) {
                break;
            }
            rig.tick(None);
        }
        assert!(rig.browsers.iter().all(|b| b.connected), "calls did not connect");
        rig
    }

    fn add_call(&mut self, i: usize, calls: usize) {
        let a = addr(1, i, 5_000);
        let mut rtc = RtcConfig::new()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_pcmu(true, false)
            .enable_vp8(true)
            .build(self.clock.instant(self.now));
        rtc.add_local_candidate(Candidate::host(a, "udp").expect("candidate")).expect("candidate");
        let mut change = rtc.sdp_api();
        change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let vmid = change.add_media(MediaKind::Video, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().expect("offer");
        let vp8 = rtc.codec_config().find(|p| p.spec().codec == Codec::Vp8).map(|p| *p.pt()).expect("VP8");
        let call = CallId::new(&format!("video-{i}")).expect("id");
        let (now, sdp) = (self.now, offer.to_sdp_string());
        let from = LegTag::new("browser").expect("tag");
        let reply = self
            .bridge
            .offer(now, &call, &from, &sdp, &OfferFlags::default(), &mut self.relay, &mut self.wire)
            .expect("webrtc offer");
        let video_port = Sdp::parse(&reply.sip_offer).expect("sip offer").media[1].desc.port;
        let peer = addr(2, i, 6_000);
        let answer = format!(
            "v=0\r\no=sip 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio 5998 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
             m=video {port} RTP/AVP {SIP_PT}\r\na=rtpmap:{SIP_PT} VP8/90000\r\na=rtcp-fb:{SIP_PT} nack pli\r\n",
            ip = peer.ip(),
            port = peer.port()
        );
        self.bridge.answer(&call, &LegTag::new("sip").expect("tag"), &answer).expect("answer");
        let answer = SdpAnswer::from_sdp_string(&reply.browser_answer).expect("answer sdp");
        rtc.sdp_api().accept_answer(pending, answer).expect("accept");
        self.browsers.push(Browser {
            rtc,
            addr: a,
            vmid,
            vp8,
            seq: 1_000,
            deadline: self.clock.instant(self.now),
            connected: false,
            video_port,
            sip_peer: peer,
            sip_seq: 65_000,
            phase: (i as u64 * INTERVAL / calls.max(1) as u64) / MS * MS,
        });
    }

    fn relayed(&self) -> u64 {
        self.wire.video_to_sip + self.wire.srtp_to_browser
    }

    fn tick(&mut self, flow: Option<Flow>) {
        self.now += MS;
        let (now, at) = (self.now, self.clock.instant(self.now));
        let from_browser = flow == Some(Flow::BrowserToSip);
        for b in &mut self.browsers {
            let due = now % INTERVAL == b.phase;
            if from_browser && due && b.connected {
                b.seq += 1;
                let ts = (b.seq * 3000) as u32;
                if let Some(tx) = b.rtc.direct_api().stream_tx_by_mid(b.vmid, None) {
                    tx.write_rtp(RtpWrite::new(b.vp8.into(), b.seq.into(), ts, at, vec![0x90; PAYLOAD]).marker(true));
                }
            }
            if at >= b.deadline || (from_browser && due) {
                b.rtc.handle_input(Input::Timeout(at)).expect("browser timeout");
                drain(b, &mut self.to_shard);
            }
        }
        let sip_due = flow == Some(Flow::SipToBrowser) && self.browsers.iter().any(|b| now % INTERVAL == b.phase);
        if !self.to_shard.is_empty() || sip_due || now >= self.bridge.next_deadline() {
            let (bridge, wire, browsers) = (&mut self.bridge, &mut self.wire, &mut self.browsers);
            let mut buf = [0u8; 1_400];
            let t0 = thread_cpu_ns();
            alloc::in_bridge(|| {
                for (src, d) in &self.to_shard {
                    bridge.on_webrtc_datagram(now, *src, d, wire);
                }
                for b in browsers.iter_mut().filter(|b| sip_due && b.connected && now % INTERVAL == b.phase) {
                    b.sip_seq = b.sip_seq.wrapping_add(1);
                    let ts = u32::from(b.sip_seq).wrapping_mul(3000);
                    if let Some(n) = write_rtp(&mut buf, SIP_PT, b.sip_seq, ts, 0x7777, &[0x50; PAYLOAD]) {
                        bridge.on_sip_packet(now, b.video_port, b.sip_peer, &mut buf[..n], wire);
                    }
                }
                bridge.on_timeout(now, wire);
            });
            self.bridge_time += Duration::from_nanos(thread_cpu_ns().saturating_sub(t0));
        }
        self.to_shard.clear();
        for (dst, d) in self.wire.to_browser.drain(..) {
            let Some(b) = self.browsers.iter_mut().find(|b| b.addr == dst) else { continue };
            let Ok(contents) = d.as_slice().try_into() else { continue };
            let r = Receive { proto: Protocol::Udp, source: self.shard, destination: dst, contents };
            if b.rtc.handle_input(Input::Receive(at, r)).is_ok() {
                drain(b, &mut self.to_shard);
            }
        }
    }

    /// Runs `flow` until `packets` more video packets were relayed: (bridge CPU time, packets).
    fn run(&mut self, flow: Flow, packets: u64) -> (Duration, u64) {
        let (t0, p0) = (self.bridge_time, self.relayed());
        let per_tick = (self.browsers.len() as u64 * MS).div_ceil(INTERVAL).max(1);
        for _ in 0..4 * (packets / per_tick + INTERVAL / MS) + 1_000 {
            if self.relayed() - p0 >= packets {
                break;
            }
            self.tick(Some(flow));
        }
        (self.bridge_time - t0, self.relayed() - p0)
    }
}

fn drain(b: &mut Browser, to_shard: &mut Vec<(SocketAddr, Vec<u8>)>) {
    for _ in 0..10_000 {
        match b.rtc.poll_output() {
            Ok(Output::Timeout(t)) => {
                b.deadline = t;
                return;
            }
            Ok(Output::Transmit(t)) => to_shard.push((b.addr, t.contents.into())),
            Ok(Output::Event(Event::Connected)) => b.connected = true,
            Ok(Output::Event(_)) => {}
            Err(e) => panic!("browser failed: {e}"),
        }
    }
    panic!("browser poll did not reach a timeout");
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("webrtc_video");
    group.throughput(Throughput::Elements(1));
    let full = std::env::args().any(|a| a == "--bench");
    for &calls in if full { &[1usize, 50][..] } else { &[1, 2][..] } {
        for (name, flow) in [("browser_to_sip", Flow::BrowserToSip), ("sip_to_browser", Flow::SipToBrowser)] {
            let mut rig = Rig::new(calls);
            rig.run(flow, 10 * calls as u64);
            let (a0, p0) = (alloc::bridge_allocs(), rig.relayed());
            let (time, packets) = rig.run(flow, if full { 20_000 } else { 200 });
            assert!(packets > 0, "{name}: nothing relayed");
            eprintln!(
                "webrtc_video/{name}/{calls}: {:.2} allocations/packet by the bridge; {:.0} ns/packet (pre-run)",
                (alloc::bridge_allocs() - a0) as f64 / (rig.relayed() - p0).max(1) as f64,
                time.as_nanos() as f64 / packets as f64,
            );
            group.bench_function(format!("{name}/{calls}"), |b| {
                b.iter_custom(|iters| {
                    let (time, packets) = rig.run(flow, iters);
                    time.mul_f64(iters as f64 / packets.max(1) as f64)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
