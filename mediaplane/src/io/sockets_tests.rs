//! Ports 47100-47199 and 28300-28339 (this module's tests only).

use super::*;
use crate::relay::RelayConfig;
use crate::rtp::write_rtp;
use io_uring::{IoUring, types};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use wavegate_shared::ShardId;
use wavegate_shared::ids::{CallId, LegTag};
use wavegate_shared::protocol::OfferFlags;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[test]
fn sendto_fallback_reaches_v4_and_v6_peers() {
    for addr in ["127.0.0.1:0", "[::1]:0"] {
        let addr: SocketAddr = addr.parse().unwrap();
        let Ok(sock) = UdpSocket::bind(addr) else {
            continue;
        };
        let from = UdpSocket::bind(addr).unwrap();
        assert!(send_to(from.as_raw_fd(), b"hello", Some(sock.local_addr().unwrap())));
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(sock.recv_from(&mut buf).unwrap(), (5, from.local_addr().unwrap()));
    }
}

#[test]
fn stale_tokens_are_not_live() {
    let mut t = SocketTable::with_buffers(47100, 4, LOCAL, 4).unwrap();
    // Ports may be busy on a shared machine; only check the token logic when bind works.
    if t.open(47100).is_err() {
        return;
    }
    let slot0 = t.slots[0].as_ref().unwrap().generation;
    assert_eq!(t.live_index(token(slot0, 0)), Some(0));
    assert_eq!(t.take_pending(0).count(), 2, "two receives armed");
    t.close(47100);
    assert_eq!(t.live_index(token(slot0, 0)), None);
    assert_eq!(t.closed.len(), 2, "descriptors kept until the cancellations are submitted");
    assert_eq!(t.take_pending(0).count(), 2, "two cancellations queued");
    t.submitted();
    assert!(t.closed.is_empty());
    assert!(t.open(47000).is_err(), "outside the slice");
}

/// Drives the table like the shard loop does, until `done` or two seconds pass.
fn drive(ring: &mut IoUring, t: &mut SocketTable, relay: &mut Relay, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !done() && Instant::now() < deadline {
        let entries: Vec<_> = t.take_pending(monotonic()).collect();
        for e in entries {
            // SAFETY: entries reference the table's sockets, ring and slots, all alive here.
            while unsafe { ring.submission().push(&e) }.is_err() {
                ring.submit().unwrap();
            }
        }
        let ts = types::Timespec::new().nsec(10_000_000);
        let args = types::SubmitArgs::new().timespec(&ts);
        let _ = ring.submitter().submit_with_args(t.sends_in_flight() + 1, &args);
        t.submitted();
        let cqes: Vec<_> = ring.completion().map(|c| (c.user_data(), c.result(), c.flags())).collect();
        let now = monotonic();
        for (token, res, flags) in cqes {
            match super::batch::send_slot(token) {
                Some(slot) => t.on_send_done(slot, res),
                None if token == TOKEN_REMOVE => {}
                None => t.on_recv(token, res, flags, relay, None, now),
            }
        }
        t.publish_buffers();
    }
}

fn monotonic() -> u64 {
    wavegate_shared::clock::monotonic_ns()
}

/// A relay call between two loopback peers through the table and a real io_uring, with a
/// four-buffer ring so that bursts exhaust it: every packet is forwarded once, in order, from
/// the other leg's port, and the counters agree.
#[test]
fn relays_bursts_larger_than_the_ring_without_loss() {
    let mut ring: IoUring = IoUring::builder().setup_single_issuer().setup_defer_taskrun().build(256).unwrap();
    let Ok(mut t) = SocketTable::with_buffers(47110, 40, LOCAL, 4) else { panic!("table") };
    t.register(&ring.submitter()).unwrap();
    let config = RelayConfig {
        shard: ShardId(0),
        ports: "47110-47149".parse().unwrap(),
        announce_ip: LOCAL,
        media_timeout_secs: 0,
    };
    let mut relay = Relay::new(config, 11);
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sdp = |port: u16| {
        format!("v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n")
    };
    let call = CallId::new("c1").unwrap();
    let (ft, tt) = (LegTag::new("ft").unwrap(), LegTag::new("tt").unwrap());
    let offered = relay.offer(0, &call, &ft, &sdp(a.local_addr().unwrap().port()), &OfferFlags::default(), &mut t);
    if offered.is_err() {
        return; // a port of the slice is busy on this shared machine
    }
    relay.answer(0, &call, &ft, &tt, &sdp(b.local_addr().unwrap().port()), &mut t).unwrap();
    let a_side = relay.leg_ports(&call, crate::relay::Side::Offerer).unwrap()[0];
    let b_side = relay.leg_ports(&call, crate::relay::Side::Answerer).unwrap()[0];
    b.set_nonblocking(true).unwrap();

    let mut received = Vec::new();
    let mut pkt = [0u8; 172];
    for burst in 0..3u16 {
        for i in 0..10u16 {
            let seq = burst * 10 + i;
            write_rtp(&mut pkt, 0, seq, u32::from(seq) * 160, 0x1234, &[0xd5; 160]).unwrap();
            a.send_to(&pkt, (Ipv4Addr::LOCALHOST, a_side)).unwrap();
        }
        let want = usize::from(burst + 1) * 10;
        let mut buf = [0u8; 256];
        drive(&mut ring, &mut t, &mut relay, || {
            while let Ok((n, from)) = b.recv_from(&mut buf) {
                assert_eq!((n, from.port()), (172, b_side));
                received.push(u16::from_be_bytes([buf[2], buf[3]]));
            }
            received.len() >= want
        });
    }
    assert_eq!(received.len(), 30, "every packet relayed");
    assert!(received.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "in order: {received:?}");
    let traffic = t.traffic();
    assert_eq!((traffic.packets_in, traffic.packets_out), (30, 30));
    assert_eq!(traffic.relay_latency.count(), 30);
    assert_eq!(t.sends_in_flight(), 0);

    // Closing the call cancels the four receives; the descriptors live until that is submitted.
    relay.delete(0, &call, &mut t).unwrap();
    assert_eq!(t.closed.len(), 4);
    drive(&mut ring, &mut t, &mut relay, || false);
    assert!(t.closed.is_empty());
}

/// Datagrams waiting on `sock` (non-blocking), with their sources, until none arrives for
/// 100 ms (bounded: two seconds).
fn drain_from(sock: &UdpSocket) -> Vec<SocketAddr> {
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok((_, from)) => got.push(from),
            Err(_) => break,
        }
    }
    got
}

/// The kernel behaviour twins rely on: with the port's own socket unconnected and a twin
/// connected to peer P on the same address (`SO_REUSEPORT`), every datagram from P reaches the
/// twin and every datagram from anyone else (several source ports, so several reuseport
/// hashes) reaches the port's own socket; and the port's own socket refuses a second bind until
/// it is given `SO_REUSEPORT`. For a loopback bind, a wildcard bind (production binds the
/// host's address or 0.0.0.0) and a dual-stack `::` bind with IPv4 peers (seen as v4-mapped).
#[test]
fn connected_twin_gets_exactly_its_peers_datagrams() {
    for bind_ip in ["127.0.0.1", "0.0.0.0", "::"] {
        let Ok(main) = bind(bind_ip.parse().unwrap(), 0) else {
            assert_eq!(bind_ip, "::", "only IPv6 may be missing");
            continue;
        };
        twin_takes_its_peer(main, bind_ip);
    }
}

fn twin_takes_its_peer(main: UdpSocket, what: &str) {
    let local = main.local_addr().unwrap();
    let to = SocketAddr::new(LOCAL, local.port());
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    // How the port's socket sees the peer (and the relay names it as a destination).
    let peer_seen = match local {
        SocketAddr::V4(_) => peer.local_addr().unwrap(),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()), peer.local_addr().unwrap().port()),
    };
    let strangers: Vec<UdpSocket> = (0..4).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    let refused = connect_twin(local, peer_seen).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::AddrInUse, "{what}: no second bind without SO_REUSEPORT on the port");

    let mut slot = Slot::new(main, 1);
    set_reuseport(&mut slot).unwrap();
    let twin = connect_twin(local, peer_seen).unwrap();
    assert_eq!(twin.local_addr().unwrap().port(), local.port());
    for round in 0..25u8 {
        peer.send_to(&[round], to).unwrap();
        for s in &strangers {
            s.send_to(&[round], to).unwrap();
        }
    }
    let on_twin = drain_from(&twin);
    let on_main = drain_from(&slot.socket);
    assert_eq!(on_twin.len(), 25, "{what}: every datagram of the peer on the twin");
    assert!(on_twin.iter().all(|a| *a == peer_seen), "{what}");
    assert_eq!(on_main.len(), 100, "{what}: every stranger's datagram on the port's own socket");
    assert!(!on_main.contains(&peer_seen), "{what}");

    // The twin sends without an address, from the port.
    assert!(send_to(twin.as_raw_fd(), b"back", None));
    assert_eq!(drain_from(&peer), vec![to], "{what}");
}

/// UDP sockets of this process bound to a port in `ports` (its descriptors whose socket inode
/// /proc/net/udp lists with such a local port).
fn udp_fds_on(ports: std::ops::RangeInclusive<u16>) -> usize {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    let inodes: std::collections::HashSet<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let port = u16::from_str_radix(cols.get(1)?.rsplit(':').next()?, 16).ok()?;
            ports.contains(&port).then(|| cols.get(9).map(|s| (*s).to_owned()))?
        })
        .collect();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .filter(|inode| inodes.contains(inode))
        .count()
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Like [`drive`], counting the datagrams received by twins (receive completions whose token
/// names a twin).
fn drive_counting(
    ring: &mut IoUring,
    t: &mut SocketTable,
    relay: &mut Relay,
    twin_recvs: &mut usize,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !done() && Instant::now() < deadline {
        let entries: Vec<_> = t.take_pending(monotonic()).collect();
        for e in entries {
            // SAFETY: entries reference the table's sockets, ring and slots, all alive here.
            while unsafe { ring.submission().push(&e) }.is_err() {
                ring.submit().unwrap();
            }
        }
        let ts = types::Timespec::new().nsec(10_000_000);
        let args = types::SubmitArgs::new().timespec(&ts);
        let _ = ring.submitter().submit_with_args(t.sends_in_flight() + 1, &args);
        t.submitted();
        let cqes: Vec<_> = ring.completion().map(|c| (c.user_data(), c.result(), c.flags())).collect();
        let now = monotonic();
        for (token, res, flags) in cqes {
            match super::batch::send_slot(token) {
                Some(slot) => t.on_send_done(slot, res),
                None if token == TOKEN_REMOVE => {}
                None => {
                    if res > 0 && token & TWIN_TOKEN != 0 {
                        *twin_recvs += 1;
                    }
                    t.on_recv(token, res, flags, relay, None, now)
                }
            }
        }
        t.publish_buffers();
    }
}

/// Sends `n` RTP packets from `from` to local port `to`, sequence numbers from `seq`.
fn send_rtp(from: &UdpSocket, to: u16, seq: u16, n: u16) {
    let mut pkt = [0u8; 172];
    for i in seq..seq + n {
        write_rtp(&mut pkt, 0, i, u32::from(i) * 160, 0x1234, &[0xd5; 160]).unwrap();
        from.send_to(&pkt, (Ipv4Addr::LOCALHOST, to)).unwrap();
    }
}

/// Receives from `sock` until `want` datagrams came (two seconds at most): their sources.
fn recv_n(sock: &UdpSocket, want: usize, t: &mut SocketTable, ring: &mut IoUring, relay: &mut Relay) -> Vec<SocketAddr> {
    sock.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    drive(ring, t, relay, || {
        while let Ok((_, from)) = sock.recv_from(&mut buf) {
            got.push(from);
        }
        got.len() >= want
    });
    got
}

/// A relay call through the table with twins on (ports 28300-28339): once each leg's port has
/// sent to its peer, the port has a twin connected to it; the peers' packets then arrive on the
/// twins and are relayed from them (same source port as before); a stranger's packets to the
/// same port still arrive, on the port's own socket, and are dropped and counted; a new
/// destination replaces the twin (the old one closed), and deleting the call closes every
/// socket: no descriptor is left.
#[test]
fn twins_carry_the_peers_packets_and_close_with_the_call() {
    let mut ring: IoUring = IoUring::builder().setup_single_issuer().setup_defer_taskrun().build(256).unwrap();
    let mut t = SocketTable::with_buffers(28300, 40, LOCAL, 64).unwrap();
    t.register(&ring.submitter()).unwrap();
    t.set_connect_latched(true);
    let config =
        RelayConfig { shard: ShardId(0), ports: "28300-28339".parse().unwrap(), announce_ip: LOCAL, media_timeout_secs: 0 };
    let mut relay = Relay::new(config, 7);
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let moved = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (fds_before, ours_before) = (fd_count(), udp_fds_on(28300..=28339));
    let sdp = |port: u16| {
        format!("v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n")
    };
    let call = CallId::new("twins").unwrap();
    let (ft, tt) = (LegTag::new("ft").unwrap(), LegTag::new("tt").unwrap());
    let offered = relay.offer(0, &call, &ft, &sdp(a.local_addr().unwrap().port()), &OfferFlags::default(), &mut t);
    if offered.is_err() {
        return; // a port of the slice is busy on this shared machine
    }
    relay.answer(0, &call, &ft, &tt, &sdp(b.local_addr().unwrap().port()), &mut t).unwrap();
    let a_side = relay.leg_ports(&call, crate::relay::Side::Offerer).unwrap()[0];
    let b_side = relay.leg_ports(&call, crate::relay::Side::Answerer).unwrap()[0];
    assert_eq!(udp_fds_on(28300..=28339), ours_before + 4, "two port pairs");

    // First packets: latched, relayed from the ports' own sockets; each sending port asks for a
    // twin to its destination.
    send_rtp(&a, a_side, 0, 5);
    assert_eq!(recv_n(&b, 5, &mut t, &mut ring, &mut relay), vec![SocketAddr::new(LOCAL, b_side); 5]);
    send_rtp(&b, b_side, 0, 5);
    assert_eq!(recv_n(&a, 5, &mut t, &mut ring, &mut relay), vec![SocketAddr::new(LOCAL, a_side); 5]);
    drive(&mut ring, &mut t, &mut relay, || false);
    assert_eq!(t.twin_count(), 2);
    assert_eq!(t.twin_peer(b_side), Some(b.local_addr().unwrap()));
    assert_eq!(t.twin_peer(a_side), Some(a.local_addr().unwrap()));
    assert_eq!(t.twin_peer(a_side + 1), None, "RTCP port sent nothing: no twin");
    assert_eq!(udp_fds_on(28300..=28339), ours_before + 6);

    // Now both directions arrive on the twins and leave from them.
    let mut twin_recvs = 0;
    send_rtp(&a, a_side, 5, 20);
    send_rtp(&b, b_side, 5, 20);
    let (mut at_a, mut at_b) = (0, 0);
    let mut buf = [0u8; 256];
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    drive_counting(&mut ring, &mut t, &mut relay, &mut twin_recvs, || {
        while let Ok((_, from)) = a.recv_from(&mut buf) {
            assert_eq!(from, SocketAddr::new(LOCAL, a_side));
            at_a += 1;
        }
        while let Ok((_, from)) = b.recv_from(&mut buf) {
            assert_eq!(from, SocketAddr::new(LOCAL, b_side));
            at_b += 1;
        }
        at_a >= 20 && at_b >= 20
    });
    assert_eq!((at_a, at_b), (20, 20), "relayed both ways");
    assert_eq!(twin_recvs, 40, "every peer packet came in on a twin");

    // A stranger to the offerer's port: received on the port's own socket, dropped, counted.
    let dropped_before = relay.query(0, &call).unwrap().offerer.dropped;
    let mut twin_recvs = 0;
    send_rtp(&stranger, a_side, 100, 10);
    let mut at_b = 0;
    let in_before = t.traffic().packets_in;
    let mut rounds = 0;
    // Until the ten came in and a few more rounds passed (a relayed one would show at b).
    while t.traffic().packets_in < in_before + 10 || rounds < 5 {
        rounds += 1;
        let mut ran = false;
        drive_counting(&mut ring, &mut t, &mut relay, &mut twin_recvs, || std::mem::replace(&mut ran, true));
        std::thread::sleep(Duration::from_millis(5));
        while b.recv_from(&mut buf).is_ok() {
            at_b += 1;
        }
        assert!(rounds < 400, "stranger packets never came in");
    }
    assert_eq!(relay.query(0, &call).unwrap().offerer.dropped, dropped_before + 10, "strangers counted");
    assert_eq!((at_b, twin_recvs), (0, 0), "not relayed, not on a twin");

    // A new destination for the answerer's port (as a bridge re-latch or re-offer does): sent
    // with its address at once, and the twin moves to it, the old one closed.
    t.send_rtp(b_side, moved.local_addr().unwrap(), b"moved");
    assert_eq!(recv_n(&moved, 1, &mut t, &mut ring, &mut relay), vec![SocketAddr::new(LOCAL, b_side)]);
    assert_eq!(t.twin_peer(b_side), Some(moved.local_addr().unwrap()));
    assert_eq!(t.twin_count(), 2);
    assert!(t.closed.is_empty(), "the old twin's descriptor went with the submission");
    assert_eq!(udp_fds_on(28300..=28339), ours_before + 6, "the old twin closed");

    // Deleting the call closes ports and twins.
    relay.delete(0, &call, &mut t).unwrap();
    assert_eq!(t.twin_count(), 0);
    drive(&mut ring, &mut t, &mut relay, || false);
    assert_eq!(udp_fds_on(28300..=28339), ours_before, "no socket of the call left");
    assert_eq!(fd_count(), fds_before, "no descriptor leaked");
}

/// With twins off (the default of a new table) the same call opens none.
#[test]
fn twins_off_opens_none() {
    let mut ring: IoUring = IoUring::builder().setup_single_issuer().setup_defer_taskrun().build(64).unwrap();
    let mut t = SocketTable::with_buffers(28320, 20, LOCAL, 16).unwrap();
    t.register(&ring.submitter()).unwrap();
    let config =
        RelayConfig { shard: ShardId(0), ports: "28320-28339".parse().unwrap(), announce_ip: LOCAL, media_timeout_secs: 0 };
    let mut relay = Relay::new(config, 8);
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sdp = |port: u16| {
        format!("v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n")
    };
    let call = CallId::new("plain").unwrap();
    let (ft, tt) = (LegTag::new("ft").unwrap(), LegTag::new("tt").unwrap());
    if relay.offer(0, &call, &ft, &sdp(a.local_addr().unwrap().port()), &OfferFlags::default(), &mut t).is_err() {
        return;
    }
    relay.answer(0, &call, &ft, &tt, &sdp(b.local_addr().unwrap().port()), &mut t).unwrap();
    let a_side = relay.leg_ports(&call, crate::relay::Side::Offerer).unwrap()[0];
    send_rtp(&a, a_side, 0, 5);
    assert_eq!(recv_n(&b, 5, &mut t, &mut ring, &mut relay).len(), 5);
    drive(&mut ring, &mut t, &mut relay, || false);
    assert_eq!(t.twin_count(), 0);
}
