//! What the process tests of the WebRTC bridge share: spawning the real `wavegate-mediaplane`
//! binary with a WebRTC port and waiting until it answers, a str0m `Rtc` playing the browser on
//! a loopback UDP socket (its offer, the pump that drains it and feeds it datagrams), and the
//! SIP side's answer SDP. Each test keeps its own RTP port range, media loop and checks.
//!
//! Every wait is bounded: the start-up by 50 pings 100 ms apart, a pump step by the socket's
//! read timeout (set by the test).

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use wavegate_shared::protocol::{Answer, OfferFlags, Ping, WebRtcOffer};
use wavegate_shared::{CallId, LegTag, ShardId};
use wavegate_shared::region::Geometry;
use wavegate_shared::spawn::{MediaPlane, MediaPlaneCommand, spawn_media_plane};

/// A UDP port free right now (the media plane binds it a moment later).
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Spawns `program` (one shard, unpinned, on 127.0.0.1) with RTP ports `rtp_ports`, WebRTC on a
/// free port and `extra` arguments; returns once it answers `Ping`, with the WebRTC port.
pub async fn start_media_plane(program: &str, rtp_ports: &str, extra: &[&str]) -> (MediaPlane, u16) {
    let webrtc_port = free_port();
    let port = webrtc_port.to_string();
    let base = ["--rtp-ports", rtp_ports, "--no-pin", "--bind-ip", "127.0.0.1", "--webrtc-port-base", &port];
    let mp = spawn_media_plane(&MediaPlaneCommand {
        program: program.into(),
        args: base.iter().chain(extra).map(Into::into).collect(),
        geometry: Geometry::with_shards(1),
        request_timeout: Duration::from_secs(5),
    })
    .expect("spawn");
    let mut up = false;
    for _ in 0..50 {
        if mp.client.request(ShardId(0), &Ping).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "media plane answers Ping");
    (mp, webrtc_port)
}

/// The `WebRtcOffer` of a browser tagged "browser" on call `call` with `sdp`.
pub fn webrtc_offer(call: &str, sdp: String) -> WebRtcOffer {
    let (call, from_tag) = (CallId::new(call).unwrap(), LegTag::new("browser").unwrap());
    WebRtcOffer { call, from_tag, sdp, flags: OfferFlags::default() }
}

/// The SIP side's `Answer` (tag "sip") to the offer of [`webrtc_offer`], with `sdp`.
pub fn sip_answer(call: &CallId, sdp: String) -> Answer {
    let (from_tag, to_tag) = (LegTag::new("browser").unwrap(), LegTag::new("sip").unwrap());
    Answer { call: call.clone(), from_tag, to_tag, sdp }
}

/// A SIP peer's answer: PCMU only, on `port` of 127.0.0.1.
pub fn sip_answer_pcmu(port: u16) -> String {
    format!(
        "v=0\r\no=sip 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
}

/// A str0m `Rtc` in RTP mode playing the browser (full ICE, DTLS client) on its own loopback
/// socket, which is its only host candidate.
pub struct Browser {
    pub rtc: Rtc,
    pub sock: UdpSocket,
    pub addr: SocketAddr,
}

impl Browser {
    /// A browser with `config` (RTP mode is set here) built at `now`.
    pub fn new(config: RtcConfig, now: Instant) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let mut rtc = config.set_rtp_mode(true).build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap()).unwrap();
        Self { rtc, sock, addr }
    }

    /// Its offer: an audio m-line, and with `video` a video m-line; the mids and the pending
    /// offer for [`Browser::accept_answer`].
    pub fn offer(&mut self, video: bool) -> (String, Mid, Option<Mid>, SdpPendingOffer) {
        let mut change = self.rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let vmid = video.then(|| change.add_media(MediaKind::Video, Direction::SendRecv, None, None, None));
        let (offer, pending) = change.apply().unwrap();
        (offer.to_sdp_string(), mid, vmid, pending)
    }

    /// Applies the media plane's answer to [`Browser::offer`].
    pub fn accept_answer(&mut self, pending: SdpPendingOffer, answer: &str) {
        self.rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(answer).unwrap()).unwrap();
    }

    /// The payload type the negotiation gave `codec`.
    pub fn pt(&self, codec: Codec) -> u8 {
        self.rtc.codec_config().find(|p| p.spec().codec == codec).map(|p| *p.pt()).unwrap()
    }

    /// Sends everything str0m has to send and hands each event to `on_event`, until str0m
    /// asks for a timeout.
    pub fn drain(&mut self, mut on_event: impl FnMut(Event)) {
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(_) => break,
                Output::Transmit(t) => {
                    self.sock.send_to(&t.contents, t.destination).unwrap();
                }
                Output::Event(e) => on_event(e),
            }
        }
    }

    /// Feeds one datagram from the socket to str0m (waiting at most the socket's read timeout),
    /// or a timeout when none came; returns whether a datagram came.
    pub fn receive(&mut self, buf: &mut [u8]) -> bool {
        if let Ok((n, src)) = self.sock.recv_from(buf) {
            let contents = buf[..n].try_into().unwrap();
            let r = Receive { proto: Protocol::Udp, source: src, destination: self.addr, contents };
            self.rtc.handle_input(Input::Receive(Instant::now(), r)).unwrap();
            true
        } else {
            self.rtc.handle_input(Input::Timeout(Instant::now())).unwrap();
            false
        }
    }

    /// One turn of a media loop: [`Browser::drain`], then [`Browser::receive`].
    pub fn step(&mut self, buf: &mut [u8], on_event: impl FnMut(Event)) {
        self.drain(on_event);
        self.receive(buf);
    }

    /// Hangs up (RTCP BYE, DTLS close_notify) and sends what that produces (bounded).
    pub fn close(&mut self) {
        self.rtc.close().unwrap();
        for _ in 0..100 {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    self.sock.send_to(&t.contents, t.destination).unwrap();
                }
                Ok(Output::Event(_)) => {}
                Ok(Output::Timeout(_)) | Err(_) => break,
            }
        }
    }
}
