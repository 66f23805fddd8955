use std::time::{Duration, Instant};

use super::*;
use crate::call::StateChange;

fn reports(actions: &[Action]) -> Vec<(CallState, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Report(StateChange { state, cause }) => Some((*state, cause.to_string())),
            _ => None,
        })
        .collect()
}

fn started(t0: Instant) -> OutgoingCall {
    let mut c = OutgoingCall::new(Duration::from_secs(30));
    assert_eq!(c.state(), CallState::New);
    assert_eq!(
        reports(&c.start(t0)),
        vec![(CallState::Pending, "Calling".into())]
    );
    c
}

#[test]
fn ringing_with_early_media_then_answer_then_bye_from_us() {
    let t0 = Instant::now();
    let mut c = started(t0);
    assert_eq!(
        reports(&c.on_provisional(100, "Trying", false)),
        vec![(CallState::Trying, "Trying".into())]
    );
    assert_eq!(
        reports(&c.on_provisional(180, "Ringing", false)),
        vec![(CallState::Ring, "Ringing".into())]
    );
    assert_eq!(
        reports(&c.on_provisional(183, "Session Progress", true)),
        vec![(CallState::RingMedia, "Session Progress".into())]
    );
    // A later 180 without SDP keeps early media.
    assert!(c.on_provisional(180, "Ringing", false).is_empty());
    assert_eq!(
        reports(&c.on_final(200, "OK")),
        vec![(CallState::Established, "Answered".into())]
    );
    assert!(c.is_confirmed() && c.deadline().is_none());
    // A 2xx retransmission changes nothing.
    assert!(c.on_final(200, "OK").is_empty());
    let a = c.hangup(t0 + Duration::from_secs(60));
    assert_eq!(a[..2], [Action::SendBye, Action::ReleaseMedia]);
    assert_eq!(
        reports(&a),
        vec![(CallState::Finish, "Normal call clearing".into())]
    );
    assert!(c.is_done());
    assert!(c.on_bye().is_empty(), "no second final report");
}

#[test]
fn session_progress_without_sdp() {
    let mut c = started(Instant::now());
    assert_eq!(
        reports(&c.on_provisional(183, "Session Progress", false)),
        vec![(CallState::SessionProgress, "Session Progress".into())]
    );
}

#[test]
fn final_failures_map_to_busy_or_failed_with_the_reason() {
    let cases = [
        (486, "Busy Here", CallState::Busy),
        (600, "Busy Everywhere", CallState::Busy),
        (404, "Not Found", CallState::Failed),
        (408, "Request Timeout", CallState::Failed),
        (480, "Temporarily Unavailable", CallState::Failed),
        (487, "Request Terminated", CallState::Failed),
        (488, "Not Acceptable Here", CallState::Failed),
        (503, "Service Unavailable", CallState::Failed),
    ];
    for (status, reason, state) in cases {
        let mut c = started(Instant::now());
        c.on_provisional(180, "Ringing", false);
        let a = c.on_final(status, reason);
        assert!(a.contains(&Action::ReleaseMedia), "{status}");
        assert_eq!(reports(&a), vec![(state, reason.to_string())], "{status}");
        assert!(c.is_done());
    }
}

#[test]
fn remote_bye_finishes() {
    let mut c = started(Instant::now());
    c.on_final(200, "OK");
    assert_eq!(
        reports(&c.on_bye()),
        vec![(CallState::Finish, "Normal call clearing".into())]
    );
}

#[test]
fn no_answer_timeout_cancels_on_virtual_time() {
    let t0 = Instant::now();
    let mut c = started(t0);
    c.on_provisional(180, "Ringing", false);
    assert_eq!(c.deadline(), Some(t0 + Duration::from_secs(30)));
    assert!(
        c.on_deadline(t0 + Duration::from_secs(29)).is_empty(),
        "not yet"
    );
    let a = c.on_deadline(t0 + Duration::from_secs(30));
    assert_eq!(a[0], Action::SendCancel);
    assert_eq!(reports(&a), vec![(CallState::Failed, "Timeout".into())]);
    // The far end confirms the cancel with 487: nothing more is reported.
    assert!(c.on_final(487, "Request Terminated").is_empty());
    assert!(c.is_done());
}

#[test]
fn cancelled_invite_without_final_response_stops_waiting() {
    let t0 = Instant::now();
    let mut c = started(t0);
    c.on_provisional(180, "Ringing", false);
    c.hangup(t0 + Duration::from_secs(1));
    assert!(!c.is_done());
    assert_eq!(
        c.deadline(),
        Some(t0 + Duration::from_secs(1) + CANCEL_GRACE)
    );
    assert!(c.on_deadline(t0 + Duration::from_secs(40)).is_empty());
    assert!(c.is_done());
}

#[test]
fn cancel_200_race_is_acked_and_byed_and_ends_finish() {
    let t0 = Instant::now();
    let mut c = started(t0);
    c.on_provisional(180, "Ringing", false);
    let a = c.hangup(t0 + Duration::from_secs(2));
    assert_eq!(a[0], Action::SendCancel);
    assert_eq!(
        reports(&a),
        vec![(CallState::Finish, "Request Terminated".into())]
    );
    // The 200 crossed our CANCEL: the transaction ACKs it, the core BYEs, no second report.
    let a = c.on_final(200, "OK");
    assert_eq!(a, vec![Action::SendBye]);
    assert_eq!(c.state(), CallState::Finish);
    assert!(c.is_done());
    // The 200 to the CANCEL itself is not a final for the INVITE; a stray 487 afterwards is ignored.
    assert!(c.on_final(487, "Request Terminated").is_empty());
}

#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let t0 = Instant::now();
    let mut c = started(t0);
    let a = c.hangup(t0);
    assert!(
        !a.contains(&Action::SendCancel),
        "RFC 3261 §9.1: no CANCEL before a provisional"
    );
    assert_eq!(
        reports(&a),
        vec![(CallState::Finish, "Request Terminated".into())]
    );
    assert_eq!(
        c.on_provisional(100, "Trying", false),
        vec![Action::SendCancel]
    );
}

#[test]
fn media_failure_while_ringing_and_while_established() {
    let t0 = Instant::now();
    let mut c = started(t0);
    c.on_provisional(180, "Ringing", false);
    let a = c.on_media_failure(t0, "killed");
    assert_eq!(a[0], Action::SendCancel);
    assert_eq!(
        reports(&a),
        vec![(CallState::Failed, "Media plane failure: killed".into())]
    );
    let mut c = started(t0);
    c.on_final(200, "OK");
    let a = c.on_media_failure(t0, "hung");
    assert_eq!(a[0], Action::SendBye);
    assert_eq!(
        reports(&a),
        vec![(CallState::Failed, "Media plane failure: hung".into())]
    );
}

#[test]
fn transaction_timeout_fails() {
    let mut c = started(Instant::now());
    let a = c.on_no_response(Cause::Timeout);
    assert_eq!(reports(&a), vec![(CallState::Failed, "Timeout".into())]);
}

#[test]
fn hold_unhold_and_remote_hold() {
    let mut c = started(Instant::now());
    assert!(c.hold(true).is_empty(), "no hold before answer");
    c.on_final(200, "OK");
    assert_eq!(
        c.hold(true),
        vec![Action::SendReinvite(Direction::SendOnly)]
    );
    assert!(c.hold(true).is_empty(), "one re-INVITE at a time");
    assert_eq!(
        reports(&c.on_reinvite_final(200, "OK")),
        vec![(CallState::Hold, "Hold".into())]
    );
    assert_eq!(
        c.hold(false),
        vec![Action::SendReinvite(Direction::SendRecv)]
    );
    // 491 glare: the state stays, the session may ask again.
    assert!(reports(&c.on_reinvite_final(491, "Request Pending")).is_empty());
    assert_eq!(c.state(), CallState::Hold);
    assert_eq!(
        c.hold(false),
        vec![Action::SendReinvite(Direction::SendRecv)]
    );
    assert_eq!(
        reports(&c.on_reinvite_final(200, "OK")),
        vec![(CallState::Established, "Resumed".into())]
    );
    assert_eq!(
        reports(&c.on_remote_direction(Direction::Inactive)),
        vec![(CallState::Hold, "Remote hold".into())]
    );
    assert_eq!(
        reports(&c.on_remote_direction(Direction::SendRecv)),
        vec![(CallState::Established, "Resumed".into())]
    );
    // 481 to a re-INVITE ends the call.
    c.hold(true);
    let a = c.on_reinvite_final(481, "Call/Transaction Does Not Exist");
    assert_eq!(
        reports(&a),
        vec![(CallState::Failed, "Call/Transaction Does Not Exist".into())]
    );
}

#[test]
fn refer_ends_the_call_with_the_target_as_cause() {
    let mut c = started(Instant::now());
    assert!(
        c.on_refer("sip:carol@h").is_empty(),
        "no transfer before answer"
    );
    c.on_final(200, "OK");
    let a = c.on_refer("sip:carol@h");
    assert_eq!(a[..2], [Action::SendBye, Action::ReleaseMedia]);
    assert_eq!(
        reports(&a),
        vec![(CallState::Finish, "Transferred to sip:carol@h".into())]
    );
}

#[test]
fn our_transfer_reports_progress_and_ends_on_sipfrag_2xx() {
    use crate::call::transfer::TransferProgress as P;
    let mut c = started(Instant::now());
    assert!(
        c.transfer("sip:carol@h").is_empty(),
        "no REFER before answer"
    );
    c.on_final(200, "OK");
    assert_eq!(
        c.transfer("sip:carol@h"),
        vec![Action::SendRefer("sip:carol@h".into())]
    );
    assert!(c.transfer("sip:carol@h").is_empty(), "one REFER at a time");
    assert_eq!(
        c.on_refer_final(202, "Accepted"),
        vec![Action::Transfer(P::Accepted {
            status: 202,
            reason: "Accepted".into()
        })]
    );
    assert_eq!(
        c.on_transfer_notify(100, "Trying"),
        vec![Action::Transfer(P::Progress {
            status: 100,
            reason: "Trying".into()
        })]
    );
    assert_eq!(c.state(), CallState::Established);
    let a = c.on_transfer_notify(200, "OK");
    assert_eq!(
        a[..3],
        [
            Action::Transfer(P::Succeeded {
                status: 200,
                reason: "OK".into()
            }),
            Action::SendBye,
            Action::ReleaseMedia
        ]
    );
    assert_eq!(
        reports(&a),
        vec![(CallState::Finish, "Transferred to sip:carol@h".into())]
    );
    assert!(c.is_done());
    assert!(c.hangup(Instant::now()).is_empty(), "nothing after the end");
}

#[test]
fn refused_or_failed_transfer_keeps_the_call() {
    use crate::call::transfer::TransferProgress as P;
    let mut c = started(Instant::now());
    c.on_final(200, "OK");
    c.transfer("sip:carol@h");
    assert_eq!(
        c.on_refer_final(405, "Method Not Allowed"),
        vec![Action::Transfer(P::Rejected {
            status: 405,
            reason: "Method Not Allowed".into()
        })]
    );
    assert!(c.is_confirmed());
    c.transfer("sip:carol@h");
    c.on_refer_final(202, "Accepted");
    assert_eq!(
        c.on_transfer_notify(486, "Busy Here"),
        vec![Action::Transfer(P::Failed {
            status: 486,
            reason: "Busy Here".into()
        })]
    );
    assert!(c.is_confirmed());
    assert_eq!(c.state(), CallState::Established);
    assert_eq!(c.hangup(Instant::now())[0], Action::SendBye);
}
