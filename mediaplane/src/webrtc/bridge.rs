//! WebRTC <-> RTP calls of one shard: a browser's [`WebRtcLeg`] bridged to one plain RTP port
//! pair facing the SIP side, passthrough (no transcoding).
//!
//! Set-up: [`Bridge::offer`] takes the browser's offer, makes the leg's answer and a plain
//! RTP/AVP offer for the SIP side listing the codecs the leg negotiated, with the browser's
//! payload-type numbers, on an RTP port taken from the relay's allocator (the relay does not
//! own it, so its packets come here as `UnknownPort` drops). [`Bridge::answer`] takes the SIP
//! side's answer: its address (until a packet latches one) and the payload-type maps.
//!
//! Packet paths: browser datagrams arrive on the shard's single WebRTC socket and are routed by
//! [`Demux`] ([`Bridge::on_webrtc_datagram`]); decrypted RTP leaves the SIP port with a fixed
//! SSRC and continuous numbering ([`Rewriter`]). SIP RTP ([`Bridge::on_sip_packet`]) is latched
//! to its first sender, mapped and handed to [`WebRtcLeg::write_rtp`]. After every input the leg
//! is drained until its `Timeout`; the earliest timeout of all legs is kept as a lower bound
//! ([`Bridge::next_deadline`]) for the shard loop's wait.
//!
//! Invariants: sans-IO (time is `now_ns`, datagrams leave through [`BridgeIo`]); one audio
//! m-line per call; SIP-side RTCP is dropped (str0m keeps RTCP with the browser).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use str0m::config::DtlsCert;
use str0m::format::Codec;
use str0m::media::{MediaKind, Mid};
use wavegate_shared::ids::{CallId, LegTag};
use wavegate_shared::protocol::{
    CallStats, ControlError, ErrorCode, LegStats, MediaEvent, OfferFlags, WebRtcOfferReply,
};

use super::Clock;
use super::demux::{Demux, LegId};
use super::leg::{LegAddr, LegEvent, LegOutput, OutRtp, WebRtcLeg};
use crate::call::{PtMap, Rewriter};
use crate::relay::{PortSockets, Relay};
use crate::rtp::{PacketClass, RtpPacket, classify, write_rtp};
use crate::sdp::{Media, Sdp};

/// Where the bridge sends datagrams; implemented by the driver.
pub trait BridgeIo {
    /// Sends `buf` from the shard's WebRTC socket to `dst`.
    fn send_webrtc(&mut self, dst: SocketAddr, buf: &[u8]);
    /// Sends `buf` from our RTP port `from_port` to `dst`.
    fn send_rtp(&mut self, from_port: u16, dst: SocketAddr, buf: &[u8]);
}

/// The driver's sockets as control requests need them: binding port pairs and sending (the
/// close of a leg sends DTLS close_notify).
pub trait BridgeSockets: PortSockets + BridgeIo {}
impl<T: PortSockets + BridgeIo + ?Sized> BridgeSockets for T {}

/// Largest RTP packet rebuilt for the SIP side.
const RTP_BUF: usize = 2048;

struct BridgeCall {
    id: CallId,
    from_tag: LegTag,
    to_tag: Option<LegTag>,
    leg: WebRtcLeg,
    leg_id: LegId,
    mid: Mid,
    sip_port: u16,
    sip_remote: Option<SocketAddr>,
    sip_latched: bool,
    /// Our offer to the SIP side (payload types are the browser's).
    sip_offer: Media,
    /// Browser payload type -> SIP payload type.
    to_sip: PtMap,
    /// SIP payload type -> browser payload type.
    to_browser: PtMap,
    /// Browser -> SIP direction: one SSRC, continuous numbers.
    rewriter: Rewriter,
    deadline: u64,
    created_ns: u64,
    /// Last RTP received from either side (for `MediaTimeout`).
    last_media_ns: u64,
    /// Media inactivity limit; `None` disables it.
    timeout_ns: Option<u64>,
    /// `MediaTimeout` already reported for the current silence.
    timed_out: bool,
    /// Why the browser leg ended on its own (closed by the browser, failed); reported once as
    /// `LegFailed`.
    failed: Option<String>,
    failure_reported: bool,
    browser: LegStats,
    sip: LegStats,
}

/// One shard's WebRTC <-> RTP calls.
pub struct Bridge {
    clock: Clock,
    addr: LegAddr,
    cert: DtlsCert,
    announce_ip: IpAddr,
    demux: Demux,
    calls: Vec<Option<BridgeCall>>,
    free: Vec<u32>,
    by_id: HashMap<CallId, u32>,
    by_sip_port: HashMap<u16, u32>,
    earliest: u64,
    buf: Box<[u8; RTP_BUF]>,
}

fn err(code: ErrorCode, message: impl Into<String>) -> ControlError {
    ControlError::new(code, message)
}

/// The codecs a browser leg and a SIP peer can share without transcoding, in the order offered
/// to the SIP side, with their `a=rtpmap` value.
const PASSTHROUGH: [(Codec, &str); 4] = [
    (Codec::Opus, "opus/48000/2"),
    (Codec::G722, "G722/8000"),
    (Codec::PCMU, "PCMU/8000"),
    (Codec::PCMA, "PCMA/8000"),
];

impl Bridge {
    /// A bridge whose legs answer on `addr` with certificate `cert`; SIP-side SDP announces
    /// `announce_ip`.
    pub fn new(clock: Clock, addr: LegAddr, cert: DtlsCert, announce_ip: IpAddr) -> Self {
        Self {
            clock,
            addr,
            cert,
            announce_ip,
            demux: Demux::new(),
            calls: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            by_sip_port: HashMap::new(),
            earliest: u64::MAX,
            buf: Box::new([0; RTP_BUF]),
        }
    }

    /// The shard's WebRTC socket address (bound).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr.bind
    }

    /// Calls held.
    pub fn call_count(&self) -> usize {
        self.by_id.len()
    }

    /// Whether `call` is a WebRTC call of this bridge.
    pub fn has_call(&self, call: &CallId) -> bool {
        self.by_id.contains_key(call)
    }

    /// A lower bound of the earliest leg timeout (`u64::MAX` when there is none).
    pub fn next_deadline(&self) -> u64 {
        self.earliest
    }

    /// Creates the call: answers the browser and offers plain RTP to the SIP side.
    pub fn offer(
        &mut self,
        now_ns: u64,
        call: &CallId,
        from_tag: &LegTag,
        browser_sdp: &str,
        flags: &OfferFlags,
        relay: &mut Relay,
        sockets: &mut dyn BridgeSockets,
    ) -> Result<WebRtcOfferReply, ControlError> {
        if self.by_id.contains_key(call) || relay.has_call(call) {
            return Err(err(
                ErrorCode::BadSdp,
                format!("call {call} exists; re-offers are not supported yet"),
            ));
        }
        let mut leg = WebRtcLeg::new(self.clock, now_ns, self.addr, &self.cert)
            .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
        let browser_answer = leg
            .handle_offer(now_ns, browser_sdp)
            .map_err(|e| err(ErrorCode::BadSdp, e.to_string()))?;
        let mid = leg
            .media()
            .iter()
            .find(|(_, kind)| *kind == MediaKind::Audio)
            .map(|(mid, _)| *mid)
            .ok_or_else(|| err(ErrorCode::BadSdp, "the browser offered no audio m-line"))?;
        let codecs: Vec<(u8, &str)> = PASSTHROUGH
            .iter()
            .filter_map(|(codec, map)| leg.payload_type(*codec).map(|pt| (pt, *map)))
            .collect();
        if codecs.is_empty() {
            return Err(err(
                ErrorCode::BadSdp,
                "no codec both a browser and a SIP peer can share (Opus, G.722, PCMU, PCMA)",
            ));
        }
        let sip_port = relay.reserve_pair(&mut *sockets)?;
        let sip_text = sip_offer_text(self.announce_ip, sip_port, &codecs);
        let sip_offer = match Sdp::parse(&sip_text) {
            Ok(mut sdp) if !sdp.media.is_empty() => sdp.media.remove(0),
            _ => {
                relay.release_pair(sip_port, &mut *sockets);
                return Err(err(ErrorCode::Internal, "our own SIP offer does not parse"));
            }
        };
        let slot = self.free.pop().unwrap_or(self.calls.len() as u32);
        let leg_id = LegId(slot);
        if let Err(e) = self.demux.insert(leg_id, leg.local_ufrag()) {
            relay.release_pair(sip_port, &mut *sockets);
            self.free.push(slot);
            return Err(err(ErrorCode::Internal, e.to_string()));
        }
        let identity = PtMap::identity(&sip_offer);
        let timeout_secs = flags
            .media_timeout_secs
            .unwrap_or(relay.config().media_timeout_secs);
        let mut c = BridgeCall {
            id: call.clone(),
            from_tag: from_tag.clone(),
            to_tag: None,
            leg,
            leg_id,
            mid,
            sip_port,
            sip_remote: None,
            sip_latched: false,
            to_sip: identity.clone(),
            to_browser: identity,
            sip_offer,
            rewriter: Rewriter::new(relay.random_ssrc()),
            deadline: u64::MAX,
            created_ns: now_ns,
            last_media_ns: now_ns,
            timeout_ns: (timeout_secs > 0).then_some(u64::from(timeout_secs) * 1_000_000_000),
            timed_out: false,
            failed: None,
            failure_reported: false,
            browser: LegStats::default(),
            sip: LegStats::default(),
        };
        drain(&mut c, now_ns, &mut self.buf, &mut *sockets);
        self.earliest = self.earliest.min(c.deadline);
        if slot as usize == self.calls.len() {
            self.calls.push(Some(c));
        } else {
            self.calls[slot as usize] = Some(c);
        }
        self.by_id.insert(call.clone(), slot);
        self.by_sip_port.insert(sip_port, slot);
        tracing::debug!(%call, sip_port, "webrtc call created");
        Ok(WebRtcOfferReply {
            browser_answer,
            sip_offer: sip_text,
        })
    }

    /// Completes the call with the SIP side's answer; the reply SDP is empty (the browser has
    /// its answer already).
    pub fn answer(
        &mut self,
        call: &CallId,
        to_tag: &LegTag,
        sip_sdp: &str,
    ) -> Result<String, ControlError> {
        let slot = self.slot_of(call)?;
        let c = self
            .calls
            .get_mut(slot)
            .and_then(Option::as_mut)
            .ok_or_else(|| err(ErrorCode::Internal, "empty slot"))?;
        let sdp = Sdp::parse(sip_sdp).map_err(|e| err(ErrorCode::BadSdp, e.to_string()))?;
        let m = sdp
            .media
            .first()
            .ok_or_else(|| err(ErrorCode::BadSdp, "answer has no m-line"))?;
        let to_sip = PtMap::between(&c.sip_offer, m);
        if !c
            .sip_offer
            .payload_types()
            .any(|pt| to_sip.get(pt).is_some())
        {
            return Err(err(
                ErrorCode::BadSdp,
                "the SIP answer shares no codec with the browser (no transcoding)",
            ));
        }
        c.to_browser = PtMap::between(m, &c.sip_offer);
        c.to_sip = to_sip;
        if !c.sip_latched
            && let Some(ip) = sdp.media_address(0).filter(|ip| !ip.is_unspecified())
            && m.desc.port != 0
        {
            c.sip_remote = Some(SocketAddr::new(ip, m.desc.port));
        }
        c.to_tag = Some(to_tag.clone());
        Ok(String::new())
    }

    /// The slot of a known call.
    fn slot_of(&self, call: &CallId) -> Result<usize, ControlError> {
        self.by_id
            .get(call)
            .map(|slot| *slot as usize)
            .ok_or_else(|| err(ErrorCode::UnknownCall, format!("no call {call}")))
    }

    /// The call's counters: the browser is the offerer, the SIP side the answerer.
    pub fn query(&self, now_ns: u64, call: &CallId) -> Result<CallStats, ControlError> {
        let slot = self.slot_of(call)?;
        let c = self
            .calls
            .get(slot)
            .and_then(Option::as_ref)
            .ok_or_else(|| err(ErrorCode::Internal, "empty slot"))?;
        let mut offerer = c.browser.clone();
        offerer.tag = Some(c.from_tag.clone());
        offerer.local_rtp = Some(self.addr.announce);
        let mut answerer = c.sip.clone();
        answerer.tag = c.to_tag.clone();
        answerer.local_rtp = Some(SocketAddr::new(self.announce_ip, c.sip_port));
        answerer.remote_rtp = c.sip_remote;
        Ok(CallStats {
            call: Some(c.id.clone()),
            offerer,
            answerer,
            age_ms: now_ns.saturating_sub(c.created_ns) / 1_000_000,
        })
    }

    /// Ends the call: closes the leg (DTLS close_notify goes out), frees its port pair.
    pub fn delete(
        &mut self,
        now_ns: u64,
        call: &CallId,
        relay: &mut Relay,
        sockets: &mut dyn BridgeSockets,
    ) -> Result<CallStats, ControlError> {
        let stats = self.query(now_ns, call)?;
        let Some(slot) = self.by_id.remove(call) else {
            return Err(err(ErrorCode::UnknownCall, "gone"));
        };
        if let Some(mut c) = self.calls.get_mut(slot as usize).and_then(Option::take) {
            if c.leg.close().is_ok() {
                drain(&mut c, now_ns, &mut self.buf, &mut *sockets);
            }
            self.demux.remove(c.leg_id);
            self.by_sip_port.remove(&c.sip_port);
            relay.release_pair(c.sip_port, &mut *sockets);
        }
        self.free.push(slot);
        Ok(stats)
    }

    /// One datagram from the shard's WebRTC socket.
    pub fn on_webrtc_datagram(
        &mut self,
        now_ns: u64,
        src: SocketAddr,
        datagram: &[u8],
        io: &mut dyn BridgeIo,
    ) {
        let leg = match self.demux.route(src, self.addr.bind, datagram) {
            Ok(r) => r.leg(),
            Err(e) => {
                tracing::trace!(%src, error = %e, "webrtc datagram not routed");
                return;
            }
        };
        let Some(c) = self.calls.get_mut(leg.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        if let Err(e) = c.leg.handle_input(now_ns, src, self.addr.bind, datagram) {
            tracing::debug!(call = %c.id, error = %e, "webrtc input refused");
            c.browser.dropped += 1;
        }
        drain(c, now_ns, &mut self.buf, io);
        self.earliest = self.earliest.min(c.deadline);
    }

    /// One datagram that arrived on RTP port `local_port`; `false` when no bridge call owns the
    /// port (the caller counts it as unknown).
    pub fn on_sip_packet(
        &mut self,
        now_ns: u64,
        local_port: u16,
        src: SocketAddr,
        buf: &mut [u8],
        io: &mut dyn BridgeIo,
    ) -> bool {
        let Some(&slot) = self.by_sip_port.get(&local_port) else {
            return false;
        };
        let Some(c) = self.calls.get_mut(slot as usize).and_then(Option::as_mut) else {
            return false;
        };
        if c.sip_latched && c.sip_remote != Some(src) {
            c.sip.dropped += 1;
            return true;
        }
        if classify(buf) != PacketClass::Rtp {
            // RTCP (or noise): str0m reports to the browser itself.
            c.sip.rtcp_packets_in += 1;
            return true;
        }
        let Ok(p) = RtpPacket::parse(buf) else {
            c.sip.dropped += 1;
            return true;
        };
        let Some((pt, _)) = c.to_browser.get(p.payload_type()) else {
            c.sip.dropped += 1;
            return true;
        };
        if !c.sip_latched {
            c.sip_remote = Some(src);
            c.sip_latched = true;
        }
        c.sip.rtp_packets_in += 1;
        c.sip.rtp_bytes_in += p.as_bytes().len() as u64;
        c.last_media_ns = now_ns;
        c.timed_out = false;
        let out = OutRtp {
            pt,
            seq: p.sequence(),
            timestamp: p.timestamp(),
            marker: p.marker(),
            payload: p.payload(),
        };
        match c.leg.write_rtp(now_ns, c.mid, out) {
            Ok(()) => {
                c.browser.rtp_packets_out += 1;
                c.browser.rtp_bytes_out += out.payload.len() as u64;
            }
            Err(e) => {
                tracing::trace!(call = %c.id, error = %e, "cannot write RTP to the browser");
                c.sip.dropped += 1;
            }
        }
        drain(c, now_ns, &mut self.buf, io);
        self.earliest = self.earliest.min(c.deadline);
        true
    }

    /// Appends a `LegFailed` once for a call whose browser leg ended on its own, and a
    /// `MediaTimeout` for every call with no RTP from either side past its timeout, once per
    /// silence (the relay's rule).
    pub fn poll_timeouts(&mut self, now_ns: u64, out: &mut Vec<MediaEvent>) {
        for c in self.calls.iter_mut().flatten() {
            if let (Some(cause), false) = (&c.failed, c.failure_reported) {
                c.failure_reported = true;
                let tag = Some(c.from_tag.clone());
                out.push(MediaEvent::LegFailed {
                    call: c.id.clone(),
                    tag,
                    cause: cause.clone(),
                });
            }
            let Some(limit) = c.timeout_ns else { continue };
            let idle = now_ns.saturating_sub(c.last_media_ns);
            if !c.timed_out && idle >= limit {
                c.timed_out = true;
                out.push(MediaEvent::MediaTimeout {
                    call: c.id.clone(),
                    idle_secs: (idle / 1_000_000_000) as u32,
                });
            }
        }
    }

    /// Runs the timers of every leg due by `now_ns`.
    pub fn on_timeout(&mut self, now_ns: u64, io: &mut dyn BridgeIo) {
        if now_ns < self.earliest {
            return;
        }
        let mut earliest = u64::MAX;
        for c in self.calls.iter_mut().flatten() {
            if c.deadline <= now_ns {
                if let Err(e) = c.leg.handle_timeout(now_ns) {
                    tracing::debug!(call = %c.id, error = %e, "webrtc timeout step failed");
                }
                drain(c, now_ns, &mut self.buf, io);
            }
            earliest = earliest.min(c.deadline);
        }
        self.earliest = earliest;
    }
}

/// Drains the leg's outputs until its next timeout.
fn drain(c: &mut BridgeCall, now_ns: u64, buf: &mut [u8; RTP_BUF], io: &mut dyn BridgeIo) {
    // Bounded: str0m ends every drain with a Timeout; the cap only guards against a bug there.
    for _ in 0..10_000 {
        let out = match c.leg.poll() {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(call = %c.id, error = %e, "webrtc leg failed");
                c.failed
                    .get_or_insert_with(|| format!("WebRTC leg failed: {e}"));
                c.deadline = u64::MAX;
                return;
            }
        };
        match out {
            LegOutput::Timeout(at) => {
                c.deadline = at;
                return;
            }
            LegOutput::Transmit(t) => io.send_webrtc(t.destination, &t.contents),
            LegOutput::Rtp(r) => {
                c.browser.rtp_packets_in += 1;
                c.browser.rtp_bytes_in += r.payload.len() as u64;
                c.last_media_ns = now_ns;
                c.timed_out = false;
                let (Some(dst), Some((pt, clock))) = (c.sip_remote, c.to_sip.get(r.pt)) else {
                    c.browser.dropped += 1;
                    continue;
                };
                let Some(n) = write_rtp(&mut buf[..], r.pt, r.seq, r.timestamp, r.ssrc, &r.payload)
                else {
                    c.browser.dropped += 1;
                    continue;
                };
                if r.marker {
                    buf[1] |= 0x80;
                }
                let Ok(mut p) = RtpPacket::parse(&mut buf[..n]) else {
                    continue;
                };
                c.rewriter.rewrite(now_ns, &mut p, pt, clock);
                io.send_rtp(c.sip_port, dst, &buf[..n]);
                c.sip.rtp_packets_out += 1;
                c.sip.rtp_bytes_out += n as u64;
            }
            LegOutput::Event(e) => match e {
                LegEvent::Closed => {
                    tracing::debug!(call = %c.id, "webrtc leg closed");
                    c.failed
                        .get_or_insert_with(|| "the browser closed the peer connection".to_owned());
                }
                LegEvent::IceConnected | LegEvent::DtlsConnected | LegEvent::IceDisconnected => {
                    tracing::debug!(call = %c.id, event = ?e, "webrtc leg");
                }
                LegEvent::MediaAdded { .. } => {}
            },
        }
    }
}

/// Our plain RTP/AVP offer for the SIP side: the leg's codecs with the browser's numbers.
fn sip_offer_text(ip: IpAddr, port: u16, codecs: &[(u8, &str)]) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let pts: Vec<String> = codecs.iter().map(|(pt, _)| pt.to_string()).collect();
    let mut s = format!(
        "v=0\r\no=wavegate 1 1 IN {family} {ip}\r\ns=wavegate\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {}\r\n",
        pts.join(" ")
    );
    for (pt, map) in codecs {
        s.push_str(&format!("a=rtpmap:{pt} {map}\r\n"));
    }
    s.push_str("a=sendrecv\r\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::RelayConfig;
    use std::time::Instant;
    use str0m::media::Direction;
    use str0m::{Candidate, RtcConfig};
    use wavegate_shared::ShardId;

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
        let bridge = Bridge::new(
            clock,
            LegAddr::direct(shard),
            cert,
            "127.0.0.1".parse().unwrap(),
        );
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
        rtc.add_local_candidate(
            Candidate::host("127.0.0.1:50000".parse().unwrap(), "udp").unwrap(),
        )
        .unwrap();
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
        let mut wire = Wire::default();
        let call = CallId::new("w@t").unwrap();
        let (ft, tt) = (LegTag::new("b").unwrap(), LegTag::new("s").unwrap());
        let flags = OfferFlags {
            media_timeout_secs: Some(2),
        };
        let free = relay.free_pairs();
        let reply = bridge
            .offer(0, &call, &ft, &offer, &flags, &mut relay, &mut wire)
            .unwrap();
        assert!(reply.browser_answer.contains("a=ice-lite"));
        assert_eq!(relay.free_pairs(), free - 1, "one pair for the SIP side");
        assert!(
            bridge
                .offer(0, &call, &ft, &offer, &flags, &mut relay, &mut wire)
                .is_err(),
            "no re-offer"
        );
        let sip = Sdp::parse(&reply.sip_offer).unwrap();
        let sip_port = sip.media[0].desc.port;
        assert!(
            sip.media[0].payload_types().any(|pt| pt == 0),
            "PCMU offered: {}",
            reply.sip_offer
        );

        let refused = bridge
            .answer(&call, &tt, &sip_answer(18, "G729/8000"))
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::BadSdp, "no transcoding");
        assert_eq!(
            bridge
                .answer(&call, &tt, &sip_answer(0, "PCMU/8000"))
                .unwrap(),
            ""
        );
        let stats = bridge.query(0, &call).unwrap();
        assert_eq!(
            stats.answerer.remote_rtp,
            Some("127.0.0.1:6000".parse().unwrap())
        );

        // Silence: one MediaTimeout after 2 s, not repeated.
        let mut events = Vec::new();
        bridge.poll_timeouts(S, &mut events);
        assert!(events.is_empty());
        bridge.poll_timeouts(2 * S, &mut events);
        assert_eq!(
            events,
            vec![MediaEvent::MediaTimeout {
                call: call.clone(),
                idle_secs: 2
            }]
        );
        bridge.poll_timeouts(3 * S, &mut events);
        assert_eq!(events.len(), 1, "once per silence");

        // SIP RTP latches its sender and restarts the silence; a stranger is dropped.
        let peer: SocketAddr = "127.0.0.1:6002".parse().unwrap();
        let mut pkt = [0u8; 64];
        let n = write_rtp(&mut pkt, 0, 1, 160, 9, &[1, 2, 3]).unwrap();
        assert!(bridge.on_sip_packet(3 * S, sip_port, peer, &mut pkt[..n], &mut wire));
        let n = write_rtp(&mut pkt, 0, 2, 320, 9, &[1, 2, 3]).unwrap();
        assert!(bridge.on_sip_packet(
            3 * S,
            sip_port,
            "127.0.0.1:7000".parse().unwrap(),
            &mut pkt[..n],
            &mut wire
        ));
        assert!(
            !bridge.on_sip_packet(3 * S, sip_port + 2, peer, &mut pkt[..n], &mut wire),
            "not a bridge port"
        );
        let stats = bridge.query(3 * S, &call).unwrap();
        assert_eq!(
            (stats.answerer.rtp_packets_in, stats.answerer.dropped),
            (1, 1)
        );
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
        let text = sip_offer_text(
            "127.0.0.1".parse().unwrap(),
            30_000,
            &[(111, "opus/48000/2"), (0, "PCMU/8000")],
        );
        let sdp = Sdp::parse(&text).unwrap();
        let m = &sdp.media[0];
        assert_eq!((m.desc.port, m.desc.proto.as_str()), (30_000, "RTP/AVP"));
        assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![111, 0]);
        assert_eq!(m.rtpmap(111).map(|r| r.clock_rate), Some(48_000));
        assert_eq!(sdp.media_address(0), Some("127.0.0.1".parse().unwrap()));
    }
}
