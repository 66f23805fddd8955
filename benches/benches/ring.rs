//! Control-ring costs between two threads of one process, over a real memfd region.
//!
//! The host ends come from the creating `Region`, the guest ends from a second mapping of the
//! same memfd (`Region::attach` of a duplicated descriptor), exactly as in the two-process
//! setup minus the fork. Groups:
//!
//! - `ring_round_trip/spin`: a frame host -> guest, echoed guest -> host; both sides spin on
//!   `try_pop` (bench-only: the product never spins). The floor the rings can reach.
//! - `ring_round_trip/doorbell`: the same with sleeping consumers woken through the doorbell,
//!   which is how the media plane and the client really wait.
//! - `ring_one_way/{64,1024}`: frames per second host -> guest with a spinning consumer and
//!   a producer that retries on `Full`.

use std::hint::black_box;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wavegate_shared::doorbell::Doorbell;
use wavegate_shared::region::{Geometry, GuestChannel, HostChannel, Region};
use wavegate_shared::ring::{Consumer, RingError};

struct Pair {
    host: HostChannel,
    guest: GuestChannel,
    host_bell: Doorbell,
    guest_bell: Doorbell,
}

fn pair() -> Pair {
    let host_region = Region::create(Geometry::with_shards(1)).expect("create region");
    let fd: OwnedFd = host_region
        .fd()
        .try_clone_to_owned()
        .expect("dup region fd");
    let guest_region = Region::attach(fd).expect("attach region");
    let host = host_region
        .take_host_channels()
        .expect("host ends")
        .remove(0);
    let guest = guest_region
        .take_guest_channels()
        .expect("guest ends")
        .remove(0);
    let (host_bell, guest_bell) = Doorbell::pair().expect("doorbell pair");
    Pair {
        host,
        guest,
        host_bell,
        guest_bell,
    }
}

/// Waits for a frame on `rx`: spinning, or asleep on `bell` until the producer rings.
fn pop_blocking(
    rx: &mut Consumer,
    buf: &mut Vec<u8>,
    bell: &Doorbell,
    spin: bool,
    stop: &AtomicBool,
) -> bool {
    loop {
        if rx.try_pop(buf).expect("pop") {
            return true;
        }
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        if spin {
            std::hint::spin_loop();
        } else if rx.prepare_sleep() {
            let _ = bell.wait(Duration::from_millis(50));
            rx.woke();
        }
    }
}

/// Starts the guest side: echoes every command frame back on the event ring.
fn echo_thread(
    guest: GuestChannel,
    bell: Doorbell,
    spin: bool,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        // Bind the whole channel: its `_keep` holds the mapping the endpoints point into (a
        // closure capturing only `guest.commands` would leave it behind and unmap it).
        let mut guest = guest;
        let GuestChannel {
            commands, events, ..
        } = &mut guest;
        let mut buf = Vec::with_capacity(4096);
        while pop_blocking(commands, &mut buf, &bell, spin, &stop) {
            if events.try_push(&buf).expect("echo push") {
                bell.ring();
            }
        }
    })
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_round_trip");
    group.throughput(Throughput::Elements(1));
    for (name, spin) in [("spin", true), ("doorbell", false)] {
        let Pair {
            host,
            guest,
            host_bell,
            guest_bell,
        } = pair();
        let stop = Arc::new(AtomicBool::new(false));
        let echo = echo_thread(guest, guest_bell, spin, stop.clone());
        let HostChannel {
            mut commands,
            mut events,
            ..
        } = host;
        let frame = [0x5au8; 64];
        let mut buf = Vec::with_capacity(4096);
        let never = AtomicBool::new(false);
        group.bench_function(name, |b| {
            b.iter(|| {
                if commands.try_push(black_box(&frame)).expect("push") {
                    host_bell.ring();
                }
                pop_blocking(&mut events, &mut buf, &host_bell, spin, &never);
                black_box(&buf);
            })
        });
        stop.store(true, Ordering::Relaxed);
        host_bell.ring();
        echo.join().expect("echo thread");
    }
    group.finish();
}

fn one_way(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_one_way");
    for size in [64usize, 1024] {
        let Pair { host, guest, .. } = pair();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let consumer = {
            let (stop, received) = (stop.clone(), received.clone());
            std::thread::spawn(move || {
                let mut guest = guest; // whole channel, see echo_thread
                let commands = &mut guest.commands;
                let mut buf = Vec::with_capacity(4096);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if commands.try_pop(&mut buf).expect("pop") {
                        n += 1;
                        received.store(n, Ordering::Release);
                    } else {
                        std::hint::spin_loop();
                    }
                }
            })
        };
        let mut commands = host.commands;
        let frame = vec![0xa5u8; size];
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{size}B"), |b| {
            b.iter_custom(|iters| {
                let base = received.load(Ordering::Acquire);
                let start = Instant::now();
                let mut sent = 0;
                while sent < iters {
                    match commands.try_push(black_box(&frame)) {
                        Ok(_) => sent += 1,
                        Err(RingError::Full) => std::hint::spin_loop(),
                        Err(e) => panic!("push: {e}"),
                    }
                }
                // Count the time until the consumer has them all: frames/s end to end.
                while received.load(Ordering::Acquire) < base + iters {
                    std::hint::spin_loop();
                }
                start.elapsed()
            })
        });
        stop.store(true, Ordering::Relaxed);
        consumer.join().expect("consumer thread");
        drop(host.events);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = round_trip, one_way
}
criterion_main!(benches);
