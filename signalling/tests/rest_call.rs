//! REST call control against SIPp on loopback (media ports 46000-46399): a server-side call
//! started through `call/startup` reaches SIPp, `call/find` shows it live, hold/unhold,
//! send_dtmf (INFO) and transfer produce the re-INVITEs, INFO and REFER SIPp's scenario checks,
//! `call/terminate` ends a call with a BYE, click-to-call bridges two SIPp callees; refusals
//! carry 400/401/404/409 with a reason; `/metrics` parses and its counters move.

mod rest_common;

use std::time::Duration;

use rest_common::sip_peers::Sipp;
use rest_common::start;

fn account() -> &'static str {
    r#"{"login":"alice","domain":"127.0.0.1"}"#
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_hold_unhold_dtmf_transfer_against_sipp() {
    let s = start(46000, None).await;
    let media = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let media_port = media.local_addr().unwrap().port().to_string();
    let sipp = Sipp::uas_with("uas_rest_control.xml", &["-key", "rtp_port", &media_port]);
    let body = format!(
        r#"{{"callId":"c1","account":{},"callee":"bob@127.0.0.1:{}"}}"#,
        account(),
        sipp.port
    );
    let (status, call) = s.post("call/startup", &body).await;
    assert_eq!(status, 200, "{call}");
    assert_eq!(call["callId"], "c1");
    assert_eq!(call["kind"], "server");
    // A duplicate id while the call lives is 409.
    let (status, err) = s.post("call/startup", &body).await;
    assert_eq!(status, 409, "{err}");
    assert!(err["reason"].as_str().unwrap().contains("in use"), "{err}");

    let seen = s.wait_status("c1", "ESTABLISHED").await;
    assert!(
        seen.contains(&"RING".to_string()) || seen.len() > 1,
        "{seen:?}"
    );
    let (status, all) = s.post("call/find_all", "").await;
    assert_eq!(status, 200);
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    let (status, by_callee) = s.post("call/find", r#"{"callee":"bob"}"#).await;
    assert_eq!((status, by_callee.as_array().unwrap().len()), (200, 1));
    let (_, none) = s.post("call/find", r#"{"status":"HOLD"}"#).await;
    assert_eq!(none.as_array().unwrap().len(), 0);

    // During the call: it is active and established, the INVITE was counted.
    let (_, during) = s.get("/metrics").await;
    assert!(during.contains("wavegate_calls_active 1"), "{during}");
    assert!(
        during.contains("wavegate_calls{status=\"ESTABLISHED\"} 1"),
        "{during}"
    );
    assert!(
        during.contains(
            "wavegate_sip_messages_total{code=\"\",direction=\"out\",method=\"INVITE\"} 1"
        ),
        "{during}"
    );

    let (status, r) = s.post("call/hold", r#"{"callId":"c1"}"#).await;
    assert_eq!(status, 200, "{r}");
    s.wait_status("c1", "HOLD").await;
    let (status, _) = s.post("call/unhold", r#"{"callId":"c1"}"#).await;
    assert_eq!(status, 200);
    s.wait_status("c1", "ESTABLISHED").await;

    // RFC 4733 needs a WebRTC leg: refused for a server-side call, with the reason.
    let (status, err) = s
        .post("call/send_dtmf", r#"{"callId":"c1","dtmf":"5"}"#)
        .await;
    assert_eq!(status, 409, "{err}");
    let (status, r) = s
        .post(
            "call/send_dtmf",
            r#"{"callId":"c1","dtmf":"5","type":"INFO"}"#,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    // Let the INFO's transaction finish before the REFER (SIPp expects them in order).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, r) = s
        .post(
            "call/transfer",
            r#"{"callId":"c1","target":"carol@127.0.0.1"}"#,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    s.wait_status("c1", "GONE").await;
    sipp.expect_success().await;

    let (status, metrics) = s.get("/metrics").await;
    assert_eq!(status, 200);
    let lines = metrics.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(
        value("wavegate_calls_total", Some(("direction", "outgoing"))),
        1.0
    );
    assert_eq!(value("wavegate_calls_active", None), 0.0);
    assert_eq!(
        value("wavegate_calls_ended_total", Some(("cause", "Transferred"))),
        1.0,
        "{metrics}"
    );
    assert!(
        value(
            "wavegate_rest_requests_total",
            Some(("endpoint", "call/hold"))
        ) >= 1.0
    );
    let sip = |dir: &str, method: &str, code: &str| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == "wavegate_sip_messages_total")
            .filter(|s| {
                s.labels.get("direction") == Some(dir)
                    && s.labels.get("method") == Some(method)
                    && s.labels.get("code").unwrap_or("") == code
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    // INVITE + hold + unhold re-INVITEs out, their 200s in; INFO, REFER, BYE out; NOTIFY in.
    assert!(sip("out", "INVITE", "") >= 3.0, "{metrics}");
    assert!(sip("in", "INVITE", "200") >= 3.0, "{metrics}");
    assert!(sip("in", "INVITE", "180") >= 1.0, "{metrics}");
    assert!(
        sip("out", "REFER", "") >= 1.0 && sip("in", "REFER", "202") >= 1.0,
        "{metrics}"
    );
    assert!(
        sip("in", "NOTIFY", "") >= 1.0 && sip("out", "NOTIFY", "200") >= 1.0,
        "{metrics}"
    );
    assert!(sip("out", "BYE", "") >= 1.0, "{metrics}");
    assert!(
        value("wavegate_media_request_seconds_count", None) >= 2.0,
        "{metrics}"
    );
    assert!(value("wavegate_shard_calls", None) >= 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_sends_bye_and_errors_carry_status() {
    let s = start(46100, Some("k3y")).await;
    // 401 without or with a wrong key.
    let (status, err) = s.post_key("call/find_all", "{}", None).await;
    assert_eq!(status, 401, "{err}");
    assert!(err["reason"].as_str().unwrap().contains("missing API key"));
    let (status, _) = s.post_key("call/find_all", "{}", Some("nope")).await;
    assert_eq!(status, 401);
    // The OpenAPI document is public.
    let (status, doc) = s.get("/rest-api/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc.contains("\"openapi\""));
    // 400: bad JSON, missing fields, unknown fields, both kinds.
    for (body, needle) in [
        ("{", "invalid JSON"),
        (r#"{"callee":"bob"}"#, "sessionId or account"),
        (r#"{"callee":"bob","account":{},"x":1}"#, "unknown field"),
        (r#"{"account":{}}"#, "callee"),
        (
            r#"{"callee":"bob","account":{"login":"a@b","domain":"x"}}"#,
            "account.login",
        ),
    ] {
        let (status, err) = s.post("call/startup", body).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert!(
            err["reason"].as_str().unwrap().contains(needle),
            "{body}: {err}"
        );
        assert_eq!(err["status"], 400);
    }
    // 404: unknown call or session.
    let (status, _) = s.post("call/terminate", r#"{"callId":"nope"}"#).await;
    assert_eq!(status, 404);
    let (status, _) = s.post("session/terminate", r#"{"sessionId":"nope"}"#).await;
    assert_eq!(status, 404);
    let (status, _) = s
        .post("call/startup", r#"{"sessionId":"nope","callee":"bob"}"#)
        .await;
    assert_eq!(status, 404);

    let sipp = Sipp::uas("uas_answer.xml", false);
    let body = format!(
        r#"{{"callId":"t1","account":{},"callee":"sip:bob@127.0.0.1:{}"}}"#,
        account(),
        sipp.port
    );
    let (status, r) = s.post("call/startup", &body).await;
    assert_eq!(status, 200, "{r}");
    s.wait_status("t1", "ESTABLISHED").await;
    let (status, r) = s.post("call/terminate", r#"{"callId":"t1"}"#).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"], "accepted");
    s.wait_status("t1", "GONE").await;
    sipp.expect_success().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_to_call_bridges_two_callees() {
    let s = start(46200, None).await;
    // A echoes RTP (SIPp -rtp_echo); B's media is this socket.
    let a = Sipp::uas("uas_answer.xml", true);
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let peer_port = peer.local_addr().unwrap().port().to_string();
    let b = Sipp::uas_with("uas_answer_port.xml", &["-key", "rtp_port", &peer_port]);
    let body = format!(
        r#"{{"callId":"ctc","account":{},"callee":"a@127.0.0.1:{}","bridgeTo":"b@127.0.0.1:{}"}}"#,
        account(),
        a.port,
        b.port
    );
    let (status, r) = s.post("call/startup", &body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["bridgedTo"], format!("b@127.0.0.1:{}", b.port));
    s.wait_status("ctc", "ESTABLISHED").await;
    // Wait (bounded) until B's answer re-offered the bridged leg with B's address.
    let id = wavegate_shared::CallId::new("rest-ctc").unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(5);
    let relay_port = loop {
        let st = s.server.media.query(id.clone()).await.expect("Query");
        if st.offerer.remote_rtp == Some(peer.local_addr().unwrap()) {
            break st.offerer.local_rtp.expect("bridged leg's port");
        }
        assert!(
            std::time::Instant::now() < until,
            "B's address never reached the relay: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // B -> relay -> A (echo) -> relay -> B.
    let (_, before) = s.get("/metrics").await;
    let mut back = 0;
    let mut buf = [0u8; 2048];
    for seq in 0..30u16 {
        peer.send_to(&rest_common::sip_peers::rtp(seq), relay_port)
            .unwrap();
        while let Ok((n, _)) = peer.recv_from(&mut buf) {
            if n >= 12 && buf[1] & 0x7f == 0 {
                back += 1;
            }
            if back > seq as usize {
                break;
            }
        }
    }
    assert!(
        back >= 20,
        "only {back} of 30 packets came back through both legs"
    );
    let st = s.server.media.query(id).await.expect("Query");
    assert!(
        st.answerer.rtp_packets_in >= 20,
        "A's echo not relayed: {st:?}"
    );
    // The live call's packets show in the shard counters and the relay latency histogram
    // (each relayed packet was received once and forwarded once; both legs relayed >= 20).
    let (_, during) = s.get("/metrics").await;
    let delta = |name: &str, label: Option<(&str, &str)>| {
        metric_sum(&during, name, label) - metric_sum(&before, name, label)
    };
    let packets = "wavegate_shard_packets_total";
    assert!(
        delta(packets, Some(("direction", "in"))) >= 40.0,
        "{during}"
    );
    assert!(
        delta(packets, Some(("direction", "out"))) >= 40.0,
        "{during}"
    );
    assert!(
        delta("wavegate_shard_bytes_total", Some(("direction", "in"))) >= 40.0 * 12.0,
        "{during}"
    );
    let latency = "wavegate_relay_latency_seconds_count";
    assert!(delta(latency, None) >= 40.0, "{during}");
    let sum = metric_sum(&during, "wavegate_relay_latency_seconds_sum", None);
    assert!(
        sum > 0.0 && sum < metric_sum(&during, latency, None),
        "{during}"
    );
    // Ring occupancy gauges exist for both rings (their value is whatever is queued now).
    for ring in ["commands", "events"] {
        assert!(
            during.contains(&format!(
                "wavegate_shard_ring_bytes{{ring=\"{ring}\",shard=\"0\"}}"
            )),
            "{during}"
        );
        assert!(
            metric_sum(
                &during,
                "wavegate_shard_ring_capacity_bytes",
                Some(("ring", ring))
            ) > 0.0,
            "{during}"
        );
    }
    let (status, _) = s.post("call/terminate", r#"{"callId":"ctc"}"#).await;
    assert_eq!(status, 200);
    s.wait_status("ctc", "GONE").await;
    a.expect_success().await;
    b.expect_success().await;
}

/// Sum of a metric's samples in a Prometheus text scrape (0 when absent), optionally only those
/// carrying one label value.
fn metric_sum(text: &str, name: &str, label: Option<(&str, &str)>) -> f64 {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text format");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}
