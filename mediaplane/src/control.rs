//! Control frames in, reply frames out: the shard's request handler, sans-IO.
//!
//! [`handle_frame`] decodes one command frame from the command ring, applies it to the
//! shard's [`Relay`] and encodes the typed reply into the caller's buffer. It never panics:
//! a frame that does not decode (truncated, unknown kind, bad body) gets an error reply with
//! `ErrorCode::BadRequest` carrying the request id when the header was readable, so the host
//! can fail just that request. A frame without a readable header gets a reply to id 0.

use wavegate_shared::RequestId;
use wavegate_shared::protocol::{
    self, Answer, Command, ControlError, Delete, ErrorCode, FrameError, Offer, Ping, Pong, Query, SdpReply,
};

use crate::relay::{PortSockets, Relay};

/// Why no reply frame could be produced (encoding only; requests themselves never fail here).
#[derive(Debug, thiserror::Error)]
pub enum ControlFrameError {
    /// The reply could not be encoded.
    #[error("cannot encode reply: {0}")]
    Encode(#[from] FrameError),
}

/// Handles one command frame; the reply frame is left in `out`.
pub fn handle_frame(
    relay: &mut Relay,
    now_ns: u64,
    frame: &[u8],
    sockets: &mut dyn PortSockets,
    out: &mut Vec<u8>,
) -> Result<(), ControlFrameError> {
    let (id, command) = match protocol::decode_command(frame) {
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
        Command::Ping(Ping) => {
            let pong = Pong { shard: relay.config().shard, calls: relay.call_count() as u32 };
            protocol::encode_reply::<Ping>(id, &Ok(pong), out)?;
        }
        Command::Offer(o) => {
            let r = relay.offer(now_ns, &o.call, &o.from_tag, &o.sdp, &o.flags, sockets).map(|sdp| SdpReply { sdp });
            log_outcome("offer", &o.call, &r);
            protocol::encode_reply::<Offer>(id, &r, out)?;
        }
        Command::Answer(a) => {
            let r = relay.answer(now_ns, &a.call, &a.from_tag, &a.to_tag, &a.sdp, sockets).map(|sdp| SdpReply { sdp });
            log_outcome("answer", &a.call, &r);
            protocol::encode_reply::<Answer>(id, &r, out)?;
        }
        Command::Delete(d) => {
            let r = relay.delete(now_ns, &d.call, sockets);
            log_outcome("delete", &d.call, &r);
            protocol::encode_reply::<Delete>(id, &r, out)?;
        }
        Command::Query(q) => {
            protocol::encode_reply::<Query>(id, &relay.query(now_ns, &q.call), out)?;
        }
    }
    Ok(())
}

fn log_outcome<T>(what: &str, call: &wavegate_shared::CallId, r: &Result<T, ControlError>) {
    match r {
        Ok(_) => tracing::debug!(call = %call, "{what} ok"),
        Err(e) => tracing::info!(call = %call, code = ?e.code, error = %e.message, "{what} refused"),
    }
}
