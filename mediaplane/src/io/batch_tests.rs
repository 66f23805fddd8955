use super::*;
use io_uring::{IoUring, cqueue};
use proptest::prelude::*;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// A multishot recvmsg buffer as the kernel lays it out.
fn recvmsg_buf(src: SocketAddr, payload: &[u8], flags: u32) -> Vec<u8> {
    // SAFETY: all-zero is a valid sockaddr_in6.
    let mut addr: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let namelen = write_sockaddr(src, &mut addr);
    // SAFETY: reading the plain bytes of a C struct.
    let name = unsafe { std::slice::from_raw_parts((&addr as *const libc::sockaddr_in6).cast::<u8>(), NAME_LEN) };
    let mut buf = Vec::new();
    for w in [namelen, 0, payload.len() as u32, flags] {
        buf.extend_from_slice(&w.to_ne_bytes());
    }
    buf.extend_from_slice(name);
    buf.extend_from_slice(payload);
    buf
}

#[test]
fn send_tokens_round_trip_and_never_match_socket_tokens() {
    for slot in [0u16, 1, 2047, u16::MAX] {
        assert_eq!(send_slot(send_token(slot)), Some(slot));
    }
    // Socket tokens: generation (>= 1) << 32 | index; and the shard's special tokens.
    for token in
        [1u64 << 32, (7u64 << 32) | 65535, (u64::from(u32::MAX) << 32) | 3, u64::MAX, u64::MAX - 1, u64::MAX - 2]
    {
        assert_eq!(send_slot(token), None, "{token:#x}");
    }
}

#[test]
fn parses_v4_and_v6_sources_and_payload() {
    for src in ["127.0.0.1:5004", "[2001:db8::7]:6000", "[fe80::1%2]:40000"] {
        let src: SocketAddr = src.parse().unwrap();
        let buf = recvmsg_buf(src, b"hello rtp", 0);
        let (got, range) = parse_recvmsg(&buf).unwrap();
        assert_eq!(got, src);
        assert_eq!(&buf[range], b"hello rtp");
    }
}

#[test]
fn rejects_truncated_short_and_unknown_family() {
    let src: SocketAddr = "10.0.0.1:4000".parse().unwrap();
    assert!(parse_recvmsg(&recvmsg_buf(src, b"x", libc::MSG_TRUNC as u32)).is_none(), "truncated datagram");
    let buf = recvmsg_buf(src, b"payload", 0);
    assert!(parse_recvmsg(&buf[..buf.len() - 1]).is_none(), "payload longer than the buffer");
    assert!(parse_recvmsg(&buf[..10]).is_none(), "no header");
    let mut unix = buf.clone();
    unix[OUT_LEN..OUT_LEN + 2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
    assert!(parse_recvmsg(&unix).is_none(), "not an IP address");
    let mut long_name = buf;
    long_name[0..4].copy_from_slice(&(NAME_LEN as u32 + 1).to_ne_bytes());
    assert!(parse_recvmsg(&long_name).is_none(), "name larger than its field");
}

proptest! {
    #[test]
    fn parse_never_panics_and_stays_in_bounds(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Some((_, range)) = parse_recvmsg(&bytes) {
            prop_assert!(range.start == RECVMSG_HEADER && range.end <= bytes.len());
        }
    }

    #[test]
    fn sockaddr_round_trips(v6 in any::<bool>(), ip in any::<[u8; 16]>(), port in any::<u16>(), flow in any::<u32>(), scope in any::<u32>()) {
        let addr = if v6 {
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope))
        } else {
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]), port))
        };
        let buf = recvmsg_buf(addr, &ip, 0);
        prop_assert_eq!(parse_recvmsg(&buf).map(|(a, r)| (a, r.len())), Some((addr, 16)));
    }
}

#[test]
fn pool_fills_refuses_and_reuses_the_last_freed_slot() {
    let mut pool = SendPool::new(3);
    let mut traffic = ShardTraffic::default();
    let dst: SocketAddr = "127.0.0.1:9".parse().unwrap();
    for _ in 0..3 {
        pool.queue(5, b"abc", dst, 0).unwrap();
    }
    assert_eq!(pool.queue(5, b"abc", dst, 0), Err(QueueRefused::Full));
    assert_eq!(pool.in_flight(), 3);
    let slots: Vec<u16> = pool.take_queued(0, &mut traffic).map(|e| send_slot(e.get_user_data()).unwrap()).collect();
    assert_eq!(slots, [0, 1, 2]);
    assert!(!pool.has_queued());
    assert!(pool.complete(1, 3, &mut traffic), "kernel took 3 bytes");
    assert!(!pool.complete(1, 3, &mut traffic), "a second completion for the same slot is ignored");
    assert!(!pool.complete(2, -libc::EAGAIN, &mut traffic), "refused send frees but is not counted");
    assert_eq!((traffic.packets_out, traffic.bytes_out), (1, 3));
    assert_eq!(pool.in_flight(), 1);
    pool.queue(5, b"d", dst, 0).unwrap();
    let again: Vec<u16> = pool.take_queued(0, &mut traffic).map(|e| send_slot(e.get_user_data()).unwrap()).collect();
    assert_eq!(again, [2], "last freed, first reused");
    assert_eq!(pool.queue(5, &[0; SEND_BUF_LEN + 1], dst, 0), Err(QueueRefused::TooLarge));
    assert!(!pool.complete(99, 0, &mut traffic), "no such slot");
}

#[test]
fn latency_is_recorded_at_submission_for_relayed_packets_only() {
    let mut pool = SendPool::new(8);
    let mut traffic = ShardTraffic::default();
    let dst: SocketAddr = "127.0.0.1:9".parse().unwrap();
    pool.queue(5, b"relayed", dst, 1_000).unwrap();
    pool.queue(5, b"bridge", dst, 0).unwrap();
    pool.queue(5, b"relayed", dst, 4_000).unwrap();
    assert_eq!(pool.take_queued(5_000, &mut traffic).count(), 3);
    assert_eq!(traffic.relay_latency.count(), 2);
    assert_eq!(traffic.relay_latency.sum_ns, 4_000 + 1_000);
}

#[test]
fn ring_sizes_must_be_powers_of_two() {
    assert!(RecvRing::new(3).is_err());
    assert!(RecvRing::new(0).is_err());
    assert!(RecvRing::new(4).is_ok());
}

/// Waits (bounded) until at least `n` completions are ready; returns them.
fn reap(ring: &mut IoUring, n: usize) -> Vec<(u64, i32, u32)> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        let ts = types::Timespec::new().nsec(20_000_000);
        let args = types::SubmitArgs::new().timespec(&ts);
        let _ = ring.submitter().submit_with_args(1, &args);
        out.extend(ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
    }
    out
}

/// The kernel side: a multishot recvmsg into a 4-buffer ring reads datagrams with their
/// source, ends with ENOBUFS when the ring is empty, and resumes (nothing lost) after the
/// buffers are recycled and the receive re-armed; pooled sends reach their destination.
#[test]
fn kernel_receives_into_the_ring_and_sends_from_the_pool() {
    let mut ring: IoUring = IoUring::builder().setup_single_issuer().setup_defer_taskrun().build(64).unwrap();
    let mut bufs = RecvRing::new(4).unwrap();
    bufs.register(&ring.submitter()).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..6u8 {
        peer.send_to(&[i; 100], sock.local_addr().unwrap()).unwrap();
    }
    let arm = bufs.recv_entry(sock.as_raw_fd(), 42);
    // SAFETY: the entry points at the ring's msghdr and a socket that outlive the test's ring use.
    unsafe { ring.submission().push(&arm).unwrap() };
    let first = reap(&mut ring, 5);
    let data: Vec<_> = first.iter().filter(|c| c.1 > 0).collect();
    assert_eq!(data.len(), 4, "four buffers, four datagrams: {first:?}");
    let ended = first.iter().find(|c| !cqueue::more(c.2)).expect("the receive ends when the ring is empty");
    assert_eq!(ended.1, -libc::ENOBUFS);
    for (i, &&(token, res, flags)) in data.iter().enumerate() {
        assert_eq!(token, 42);
        let bid = cqueue::buffer_select(flags).unwrap();
        let buf = bufs.buf_mut(bid, res as usize);
        let (src, range) = parse_recvmsg(buf).unwrap();
        assert_eq!(src, peer.local_addr().unwrap());
        assert_eq!(&buf[range], &[i as u8; 100][..]);
        bufs.recycle(bid);
    }
    bufs.publish();
    // SAFETY: as above.
    unsafe { ring.submission().push(&arm).unwrap() };
    let rest = reap(&mut ring, 2);
    let payloads: Vec<u8> = rest
        .iter()
        .filter(|c| c.1 > 0)
        .map(|&(_, res, flags)| {
            let buf = bufs.buf_mut(cqueue::buffer_select(flags).unwrap(), res as usize);
            let (_, range) = parse_recvmsg(buf).unwrap();
            buf[range][0]
        })
        .collect();
    assert_eq!(payloads, [4, 5], "the two datagrams that found no buffer were kept by the socket");

    // Sends: three queued, submitted together, completed with their lengths.
    let mut pool = SendPool::new(4);
    let mut traffic = ShardTraffic::default();
    for i in 0..3u8 {
        pool.queue(sock.as_raw_fd(), &[i; 50], peer.local_addr().unwrap(), 0).unwrap();
    }
    for e in pool.take_queued(0, &mut traffic).collect::<Vec<_>>() {
        // SAFETY: the entry's slot stays owned by its request until the completion below.
        unsafe { ring.submission().push(&e).unwrap() };
    }
    let done = reap(&mut ring, 3);
    for &(token, res, _) in &done {
        assert!(pool.complete(send_slot(token).unwrap(), res, &mut traffic));
    }
    assert_eq!((pool.in_flight(), traffic.packets_out, traffic.bytes_out), (0, 3, 150));
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut got = [0u8; 100];
    for i in 0..3u8 {
        let (n, from) = peer.recv_from(&mut got).unwrap();
        assert_eq!((n, got[0], from), (50, i, sock.local_addr().unwrap()));
    }
}
