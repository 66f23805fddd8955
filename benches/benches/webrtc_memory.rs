//! Heap bytes per WebRTC <-> SIP call in the media plane's bridge, measured with a counting
//! global allocator (`webrtc_common::alloc`): only blocks allocated inside the bridge's calls
//! count, so the simulated browsers' own state is excluded.
//!
//! `cargo bench -p wavegate-benches --bench webrtc_memory [-- CALLS SECONDS]` (defaults 200
//! calls, 10 s of virtual time at 50 packets/s each way, SRTP decrypted by the browsers so their
//! RTCP reports flow back). Prints live bridge bytes per call after set-up, after ICE + DTLS,
//! and after the traffic, with the live blocks by size class. With `WAVEGATE_MEM_TRACE=<bytes>`
//! every bridge block of at least that size remembers its allocation site and the live bytes
//! are printed by site (slow: use a few calls).

mod webrtc_common;

use webrtc_common::{Flow, PTIME, Rig, TICK, alloc};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

fn kib(bytes: i64) -> f64 {
    bytes as f64 / 1024.0
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    // `cargo test --benches` runs this without `--bench`: a tiny run in the debug build.
    let full = std::env::args().any(|a| a == "--bench");
    let calls = args.first().copied().unwrap_or(if full { 200 } else { 2 }) as usize;
    let seconds = args.get(1).copied().unwrap_or(if full { 10 } else { 1 });
    let trace = std::env::var("WAVEGATE_MEM_TRACE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(min) = trace {
        alloc::trace_from(min);
    }
    let before = alloc::bridge_live();
    let mut rig = Rig::new(calls, true);
    let connected = alloc::bridge_live();
    let per_call = |bytes: i64| kib(bytes - before) / calls as f64;
    println!("calls: {calls}");
    println!(
        "connected (ICE + DTLS, no media yet): {:.1} KiB/call",
        per_call(connected)
    );
    let ticks = seconds * 1_000_000_000 / TICK;
    let mut marks = Vec::new();
    let (a0, p0) = (alloc::bridge_allocs(), rig.relayed());
    for t in 1..=ticks {
        rig.tick(Some(Flow::Both));
        if (t * TICK) % 1_000_000_000 == 0 {
            marks.push((t * TICK / 1_000_000_000, alloc::bridge_live()));
        }
    }
    let relayed = rig.relayed() - p0;
    for (s, live) in &marks {
        println!("after {s:>2} s of audio: {:.1} KiB/call", per_call(*live));
    }
    let expected = calls as u64 * 2 * seconds * 1_000_000_000 / PTIME;
    println!(
        "relayed {relayed} packets (expected about {expected}), {:.2} bridge allocations/packet, {:.0} ns/packet in the bridge",
        (alloc::bridge_allocs() - a0) as f64 / relayed.max(1) as f64,
        rig.bridge_time().as_nanos() as f64 / relayed.max(1) as f64
    );
    println!("live bridge blocks by size class (all calls):");
    println!("| size class | blocks/call | KiB/call |");
    println!("|---|---|---|");
    for (k, (bytes, blocks)) in alloc::bridge_classes().iter().enumerate() {
        if *bytes > 0 {
            println!(
                "| {}..{} B | {:.1} | {:.1} |",
                1u64 << k,
                (1u64 << (k + 1)) - 1,
                *blocks as f64 / calls as f64,
                kib(*bytes) / calls as f64
            );
        }
    }
    if trace.is_some() {
        println!("live bridge bytes by allocation site (all calls):");
        for (site, bytes, blocks) in alloc::trace_report(4).iter().take(20) {
            println!(
                "{:>8.1} KiB/call {:>5.1} blocks/call  {site}",
                kib(*bytes as i64) / calls as f64,
                *blocks as f64 / calls as f64
            );
        }
    }
}
