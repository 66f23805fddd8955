//! The media plane's re-offer to a page, over a real WebSocket with the real media plane and
//! SIPp: a page calls with an Opus-only offer (hand-written, as Chromium writes it; DTLS never
//! completes, which the renegotiation does not need), SIPp answers PCMU, so the call is
//! transcoded and the page receives `reoffer` with Opus capped at 8 kHz. A garbage answer is
//! refused with an `error` and the call goes on; the page's real answer is accepted (no
//! error); the same answer again is refused as having nothing to answer; an `answer` for an
//! unknown call is refused. With `media.browser_reoffer = false` no re-offer comes.
//! Media ports 43100-43299.

mod rest_common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rest_common::sip_peers::Sipp;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const UFRAG: &str = "Wg7q";
const PWD: &str = "Vb1xKq0VZ8m3lYj9u2sN4eTr";

fn fingerprint() -> String {
    let fp: Vec<String> = (0..32).map(|i| format!("{:02X}", i * 7 % 256)).collect();
    format!("a=fingerprint:sha-256 {}", fp.join(":"))
}

/// A browser's Opus-only audio offer (trimmed Chromium).
fn browser_offer() -> String {
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic: WMS",
        "m=audio 50000 UDP/TLS/RTP/SAVPF 111 110",
        "c=IN IP4 127.0.0.1",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0",
        &format!("a=ice-ufrag:{UFRAG}"),
        &format!("a=ice-pwd:{PWD}"),
        "a=ice-options:trickle",
        &fingerprint(),
        "a=setup:actpass",
        "a=mid:0",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:110 telephone-event/48000",
        "a=ssrc:1001 cname:wavegate-test",
        "",
    ]
    .join("\r\n")
}

/// The page's answer to our re-offer: same ICE credentials and fingerprint (no restart), the
/// DTLS role it already has (active), Opus with the offer's caps echoed as a browser does.
fn browser_answer(reoffer: &str) -> String {
    let mid = reoffer
        .lines()
        .find_map(|l| l.strip_prefix("a=mid:"))
        .expect("a=mid in the re-offer");
    [
        "v=0",
        "o=- 4611731400430051336 3 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        &format!("a=group:BUNDLE {mid}"),
        "a=msid-semantic: WMS",
        "m=audio 50000 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 127.0.0.1",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0",
        &format!("a=ice-ufrag:{UFRAG}"),
        &format!("a=ice-pwd:{PWD}"),
        &fingerprint(),
        "a=setup:active",
        &format!("a=mid:{mid}"),
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1;maxplaybackrate=8000",
        "a=ssrc:1001 cname:wavegate-test",
        "",
    ]
    .join("\r\n")
}

async fn page(http: SocketAddr) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
        .await
        .expect("WebSocket");
    ws
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next message of one of `kinds` (others skipped), within `secs`; `None` on timeout.
async fn next_of(ws: &mut Ws, kinds: &[&str], secs: u64) -> Option<Value> {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, ws.next()).await.ok()?;
        if let Message::Text(t) = frame.expect("socket open").expect("frame") {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if kinds.iter().any(|k| v["type"] == *k) {
                return Some(v);
            }
        }
    }
}

/// Connects, calls SIPp (answers PCMU) and waits for ESTABLISHED.
async fn established_call(ws: &mut Ws, sipp: &Sipp) {
    send(
        ws,
        json!({"type": "connect", "sipOptions": {"login": "alice", "domain": "127.0.0.1"}}),
    )
    .await;
    let m = next_of(ws, &["session"], 10).await.expect("session");
    assert_eq!(m["status"], "ESTABLISHED", "{m}");
    let callee = format!("bob@127.0.0.1:{}", sipp.port);
    send(
        ws,
        json!({"type": "call", "callId": "c1", "callee": callee, "sdp": browser_offer()}),
    )
    .await;
    let m = next_of(ws, &["sdp", "error"], 10).await.expect("sdp");
    assert_eq!(m["type"], "sdp", "{m}");
    for _ in 0..5 {
        let m = next_of(ws, &["call", "error"], 10)
            .await
            .expect("call state");
        assert_eq!(m["type"], "call", "{m}");
        if m["status"] == "ESTABLISHED" {
            return;
        }
        assert!(
            !["FAILED", "FINISH", "BUSY"].contains(&m["status"].as_str().unwrap()),
            "{m}"
        );
    }
    panic!("not ESTABLISHED");
}

async fn hang_up(ws: &mut Ws, sipp: Sipp) {
    send(ws, json!({"type": "hangup", "callId": "c1"})).await;
    let m = next_of(ws, &["call"], 10).await.expect("final state");
    assert_eq!(m["status"], "FINISH", "{m}");
    sipp.expect_success().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcoded_page_call_is_reoffered_narrowband_and_answers_are_checked() {
    let s = rest_common::start(43100, None).await;
    let sipp = Sipp::uas("uas_answer.xml", false);
    let mut ws = page(s.http).await;
    established_call(&mut ws, &sipp).await;

    // SIPp answered PCMU: the media plane transcodes the page's Opus and re-offers it capped.
    let m = next_of(&mut ws, &["reoffer", "error"], 10)
        .await
        .expect("a reoffer");
    assert_eq!(m["type"], "reoffer", "{m}");
    assert_eq!(m["callId"], "c1");
    let offer = m["sdp"].as_str().unwrap().to_string();
    assert!(offer.contains("a=ice-lite"), "{offer}");
    assert!(offer.contains("a=setup:actpass"), "{offer}");
    let fmtp = offer
        .lines()
        .find(|l| l.starts_with("a=fmtp:111 "))
        .unwrap_or_else(|| panic!("Opus fmtp in\n{offer}"));
    assert!(
        fmtp.contains("maxplaybackrate=8000;sprop-maxcapturerate=8000"),
        "{fmtp}"
    );

    // A garbage answer: a clear error, the call goes on.
    send(
        &mut ws,
        json!({"type": "answer", "callId": "c1", "sdp": "not sdp"}),
    )
    .await;
    let m = next_of(&mut ws, &["error", "call"], 10)
        .await
        .expect("error");
    assert_eq!(m["type"], "error", "{m}");
    let reason = m["reason"].as_str().unwrap();
    assert!(
        reason.contains("re-offer") && reason.contains("goes on"),
        "{reason}"
    );

    // The real answer: accepted, nothing comes back.
    send(
        &mut ws,
        json!({"type": "answer", "callId": "c1", "sdp": browser_answer(&offer)}),
    )
    .await;
    assert_eq!(
        next_of(&mut ws, &["error", "call"], 2).await,
        None,
        "the answer is accepted silently, the call stays"
    );

    // The same answer again: nothing is waiting for one, said so; the call stays.
    send(
        &mut ws,
        json!({"type": "answer", "callId": "c1", "sdp": browser_answer(&offer)}),
    )
    .await;
    let m = next_of(&mut ws, &["error", "call"], 10)
        .await
        .expect("error");
    assert_eq!(m["type"], "error", "{m}");
    assert!(m["reason"].as_str().unwrap().contains("no offer"), "{m}");
    // An answer for a call that does not exist.
    send(
        &mut ws,
        json!({"type": "answer", "callId": "nope", "sdp": browser_answer(&offer)}),
    )
    .await;
    let m = next_of(&mut ws, &["error", "call"], 10)
        .await
        .expect("error");
    assert!(m["reason"].as_str().unwrap().contains("\"nope\""), "{m}");

    hang_up(&mut ws, sipp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reoffer_when_configured_off() {
    let s =
        rest_common::start_with(43200, None, |c| c.media.browser_reoffer = false).await;
    let sipp = Sipp::uas("uas_answer.xml", false);
    let mut ws = page(s.http).await;
    established_call(&mut ws, &sipp).await;
    assert_eq!(
        next_of(&mut ws, &["reoffer", "error"], 3).await,
        None,
        "no re-offer with media.browser_reoffer = false"
    );
    hang_up(&mut ws, sipp).await;
}
