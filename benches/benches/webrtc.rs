//! Per-packet cost of the media plane's WebRTC <-> RTP bridge, without sockets.
//!
//! A `Bridge` holds N connected calls (ICE + DTLS done, see `webrtc_common`); browsers are str0m
//! `Rtc`s on virtual time. Only the bridge's calls are timed: demultiplexing, the str0m leg
//! (SRTP, RTCP, ICE consent), the rewrite and the hand-over to the driver's send. Each call sends
//! 50 packets/s, so the leg's timers and RTCP are amortised over the packets as in a real shard.
//! Groups (N = 1 and 200 calls alive):
//!
//! - `webrtc_bridge/browser_to_sip/N`: browser SRTP datagram in -> plain RTP out.
//! - `webrtc_bridge/sip_to_browser/N`: SIP RTP in -> SRTP datagram out.
//!
//! Times are the measuring thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time, so
//! other load on the shared VM does not inflate them. Also printed once per group: heap
//! allocations made by the bridge per relayed packet, and the split between packet inputs and
//! the legs' timers. Under `cargo test --benches` (no `--bench` argument) only 1 and 4 calls
//! are set up, to keep the debug-build run short.

mod webrtc_common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use webrtc_common::{Flow, Rig, alloc};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("webrtc_bridge");
    group.throughput(Throughput::Elements(1));
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if full { &[1, 200] } else { &[1, 4] };
    for &calls in sizes {
        for (name, flow) in [
            ("browser_to_sip", Flow::BrowserToSip),
            ("sip_to_browser", Flow::SipToBrowser),
        ] {
            let mut rig = Rig::new(calls, false);
            // Warm up the streams (first packets create str0m's stream state).
            rig.run(flow, 10 * calls as u64);
            let (a0, p0) = (alloc::bridge_allocs(), rig.relayed());
            let (i0, t0) = (rig.input_time, rig.timer_time);
            let (_, packets) = rig.run(flow, if full { 20_000 } else { 200 });
            let allocs = alloc::bridge_allocs() - a0;
            let per = |d: std::time::Duration| d.as_nanos() as f64 / packets.max(1) as f64;
            eprintln!(
                "webrtc_bridge/{name}/{calls}: {:.2} allocations/packet by the bridge; \
                 {:.0} ns/packet in packet inputs + {:.0} ns/packet in leg timers (pre-run)",
                allocs as f64 / (rig.relayed() - p0).max(1) as f64,
                per(rig.input_time - i0),
                per(rig.timer_time - t0),
            );
            group.bench_function(format!("{name}/{calls}"), |b| {
                b.iter_custom(|iters| {
                    let (time, packets) = rig.run(flow, iters);
                    // Scale to exactly `iters` packets (a tick may relay a few more).
                    time.mul_f64(iters as f64 / packets.max(1) as f64)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
