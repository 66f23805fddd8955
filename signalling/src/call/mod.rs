//! The call model: the states a call goes through as seen by the browser session, and the cause
//! carried by every change. A call joins a browser-facing media leg and a SIP dialog; the
//! sans-IO cores here ([`outgoing::OutgoingCall`], [`incoming::IncomingCall`]) decide what to
//! send and what to report from SIP events and explicit time, and the SIP driver
//! (`sip::call`) only executes their [`Action`]s. Invariants: every [`StateChange`] carries a
//! [`Cause`]; once a call reports a final state (BUSY, FINISH, FAILED) it reports nothing else,
//! even while it still cleans up on the wire (a 200 that crosses our CANCEL is ACKed and BYEd
//! without a second report).

pub mod incoming;
pub mod outgoing;
pub mod transfer;

use std::fmt;

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallState {
    /// Created, nothing sent.
    New,
    /// Being set up (media offer, INVITE on its way, no answer yet).
    Pending,
    /// The far end said 100 Trying.
    Trying,
    /// Ringing without early media (180, or 183 when nothing better came).
    Ring,
    /// Ringing with early media (18x with SDP).
    RingMedia,
    /// 183 Session Progress without SDP.
    SessionProgress,
    /// Answered; media flows.
    Established,
    /// Answered, media held (either side).
    Hold,
    /// The callee is busy (486, 600).
    Busy,
    /// Ended normally (hangup, cancel).
    Finish,
    /// Failed (rejection, timeout, media or transport failure).
    Failed,
}

impl CallState {
    /// BUSY, FINISH and FAILED end the call.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CallState::Busy | CallState::Finish | CallState::Failed
        )
    }

    /// The upper-case name used on the session API (`RING_MEDIA`).
    pub fn name(self) -> &'static str {
        match self {
            CallState::New => "NEW",
            CallState::Pending => "PENDING",
            CallState::Trying => "TRYING",
            CallState::Ring => "RING",
            CallState::RingMedia => "RING_MEDIA",
            CallState::SessionProgress => "SESSION_PROGRESS",
            CallState::Established => "ESTABLISHED",
            CallState::Hold => "HOLD",
            CallState::Busy => "BUSY",
            CallState::Finish => "FINISH",
            CallState::Failed => "FAILED",
        }
    }
}

impl fmt::Display for CallState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a call changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The call object was created.
    Created,
    /// Setting up (offer to the media plane, INVITE sent).
    Calling,
    /// A provisional response or request with its status and reason phrase.
    Sip {
        /// Status code (for requests we answered: the code we sent).
        status: u16,
        /// Reason phrase as received.
        reason: String,
    },
    /// 2xx to our INVITE, or our 2xx acknowledged.
    Answered,
    /// Hold by us (re-INVITE sendonly accepted).
    LocalHold,
    /// Hold by the far end (re-INVITE with sendonly/inactive).
    RemoteHold,
    /// Media resumed.
    Resumed,
    /// No final answer within the no-answer time.
    NoAnswer,
    /// Nobody answered our request at all (transaction timeout).
    Timeout,
    /// CANCEL (ours or theirs), or a 487.
    RequestTerminated,
    /// BYE (either side).
    NormalClearing,
    /// The media plane could not carry the call.
    MediaFailure(String),
    /// The request could not be sent.
    Transport(String),
    /// The far end transferred the call (REFER) to this target; the session places the new call.
    Transferred(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Created => f.write_str("New call"),
            Cause::Calling => f.write_str("Calling"),
            Cause::Sip { status, reason } if reason.is_empty() => write!(f, "SIP {status}"),
            Cause::Sip { reason, .. } => f.write_str(reason),
            Cause::Answered => f.write_str("Answered"),
            Cause::LocalHold => f.write_str("Hold"),
            Cause::RemoteHold => f.write_str("Remote hold"),
            Cause::Resumed => f.write_str("Resumed"),
            Cause::NoAnswer | Cause::Timeout => f.write_str("Timeout"),
            Cause::RequestTerminated => f.write_str("Request Terminated"),
            Cause::NormalClearing => f.write_str("Normal call clearing"),
            Cause::MediaFailure(why) => write!(f, "Media plane failure: {why}"),
            Cause::Transport(why) => write!(f, "Transport failure: {why}"),
            Cause::Transferred(to) => write!(f, "Transferred to {to}"),
        }
    }
}

/// One reported change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The new state.
    pub state: CallState,
    /// Why.
    pub cause: Cause,
}

/// Media direction we ask for in a re-INVITE (hold = sendonly, unhold = sendrecv).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// a=sendrecv
    SendRecv,
    /// a=sendonly
    SendOnly,
    /// a=recvonly
    RecvOnly,
    /// a=inactive
    Inactive,
}

impl Direction {
    /// Reads the session- or first media-level direction attribute of an SDP (default sendrecv).
    pub fn of_sdp(sdp: &str) -> Direction {
        for line in sdp.lines() {
            match line.trim() {
                "a=sendonly" => return Direction::SendOnly,
                "a=recvonly" => return Direction::RecvOnly,
                "a=inactive" => return Direction::Inactive,
                "a=sendrecv" => return Direction::SendRecv,
                _ => {}
            }
        }
        Direction::SendRecv
    }

    /// The attribute text.
    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "a=sendrecv",
            Direction::SendOnly => "a=sendonly",
            Direction::RecvOnly => "a=recvonly",
            Direction::Inactive => "a=inactive",
        }
    }

    /// Whether the side that sent this direction holds the call (it does not want to receive).
    pub fn is_hold(self) -> bool {
        matches!(self, Direction::SendOnly | Direction::Inactive)
    }
}

/// What a call core asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Tell the session.
    Report(StateChange),
    /// Send CANCEL for our INVITE.
    SendCancel,
    /// Send BYE in the dialog (also for a 2xx that crossed our CANCEL; rsipstack ACKs it first).
    SendBye,
    /// Send a re-INVITE asking for this direction.
    SendReinvite(Direction),
    /// Answer the pending incoming INVITE with this status (2xx carries our SDP).
    Respond(u16),
    /// Free the call's media on the media plane.
    ReleaseMedia,
    /// Send REFER in the dialog (blind transfer to this target).
    SendRefer(String),
    /// Tell the session how our transfer goes.
    Transfer(transfer::TransferProgress),
}

pub(crate) fn report(state: CallState, cause: Cause) -> Action {
    Action::Report(StateChange { state, cause })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_read_like_the_seed() {
        assert_eq!(
            Cause::Sip {
                status: 486,
                reason: "Busy Here".into()
            }
            .to_string(),
            "Busy Here"
        );
        assert_eq!(Cause::RequestTerminated.to_string(), "Request Terminated");
        assert_eq!(Cause::NoAnswer.to_string(), "Timeout");
        assert_eq!(Cause::NormalClearing.to_string(), "Normal call clearing");
        assert_eq!(
            Cause::MediaFailure("killed".into()).to_string(),
            "Media plane failure: killed"
        );
        assert_eq!(CallState::RingMedia.to_string(), "RING_MEDIA");
        assert!(CallState::Busy.is_final() && !CallState::Hold.is_final());
    }

    #[test]
    fn direction_from_sdp() {
        assert_eq!(
            Direction::of_sdp("v=0\r\nm=audio 1 RTP/AVP 0\r\na=sendonly\r\n"),
            Direction::SendOnly
        );
        assert_eq!(
            Direction::of_sdp("v=0\r\na=inactive\r\n"),
            Direction::Inactive
        );
        assert_eq!(Direction::of_sdp("v=0\r\n"), Direction::SendRecv);
        assert!(Direction::Inactive.is_hold() && !Direction::RecvOnly.is_hold());
    }
}
