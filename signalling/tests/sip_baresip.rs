//! End to end through Kamailio (tests/peers/kamailio/proxy.cfg: registrar + proxy with digest
//! on REGISTER and 407 on our INVITE) to a real baresip 1.0 (auto-answer, 440 Hz sine as its
//! microphone): we register, call carol, and RTP flows through our media plane both ways
//! (packet counts from `Query` and at the test's RTP endpoint); hold (re-INVITE sendonly) and
//! unhold are reported as HOLD/ESTABLISHED and baresip sees both re-INVITEs (its
//! CALL_REMOTE_SDP events) and stops sending while held; baresip's own hold/resume re-INVITEs
//! show as HOLD "Remote hold" / ESTABLISHED "Resumed"; BYE from us, then a second call ended
//! by baresip's BYE. Needs kamailio, baresip and the media plane binary; any missing FAILS.

mod sip_peers;

use std::net::SocketAddr;
use std::time::Duration;

use sip_peers::*;
use tokio::net::UdpSocket;
use wavegate_shared::CallId;
use wavegate_signalling::Server;
use wavegate_signalling::call::CallState;
use wavegate_signalling::sip::call::{CallEvent, CallHandle, CallOptions};
use wavegate_signalling::sip::client::RegisterOptions;
use wavegate_signalling::sip::register::RegEvent;
use wavegate_signalling::sip::{RawSipAccount, SipAccount};

/// Packets in from the browser-side leg and from baresip's leg.
async fn counts(server: &Server, call: &CallHandle) -> (u64, u64) {
    let st = server
        .media
        .query(CallId::new(call.media_id()).unwrap())
        .await
        .unwrap();
    (st.offerer.rtp_packets_in, st.answerer.rtp_packets_in)
}

/// Sends `n` RTP packets (20 ms apart) to `relay` and counts what arrives meanwhile.
async fn exchange(rtp: &UdpSocket, relay: SocketAddr, first_seq: u16, n: u16) -> usize {
    let mut got = 0;
    let mut buf = [0u8; 1500];
    for seq in first_seq..first_seq + n {
        rtp.send_to(&sip_peers::rtp(seq), relay).await.unwrap();
        let until = tokio::time::Instant::now() + Duration::from_millis(20);
        while let Ok(Ok(_)) = tokio::time::timeout_at(until, rtp.recv_from(&mut buf)).await {
            got += 1;
        }
    }
    got
}

async fn established(call: &mut CallHandle) -> String {
    let mut states = Vec::new();
    let mut sdp = None;
    for _ in 0..12 {
        match next(call).await {
            CallEvent::State(c) => {
                states.push((c.state, c.cause.to_string()));
                assert!(!c.state.is_final(), "call failed: {states:?}");
                if c.state == CallState::Established {
                    break;
                }
            }
            CallEvent::RemoteSdp { sdp: s, .. } => sdp = Some(s),
            CallEvent::Info { .. }
            | CallEvent::Dtmf(_)
            | CallEvent::Transfer { .. }
            | CallEvent::TransferProgress(_) => {}
        }
    }
    assert_eq!(states.first(), Some(&s(CallState::Pending, "Calling")));
    assert_eq!(
        states.last(),
        Some(&s(CallState::Established, "Answered")),
        "{states:?}"
    );
    sdp.expect("no SDP for the browser leg")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_baresip_through_kamailio_with_media_hold_and_bye_both_ways() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_test_writer()
        .try_init();
    let kamailio = Kamailio::start("proxy.cfg");
    let baresip = Baresip::start(kamailio.port, 27000);
    kamailio.wait_registered("carol").await;
    let server = media_server(27200).await;
    let ua = start_ua().await;
    let account = SipAccount::parse(&RawSipAccount {
        login: "alice".into(),
        password: "alicepw".into(),
        domain: "127.0.0.1".into(),
        port: kamailio.port.to_string(),
        visible_name: "Alice Wavegate".into(),
        register_required: true,
        ..RawSipAccount::default()
    })
    .unwrap();
    let mut reg = ua
        .register(account.clone(), RegisterOptions::default())
        .unwrap();
    match tokio::time::timeout(EVENT_WAIT, reg.next_event()).await {
        Ok(Some(RegEvent::Registered { .. })) => {}
        other => panic!("not registered: {other:?}\n{}", kamailio.log()),
    }

    // Call carol; Kamailio challenges the INVITE (407), baresip answers automatically.
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut call = place(
        &ua,
        &account,
        "carol",
        sdp_for(&rtp),
        Some(&server),
        CallOptions::default(),
    )
    .await;
    let sdp = established(&mut call).await;
    let relay: SocketAddr = ([127, 0, 0, 1], media_port(&sdp)).into();
    assert!((27200..27300).contains(&relay.port()), "{sdp}");
    baresip.wait_event("CALL_ESTABLISHED", 1).await;
    assert!(
        kamailio.log().is_empty() || !kamailio.log().contains("ERROR"),
        "{}",
        kamailio.log()
    );

    // RTP both ways through the media plane: ours to baresip, baresip's sine to us.
    let received = exchange(&rtp, relay, 0, 50).await;
    assert!(
        received >= 20,
        "only {received} RTP packets from baresip reached the browser leg"
    );
    let (from_us, from_baresip) = counts(&server, &call).await;
    assert!(from_us >= 45, "media plane saw {from_us} of our 50 packets");
    assert!(
        from_baresip >= 20,
        "media plane saw {from_baresip} packets from baresip"
    );

    // Hold: re-INVITE sendonly through Kamailio; baresip stops sending to us.
    call.hold(true);
    assert_eq!(next_state(&mut call).await, s(CallState::Hold, "Hold"));
    baresip.wait_event("CALL_REMOTE_SDP", 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, before) = counts(&server, &call).await;
    let during_hold = exchange(&rtp, relay, 100, 25).await;
    let (_, after) = counts(&server, &call).await;
    assert!(
        after - before <= 3,
        "baresip kept sending while held: {} packets",
        after - before
    );
    assert!(
        during_hold <= 3,
        "{during_hold} packets reached us while held"
    );
    call.hold(false);
    assert_eq!(
        next_state(&mut call).await,
        s(CallState::Established, "Resumed")
    );
    baresip.wait_event("CALL_REMOTE_SDP", 2).await;
    let resumed = exchange(&rtp, relay, 200, 40).await;
    assert!(resumed >= 15, "only {resumed} packets after unhold");

    // Hold from baresip's side: its re-INVITE (sendonly) shows as HOLD "Remote hold".
    let r = baresip.command("hold", "");
    assert_eq!(r.get("ok").and_then(|v| v.as_bool()), Some(true), "{r}");
    assert_eq!(
        next_state(&mut call).await,
        s(CallState::Hold, "Remote hold")
    );
    let r = baresip.command("resume", "");
    assert_eq!(r.get("ok").and_then(|v| v.as_bool()), Some(true), "{r}");
    assert_eq!(
        next_state(&mut call).await,
        s(CallState::Established, "Resumed")
    );

    // BYE from us.
    call.hangup();
    assert_eq!(
        next_state(&mut call).await,
        s(CallState::Finish, "Normal call clearing")
    );
    baresip.wait_event("CALL_CLOSED", 1).await;

    // A second call, ended by baresip.
    let mut call = place(
        &ua,
        &account,
        "carol",
        sdp_for(&rtp),
        Some(&server),
        CallOptions::default(),
    )
    .await;
    established(&mut call).await;
    baresip.wait_event("CALL_ESTABLISHED", 2).await;
    let r = baresip.command("hangup", "");
    assert_eq!(r.get("ok").and_then(|v| v.as_bool()), Some(true), "{r}");
    assert_eq!(
        next_state(&mut call).await,
        s(CallState::Finish, "Normal call clearing")
    );
    for _ in 0..100 {
        if server.media.calls().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.media.calls().is_empty(), "media not released");
    let _ = reg.unregister().await;
    ua.shutdown();
}
