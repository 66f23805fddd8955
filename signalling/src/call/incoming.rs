//! The incoming call core: an INVITE to a registered account from RING to a final state. The
//! driver has already sent 180 when the call is created; the owner answers (200 with our SDP;
//! ESTABLISHED once the ACK arrives) or rejects (486/603); the caller may CANCEL while it rings
//! (487 to the INVITE, FINISH "Request Terminated"). A 200 that is never ACKed (Timer H, 32 s)
//! ends the call with BYE. Invariant: the INVITE gets exactly one final response from us.

use std::time::{Duration, Instant};

use super::transfer::{TransferParty, Transferor};
use super::{Action, CallState, Cause, Direction, report};

/// How long a 2xx waits for its ACK (64*T1) before the call is given up with BYE.
pub const ACK_WAIT: Duration = Duration::from_secs(32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ringing,
    /// 2xx sent, waiting for the ACK.
    Answered,
    Confirmed,
    Done,
}

/// The sans-IO incoming call.
#[derive(Debug)]
pub struct IncomingCall {
    state: CallState,
    phase: Phase,
    deadline: Option<Instant>,
    no_answer: Duration,
    /// Direction asked in our pending re-INVITE (hold/unhold).
    reinvite: Option<Direction>,
    /// Our blind transfer of this call, if any.
    transfer: Transferor,
}

impl IncomingCall {
    /// An INVITE arrived and 180 went out; it rings for at most `no_answer`.
    pub fn new(now: Instant, no_answer: Duration) -> (IncomingCall, Vec<Action>) {
        let call = IncomingCall {
            state: CallState::Ring,
            phase: Phase::Ringing,
            deadline: Some(now + no_answer),
            no_answer,
            reinvite: None,
            transfer: Transferor::default(),
        };
        (
            call,
            vec![report(
                CallState::Ring,
                Cause::Sip {
                    status: 180,
                    reason: "Ringing".into(),
                },
            )],
        )
    }

    /// The current state.
    pub fn state(&self) -> CallState {
        self.state
    }

    /// When [`on_deadline`](Self::on_deadline) wants to run.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether nothing is left to do.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Whether the dialog is confirmed.
    pub fn is_confirmed(&self) -> bool {
        self.phase == Phase::Confirmed
    }

    fn finish(&mut self, state: CallState, cause: Cause, out: &mut Vec<Action>) {
        self.phase = Phase::Done;
        self.deadline = None;
        if !self.state.is_final() {
            self.state = state;
            out.push(report(state, cause));
        }
    }

    /// The owner answers (the driver has our SDP from the media plane).
    pub fn answer(&mut self, now: Instant) -> Vec<Action> {
        if self.phase != Phase::Ringing {
            return Vec::new();
        }
        self.phase = Phase::Answered;
        self.deadline = Some(now + ACK_WAIT);
        vec![Action::Respond(200)]
    }

    /// The owner rejects with `status` (486 Busy Here, 603 Decline).
    pub fn reject(&mut self, status: u16, reason: &str) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase != Phase::Ringing {
            return out;
        }
        out.push(Action::Respond(status));
        out.push(Action::ReleaseMedia);
        self.finish(
            CallState::Finish,
            Cause::Sip {
                status,
                reason: reason.to_string(),
            },
            &mut out,
        );
        out
    }

    /// The ACK for our 2xx arrived (with the answer SDP when the INVITE had none).
    pub fn on_ack(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Answered {
            self.phase = Phase::Confirmed;
            self.deadline = None;
            self.state = CallState::Established;
            out.push(report(CallState::Established, Cause::Answered));
        }
        out
    }

    /// The caller cancelled (the driver answers the CANCEL 200 and the INVITE 487).
    pub fn on_cancel(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Ringing {
            out.push(Action::Respond(487));
            out.push(Action::ReleaseMedia);
            self.finish(CallState::Finish, Cause::RequestTerminated, &mut out);
        }
        out
    }

    /// The caller sent BYE.
    pub fn on_bye(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if matches!(self.phase, Phase::Answered | Phase::Confirmed) {
            out.push(Action::ReleaseMedia);
            self.finish(CallState::Finish, Cause::NormalClearing, &mut out);
        }
        out
    }

    /// The owner hangs up (before answer: reject with 603 Decline).
    pub fn hangup(&mut self) -> Vec<Action> {
        match self.phase {
            Phase::Ringing => self.reject(603, "Decline"),
            Phase::Answered | Phase::Confirmed => {
                let mut out = vec![Action::SendBye, Action::ReleaseMedia];
                self.finish(CallState::Finish, Cause::NormalClearing, &mut out);
                out
            }
            Phase::Done => Vec::new(),
        }
    }

    /// The far end re-INVITEd with this direction.
    pub fn on_remote_direction(&mut self, dir: Direction) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase != Phase::Confirmed {
            return out;
        }
        let (state, cause) = if dir.is_hold() {
            (CallState::Hold, Cause::RemoteHold)
        } else {
            (CallState::Established, Cause::Resumed)
        };
        if state != self.state {
            self.state = state;
            out.push(report(state, cause));
        }
        out
    }

    /// Whether our re-INVITE waits for its answer (a far-end re-INVITE now is glare: 491).
    pub fn reinvite_pending(&self) -> bool {
        self.reinvite.is_some()
    }

    /// The owner asks for hold (`true`, re-INVITE sendonly) or unhold (sendrecv).
    pub fn hold(&mut self, on: bool) -> Vec<Action> {
        let want = if on {
            CallState::Hold
        } else {
            CallState::Established
        };
        if self.phase != Phase::Confirmed || self.reinvite.is_some() || self.state == want {
            return Vec::new();
        }
        let dir = if on {
            Direction::SendOnly
        } else {
            Direction::SendRecv
        };
        self.reinvite = Some(dir);
        vec![Action::SendReinvite(dir)]
    }

    /// The final response to our re-INVITE: 2xx changes the state, 408/481 end the dialog
    /// (RFC 3261 §14.1), anything else (491 glare, 488) leaves the call as it was.
    pub fn on_reinvite_final(&mut self, status: u16, reason: &str) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(dir) = self.reinvite.take() else {
            return out;
        };
        if self.phase != Phase::Confirmed {
            return out;
        }
        let (state, cause) = match status {
            200..=299 if dir.is_hold() => (CallState::Hold, Cause::LocalHold),
            200..=299 => (CallState::Established, Cause::Resumed),
            408 | 481 => {
                out.push(Action::SendBye);
                out.push(Action::ReleaseMedia);
                let cause = Cause::Sip {
                    status,
                    reason: reason.to_string(),
                };
                self.finish(CallState::Failed, cause, &mut out);
                return out;
            }
            _ => return out,
        };
        if state != self.state {
            self.state = state;
            out.push(report(state, cause));
        }
        out
    }

    /// The time in [`deadline`](Self::deadline) has come.
    pub fn on_deadline(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(at) = self.deadline else { return out };
        if now < at {
            return out;
        }
        match self.phase {
            Phase::Ringing => {
                out.push(Action::Respond(480));
                out.push(Action::ReleaseMedia);
                self.finish(CallState::Failed, Cause::NoAnswer, &mut out);
            }
            Phase::Answered => {
                out.push(Action::SendBye);
                out.push(Action::ReleaseMedia);
                self.finish(CallState::Failed, Cause::Timeout, &mut out);
            }
            _ => self.deadline = None,
        }
        out
    }

    /// The configured ringing time.
    pub fn no_answer(&self) -> Duration {
        self.no_answer
    }
}

impl TransferParty for IncomingCall {
    fn confirmed(&self) -> bool {
        self.phase == Phase::Confirmed
    }

    fn transferor(&mut self) -> &mut Transferor {
        &mut self.transfer
    }

    fn finish_transferred(&mut self, target: String, out: &mut Vec<Action>) {
        self.finish(CallState::Finish, Cause::Transferred(target), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::StateChange;

    fn states(a: &[Action]) -> Vec<(CallState, String)> {
        a.iter()
            .filter_map(|a| match a {
                Action::Report(StateChange { state, cause }) => Some((*state, cause.to_string())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn answered_then_acked_then_remote_bye() {
        let t0 = Instant::now();
        let (mut c, a) = IncomingCall::new(t0, Duration::from_secs(60));
        assert_eq!(states(&a), vec![(CallState::Ring, "Ringing".into())]);
        assert_eq!(c.answer(t0), vec![Action::Respond(200)]);
        assert!(c.answer(t0).is_empty(), "one final response");
        assert_eq!(
            states(&c.on_ack()),
            vec![(CallState::Established, "Answered".into())]
        );
        assert_eq!(
            states(&c.on_remote_direction(Direction::SendOnly)),
            vec![(CallState::Hold, "Remote hold".into())]
        );
        assert_eq!(
            states(&c.on_bye()),
            vec![(CallState::Finish, "Normal call clearing".into())]
        );
        assert!(c.is_done());
    }

    #[test]
    fn rejected_and_cancelled() {
        let t0 = Instant::now();
        let (mut c, _) = IncomingCall::new(t0, Duration::from_secs(60));
        let a = c.reject(486, "Busy Here");
        assert_eq!(a[0], Action::Respond(486));
        assert_eq!(states(&a), vec![(CallState::Finish, "Busy Here".into())]);
        assert!(c.on_cancel().is_empty());
        let (mut c, _) = IncomingCall::new(t0, Duration::from_secs(60));
        let a = c.on_cancel();
        assert_eq!(a[0], Action::Respond(487));
        assert_eq!(
            states(&a),
            vec![(CallState::Finish, "Request Terminated".into())]
        );
        assert!(c.answer(t0).is_empty(), "no 200 after 487");
    }

    fn confirmed() -> IncomingCall {
        let t0 = Instant::now();
        let (mut c, _) = IncomingCall::new(t0, Duration::from_secs(60));
        c.answer(t0);
        c.on_ack();
        c
    }

    #[test]
    fn hold_and_unhold_by_the_callee() {
        let t0 = Instant::now();
        let (mut c, _) = IncomingCall::new(t0, Duration::from_secs(60));
        assert!(c.hold(true).is_empty(), "no hold while ringing");
        let mut c2 = confirmed();
        assert_eq!(
            c2.hold(true),
            vec![Action::SendReinvite(Direction::SendOnly)]
        );
        assert!(c2.reinvite_pending());
        assert!(c2.hold(false).is_empty(), "one re-INVITE at a time");
        assert_eq!(
            states(&c2.on_reinvite_final(200, "OK")),
            vec![(CallState::Hold, "Hold".into())]
        );
        assert_eq!(
            c2.hold(false),
            vec![Action::SendReinvite(Direction::SendRecv)]
        );
        assert!(states(&c2.on_reinvite_final(491, "Request Pending")).is_empty());
        assert_eq!(c2.state(), CallState::Hold);
        c2.hold(false);
        assert_eq!(
            states(&c2.on_reinvite_final(200, "OK")),
            vec![(CallState::Established, "Resumed".into())]
        );
        c2.hold(true);
        let a = c2.on_reinvite_final(481, "Call/Transaction Does Not Exist");
        assert_eq!(a[0], Action::SendBye);
        assert_eq!(c2.state(), CallState::Failed);
        c.answer(t0);
    }

    #[test]
    fn transfers_both_ways() {
        use crate::call::transfer::TransferProgress as P;
        // The caller transfers us: BYE and FINISH "Transferred to …".
        let mut c = confirmed();
        let a = c.on_refer("sip:carol@h");
        assert_eq!(a[..2], [Action::SendBye, Action::ReleaseMedia]);
        assert_eq!(
            states(&a),
            vec![(CallState::Finish, "Transferred to sip:carol@h".into())]
        );
        assert!(c.is_done());
        // We transfer the caller.
        let mut c = confirmed();
        assert_eq!(
            c.transfer("sip:dave@h"),
            vec![Action::SendRefer("sip:dave@h".into())]
        );
        assert_eq!(
            c.on_refer_final(403, "Forbidden"),
            vec![Action::Transfer(P::Rejected {
                status: 403,
                reason: "Forbidden".into()
            })]
        );
        assert!(c.is_confirmed());
        c.transfer("sip:dave@h");
        c.on_refer_final(202, "Accepted");
        let a = c.on_transfer_notify(200, "OK");
        assert_eq!(a[1], Action::SendBye);
        assert_eq!(
            states(&a),
            vec![(CallState::Finish, "Transferred to sip:dave@h".into())]
        );
    }

    #[test]
    fn timers_on_virtual_time() {
        let t0 = Instant::now();
        let (mut c, _) = IncomingCall::new(t0, Duration::from_secs(20));
        assert!(c.on_deadline(t0 + Duration::from_secs(19)).is_empty());
        let a = c.on_deadline(t0 + Duration::from_secs(20));
        assert_eq!(a[0], Action::Respond(480));
        assert_eq!(states(&a), vec![(CallState::Failed, "Timeout".into())]);
        // A 200 that is never ACKed.
        let (mut c, _) = IncomingCall::new(t0, Duration::from_secs(20));
        c.answer(t0);
        let a = c.on_deadline(t0 + ACK_WAIT);
        assert_eq!(a[0], Action::SendBye);
        assert_eq!(states(&a), vec![(CallState::Failed, "Timeout".into())]);
        assert!(c.on_ack().is_empty());
    }
}
