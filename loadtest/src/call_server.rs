//! The `call` scenario's view of the server under test: its `/health` endpoint (which names
//! the media plane's pid) and the CPU and RSS of both processes, read from /proc. Every probe
//! is bounded in time; nothing here touches the calls themselves.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::relay::RunError;
use crate::sysinfo;

/// `GET /health` over a plain TCP connection (loopback, bounded by timeouts).
pub(crate) fn health(port: u16) -> Option<Value> {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.take(1 << 20).read_to_string(&mut text).ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

/// The media plane's pid from `/health` once it reports ok, within `limit` (bounded polling).
pub(crate) async fn mediaplane_pid(port: u16, limit: Duration) -> Result<Option<u32>, RunError> {
    let t = Instant::now();
    while t.elapsed() < limit {
        let h = tokio::task::spawn_blocking(move || health(port))
            .await
            .map_err(|_| RunError::Thread("health"))?;
        if let Some(h) = h
            && h.get("status").and_then(Value::as_str) == Some("ok")
            && let Some(pid) = h.pointer("/mediaplane/pid").and_then(Value::as_u64)
        {
            return Ok(Some(pid as u32));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(None)
}

/// Sum of both server processes' CPU ticks and RSS; None when one is gone.
pub(crate) fn usage(pids: (u32, u32)) -> Option<((u64, u64), (u64, u64))> {
    Some((
        (
            sysinfo::cpu_ticks(pids.0).ok()?,
            sysinfo::cpu_ticks(pids.1).ok()?,
        ),
        (
            sysinfo::rss_kib(pids.0).ok()?,
            sysinfo::rss_kib(pids.1).ok()?,
        ),
    ))
}
