//! Blind transfer by us (RFC 3515 REFER, RFC 3420 message/sipfrag): the sans-IO part shared by
//! both call cores. The session asks to transfer an established call; we send REFER in the
//! dialog; its final response says whether the far end accepted (2xx) or refused (call goes on);
//! then the far end's NOTIFYs carry the new call's status lines as sipfrag bodies, each reported
//! to the session; a 2xx fragment means the far end reached the target and our call ends (BYE,
//! FINISH "Transferred to …"), a fragment ≥ 300 means the transfer failed and our call goes on.
//! Invariants: at most one transfer at a time; nothing is reported for NOTIFYs that belong to no
//! transfer of ours; once the transfer ended (success, refusal, failure) a new one may start.

use std::fmt;

use super::Action;

/// One step of our transfer, reported to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferProgress {
    /// The far end accepted our REFER (202) and will call the target.
    Accepted {
        /// Status of the REFER's response.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// The far end refused our REFER (403, 405, 481, timeout 408 …): the call continues.
    Rejected {
        /// Status of the REFER's response.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// A NOTIFY with a provisional status of the new call (100 Trying, 180 Ringing).
    Progress {
        /// Status in the sipfrag.
        status: u16,
        /// Reason phrase in the sipfrag.
        reason: String,
    },
    /// A NOTIFY with a 2xx: the target answered; our call ends.
    Succeeded {
        /// Status in the sipfrag.
        status: u16,
        /// Reason phrase in the sipfrag.
        reason: String,
    },
    /// A NOTIFY with a final failure of the new call: the transfer failed, our call continues.
    Failed {
        /// Status in the sipfrag.
        status: u16,
        /// Reason phrase in the sipfrag.
        reason: String,
    },
}

impl fmt::Display for TransferProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, status, reason) = match self {
            TransferProgress::Accepted { status, reason } => ("accepted", status, reason),
            TransferProgress::Rejected { status, reason } => ("rejected", status, reason),
            TransferProgress::Progress { status, reason } => ("progress", status, reason),
            TransferProgress::Succeeded { status, reason } => ("succeeded", status, reason),
            TransferProgress::Failed { status, reason } => ("failed", status, reason),
        };
        write!(f, "transfer {what}: {status} {reason}")
    }
}

/// The status line of a `message/sipfrag` body (RFC 3420): `SIP/2.0 180 Ringing`, optionally
/// followed by header lines. `None` when the first line is not a SIP status line.
pub fn sipfrag_status(body: &str) -> Option<(u16, String)> {
    let line = body.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let (code, reason) = match rest.split_once(' ') {
        Some((c, r)) => (c, r.trim()),
        None => (rest, ""),
    };
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let status: u16 = code.parse().ok()?;
    (100..700)
        .contains(&status)
        .then(|| (status, reason.to_string()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Idle,
    /// REFER sent, no final response yet.
    Referring(String),
    /// REFER accepted; waiting for NOTIFYs.
    Subscribed(String),
}

/// What the transfer asks of its call core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferStep {
    /// Report this to the session.
    Report(TransferProgress),
    /// The transfer to this target succeeded: end the call.
    Done(String),
}

/// Our transfer of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transferor {
    phase: Phase,
}

impl Default for Transferor {
    fn default() -> Self {
        Transferor { phase: Phase::Idle }
    }
}

impl Transferor {
    /// Whether a transfer is under way (REFER sent or accepted).
    pub fn is_active(&self) -> bool {
        self.phase != Phase::Idle
    }

    /// Starts a transfer to `target`; `false` when one is already under way.
    pub fn start(&mut self, target: &str) -> bool {
        if self.is_active() {
            return false;
        }
        self.phase = Phase::Referring(target.to_string());
        true
    }

    /// The final response to our REFER.
    pub fn on_refer_final(&mut self, status: u16, reason: &str) -> Vec<TransferStep> {
        let Phase::Referring(target) = &self.phase else {
            return Vec::new();
        };
        let reason = reason.to_string();
        if (200..300).contains(&status) {
            self.phase = Phase::Subscribed(target.clone());
            vec![TransferStep::Report(TransferProgress::Accepted {
                status,
                reason,
            })]
        } else {
            self.phase = Phase::Idle;
            vec![TransferStep::Report(TransferProgress::Rejected {
                status,
                reason,
            })]
        }
    }

    /// A NOTIFY (Event: refer) with this sipfrag status. A NOTIFY may overtake the REFER's 202
    /// (RFC 3515 §2.4.4 allows it; UDP reorders), so it counts as acceptance too.
    pub fn on_notify(&mut self, status: u16, reason: &str) -> Vec<TransferStep> {
        let target = match &self.phase {
            Phase::Idle => return Vec::new(),
            Phase::Referring(t) | Phase::Subscribed(t) => t.clone(),
        };
        let reason = reason.to_string();
        match status {
            100..=199 => {
                self.phase = Phase::Subscribed(target);
                vec![TransferStep::Report(TransferProgress::Progress {
                    status,
                    reason,
                })]
            }
            200..=299 => {
                self.phase = Phase::Idle;
                vec![
                    TransferStep::Report(TransferProgress::Succeeded { status, reason }),
                    TransferStep::Done(target),
                ]
            }
            _ => {
                self.phase = Phase::Idle;
                vec![TransferStep::Report(TransferProgress::Failed {
                    status,
                    reason,
                })]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reports(steps: &[TransferStep]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                TransferStep::Report(p) => p.to_string(),
                TransferStep::Done(t) => format!("done {t}"),
            })
            .collect()
    }

    #[test]
    fn sipfrag_examples() {
        // RFC 3515 §2.4.5 / RFC 3420 §2 examples.
        assert_eq!(
            sipfrag_status("SIP/2.0 100 Trying\r\n"),
            Some((100, "Trying".into()))
        );
        assert_eq!(
            sipfrag_status("SIP/2.0 200 OK\r\nContent-Type: application/sdp\r\n"),
            Some((200, "OK".into()))
        );
        assert_eq!(
            sipfrag_status("SIP/2.0 603 Declined\r\n"),
            Some((603, "Declined".into()))
        );
        assert_eq!(sipfrag_status("SIP/2.0 180"), Some((180, String::new())));
        assert_eq!(sipfrag_status("INVITE sip:a@b SIP/2.0\r\n"), None);
        assert_eq!(sipfrag_status("SIP/2.0 20 OK"), None);
        assert_eq!(sipfrag_status("SIP/2.0 999 Nope"), None);
        assert_eq!(sipfrag_status(""), None);
    }

    #[test]
    fn accepted_then_trying_ringing_ok_ends_the_call() {
        let mut t = Transferor::default();
        assert!(t.start("sip:carol@h"));
        assert!(!t.start("sip:dave@h"), "one transfer at a time");
        assert_eq!(
            reports(&t.on_refer_final(202, "Accepted")),
            vec!["transfer accepted: 202 Accepted"]
        );
        assert_eq!(
            reports(&t.on_notify(100, "Trying")),
            vec!["transfer progress: 100 Trying"]
        );
        assert_eq!(
            reports(&t.on_notify(180, "Ringing")),
            vec!["transfer progress: 180 Ringing"]
        );
        assert_eq!(
            reports(&t.on_notify(200, "OK")),
            vec!["transfer succeeded: 200 OK", "done sip:carol@h"]
        );
        assert!(!t.is_active());
        assert!(t.on_notify(200, "OK").is_empty(), "late NOTIFY ignored");
    }

    #[test]
    fn refused_refer_and_failed_target_leave_the_call_alone() {
        let mut t = Transferor::default();
        t.start("sip:carol@h");
        assert_eq!(
            reports(&t.on_refer_final(403, "Forbidden")),
            vec!["transfer rejected: 403 Forbidden"]
        );
        assert!(!t.is_active());
        t.start("sip:carol@h");
        t.on_refer_final(202, "Accepted");
        assert_eq!(
            reports(&t.on_notify(486, "Busy Here")),
            vec!["transfer failed: 486 Busy Here"]
        );
        assert!(t.start("sip:dave@h"), "a new transfer may start");
    }

    #[test]
    fn notify_before_the_202_counts_and_stray_notify_is_ignored() {
        let mut t = Transferor::default();
        assert!(t.on_notify(100, "Trying").is_empty());
        t.start("sip:carol@h");
        assert_eq!(
            reports(&t.on_notify(100, "Trying")),
            vec!["transfer progress: 100 Trying"]
        );
        // The 202 arrives after: already subscribed, nothing more to say.
        assert!(t.on_refer_final(202, "Accepted").is_empty());
        assert_eq!(
            reports(&t.on_notify(200, "OK")),
            vec!["transfer succeeded: 200 OK", "done sip:carol@h"]
        );
    }

    proptest! {
        #[test]
        fn sipfrag_never_panics_and_round_trips(body in ".{0,80}", code in 100u16..700, reason in "[A-Za-z ]{0,20}") {
            let _ = sipfrag_status(&body);
            let line = format!("SIP/2.0 {code} {reason}\r\n");
            prop_assert_eq!(sipfrag_status(&line), Some((code, reason.trim().to_string())));
        }
    }
}

/// The transfer glue both call cores share: REFER from the far end, our own REFER and the
/// NOTIFYs that follow. A core lends its phase, its [`Transferor`] and how it ends a call;
/// every step is ignored unless the call is confirmed.
pub trait TransferParty {
    /// Whether the call is confirmed (the only phase in which transfers act).
    fn confirmed(&self) -> bool;
    /// The call's transfer state.
    fn transferor(&mut self) -> &mut Transferor;
    /// Ends the confirmed call as transferred to `target`, pushing the final report to `out`.
    fn finish_transferred(&mut self, target: String, out: &mut Vec<Action>);

    /// The far end asked us (REFER, answered 202) to call `target` instead: this call ends
    /// with BYE and the session places the new call.
    fn on_refer(&mut self, target: &str) -> Vec<Action> {
        self.end_for_transfer(target.to_string())
    }

    /// The owner transfers the established call to `target` (we send REFER).
    fn transfer(&mut self, target: &str) -> Vec<Action> {
        if !self.confirmed() || !self.transferor().start(target) {
            return Vec::new();
        }
        vec![Action::SendRefer(target.to_string())]
    }

    /// The final response to our REFER (408 when it timed out).
    fn on_refer_final(&mut self, status: u16, reason: &str) -> Vec<Action> {
        let steps = self.transferor().on_refer_final(status, reason);
        self.transfer_steps(steps)
    }

    /// A NOTIFY of our REFER's subscription with this sipfrag status (the driver answered 200).
    fn on_transfer_notify(&mut self, status: u16, reason: &str) -> Vec<Action> {
        let steps = self.transferor().on_notify(status, reason);
        self.transfer_steps(steps)
    }

    #[doc(hidden)]
    fn transfer_steps(&mut self, steps: Vec<TransferStep>) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.confirmed() {
            return out;
        }
        for step in steps {
            match step {
                TransferStep::Report(p) => out.push(Action::Transfer(p)),
                TransferStep::Done(target) => out.extend(self.end_for_transfer(target)),
            }
        }
        out
    }

    #[doc(hidden)]
    fn end_for_transfer(&mut self, target: String) -> Vec<Action> {
        let mut out = Vec::new();
        if self.confirmed() {
            out.push(Action::SendBye);
            out.push(Action::ReleaseMedia);
            self.finish_transferred(target, &mut out);
        }
        out
    }
}
