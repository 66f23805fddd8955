//! Outgoing calls against SIPp UAS scenarios (tests/peers/sipp/uas_*.xml) with the real media
//! plane programming every SDP: 486 → BUSY "Busy Here"; 183 with SDP then 200 → RING_MEDIA
//! then ESTABLISHED, RTP from a plain RTP endpoint through the media plane to SIPp (echoing)
//! and back, BYE from us; BYE from SIPp; CANCEL while ringing (487 consumed); the no-answer
//! timeout. SIPp's exit code proves it saw what its scenario expects (ACK, CANCEL, BYE).
//! Needs `sipp` (Debian sip-tester) and the media plane binary; either missing FAILS the test.

mod sip_peers;

use std::net::SocketAddr;
use std::time::Duration;

use sip_peers::*;
use tokio::net::UdpSocket;
use wavegate_signalling::call::CallState;
use wavegate_signalling::sip::call::{CallEvent, CallOptions};
use wavegate_signalling::sip::{RawSipAccount, SipAccount};

fn account() -> SipAccount {
    SipAccount::parse(&RawSipAccount {
        login: "alice".into(),
        domain: "127.0.0.1".into(),
        visible_name: "Alice A".into(),
        ..RawSipAccount::default()
    })
    .unwrap()
}

/// Calls the SIPp UAS `scenario` and checks the call's states until its final one, SIPp's
/// verdict, and that the media, the call task and the dialog are all released.
async fn states_of_a_call_to(first_port: u16, scenario: &str, want: &[(CallState, &str)]) {
    let OutgoingCall {
        server,
        ua,
        sipp,
        rtp: _rtp,
        mut call,
    } = call_sipp(first_port, scenario, false, &account()).await;
    let states = states_until_final(&mut call).await;
    let want: Vec<_> = want.iter().map(|(state, cause)| s(*state, cause)).collect();
    assert_eq!(states, want);
    sipp.expect_success().await;
    wait_media_released(&server).await;
    wait_finished(&call).await;
    assert_eq!(ua.dialog_count(), 0);
    ua.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_here_ends_busy_with_cause() {
    states_of_a_call_to(
        26000,
        "uas_busy.xml",
        &[
            (CallState::Pending, "Calling"),
            (CallState::Trying, "Trying"),
            (CallState::Ring, "Ringing"),
            (CallState::Busy, "Busy Here"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_media_then_answer_rtp_both_ways_and_our_bye() {
    let OutgoingCall {
        server,
        ua,
        sipp,
        rtp,
        mut call,
    } = call_sipp(26100, "uas_early_media.xml", true, &account()).await;
    let mut states = Vec::new();
    let mut early_sdp = None;
    let mut final_sdp = None;
    for _ in 0..10 {
        match next(&mut call).await {
            CallEvent::State(c) => {
                states.push((c.state, c.cause.to_string()));
                if c.state == CallState::Established {
                    break;
                }
            }
            CallEvent::RemoteSdp { sdp, early: true } => early_sdp = Some(sdp),
            CallEvent::RemoteSdp { sdp, early: false } => final_sdp = Some(sdp),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        states,
        vec![
            s(CallState::Pending, "Calling"),
            s(CallState::RingMedia, "Session Progress"),
            s(CallState::Established, "Answered"),
        ]
    );
    let early_sdp = early_sdp.expect("no early-media SDP for the browser leg");
    let final_sdp = final_sdp.expect("no answer SDP for the browser leg");
    // The browser leg is pointed at the media plane, never at SIPp directly.
    let relay_port = media_port(&final_sdp);
    assert_eq!(media_port(&early_sdp), relay_port);
    assert!((26100..26200).contains(&relay_port), "{final_sdp}");
    assert_ne!(relay_port, sipp.media_port);

    // RTP: test endpoint → media plane → SIPp (-rtp_echo) → media plane → test endpoint.
    let relay: SocketAddr = ([127, 0, 0, 1], relay_port).into();
    let mut echoed = 0;
    let mut buf = [0u8; 1500];
    for seq in 0..50u16 {
        rtp.send_to(&rtp_packet(seq), relay).await.unwrap();
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(20), rtp.recv_from(&mut buf)).await
        {
            if n == 172 {
                echoed += 1;
            }
        }
    }
    assert!(
        echoed >= 10,
        "only {echoed} of 50 RTP packets came back through the media plane"
    );
    let mut stats = None;
    for _ in 0..50 {
        let st = server.media.calls().len();
        assert_eq!(st, 1);
        let q = query(&server, call.media_id()).await;
        if q.0 >= 10 && q.1 >= 10 {
            stats = Some(q);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        stats.is_some(),
        "media plane counters did not show RTP both ways"
    );

    call.hangup();
    assert_eq!(
        next_state(&mut call).await,
        s(CallState::Finish, "Normal call clearing")
    );
    sipp.expect_success().await;
    wait_media_released(&server).await;
    ua.shutdown();
}

fn rtp_packet(seq: u16) -> Vec<u8> {
    rtp(seq)
}

/// Packets in on the offerer (browser) leg and on the answerer (SIP) leg of the call.
async fn query(server: &wavegate_signalling::Server, id: &str) -> (u64, u64) {
    let st = server
        .media
        .query(wavegate_shared::CallId::new(id).unwrap())
        .await
        .unwrap();
    (st.offerer.rtp_packets_in, st.answerer.rtp_packets_in)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bye_from_the_far_end_finishes() {
    states_of_a_call_to(
        26200,
        "uas_remote_bye.xml",
        &[
            (CallState::Pending, "Calling"),
            (CallState::Ring, "Ringing"),
            (CallState::Established, "Answered"),
            (CallState::Finish, "Normal call clearing"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_ringing_and_no_answer_timeout() {
    let server = media_server(26300).await;
    let ua = start_ua().await;
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    // The session cancels while it rings.
    let sipp = Sipp::uas("uas_no_answer.xml", false);
    let mut call = place(
        &ua,
        &account(),
        &bob_at(sipp.addr()),
        sdp_for(&rtp),
        Some(&server),
        CallOptions::default(),
    )
    .await;
    assert_eq!(
        next_state(&mut call).await,
        s(CallState::Pending, "Calling")
    );
    assert_eq!(next_state(&mut call).await, s(CallState::Ring, "Ringing"));
    call.hangup();
    assert_eq!(
        next_state(&mut call).await,
        s(CallState::Finish, "Request Terminated")
    );
    sipp.expect_success().await;
    wait_media_released(&server).await;

    // Nobody answers within the no-answer time.
    let sipp = Sipp::uas("uas_no_answer.xml", false);
    let options = CallOptions {
        no_answer: Duration::from_millis(800),
        ..CallOptions::default()
    };
    let mut call = place(
        &ua,
        &account(),
        &bob_at(sipp.addr()),
        sdp_for(&rtp),
        Some(&server),
        options,
    )
    .await;
    let states = states_until_final(&mut call).await;
    assert_eq!(
        states,
        vec![
            s(CallState::Pending, "Calling"),
            s(CallState::Ring, "Ringing"),
            s(CallState::Failed, "Timeout")
        ]
    );
    sipp.expect_success().await;
    wait_media_released(&server).await;
    // The call task ends once the 487 is in.
    wait_finished(&call).await;
    ua.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_challenge_with_qop_list_is_answered() {
    let ua = start_ua().await;
    let sipp = Sipp::uas("uas_auth.xml", false);
    let account = SipAccount::parse(&RawSipAccount {
        login: "alice".into(),
        password: "alicepw".into(),
        domain: "127.0.0.1".into(),
        ..RawSipAccount::default()
    })
    .unwrap();
    // Signalling only (no media plane): the browser SDP goes into the INVITE as is.
    let mut call = place(
        &ua,
        &account,
        &bob_at(sipp.addr()),
        rtp_sdp(4000),
        None,
        CallOptions::default(),
    )
    .await;
    let mut states = Vec::new();
    for _ in 0..4 {
        states.push(next_state(&mut call).await);
    }
    assert_eq!(
        states,
        vec![
            s(CallState::Pending, "Calling"),
            s(CallState::Trying, "Trying"),
            s(CallState::Ring, "Ringing"),
            s(CallState::Established, "Answered"),
        ]
    );
    call.hangup();
    assert_eq!(
        next_state(&mut call).await,
        s(CallState::Finish, "Normal call clearing")
    );
    sipp.expect_success().await;
    ua.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_dtmf_and_message_both_ways() {
    let ua = start_ua().await;
    let sipp = Sipp::uas("uas_info.xml", false);
    let mut call = place(
        &ua,
        &account(),
        &bob_at(sipp.addr()),
        rtp_sdp(4000),
        None,
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
    assert!(call.send_dtmf('x').is_err());
    call.send_dtmf('5').unwrap();
    // SIPp answers the INFO before it reads the MESSAGE; keep them in that order.
    tokio::time::sleep(Duration::from_millis(200)).await;
    call.send_message("hello from wavegate");
    let mut got = Vec::new();
    while got.len() < 2 {
        match next(&mut call).await {
            CallEvent::Dtmf(d) => got.push(format!("dtmf {d}")),
            CallEvent::Info {
                method,
                content_type,
                body,
            } => got.push(format!("{method} {content_type} {}", body.trim())),
            CallEvent::RemoteSdp { .. } => {}
            CallEvent::State(c) => panic!("unexpected state {c:?}"),
            CallEvent::Transfer { target } => panic!("unexpected transfer to {target}"),
            CallEvent::TransferProgress(p) => panic!("unexpected {p}"),
        }
    }
    assert_eq!(
        got,
        vec![
            "dtmf 9".to_string(),
            "MESSAGE text/plain hello from sipp".to_string()
        ]
    );
    call.hangup();
    assert_eq!(
        next_state(&mut call).await,
        s(CallState::Finish, "Normal call clearing")
    );
    sipp.expect_success().await;
    ua.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_refer_ends_the_call_and_the_target_is_called() {
    let server = media_server(26700).await;
    let ua = start_ua().await;
    let target_sipp = Sipp::uas("uas_remote_bye.xml", false);
    let target = format!("sip:carol@{}", target_sipp.addr());
    let sipp = Sipp::uas_with("uas_refer.xml", &["-key", "target", &target]);
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let browser_sdp = rtp_sdp(rtp.local_addr().unwrap().port());
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
    let mut transfer = None;
    let mut fin = None;
    for _ in 0..4 {
        match next(&mut call).await {
            CallEvent::Transfer { target } => transfer = Some(target),
            CallEvent::State(c) => {
                fin = Some((c.state, c.cause.to_string()));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(transfer.as_deref(), Some(target.as_str()));
    assert_eq!(
        fin,
        Some(s(CallState::Finish, &format!("Transferred to {target}")))
    );
    sipp.expect_success().await;
    // The session places the new call to the target; it is answered (and ended by the target).
    let mut second = place(
        &ua,
        &account(),
        &target,
        browser_sdp,
        Some(&server),
        CallOptions::default(),
    )
    .await;
    let states = states_until_final(&mut second).await;
    assert!(
        states.contains(&s(CallState::Established, "Answered")),
        "{states:?}"
    );
    target_sipp.expect_success().await;
    wait_media_released(&server).await;
    ua.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_over_tcp() {
    let ua = start_ua().await;
    let sipp = Sipp::uas_with("uas_answer.xml", &["-t", "t1"]);
    let account = SipAccount::parse(&RawSipAccount {
        login: "alice".into(),
        domain: "127.0.0.1".into(),
        transport: "tcp".into(),
        ..RawSipAccount::default()
    })
    .unwrap();
    let mut call = place(
        &ua,
        &account,
        &format!("sip:bob@{};transport=tcp", sipp.addr()),
        rtp_sdp(4000),
        None,
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
    call.hangup();
    assert_eq!(
        next_state(&mut call).await,
        s(CallState::Finish, "Normal call clearing")
    );
    sipp.expect_success().await;
    ua.shutdown();
}
