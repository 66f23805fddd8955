//! Shared by the WebRTC benches: one shard's [`Bridge`] holding N WebRTC <-> RTP calls, each
//! browser a full-ICE str0m `Rtc` (DTLS client, PCMU), on virtual time over an in-memory
//! network. Only the bridge's work is timed and attributed ([`alloc::in_bridge`]); the
//! browsers' encryption and decryption is the harness's.
//!
//! Invariants: every loop is bounded (set-up gives up after `SETUP_BUDGET` of virtual time);
//! datagrams the bridge sends are delivered back to the browsers (STUN answers, DTLS, RTCP), so
//! ICE consent and DTLS stay healthy for as long as the bench runs. SRTP towards the browsers is
//! counted and dropped unless the rig was asked to deliver it (the memory bench does, so the
//! browsers' receive reports flow back to the legs as in a real call).

#![allow(dead_code)]

pub mod alloc;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

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

pub const MS: u64 = 1_000_000;
/// Virtual time one simulation tick advances.
pub const TICK: u64 = MS;
/// Packet interval of every flow (20 ms ptime, 50 packets/s).
pub const PTIME: u64 = 20 * MS;
/// G.711 20 ms payload.
pub const PAYLOAD: usize = 160;
/// Virtual time allowed for all calls to connect.
const SETUP_BUDGET: u64 = 20_000 * MS;

/// Which side sends RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Browsers send SRTP; the bridge decrypts and sends plain RTP to the SIP side.
    BrowserToSip,
    /// SIP peers send plain RTP; the bridge encrypts and sends SRTP to the browsers.
    SipToBrowser,
    /// Both (a real call).
    Both,
}

struct Browser {
    rtc: Rtc,
    addr: SocketAddr,
    mid: Mid,
    pt: u8,
    seq: u64,
    deadline: Instant,
    connected: bool,
    /// The bridge's RTP port for this call and the SIP peer's address.
    sip_port: u16,
    sip_peer: SocketAddr,
    sip_seq: u16,
    /// Phase of this call's 20 ms packet clock.
    phase: u64,
}

/// The driver's side of the bridge: counts and queues what it sends.
#[derive(Default)]
pub struct Wire {
    /// Datagrams for browsers (STUN, DTLS, SRTCP; SRTP only when `deliver_srtp`).
    to_browser: Vec<(SocketAddr, Vec<u8>)>,
    deliver_srtp: bool,
    /// Plain RTP packets sent to SIP peers.
    pub rtp_to_sip: u64,
    /// SRTP packets sent to browsers.
    pub srtp_to_browser: u64,
    /// Other datagrams sent to browsers.
    pub other_to_browser: u64,
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
            self.srtp_to_browser += 1;
            if !self.deliver_srtp {
                return;
            }
        } else {
            self.other_to_browser += 1;
        }
        self.to_browser.push((dst, buf.to_vec()));
    }
    fn send_rtp(&mut self, _: u16, _: SocketAddr, _: &[u8]) {
        self.rtp_to_sip += 1;
    }
}

/// N calls in one bridge, and their browsers.
pub struct Rig {
    clock: Clock,
    bridge: Bridge,
    relay: Relay,
    browsers: Vec<Browser>,
    shard: SocketAddr,
    pub wire: Wire,
    /// Virtual shard time.
    pub now: u64,
    to_shard: Vec<(SocketAddr, Vec<u8>)>,
    /// Thread CPU time spent inside the bridge's packet inputs (`on_webrtc_datagram`,
    /// `on_sip_packet`, which drain the legs' outputs).
    pub input_time: Duration,
    /// Thread CPU time spent in the bridge's timers (`on_timeout`: RTCP, ICE consent).
    pub timer_time: Duration,
}

fn sip_answer(peer: SocketAddr) -> String {
    format!(
        "v=0\r\no=sip 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
        ip = peer.ip(),
        port = peer.port()
    )
}

fn browser_addr(i: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 1, (i >> 8) as u8, (i & 0xff) as u8)),
        5_000,
    )
}

fn sip_addr(i: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 2, (i >> 8) as u8, (i & 0xff) as u8)),
        6_000,
    )
}

impl Rig {
    /// `calls` connected calls (ICE + DTLS up on every one). `deliver_srtp`: whether SRTP the
    /// bridge sends is decrypted by the browsers.
    pub fn new(calls: usize, deliver_srtp: bool) -> Self {
        let base = Instant::now();
        let clock = Clock::new(base);
        let shard: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let cert = generate_certificate().expect("certificate");
        let config = RelayConfig {
            shard: ShardId(0),
            ports: "20000-39999".parse().expect("range"),
            announce_ip: "127.0.0.1".parse().expect("ip"),
            media_timeout_secs: 0,
        };
        let mut rig = Self {
            clock,
            bridge: Bridge::new(clock, LegAddr::direct(shard), cert, shard.ip()),
            relay: Relay::new(config, 7),
            browsers: Vec::with_capacity(calls),
            shard,
            wire: Wire {
                deliver_srtp,
                ..Wire::default()
            },
            now: 0,
            to_shard: Vec::new(),
            input_time: Duration::ZERO,
            timer_time: Duration::ZERO,
        };
        for i in 0..calls {
            rig.add_call(i, calls);
        }
        let start = rig.now;
        while rig.browsers.iter().any(|b| !b.connected) {
            assert!(rig.now - start < SETUP_BUDGET, "calls did not connect");
            rig.tick(None);
        }
        rig
    }

    /// One call: the browser offers, the bridge answers and offers RTP, the SIP peer answers.
    pub fn add_call(&mut self, i: usize, calls: usize) {
        let addr = browser_addr(i);
        let mut rtc = RtcConfig::new()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_pcmu(true, false)
            .build(self.clock.instant(self.now));
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"))
            .expect("candidate");
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().expect("offer");
        let pt = rtc
            .codec_config()
            .find(|p| p.spec().codec == Codec::PCMU)
            .map(|p| *p.pt())
            .expect("PCMU");
        let call = CallId::new(&format!("bench-{i}")).expect("id");
        let from = LegTag::new("browser").expect("tag");
        let (now, offer_sdp) = (self.now, offer.to_sdp_string());
        let reply = alloc::in_bridge(|| {
            self.bridge.offer(
                now,
                &call,
                &from,
                &offer_sdp,
                &OfferFlags::default(),
                &mut self.relay,
                &mut self.wire,
            )
        })
        .expect("webrtc offer");
        let sip_port = Sdp::parse(&reply.sip_offer).expect("sip offer").media[0]
            .desc
            .port;
        let peer = sip_addr(i);
        let to = LegTag::new("sip").expect("tag");
        alloc::in_bridge(|| self.bridge.answer(&call, &to, &sip_answer(peer))).expect("answer");
        rtc.sdp_api()
            .accept_answer(
                pending,
                SdpAnswer::from_sdp_string(&reply.browser_answer).expect("answer sdp"),
            )
            .expect("accept answer");
        self.browsers.push(Browser {
            rtc,
            addr,
            mid,
            pt,
            seq: 1_000,
            deadline: self.clock.instant(self.now),
            connected: false,
            sip_port,
            sip_peer: peer,
            sip_seq: 65_000,
            phase: (i as u64 * PTIME / calls.max(1) as u64) / TICK * TICK,
        });
    }

    /// Calls held.
    pub fn calls(&self) -> usize {
        self.browsers.len()
    }

    /// Relayed RTP packets so far (both directions).
    pub fn relayed(&self) -> u64 {
        self.wire.rtp_to_sip + self.wire.srtp_to_browser
    }

    /// Advances one tick: browsers' timers and due packets, the bridge's inputs and timers
    /// (timed), then the bridge's output to the browsers.
    pub fn tick(&mut self, flow: Option<Flow>) {
        self.now += TICK;
        let now = self.now;
        let at = self.clock.instant(now);
        let send_browser = matches!(flow, Some(Flow::BrowserToSip | Flow::Both));
        let send_sip = matches!(flow, Some(Flow::SipToBrowser | Flow::Both));
        for b in &mut self.browsers {
            let due = now % PTIME == b.phase;
            if send_browser && due && b.connected {
                b.seq += 1;
                let payload = vec![0xd5; PAYLOAD];
                let mut api = b.rtc.direct_api();
                if let Some(tx) = api.stream_tx_by_mid(b.mid, None) {
                    let write = RtpWrite::new(b.pt.into(), b.seq.into(), (b.seq * 160) as u32, at, payload);
                    tx.write_rtp(write);
                }
            }
            if at >= b.deadline || (send_browser && due) {
                b.rtc.handle_input(Input::Timeout(at)).expect("browser timeout");
                drain_browser(b, &mut self.to_shard);
            }
        }
        let mut sip_buf = [0u8; 256];
        let sip_due = send_sip && self.browsers.iter().any(|b| now % PTIME == b.phase);
        // Idle ticks are not timed: the shard's loop would not wake up for them (its wait ends
        // at the bridge's deadline), and reading the clock would cost more than the work.
        if !self.to_shard.is_empty() || sip_due || now >= self.bridge.next_deadline() {
            let (bridge, wire) = (&mut self.bridge, &mut self.wire);
            let (to_shard, browsers) = (&self.to_shard, &mut self.browsers);
            let t0 = thread_cpu_ns();
            alloc::in_bridge(|| {
                for (src, d) in to_shard {
                    bridge.on_webrtc_datagram(now, *src, d, wire);
                }
                if sip_due {
                    for b in browsers.iter_mut() {
                        if now % PTIME == b.phase && b.connected {
                            b.sip_seq = b.sip_seq.wrapping_add(1);
                            let ts = u32::from(b.sip_seq).wrapping_mul(160);
                            let Some(n) =
                                write_rtp(&mut sip_buf, 0, b.sip_seq, ts, 0x5151, &[0xd5; PAYLOAD])
                            else {
                                continue;
                            };
                            bridge.on_sip_packet(now, b.sip_port, b.sip_peer, &mut sip_buf[..n], wire);
                        }
                    }
                }
            });
            let t1 = thread_cpu_ns();
            alloc::in_bridge(|| bridge.on_timeout(now, wire));
            let t2 = thread_cpu_ns();
            self.input_time += Duration::from_nanos(t1.saturating_sub(t0));
            self.timer_time += Duration::from_nanos(t2.saturating_sub(t1));
        }
        self.to_shard.clear();
        let shard = self.shard;
        for (dst, d) in self.wire.to_browser.drain(..) {
            let Some(b) = self.browsers.iter_mut().find(|b| b.addr == dst) else {
                continue;
            };
            let Ok(contents) = d.as_slice().try_into() else {
                continue;
            };
            let receive = Receive {
                proto: Protocol::Udp,
                source: shard,
                destination: dst,
                contents,
            };
            if b.rtc.handle_input(Input::Receive(at, receive)).is_ok() {
                drain_browser(b, &mut self.to_shard);
            }
        }
    }

    /// Runs `flow` until at least `packets` more RTP packets were relayed; returns the time
    /// spent inside the bridge meanwhile (its inputs, timers and outputs, amortised over the
    /// packets) and the packets relayed.
    pub fn run(&mut self, flow: Flow, packets: u64) -> (Duration, u64) {
        let (t0, p0) = (self.bridge_time(), self.relayed());
        // Bounded: every call sends every PTIME, so this many ticks carry `packets`.
        let per_tick = (self.calls() as u64 * TICK).div_ceil(PTIME).max(1);
        let max_ticks = 4 * (packets / per_tick + PTIME / TICK) + 1_000;
        for _ in 0..max_ticks {
            if self.relayed() - p0 >= packets {
                break;
            }
            self.tick(Some(flow));
        }
        (self.bridge_time() - t0, self.relayed() - p0)
    }

    /// Thread CPU time spent inside the bridge.
    pub fn bridge_time(&self) -> Duration {
        self.input_time + self.timer_time
    }
}

/// CPU time of the calling thread, ns: what the bridge costs regardless of other load on a
/// shared machine (wall time would count the time other processes ran).
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn drain_browser(b: &mut Browser, to_shard: &mut Vec<(SocketAddr, Vec<u8>)>) {
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
