//! REST control of a page's call, the page played over a real WebSocket with a hand-written
//! WebRTC offer (ICE-lite media plane; DTLS never completes, which SIP signalling does not need):
//! `call/startup` with the session's id makes the page place the call (`startCall` → `call`),
//! SIPp answers, and REST hold/unhold/send_dtmf INFO/transfer reach SIPp through the session's
//! task as the page's own messages would (the same scenario as the server-side test checks the
//! re-INVITEs, INFO and REFER); send_dtmf RFC2833 puts RFC 4733 events on the SIP side's RTP
//! (SIPp answers with a UDP socket of the test as its media). Media ports 46700-46799.

mod rest_common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rest_common::sip_peers::Sipp;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A browser's audio offer as Chromium writes it (trimmed): ICE credentials, DTLS fingerprint,
/// one host candidate, PCMU and telephone-event, rtcp-mux, BUNDLE.
fn browser_offer() -> String {
    let fp: Vec<String> = (0..32).map(|i| format!("{:02X}", i * 7 % 256)).collect();
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic: WMS",
        "m=audio 50000 UDP/TLS/RTP/SAVPF 0 126",
        "c=IN IP4 127.0.0.1",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0",
        "a=ice-ufrag:Wg7q",
        "a=ice-pwd:Vb1xKq0VZ8m3lYj9u2sN4eTr",
        "a=ice-options:trickle",
        &format!("a=fingerprint:sha-256 {}", fp.join(":")),
        "a=setup:actpass",
        "a=mid:0",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:126 telephone-event/8000",
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

/// The next message of `type` (others skipped), within 10 s; `error`s fail the test.
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
            assert_ne!(v["type"], "error", "the session refused something: {v}");
            if v["type"] == kind {
                return v;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_call_started_and_controlled_through_rest() {
    let s = rest_common::start(46700, None).await;
    // SIPp answers with this socket as its media: RFC 4733 events arrive here.
    let media = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    media
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let media_port = media.local_addr().unwrap().port().to_string();
    let sipp = Sipp::uas_with("uas_rest_control.xml", &["-key", "rtp_port", &media_port]);
    let mut ws = page(s.http).await;
    ws.send(Message::text(
        json!({"type": "connect", "sipOptions": {"login": "alice", "domain": "127.0.0.1"}})
            .to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(recv_type(&mut ws, "session").await["status"], "ESTABLISHED");
    let (_, sessions) = s.post("session/find_all", "").await;
    let sid = sessions[0]["sessionId"].as_str().unwrap().to_string();

    let callee = format!("bob@127.0.0.1:{}", sipp.port);
    let (status, r) = s
        .post(
            "call/startup",
            &json!({"sessionId": sid, "callee": callee, "callId": "p1"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    // The page does what the SDK is to do with startCall: call with its offer.
    let m = recv_type(&mut ws, "startCall").await;
    assert_eq!(m["callee"], callee.as_str());
    ws.send(Message::text(
        json!({"type": "call", "callId": m["callId"], "callee": m["callee"], "sdp": browser_offer()})
            .to_string(),
    ))
    .await
    .unwrap();
    assert!(
        recv_type(&mut ws, "sdp").await["sdp"]
            .as_str()
            .unwrap()
            .contains("a=ice-lite")
    );
    s.wait_status("p1", "ESTABLISHED").await;
    let call = s.find("p1").await.unwrap();
    assert_eq!(
        (call["kind"].as_str(), call["sessionId"].as_str()),
        (Some("page"), Some(sid.as_str()))
    );

    // RFC2833 through REST: RFC 4733 events for digit 1 reach the SIP side's media, with the
    // telephone-event type SIPp answered (the offer's).
    let (status, r) = s
        .post("call/send_dtmf", r#"{"callId":"p1","dtmf":"1"}"#)
        .await;
    assert_eq!(status, 200, "{r}");
    let until = Instant::now() + Duration::from_secs(3);
    let mut events = 0;
    let mut ended = false;
    let mut buf = [0u8; 1500];
    while Instant::now() < until && !ended {
        if let Ok((n, _)) = media.recv_from(&mut buf) {
            // RTP with a 4-byte RFC 4733 payload: event 1, E bit on the last ones.
            if n == 16 && buf[0] >> 6 == 2 && buf[1] & 0x7f != 0 && buf[12] == 1 {
                events += 1;
                ended = buf[13] & 0x80 != 0;
            }
        }
    }
    assert!(
        events >= 3 && ended,
        "RFC 4733 digit 1 not seen at the SIP side: {events} packets, end {ended}"
    );

    let (status, _) = s.post("call/hold", r#"{"callId":"p1"}"#).await;
    assert_eq!(status, 200);
    s.wait_status("p1", "HOLD").await;
    let (status, _) = s
        .post(
            "call/unhold",
            &json!({"callId": "p1", "sessionId": sid}).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    s.wait_status("p1", "ESTABLISHED").await;
    let (status, _) = s
        .post(
            "call/send_dtmf",
            r#"{"callId":"p1","dtmf":"5","type":"INFO"}"#,
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = s
        .post(
            "call/transfer",
            r#"{"callId":"p1","target":"carol@127.0.0.1"}"#,
        )
        .await;
    assert_eq!(status, 200);
    // The page hears the end like any call's: FINISH "Transferred to …".
    let mut last = Value::Null;
    for _ in 0..10 {
        last = recv_type(&mut ws, "call").await;
        if last["status"] == "FINISH" || last["status"] == "FAILED" {
            break;
        }
    }
    assert_eq!(last["status"], "FINISH", "{last}");
    assert!(
        last["cause"]
            .as_str()
            .unwrap()
            .starts_with("Transferred to sip:carol@"),
        "{last}"
    );
    s.wait_status("p1", "GONE").await;
    sipp.expect_success().await;
}
