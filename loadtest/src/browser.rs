//! A simulated browser, shared by the `webrtc` and `call` scenarios: a str0m `Rtc` (full ICE,
//! DTLS client, SRTP) on its own non-blocking loopback UDP socket, offering one audio line in
//! one codec, and sending probe packets ([`wire::Probe`]) as RTP payloads.
//!
//! A browser does no I/O by itself beyond its socket; the scenario's thread owns it and calls
//! [`Browser::receive`], [`Browser::send_probe`] and [`Browser::tick`], and gets what happened
//! as [`BrowserEvent`]s through a callback, so each scenario keeps its own bookkeeping.
//! Every drain is bounded (str0m ends each with a timeout; we also cap the count).
//!
//! A browser may also answer an offer (incoming calls, [`Browser::answering`]) and, for calls
//! the gateway transcodes, send real Opus from a shared [`MarkerLoop`] and measure what comes
//! back with its own [`AudioRx`] instead of probes ([`Browser::measure_audio`]).
//! A `vp8` browser ([`Browser::offering`] with a [`Vp8Config`]) also offers a bundled VP8
//! video line, sends synthetic VP8 ([`Browser::send_video`]) and answers PLI/FIR with a
//! keyframe; its figures are kept in its [`VideoLine`] (video.rs).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use str0m::change::SdpPendingOffer;
use str0m::config::DtlsCert;
use str0m::format::Codec;
use str0m::media::{Direction as MediaDirection, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

use crate::relay::RunError;
use crate::sipp_audio::{AudioRx, MarkerLoop};
use crate::video::{VideoLine, VideoTx};
use crate::vp8::Vp8Config;
use crate::wire::{self, Probe};

/// Socket buffers of each browser: they ride out a stall of the load generator's threads.
pub const BROWSER_SOCKET_BUF: usize = 1 << 20;

/// The one audio codec a browser offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioCodec {
    /// G.711 µ-law, 8 kHz, 160 bytes per 20 ms.
    Pcmu,
    /// Opus, 48 kHz RTP clock.
    Opus,
}

impl AudioCodec {
    /// RTP timestamp units per 20 ms packet.
    pub fn ticks_per_packet(self) -> u32 {
        match self {
            AudioCodec::Pcmu => 160,
            AudioCodec::Opus => 960,
        }
    }

    fn str0m(self) -> Codec {
        match self {
            AudioCodec::Pcmu => Codec::PCMU,
            AudioCodec::Opus => Codec::Opus,
        }
    }
}

/// What a browser reports while being driven.
#[derive(Debug, Clone, Copy)]
pub enum BrowserEvent {
    /// ICE and DTLS completed (once).
    Connected,
    /// A probe came back; `now_ns` is when it was handed to us.
    Probe { rx: wire::Received, now_ns: u64 },
    /// RTP that is not one of our probes.
    NotProbe,
    /// A send or str0m error.
    Error,
}

/// One simulated browser.
pub struct Browser {
    /// Index of the call, carried in the probes.
    pub index: u32,
    rtc: Rtc,
    /// Its UDP socket (non-blocking).
    pub sock: UdpSocket,
    addr: SocketAddr,
    mid: Mid,
    pt: u8,
    codec: AudioCodec,
    deadline: Instant,
    /// ICE + DTLS completed.
    pub connected: bool,
    /// Next RTP packet's probe sequence number.
    pub seq: u32,
    /// When the next packet is due (0: not scheduled yet).
    pub next_send_ns: u64,
    /// Set for transcoded calls: returning audio is decoded and the marker timed.
    pub audio: Option<Box<AudioRx>>,
    /// The gateway's re-offer capped our Opus at this rate (`maxplaybackrate`, 8 or 16 kHz):
    /// the audio loop is then sent narrowband, as a browser would.
    pub opus_cap: Option<u32>,
    /// Set for `vp8` browsers: the video line, its sender and figures.
    pub video: Option<Box<VideoLine>>,
}

fn io_err(e: impl std::fmt::Display) -> RunError {
    RunError::Io(std::io::Error::other(e.to_string()))
}

impl Browser {
    /// A browser with its socket and offer, not yet answered.
    pub fn new(
        index: u32,
        cert: &DtlsCert,
        start: Instant,
        codec: AudioCodec,
    ) -> Result<(Browser, String, SdpPendingOffer), RunError> {
        Browser::new_on(Ipv4Addr::LOCALHOST, index, cert, start, codec)
    }

    /// A browser whose socket (and so its one host candidate) is on `ip`: `versus-janus` puts
    /// its browsers beside Janus on a non-loopback interface of a private network namespace,
    /// because Janus gathers on no loopback interface (see `janus_versus`).
    pub fn new_on(
        ip: Ipv4Addr,
        index: u32,
        cert: &DtlsCert,
        start: Instant,
        codec: AudioCodec,
    ) -> Result<(Browser, String, SdpPendingOffer), RunError> {
        Browser::offering(ip, index, cert, start, codec, None)
    }

    /// A browser offering `codec` audio and, with `video`, a VP8 video line (BUNDLE, as
    /// Chrome's camera calls do) on `ip`.
    pub fn offering(
        ip: Ipv4Addr,
        index: u32,
        cert: &DtlsCert,
        start: Instant,
        codec: AudioCodec,
        video: Option<Vp8Config>,
    ) -> Result<(Browser, String, SdpPendingOffer), RunError> {
        let sock = if ip == Ipv4Addr::LOCALHOST {
            crate::relay::udp_socket(BROWSER_SOCKET_BUF)?
        } else {
            socket_on(ip)?
        };
        sock.set_nonblocking(true)?;
        let addr = sock.local_addr()?;
        let config = RtcConfig::new()
            .set_rtp_mode(true)
            .set_dtls_cert(cert.clone())
            .clear_codecs();
        let config = match codec {
            AudioCodec::Pcmu => config.enable_pcmu(true, false),
            AudioCodec::Opus => config.enable_opus(true, false),
        };
        let config = config.enable_vp8(video.is_some());
        let mut rtc = config.build(start);
        let candidate = Candidate::host(addr, "udp").map_err(io_err)?;
        rtc.add_local_candidate(candidate)
            .ok_or_else(|| io_err("candidate refused"))?;
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, MediaDirection::SendRecv, None, None, None);
        let video_mid = video.map(|_| {
            change.add_media(MediaKind::Video, MediaDirection::SendRecv, None, None, None)
        });
        let (offer, pending) = change.apply().unwrap_or_else(|| {
            unreachable!("a change that adds a media line always yields an offer")
        });
        let pt = rtc
            .codec_config()
            .find(|p| p.spec().codec == codec.str0m())
            .map(|p| *p.pt())
            .ok_or_else(|| io_err(format!("no {codec:?} in the browser's codecs")))?;
        let video = match (video, video_mid) {
            (Some(cfg), Some(mid)) => {
                let pt = rtc
                    .codec_config()
                    .find(|p| p.spec().codec == Codec::Vp8)
                    .map(|p| *p.pt())
                    .ok_or_else(|| io_err("no VP8 in the browser's codecs"))?;
                let tx = VideoTx::new(index, cfg).map_err(io_err)?;
                Some(Box::new(VideoLine { mid, pt, tx }))
            }
            _ => None,
        };
        let browser = Browser {
            index,
            rtc,
            sock,
            addr,
            mid,
            pt,
            codec,
            deadline: start,
            connected: false,
            seq: 0,
            next_send_ns: 0,
            audio: None,
            opus_cap: None,
            video,
        };
        Ok((browser, offer.to_sdp_string(), pending))
    }

    /// A browser answering the server's `offer` (an incoming call) with `codec` only; returns
    /// it and its answer. Fails when the offer has no audio line carrying `codec`.
    pub fn answering(
        index: u32,
        cert: &DtlsCert,
        start: Instant,
        codec: AudioCodec,
        offer: &str,
    ) -> Result<(Browser, String), RunError> {
        let (mid, pt) = offered_audio(offer, codec)
            .ok_or_else(|| io_err(format!("the offer has no {codec:?} audio line")))?;
        let sock = crate::relay::udp_socket(BROWSER_SOCKET_BUF)?;
        sock.set_nonblocking(true)?;
        let addr = sock.local_addr()?;
        let config = RtcConfig::new()
            .set_rtp_mode(true)
            .set_dtls_cert(cert.clone())
            .clear_codecs();
        let config = match codec {
            AudioCodec::Pcmu => config.enable_pcmu(true, false),
            AudioCodec::Opus => config.enable_opus(true, false),
        };
        let mut rtc = config.build(start);
        let candidate = Candidate::host(addr, "udp").map_err(io_err)?;
        rtc.add_local_candidate(candidate)
            .ok_or_else(|| io_err("candidate refused"))?;
        let offer = str0m::change::SdpOffer::from_sdp_string(offer).map_err(io_err)?;
        let answer = rtc.sdp_api().accept_offer(offer).map_err(io_err)?;
        let browser = Browser {
            index,
            rtc,
            sock,
            addr,
            mid: Mid::from(mid.as_str()),
            pt,
            codec,
            deadline: start,
            connected: false,
            seq: 0,
            next_send_ns: 0,
            audio: None,
            opus_cap: None,
            video: None,
        };
        Ok((browser, answer.to_sdp_string()))
    }

    /// From now on returning audio is decoded and timed (a transcoded call).
    pub fn measure_audio(&mut self) -> Result<(), RunError> {
        let clock = match self.codec {
            AudioCodec::Pcmu => 8_000,
            AudioCodec::Opus => 48_000,
        };
        self.audio = Some(Box::new(AudioRx::new(clock).map_err(io_err)?));
        Ok(())
    }

    /// Applies the answer to our offer.
    pub fn accept_answer(&mut self, pending: SdpPendingOffer, sdp: &str) -> Result<(), RunError> {
        let answer = str0m::change::SdpAnswer::from_sdp_string(sdp).map_err(io_err)?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(io_err)
    }

    /// Answers the gateway's re-offer on a call in progress (`reoffer` on the WebSocket API:
    /// same media, Opus possibly capped with `maxplaybackrate`); returns our answer. A cap of
    /// 16 kHz or less switches the audio loop to narrowband.
    pub fn accept_reoffer(&mut self, sdp: &str) -> Result<String, RunError> {
        let offer = str0m::change::SdpOffer::from_sdp_string(sdp).map_err(io_err)?;
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(io_err)?;
        if self.codec == AudioCodec::Opus {
            let pt = self.pt;
            let cap = sdp.lines().find_map(|l| {
                let params = l.strip_prefix(&format!("a=fmtp:{pt} ") as &str)?;
                params.split(';').find_map(|p| {
                    p.trim()
                        .strip_prefix("maxplaybackrate=")?
                        .parse::<u32>()
                        .ok()
                })
            });
            self.opus_cap = cap.filter(|r| *r <= 16_000);
        }
        Ok(answer.to_sdp_string())
    }

    /// The socket's fd, for an epoll set.
    pub fn fd(&self) -> libc::c_int {
        self.sock.as_raw_fd()
    }

    /// Reads up to 64 datagrams (so one busy socket cannot starve the others), feeding each to
    /// str0m and draining its outputs. Returns whether anything was read.
    pub fn receive(
        &mut self,
        buf: &mut [u8],
        scratch: &mut Vec<u8>,
        on: &mut impl FnMut(&Browser, BrowserEvent),
    ) -> bool {
        let mut any = false;
        for _ in 0..64 {
            let Ok((len, src)) = self.sock.recv_from(buf) else {
                break;
            };
            any = true;
            let Ok(contents) = buf[..len].try_into() else {
                continue;
            };
            let receive = Receive {
                proto: Protocol::Udp,
                source: src,
                destination: self.addr,
                contents,
            };
            if self
                .rtc
                .handle_input(Input::Receive(Instant::now(), receive))
                .is_err()
            {
                on(self, BrowserEvent::Error);
            }
            self.drain(scratch, on);
        }
        any
    }

    /// Sends one probe packet of `payload` bytes (at least the probe) and drains.
    /// Returns whether str0m had a stream to send it on.
    pub fn send_probe(
        &mut self,
        probe: &Probe,
        payload: usize,
        packet: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        on: &mut impl FnMut(&Browser, BrowserEvent),
    ) -> bool {
        wire::encode_packet(probe, payload, packet);
        let body = packet[wire::RTP_HEADER..].to_vec();
        self.send_rtp(probe.seq, body, scratch, on)
    }

    /// Sends frame `self.seq` of the Opus loop (telling the audio receiver when it is the
    /// marker) and drains. Returns whether str0m had a stream to send it on.
    pub fn send_audio(
        &mut self,
        frames: &MarkerLoop,
        scratch: &mut Vec<u8>,
        on: &mut impl FnMut(&Browser, BrowserEvent),
    ) -> bool {
        let (payload, marker) = frames.frame(self.seq, self.opus_cap.is_some());
        let body = payload.to_vec();
        let sent = self.send_rtp(self.seq, body, scratch, on);
        if sent
            && marker
            && let Some(a) = self.audio.as_mut()
        {
            a.marker_sent(wavegate_shared::clock::monotonic_ns());
        }
        sent
    }

    fn send_rtp(
        &mut self,
        n: u32,
        body: Vec<u8>,
        scratch: &mut Vec<u8>,
        on: &mut impl FnMut(&Browser, BrowserEvent),
    ) -> bool {
        let seq = u64::from(n) + 1_000;
        let ts = (seq as u32).wrapping_mul(self.codec.ticks_per_packet());
        let now = Instant::now();
        let mut api = self.rtc.direct_api();
        let sent = if let Some(tx) = api.stream_tx_by_mid(self.mid, None) {
            tx.write_rtp(RtpWrite::new(self.pt.into(), seq.into(), ts, now, body));
            true
        } else {
            false
        };
        self.drain(scratch, on);
        sent
    }

    /// Sends the packets of a video frame when one is due at `now_ns` and drains. Returns how
    /// many packets str0m had a stream to send on (0: no video, nothing due, or no stream).
    pub fn send_video(
        &mut self,
        now_ns: u64,
        packet: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        on: &mut impl FnMut(&Browser, BrowserEvent),
    ) -> u32 {
        let Some(v) = self.video.as_mut() else {
            return 0;
        };
        let Some(plan) = v.tx.due(now_ns) else {
            return 0;
        };
        let now = Instant::now();
        let mut sent = 0;
        for k in 0..plan.packets {
            let (seq, ts, marker) = v.tx.packet(&plan, k, now_ns, scratch, packet);
            let mut api = self.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(v.mid, None) else {
                break;
            };
            let body: &[u8] = packet;
            tx.write_rtp(RtpWrite::new(v.pt.into(), seq.into(), ts, now, body).marker(marker));
            v.tx.sent();
            sent += 1;
        }
        self.drain(scratch, on);
        sent
    }

    /// Feeds str0m its timeout when due. Returns whether it was due.
    pub fn tick(
        &mut self,
        now: Instant,
        scratch: &mut Vec<u8>,
        on: &mut impl FnMut(&Browser, BrowserEvent),
    ) -> bool {
        if now < self.deadline {
            return false;
        }
        if self.rtc.handle_input(Input::Timeout(now)).is_err() {
            on(self, BrowserEvent::Error);
        }
        self.drain(scratch, on);
        true
    }

    /// Drains outputs: transmits go out, RTP is decoded as a probe.
    fn drain(&mut self, scratch: &mut Vec<u8>, on: &mut impl FnMut(&Browser, BrowserEvent)) {
        for _ in 0..10_000 {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    self.deadline = at;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    if self.sock.send_to(&t.contents, t.destination).is_err() {
                        on(self, BrowserEvent::Error);
                    }
                }
                Ok(Output::Event(Event::Connected)) => {
                    if !self.connected {
                        self.connected = true;
                        on(self, BrowserEvent::Connected);
                    }
                }
                Ok(Output::Event(Event::RtpPacket(p))) => {
                    let now_ns = wavegate_shared::clock::monotonic_ns();
                    if let Some(v) = self.video.as_mut()
                        && *p.header.payload_type == v.pt
                    {
                        v.tx.on_rtp(&p.payload, now_ns, scratch);
                        continue;
                    }
                    if let Some(a) = self.audio.as_mut() {
                        let seq: u64 = *p.seq_no;
                        a.on_rtp(seq, p.header.timestamp, &p.payload, now_ns);
                        on(self, BrowserEvent::NotProbe);
                        continue;
                    }
                    // The probe parser wants a whole RTP packet: a neutral header in front.
                    scratch.clear();
                    scratch.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                    scratch.extend_from_slice(&p.payload);
                    match wire::decode_packet(scratch) {
                        Some(rx) if rx.probe.stream == self.index => {
                            on(self, BrowserEvent::Probe { rx, now_ns })
                        }
                        _ => on(self, BrowserEvent::NotProbe),
                    }
                }
                Ok(Output::Event(Event::KeyframeRequest(r))) => {
                    if let Some(v) = self.video.as_mut()
                        && r.mid == v.mid
                    {
                        v.tx.keyframe_requested();
                    }
                }
                Ok(Output::Event(_)) => {}
                Err(e) => {
                    tracing::debug!(browser = self.index, error = %e, "browser failed");
                    on(self, BrowserEvent::Error);
                    self.deadline = Instant::now() + Duration::from_secs(3600);
                    return;
                }
            }
        }
    }
}

/// The `a=mid` and payload type of `codec` in the first audio line of `sdp`.
pub fn offered_audio(sdp: &str, codec: AudioCodec) -> Option<(String, u8)> {
    let mut in_audio = false;
    let mut pts: Vec<u8> = Vec::new();
    let (mut mid, mut pt) = (None, None);
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            if in_audio {
                break;
            }
            in_audio = m.starts_with("audio ");
            pts = m
                .split_whitespace()
                .skip(3)
                .filter_map(|p| p.parse().ok())
                .collect();
            if in_audio && codec == AudioCodec::Pcmu && pts.contains(&0) {
                pt = Some(0);
            }
            continue;
        }
        if !in_audio {
            continue;
        }
        if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.to_owned());
        } else if let Some(map) = line.strip_prefix("a=rtpmap:")
            && pt.is_none()
            && let Some((n, name)) = map.split_once(' ')
            && let Ok(n) = n.parse::<u8>()
        {
            let want = match codec {
                AudioCodec::Pcmu => "pcmu/8000",
                AudioCodec::Opus => "opus/48000",
            };
            if pts.contains(&n) && name.to_ascii_lowercase().starts_with(want) {
                pt = Some(n);
            }
        }
    }
    Some((mid?, pt?))
}

/// A UDP socket on `ip` with [`BROWSER_SOCKET_BUF`] buffers (best effort, as for loopback).
fn socket_on(ip: Ipv4Addr) -> Result<UdpSocket, RunError> {
    let sock = UdpSocket::bind((ip, 0))?;
    let size = libc::c_int::try_from(BROWSER_SOCKET_BUF).unwrap_or(libc::c_int::MAX);
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: setsockopt on a socket we own with a c_int value of the right length.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot enlarge a socket buffer");
        }
    }
    Ok(sock)
}

/// An epoll set over browser sockets, polled without blocking (closed on drop).
pub struct Epoll(libc::c_int);

impl Epoll {
    /// A new, empty set.
    pub fn new() -> std::io::Result<Epoll> {
        // SAFETY: epoll_create1 has no preconditions; the fd is closed on drop.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Epoll(ep))
    }

    /// Watches `fd` for input, reporting `token`.
    pub fn add(&self, fd: libc::c_int, token: u64) -> std::io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: epoll_ctl on fds we own, with a valid event struct.
        if unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stops watching `fd` (before its socket closes).
    pub fn remove(&self, fd: libc::c_int) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as above; an error (fd not in the set) is harmless.
        unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_DEL, fd, &mut ev) };
    }

    /// Ready tokens, without blocking: fills `events` and returns how many.
    pub fn poll(&self, events: &mut [libc::epoll_event]) -> usize {
        let max = events.len().min(i32::MAX as usize) as i32;
        // SAFETY: `events` has room for `max` entries; timeout 0 never blocks.
        let n = unsafe { libc::epoll_wait(self.0, events.as_mut_ptr(), max, 0) };
        n.max(0) as usize
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: closing the epoll fd created in `new`.
        unsafe { libc::close(self.0) };
    }
}

/// Raises the soft open-files limit to the hard one (a socket per browser).
pub fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
