//! Signalling CPU per call setup + teardown: sequential calls (INVITE → 200 → ACK, then BYE →
//! 200) from our user agent to a SIPp UAS, signalling only (no media plane), measured with
//! getrusage over the whole test process (our SIP stack, the call tasks and the runtime; SIPp
//! runs in its own process). Prints the figure; fails only far above the 1 ms target (a debug
//! build on a shared VM), so it catches regressions of an order of magnitude. For the real
//! figure: `cargo test --release -p wavegate-signalling --test sip_cpu -- --nocapture`.

mod sip_peers;

use std::time::{Duration, Instant};

use sip_peers::*;
use wavegate_signalling::call::CallState;
use wavegate_signalling::sip::call::CallOptions;
use wavegate_signalling::sip::{RawSipAccount, SipAccount};

const CALLS: u32 = 200;

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct we pass; no other memory is touched.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_per_call_setup_and_teardown() {
    let ua = start_ua().await;
    let sipp = Sipp::uas_calls("uas_answer.xml", CALLS);
    let account = SipAccount::parse(&RawSipAccount {
        login: "alice".into(),
        domain: "127.0.0.1".into(),
        ..RawSipAccount::default()
    })
    .unwrap();
    let target = format!("sip:bob@{}", sipp.addr());
    let sdp = rtp_sdp(4000);
    let run = |n: u32| {
        let (ua, account, target, sdp) = (&ua, &account, &target, &sdp);
        async move {
            for _ in 0..n {
                let mut call = ua
                    .call(account, target, sdp.clone(), None, CallOptions::default())
                    .await
                    .unwrap();
                loop {
                    let (state, cause) = next_state(&mut call).await;
                    assert!(!state.is_final(), "call failed: {state} {cause}");
                    if state == CallState::Established {
                        break;
                    }
                }
                call.hangup();
                assert_eq!(next_state(&mut call).await.0, CallState::Finish);
            }
        }
    };
    // Warm-up (connections, allocator, lazy statics), then the measured calls.
    run(10).await;
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    run(CALLS - 10).await;
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    let per_call = cpu / (CALLS - 10);
    println!(
        "signalling CPU per call setup+teardown: {:.3} ms ({} calls, {:.1} s wall, {:.0} calls/s sequential; {} build)",
        per_call.as_secs_f64() * 1e3,
        CALLS - 10,
        wall.as_secs_f64(),
        f64::from(CALLS - 10) / wall.as_secs_f64(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    assert!(
        per_call < Duration::from_millis(20),
        "{per_call:?} per call"
    );
    sipp.expect_success().await;
    ua.shutdown();
}
