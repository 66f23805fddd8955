//! The packet path with connected twins allocates nothing: a relay call through a
//! [`SocketTable`] and a real io_uring, with a counting global allocator armed only around the
//! table's calls (receive handling, send completions, taking the submissions), once the twins
//! are open. Ports 28340-28379 (this test only). Every wait is bounded.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use io_uring::{IoUring, types};
use wavegate_mediaplane::io::batch::send_slot;
use wavegate_mediaplane::io::sockets::{SocketTable, TOKEN_REMOVE};
use wavegate_mediaplane::relay::{Relay, RelayConfig, Side};
use wavegate_mediaplane::rtp::write_rtp;
use wavegate_shared::ShardId;
use wavegate_shared::clock::monotonic_ns;
use wavegate_shared::ids::{CallId, LegTag};
use wavegate_shared::protocol::OfferFlags;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator; the counting touches no heap.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as the caller promised for `layout`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as the caller promised.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` with allocation counting armed on this thread.
fn counted<T>(f: impl FnOnce() -> T) -> T {
    ARMED.with(|a| a.set(true));
    let out = f();
    ARMED.with(|a| a.set(false));
    out
}

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// One turn of the shard loop: submit, wait up to 10 ms, handle the completions. `cqes` is
/// preallocated by the caller.
fn turn(ring: &mut IoUring, t: &mut SocketTable, relay: &mut Relay, cqes: &mut Vec<(u64, i32, u32)>, count: bool) {
    let arm = |on: bool| ARMED.with(|a| a.set(on && count));
    arm(true);
    let pending = t.take_pending(monotonic_ns());
    arm(false);
    for e in pending {
        // SAFETY: entries reference the table's sockets, ring and slots, all alive here.
        while unsafe { ring.submission().push(&e) }.is_err() {
            ring.submit().unwrap();
        }
    }
    let ts = types::Timespec::new().nsec(10_000_000);
    let args = types::SubmitArgs::new().timespec(&ts);
    let _ = ring.submitter().submit_with_args(t.sends_in_flight() + 1, &args);
    t.submitted();
    cqes.clear();
    cqes.extend(ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
    let now = monotonic_ns();
    arm(true);
    for &(token, res, flags) in cqes.iter() {
        match send_slot(token) {
            Some(slot) => t.on_send_done(slot, res),
            None if token == TOKEN_REMOVE => {}
            None => t.on_recv(token, res, flags, relay, None, now),
        }
    }
    t.publish_buffers();
    arm(false);
}

fn send_rtp(from: &UdpSocket, to: u16, seq: u16, n: u16) {
    let mut pkt = [0u8; 172];
    for i in seq..seq + n {
        write_rtp(&mut pkt, 0, i, u32::from(i) * 160, 0x1234, &[0xd5; 160]).unwrap();
        from.send_to(&pkt, (Ipv4Addr::LOCALHOST, to)).unwrap();
    }
}

#[test]
fn relaying_through_twins_allocates_nothing() {
    let mut ring: IoUring = IoUring::builder().setup_single_issuer().setup_defer_taskrun().build(256).unwrap();
    let mut t = SocketTable::with_buffers(28340, 40, LOCAL, 64).unwrap();
    t.register(&ring.submitter()).unwrap();
    t.set_connect_latched(true);
    let config =
        RelayConfig { shard: ShardId(0), ports: "28340-28379".parse().unwrap(), announce_ip: LOCAL, media_timeout_secs: 0 };
    let mut relay = Relay::new(config, 3);
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let sdp = |port: u16| {
        format!("v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n")
    };
    let call = CallId::new("alloc").unwrap();
    let (ft, tt) = (LegTag::new("ft").unwrap(), LegTag::new("tt").unwrap());
    if relay.offer(0, &call, &ft, &sdp(a.local_addr().unwrap().port()), &OfferFlags::default(), &mut t).is_err() {
        return; // a port of the slice is busy on this shared machine
    }
    relay.answer(0, &call, &ft, &tt, &sdp(b.local_addr().unwrap().port()), &mut t).unwrap();
    let a_side = relay.leg_ports(&call, Side::Offerer).unwrap()[0];
    let b_side = relay.leg_ports(&call, Side::Answerer).unwrap()[0];
    let mut cqes = Vec::with_capacity(4096);
    let mut buf = [0u8; 256];

    // Latch both ways and let the twins open (not counted: opening is not the packet path).
    let (mut seq, mut at_a, mut at_b) = (0u16, 0usize, 0usize);
    let deadline = Instant::now() + Duration::from_secs(2);
    while t.twin_count() < 2 && Instant::now() < deadline {
        send_rtp(&a, a_side, seq, 1);
        send_rtp(&b, b_side, seq, 1);
        seq += 1;
        for _ in 0..3 {
            turn(&mut ring, &mut t, &mut relay, &mut cqes, false);
        }
    }
    assert_eq!(t.twin_count(), 2, "twins open on both relay ports");
    while a.recv_from(&mut buf).is_ok() {}
    while b.recv_from(&mut buf).is_ok() {}

    // Steady state: 100 packets each way through the twins, every table call counted.
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(3);
    for round in 0..10u16 {
        send_rtp(&a, a_side, seq + round * 10, 10);
        send_rtp(&b, b_side, seq + round * 10, 10);
        let want = usize::from(round + 1) * 10;
        while (at_a < want || at_b < want) && Instant::now() < deadline {
            turn(&mut ring, &mut t, &mut relay, &mut cqes, true);
            while let Ok((_, from)) = a.recv_from(&mut buf) {
                assert_eq!(from, SocketAddr::new(LOCAL, a_side));
                at_a += 1;
            }
            while let Ok((_, from)) = b.recv_from(&mut buf) {
                assert_eq!(from, SocketAddr::new(LOCAL, b_side));
                at_b += 1;
            }
        }
    }
    assert_eq!((at_a, at_b), (100, 100), "every packet relayed");
    // The check itself must be able to see an allocation.
    let probe = counted(|| Box::new(7u8));
    assert_eq!(*probe, 7);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after - before, 1, "only the probe allocated: the packet path allocates nothing");
    drop(probe);
    relay.delete(0, &call, &mut t).unwrap();
    turn(&mut ring, &mut t, &mut relay, &mut cqes, false);
}
