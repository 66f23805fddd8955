//! Control frames in, reply frames out: the shard's request handler, sans-IO.
//!
//! [`handle_frame`] decodes one command frame from the command ring, applies it to the
//! shard's [`Relay`] and encodes the typed reply into the caller's buffer. It never panics:
//! a frame that does not decode (truncated, unknown kind, bad body) gets an error reply with
//! `ErrorCode::BadRequest` carrying the request id when the header was readable, so the host
//! can fail just that request. A frame without a readable header gets a reply to id 0.

use wavegate_shared::RequestId;
use wavegate_shared::protocol::{
    self, Answer, AnyCommand, BrowserAnswer, Command, ControlError, Delete, Done, ErrorCode, FrameError, InjectDtmf,
    Offer, OfferToBrowser, Ping, Pong, Query, SdpReply, ShardCounters, ShardStats, Stats, WebRtcOffer,
};

use crate::relay::{PortSockets, Relay};
use crate::webrtc::bridge::{Bridge, BridgeIo, BridgeSockets};

/// Why no reply frame could be produced (encoding only; requests themselves never fail here).
#[derive(Debug, thiserror::Error)]
pub enum ControlFrameError {
    /// The reply could not be encoded.
    #[error("cannot encode reply: {0}")]
    Encode(#[from] FrameError),
}

/// Handles one command frame for a shard without WebRTC; the reply frame is left in `out`.
pub fn handle_frame(
    relay: &mut Relay,
    now_ns: u64,
    frame: &[u8],
    sockets: &mut dyn PortSockets,
    out: &mut Vec<u8>,
) -> Result<(), ControlFrameError> {
    handle_frame_with(relay, None, now_ns, frame, &mut PortsOnly(sockets), out)
}

/// [`PortSockets`] without a WebRTC socket: nothing is ever sent through it.
struct PortsOnly<'a>(&'a mut dyn PortSockets);

impl PortSockets for PortsOnly<'_> {
    fn open(&mut self, rtp_port: u16) -> std::io::Result<()> {
        self.0.open(rtp_port)
    }
    fn close(&mut self, rtp_port: u16) {
        self.0.close(rtp_port);
    }
    fn traffic(&self) -> wavegate_shared::protocol::ShardTraffic {
        self.0.traffic()
    }
}

impl BridgeIo for PortsOnly<'_> {
    fn send_webrtc(&mut self, _: std::net::SocketAddr, _: &[u8]) {}
    fn send_rtp(&mut self, _: u16, _: std::net::SocketAddr, _: &[u8]) {}
}

/// Handles one command frame; WebRTC calls go to `bridge` (when the shard has a WebRTC socket,
/// else `WebRtcOffer` is refused). The reply frame is left in `out`.
pub fn handle_frame_with(
    relay: &mut Relay,
    mut bridge: Option<&mut Bridge>,
    now_ns: u64,
    frame: &[u8],
    sockets: &mut dyn BridgeSockets,
    out: &mut Vec<u8>,
) -> Result<(), ControlFrameError> {
    let (id, command) = match protocol::decode_any_command(frame) {
        Ok(x) => x,
        Err((header, e)) => {
            let (kind, id) = header.map_or((0, RequestId(0)), |h| (h.kind, h.id));
            tracing::warn!(kind, id = id.0, error = %e, "undecodable control frame");
            let reply = ControlError::new(ErrorCode::BadRequest, e.to_string());
            protocol::encode_error_reply(kind, id, &reply, out)?;
            return Ok(());
        }
    };
    match command {
        AnyCommand::Command(Command::Ping(Ping)) => {
            let calls = relay.call_count() + bridge.as_ref().map_or(0, |b| b.call_count());
            let pong = Pong { shard: relay.config().shard, calls: calls as u32 };
            protocol::encode_reply::<Ping>(id, &Ok(pong), out)?;
        }
        AnyCommand::Command(Command::Offer(o)) if bridge.as_ref().is_some_and(|b| b.has_call(&o.call)) => {
            // A SIP re-INVITE on a WebRTC call (hold, resume, new media address).
            let r = match bridge.as_deref_mut() {
                Some(b) => b.sip_reoffer(&o.call, &o.sdp).map(|sdp| SdpReply { sdp }),
                None => Err(disabled()),
            };
            log_outcome("sip re-offer", &o.call, &r);
            protocol::encode_reply::<Offer>(id, &r, out)?;
        }
        AnyCommand::Command(Command::Offer(o)) => {
            let r =
                relay.offer(now_ns, &o.call, &o.from_tag, &o.sdp, &o.flags, &mut *sockets).map(|sdp| SdpReply { sdp });
            log_outcome("offer", &o.call, &r);
            protocol::encode_reply::<Offer>(id, &r, out)?;
        }
        AnyCommand::Command(Command::Answer(a)) => {
            let r = match bridge.as_deref_mut().filter(|b| b.has_call(&a.call)) {
                Some(b) => b.answer(&a.call, &a.to_tag, &a.sdp),
                None => relay.answer(now_ns, &a.call, &a.from_tag, &a.to_tag, &a.sdp, &mut *sockets),
            }
            .map(|sdp| SdpReply { sdp });
            log_outcome("answer", &a.call, &r);
            protocol::encode_reply::<Answer>(id, &r, out)?;
        }
        AnyCommand::Command(Command::Delete(d)) => {
            let r = match bridge.as_deref_mut().filter(|b| b.has_call(&d.call)) {
                Some(b) => b.delete(now_ns, &d.call, relay, sockets),
                None => relay.delete(now_ns, &d.call, &mut *sockets),
            };
            log_outcome("delete", &d.call, &r);
            protocol::encode_reply::<Delete>(id, &r, out)?;
        }
        AnyCommand::Command(Command::Query(q)) => {
            let r = match bridge.as_deref().filter(|b| b.has_call(&q.call)) {
                Some(b) => b.query(now_ns, &q.call),
                None => relay.query(now_ns, &q.call),
            };
            protocol::encode_reply::<Query>(id, &r, out)?;
        }
        AnyCommand::WebRtcOffer(o) => {
            let r = match bridge {
                Some(b) => b.offer(now_ns, &o.call, &o.from_tag, &o.sdp, &o.flags, relay, sockets),
                None => Err(disabled()),
            };
            log_outcome("webrtc offer", &o.call, &r);
            protocol::encode_reply::<WebRtcOffer>(id, &r, out)?;
        }
        AnyCommand::OfferToBrowser(o) => {
            let r = match bridge {
                Some(b) => {
                    b.offer_to_browser(now_ns, &o.call, &o.from_tag, o.sip_sdp.as_deref(), &o.flags, relay, sockets)
                }
                None => Err(disabled()),
            };
            log_outcome("offer to browser", &o.call, &r);
            protocol::encode_reply::<OfferToBrowser>(id, &r, out)?;
        }
        AnyCommand::BrowserAnswer(a) => {
            let r = match bridge {
                Some(b) => b.browser_answer(now_ns, &a.call, &a.to_tag, &a.sdp, sockets).map(|sdp| SdpReply { sdp }),
                None => Err(disabled()),
            };
            log_outcome("browser answer", &a.call, &r);
            protocol::encode_reply::<BrowserAnswer>(id, &r, out)?;
        }
        AnyCommand::Stats(q) => {
            let r = match bridge.as_deref() {
                Some(b) => b.stats(&q.call),
                None => Err(disabled()),
            };
            protocol::encode_reply::<Stats>(id, &r, out)?;
        }
        AnyCommand::ShardStats(ShardStats) => {
            let calls = relay.call_count() + bridge.as_ref().map_or(0, |b| b.call_count());
            let counters = ShardCounters {
                shard: relay.config().shard,
                calls: calls as u32,
                webrtc: bridge.as_ref().map(|b| b.drops().clone()).unwrap_or_default(),
                traffic: sockets.traffic(),
                transcoding_legs: bridge.as_ref().map_or(0, |b| b.transcoding_legs()) as u32,
            };
            protocol::encode_reply::<ShardStats>(id, &Ok(counters), out)?;
        }
        AnyCommand::InjectDtmf(d) => {
            let r = match bridge {
                Some(b) => b.inject_dtmf(now_ns, &d.call, d.toward, d.digit, d.duration_ms, sockets).map(|()| Done),
                None => Err(disabled()),
            };
            log_outcome("inject dtmf", &d.call, &r);
            protocol::encode_reply::<InjectDtmf>(id, &r, out)?;
        }
    }
    Ok(())
}

fn disabled() -> ControlError {
    ControlError::new(ErrorCode::Internal, "WebRTC is disabled (--webrtc-port-base 0)")
}

fn log_outcome<T>(what: &str, call: &wavegate_shared::CallId, r: &Result<T, ControlError>) {
    match r {
        Ok(_) => tracing::debug!(call = %call, "{what} ok"),
        Err(e) => {
            tracing::info!(call = %call, code = ?e.code, error = %e.message, "{what} refused")
        }
    }
}
