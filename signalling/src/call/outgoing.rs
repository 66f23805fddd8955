//! The outgoing call core: our INVITE from PENDING to a final state, on explicit time. It maps
//! responses to states (1xx → TRYING/RING/RING_MEDIA/SESSION_PROGRESS, 2xx → ESTABLISHED,
//! 486/600 → BUSY, other finals → FAILED with the SIP reason), runs the no-answer timer, and
//! resolves the CANCEL/200 race: once we cancelled (user, no-answer timeout, media failure) the
//! final state is reported at once, and a 2xx that still arrives is ACKed (by the transaction
//! layer) and BYEd without another report. A CANCEL is only sent after a provisional response
//! (RFC 3261 §9.1); before that it waits. Invariant: at most one final report per call.

use std::time::{Duration, Instant};

use super::transfer::{TransferParty, Transferor};
use super::{Action, CallState, Cause, Direction, report};

/// How long to wait for the far end's final response after our CANCEL (64*T1).
pub const CANCEL_GRACE: Duration = Duration::from_secs(32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing sent yet.
    Idle,
    /// INVITE sent, no final response.
    Inviting,
    /// We gave up on the INVITE (state already reported); waiting for its final response.
    Cancelling,
    /// 2xx received and ACKed.
    Confirmed,
    /// Nothing more to do.
    Done,
}

/// The sans-IO outgoing call.
#[derive(Debug)]
pub struct OutgoingCall {
    state: CallState,
    phase: Phase,
    no_answer: Duration,
    deadline: Option<Instant>,
    /// Whether a provisional arrived (a CANCEL may be sent).
    provisional_seen: bool,
    /// A CANCEL is due at the first provisional.
    cancel_waiting: bool,
    /// Direction asked in the pending re-INVITE.
    reinvite: Option<Direction>,
    /// Our blind transfer of this call, if any.
    transfer: Transferor,
}

impl OutgoingCall {
    /// A new call that gives up ringing after `no_answer`.
    pub fn new(no_answer: Duration) -> OutgoingCall {
        OutgoingCall {
            state: CallState::New,
            phase: Phase::Idle,
            no_answer,
            deadline: None,
            provisional_seen: false,
            cancel_waiting: false,
            reinvite: None,
            transfer: Transferor::default(),
        }
    }

    /// The current state.
    pub fn state(&self) -> CallState {
        self.state
    }

    /// When [`on_deadline`](Self::on_deadline) wants to run.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the call has nothing left to do on the wire.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Whether our re-INVITE waits for its answer (a far-end re-INVITE now is glare: 491).
    pub fn reinvite_pending(&self) -> bool {
        self.reinvite.is_some()
    }

    /// Whether the dialog is confirmed (BYE, re-INVITE possible).
    pub fn is_confirmed(&self) -> bool {
        self.phase == Phase::Confirmed
    }

    fn set(&mut self, state: CallState, cause: Cause, out: &mut Vec<Action>) {
        if self.state.is_final() {
            return;
        }
        if state != self.state || state.is_final() {
            self.state = state;
            out.push(report(state, cause));
        }
    }

    /// The call starts (media offer, then the INVITE goes out).
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase != Phase::Idle {
            return out;
        }
        self.phase = Phase::Inviting;
        self.deadline = Some(now + self.no_answer);
        self.set(CallState::Pending, Cause::Calling, &mut out);
        out
    }

    /// A provisional response to our INVITE.
    pub fn on_provisional(&mut self, status: u16, reason: &str, has_sdp: bool) -> Vec<Action> {
        let mut out = Vec::new();
        self.provisional_seen = true;
        if self.cancel_waiting {
            self.cancel_waiting = false;
            out.push(Action::SendCancel);
        }
        if self.phase != Phase::Inviting {
            return out;
        }
        let cause = Cause::Sip {
            status,
            reason: reason.to_string(),
        };
        let next = match (status, has_sdp) {
            (100, _) => CallState::Trying,
            (_, true) => CallState::RingMedia,
            // Early media once started keeps going through later 180/183 without SDP.
            (_, false) if self.state == CallState::RingMedia => CallState::RingMedia,
            (183, false) => CallState::SessionProgress,
            _ => CallState::Ring,
        };
        self.set(next, cause, &mut out);
        out
    }

    /// A final response to our INVITE (rsipstack has ACKed it).
    pub fn on_final(&mut self, status: u16, reason: &str) -> Vec<Action> {
        let mut out = Vec::new();
        match (self.phase, status) {
            (Phase::Inviting, 200..=299) => {
                self.phase = Phase::Confirmed;
                self.deadline = None;
                self.set(CallState::Established, Cause::Answered, &mut out);
            }
            (Phase::Inviting, _) => {
                self.phase = Phase::Done;
                self.deadline = None;
                let cause = Cause::Sip {
                    status,
                    reason: reason.to_string(),
                };
                let state = if matches!(status, 486 | 600) {
                    CallState::Busy
                } else {
                    CallState::Failed
                };
                out.push(Action::ReleaseMedia);
                self.set(state, cause, &mut out);
            }
            // The race: answered after we gave up. End the dialog it created.
            (Phase::Cancelling, 200..=299) => {
                self.phase = Phase::Done;
                self.deadline = None;
                out.push(Action::SendBye);
            }
            (Phase::Cancelling, _) => {
                self.phase = Phase::Done;
                self.deadline = None;
            }
            // A 2xx retransmission after confirmation: the transaction re-ACKs, nothing to do.
            _ => {}
        }
        out
    }

    /// No response at all to the INVITE (Timer B), or it could not be sent.
    pub fn on_no_response(&mut self, cause: Cause) -> Vec<Action> {
        let mut out = Vec::new();
        if matches!(self.phase, Phase::Inviting | Phase::Cancelling) {
            self.phase = Phase::Done;
            self.deadline = None;
            out.push(Action::ReleaseMedia);
            self.set(CallState::Failed, cause, &mut out);
        }
        out
    }

    fn give_up(&mut self, now: Instant, state: CallState, cause: Cause, out: &mut Vec<Action>) {
        self.phase = Phase::Cancelling;
        self.deadline = Some(now + CANCEL_GRACE);
        if self.provisional_seen {
            out.push(Action::SendCancel);
        } else {
            self.cancel_waiting = true;
        }
        out.push(Action::ReleaseMedia);
        self.set(state, cause, out);
    }

    /// The session cancels (before answer) or hangs up (after).
    pub fn hangup(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match self.phase {
            Phase::Idle => {
                self.phase = Phase::Done;
                self.set(CallState::Finish, Cause::RequestTerminated, &mut out);
            }
            Phase::Inviting => {
                self.give_up(now, CallState::Finish, Cause::RequestTerminated, &mut out)
            }
            Phase::Confirmed => {
                self.phase = Phase::Done;
                out.push(Action::SendBye);
                out.push(Action::ReleaseMedia);
                self.set(CallState::Finish, Cause::NormalClearing, &mut out);
            }
            Phase::Cancelling | Phase::Done => {}
        }
        out
    }

    /// The far end sent BYE (the driver answers 200).
    pub fn on_bye(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Confirmed {
            self.phase = Phase::Done;
            out.push(Action::ReleaseMedia);
            self.set(CallState::Finish, Cause::NormalClearing, &mut out);
        }
        out
    }

    /// The media plane failed for this call.
    pub fn on_media_failure(&mut self, now: Instant, why: &str) -> Vec<Action> {
        let mut out = Vec::new();
        let cause = Cause::MediaFailure(why.to_string());
        match self.phase {
            Phase::Idle => {
                self.phase = Phase::Done;
                self.set(CallState::Failed, cause, &mut out);
            }
            Phase::Inviting => self.give_up(now, CallState::Failed, cause, &mut out),
            Phase::Confirmed => {
                self.phase = Phase::Done;
                out.push(Action::SendBye);
                out.push(Action::ReleaseMedia);
                self.set(CallState::Failed, cause, &mut out);
            }
            Phase::Cancelling | Phase::Done => {}
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
            Phase::Inviting => self.give_up(now, CallState::Failed, Cause::NoAnswer, &mut out),
            // The far end never finished the cancelled INVITE: stop waiting.
            Phase::Cancelling => {
                self.phase = Phase::Done;
                self.deadline = None;
            }
            _ => self.deadline = None,
        }
        out
    }

    /// The session asks for hold (`true`) or unhold.
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

    /// The final response to our re-INVITE.
    pub fn on_reinvite_final(&mut self, status: u16, reason: &str) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(dir) = self.reinvite.take() else {
            return out;
        };
        if self.phase != Phase::Confirmed {
            return out;
        }
        match status {
            200..=299 if dir.is_hold() => self.set(CallState::Hold, Cause::LocalHold, &mut out),
            200..=299 => self.set(CallState::Established, Cause::Resumed, &mut out),
            // 481/408 end the dialog (RFC 3261 §14.1); anything else leaves the session as it was.
            408 | 481 => {
                self.phase = Phase::Done;
                out.push(Action::SendBye);
                out.push(Action::ReleaseMedia);
                self.set(
                    CallState::Failed,
                    Cause::Sip {
                        status,
                        reason: reason.to_string(),
                    },
                    &mut out,
                );
            }
            _ => {}
        }
        out
    }

    /// The far end re-INVITEd with this direction (the driver answers 200).
    pub fn on_remote_direction(&mut self, dir: Direction) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase != Phase::Confirmed {
            return out;
        }
        if dir.is_hold() {
            self.set(CallState::Hold, Cause::RemoteHold, &mut out);
        } else {
            self.set(CallState::Established, Cause::Resumed, &mut out);
        }
        out
    }
}

impl TransferParty for OutgoingCall {
    fn confirmed(&self) -> bool {
        self.phase == Phase::Confirmed
    }

    fn transferor(&mut self) -> &mut Transferor {
        &mut self.transfer
    }

    fn finish_transferred(&mut self, target: String, out: &mut Vec<Action>) {
        self.phase = Phase::Done;
        self.set(CallState::Finish, Cause::Transferred(target), out);
    }
}

#[cfg(test)]
#[path = "outgoing_tests.rs"]
mod tests;
