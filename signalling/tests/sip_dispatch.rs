//! The running endpoint against hostile and ordinary out-of-dialog requests, over UDP and TCP:
//! OPTIONS answered 200 with Allow/Accept; 405, 404, 481 refusals; malformed input (garbage start
//! line, truncated body, bad Content-Length, huge headers, unknown method) answered 400 or
//! dropped; afterwards the endpoint still answers OPTIONS and its memory has not grown without
//! bound.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use wavegate_signalling::sip::client::SipUserAgent;

const WAIT: Duration = Duration::from_secs(3);

#[allow(clippy::too_many_arguments)] // one builder for every variant the tests send
fn request(
    method: &str,
    ruri: &str,
    branch: &str,
    extra: &str,
    body: &str,
    cl: &str,
    transport: &str,
    via: SocketAddr,
) -> String {
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/{transport} {via};branch=z9hG4bK{branch}\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\n\
         To: <sip:alice@127.0.0.1>{extra}\r\nCall-ID: {branch}@probe\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n\
         Content-Length: {cl}\r\n\r\n{body}"
    )
}

async fn udp_ask(sock: &UdpSocket, to: SocketAddr, msg: &str) -> Option<String> {
    sock.send_to(msg.as_bytes(), to).await.ok()?;
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn status(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split(' ')
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4
}

async fn options_ok(sock: &UdpSocket, ua: SocketAddr, branch: &str) {
    let via = sock.local_addr().unwrap();
    let resp = udp_ask(
        sock,
        ua,
        &request(
            "OPTIONS",
            &format!("sip:{ua}"),
            branch,
            "",
            "",
            "0",
            "UDP",
            via,
        ),
    )
    .await
    .expect("no answer to OPTIONS");
    assert_eq!(status(&resp), 200, "{resp}");
    let lower = resp.to_ascii_lowercase();
    assert!(
        lower.contains("\r\nallow: invite, ack, bye, cancel, options"),
        "{resp}"
    );
    assert!(lower.contains("\r\naccept: application/sdp"), "{resp}");
}

#[tokio::test]
async fn udp_requests_are_answered_and_malformed_ones_refused() {
    let ua = SipUserAgent::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = ua.local_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let via = sock.local_addr().unwrap();
    options_ok(&sock, addr, "opt1").await;

    let ask = |m: &str, ruri: String, b: &str, extra: &str| {
        request(m, &ruri, b, extra, "", "0", "UDP", via)
    };
    let r = udp_ask(
        &sock,
        addr,
        &ask("INVITE", format!("sip:nobody@{addr}"), "inv404", ""),
    )
    .await
    .unwrap();
    assert_eq!(status(&r), 404, "{r}");
    let r = udp_ask(
        &sock,
        addr,
        &ask("SUBSCRIBE", format!("sip:alice@{addr}"), "sub", ""),
    )
    .await
    .unwrap();
    assert_eq!(status(&r), 405, "{r}");
    assert!(r.to_ascii_lowercase().contains("\r\nallow: invite"), "{r}");
    let r = udp_ask(
        &sock,
        addr,
        &ask("BYE", format!("sip:alice@{addr}"), "bye481", ";tag=gone"),
    )
    .await
    .unwrap();
    assert_eq!(status(&r), 481, "{r}");
    let r = udp_ask(
        &sock,
        addr,
        &ask("MESSAGE", format!("sip:nobody@{addr}"), "msg404", ""),
    )
    .await
    .unwrap();
    assert_eq!(status(&r), 404, "{r}");

    // Bad Content-Length (larger than the body: a truncated datagram) → 400 naming the problem.
    let msg = request(
        "INVITE",
        &format!("sip:alice@{addr}"),
        "badcl",
        "",
        "v=0\r\n",
        "500",
        "UDP",
        via,
    );
    let r = udp_ask(&sock, addr, &msg).await.unwrap();
    assert_eq!(status(&r), 400, "{r}");
    assert!(r.contains("Content-Length 500 but 5 body bytes"), "{r}");
    // Non-numeric Content-Length.
    let msg = request(
        "INFO",
        &format!("sip:alice@{addr}"),
        "nancl",
        "",
        "",
        "x1",
        "UDP",
        via,
    );
    assert_eq!(status(&udp_ask(&sock, addr, &msg).await.unwrap()), 400);
    // CSeq method mismatch.
    let msg = request(
        "INFO",
        &format!("sip:alice@{addr}"),
        "cseq",
        "",
        "",
        "0",
        "UDP",
        via,
    )
    .replace("1 INFO", "1 BYE");
    assert_eq!(status(&udp_ask(&sock, addr, &msg).await.unwrap()), 400);

    // Inputs that cannot be answered are dropped: nothing comes back, and nothing breaks.
    let huge = format!(
        "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bKhuge\r\nX-Big: {}\r\n\r\n",
        "a".repeat(60_000)
    );
    let garbage: Vec<Vec<u8>> = vec![
        b"HELLO WORLD\r\n\r\n".to_vec(),
        b"\x00\x01\x02\xff\xfe garbage".to_vec(),
        format!("OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {via}").into_bytes(), // truncated headers
        b"FOO sip:alice@127.0.0.1 SIP/2.0\r\nCSeq: 1 FOO\r\n\r\n".to_vec(), // unknown method
        b"INVITE sip:alice@127.0.0.1 SIP/2.0\r\n\r\n".to_vec(),             // no headers at all
        huge.into_bytes(),
    ];
    let before = rss_kib();
    for round in 0..300 {
        for g in &garbage {
            sock.send_to(g, addr).await.unwrap();
        }
        if round % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // Whatever came back must be a 400 (never a 2xx to junk).
    let mut buf = vec![0u8; 65536];
    let mut answered = 0;
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await
    {
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert_eq!(status(&r), 400, "{r}");
        answered += 1;
        assert!(answered < 10_000);
    }
    options_ok(&sock, addr, "opt2").await;
    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "RSS grew by {grown} KiB over 1800 malformed datagrams"
    );
    assert_eq!(ua.dialog_count(), 0);
    ua.shutdown();
}

async fn tcp_ask(stream: &mut TcpStream, msg: &[u8]) -> Option<String> {
    stream.write_all(msg).await.ok()?;
    let mut buf = vec![0u8; 65536];
    let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test]
async fn tcp_stream_survives_malformed_input() {
    let ua = SipUserAgent::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = ua.local_addr();

    // A well-formed OPTIONS over TCP.
    let mut s = TcpStream::connect(addr)
        .await
        .expect("no TCP listener on the UA port");
    let via = s.local_addr().unwrap();
    let r = tcp_ask(
        &mut s,
        request(
            "OPTIONS",
            &format!("sip:{addr}"),
            "t1",
            "",
            "",
            "0",
            "TCP",
            via,
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(r.as_deref().map(status), Some(200), "{r:?}");

    // Garbage, then a header block that never ends: the stream is refused or closed, not buffered forever.
    let mut bad = TcpStream::connect(addr).await.unwrap();
    let _ = bad.write_all(b"HELLO WORLD\r\n\r\n").await;
    let endless = format!(
        "OPTIONS sip:{addr} SIP/2.0\r\nX-Big: {}",
        "b".repeat(200_000)
    );
    let _ = bad.write_all(endless.as_bytes()).await;
    let mut buf = vec![0u8; 4096];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match bad.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(closed, "a stream with a 200 kB header block was kept open");

    // A bad Content-Length on a stream is answered 400 (the framing uses it: the body is there).
    let mut s2 = TcpStream::connect(addr).await.unwrap();
    let via2 = s2.local_addr().unwrap();
    let msg = request(
        "INFO",
        &format!("sip:alice@{addr}"),
        "t2",
        "",
        "",
        "0",
        "TCP",
        via2,
    )
    .replace("1 INFO", "1 BYE");
    assert_eq!(
        tcp_ask(&mut s2, msg.as_bytes())
            .await
            .as_deref()
            .map(status),
        Some(400)
    );

    // The endpoint still answers on a fresh connection.
    let mut s3 = TcpStream::connect(addr).await.unwrap();
    let via3 = s3.local_addr().unwrap();
    let r = tcp_ask(
        &mut s3,
        request(
            "OPTIONS",
            &format!("sip:{addr}"),
            "t3",
            "",
            "",
            "0",
            "TCP",
            via3,
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(r.as_deref().map(status), Some(200), "{r:?}");
    ua.shutdown();
}
