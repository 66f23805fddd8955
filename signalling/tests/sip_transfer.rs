//! Transfer and callee hold against SIPp, with the real media plane. Outgoing call transferred
//! by us (`uas_transfer.xml`): our REFER (Refer-To, Referred-By checked by SIPp) is answered
//! 202, SIPp's NOTIFYs 100 and 200 (message/sipfrag) are answered 200 and reported as
//! `TransferProgress`, then the call ends FINISH "Transferred to …" with our BYE. A refused REFER
//! (`uas_transfer_refused.xml`, 403) is reported and the call goes on until we hang up. An
//! incoming call (`uac_hold_refer.xml`): the callee holds (SIPp checks a=sendonly) and resumes
//! (a=sendrecv), then the caller's REFER is answered 202, NOTIFYed and the call ends with our
//! BYE. SIPp's exit code proves it saw what its scenario expects. Needs `sipp` and the media
//! plane binary; either missing FAILS the test.

mod sip_peers;

use sip_peers::*;
use tokio::net::UdpSocket;
use wavegate_signalling::call::CallState;
use wavegate_signalling::sip::call::{CallEvent, CallHandle, CallOptions, TransferProgress};
use wavegate_signalling::sip::incoming::Incoming;
use wavegate_signalling::sip::{RawSipAccount, SipAccount};

fn account() -> SipAccount {
    SipAccount::parse(&RawSipAccount {
        login: "alice".into(),
        domain: "127.0.0.1".into(),
        ..RawSipAccount::default()
    })
    .unwrap()
}

/// Transfer progress events until a state change; returns both.
async fn progress_until_state(
    call: &mut CallHandle,
) -> (Vec<TransferProgress>, (CallState, String)) {
    let mut progress = Vec::new();
    for _ in 0..10 {
        match next(call).await {
            CallEvent::TransferProgress(p) => progress.push(p),
            CallEvent::State(c) => return (progress, (c.state, c.cause.to_string())),
            _ => {}
        }
    }
    panic!("no state change after {progress:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_transfer_an_outgoing_call_and_a_refused_refer_keeps_it() {
    let server = media_server(27000).await;
    let ua = start_ua().await;
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let browser_sdp = rtp_sdp(rtp.local_addr().unwrap().port());
    let target = "sip:carol@127.0.0.1:5999";

    let sipp = Sipp::uas("uas_transfer.xml", false);
    let mut call = place(
        &ua,
        &account(),
        &bob_at(sipp.addr()),
        browser_sdp.clone(),
        Some(&server),
        CallOptions::default(),
    )
    .await;
    assert_eq!(
        next_state(&mut call).await,
        s(CallState::Pending, "Calling")
    );
    assert_eq!(
        next_state(&mut call).await,
        s(CallState::Established, "Answered")
    );
    call.transfer(target);
    let (progress, fin) = progress_until_state(&mut call).await;
    // The 202 and the first NOTIFY may arrive in either order.
    assert!(
        progress.contains(&TransferProgress::Accepted {
            status: 202,
            reason: "Accepted".into()
        }) || progress.len() == 2,
        "{progress:?}"
    );
    assert!(
        progress.contains(&TransferProgress::Progress {
            status: 100,
            reason: "Trying".into()
        }),
        "{progress:?}"
    );
    assert_eq!(
        progress.last(),
        Some(&TransferProgress::Succeeded {
            status: 200,
            reason: "OK".into()
        })
    );
    assert_eq!(
        fin,
        s(CallState::Finish, &format!("Transferred to {target}"))
    );
    sipp.expect_success().await;
    wait_media_released(&server).await;

    // Refused: reported, the call goes on; then we hang up (SIPp expects our BYE).
    let sipp = Sipp::uas("uas_transfer_refused.xml", false);
    let mut call = place(
        &ua,
        &account(),
        &bob_at(sipp.addr()),
        browser_sdp,
        Some(&server),
        CallOptions::default(),
    )
    .await;
    assert_eq!(
        next_state(&mut call).await,
        s(CallState::Pending, "Calling")
    );
    assert_eq!(
        next_state(&mut call).await,
        s(CallState::Established, "Answered")
    );
    call.transfer(target);
    let refused = loop {
        if let CallEvent::TransferProgress(p) = next(&mut call).await {
            break p;
        }
    };
    assert_eq!(
        refused,
        TransferProgress::Rejected {
            status: 403,
            reason: "Forbidden".into()
        }
    );
    assert!(!call.is_finished(), "a refused REFER must not end the call");
    call.hangup();
    assert_eq!(
        next_state(&mut call).await,
        s(CallState::Finish, "Normal call clearing")
    );
    sipp.expect_success().await;
    wait_media_released(&server).await;
    assert_eq!(ua.dialog_count(), 0);
    ua.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callee_holds_and_resumes_then_the_caller_transfers_us() {
    let server = media_server(27100).await;
    let ua = start_ua().await;
    let mut rx = ua.listen("alice");
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let browser_sdp = rtp_sdp(rtp.local_addr().unwrap().port());

    let sipp = Sipp::uac("uac_hold_refer.xml", ua.local_addr(), &["-s", "alice"]);
    let req = tokio::time::timeout(EVENT_WAIT, rx.recv())
        .await
        .expect("no INVITE delivered")
        .unwrap();
    let Incoming::Call(mut call) = ua
        .accept(req, Some(server.media.clone()), CallOptions::default())
        .await
    else {
        panic!("expected a call");
    };
    assert_eq!(
        next_state(&mut call.call).await,
        s(CallState::Ring, "Ringing")
    );
    call.answer(browser_sdp);
    assert_eq!(
        next_state(&mut call.call).await,
        s(CallState::Established, "Answered")
    );
    call.call.hold(true);
    assert_eq!(next_state(&mut call.call).await, s(CallState::Hold, "Hold"));
    call.call.hold(false);
    assert_eq!(
        next_state(&mut call.call).await,
        s(CallState::Established, "Resumed")
    );
    let mut transfer = None;
    let mut fin = None;
    for _ in 0..4 {
        match next(&mut call.call).await {
            CallEvent::Transfer { target } => transfer = Some(target),
            CallEvent::State(c) => {
                fin = Some((c.state, c.cause.to_string()));
                break;
            }
            _ => {}
        }
    }
    let target = transfer.expect("no Transfer event");
    assert!(target.starts_with("sip:alice-target@"), "{target}");
    assert_eq!(
        fin,
        Some(s(CallState::Finish, &format!("Transferred to {target}")))
    );
    sipp.expect_success().await;
    wait_media_released(&server).await;
    assert_eq!(ua.dialog_count(), 0);
    ua.shutdown();
}
