//! The Janus leg of `versus-janus`: the same browser -> SIP call load as the `call` scenario,
//! played against Janus 1.1.2's SIP plugin instead of Wavegate. Starts Janus
//! ([`crate::janus_server`]), places calls at the given rate (one task per call,
//! [`crate::janus_call`]), drives the str0m browsers on the `call` scenario's own browser
//! threads, samples the janus process's CPU and RSS once a second, and returns a
//! [`CallReport`] shaped like Wavegate's (one process, `janus`).
//!
//! Bounded: every wait on Janus has a timeout, the run is cut at `max_seconds` (calls still
//! running then count as "run deadline" failures), browser threads stop on a flag, and Janus
//! gets SIGTERM then SIGKILL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc as tmpsc;
use tokio::task::JoinSet;
use wavegate_shared::clock::monotonic_ns;

use crate::browser::{AudioCodec, raise_nofile};
use crate::call::{BrowserThreads, Counters};
use crate::call_report::{
    CallConfig, CallReport, ProcessFigures, Sample, Spread, by_cause, codec_figures,
};
use crate::janus_call::{JanusCallPlan, one_call};
use crate::janus_server::{Janus, JanusConfig};
use crate::relay::RunError;
use crate::report::Machine;
use crate::sipp_audio::MarkerLoop;
use crate::sipp_incoming::PeerUsage;
use crate::sysinfo;

/// Everything the Janus leg needs.
#[derive(Debug, Clone)]
pub struct JanusPlan {
    /// Janus' configuration (work dir, ports, log level).
    pub server: JanusConfig,
    /// What each call does.
    pub call: JanusCallPlan,
    /// Codec of each call, in placing order.
    pub codecs: Vec<AudioCodec>,
    /// The mix as given.
    pub mix_text: String,
    /// Calls per second while ramping.
    pub cps: f64,
    /// Bound of the whole run, seconds.
    pub max_seconds: u32,
    /// Packets per second per call.
    pub pps: u32,
    /// Payload bytes per packet.
    pub payload: usize,
    /// Browser threads.
    pub threads: usize,
    /// CPU for this process's threads.
    pub pin_cpu: Option<usize>,
    /// Report name.
    pub name: String,
    /// SIP peer process groups (SIPp, Kamailio) measured beside Janus, apart from it.
    pub peers: Vec<(String, u32)>,
}

/// How long Janus may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

fn io_err(e: impl std::fmt::Display) -> RunError {
    RunError::Io(std::io::Error::other(e.to_string()))
}

fn usage(pid: u32) -> Option<(u64, u64)> {
    Some((sysinfo::cpu_ticks(pid).ok()?, sysinfo::rss_kib(pid).ok()?))
}

/// Runs the Janus leg and returns its report (thresholds not yet judged).
pub async fn run(plan: JanusPlan) -> Result<CallReport, RunError> {
    let plan = Arc::new(plan);
    let call_plan = Arc::new(plan.call.clone());
    let started_unix = sysinfo::unix_now();
    raise_nofile();
    let loadavg_before = sysinfo::loadavg();
    let mut janus = Janus::start(&plan.server, START_TIMEOUT)
        .await
        .map_err(io_err)?;
    let pid = janus.pid();
    tracing::info!(pid, ws_port = plan.server.ws_port, "janus listening");
    if let Some(cpu) = plan.pin_cpu
        && let Err(e) = sysinfo::pin_current_thread(cpu)
    {
        tracing::warn!(error = %e, cpu, "cannot pin the load generator");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu0, rss_idle) = usage(pid).ok_or_else(|| io_err("janus process gone"))?;

    let cert = str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
        .ok_or_else(|| io_err("cannot generate a DTLS certificate"))?;
    let mut peers = PeerUsage::new(&plan.peers);
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let (done_tx, mut done_rx) = tmpsc::unbounded_channel();
    // Every browser here offers PCMU and sends probes; the browser threads want the shared
    // Opus loop all the same (used only by calls the gateway transcodes).
    let frames = Arc::new(MarkerLoop::new().map_err(io_err)?);
    let BrowserThreads { senders, workers } =
        BrowserThreads::spawn(plan.threads, &done_tx, &stop, &counters, (plan.pps, plan.payload), &frames)?;
    drop(done_tx);

    let start = Instant::now();
    let t0 = monotonic_ns();
    let deadline = t0 + u64::from(plan.max_seconds) * 1_000_000_000;
    let mut tasks = JoinSet::new();
    let (mut next, total) = (0usize, plan.codecs.len());
    let gap_ns = (1e9 / plan.cps.max(0.01)) as u64;
    let mut outcomes = Vec::with_capacity(total);
    let mut timeline = Vec::new();
    let mut last = (t0, cpu0);
    let (mut rss_peak, mut peak_active) = (rss_idle, 0u64);
    let mut next_sample = t0 + 1_000_000_000;
    let tps = sysinfo::ticks_per_sec().max(1) as f64;
    let mut janus_gone = None;
    loop {
        let now = monotonic_ns();
        if now >= deadline || (next >= total && tasks.is_empty()) {
            break;
        }
        while next < total && now >= t0 + gap_ns * next as u64 {
            let (p, cert2, counters2) = (call_plan.clone(), cert.clone(), counters.clone());
            let tx = senders[next % senders.len()].clone();
            let (i, codec) = (next as u32, plan.codecs[next]);
            tasks.spawn(async move { one_call(i, codec, p, cert2, start, tx, counters2).await });
            next += 1;
        }
        if now >= next_sample {
            next_sample += 1_000_000_000;
            let Some((cpu, rss)) = usage(pid) else {
                janus_gone = janus.exited();
                break;
            };
            let dt = now.saturating_sub(last.0) as f64 / 1e9;
            let active = counters.active.load(Ordering::Relaxed);
            peak_active = peak_active.max(active);
            rss_peak = rss_peak.max(rss);
            let sample = Sample {
                t_secs: now.saturating_sub(t0) as f64 / 1e9,
                active,
                placed: counters.placed.load(Ordering::Relaxed),
                // The one janus process; the chart's second CPU line stays at zero.
                signalling_cpu: cpu.saturating_sub(last.1) as f64 / tps / dt.max(1e-3),
                mediaplane_cpu: 0.0,
                rss_kib: rss,
                peers_cpu: peers.sample(dt),
            };
            last = (now, cpu);
            eprintln!(
                "[{:>5.1}s] janus: placed {:>5}/{total} up {:>5} failed {:>4} | sent {:>8} echoed {:>8} | CPU {:>3.0}% SIP peers {:>3.0}% | RSS {} MiB",
                sample.t_secs,
                sample.placed,
                active,
                counters.failed.load(Ordering::Relaxed),
                counters.sent.load(Ordering::Relaxed),
                counters.received.load(Ordering::Relaxed),
                sample.signalling_cpu * 100.0,
                sample.peers_cpu * 100.0,
                sample.rss_kib / 1024
            );
            timeline.push(sample);
        }
        let mut wake = next_sample.min(deadline);
        if next < total {
            wake = wake.min(t0 + gap_ns * next as u64);
        }
        crate::ramp::collect_until(wake, &mut tasks, &counters, &mut outcomes).await?;
    }
    let run_secs = monotonic_ns().saturating_sub(t0) as f64 / 1e9;
    let unfinished = tasks.len() + (total - next);
    tasks.abort_all();
    let (cpu1, rss_end) = usage(pid).unwrap_or((last.1, rss_idle));
    rss_peak = rss_peak.max(rss_end);
    let loadavg_after = sysinfo::loadavg();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().map_err(|_| RunError::Thread("browser"))??;
    }
    drop(senders);
    let mut media = Vec::new();
    while let Some(m) = done_rx.recv().await {
        media.push(m);
    }
    if let Some(status) = janus_gone {
        return Err(io_err(format!(
            "janus exited during the run ({status}): {}",
            janus.log_tail()
        )));
    }
    janus.stop(Duration::from_secs(5)).await;

    let setup_us: Vec<u64> = outcomes.iter().filter_map(|o| o.setup_us).collect();
    let connect_us: Vec<u64> = media.iter().filter_map(|m| m.connect_us).collect();
    let established = setup_us.len() as u64;
    let (codecs, all_sent, all_received) = codec_figures(&media).map_err(io_err)?;
    let cpu_secs = cpu1.saturating_sub(cpu0) as f64 / tps;
    let mut sorted_setup = setup_us.clone();
    sorted_setup.sort_unstable();
    Ok(CallReport {
        name: plan.name.clone(),
        started_unix,
        machine: Machine {
            loadavg_before,
            loadavg_after,
            ..sysinfo::machine()
        },
        build: if cfg!(debug_assertions) {
            "debug".into()
        } else {
            "release".into()
        },
        config: CallConfig {
            target: plan.call.uri.clone(),
            calls: total as u32,
            cps: plan.cps,
            hold_secs: plan.call.hold_secs,
            max_seconds: plan.max_seconds,
            codec_mix: plan.mix_text.clone(),
            direction: "outgoing".into(),
            pps: plan.pps,
            payload: plan.payload,
            server_env: vec![format!(
                "janus {} (SIP plugin, WebSocket transport)",
                crate::janus_server::JANUS
            )],
        },
        placed: counters.placed.load(Ordering::Relaxed),
        established,
        finished: outcomes.iter().filter(|o| o.finished).count() as u64,
        failures_by_cause: by_cause(
            outcomes.iter().filter_map(|o| o.failure.clone()),
            unfinished as u64,
        ),
        peak_concurrent: peak_active,
        setup: Spread::from_us(&setup_us),
        media_connect: Spread::from_us(&connect_us),
        codecs,
        loss_ratio: if all_sent == 0 {
            0.0
        } else {
            1.0 - all_received as f64 / all_sent as f64
        },
        processes: vec![ProcessFigures {
            process: "janus".into(),
            cpu_secs,
            rss_idle_kib: rss_idle,
            rss_peak_kib: rss_peak,
        }],
        cpu_secs_per_call: if established == 0 {
            0.0
        } else {
            cpu_secs / established as f64
        },
        rss_per_call_kib: if peak_active == 0 {
            0.0
        } else {
            rss_peak.saturating_sub(rss_idle) as f64 / peak_active as f64
        },
        run_secs,
        timeline,
        setup_us: sorted_setup,
        mediaplane_restarts: 0,
        transcoded_share: 0.0,
        peers: peers.figures(),
        sip_setup: None,
        video: None,
        failures: Vec::new(),
    })
}
