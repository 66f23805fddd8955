//! The typed messages of the control channel and their frame encoding.
//!
//! A frame is `kind: u8 | request_id: u64 LE | body` where the body is postcard-encoded. Every
//! request type implements [`Request`], which names its kind and its reply type (mediasoup's
//! pattern), so a caller can never pair a request with the wrong reply. A reply frame carries
//! `kind | 0x80` and the request's id; its body is `Result<Reply, ControlError>`. Unsolicited
//! media-plane events use [`EVENT_KIND`] and request id 0.
//!
//! Requests are idempotent by call id + leg tag: repeating an `Offer` for the same
//! `(call, from_tag)` returns the same local ports, `Delete` of an unknown call is an error
//! the caller may ignore, and `Query` has no side effects.
//!
//! Decoding never panics: unknown kinds, truncated headers, trailing bytes and malformed
//! bodies all come back as [`FrameError`].

use std::net::SocketAddr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ids::{CallId, LegTag, RequestId, ShardId};

mod traffic;
mod webrtc;
pub use traffic::*;
pub use webrtc::*;

/// Bytes before the body: kind (1) + request id (8).
pub const FRAME_HEADER_LEN: usize = 9;
/// Kind byte of unsolicited media-plane events.
pub const EVENT_KIND: u8 = 0x40;
/// Bit set in the kind byte of a reply.
pub const REPLY_BIT: u8 = 0x80;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than the fixed frame header.
    #[error("frame of {len} bytes is shorter than its {FRAME_HEADER_LEN}-byte header")]
    Truncated { len: usize },
    /// The kind byte names no known message.
    #[error("unknown message kind 0x{0:02x}")]
    UnknownKind(u8),
    /// The kind byte is known but not the one the reader expected here.
    #[error("expected message kind 0x{expected:02x}, got 0x{got:02x}")]
    UnexpectedKind { expected: u8, got: u8 },
    /// The body did not decode as the kind's schema.
    #[error("malformed body for kind 0x{kind:02x}: {reason}")]
    Body { kind: u8, reason: String },
    /// The body decoded but bytes were left over.
    #[error("{extra} trailing bytes after the body of kind 0x{kind:02x}")]
    Trailing { kind: u8, extra: usize },
    /// Encoding failed (only for values postcard cannot represent).
    #[error("cannot encode frame: {0}")]
    Encode(String),
}

/// Request kinds, one per request type. Values are part of the wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CommandKind {
    /// [`Ping`]
    Ping = 1,
    /// [`Offer`]
    Offer = 2,
    /// [`Answer`]
    Answer = 3,
    /// [`Delete`]
    Delete = 4,
    /// [`Query`]
    Query = 5,
    /// [`WebRtcOffer`]
    WebRtcOffer = 6,
    /// [`OfferToBrowser`]
    OfferToBrowser = 7,
    /// [`BrowserAnswer`]
    BrowserAnswer = 8,
    /// [`InjectDtmf`]
    InjectDtmf = 9,
    /// [`Stats`]
    Stats = 10,
    /// [`ShardStats`]
    ShardStats = 11,
}

impl CommandKind {
    /// Maps a wire byte to a kind.
    pub fn from_byte(b: u8) -> Result<Self, FrameError> {
        Ok(match b {
            1 => Self::Ping,
            2 => Self::Offer,
            3 => Self::Answer,
            4 => Self::Delete,
            5 => Self::Query,
            6 => Self::WebRtcOffer,
            7 => Self::OfferToBrowser,
            8 => Self::BrowserAnswer,
            9 => Self::InjectDtmf,
            10 => Self::Stats,
            11 => Self::ShardStats,
            other => return Err(FrameError::UnknownKind(other)),
        })
    }
}

/// A control request: names its wire kind and the type of its reply.
pub trait Request: Serialize + DeserializeOwned {
    /// The wire kind of this request.
    const KIND: CommandKind;
    /// What a successful reply carries.
    type Reply: Serialize + DeserializeOwned;
}

/// Liveness probe; also reports the shard's load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping;

/// Reply to [`Ping`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The shard that answered.
    pub shard: ShardId,
    /// Calls it currently holds.
    pub calls: u32,
}

impl Request for Ping {
    const KIND: CommandKind = CommandKind::Ping;
    type Reply = Pong;
}

/// Per-offer options that are not in the SDP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferFlags {
    /// Seconds without any received media before `MediaTimeout`; `None` uses the media
    /// plane's configured default, `Some(0)` disables the timeout for this call.
    pub media_timeout_secs: Option<u32>,
    /// WebRTC calls the browser offered (`WebRtcOffer`): when the SIP side's answer makes the
    /// call transcode the browser's Opus to an 8 or 16 kHz codec, the media plane re-offers
    /// to the browser with Opus capped at that rate ([`MediaEvent::BrowserReoffer`]), so it
    /// sends cheaper narrowband (wideband) Opus. Only for callers that forward the re-offer to
    /// the browser and its answer back ([`BrowserAnswer`]); protocol version 7.
    pub browser_reoffer: bool,
}

/// The offerer's SDP: creates (or refreshes) the call and its two legs. The reply's SDP is
/// what the signalling side sends to the answerer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The call.
    pub call: CallId,
    /// The offerer's leg.
    pub from_tag: LegTag,
    /// The offerer's SDP body.
    pub sdp: String,
    /// Options outside the SDP.
    pub flags: OfferFlags,
}

/// Reply to [`Offer`] and [`Answer`]: the rewritten SDP for the other side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdpReply {
    /// SDP pointing the other side at the media plane.
    pub sdp: String,
}

impl Request for Offer {
    const KIND: CommandKind = CommandKind::Offer;
    type Reply = SdpReply;
}

/// The answerer's SDP for a call created by an [`Offer`]. The reply's SDP goes to the offerer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The call.
    pub call: CallId,
    /// The offerer's leg, as given in the offer.
    pub from_tag: LegTag,
    /// The answerer's leg.
    pub to_tag: LegTag,
    /// The answerer's SDP body.
    pub sdp: String,
}

impl Request for Answer {
    const KIND: CommandKind = CommandKind::Answer;
    type Reply = SdpReply;
}

/// Ends a call and frees its ports; replies with its final counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delete {
    /// The call.
    pub call: CallId,
}

impl Request for Delete {
    const KIND: CommandKind = CommandKind::Delete;
    type Reply = CallStats;
}

/// Reads a call's counters without changing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// The call.
    pub call: CallId,
}

impl Request for Query {
    const KIND: CommandKind = CommandKind::Query;
    type Reply = CallStats;
}

/// Counters of one leg, as seen by the media plane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegStats {
    /// The leg.
    pub tag: Option<LegTag>,
    /// Local RTP address the peer sends to.
    pub local_rtp: Option<SocketAddr>,
    /// Where the media plane sends this leg's media (latched or from SDP).
    pub remote_rtp: Option<SocketAddr>,
    /// RTP packets received from this leg's peer.
    pub rtp_packets_in: u64,
    /// RTP bytes received from this leg's peer.
    pub rtp_bytes_in: u64,
    /// RTP packets sent to this leg's peer.
    pub rtp_packets_out: u64,
    /// RTP bytes sent to this leg's peer.
    pub rtp_bytes_out: u64,
    /// RTCP packets received from this leg's peer.
    pub rtcp_packets_in: u64,
    /// RTCP packets sent to this leg's peer.
    pub rtcp_packets_out: u64,
    /// Packets dropped on this leg's ports (strangers, malformed, unknown payload type).
    pub dropped: u64,
}

/// Counters of a call: its two legs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStats {
    /// The call.
    pub call: Option<CallId>,
    /// The offerer's leg.
    pub offerer: LegStats,
    /// The answerer's leg.
    pub answerer: LegStats,
    /// Milliseconds since the call was created.
    pub age_ms: u64,
}

/// Classes of failure a request can end in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// No call with that id on this shard.
    UnknownCall,
    /// The SDP could not be parsed or used.
    BadSdp,
    /// No free ports in the shard's range.
    NoPorts,
    /// An `Answer` named a `from_tag` that did not offer.
    UnknownLeg,
    /// The request frame was malformed (bad body, unknown kind).
    BadRequest,
    /// Anything else inside the media plane.
    Internal,
    /// The two sides share no codec and transcoding is disabled (`media.transcoding = false`);
    /// the message is the call's cause, "Transcoding required but disabled" (protocol
    /// version 6).
    TranscodingDisabled,
}

/// A failed request's reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ControlError {
    /// Class of failure.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

impl ControlError {
    /// Builds an error of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// Unsolicited news from a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MediaEvent {
    /// No media arrived on any leg of the call for the configured time.
    MediaTimeout {
        /// The call.
        call: CallId,
        /// Seconds of silence observed.
        idle_secs: u32,
    },
    /// A leg could not go on (socket error).
    LegFailed {
        /// The call.
        call: CallId,
        /// The leg, when known.
        tag: Option<LegTag>,
        /// Why.
        cause: String,
    },
    /// A DTMF digit received as RFC 4733 telephone-events on a leg of a WebRTC call (reported
    /// once per event, when it ends, whatever the number of packets).
    DtmfReceived {
        /// The call.
        call: CallId,
        /// The leg it came from.
        tag: Option<LegTag>,
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        digit: char,
        /// The event's duration.
        duration_ms: u32,
    },
    /// A new offer for the browser of a call (a server-initiated renegotiation: same media,
    /// ICE and DTLS; only format parameters change, e.g. Opus capped at the SIP side's rate).
    /// The browser's answer comes back as a [`BrowserAnswer`] (reply SDP empty). Until then
    /// the call goes on as negotiated; an answer that never comes is given up after a timeout
    /// (logged), and a browser offer in the meantime wins (ours is withdrawn). Protocol
    /// version 7.
    BrowserReoffer {
        /// The call.
        call: CallId,
        /// The browser's leg.
        tag: Option<LegTag>,
        /// The offer.
        sdp: String,
    },
}

/// Appends a request frame for `req` to `out` (which is cleared first).
pub fn encode_request<R: Request>(id: RequestId, req: &R, out: &mut Vec<u8>) -> Result<(), FrameError> {
    encode(R::KIND as u8, id, req, out)
}

/// Appends a reply frame answering request `id` of kind `R::KIND`.
pub fn encode_reply<R: Request>(
    id: RequestId,
    reply: &Result<R::Reply, ControlError>,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    encode(R::KIND as u8 | REPLY_BIT, id, reply, out)
}

/// Encodes an error reply to a request whose kind byte may be unknown or whose body was bad.
pub fn encode_error_reply(kind: u8, id: RequestId, err: &ControlError, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let reply: Result<(), &ControlError> = Err(err);
    encode(kind | REPLY_BIT, id, &reply, out)
}

/// Encodes an unsolicited event frame.
pub fn encode_event(event: &MediaEvent, out: &mut Vec<u8>) -> Result<(), FrameError> {
    encode(EVENT_KIND, RequestId(0), event, out)
}

fn encode<T: Serialize + ?Sized>(kind: u8, id: RequestId, body: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    out.clear();
    out.push(kind);
    out.extend_from_slice(&id.0.to_le_bytes());
    let taken = std::mem::take(out);
    *out = postcard::to_extend(body, taken).map_err(|e| FrameError::Encode(e.to_string()))?;
    Ok(())
}

/// The fixed header of a frame, read without touching the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Kind byte as sent.
    pub kind: u8,
    /// Request id (0 for events).
    pub id: RequestId,
}

/// Splits a frame into its header and body.
pub fn split_frame(frame: &[u8]) -> Result<(FrameHeader, &[u8]), FrameError> {
    if frame.len() < FRAME_HEADER_LEN {
        return Err(FrameError::Truncated { len: frame.len() });
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&frame[1..FRAME_HEADER_LEN]);
    Ok((FrameHeader { kind: frame[0], id: RequestId(u64::from_le_bytes(id)) }, &frame[FRAME_HEADER_LEN..]))
}

/// Decodes a body as `T`, insisting that every byte is used.
pub fn decode_body<T: DeserializeOwned>(kind: u8, body: &[u8]) -> Result<T, FrameError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| FrameError::Body { kind, reason: e.to_string() })?;
    if !rest.is_empty() {
        return Err(FrameError::Trailing { kind, extra: rest.len() });
    }
    Ok(value)
}

/// A request as the media plane receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// [`Ping`]
    Ping(Ping),
    /// [`Offer`]
    Offer(Offer),
    /// [`Answer`]
    Answer(Answer),
    /// [`Delete`]
    Delete(Delete),
    /// [`Query`]
    Query(Query),
}

/// Every request the media plane understands: [`Command`] plus the kinds added after it, which
/// stay out of [`Command`] so that code matching it exhaustively in other crates (test doubles,
/// the load generator's fake media plane) keeps compiling; [`decode_command`] reports them as
/// unknown kinds. Fold them into [`Command`] once those crates handle them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyCommand {
    /// One of the original requests.
    Command(Command),
    /// [`WebRtcOffer`]
    WebRtcOffer(WebRtcOffer),
    /// [`OfferToBrowser`]
    OfferToBrowser(OfferToBrowser),
    /// [`BrowserAnswer`]
    BrowserAnswer(BrowserAnswer),
    /// [`InjectDtmf`]
    InjectDtmf(InjectDtmf),
    /// [`Stats`]
    Stats(Stats),
    /// [`ShardStats`]
    ShardStats(ShardStats),
}

/// Decodes a command frame of one of the original kinds ([`Command`]); a later kind is an
/// `UnknownKind` error here (see [`decode_any_command`]). On error the header (when readable)
/// is returned too, so the media plane can send an error reply the caller can match to its
/// request.
pub fn decode_command(frame: &[u8]) -> Result<(RequestId, Command), (Option<FrameHeader>, FrameError)> {
    match decode_any_command(frame)? {
        (id, AnyCommand::Command(cmd)) => Ok((id, cmd)),
        (_, _) => {
            let header = split_frame(frame).map_err(|e| (None, e))?.0;
            Err((Some(header), FrameError::UnknownKind(header.kind)))
        }
    }
}

/// Decodes a command frame of any kind; errors as for [`decode_command`].
pub fn decode_any_command(frame: &[u8]) -> Result<(RequestId, AnyCommand), (Option<FrameHeader>, FrameError)> {
    let (header, body) = split_frame(frame).map_err(|e| (None, e))?;
    let kind = CommandKind::from_byte(header.kind).map_err(|e| (Some(header), e))?;
    let k = header.kind;
    let cmd = match kind {
        CommandKind::Ping => decode_body(k, body).map(Command::Ping),
        CommandKind::Offer => decode_body(k, body).map(Command::Offer),
        CommandKind::Answer => decode_body(k, body).map(Command::Answer),
        CommandKind::Delete => decode_body(k, body).map(Command::Delete),
        CommandKind::Query => decode_body(k, body).map(Command::Query),
        CommandKind::WebRtcOffer => return later(header, body, AnyCommand::WebRtcOffer),
        CommandKind::OfferToBrowser => return later(header, body, AnyCommand::OfferToBrowser),
        CommandKind::BrowserAnswer => return later(header, body, AnyCommand::BrowserAnswer),
        CommandKind::InjectDtmf => return later(header, body, AnyCommand::InjectDtmf),
        CommandKind::Stats => return later(header, body, AnyCommand::Stats),
        CommandKind::ShardStats => return later(header, body, AnyCommand::ShardStats),
    }
    .map_err(|e| (Some(header), e))?;
    Ok((header.id, AnyCommand::Command(cmd)))
}

/// Decodes the body of one of the kinds outside [`Command`].
fn later<T: DeserializeOwned>(
    header: FrameHeader,
    body: &[u8],
    wrap: fn(T) -> AnyCommand,
) -> Result<(RequestId, AnyCommand), (Option<FrameHeader>, FrameError)> {
    let value = decode_body(header.kind, body).map_err(|e| (Some(header), e))?;
    Ok((header.id, wrap(value)))
}

/// What arrives on an event ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A reply to request `id`; decode `body` with [`decode_reply`] for the request's type.
    Reply {
        /// The request it answers.
        id: RequestId,
        /// Kind byte of the request it answers (without [`REPLY_BIT`]).
        kind: u8,
        /// The still-encoded `Result<Reply, ControlError>`.
        body: &'a [u8],
    },
    /// An unsolicited event.
    Event(MediaEvent),
}

/// Sorts an event-ring frame into a reply (still encoded) or a decoded event.
pub fn decode_incoming(frame: &[u8]) -> Result<Incoming<'_>, FrameError> {
    let (header, body) = split_frame(frame)?;
    if header.kind == EVENT_KIND {
        return decode_body(header.kind, body).map(Incoming::Event);
    }
    if header.kind & REPLY_BIT != 0 {
        return Ok(Incoming::Reply { id: header.id, kind: header.kind & !REPLY_BIT, body });
    }
    Err(FrameError::UnknownKind(header.kind))
}

/// Decodes the body of a reply to an `R`.
pub fn decode_reply<R: Request>(kind: u8, body: &[u8]) -> Result<Result<R::Reply, ControlError>, FrameError> {
    if kind != R::KIND as u8 {
        // An error reply to a request the media plane could not parse still names its kind;
        // any other mismatch is a protocol fault.
        return Err(FrameError::UnexpectedKind { expected: R::KIND as u8, got: kind });
    }
    decode_body(kind | REPLY_BIT, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn offer() -> Offer {
        Offer {
            call: CallId::new("c1@host").unwrap(),
            from_tag: LegTag::new("ft").unwrap(),
            sdp: "v=0\r\n".into(),
            flags: OfferFlags { media_timeout_secs: Some(30), browser_reoffer: true },
        }
    }

    #[test]
    fn request_roundtrip() {
        let mut buf = Vec::new();
        encode_request(RequestId(42), &offer(), &mut buf).unwrap();
        let (id, cmd) = decode_command(&buf).unwrap();
        assert_eq!(id, RequestId(42));
        assert_eq!(cmd, Command::Offer(offer()));
    }

    #[test]
    fn webrtc_offer_roundtrip() {
        let req = WebRtcOffer {
            call: CallId::new("w1@host").unwrap(),
            from_tag: LegTag::new("b").unwrap(),
            sdp: "v=0\r\n".into(),
            flags: OfferFlags::default(),
        };
        let mut buf = Vec::new();
        encode_request(RequestId(9), &req, &mut buf).unwrap();
        assert_eq!(buf[0], 6, "wire kind of WebRtcOffer");
        assert_eq!(decode_any_command(&buf).unwrap(), (RequestId(9), AnyCommand::WebRtcOffer(req)));
        assert!(
            matches!(decode_command(&buf), Err((Some(_), FrameError::UnknownKind(6)))),
            "the original decoder does not know it"
        );
        let reply: Result<WebRtcOfferReply, ControlError> =
            Ok(WebRtcOfferReply { browser_answer: "a".into(), sip_offer: "o".into() });
        let mut buf = Vec::new();
        encode_reply::<WebRtcOffer>(RequestId(9), &reply, &mut buf).unwrap();
        let Incoming::Reply { id, kind, body } = decode_incoming(&buf).unwrap() else { panic!("not a reply") };
        assert_eq!(id, RequestId(9));
        assert_eq!(decode_reply::<WebRtcOffer>(kind, body).unwrap(), reply);
        assert!(decode_reply::<Offer>(kind, body).is_err(), "typed: an Offer reply reader refuses it");
    }

    #[test]
    fn later_kinds_roundtrip() {
        let call = CallId::new("in@host").unwrap();
        let reqs = [
            (
                7u8,
                AnyCommand::OfferToBrowser(OfferToBrowser {
                    call: call.clone(),
                    from_tag: LegTag::new("c").unwrap(),
                    sip_sdp: None,
                    flags: OfferFlags::default(),
                }),
            ),
            (
                8,
                AnyCommand::BrowserAnswer(BrowserAnswer {
                    call: call.clone(),
                    to_tag: LegTag::new("b").unwrap(),
                    sdp: "v=0".into(),
                }),
            ),
            (
                9,
                AnyCommand::InjectDtmf(InjectDtmf {
                    call: call.clone(),
                    toward: DtmfToward::Sip,
                    digit: '#',
                    duration_ms: 100,
                }),
            ),
            (10, AnyCommand::Stats(Stats { call: call.clone() })),
            (11, AnyCommand::ShardStats(ShardStats)),
        ];
        for (kind, cmd) in reqs {
            let mut buf = Vec::new();
            match &cmd {
                AnyCommand::OfferToBrowser(r) => encode_request(RequestId(3), r, &mut buf).unwrap(),
                AnyCommand::BrowserAnswer(r) => encode_request(RequestId(3), r, &mut buf).unwrap(),
                AnyCommand::InjectDtmf(r) => encode_request(RequestId(3), r, &mut buf).unwrap(),
                AnyCommand::Stats(r) => encode_request(RequestId(3), r, &mut buf).unwrap(),
                AnyCommand::ShardStats(r) => encode_request(RequestId(3), r, &mut buf).unwrap(),
                _ => unreachable!("only later kinds listed"),
            }
            assert_eq!(buf[0], kind);
            assert_eq!(decode_any_command(&buf).unwrap(), (RequestId(3), cmd));
            assert!(matches!(decode_command(&buf), Err((Some(_), FrameError::UnknownKind(k))) if k == kind));
        }
        let mut buf = Vec::new();
        let ev = MediaEvent::DtmfReceived { call, tag: None, digit: '7', duration_ms: 120 };
        encode_event(&ev, &mut buf).unwrap();
        assert_eq!(decode_incoming(&buf).unwrap(), Incoming::Event(ev));
    }

    #[test]
    fn reply_roundtrip_ok_and_err() {
        let mut buf = Vec::new();
        let ok: Result<SdpReply, ControlError> = Ok(SdpReply { sdp: "x".into() });
        encode_reply::<Offer>(RequestId(7), &ok, &mut buf).unwrap();
        let Incoming::Reply { id, kind, body } = decode_incoming(&buf).unwrap() else { panic!() };
        assert_eq!(id, RequestId(7));
        assert_eq!(decode_reply::<Offer>(kind, body).unwrap(), ok);

        let err = ControlError::new(ErrorCode::UnknownCall, "no such call");
        encode_error_reply(CommandKind::Query as u8, RequestId(8), &err, &mut buf).unwrap();
        let Incoming::Reply { kind, body, .. } = decode_incoming(&buf).unwrap() else { panic!() };
        assert_eq!(decode_reply::<Query>(kind, body).unwrap(), Err(err));
    }

    #[test]
    fn event_roundtrip() {
        let mut buf = Vec::new();
        let ev = MediaEvent::MediaTimeout { call: CallId::new("c").unwrap(), idle_secs: 30 };
        encode_event(&ev, &mut buf).unwrap();
        assert_eq!(decode_incoming(&buf).unwrap(), Incoming::Event(ev));
        let ev = MediaEvent::BrowserReoffer {
            call: CallId::new("c").unwrap(),
            tag: Some(LegTag::new("browser").unwrap()),
            sdp: "v=0\r\na=fmtp:111 maxplaybackrate=8000\r\n".into(),
        };
        encode_event(&ev, &mut buf).unwrap();
        assert_eq!(decode_incoming(&buf).unwrap(), Incoming::Event(ev));
    }

    #[test]
    fn unknown_kind_is_an_error_with_header() {
        let mut frame = vec![0x33];
        frame.extend_from_slice(&5u64.to_le_bytes());
        let (header, err) = decode_command(&frame).unwrap_err();
        assert_eq!(err, FrameError::UnknownKind(0x33));
        assert_eq!(header.unwrap().id, RequestId(5));
    }

    #[test]
    fn truncated_and_trailing_are_errors() {
        assert_eq!(decode_command(&[1, 2]).unwrap_err().1, FrameError::Truncated { len: 2 });
        let mut buf = Vec::new();
        encode_request(RequestId(1), &Ping, &mut buf).unwrap();
        buf.push(0);
        assert!(matches!(decode_command(&buf).unwrap_err().1, FrameError::Trailing { .. }));
    }

    #[test]
    fn bad_call_id_inside_body_is_rejected() {
        let mut buf = Vec::new();
        encode_request(RequestId(1), &Delete { call: CallId::new("x").unwrap() }, &mut buf).unwrap();
        // Replace the one-byte id with a space: the id validator must refuse it.
        let last = buf.len() - 1;
        buf[last] = b' ';
        assert!(matches!(decode_command(&buf).unwrap_err().1, FrameError::Body { .. }));
    }

    #[test]
    fn mismatched_reply_kind_is_an_error() {
        let mut buf = Vec::new();
        encode_reply::<Ping>(RequestId(1), &Ok(Pong { shard: ShardId(0), calls: 0 }), &mut buf).unwrap();
        let Incoming::Reply { kind, body, .. } = decode_incoming(&buf).unwrap() else { panic!() };
        assert!(matches!(decode_reply::<Query>(kind, body), Err(FrameError::UnexpectedKind { .. })));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_command(&bytes);
            let _ = decode_incoming(&bytes);
        }

        #[test]
        fn offers_roundtrip(call in "[!-~]{1,64}", tag in "[!-~]{1,32}", sdp in ".{0,300}", id in any::<u64>(), t in proptest::option::of(any::<u32>())) {
            let offer = Offer {
                call: CallId::new(&call).unwrap(),
                from_tag: LegTag::new(&tag).unwrap(),
                sdp,
                flags: OfferFlags { media_timeout_secs: t, browser_reoffer: t.is_some() },
            };
            let mut buf = Vec::new();
            encode_request(RequestId(id), &offer, &mut buf).unwrap();
            prop_assert_eq!(decode_command(&buf).unwrap(), (RequestId(id), Command::Offer(offer)));
        }
    }
}
