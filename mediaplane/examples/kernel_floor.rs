//! The kernel's own cost of one relay hop on this host: a peer sends UDP to socket R, one
//! thread receives each datagram and sends it on to a sink socket (drained by a polling
//! thread, so no wake-ups are billed to the relay). Prints the relay thread's CPU per packet
//! (from its own thread CPU clock). Compare with `wavegate-loadtest relay`.
//!
//! `cargo run --release -p wavegate-mediaplane --example kernel_floor [packets]`

use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn thread_cpu_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn main() -> std::io::Result<()> {
    let packets: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let relay_in = UdpSocket::bind("127.0.0.1:0")?;
    let relay_out = UdpSocket::bind("127.0.0.1:0")?;
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    let peer = UdpSocket::bind("127.0.0.1:0")?;
    let (in_addr, sink_addr) = (relay_in.local_addr()?, sink.local_addr()?);
    sink.set_nonblocking(true)?;
    relay_in.set_read_timeout(Some(Duration::from_secs(2)))?;
    let drain = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut got = 0u64;
        let start = Instant::now();
        while got < packets && start.elapsed() < Duration::from_secs(60) {
            match sink.recv_from(&mut buf) {
                Ok(_) => got += 1,
                Err(_) => std::thread::sleep(Duration::from_micros(50)),
            }
        }
        got
    });
    let relay = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let cpu0 = thread_cpu_ns();
        let mut n = 0u64;
        while n < packets {
            let Ok((len, _)) = relay_in.recv_from(&mut buf) else { break };
            let _ = relay_out.send_to(&buf[..len], sink_addr);
            n += 1;
        }
        (n, thread_cpu_ns() - cpu0)
    });
    let payload = [0u8; 172];
    let start = Instant::now();
    for i in 0..packets {
        peer.send_to(&payload, in_addr)?;
        // ~100k packets/s, like the 1000-stream load.
        while start.elapsed() < Duration::from_micros(i * 10) {}
    }
    let (relayed, cpu) = relay.join().unwrap_or((0, 0));
    let drained = drain.join().unwrap_or(0);
    println!(
        "kernel floor: {relayed} packets relayed ({drained} drained), {:.2} µs CPU per packet (blocking recv + sendto)",
        cpu as f64 / relayed.max(1) as f64 / 1000.0
    );
    Ok(())
}
