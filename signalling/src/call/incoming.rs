//! The incoming call core: an INVITE to a registered account from RING to a final state. The
//! driver has already sent 180 when the call is created; the owner answers (200 with our SDP;
//! ESTABLISHED once the ACK arrives) or rejects (486/603); the caller may CANCEL while it rings
//! (487 to the INVITE, FINISH "Request Terminated"). A 200 that is never ACKed (Timer H, 32 s)
//! ends the call with BYE. Invariant: the INVITE gets exactly one final response from us.

use std::time::{Duration, Instant};

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
}

impl IncomingCall {
    /// An INVITE arrived and 180 went out; it rings for at most `no_answer`.
    pub fn new(now: Instant, no_answer: Duration) -> (IncomingCall, Vec<Action>) {
        let call = IncomingCall {
            state: CallState::Ring,
            phase: Phase::Ringing,
            deadline: Some(now + no_answer),
            no_answer,
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
