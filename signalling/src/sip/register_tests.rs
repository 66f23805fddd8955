use super::*;

const CHALLENGE: &str = "Digest realm=\"127.0.0.1\", nonce=\"n1\", qop=\"auth,auth-int\"";

fn ok(granted: u32) -> FinalResponse<'static> {
    FinalResponse {
        status: 200,
        reason: "OK",
        granted: Some(granted),
        ..FinalResponse::default()
    }
}

fn challenge(status: u16, value: &'static str) -> FinalResponse<'static> {
    let mut r = FinalResponse {
        status,
        reason: "Unauthorized",
        ..FinalResponse::default()
    };
    if status == 407 {
        r.proxy_authenticate = vec![value];
    } else {
        r.www_authenticate = vec![value];
    }
    r
}

fn sent(step: Step) -> RegisterRequest {
    match step {
        Step::Send(r) => r,
        other => panic!("expected Send, got {other:?}"),
    }
}

#[test]
fn challenge_then_registered_then_preemptive_refresh() {
    let t0 = Instant::now();
    let mut core = RegisterCore::new("alice", "alicepw", "sip:127.0.0.1", 120);
    let first = sent(core.register("c1"));
    assert_eq!(
        first,
        RegisterRequest {
            expires: 120,
            authorization: None
        }
    );
    let second = sent(core.on_response(t0, &challenge(401, CHALLENGE), "c2"));
    let (hdr, value) = second.authorization.unwrap();
    assert_eq!(hdr, AuthHeader::Authorization);
    assert!(value.contains("qop=auth, nc=00000001"), "{value}");
    let ev = core.on_response(t0, &ok(120), "c3");
    assert_eq!(
        ev,
        Step::Report(RegEvent::Registered {
            expires: Duration::from_secs(120),
            refresh_in: Duration::from_secs(60)
        })
    );
    assert!(core.is_registered());
    assert_eq!(core.deadline(), Some(t0 + Duration::from_secs(60)));
    // Not yet due.
    assert_eq!(
        core.on_deadline(t0 + Duration::from_secs(59), "c4"),
        Step::Idle
    );
    // Due: refresh carries the same nonce with the next count.
    let refresh = sent(core.on_deadline(t0 + Duration::from_secs(60), "c5"));
    let value = refresh.authorization.unwrap().1;
    assert!(
        value.contains("nonce=\"n1\"") && value.contains("nc=00000002"),
        "{value}"
    );
    assert_eq!(refresh.expires, 120);
}

#[test]
fn new_nonce_on_refresh_is_not_wrong_credentials() {
    let t0 = Instant::now();
    let mut core = RegisterCore::new("alice", "pw", "sip:x", 3600);
    sent(core.register("c"));
    sent(core.on_response(t0, &challenge(401, CHALLENGE), "c"));
    core.on_response(t0, &ok(3600), "c");
    let at = core.deadline().unwrap();
    assert_eq!(
        at,
        t0 + Duration::from_secs(3540),
        "a minute of margin on long bindings"
    );
    sent(core.on_deadline(at, "c"));
    // The registrar forgot our nonce (no stale flag): answer the new one, do not fail.
    let retry =
        sent(core.on_response(at, &challenge(401, "Digest realm=\"x\", nonce=\"n2\""), "c"));
    assert!(retry.authorization.unwrap().1.contains("nonce=\"n2\""));
    assert!(matches!(
        core.on_response(at, &ok(3600), "c"),
        Step::Report(RegEvent::Registered { .. })
    ));
}

#[test]
fn wrong_password_fails_at_once_without_retry() {
    let t0 = Instant::now();
    let mut core = RegisterCore::new("alice", "bad", "sip:x", 60);
    sent(core.register("c"));
    sent(core.on_response(t0, &challenge(401, CHALLENGE), "c"));
    let step = core.on_response(
        t0,
        &challenge(401, "Digest realm=\"127.0.0.1\", nonce=\"n9\""),
        "c",
    );
    assert_eq!(
        step,
        Step::Report(RegEvent::Failed {
            error: RegisterError::WrongCredentials { status: 401 },
            retry_in: None
        })
    );
    assert!(core.is_failed());
    assert_eq!(core.deadline(), None);
}

#[test]
fn stale_nonce_is_answered_again() {
    let t0 = Instant::now();
    let mut core = RegisterCore::new("alice", "pw", "sip:x", 60);
    sent(core.register("c"));
    sent(core.on_response(t0, &challenge(407, "Digest realm=\"x\", nonce=\"a\""), "c"));
    let again = sent(core.on_response(
        t0,
        &challenge(407, "Digest realm=\"x\", nonce=\"b\", stale=true"),
        "c",
    ));
    let (hdr, value) = again.authorization.unwrap();
    assert_eq!(hdr, AuthHeader::ProxyAuthorization);
    assert!(value.contains("nonce=\"b\""));
    // Bounded: an endless stale loop ends.
    sent(core.on_response(
        t0,
        &challenge(407, "Digest realm=\"x\", nonce=\"c\", stale=true"),
        "c",
    ));
    let end = core.on_response(
        t0,
        &challenge(407, "Digest realm=\"x\", nonce=\"d\", stale=true"),
        "c",
    );
    assert!(
        matches!(
            end,
            Step::Report(RegEvent::Failed {
                error: RegisterError::TooManyChallenges,
                ..
            })
        ),
        "{end:?}"
    );
}

#[test]
fn interval_too_brief_raises_expires_once() {
    let t0 = Instant::now();
    let mut core = RegisterCore::new("alice", "pw", "sip:x", 30);
    sent(core.register("c"));
    let r423 = FinalResponse {
        status: 423,
        reason: "Interval Too Brief",
        min_expires: Some(300),
        ..FinalResponse::default()
    };
    assert_eq!(sent(core.on_response(t0, &r423, "c")).expires, 300);
    assert_eq!(core.requested_expires(), 300);
    let end = core.on_response(t0, &r423, "c");
    assert!(matches!(
        end,
        Step::Report(RegEvent::Failed {
            error: RegisterError::IntervalTooBrief,
            ..
        })
    ));
}

#[test]
fn transient_failures_back_off_and_retry() {
    let t0 = Instant::now();
    let mut core = RegisterCore::new("alice", "pw", "sip:x", 60);
    sent(core.register("c"));
    assert_eq!(
        core.on_timeout(t0),
        Step::Report(RegEvent::Failed {
            error: RegisterError::Timeout,
            retry_in: Some(FIRST_BACKOFF)
        })
    );
    let t1 = t0 + FIRST_BACKOFF;
    sent(core.on_deadline(t1, "c"));
    let r503 = FinalResponse {
        status: 503,
        reason: "Service Unavailable",
        ..FinalResponse::default()
    };
    let step = core.on_response(t1, &r503, "c");
    assert_eq!(
        step,
        Step::Report(RegEvent::Failed {
            error: RegisterError::Rejected {
                status: 503,
                reason: "Service Unavailable".into()
            },
            retry_in: Some(FIRST_BACKOFF * 2),
        })
    );
    let r403 = FinalResponse {
        status: 403,
        reason: "Forbidden",
        ..FinalResponse::default()
    };
    sent(core.on_deadline(t1 + FIRST_BACKOFF * 2, "c"));
    assert!(matches!(
        core.on_response(t1, &r403, "c"),
        Step::Report(RegEvent::Failed { retry_in: None, .. })
    ));
}

#[test]
fn unregister_sends_expires_zero_with_credentials() {
    let t0 = Instant::now();
    let mut core = RegisterCore::new("alice", "pw", "sip:x", 60);
    sent(core.register("c"));
    sent(core.on_response(t0, &challenge(401, CHALLENGE), "c"));
    core.on_response(t0, &ok(60), "c");
    let un = sent(core.unregister("c"));
    assert_eq!(un.expires, 0);
    assert!(un.authorization.is_some());
    assert_eq!(
        core.on_response(t0, &ok(0), "c"),
        Step::Report(RegEvent::Unregistered)
    );
    assert!(core.is_done());
    assert_eq!(core.deadline(), None);
}

#[test]
fn unregister_when_not_registered_sends_nothing() {
    let mut core = RegisterCore::new("alice", "pw", "sip:x", 60);
    assert_eq!(core.unregister("c"), Step::Report(RegEvent::Unregistered));
}

#[test]
fn unusable_challenge_is_reported() {
    let t0 = Instant::now();
    let mut core = RegisterCore::new("alice", "pw", "sip:x", 60);
    sent(core.register("c"));
    let step = core.on_response(
        t0,
        &challenge(401, "Digest realm=\"x\", nonce=\"n\", qop=\"auth-int\""),
        "c",
    );
    assert!(matches!(
        step,
        Step::Report(RegEvent::Failed {
            error: RegisterError::Challenge(DigestError::Qop(_)),
            retry_in: None
        })
    ));
    let step = core.register("c");
    sent(step);
    let step = core.on_response(
        t0,
        &FinalResponse {
            status: 401,
            ..FinalResponse::default()
        },
        "c",
    );
    assert!(matches!(
        step,
        Step::Report(RegEvent::Failed {
            error: RegisterError::Challenge(DigestError::NoChallenge),
            ..
        })
    ));
}

#[test]
fn unregister_after_failed_refresh_still_removes_the_binding() {
    let t0 = Instant::now();
    let mut core = RegisterCore::new("alice", "pw", "sip:x", 60);
    sent(core.register("c"));
    core.on_response(t0, &ok(60), "c");
    let at = core.deadline().unwrap();
    sent(core.on_deadline(at, "c"));
    assert!(matches!(
        core.on_timeout(at),
        Step::Report(RegEvent::Failed {
            retry_in: Some(_),
            ..
        })
    ));
    // The registrar may still hold the binding: the session's end must un-REGISTER it.
    assert_eq!(sent(core.unregister("c")).expires, 0);
    assert_eq!(
        core.on_response(at, &ok(0), "c"),
        Step::Report(RegEvent::Unregistered)
    );
}

#[test]
fn unregister_after_wrong_password_sends_nothing() {
    let t0 = Instant::now();
    let mut core = RegisterCore::new("alice", "bad", "sip:x", 60);
    sent(core.register("c"));
    sent(core.on_response(t0, &challenge(401, CHALLENGE), "c"));
    core.on_response(t0, &challenge(401, CHALLENGE), "c");
    assert_eq!(core.unregister("c"), Step::Report(RegEvent::Unregistered));
}
