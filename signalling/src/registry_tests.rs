use super::*;

fn server_info(id: &str) -> CallInfo {
    CallInfo {
        call_id: id.into(),
        session_id: None,
        kind: CallKind::Server,
        direction: CallDirection::Outgoing,
        caller: "alice".into(),
        callee: "bob".into(),
        status: "PENDING".into(),
        cause: "Calling".into(),
        bridged_to: None,
        created: now_ms(),
    }
}

#[tokio::test]
async fn page_calls_follow_their_session() {
    let r = Registry::new(Metrics::new());
    let mut events = r.subscribe();
    let mut ctl = r.open_session("7");
    r.session_login("7", "alice");
    r.session_status("7", "ESTABLISHED", "Connected");
    r.page_call("7", "c1", CallDirection::Outgoing, "alice", "bob");
    r.call_status(Some("7"), "c1", "RING", "Ringing");
    let found = r.find(&CallFilter {
        callee: Some("bo".into()),
        ..Default::default()
    });
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].status, "RING");
    assert_eq!(found[0].session_id.as_deref(), Some("7"));
    let s = r.sessions();
    assert_eq!((s[0].calls, s[0].login.as_deref()), (1, Some("alice")));
    // Commands reach the session's channel.
    let (_, route) = r.route("c1", None).unwrap();
    let CallRoute::Session(tx) = route else {
        panic!("page call routed directly")
    };
    tx.send(SessionCtl::Terminate("x".into())).unwrap();
    assert!(matches!(ctl.try_recv(), Ok(SessionCtl::Terminate(_))));
    // Events: created, RING.
    assert!(events.try_recv().unwrap().first);
    assert_eq!(events.try_recv().unwrap().call.status, "RING");
    r.close_session("7");
    assert!(r.find(&CallFilter::default()).is_empty());
    assert!(r.sessions().is_empty());
    let last = events.try_recv().unwrap();
    assert!(last.terminal);
    assert_eq!(last.call.cause, "Session closed");
    let text = r.metrics().render();
    assert!(text.contains("wavegate_calls_active 0"), "{text}");
    assert!(text.contains("wavegate_sessions_active 0"), "{text}");
}

#[tokio::test]
async fn server_calls_are_unique_and_end_on_final_state() {
    let r = Registry::new(Metrics::new());
    let (tx, _rx) = mpsc::unbounded_channel();
    r.server_call(server_info("x"), tx.clone()).unwrap();
    assert_eq!(
        r.server_call(server_info("x"), tx),
        Err(LookupError::Duplicate("x".into()))
    );
    r.call_status(None, "x", "ESTABLISHED", "Answered");
    assert_eq!(
        r.find(&CallFilter {
            status: Some("established".into()),
            ..Default::default()
        })
        .len(),
        1
    );
    r.call_status(None, "x", "FINISH", "Normal call clearing");
    assert!(matches!(
        r.route("x", None),
        Err(LookupError::Unknown { .. })
    ));
}

#[tokio::test]
async fn same_page_call_id_in_two_sessions_is_ambiguous() {
    let r = Registry::new(Metrics::new());
    let _a = r.open_session("1");
    let _b = r.open_session("2");
    r.page_call("1", "c", CallDirection::Outgoing, "a", "x");
    r.page_call("2", "c", CallDirection::Outgoing, "b", "y");
    assert_eq!(
        r.route("c", None).unwrap_err(),
        LookupError::Ambiguous("c".into())
    );
    assert_eq!(r.route("c", Some("2")).unwrap().0.caller, "b");
    assert!(r.session_ctl("3").is_err());
}
