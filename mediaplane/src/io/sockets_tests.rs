//! Ports 47100-47199 (this module's tests only).

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
