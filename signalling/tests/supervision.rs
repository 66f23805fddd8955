//! The signalling process supervising a real media plane: `kill -9` of the media plane is
//! noticed within 1 s, a new one runs within 2 s, the lost generation's calls end with a cause,
//! and a new relay session works. Also: `/health` over real HTTP.
//!
//! Needs the `wavegate-mediaplane` binary built in the same target directory (the README's test
//! command builds every binary first); a missing binary fails the test, it is not skipped.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wavegate_shared::protocol::OfferFlags;
use wavegate_shared::{CallId, LegTag};
use wavegate_signalling::Server;
use wavegate_signalling::config::{Config, PortRange};
use wavegate_signalling::supervisor::PlaneState;

fn mediaplane_binary() -> PathBuf {
    // target/<profile>/deps/supervision-<hash> -> target/<profile>/wavegate-mediaplane
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("wavegate-mediaplane");
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

fn config(first_port: u16) -> Config {
    let mut c = Config::default();
    c.media.binary = Some(mediaplane_binary());
    c.media.shards = 1;
    c.media.pin = false;
    c.media.rtp_ports = PortRange {
        first: first_port,
        last: first_port + 99,
    };
    c.http.listen = "127.0.0.1:0".parse().unwrap();
    // Tests run in parallel: never the default WebRTC port 8443.
    c.media.webrtc_port_base = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port");
    c
}

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
}

fn media_port(sdp: &str) -> u16 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio port in {sdp:?}"))
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(&[0xff; 160]);
    p
}

async fn wait_state(server: &Server, want: PlaneState, within: Duration) -> Duration {
    let start = Instant::now();
    let mut rx = server.supervisor.watch_state();
    tokio::time::timeout(within, rx.wait_for(|s| *s == want))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "media plane not {want:?} within {within:?}: {:?}",
                server.supervisor.status()
            )
        })
        .unwrap();
    start.elapsed()
}

/// Programs one relay session and proves a packet from A arrives at B.
async fn relay_works(server: &Server, name: &str) {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let call = CallId::new(name).unwrap();
    let from = LegTag::new("from").unwrap();
    let to_b = server
        .media
        .offer(
            call.clone(),
            from.clone(),
            sdp(a.local_addr().unwrap().port()),
            OfferFlags::default(),
        )
        .await
        .unwrap();
    let offered_port = media_port(&to_b);
    assert!(
        (42000..42300).contains(&offered_port),
        "B is pointed at {offered_port}, outside the media range"
    );
    let to_a = server
        .media
        .answer(
            call.clone(),
            from,
            LegTag::new("to").unwrap(),
            sdp(b.local_addr().unwrap().port()),
        )
        .await
        .unwrap();
    let side_a: SocketAddr = ([127, 0, 0, 1], media_port(&to_a)).into();
    let mut buf = [0u8; 1500];
    // A few tries: the very first packet may race the socket's receive task being armed.
    let mut got = None;
    for seq in 0..20u16 {
        a.send_to(&rtp(seq), side_a).unwrap();
        b.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Ok((n, _)) = b.recv_from(&mut buf) {
            got = Some(n);
            break;
        }
    }
    assert_eq!(
        got,
        Some(172),
        "relayed packet did not arrive at B through {side_a}"
    );
    let stats = server.media.query(call).await.unwrap();
    assert!(stats.offerer.rtp_packets_in >= 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_is_noticed_restarted_and_calls_end_with_cause() {
    let server = Server::start(&config(42000));
    wait_state(&server, PlaneState::Running, Duration::from_secs(10)).await;
    relay_works(&server, "before-kill").await;
    let mut ended = server.media.calls().subscribe();
    let old_pid = server.supervisor.status().pid.unwrap();

    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(old_pid as i32, libc::SIGKILL) }, 0);
    let killed_at = Instant::now();
    let noticed = wait_state(&server, PlaneState::Restarting, Duration::from_secs(1)).await;
    let ev = tokio::time::timeout(Duration::from_secs(1), ended.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.call.as_str(), "before-kill");
    assert!(
        ev.cause.to_string().starts_with("Media plane failure"),
        "{}",
        ev.cause
    );

    wait_state(&server, PlaneState::Running, Duration::from_secs(2)).await;
    let restarted = killed_at.elapsed();
    assert!(
        restarted < Duration::from_secs(2),
        "restart took {restarted:?}"
    );
    let status = server.supervisor.status();
    assert_ne!(status.pid, Some(old_pid));
    assert_eq!(status.restarts, 1);
    assert_eq!(status.generation, 2);
    eprintln!("noticed after {noticed:?}, running again after {restarted:?}");
    relay_works(&server, "after-kill").await;

    server.supervisor.shutdown();
    tokio::time::timeout(Duration::from_secs(3), server.supervision)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_over_http() {
    let server = Server::start(&config(42200));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = server.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    wait_state(&server, PlaneState::Running, Duration::from_secs(10)).await;

    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["mediaplane"]["state"], "running");
    assert_eq!(json["mediaplane"]["shards"].as_array().unwrap().len(), 1);
    assert!(
        json["mediaplane"]["shards"][0]["heartbeat_age_ms"]
            .as_u64()
            .unwrap()
            < 1000
    );

    server.supervisor.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(3), server.supervision).await;
}
