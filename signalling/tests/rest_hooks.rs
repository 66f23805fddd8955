//! REST hooks against a hook back end in the test (an axum server on loopback) and real peers
//! (Kamailio registrar, SIPp callee), with the page played over a real WebSocket: a rejected
//! `connect` makes the session FAILED with the back end's reason; a back end supplying the SIP
//! password lets a page with no password REGISTER at Kamailio; `call/startup` with a session id
//! asks that page to place the call; `session/terminate` closes it; `outgoing_call` and every
//! `call_status` of a call reach the back end; hook outcomes are counted in /metrics.
//! Media ports 46300-46599.

mod rest_common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use futures_util::{SinkExt, StreamExt};
use rest_common::sip_peers::{Kamailio, Sipp};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// The hook back end: refuses login "banned", supplies alice's password (and the registrar
/// port), records every hook it gets.
async fn back_end(registrar_port: u16) -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hooks/{hook}",
            post(
                move |State(seen): State<Seen>, Path(hook): Path<String>, body: String| async move {
                    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    seen.lock().unwrap().push((hook.clone(), body.clone()));
                    if hook == "incoming_call"
                        && body["caller"].as_str().is_some_and(|c| c.contains("sipp"))
                    {
                        return (
                            StatusCode::FORBIDDEN,
                            json!({"reason": "Caller blocked"}).to_string(),
                        );
                    }
                    if hook != "connect" {
                        return (StatusCode::OK, "{}".to_string());
                    }
                    match body["sipOptions"]["login"].as_str() {
                        Some("banned") => (
                            StatusCode::FORBIDDEN,
                            json!({"reason": "Account suspended"}).to_string(),
                        ),
                        Some("alice") => (
                            StatusCode::OK,
                            json!({"sipOptions": {"password": "alicepw", "port": registrar_port,
                                                  "registerRequired": true}})
                            .to_string(),
                        ),
                        _ => (StatusCode::OK, String::new()),
                    }
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn page(http: SocketAddr) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
        .await
        .expect("WebSocket");
    ws
}

/// The next message of `type` (others skipped), within 10 s.
async fn recv_type(ws: &mut Ws, kind: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} message within 10 s"))
            .expect("socket open")
            .expect("frame");
        if let Message::Text(t) = frame {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == kind {
                return v;
            }
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_hook_rejects_and_supplies_credentials_status_hooks_follow_calls() {
    let kamailio = Kamailio::start("registrar.cfg");
    let (back, seen) = back_end(kamailio.port).await;
    let s = rest_common::start_with(46300, None, |c| {
        c.hooks.url = format!("http://{back}/hooks");
        c.hooks.timeout_ms = 1000;
    })
    .await;

    // A refused connect: session FAILED with the back end's reason.
    let mut banned = page(s.http).await;
    send(
        &mut banned,
        json!({"type": "connect", "sipOptions": {"login": "banned", "domain": "127.0.0.1"}}),
    )
    .await;
    let m = recv_type(&mut banned, "session").await;
    assert_eq!(
        (m["status"].as_str(), m["cause"].as_str()),
        (Some("FAILED"), Some("Account suspended")),
        "{m}"
    );

    // No password in the page: the back end supplies it, the session registers at Kamailio.
    let mut alice = page(s.http).await;
    send(
        &mut alice,
        json!({"type": "connect", "sipOptions": {"login": "alice", "domain": "127.0.0.1"}}),
    )
    .await;
    assert_eq!(
        recv_type(&mut alice, "session").await["status"],
        "ESTABLISHED"
    );
    let m = recv_type(&mut alice, "session").await;
    assert_eq!(m["status"], "REGISTERED", "{m}");
    kamailio.wait_registered("alice").await;
    {
        let seen = seen.lock().unwrap();
        let connects: Vec<&Value> = seen
            .iter()
            .filter(|(h, _)| h == "connect")
            .map(|(_, b)| b)
            .collect();
        assert_eq!(connects.len(), 2);
        assert!(
            connects
                .iter()
                .all(|b| b["sipOptions"].get("password").is_none()),
            "{connects:?}"
        );
    }
    let (status, sessions) = s.post("session/find_all", "{}").await;
    assert_eq!(status, 200);
    let alice_session = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["login"] == "alice")
        .unwrap_or_else(|| panic!("alice not listed: {sessions}"))
        .clone();
    assert_eq!(alice_session["status"], "REGISTERED");
    let sid = alice_session["sessionId"].as_str().unwrap().to_string();

    // call/startup for the session: the page is asked to place the call.
    let (status, call) = s
        .post(
            "call/startup",
            &json!({"sessionId": sid, "callee": "bob", "callId": "s1"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{call}");
    assert_eq!(
        (call["kind"].as_str(), call["caller"].as_str()),
        (Some("page"), Some("alice"))
    );
    let m = recv_type(&mut alice, "startCall").await;
    assert_eq!(
        (m["callId"].as_str(), m["callee"].as_str()),
        (Some("s1"), Some("bob"))
    );
    let (status, _) = s
        .post(
            "call/startup",
            &json!({"sessionId": sid, "callee": "bob", "callId": "s1"}).to_string(),
        )
        .await;
    assert_eq!(status, 409);

    // An incoming call the hook refuses: the caller gets 403, the page hears nothing.
    let ua = s.server.sip.as_ref().unwrap().local_addr();
    let caller = Sipp::uac("uac_refused.xml", ua, &["-s", "alice"]);
    caller.expect_success().await;
    {
        let seen = seen.lock().unwrap();
        let inc: Vec<&Value> = seen
            .iter()
            .filter(|(h, _)| h == "incoming_call")
            .map(|(_, b)| b)
            .collect();
        assert_eq!(inc.len(), 1, "{inc:?}");
        assert_eq!(inc[0]["callee"], "alice");
    }
    send(&mut alice, json!({"type": "ping"})).await;
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let frame = tokio::time::timeout(
            until.saturating_duration_since(Instant::now()),
            alice.next(),
        )
        .await
        .expect("pong within 5 s")
        .unwrap()
        .unwrap();
        if let Message::Text(t) = frame {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            assert_ne!(
                v["type"], "incoming",
                "the refused call reached the page: {v}"
            );
            if v["type"] == "pong" {
                break;
            }
        }
    }

    // session/terminate closes the page's session.
    let (status, r) = s
        .post("session/terminate", &json!({"sessionId": sid}).to_string())
        .await;
    assert_eq!(status, 200, "{r}");
    let m = recv_type(&mut alice, "session").await;
    assert_eq!(
        (m["status"].as_str(), m["cause"].as_str()),
        (Some("DISCONNECTED"), Some("Terminated by REST request"))
    );

    // A server-side call: outgoing_call then each status reach the back end.
    let sipp = Sipp::uas("uas_answer.xml", false);
    let body = json!({"callId": "h1", "account": {"login": "carol", "domain": "127.0.0.1"},
                      "callee": format!("bob@127.0.0.1:{}", sipp.port)});
    let (status, r) = s.post("call/startup", &body.to_string()).await;
    assert_eq!(status, 200, "{r}");
    s.wait_status("h1", "ESTABLISHED").await;
    let (status, _) = s.post("call/terminate", r#"{"callId":"h1"}"#).await;
    assert_eq!(status, 200);
    s.wait_status("h1", "GONE").await;
    sipp.expect_success().await;
    let until = Instant::now() + Duration::from_secs(5);
    let statuses = loop {
        let st: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(h, b)| h == "call_status" && b["callId"] == "h1")
            .map(|(_, b)| b["status"].as_str().unwrap_or("?").to_string())
            .collect();
        if st.last().map(String::as_str) == Some("FINISH") || Instant::now() > until {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        statuses.contains(&"ESTABLISHED".to_string()),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("FINISH"),
        "{statuses:?}"
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|(h, b)| h == "outgoing_call" && b["callId"] == "h1"),
        "no outgoing_call hook"
    );
    let (_, metrics) = s.get("/metrics").await;
    assert!(
        metrics.contains("wavegate_hook_requests_total{hook=\"connect\",outcome=\"rejected\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wavegate_registrations_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_hook_is_bounded_counted_and_fails_open_or_closed() {
    let dead = sip_dead_port();
    for closed in [false, true] {
        let s = rest_common::start_with(if closed { 46500 } else { 46400 }, None, |c| {
            c.hooks.url = format!("http://127.0.0.1:{dead}/hooks");
            c.hooks.timeout_ms = 300;
            c.hooks.retries = 1;
            c.hooks.connect_fail_closed = closed;
        })
        .await;
        let mut p = page(s.http).await;
        let start = Instant::now();
        send(
            &mut p,
            json!({"type": "connect", "sipOptions": {"login": "u", "domain": "127.0.0.1"}}),
        )
        .await;
        let m = recv_type(&mut p, "session").await;
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "hook not bounded: {:?}",
            start.elapsed()
        );
        if closed {
            assert_eq!(m["status"], "FAILED", "{m}");
            assert!(
                m["cause"]
                    .as_str()
                    .unwrap()
                    .starts_with("connect hook unavailable"),
                "{m}"
            );
        } else {
            assert_eq!(m["status"], "ESTABLISHED", "{m}");
        }
        let (_, metrics) = s.get("/metrics").await;
        assert!(
            metrics.contains(
                "wavegate_hook_requests_total{hook=\"connect\",outcome=\"transport_error\"} 2"
            ),
            "{metrics}"
        );
        assert!(metrics.contains("outcome=\"gave_up\"} 1"), "{metrics}");
        drop(s);
    }
}

/// A TCP port nobody listens on (bound, then released).
fn sip_dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
