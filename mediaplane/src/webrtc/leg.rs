//! One WebRTC leg: a browser's peer connection terminated by `str0m::Rtc` in ICE-lite + RTP mode.
//!
//! The leg answers the browser's offer, or makes the offer itself (an incoming SIP call), with a
//! single host candidate (the shard's WebRTC UDP address), lets str0m run ICE-lite, DTLS
//! (fingerprint-checked) and SRTP, and exchanges plain RTP
//! with its owner: incoming SRTP comes out as [`LegRtp`] (header fields + payload after
//! decryption), outgoing RTP goes in through [`WebRtcLeg::write_rtp`] and leaves as SRTP
//! [`LegOutput::Transmit`]s. It is sans-IO: time is the shard's `now_ns` (converted by
//! [`Clock`]), datagrams are handed in and out as bytes.
//!
//! Invariants: str0m's `poll_output` must be drained (until [`LegOutput::Timeout`]) after every
//! input — that is how str0m works and the driver must honour it; the outgoing sequence number of
//! each m-line is extended to 64 bits here ([`SeqExtender`]), because SRTP's rollover counter is
//! derived from it and feeding raw 16-bit numbers would break decryption at the first wrap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::config::DtlsCert;
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::{Extension, RtpWrite};
use str0m::stats::{MediaEgressStats, MediaIngressStats};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcConfig, RtcError};
use thiserror::Error;

use super::Clock;
use super::stun;

/// Why a leg operation failed.
#[derive(Debug, Error)]
pub enum LegError {
    /// The browser's SDP offer did not parse.
    #[error("offer SDP does not parse: {0}")]
    OfferSdp(String),
    /// str0m refused the offer, an input or an output step.
    #[error("WebRTC: {0}")]
    Rtc(#[from] RtcError),
    /// The shard's WebRTC address cannot be a host candidate.
    #[error("bad local candidate address {0}")]
    Candidate(SocketAddr),
    /// The datagram is not STUN, DTLS, RTP or RTCP.
    #[error("unrecognised datagram")]
    Datagram,
    /// A connectivity check without a MESSAGE-INTEGRITY that verifies with our password.
    #[error("STUN check with wrong credentials")]
    StunRefused,
    /// `write_rtp` for an m-line that has no send stream (unknown mid or recvonly).
    #[error("no send stream for mid {0}")]
    NoSendStream(Mid),
    /// The crypto provider could not generate a DTLS certificate.
    #[error("cannot generate a DTLS certificate")]
    Certificate,
    /// An offer while ours waits for its answer (glare), or `make_offer` twice.
    #[error("an offer is already pending on this leg")]
    AlreadyNegotiated,
    /// The browser's SDP answer did not parse.
    #[error("answer SDP does not parse: {0}")]
    AnswerSdp(String),
    /// `handle_answer` without an offer of ours pending.
    #[error("no offer of ours is waiting for an answer")]
    NoPendingOffer,
    /// `make_offer` found nothing to offer (no codec configured).
    #[error("nothing to offer")]
    NothingToOffer,
}

/// One payload format a leg may negotiate (audio codecs, telephone-event, VP8, H.264).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegCodec {
    /// Payload type offered (answers follow the offer's numbers anyway).
    pub pt: u8,
    /// Which codec.
    pub codec: Codec,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Channels (Opus: 2).
    pub channels: Option<u8>,
    /// H.264 only: the `profile-level-id` (always with packetization-mode=1, the only mode
    /// bridged). str0m matches H.264 by profile (RFC 6184 §8.2.2: the level may differ), so a
    /// browser offer whose profile differs is not answered with this format.
    pub profile_level_id: Option<u32>,
}

impl LegCodec {
    const fn new(pt: u8, codec: Codec, clock_rate: u32, channels: Option<u8>) -> Self {
        Self { pt, codec, clock_rate, channels, profile_level_id: None }
    }

    /// A VP8 format (90 kHz).
    pub const fn vp8(pt: u8) -> Self {
        Self::new(pt, Codec::Vp8, 90_000, None)
    }

    /// An H.264 format, packetization-mode=1, with `profile_level_id` (e.g. 0x42e01f).
    pub const fn h264(pt: u8, profile_level_id: u32) -> Self {
        Self { pt, codec: Codec::H264, clock_rate: 90_000, channels: None, profile_level_id: Some(profile_level_id) }
    }

    /// Whether this is a video format.
    pub fn is_video(&self) -> bool {
        self.codec.is_video()
    }
}

/// What a leg takes by default (answering a browser, or offering to one for a SIP call without
/// SDP): the audio codecs a SIP peer may share without transcoding, and telephone-event at the
/// two clock rates browsers use (48 kHz beside Opus, 8 kHz beside the G.711 family).
pub const DEFAULT_CODECS: [LegCodec; 6] = [
    LegCodec::new(111, Codec::Opus, 48_000, Some(2)),
    LegCodec::new(9, Codec::G722, 8_000, None),
    LegCodec::new(0, Codec::PCMU, 8_000, None),
    LegCodec::new(8, Codec::PCMA, 8_000, None),
    LegCodec::new(110, Codec::Tele, 48_000, None),
    LegCodec::new(126, Codec::Tele, 8_000, None),
];

/// Connection milestones the owner acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    /// ICE has a working candidate pair (the browser nominated one).
    IceConnected,
    /// ICE lost the pair (consent expired); the owner may fail the leg after a grace period.
    IceDisconnected,
    /// DTLS is established and SRTP keys are in place: media can flow.
    DtlsConnected,
    /// An m-line is ready for media (str0m reports it once SRTP is up; [`WebRtcLeg::media`]
    /// lists the m-lines as soon as the answer is made).
    MediaAdded {
        /// Its mid.
        mid: Mid,
        /// Audio or video.
        kind: MediaKind,
    },
    /// The browser closed DTLS, or the leg was closed.
    Closed,
    /// The browser asks for a keyframe (RTCP PLI or FIR) of what we send on `mid`.
    KeyframeRequest {
        /// The m-line (video).
        mid: Mid,
        /// FIR rather than PLI.
        fir: bool,
    },
}

/// An RTP packet received from the browser, after SRTP.
#[derive(Debug, Clone)]
pub struct LegRtp {
    /// The m-line it belongs to (from the receive stream its SSRC was bound to).
    pub mid: Option<Mid>,
    /// Payload type.
    pub pt: u8,
    /// SSRC.
    pub ssrc: u32,
    /// 16-bit sequence number as on the wire.
    pub seq: u16,
    /// RTP timestamp as on the wire.
    pub timestamp: u32,
    /// Marker bit.
    pub marker: bool,
    /// Payload without the RTP header.
    pub payload: Arc<[u8]>,
}

/// What [`WebRtcLeg::poll`] produced.
#[derive(Debug)]
pub enum LegOutput {
    /// A datagram to send from `transmit.source` (the bound address) to `transmit.destination`.
    Transmit(Transmit),
    /// RTP from the browser.
    Rtp(LegRtp),
    /// A connection milestone.
    Event(LegEvent),
    /// Nothing more until this shard time (or the next input): call `handle_timeout` then.
    Timeout(u64),
}

/// RTP to send to the browser.
#[derive(Debug, Clone, Copy)]
pub struct OutRtp<'a> {
    /// Payload type, as negotiated in the answer.
    pub pt: u8,
    /// 16-bit sequence number (the leg extends it to 64 bits for SRTP).
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Marker bit.
    pub marker: bool,
    /// Payload without header.
    pub payload: &'a [u8],
}

/// A DTLS certificate (self-signed, fresh key) for all legs of a shard; its fingerprint goes into
/// every answer. Make one at shard start-up.
pub fn generate_certificate() -> Result<DtlsCert, LegError> {
    str0m::crypto::from_feature_flags().dtls_provider.generate_certificate().ok_or(LegError::Certificate)
}

/// Extends 16-bit RTP sequence numbers to 64 bits (RFC 3711 §3.3.1 style: pick the candidate
/// nearest to the last extended value).
#[derive(Debug, Default, Clone, Copy)]
pub struct SeqExtender {
    last: Option<u64>,
}

impl SeqExtender {
    /// The extended value of `seq`, remembering it when it moves forward.
    pub fn extend(&mut self, seq: u16) -> u64 {
        let Some(last) = self.last else {
            self.last = Some(u64::from(seq));
            return u64::from(seq);
        };
        let roc = last >> 16;
        let candidates = [roc.checked_sub(1), Some(roc), roc.checked_add(1)];
        let mut best = (roc << 16) | u64::from(seq);
        for roc in candidates.into_iter().flatten() {
            let c = (roc << 16) | u64::from(seq);
            if c.abs_diff(last) < best.abs_diff(last) {
                best = c;
            }
        }
        if best > last {
            self.last = Some(best);
        }
        best
    }
}

/// Where a leg is reached: the socket address it is bound to, and the one announced to the
/// browser as the host candidate. They differ on a 1:1 NAT host (a cloud VM with a private
/// interface address and a public IP); the leg translates between them at its edges, so str0m
/// only ever sees the announced address and the driver only the bound one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegAddr {
    /// The shard's WebRTC socket address (datagrams arrive on it, leave from it).
    pub bind: SocketAddr,
    /// The address in the answer's `a=candidate` line.
    pub announce: SocketAddr,
}

impl LegAddr {
    /// Announce the bound address itself (no NAT).
    pub fn direct(bind: SocketAddr) -> Self {
        Self { bind, announce: bind }
    }
}

/// A browser leg. Build it with [`WebRtcLeg::new`], register [`WebRtcLeg::local_ufrag`] with the
/// shard's [`super::demux::Demux`], then answer the offer.
pub struct WebRtcLeg {
    /// Boxed: str0m's `Rtc` is ~12 KB inline, and the owner keeps legs in a slot vector whose
    /// doubling growth would otherwise reserve that much again per free slot.
    rtc: Box<Rtc>,
    clock: Clock,
    /// The latest shard time handed in (input, timeout or write); see [`Self::poll`].
    now_ns: u64,
    /// Timer turns [`Self::poll`] ran itself since the last input (bounded by [`CATCH_UP`]).
    catch_up: u8,
    addr: LegAddr,
    ufrag: String,
    /// The local ICE password: the key of the browser's checks (verified before str0m sees
    /// them, so wrong ones are counted).
    pass: String,
    negotiated: bool,
    /// The m-lines the answer accepted (str0m reports `MediaAdded` only once SRTP is up, but the
    /// owner must know its mids as soon as it has answered).
    media: Vec<(Mid, MediaKind)>,
    /// Outgoing sequence extension per m-line (a call has one or two, so a Vec beats a map).
    tx_seq: Vec<(Mid, SeqExtender)>,
    /// The m-line of each browser SSRC seen (str0m binds an SSRC to its m-line once), so a
    /// received packet does not cost a hashed lookup of its receive stream. At most
    /// [`RX_MIDS`] entries; cleared by every negotiation.
    rx_mids: Vec<(u32, Option<Mid>)>,
    /// Our offer, until the browser's answer arrives.
    pending: Option<SdpPendingOffer>,
    /// str0m's latest per-m-line statistics (refreshed every [`STATS_INTERVAL`]).
    ingress: Option<MediaIngressStats>,
    egress: Option<MediaEgressStats>,
}

/// SSRCs whose m-line a leg remembers (audio, video and their RTX: four; simulcast more).
const RX_MIDS: usize = 8;

/// Timer turns [`WebRtcLeg::poll`] runs on its own after one input before handing a due
/// timeout back to the owner. One is what a written packet needs (str0m queues it and releases
/// it on the next timer turn); the bound keeps a timeout that stays due from spinning.
const CATCH_UP: u8 = 2;

/// How often str0m summarises a leg's RTCP figures (loss, jitter, RTT) for the `Stats` request.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

impl std::fmt::Debug for WebRtcLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcLeg").field("addr", &self.addr).field("ufrag", &self.ufrag).finish_non_exhaustive()
    }
}

impl WebRtcLeg {
    /// A leg answering on `addr` (the shard's WebRTC socket; `addr.announce` is its only host
    /// candidate).
    ///
    /// Audio codecs offered in the answer: Opus, G.722, PCMU, PCMA (the ones a SIP peer may share
    /// without transcoding). `cert` is the shard's DTLS certificate from [`generate_certificate`]:
    /// one per shard instead of a key generation per call, and it keeps str0m's own
    /// generate-or-panic path out of call setup.
    pub fn new(clock: Clock, now_ns: u64, addr: LegAddr, cert: &DtlsCert) -> Result<Self, LegError> {
        Self::with_codecs(clock, now_ns, addr, cert, &DEFAULT_CODECS)
    }

    /// A leg that negotiates exactly `codecs` (in that order of preference; an offer made by
    /// [`Self::make_offer`] lists them with their payload-type numbers).
    pub fn with_codecs(
        clock: Clock,
        now_ns: u64,
        addr: LegAddr,
        cert: &DtlsCert,
        codecs: &[LegCodec],
    ) -> Result<Self, LegError> {
        let creds = IceCreds::new();
        let ufrag = creds.ufrag.clone();
        let pass = creds.pass.clone();
        let mut config = RtcConfig::new()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_local_ice_credentials(creds)
            .set_dtls_cert(cert.clone())
            .set_stats_interval(Some(STATS_INTERVAL))
            // str0m's standard RTP header extensions without transport-cc: with it, every packet
            // sent to the browser leaves a send record (88 bytes, up to 1000 kept: 88 KiB per
            // call after 20 s of audio) for a bandwidth estimator we do not run.
            .clear_extension_map()
            .set_extension(1, Extension::AudioLevel)
            .set_extension(2, Extension::AbsoluteSendTime)
            .set_extension(4, Extension::RtpMid)
            .set_extension(10, Extension::RtpStreamId)
            .set_extension(11, Extension::RepairedRtpStreamId)
            .set_extension(13, Extension::VideoOrientation)
            .clear_codecs();
        for c in codecs {
            let Some(rate) = Frequency::new(c.clock_rate) else {
                continue;
            };
            let format = match c.codec {
                // What browsers put in their own Opus fmtp (str0m's `enable_opus` does the same).
                Codec::Opus => FormatParams { min_p_time: Some(10), use_inband_fec: Some(true), ..Default::default() },
                Codec::H264 => FormatParams {
                    level_asymmetry_allowed: Some(true),
                    packetization_mode: Some(1),
                    profile_level_id: c.profile_level_id,
                    ..Default::default()
                },
                _ => FormatParams::default(),
            };
            config.codec_config().add_config(c.pt.into(), None, c.codec, rate, c.channels, format);
        }
        let mut rtc = Box::new(config.build(clock.instant(now_ns)));
        let bad = LegError::Candidate(addr.announce);
        let candidate = Candidate::host(addr.announce, "udp").map_err(|_| bad)?;
        rtc.add_local_candidate(candidate).ok_or(LegError::Candidate(addr.announce))?;
        Ok(Self {
            rtc,
            clock,
            now_ns,
            catch_up: 0,
            addr,
            ufrag,
            pass,
            negotiated: false,
            media: Vec::new(),
            tx_seq: Vec::new(),
            rx_mids: Vec::new(),
            pending: None,
            ingress: None,
            egress: None,
        })
    }

    /// The local ICE username fragment: the key STUN checks are routed by.
    pub fn local_ufrag(&self) -> &str {
        &self.ufrag
    }

    /// The bound and announced addresses of this leg.
    pub fn addr(&self) -> LegAddr {
        self.addr
    }

    /// Accepts the browser's offer (the first one, or a re-offer once negotiated: hold, resume)
    /// and returns the answer SDP; the accepted m-lines are then in [`Self::media`]. Drain
    /// [`Self::poll`] afterwards. Refused while an offer of ours waits for its answer (glare).
    pub fn handle_offer(&mut self, now_ns: u64, offer_sdp: &str) -> Result<String, LegError> {
        if self.pending.is_some() {
            return Err(LegError::AlreadyNegotiated);
        }
        let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|e| LegError::OfferSdp(e.to_string()))?;
        self.advance(now_ns);
        self.rtc.handle_input(Input::Timeout(self.clock.instant(now_ns)))?;
        let answer = self.rtc.sdp_api().accept_offer(offer)?.to_sdp_string();
        self.negotiated = true;
        self.rx_mids.clear();
        // str0m keeps its parsed SDP types private; the mids are read back from our own answer
        // and each is confirmed against the Rtc, which also gives its kind (an `a=mid` without a
        // media entry — data channel, rejected line — is skipped).
        for line in answer.lines() {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                let mid = Mid::from(mid.trim());
                if let Some(media) = self.rtc.media(mid)
                    && !self.media.iter().any(|(m, _)| *m == mid)
                {
                    self.media.push((mid, media.kind()));
                }
            }
        }
        Ok(answer)
    }

    /// Makes our offer: one audio m-line (`direction` as seen from the leg) with the leg's audio
    /// codecs, and with `video` a video m-line with its video codecs, ICE-lite,
    /// `a=setup:actpass`. The browser's answer goes to [`Self::handle_answer`].
    pub fn make_offer(&mut self, now_ns: u64, direction: Direction, video: bool) -> Result<String, LegError> {
        if self.negotiated || self.pending.is_some() {
            return Err(LegError::AlreadyNegotiated);
        }
        self.advance(now_ns);
        self.rtc.handle_input(Input::Timeout(self.clock.instant(now_ns)))?;
        let mut change = self.rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, direction, None, None, None);
        let video_mid = video.then(|| change.add_media(MediaKind::Video, direction, None, None, None));
        let (offer, pending) = change.apply().ok_or(LegError::NothingToOffer)?;
        self.pending = Some(pending);
        self.media.push((mid, MediaKind::Audio));
        if let Some(v) = video_mid {
            self.media.push((v, MediaKind::Video));
        }
        Ok(offer.to_sdp_string())
    }

    /// Takes the browser's answer to [`Self::make_offer`]'s offer.
    pub fn handle_answer(&mut self, now_ns: u64, answer_sdp: &str) -> Result<(), LegError> {
        let answer = SdpAnswer::from_sdp_string(answer_sdp).map_err(|e| LegError::AnswerSdp(e.to_string()))?;
        let pending = self.pending.take().ok_or(LegError::NoPendingOffer)?;
        self.advance(now_ns);
        self.rtc.handle_input(Input::Timeout(self.clock.instant(now_ns)))?;
        self.rtc.sdp_api().accept_answer(pending, answer)?;
        self.negotiated = true;
        self.rx_mids.clear();
        Ok(())
    }

    /// Makes a new offer of ours on a negotiated leg (a server-initiated renegotiation: same
    /// m-lines, codecs, ICE credentials and DTLS fingerprint, `a=setup:actpass`); the owner may
    /// edit its format parameters (Opus bandwidth caps) before sending it. The browser's answer
    /// goes to [`Self::handle_answer`]; [`Self::rollback_offer`] abandons it.
    ///
    /// str0m makes an offer only for a change, so the audio m-line's direction is toggled away
    /// and back within this call: the session ends as it was and the offer describes it as it
    /// is. The toggle goes through a direction that keeps sending (or, when the leg only
    /// receives, one that keeps receiving), so str0m resets as little as it can: the receive
    /// window restarts after the highest number seen, nothing queued toward the browser is lost.
    pub fn make_reoffer(&mut self, now_ns: u64) -> Result<String, LegError> {
        if !self.negotiated || self.pending.is_some() {
            return Err(LegError::AlreadyNegotiated);
        }
        let Some(&(mid, _)) = self.media.iter().find(|(_, kind)| *kind == MediaKind::Audio) else {
            return Err(LegError::NothingToOffer);
        };
        let current = self.rtc.media(mid).map(|m| m.direction()).ok_or(LegError::NothingToOffer)?;
        let away = match current {
            Direction::SendRecv => Direction::SendOnly,
            Direction::SendOnly | Direction::RecvOnly | Direction::Inactive => Direction::SendRecv,
        };
        self.advance(now_ns);
        self.rtc.handle_input(Input::Timeout(self.clock.instant(now_ns)))?;
        let mut change = self.rtc.sdp_api();
        change.set_direction(mid, away);
        change.set_direction(mid, current);
        let (offer, pending) = change.apply().ok_or(LegError::NothingToOffer)?;
        self.pending = Some(pending);
        Ok(offer.to_sdp_string())
    }

    /// Abandons our pending offer (the browser never answered it, or offered itself: glare).
    /// str0m applies nothing before the answer, so the leg goes on as negotiated.
    pub fn rollback_offer(&mut self) -> bool {
        self.pending.take().is_some()
    }

    /// An offer of ours is waiting for its answer.
    pub fn awaiting_answer(&self) -> bool {
        self.pending.is_some()
    }

    /// Our first offer is waiting for its answer (the leg is being set up).
    pub fn awaiting_first_answer(&self) -> bool {
        self.pending.is_some() && !self.negotiated
    }

    /// The m-lines the answer accepted, in SDP order (empty before [`Self::handle_offer`]).
    pub fn media(&self) -> &[(Mid, MediaKind)] {
        &self.media
    }

    /// Feeds one datagram received on `dst` (the bound address) from `src` at shard time `now_ns`.
    pub fn handle_input(
        &mut self,
        now_ns: u64,
        src: SocketAddr,
        dst: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), LegError> {
        if stun::message_type(datagram) == Ok(stun::BINDING_REQUEST) {
            // str0m would drop a check with the wrong password silently; refuse it here so the
            // owner can count it. Checks are rare (one per second or so), the HMAC is cheap.
            let hmac = |key: &[u8], parts: &[&[u8]]| {
                str0m::crypto::from_feature_flags().sha1_hmac_provider.sha1_hmac(key, parts)
            };
            if stun::integrity_ok(datagram, self.pass.as_bytes(), hmac) != Ok(true) {
                return Err(LegError::StunRefused);
            }
        }
        let contents = datagram.try_into().map_err(|_| LegError::Datagram)?;
        // str0m matches checks against its candidates, so it must see the announced address.
        let destination = if dst == self.addr.bind { self.addr.announce } else { dst };
        let receive = Receive { proto: Protocol::Udp, source: src, destination, contents };
        self.advance(now_ns);
        self.rtc.handle_input(Input::Receive(self.clock.instant(now_ns), receive))?;
        Ok(())
    }

    /// Advances the leg's timers to `now_ns` (always allowed, also before the polled deadline).
    pub fn handle_timeout(&mut self, now_ns: u64) -> Result<(), LegError> {
        self.advance(now_ns);
        self.rtc.handle_input(Input::Timeout(self.clock.instant(now_ns)))?;
        Ok(())
    }

    /// Records the shard time of an input and re-arms [`Self::poll`]'s timer turns.
    fn advance(&mut self, now_ns: u64) {
        self.now_ns = self.now_ns.max(now_ns);
        self.catch_up = 0;
    }

    /// The next output; call until it returns [`LegOutput::Timeout`].
    ///
    /// A timeout that is already due (str0m asks for one right after a `write_rtp`: it releases
    /// queued packets from its timer turn) is run here, at the latest input's time, instead of
    /// being handed back: the packet leaves in the same drain, and the owner's wake-up does not
    /// have to look at every leg for one that is due now. At most [`CATCH_UP`] turns per input.
    pub fn poll(&mut self) -> Result<LegOutput, LegError> {
        loop {
            let event = match self.rtc.poll_output()? {
                Output::Timeout(at) => {
                    let at = self.clock.ns(at);
                    if at <= self.now_ns && self.catch_up < CATCH_UP && self.rtc.is_alive() {
                        self.catch_up += 1;
                        self.rtc.handle_input(Input::Timeout(self.clock.instant(self.now_ns)))?;
                        continue;
                    }
                    return Ok(LegOutput::Timeout(at));
                }
                Output::Transmit(mut t) => {
                    if t.source == self.addr.announce {
                        t.source = self.addr.bind;
                    }
                    return Ok(LegOutput::Transmit(t));
                }
                Output::Event(event) => event,
            };
            let out = match event {
                Event::IceConnectionStateChange(IceConnectionState::Connected | IceConnectionState::Completed) => {
                    LegEvent::IceConnected
                }
                Event::IceConnectionStateChange(IceConnectionState::Disconnected) => LegEvent::IceDisconnected,
                Event::Connected => LegEvent::DtlsConnected,
                Event::Closed => LegEvent::Closed,
                Event::MediaAdded(m) => LegEvent::MediaAdded { mid: m.mid, kind: m.kind },
                Event::RtpPacket(p) => {
                    let ssrc = p.header.ssrc;
                    let mid = match self.rx_mids.iter().find(|(s, _)| *s == *ssrc) {
                        Some((_, mid)) => *mid,
                        None => {
                            let mid = self.rtc.direct_api().stream_rx(&ssrc).map(|s| s.mid());
                            if mid.is_some() {
                                if self.rx_mids.len() >= RX_MIDS {
                                    self.rx_mids.clear();
                                }
                                self.rx_mids.push((*ssrc, mid));
                            }
                            mid
                        }
                    };
                    return Ok(LegOutput::Rtp(LegRtp {
                        mid,
                        pt: *p.header.payload_type,
                        ssrc: *ssrc,
                        seq: p.header.sequence_number,
                        timestamp: p.header.timestamp,
                        marker: p.header.marker,
                        payload: p.payload,
                    }));
                }
                Event::MediaIngressStats(s) => {
                    self.ingress = Some(s);
                    continue;
                }
                Event::MediaEgressStats(s) => {
                    self.egress = Some(s);
                    continue;
                }
                Event::KeyframeRequest(k) => {
                    LegEvent::KeyframeRequest { mid: k.mid, fir: k.kind == KeyframeRequestKind::Fir }
                }
                // Sender feedback (REMB, TWCC), stream pauses: not used by a passthrough relay.
                _ => continue,
            };
            return Ok(LegOutput::Event(out));
        }
    }

    /// str0m's latest statistics of what the leg receives and sends (`None` until the first
    /// interval has passed with media).
    pub fn stats(&self) -> (Option<&MediaIngressStats>, Option<&MediaEgressStats>) {
        (self.ingress.as_ref(), self.egress.as_ref())
    }

    /// The payload type the answer assigned to `codec`, if it was negotiated.
    pub fn payload_type(&self, codec: Codec) -> Option<u8> {
        self.rtc.codec_config().find(|p| p.spec().codec == codec).map(|p| *p.pt())
    }

    /// The payload type of `codec` at `clock_rate` (telephone-event comes at two rates).
    pub fn payload_type_at(&self, codec: Codec, clock_rate: u32) -> Option<u8> {
        self.rtc
            .codec_config()
            .find(|p| p.spec().codec == codec && p.spec().clock_rate.get() == clock_rate)
            .map(|p| *p.pt())
    }

    /// The SSRC the leg sends on for `mid` (announced in the answer).
    pub fn send_ssrc(&mut self, mid: Mid) -> Option<u32> {
        self.rtc.direct_api().stream_tx_by_mid(mid, None).map(|s| *s.ssrc())
    }

    /// Queues one RTP packet towards the browser on m-line `mid`; it leaves as SRTP through
    /// [`Self::poll`] (drain it afterwards). The SSRC is the one from the answer.
    pub fn write_rtp(&mut self, now_ns: u64, mid: Mid, rtp: OutRtp<'_>) -> Result<(), LegError> {
        let seq = match self.tx_seq.iter_mut().find(|(m, _)| *m == mid) {
            Some((_, ext)) => ext.extend(rtp.seq),
            None => {
                let mut ext = SeqExtender::default();
                let seq = ext.extend(rtp.seq);
                self.tx_seq.push((mid, ext));
                seq
            }
        };
        self.advance(now_ns);
        let wallclock = self.clock.instant(now_ns);
        let mut direct = self.rtc.direct_api();
        let stream = direct.stream_tx_by_mid(mid, None).ok_or(LegError::NoSendStream(mid))?;
        let write = RtpWrite::new(rtp.pt.into(), seq.into(), rtp.timestamp, wallclock, rtp.payload).marker(rtp.marker);
        stream.write_rtp(write);
        Ok(())
    }

    /// Asks the browser for a keyframe on the video it sends on `mid` (str0m sends the RTCP
    /// PLI, or FIR, at its next poll). `false` when the browser sends nothing there yet.
    pub fn request_keyframe(&mut self, mid: Mid, fir: bool) -> bool {
        let kind = if fir { KeyframeRequestKind::Fir } else { KeyframeRequestKind::Pli };
        match self.rtc.direct_api().stream_rx_by_mid(mid, None) {
            Some(rx) => {
                rx.request_keyframe(kind);
                true
            }
            None => false,
        }
    }

    /// Starts closing (RTCP BYE, DTLS close_notify); keep polling until [`Self::is_alive`] is false.
    pub fn close(&mut self) -> Result<(), LegError> {
        self.rtc.close()?;
        Ok(())
    }

    /// False once the leg has closed and drained.
    pub fn is_alive(&self) -> bool {
        self.rtc.is_alive()
    }

    /// ICE and DTLS are both up.
    pub fn is_connected(&self) -> bool {
        self.rtc.is_connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_extension_follows_wraps_and_reordering() {
        let mut ext = SeqExtender::default();
        assert_eq!(ext.extend(65_534), 65_534);
        assert_eq!(ext.extend(65_535), 65_535);
        assert_eq!(ext.extend(0), 65_536);
        assert_eq!(ext.extend(65_535), 65_535, "a late packet from before the wrap");
        assert_eq!(ext.extend(1), 65_537);
        assert_eq!(ext.extend(2), 65_538);
    }

    /// Our re-offer: only on a negotiated leg, one at a time, same ICE credentials, and a
    /// rollback leaves the leg able to make another.
    #[test]
    fn reoffers_need_a_negotiated_leg_and_go_one_at_a_time() {
        let clock = Clock::new(std::time::Instant::now());
        let cert = generate_certificate().unwrap();
        let addr = LegAddr::direct("127.0.0.1:40000".parse().unwrap());
        let mut leg = WebRtcLeg::new(clock, 0, addr, &cert).unwrap();
        assert!(matches!(leg.make_reoffer(0), Err(LegError::AlreadyNegotiated)), "not negotiated yet");
        let mut browser = RtcConfig::new().build(clock.instant(0));
        browser.add_local_candidate(Candidate::host("127.0.0.1:40001".parse().unwrap(), "udp").unwrap());
        let mut change = browser.sdp_api();
        change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, _) = change.apply().unwrap();
        let answer = leg.handle_offer(0, &offer.to_sdp_string()).unwrap();
        let reoffer = leg.make_reoffer(1_000_000).unwrap();
        let ufrag = |s: &str| s.lines().find(|l| l.starts_with("a=ice-ufrag:")).map(str::to_owned);
        assert_eq!(ufrag(&reoffer), ufrag(&answer), "no ICE restart");
        assert!(reoffer.contains("a=setup:actpass") && reoffer.contains("a=sendrecv"), "{reoffer}");
        assert!(leg.awaiting_answer() && !leg.awaiting_first_answer());
        assert!(matches!(leg.make_reoffer(2_000_000), Err(LegError::AlreadyNegotiated)), "one at a time");
        assert!(matches!(leg.handle_offer(2_000_000, &offer.to_sdp_string()), Err(LegError::AlreadyNegotiated)));
        assert!(leg.rollback_offer());
        assert!(!leg.rollback_offer(), "nothing left to roll back");
        assert!(leg.make_reoffer(3_000_000).is_ok(), "a new one after the rollback");
    }

    #[test]
    fn seq_extension_does_not_go_below_zero() {
        let mut ext = SeqExtender::default();
        assert_eq!(ext.extend(3), 3);
        assert_eq!(ext.extend(65_530), 65_530, "no rollover counter of -1");
    }
}
