//! The WebRTC requests of the control channel and their replies: the browser's offer and ours,
//! the browser's answer, DTMF injection, per-leg quality and the shard's drop counters. Split
//! from `protocol.rs` by concern; the frame encoding and the kind numbers stay there, and every
//! item here is re-exported from `protocol`, so callers name them as before.

use serde::{Deserialize, Serialize};

use super::{CommandKind, OfferFlags, Request, SdpReply};
use crate::ids::{CallId, LegTag, ShardId};

/// A browser's offer for a WebRTC <-> RTP call: the media plane terminates the browser's peer
/// connection (ICE-lite, DTLS-SRTP) and makes a plain RTP/AVP offer for the SIP side from the
/// codecs both can share without transcoding. The SIP side's SDP then completes the call with
/// an [`Answer`](super::Answer) (its reply SDP is empty: the browser already has its answer). Media is relayed
/// as is (passthrough), so the SIP side must pick a codec the browser negotiated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebRtcOffer {
    /// The call.
    pub call: CallId,
    /// The browser's leg.
    pub from_tag: LegTag,
    /// The browser's SDP offer (ICE, DTLS fingerprint, SRTP).
    pub sdp: String,
    /// Options outside the SDP.
    pub flags: OfferFlags,
}

/// Reply to [`WebRtcOffer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebRtcOfferReply {
    /// The answer for the browser (ICE-lite, one host candidate, the shard's fingerprint).
    pub browser_answer: String,
    /// A plain RTP/AVP offer pointing the SIP side at one of the media plane's RTP ports.
    pub sip_offer: String,
}

impl Request for WebRtcOffer {
    const KIND: CommandKind = CommandKind::WebRtcOffer;
    type Reply = WebRtcOfferReply;
}

/// An incoming SIP call towards a browser: the media plane makes the offer for the browser (its
/// WebRTC leg is the offerer: ICE-lite, the shard's DTLS fingerprint, `a=setup:actpass`) from the
/// codecs the SIP caller offered that a browser can take without transcoding (Opus, G.722, PCMU,
/// PCMA, and telephone-event), keeping the SIP side's payload-type numbers. With `sip_sdp: None`
/// (a SIP INVITE without SDP, "delayed offer") the browser is offered every passthrough codec
/// and the SIP side gets our offer later, in the [`BrowserAnswer`] reply. The browser's answer
/// completes the call with a [`BrowserAnswer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferToBrowser {
    /// The call.
    pub call: CallId,
    /// The SIP caller's leg.
    pub from_tag: LegTag,
    /// The SIP caller's SDP offer; `None` for an INVITE without SDP.
    pub sip_sdp: Option<String>,
    /// Options outside the SDP.
    pub flags: OfferFlags,
}

/// Reply to [`OfferToBrowser`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferToBrowserReply {
    /// The offer for the browser (ICE-lite, one host candidate, the shard's fingerprint).
    pub browser_offer: String,
}

impl Request for OfferToBrowser {
    const KIND: CommandKind = CommandKind::OfferToBrowser;
    type Reply = OfferToBrowserReply;
}

/// The browser's answer to the offer made by [`OfferToBrowser`]. The reply's SDP goes to the SIP
/// side: the SDP *answer* when the SIP caller sent an offer, else (delayed offer) a plain
/// RTP/AVP *offer*, whose answer (in the SIP ACK) then comes in an ordinary [`Answer`](super::Answer).
///
/// Also the browser's answer to a re-offer of ours
/// ([`MediaEvent::BrowserReoffer`](super::MediaEvent::BrowserReoffer), on a call either side
/// set up): the reply SDP is then empty (the SIP side is not renegotiated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowserAnswer {
    /// The call.
    pub call: CallId,
    /// The browser's leg.
    pub to_tag: LegTag,
    /// The browser's SDP answer.
    pub sdp: String,
}

impl Request for BrowserAnswer {
    const KIND: CommandKind = CommandKind::BrowserAnswer;
    type Reply = SdpReply;
}

/// Which side of a WebRTC <-> SIP call a DTMF event is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DtmfToward {
    /// The browser's WebRTC leg.
    Browser,
    /// The SIP side's RTP.
    Sip,
}

/// Sends one DTMF digit as RFC 4733 telephone-events toward one side of a WebRTC call: a start
/// packet with the marker bit, a continuation every 50 ms, then three end packets (E bit, same
/// timestamp). Refused (`BadSdp`) when that side did not negotiate telephone-event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectDtmf {
    /// The call.
    pub call: CallId,
    /// Where the events go.
    pub toward: DtmfToward,
    /// `0`-`9`, `*`, `#`, `A`-`D`.
    pub digit: char,
    /// How long the tone lasts (40..=8000 ms is accepted).
    pub duration_ms: u32,
}

/// Reply to requests that only succeed or fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done;

impl Request for InjectDtmf {
    const KIND: CommandKind = CommandKind::InjectDtmf;
    type Reply = Done;
}

/// Reception quality of both legs of a WebRTC call (RTP counters, loss, jitter, RTT from RTCP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// The call.
    pub call: CallId,
}

impl Request for Stats {
    const KIND: CommandKind = CommandKind::Stats;
    type Reply = CallQuality;
}

/// Counters of the whole shard that belong to no call (datagrams refused before any call
/// could own them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardStats;

impl Request for ShardStats {
    const KIND: CommandKind = CommandKind::ShardStats;
    type Reply = ShardCounters;
}

/// Reply to [`ShardStats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCounters {
    /// The shard that answered.
    pub shard: ShardId,
    /// Calls it currently holds (relay and WebRTC).
    pub calls: u32,
    /// Drops at the shard's WebRTC socket (all zero when WebRTC is disabled).
    pub webrtc: WebRtcDrops,
    /// Packets and bytes each way and the relay's latency histogram, cumulative since the
    /// shard started (protocol version 5).
    pub traffic: super::ShardTraffic,
    /// WebRTC calls currently transcoding audio (their sides share no codec; protocol
    /// version 6).
    pub transcoding_legs: u32,
}

/// Datagrams dropped at a shard's WebRTC socket, by reason. Counted since the shard started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebRtcDrops {
    /// From a sender no leg knows: a STUN check for an unknown ufrag, or anything else from an
    /// unknown 5-tuple.
    pub strangers: u64,
    /// STUN that does not parse (bad length, truncated attribute).
    pub malformed_stun: u64,
    /// Connectivity checks for a known ufrag whose MESSAGE-INTEGRITY does not verify with the
    /// leg's password.
    pub stun_refused: u64,
    /// SRTP packets from a known 5-tuple that yielded no RTP: authentication failure, keys not
    /// yet agreed (before DTLS), or an SSRC no m-line owns.
    pub srtp_refused: u64,
    /// SRTP packets whose SSRC and sequence number were already delivered (replays, network
    /// duplicates).
    pub srtp_replayed: u64,
    /// Datagrams a leg refused outright (neither STUN, DTLS, RTP nor RTCP; str0m input errors).
    pub other: u64,
}

/// Reply to [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallQuality {
    /// The browser's WebRTC leg (figures from str0m's RTCP handling, refreshed every second).
    pub browser: LegQuality,
    /// The SIP side's RTP (measured by the media plane; remote figures from the peer's RTCP).
    pub sip: LegQuality,
    /// The call's video, when both sides negotiated a video m-line (protocol version 4).
    pub video: Option<VideoQuality>,
}

/// Counters of a call's video passthrough (VP8 / H.264) and its keyframe-request translation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoQuality {
    /// Video RTP packets received from the browser.
    pub packets_from_browser: u64,
    /// Of those, sent to the SIP side (not on hold, SIP side known).
    pub packets_to_sip: u64,
    /// Video RTP packets received from the SIP side (its negotiated formats, latched source).
    pub packets_from_sip: u64,
    /// Of those, sent to the browser.
    pub packets_to_browser: u64,
    /// Video datagrams dropped (strangers, unknown payload types, video not agreed).
    pub dropped: u64,
    /// Keyframe requests (PLI/FIR) the browser sent about our video.
    pub keyframe_requests_from_browser: u64,
    /// PLI/FIR packets we sent to the SIP side (translated from the browser's).
    pub keyframe_requests_to_sip: u64,
    /// RTCP packets from the SIP side carrying a PLI or FIR.
    pub keyframe_requests_from_sip: u64,
    /// Keyframe requests we made of the browser (translated, at start, periodic).
    pub keyframe_requests_to_browser: u64,
    /// Of those, periodic ones (SIP side without RTCP feedback).
    pub periodic_keyframe_requests: u64,
}

/// One leg's media quality. `*_in` is what we receive from the peer, `remote_*` what the peer
/// reports (RTCP receiver reports) about what we send it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegQuality {
    /// The leg.
    pub tag: Option<LegTag>,
    /// RTP packets received.
    pub packets_in: u64,
    /// RTP payload bytes received.
    pub bytes_in: u64,
    /// RTP packets sent.
    pub packets_out: u64,
    /// RTP payload bytes sent.
    pub bytes_out: u64,
    /// Packets lost on the way to us (expected minus received, RFC 3550 A.3).
    pub lost_in: u64,
    /// Interarrival jitter of what we receive, microseconds (RFC 3550 A.8).
    pub jitter_in_us: u32,
    /// Packets the peer reports lost of what we send (cumulative), when it sent a report.
    pub remote_lost: Option<u64>,
    /// Fraction the peer reports lost in its last interval, per 256, when reported.
    pub remote_fraction_lost: Option<u8>,
    /// Jitter the peer reports for what we send, microseconds, when reported.
    pub remote_jitter_us: Option<u32>,
    /// Round-trip time from RTCP, microseconds, when known.
    pub rtt_us: Option<u32>,
}
