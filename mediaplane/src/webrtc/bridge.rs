//! WebRTC <-> RTP calls of one shard: a browser's [`WebRtcLeg`] bridged to one plain RTP port
//! pair facing the SIP side: passthrough when the two sides share the codec the browser sends,
//! else transcoded (a [`CallTranscoder`] per call, see docs/transcoding.md) when the bridge
//! allows it ([`Bridge::set_transcoding`]), else the call fails with "Transcoding required but
//! disabled".
//!
//! Set-up ([`super::bridge_setup`]) goes one of three ways: the browser offers
//! ([`Bridge::offer`], then the SIP side's [`Bridge::answer`]); a SIP caller offers
//! ([`Bridge::offer_to_browser`] makes the browser's offer with the SIP side's payload-type
//! numbers, [`Bridge::browser_answer`] returns the SIP answer); or a SIP INVITE comes without SDP
//! (the same two calls, the second returning our offer for the SIP side, whose answer comes in
//! [`Bridge::answer`]). In every case the SIP-side m-line is kept with the *browser's* numbers
//! (`sip_local`) and the payload-type maps are built against it.
//!
//! Packet paths: browser datagrams arrive on the shard's single WebRTC socket and are routed by
//! [`Demux`] ([`Bridge::on_webrtc_datagram`]); decrypted RTP leaves the SIP port with a fixed
//! SSRC and continuous numbering ([`Rewriter`]). SIP RTP ([`Bridge::on_sip_packet`]) is latched
//! to its first sender, mapped, renumbered by its own [`Rewriter`] and handed to
//! [`WebRtcLeg::write_rtp`]. Telephone-events (RFC 4733) are detected on both paths
//! (`DtmfReceived`, once per event) and mapped between the sides' payload types and clock rates;
//! [`Bridge::inject_dtmf`] generates events of our own, whose sequence numbers the rewriters
//! insert into the stream. After every input the leg is drained until its `Timeout`; the
//! earliest timeout of all legs and DTMF senders is kept as a lower bound
//! ([`Bridge::next_deadline`]) for the shard loop's wait.
//!
//! Video (VP8, H.264) has its own SIP-side port pair and path, in [`super::bridge_video`].
//!
//! Transcoded calls: audio of the negotiated codec goes into the call's [`CallTranscoder`]
//! instead of the rewriters; its output (isochronous, its own sequence numbers and timestamps)
//! is polled from [`Bridge::on_timeout`] at most [`crate::transcode::call::POLL_BUDGET`]
//! packets per call and turn, so the shard returns to its sockets between batches. Telephone-events are still mapped, not
//! transcoded, and take their sequence numbers and timestamps from the transcoder's stream.
//!
//! Invariants: sans-IO (time is `now_ns`, datagrams leave through [`BridgeIo`]); one audio
//! m-line and at most one video m-line per call; SIP-side audio RTCP is read for `Stats` and
//! dropped (str0m keeps RTCP with the browser); SIP-side video RTCP is read for keyframe
//! requests.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use str0m::config::DtlsCert;
use str0m::media::Mid;
use wavegate_shared::ids::{CallId, LegTag};
use wavegate_shared::protocol::{
    CallStats, ControlError, DtmfToward, ErrorCode, LegStats, MediaEvent, WebRtcDrops,
    WebRtcOfferReply,
};

use super::Clock;
pub(super) use super::bridge_media::drain;
use super::bridge_media::{pump_dtmf, pump_transcoder, tele_target};
use super::bridge_reoffer::{self, CapReoffer};
use super::bridge_video::{self, VideoPath};
use super::demux::{Demux, LegId};
use super::drops::{Delivered, count_unrouted, srtp_id};
use super::dtmf::{DtmfDetector, DtmfSender, TelephoneEvent, rescale};
use super::leg::{LegAddr, LegError, OutRtp, WebRtcLeg};
use super::quality::{RecvStats, ReportBlock, report_blocks};
use super::sdes::CryptoAttr;
use super::srtp::{SrtpSession, rtp_header_len};
use crate::call::{PtMap, Rewriter};
use crate::relay::{PortSockets, Relay};
use crate::rtp::{PacketClass, RtpPacket, classify};
use crate::sdp::{Direction, Media};
use crate::transcode::call::{CallTranscoder, Format, Side};

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
pub(super) const RTP_BUF: usize = 2048;
/// How long a browser may stay unreachable (ICE disconnected: no consent checks) before the
/// leg is reported failed; browsers recover from short outages (Wi-Fi roaming) on their own.
pub(super) const ICE_GRACE_NS: u64 = 10_000_000_000;
/// Datagrams kept per call while our offer to the browser waits for its answer.
pub(super) const EARLY_DATAGRAMS: usize = 16;
/// DTMF digits queued per direction beyond the one being sent.
const DTMF_QUEUE: usize = 32;
/// Silence between two queued digits (RFC 4733 §2.5.1.6 leaves it to the sender; 50 ms is
/// what phones use between keys).
pub(super) const DTMF_GAP_NS: u64 = 50_000_000;

/// Where a call's set-up stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Our SIP offer is out (the browser offered, or a delayed offer): `Answer` completes it.
    AwaitSipAnswer,
    /// Our browser offer is out: `BrowserAnswer` completes it. `sip_offer` is the direction of
    /// the SIP side's offer (our answer to it is then the reply), `None` when it sent none (our
    /// offer is).
    AwaitBrowserAnswer { sip_offer: Option<crate::sdp::Direction> },
    /// Both sides negotiated.
    Up,
}

/// What a call remembers of the browser's last offer to recognise a retry: its length and a
/// 64-bit SipHash of its text, instead of the text (4-6 KiB from a browser, per call). A
/// browser's real re-offer differs at least in its `o=` version, so only an identical text
/// compares equal; a different text with the same length and hash (2^-64) would get the
/// previous reply, which affects only the call whose browser sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OfferDigest {
    len: usize,
    hash: u64,
}

impl OfferDigest {
    pub(super) fn of(sdp: &str) -> Self {
        use std::hash::{Hash, Hasher};
        // Fixed keys: the digest must be the same for the same text within the process.
        let mut h = std::hash::DefaultHasher::new();
        sdp.hash(&mut h);
        Self { len: sdp.len(), hash: h.finish() }
    }
}

/// A telephone-event payload type on one side: number and clock rate.
pub(super) type Tele = (u8, u32);

/// One direction's DTMF generation: the digit being sent and those queued behind it.
#[derive(Debug, Default)]
pub(super) struct DtmfOut {
    pub(super) current: Option<DtmfSender>,
    pub(super) queue: VecDeque<(char, u32)>,
    /// When the next queued digit may start.
    pub(super) next_start: u64,
}

impl DtmfOut {
    fn deadline(&self) -> u64 {
        match &self.current {
            Some(s) => s.deadline(),
            None if self.queue.is_empty() => u64::MAX,
            None => self.next_start,
        }
    }
}

pub(super) struct BridgeCall {
    pub(super) id: CallId,
    /// The offerer's leg (the browser for `WebRtcOffer`, the SIP caller for `OfferToBrowser`).
    pub(super) from_tag: LegTag,
    pub(super) to_tag: Option<LegTag>,
    pub(super) browser_offered: bool,
    pub(super) stage: Stage,
    pub(super) leg: WebRtcLeg,
    pub(super) leg_id: LegId,
    pub(super) mid: Mid,
    pub(super) sip_port: u16,
    pub(super) sip_remote: Option<SocketAddr>,
    pub(super) sip_latched: bool,
    /// The SIP-side m-line with the browser's payload-type numbers (our offer or answer to it).
    pub(super) sip_local: Media,
    /// The direction each side declared for itself in its latest SDP (hold: sendonly/inactive).
    /// Media goes from A to B only while A sends and B receives.
    pub(super) browser_dir: Direction,
    pub(super) sip_dir: Direction,
    /// The `o=` version of our SIP-side SDP (incremented by every new offer or answer).
    pub(super) sip_sdp_version: u32,
    /// The SIP side's address as its SDP last gave it (a changed one replaces a latched address).
    pub(super) sip_sdp_addr: Option<SocketAddr>,
    /// The browser's last offer (its digest: the text is several KiB per call) and our reply:
    /// the same offer again is a retry, not a re-offer.
    pub(super) last_browser_offer: Option<(OfferDigest, WebRtcOfferReply)>,
    /// Datagrams the browser sent before its answer reached us (connectivity checks with the
    /// nomination, DTLS ClientHellos): replayed once the answer is in, so the connection does
    /// not wait for the browser's next check. Bounded by [`EARLY_DATAGRAMS`].
    pub(super) early: Vec<(SocketAddr, Vec<u8>)>,
    /// SDES-SRTP toward the SIP side (it offered RTP/SAVP): the session, our `a=crypto` and
    /// the SIP side's (to notice a re-key in a re-offer).
    pub(super) srtp: Option<SrtpSession>,
    pub(super) sip_crypto: Option<CryptoAttr>,
    pub(super) sip_their_crypto: Option<CryptoAttr>,
    /// The SIP side's offer and the index of its audio m-line (our answer mirrors its m-lines).
    pub(super) sip_offer: Option<(crate::sdp::Sdp, usize)>,
    /// Browser payload type -> SIP payload type.
    pub(super) to_sip: PtMap,
    /// SIP payload type -> browser payload type.
    pub(super) to_browser: PtMap,
    /// Telephone-event payload types of the browser side (its numbers) and the SIP side's.
    pub(super) browser_tele: Vec<Tele>,
    pub(super) sip_tele: Vec<Tele>,
    /// Browser -> SIP direction: one SSRC, continuous numbers.
    pub(super) rewriter: Rewriter,
    /// SIP -> browser direction: continuous numbers across SIP SSRC changes and our own DTMF.
    pub(super) to_browser_rewriter: Rewriter,
    pub(super) dtmf_from_browser: DtmfDetector,
    pub(super) dtmf_from_sip: DtmfDetector,
    pub(super) dtmf_to_browser: DtmfOut,
    pub(super) dtmf_to_sip: DtmfOut,
    /// The leg's next timeout.
    pub(super) deadline: u64,
    pub(super) created_ns: u64,
    /// Last RTP received from either side (for `MediaTimeout`).
    pub(super) last_media_ns: u64,
    /// Media inactivity limit; `None` disables it.
    pub(super) timeout_ns: Option<u64>,
    /// `MediaTimeout` already reported for the current silence.
    pub(super) timed_out: bool,
    /// Why the browser leg ended on its own (closed by the browser, failed); reported once as
    /// `LegFailed`.
    pub(super) failed: Option<String>,
    pub(super) failure_reported: bool,
    /// When ICE reported the browser gone (consent lost), until it comes back.
    pub(super) ice_lost_at: Option<u64>,
    pub(super) browser: LegStats,
    pub(super) sip: LegStats,
    /// Receive statistics of each side's RTP, and the SIP peer's last report on our stream.
    pub(super) browser_rx: RecvStats,
    pub(super) sip_rx: RecvStats,
    pub(super) sip_report: Option<ReportBlock>,
    /// The browser's recently delivered RTP, to tell SRTP replays from forgeries.
    pub(super) delivered: Delivered,
    /// The call's video, when the browser's m-line offered or accepted a bridged format.
    pub(super) video: Option<Box<VideoPath>>,
    /// The audio format the browser sends (the first codec of the leg's negotiation), once
    /// known: passthrough needs the SIP side to take exactly this one.
    pub(super) browser_send: Option<Format>,
    /// The browser's negotiated audio payload types (its numbers; telephone-event excluded).
    pub(super) browser_audio: Vec<u8>,
    /// The SIP offer shares no codec with a browser: the browser was offered Opus and G.711
    /// and the call is transcoded once it answers.
    pub(super) transcode_incoming: bool,
    /// The call's transcoder when the two sides use different codecs.
    pub(super) tc: Option<Box<CallTranscoder>>,
    /// Both directions are transcoded (the sides share no codec). Otherwise a transcoder is
    /// only there for the browser's codec the SIP side did not take (a page answered Opus, a
    /// PCMU-only phone): that codec is transcoded toward SIP, everything else is passthrough.
    pub(super) tc_full: bool,
    /// The call's signalling forwards our re-offers to the browser (`OfferFlags`).
    pub(super) browser_reoffer: bool,
    /// Our re-offer capping the browser's Opus (see [`super::bridge_reoffer`]).
    pub(super) cap: CapReoffer,
}

impl BridgeCall {
    pub(super) fn browser_tag(&self) -> Option<LegTag> {
        if self.browser_offered { Some(self.from_tag.clone()) } else { self.to_tag.clone() }
    }

    pub(super) fn sip_tag(&self) -> Option<LegTag> {
        if self.browser_offered { self.to_tag.clone() } else { Some(self.from_tag.clone()) }
    }

    /// Media from the browser goes to the SIP side.
    pub(super) fn browser_to_sip(&self) -> bool {
        sends(self.browser_dir) && receives(self.sip_dir)
    }

    /// Media from the SIP side goes to the browser.
    pub(super) fn sip_to_browser(&self) -> bool {
        sends(self.sip_dir) && receives(self.browser_dir)
    }

    /// Whether the transcoder numbers the stream toward `to` (for telephone-events): always on
    /// a fully transcoded call; toward SIP on a half one once transcoded audio went out.
    pub(super) fn tc_owns(&self, to: Side) -> bool {
        match (&self.tc, to) {
            (Some(_), _) if self.tc_full => true,
            (Some(t), Side::Sip) => t.sending(Side::Sip),
            _ => false,
        }
    }

    /// RTP packets (audio and video) the browser leg delivered so far.
    pub(super) fn browser_rtp_in(&self) -> u64 {
        self.browser.rtp_packets_in + self.video.as_ref().map_or(0, |v| v.q.packets_from_browser)
    }

    /// The earliest of the leg's, the DTMF senders' and the video keyframe timer's deadlines.
    pub(super) fn next_deadline(&self) -> u64 {
        let video = self.video.as_ref().map_or(u64::MAX, |v| v.next_keyframe_ns);
        let tc = self.tc.as_ref().and_then(|t| t.next_deadline()).unwrap_or(u64::MAX);
        self.deadline.min(self.dtmf_to_browser.deadline()).min(self.dtmf_to_sip.deadline()).min(video).min(tc)
    }
}

/// One shard's WebRTC <-> RTP calls.
pub struct Bridge {
    pub(super) clock: Clock,
    pub(super) addr: LegAddr,
    pub(super) cert: DtlsCert,
    pub(super) announce_ip: IpAddr,
    pub(super) demux: Demux,
    /// Boxed: a `BridgeCall` is ~3.5 KB, and the vector's doubling growth would otherwise
    /// reserve that much for every free slot (up to half the vector).
    pub(super) calls: Vec<Option<Box<BridgeCall>>>,
    pub(super) free: Vec<u32>,
    pub(super) by_id: HashMap<CallId, u32>,
    pub(super) by_sip_port: HashMap<u16, u32>,
    pub(super) earliest: u64,
    pub(super) buf: Box<[u8; RTP_BUF]>,
    /// Events found on the packet path (DTMF), waiting for [`Bridge::take_events`].
    pub(super) events: Vec<MediaEvent>,
    /// Datagrams dropped at the WebRTC socket, by reason (see [`super::drops`]).
    pub(super) drops: WebRtcDrops,
    /// Periodic keyframe requests toward the browser for SIP peers without RTCP feedback
    /// (0: none); see [`Bridge::set_keyframe_interval_ms`].
    pub(super) keyframe_interval_ns: u64,
    /// Calls whose sides share no codec may be transcoded (config `media.transcoding`).
    pub(super) transcoding: bool,
    /// Opus settings and jitter range of transcoded calls (`media.opus_*`, `media.jitter_*`).
    pub(super) tc_settings: crate::transcode::call::CallSettings,
}

/// Default of [`Bridge::set_keyframe_interval_ms`]: a SIP video phone that sends no PLI/FIR
/// sees a frozen picture after a loss for at most this long, for about one extra keyframe
/// every 5 s (a few percent of the bitrate), and only on calls whose SIP side never asked.
pub const DEFAULT_KEYFRAME_INTERVAL_MS: u32 = 5000;

/// A side that declared `d` sends media.
fn sends(d: Direction) -> bool {
    matches!(d, Direction::SendRecv | Direction::SendOnly)
}

/// A side that declared `d` receives media.
fn receives(d: Direction) -> bool {
    matches!(d, Direction::SendRecv | Direction::RecvOnly)
}

pub(super) fn err(code: ErrorCode, message: impl Into<String>) -> ControlError {
    ControlError::new(code, message)
}

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
            drops: WebRtcDrops::default(),
            calls: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            by_sip_port: HashMap::new(),
            earliest: u64::MAX,
            buf: Box::new([0; RTP_BUF]),
            events: Vec::new(),
            keyframe_interval_ns: u64::from(DEFAULT_KEYFRAME_INTERVAL_MS) * 1_000_000,
            transcoding: true,
            tc_settings: Default::default(),
        }
    }

    /// Whether calls whose two sides share no codec are transcoded (the default) or fail with
    /// "Transcoding required but disabled".
    pub fn set_transcoding(&mut self, on: bool) {
        self.transcoding = on;
    }

    /// Opus encoder settings and jitter-buffer range for the calls transcoded from now on.
    pub fn set_transcode_settings(&mut self, settings: crate::transcode::call::CallSettings) {
        self.tc_settings = settings;
    }

    /// Calls currently transcoding (for `ShardStats`): both ways, or toward SIP once the
    /// browser's codec the SIP side did not take was transcoded.
    pub fn transcoding_legs(&self) -> usize {
        self.calls.iter().flatten().filter(|c| c.tc_full || c.tc_owns(Side::Sip)).count()
    }

    /// A call's transcoded formats (SIP side, browser side), `None` for passthrough (tests).
    pub fn transcoded_formats(&self, call: &CallId) -> Option<(Format, Format)> {
        let slot = self.slot_of(call).ok()?;
        self.calls.get(slot)?.as_deref()?.tc.as_ref().map(|t| t.formats())
    }

    /// How often the browser is asked for a keyframe on calls whose SIP side has sent no PLI or
    /// FIR (SIP video phones without RTCP feedback); 0 turns it off.
    pub fn set_keyframe_interval_ms(&mut self, ms: u32) {
        self.keyframe_interval_ns = u64::from(ms) * 1_000_000;
    }

    /// The shard's WebRTC socket address (bound).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr.bind
    }

    /// Datagrams dropped at the WebRTC socket since the bridge started, by reason.
    pub fn drops(&self) -> &WebRtcDrops {
        &self.drops
    }

    /// Calls held.
    pub fn call_count(&self) -> usize {
        self.by_id.len()
    }

    /// Whether `call` is a WebRTC call of this bridge.
    pub fn has_call(&self, call: &CallId) -> bool {
        self.by_id.contains_key(call)
    }

    /// A lower bound of the earliest leg or DTMF timeout (`u64::MAX` when there is none).
    pub fn next_deadline(&self) -> u64 {
        self.earliest
    }

    /// Events found on the packet path are waiting (the driver sends them without waiting for
    /// its next timeout scan).
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Moves the events found on the packet path (`DtmfReceived`) to `out`.
    pub fn take_events(&mut self, out: &mut Vec<MediaEvent>) {
        out.append(&mut self.events);
    }

    /// The slot of a known call.
    pub(super) fn slot_of(&self, call: &CallId) -> Result<usize, ControlError> {
        self.by_id
            .get(call)
            .map(|slot| *slot as usize)
            .ok_or_else(|| err(ErrorCode::UnknownCall, format!("no call {call}")))
    }

    pub(super) fn call_mut(&mut self, call: &CallId) -> Result<&mut BridgeCall, ControlError> {
        let slot = self.slot_of(call)?;
        self.calls.get_mut(slot).and_then(Option::as_deref_mut).ok_or_else(|| err(ErrorCode::Internal, "empty slot"))
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
                drain(&mut c, now_ns, &mut self.buf, &mut *sockets, &mut self.events);
            }
            self.demux.remove(c.leg_id);
            self.by_sip_port.remove(&c.sip_port);
            relay.release_pair(c.sip_port, &mut *sockets);
            if let Some(v) = &c.video {
                self.by_sip_port.remove(&v.sip_port);
                self.by_sip_port.remove(&v.sip_port.wrapping_add(1));
                relay.release_pair(v.sip_port, &mut *sockets);
            }
        }
        self.free.push(slot);
        Ok(stats)
    }

    /// Queues one DTMF digit toward one side of `call` (RFC 4733 events; see [`DtmfSender`]).
    pub fn inject_dtmf(
        &mut self,
        now_ns: u64,
        call: &CallId,
        toward: DtmfToward,
        digit: char,
        duration_ms: u32,
        io: &mut dyn BridgeIo,
    ) -> Result<(), ControlError> {
        let slot = self.slot_of(call)?;
        let Some(c) = self.calls.get_mut(slot).and_then(Option::as_deref_mut) else {
            return Err(err(ErrorCode::Internal, "empty slot"));
        };
        if c.stage != Stage::Up {
            return Err(err(ErrorCode::BadRequest, "the call is not negotiated yet"));
        }
        let (tele, out) = match toward {
            DtmfToward::Browser => (c.browser_tele.first().copied(), &mut c.dtmf_to_browser),
            DtmfToward::Sip => (c.sip_tele.first().copied(), &mut c.dtmf_to_sip),
        };
        let Some((_, clock)) = tele else {
            return Err(err(ErrorCode::BadSdp, format!("{toward:?} side negotiated no telephone-event")));
        };
        // Validate now (digit, duration at that clock) so the caller hears about a bad request.
        DtmfSender::new(digit, duration_ms, now_ns, 0, clock).map_err(|e| err(ErrorCode::BadRequest, e.to_string()))?;
        if out.queue.len() >= DTMF_QUEUE {
            return Err(err(ErrorCode::Internal, "too many DTMF digits queued"));
        }
        out.queue.push_back((digit, duration_ms));
        pump_dtmf(c, now_ns, &mut self.buf, io, &mut self.events);
        self.earliest = self.earliest.min(c.next_deadline());
        Ok(())
    }

    /// One datagram from the shard's WebRTC socket.
    pub fn on_webrtc_datagram(&mut self, now_ns: u64, src: SocketAddr, datagram: &[u8], io: &mut dyn BridgeIo) {
        let leg = match self.demux.route(src, self.addr.bind, datagram) {
            Ok(r) => r.leg(),
            Err(e) => {
                tracing::trace!(%src, error = %e, "webrtc datagram not routed");
                count_unrouted(&mut self.drops, &e);
                return;
            }
        };
        let Some(c) = self.calls.get_mut(leg.0 as usize).and_then(Option::as_deref_mut) else {
            return;
        };
        if c.leg.awaiting_first_answer() && c.early.len() < EARLY_DATAGRAMS {
            // Set-up only (never on the media path): the copy is replayed after the answer.
            c.early.push((src, datagram.to_vec()));
        }
        let srtp = match c.leg.handle_input(now_ns, src, self.addr.bind, datagram) {
            Ok(()) => srtp_id(datagram),
            Err(e) => {
                tracing::debug!(call = %c.id, error = %e, "webrtc input refused");
                c.browser.dropped += 1;
                match e {
                    LegError::StunRefused => self.drops.stun_refused += 1,
                    _ => self.drops.other += 1,
                }
                None
            }
        };
        let before = c.browser_rtp_in();
        drain(c, now_ns, &mut self.buf, io, &mut self.events);
        // str0m drops SRTP that fails authentication or repeats a delivered packet silently:
        // an SRTP packet that produced no RTP was one of those (see `drops`).
        if let Some((ssrc, seq)) = srtp
            && c.browser_rtp_in() == before
        {
            if c.delivered.seen(ssrc, seq) {
                self.drops.srtp_replayed += 1;
            } else {
                self.drops.srtp_refused += 1;
            }
        }
        self.earliest = self.earliest.min(c.next_deadline());
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
        let Some(c) = self.calls.get_mut(slot as usize).and_then(Option::as_deref_mut) else {
            return false;
        };
        if c.video.as_ref().is_some_and(|v| local_port == v.sip_port || local_port == v.sip_port.wrapping_add(1)) {
            bridge_video::from_sip(c, now_ns, src, buf, &mut self.buf, io, &mut self.events);
            self.earliest = self.earliest.min(c.next_deadline());
            return true;
        }
        if c.sip_latched && c.sip_remote != Some(src) {
            c.sip.dropped += 1;
            return true;
        }
        if classify(buf) != PacketClass::Rtp {
            // RTCP (or noise): str0m reports to the browser itself; the SIP peer's report on our
            // stream is kept for `Stats`.
            c.sip.rtcp_packets_in += 1;
            let plain = match c.srtp.as_mut() {
                None => buf.len(),
                Some(s) => match s.unprotect_rtcp(buf) {
                    Ok(n) => n,
                    Err(_) => {
                        c.sip.dropped += 1; // bad auth, replay, short: dropped and counted
                        return true;
                    }
                },
            };
            let ours = c.rewriter.out_ssrc;
            report_blocks(&buf[..plain], |b| {
                if b.ssrc == ours {
                    c.sip_report = Some(b);
                }
            });
            return true;
        }
        let plain = match c.srtp.as_mut() {
            None => buf.len(),
            Some(s) => match rtp_header_len(buf).map(|h| s.unprotect_rtp(buf, h)) {
                Some(Ok(n)) => n,
                _ => {
                    c.sip.dropped += 1; // bad auth, replay, short: dropped and counted
                    return true;
                }
            },
        };
        let Ok(mut p) = RtpPacket::parse(&mut buf[..plain]) else {
            c.sip.dropped += 1;
            return true;
        };
        let in_pt = p.payload_type();
        let tele_in = c.sip_tele.iter().find(|t| t.0 == in_pt).copied();
        // On a transcoded call only the SIP side's codec (into the transcoder) and
        // telephone-events (mapped) go on; anything else (comfort noise...) is dropped.
        let tc_fmts = c.tc.as_ref().filter(|_| c.tc_full).map(|t| t.formats());
        let tc_audio = tele_in.is_none() && tc_fmts.is_some_and(|(sip, _)| sip.pt == in_pt);
        let mapped = match (tele_in, tc_fmts) {
            (Some(t), _) => tele_target(t, &c.browser_tele, &c.to_browser),
            (None, Some((sip, browser))) if tc_audio => Some((browser.pt, sip.codec.rtp_clock())),
            (None, Some(_)) => None,
            (None, None) => c.to_browser.get(in_pt),
        };
        let Some((pt, clock)) = mapped else {
            c.sip.dropped += 1;
            return true;
        };
        if !c.sip_latched {
            c.sip_remote = Some(src);
            c.sip_latched = true;
        }
        c.sip.rtp_packets_in += 1;
        c.sip.rtp_bytes_in += p.as_bytes().len() as u64;
        c.sip_rx.on_packet(now_ns, p.ssrc(), p.sequence(), p.timestamp(), clock);
        c.last_media_ns = now_ns;
        c.timed_out = false;
        if !c.sip_to_browser() {
            return true; // on hold: received (and counted), not forwarded
        }
        if tc_audio {
            if let Some(t) = c.tc.as_deref_mut() {
                t.on_audio(Side::Sip, now_ns, in_pt, p.sequence(), p.timestamp(), p.payload());
            }
            self.earliest = self.earliest.min(c.next_deadline());
            return true;
        }
        if let Some((_, in_clock)) = tele_in {
            let Ok(ev) = TelephoneEvent::parse(p.payload()) else {
                c.sip.dropped += 1;
                return true;
            };
            let (call, tag) = (&c.id, c.sip_tag());
            c.dtmf_from_sip.on_packet(p.timestamp(), ev, in_clock, |digit, duration_ms| {
                self.events.push(MediaEvent::DtmfReceived { call: call.clone(), tag: tag.clone(), digit, duration_ms });
            });
            let duration = rescale(ev.duration, in_clock, clock).to_be_bytes();
            if let Some(d) = p.payload_mut().get_mut(2..4) {
                d.copy_from_slice(&duration);
            }
        }
        let owns = c.tc_owns(Side::Browser);
        match c.tc.as_deref_mut().filter(|_| owns) {
            // The transcoder owns the stream toward the browser: its numbers, its timeline.
            Some(t) => {
                let (seq, ts) = (t.insert_seq(Side::Browser), t.event_ts(Side::Browser, p.timestamp(), now_ns));
                p.set_sequence(seq);
                p.set_timestamp(ts);
            }
            None => c.to_browser_rewriter.rewrite(now_ns, &mut p, pt, clock),
        }
        let out = OutRtp { pt, seq: p.sequence(), timestamp: p.timestamp(), marker: p.marker(), payload: p.payload() };
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
        drain(c, now_ns, &mut self.buf, io, &mut self.events);
        self.earliest = self.earliest.min(c.next_deadline());
        true
    }

    /// Appends a `LegFailed` once for a call whose browser leg ended on its own, and a
    /// `MediaTimeout` for every call with no RTP from either side past its timeout, once per
    /// silence (the relay's rule).
    pub fn poll_timeouts(&mut self, now_ns: u64, out: &mut Vec<MediaEvent>) {
        self.take_events(out);
        for c in self.calls.iter_mut().flatten() {
            bridge_reoffer::expire(c, now_ns);
            if let Some(at) = c.ice_lost_at
                && now_ns.saturating_sub(at) >= ICE_GRACE_NS
            {
                let secs = now_ns.saturating_sub(at) / 1_000_000_000;
                c.failed.get_or_insert_with(|| format!("the browser is unreachable (ICE disconnected for {secs} s)"));
            }
            if let (Some(cause), false) = (&c.failed, c.failure_reported) {
                c.failure_reported = true;
                out.push(MediaEvent::LegFailed { call: c.id.clone(), tag: c.browser_tag(), cause: cause.clone() });
            }
            let Some(limit) = c.timeout_ns else { continue };
            let idle = now_ns.saturating_sub(c.last_media_ns);
            if !c.timed_out && idle >= limit {
                c.timed_out = true;
                out.push(MediaEvent::MediaTimeout { call: c.id.clone(), idle_secs: (idle / 1_000_000_000) as u32 });
            }
        }
    }

    /// Runs the timers of every leg and DTMF sender due by `now_ns`.
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
                drain(c, now_ns, &mut self.buf, io, &mut self.events);
            }
            if c.dtmf_to_browser.deadline().min(c.dtmf_to_sip.deadline()) <= now_ns {
                pump_dtmf(c, now_ns, &mut self.buf, io, &mut self.events);
            }
            if c.tc.as_ref().and_then(|t| t.next_deadline()).is_some_and(|d| d <= now_ns) {
                pump_transcoder(c, now_ns, &mut self.buf, io, &mut self.events);
            }
            if matches!(c.cap, CapReoffer::Wanted(_)) {
                bridge_reoffer::make(c, now_ns, &mut self.buf, io, &mut self.events);
            }
            if c.video.as_ref().is_some_and(|v| v.next_keyframe_ns <= now_ns) {
                bridge_video::periodic(c, now_ns, self.keyframe_interval_ns, &mut self.buf, io, &mut self.events);
            }
            earliest = earliest.min(c.next_deadline());
        }
        self.earliest = earliest;
    }
}

#[cfg(test)]
#[path = "bridge_tests.rs"]
mod tests;
