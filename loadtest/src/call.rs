//! The `call` scenario's driver: the whole gateway under call load. Starts the `wavegate`
//! server (which spawns its media plane) on loopback with free ports, then plays N browsers:
//! each opens a WebSocket session speaking the JSON API (docs/websocket-api.md), `connect`s,
//! `call`s the target with a str0m offer (one audio codec), applies the `sdp` answer, and
//! once `ESTABLISHED` sends paced probe packets whose echo gives round trip, loss and jitter;
//! after the hold it stops sending, lets stragglers arrive, and hangs up. `vp8` calls also
//! offer a bundled VP8 video line and send synthetic VP8 beside the audio (video.rs).
//!
//! Threads: one tokio current-thread runtime runs the WebSocket sessions (one task per call),
//! the ramp and the once-a-second sampler; `threads` plain threads drive the str0m browsers
//! (an epoll set each, non-blocking, as in the `webrtc` scenario), fed by a command channel
//! (add, start sending, stop sending, remove) and answering with each call's media figures
//! (call_browsers.rs).
//!
//! Bounded: every wait on the server has a timeout, the whole run is cut at `max_seconds`
//! (calls still running then count as failures "run deadline"), the browser threads stop on a
//! flag, and the server gets SIGTERM then SIGKILL after 5 s.
//!
//! SIP targets (`--target sipp`) are started by `main`; transcoded calls are measured with
//! real Opus and a timed marker (sipp_audio.rs); `incoming` sessions register and SIPp calls
//! them (sipp_incoming.rs); the SIP peers' CPU and RSS are sampled with the server's.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use str0m::config::DtlsCert;
use tokio::sync::mpsc as tmpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use wavegate_shared::clock::monotonic_ns;

use crate::browser::{AudioCodec, Browser, raise_nofile};
pub(crate) use crate::call_browsers::BrowserThreads;
use crate::call_mix::MixCodec;
use crate::call_report::{
    CallConfig, CallReport, ProcessFigures, Sample, Spread, by_cause, codec_figures,
    transcoded_share,
};
use crate::call_server::{mediaplane_pid, usage};
use crate::relay::RunError;
use crate::report::Machine;
use crate::sipp_audio::MarkerLoop;
use crate::sipp_incoming::{Dialler, IncomingPlan, PeerUsage};
use crate::sysinfo;
use crate::video_report::video_figures;
use crate::vp8::Vp8Config;

/// Everything the `call` scenario needs to know.
#[derive(Debug, Clone)]
pub struct CallPlan {
    /// The `wavegate` binary.
    pub server: PathBuf,
    /// Environment overrides for it (ports, shards, log level).
    pub server_env: Vec<(String, String)>,
    /// Its HTTP/WebSocket port.
    pub http_port: u16,
    /// Callee (`echo`).
    pub callee: String,
    /// Codec of each call, in placing order.
    pub codecs: Vec<MixCodec>,
    /// What `vp8` calls send.
    pub video: Vp8Config,
    /// The mix as given (for the report).
    pub mix_text: String,
    /// Calls per second while ramping.
    pub cps: f64,
    /// Seconds each call sends media once established.
    pub hold_secs: u32,
    /// Bound of the whole run, seconds.
    pub max_seconds: u32,
    /// Packets per second per call.
    pub pps: u32,
    /// Payload bytes per packet.
    pub payload: usize,
    /// Browser threads.
    pub threads: usize,
    /// Deadline for each server answer (session, sdp, ESTABLISHED, FINISH).
    pub step_timeout: Duration,
    /// CPU for this process's threads.
    pub pin_cpu: Option<usize>,
    /// Report name.
    pub name: String,
    /// The far end's only codec (SIPp: PCMU); calls offering another are transcoded. None:
    /// the far end answers what is offered (`echo`).
    pub far_codec: Option<AudioCodec>,
    /// SIP peer processes to measure: name and process group.
    pub peers: Vec<(String, u32)>,
    /// Set: SIPp calls registered sessions instead of the browsers calling.
    pub incoming: Option<IncomingPlan>,
}

/// Milliseconds a call keeps receiving after its last send before it hangs up.
pub(crate) const DRAIN: Duration = Duration::from_millis(400);
/// How long the server may take to report healthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

/// What the tasks tell the browser threads.
pub(crate) enum Cmd {
    Add(Box<Browser>, AudioCodec, u64),
    Start(u32),
    Stop(u32),
    Remove(u32),
    /// The gateway's re-offer for a browser: its answer (or why not) goes back on the channel.
    Reoffer(
        u32,
        String,
        tokio::sync::oneshot::Sender<Result<String, String>>,
    ),
}

/// How one call's signalling went.
#[derive(Debug, Default)]
pub(crate) struct CallOutcome {
    pub(crate) setup_us: Option<u64>,
    pub(crate) failure: Option<String>,
    pub(crate) finished: bool,
}

/// Shared counters for progress and the time line.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) placed: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) established: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    /// Incoming: sessions REGISTERED.
    pub(crate) registered: AtomicU64,
    /// Video RTP packets sent and echoed back (`vp8` calls).
    pub(crate) video_sent: AtomicU64,
    pub(crate) video_received: AtomicU64,
}

fn io_err(e: impl std::fmt::Display) -> RunError {
    RunError::Io(std::io::Error::other(e.to_string()))
}

/// Reads server messages until one for which `want` returns Some, or the deadline.
pub(crate) async fn wait_for<S, T>(
    ws: &mut S,
    deadline: Duration,
    mut want: impl FnMut(&Value) -> Option<Result<T, String>>,
) -> Result<T, String>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let until = tokio::time::Instant::now() + deadline;
    // Bounded by the deadline and by a message count.
    for _ in 0..1000 {
        let msg = match tokio::time::timeout_at(until, ws.next()).await {
            Err(_) => return Err("timeout".into()),
            Ok(None) => return Err("WebSocket closed".into()),
            Ok(Some(Err(e))) => return Err(format!("WebSocket: {e}")),
            Ok(Some(Ok(m))) => m,
        };
        let Message::Text(text) = msg else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            return Err("malformed JSON from the server".into());
        };
        if let Some(r) = want(&v) {
            return r;
        }
    }
    Err("too many messages".into())
}

/// Answers the gateway's re-offer as a page's SDK would: the browser thread (which owns the
/// browser) applies it and makes the answer, sent back as `answer`.
async fn answer_reoffer<S>(
    ws: &mut S,
    tx: &mpsc::Sender<Cmd>,
    index: u32,
    call_id: &str,
    sdp: String,
) -> Result<(), String>
where
    S: futures_util::Sink<Message> + Unpin,
{
    let (reply, answer) = tokio::sync::oneshot::channel();
    tx.send(Cmd::Reoffer(index, sdp, reply))
        .map_err(|_| "browser thread gone".to_string())?;
    let answer = tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .map_err(|_| "re-offer: no answer from the browser thread within 5 s".to_string())?
        .map_err(|_| "browser thread gone".to_string())?
        .map_err(|e| format!("re-offer refused by the browser: {e}"))?;
    let msg = json!({"type": "answer", "callId": call_id, "sdp": answer});
    ws.send(Message::text(msg.to_string()))
        .await
        .map_err(|_| "WebSocket send failed (answer)".to_string())
}

pub(crate) fn status_of(v: &Value, kind: &str) -> Option<(String, String)> {
    (v.get("type")?.as_str()? == kind).then(|| {
        (
            v.get("status")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            v.get("cause")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        )
    })
}

/// One call, start to end. Returns its outcome; media figures come from the browser thread.
#[allow(clippy::too_many_arguments)]
async fn one_call(
    index: u32,
    mix: MixCodec,
    plan: Arc<CallPlan>,
    cert: DtlsCert,
    start: Instant,
    tx: mpsc::Sender<Cmd>,
    counters: Arc<Counters>,
) -> CallOutcome {
    let mut out = CallOutcome::default();
    let codec = mix.audio();
    let url = format!("ws://127.0.0.1:{}/ws", plan.http_port);
    let connect = tokio::time::timeout(plan.step_timeout, tokio_tungstenite::connect_async(url));
    let mut ws = match connect.await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => {
            out.failure = Some(format!("WebSocket connect: {e}"));
            return out;
        }
        Err(_) => {
            out.failure = Some("WebSocket connect: timeout".into());
            return out;
        }
    };
    let hello = json!({"type": "connect", "sipOptions": {"login": format!("load{index}"), "domain": "127.0.0.1"}});
    if ws.send(Message::text(hello.to_string())).await.is_err() {
        out.failure = Some("WebSocket send failed".into());
        return out;
    }
    let session = wait_for(&mut ws, plan.step_timeout, |v| {
        let (status, cause) = status_of(v, "session")?;
        match status.as_str() {
            "ESTABLISHED" => Some(Ok(())),
            _ => Some(Err(format!("session {status}: {cause}"))),
        }
    })
    .await;
    if let Err(e) = session {
        out.failure = Some(format!("connect: {e}"));
        return out;
    }
    let video = mix.video().then_some(plan.video);
    let localhost = std::net::Ipv4Addr::LOCALHOST;
    let (mut browser, offer, pending) =
        match Browser::offering(localhost, index, &cert, start, codec, video) {
            Ok(b) => b,
            Err(e) => {
                out.failure = Some(format!("browser: {e}"));
                return out;
            }
        };
    if plan.far_codec.is_some_and(|c| c != codec)
        && let Err(e) = browser.measure_audio()
    {
        out.failure = Some(format!("browser: {e}"));
        return out;
    }
    let call_id = format!("c{index}");
    let call = json!({"type": "call", "callId": call_id, "callee": plan.callee, "sdp": offer});
    let call_sent = monotonic_ns();
    counters.placed.fetch_add(1, Ordering::Relaxed);
    if ws.send(Message::text(call.to_string())).await.is_err() {
        out.failure = Some("WebSocket send failed".into());
        return out;
    }
    // Wait for the answer SDP and ESTABLISHED, in either order.
    let mut browser = Some((browser, pending));
    let mut established = false;
    let mut added = false;
    let mut setup_failure = None;
    // The gateway's re-offer (Opus capped on a transcoded call) may come before ESTABLISHED.
    let mut reoffer: Option<String> = None;
    let got = wait_for(&mut ws, plan.step_timeout, |v| {
        match v.get("type").and_then(Value::as_str) {
            Some("reoffer") => reoffer = v.get("sdp").and_then(Value::as_str).map(str::to_owned),
            Some("sdp") => {
                if let (Some((mut b, pending)), Some(sdp)) =
                    (browser.take(), v.get("sdp").and_then(Value::as_str))
                {
                    if let Err(e) = b.accept_answer(pending, sdp) {
                        return Some(Err(format!("answer refused by the browser: {e}")));
                    }
                    if tx.send(Cmd::Add(Box::new(b), codec, call_sent)).is_err() {
                        return Some(Err("browser thread gone".into()));
                    }
                    added = true;
                }
            }
            Some("call") => {
                let (status, cause) = status_of(v, "call")?;
                match status.as_str() {
                    "ESTABLISHED" => established = true,
                    "FAILED" | "FINISH" | "BUSY" => {
                        return Some(Err(format!("{status}: {cause}")));
                    }
                    _ => {}
                }
            }
            Some("error") => {
                let reason = v.get("reason").and_then(Value::as_str).unwrap_or("");
                setup_failure = Some(format!("error: {reason}"));
                return Some(Err(format!("error: {reason}")));
            }
            _ => {}
        }
        (established && added).then_some(Ok(()))
    })
    .await;
    let _ = setup_failure;
    if let Err(e) = got {
        out.failure = Some(if e == "timeout" {
            format!(
                "timeout waiting for {}",
                if added {
                    "ESTABLISHED"
                } else {
                    "the answer SDP"
                }
            )
        } else {
            e
        });
        if added {
            let _ = tx.send(Cmd::Remove(index));
        }
        return out;
    }
    out.setup_us = Some(monotonic_ns().saturating_sub(call_sent) / 1000);
    counters.established.fetch_add(1, Ordering::Relaxed);
    counters.active.fetch_add(1, Ordering::Relaxed);
    let _ = tx.send(Cmd::Start(index));
    // Hold: the server may end the call early (media timeout, media plane lost), or re-offer.
    let hold_end = tokio::time::Instant::now() + Duration::from_secs(u64::from(plan.hold_secs));
    let mut early = Err("timeout".to_string());
    // Bounded: a re-offer or two per call; the loop ends at the hold's end in any case.
    for _ in 0..8 {
        if let Some(sdp) = reoffer.take()
            && let Err(e) = answer_reoffer(&mut ws, &tx, index, &call_id, sdp).await
        {
            early = Err(e);
            break;
        }
        let left = hold_end.saturating_duration_since(tokio::time::Instant::now());
        early = wait_for(&mut ws, left, |v| {
            match v.get("type").and_then(Value::as_str) {
                Some("reoffer") => {
                    return Some(Ok(v.get("sdp").and_then(Value::as_str).map(str::to_owned)));
                }
                // The gateway refusing our answer to its re-offer.
                Some("error") => {
                    let reason = v.get("reason").and_then(Value::as_str).unwrap_or("");
                    return reason
                        .contains("re-offer")
                        .then(|| Err(format!("error: {reason}")));
                }
                _ => {}
            }
            let (status, cause) = status_of(v, "call")?;
            matches!(status.as_str(), "FAILED" | "FINISH")
                .then(|| Err(format!("{status}: {cause}")))
        })
        .await
        .map(|sdp| reoffer = sdp);
        if reoffer.is_none() {
            break;
        }
    }
    let _ = tx.send(Cmd::Stop(index));
    tokio::time::sleep(DRAIN).await;
    let _ = tx.send(Cmd::Remove(index));
    counters.active.fetch_sub(1, Ordering::Relaxed);
    match early {
        Err(e) if e == "timeout" => {}
        Err(e) => {
            out.failure = Some(format!("ended during the hold: {e}"));
            return out;
        }
        Ok(()) => {}
    }
    let hangup = json!({"type": "hangup", "callId": call_id});
    if ws.send(Message::text(hangup.to_string())).await.is_err() {
        out.failure = Some("WebSocket send failed (hangup)".into());
        return out;
    }
    let end = wait_for(&mut ws, plan.step_timeout, |v| {
        let (status, cause) = status_of(v, "call")?;
        match status.as_str() {
            "FINISH" => Some(Ok(())),
            "FAILED" => Some(Err(format!("hangup: FAILED: {cause}"))),
            _ => None,
        }
    })
    .await;
    match end {
        Ok(()) => out.finished = true,
        Err(e) => out.failure = Some(format!("hangup: {e}")),
    }
    let _ = ws.close(None).await;
    out
}

/// Runs the scenario and returns its report (thresholds not yet judged).
pub async fn run(plan: CallPlan) -> Result<CallReport, RunError> {
    let plan = Arc::new(plan);
    let started_unix = sysinfo::unix_now();
    raise_nofile();
    let loadavg_before = sysinfo::loadavg();
    let mut server = tokio::process::Command::new(&plan.server)
        .envs(plan.server_env.iter().cloned())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| io_err(format!("cannot start {}: {e}", plan.server.display())))?;
    let server_pid = server.id().ok_or_else(|| io_err("server exited at once"))?;
    let t_health = Instant::now();
    let mut mp_pid = None;
    while t_health.elapsed() < HEALTH_TIMEOUT && mp_pid.is_none() {
        if let Some(status) = server.try_wait()? {
            return Err(RunError::Exited(status));
        }
        mp_pid = mediaplane_pid(plan.http_port, Duration::from_secs(1)).await?;
    }
    let mp_pid = mp_pid.ok_or_else(|| io_err("the server never reported /health ok"))?;
    let mut pids = (server_pid, mp_pid);
    tracing::info!(
        server_pid,
        mp_pid,
        ms = t_health.elapsed().as_millis() as u64,
        "server healthy"
    );
    if let Some(cpu) = plan.pin_cpu
        && let Err(e) = sysinfo::pin_current_thread(cpu)
    {
        tracing::warn!(error = %e, cpu, "cannot pin the load generator");
    }
    // Let the server settle, then take the idle baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu0, rss_idle) = usage(pids).ok_or_else(|| io_err("server process gone"))?;

    let cert = str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
        .ok_or_else(|| io_err("cannot generate a DTLS certificate"))?;
    let frames = Arc::new(MarkerLoop::new().map_err(io_err)?);
    let mut peers = PeerUsage::new(&plan.peers);
    let mut dialler = plan
        .incoming
        .clone()
        .map(|p| Dialler::new(p, plan.codecs.iter().map(|c| c.audio()).collect()));
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let (done_tx, mut done_rx) = tmpsc::unbounded_channel();
    let BrowserThreads { senders, workers } =
        BrowserThreads::spawn(plan.threads, &done_tx, &stop, &counters, (plan.pps, plan.payload), &frames)?;
    drop(done_tx);

    let start = Instant::now();
    let t0 = monotonic_ns();
    let deadline = t0 + u64::from(plan.max_seconds) * 1_000_000_000;
    let mut tasks = JoinSet::new();
    let mut next = 0usize;
    let total = plan.codecs.len();
    let gap_ns = (1e9 / plan.cps.max(0.01)) as u64;
    let mut outcomes = Vec::with_capacity(total);
    let mut timeline = Vec::new();
    let mut last = (t0, cpu0);
    let mut rss_peak = rss_idle;
    let mut peak_active = 0u64;
    let mut next_sample = t0 + 1_000_000_000;
    let tps = sysinfo::ticks_per_sec().max(1) as f64;
    let mut server_gone = None;
    // Media-plane CPU ticks of earlier generations (the supervisor restarts a lost one).
    let mut mp_ticks_before = 0u64;
    let mut restarts = 0u32;
    loop {
        let now = monotonic_ns();
        if now >= deadline || (next >= total && tasks.is_empty()) {
            break;
        }
        while next < total && now >= t0 + gap_ns * next as u64 {
            let (plan2, cert2, counters2) = (plan.clone(), cert.clone(), counters.clone());
            let tx = senders[next % senders.len()].clone();
            let (i, codec) = (next as u32, plan.codecs[next]);
            if plan.incoming.is_some() {
                let session = crate::sipp_incoming::one_session;
                tasks.spawn(session(
                    i,
                    codec.audio(),
                    plan2,
                    cert2,
                    start,
                    tx,
                    counters2,
                ));
            } else {
                tasks.spawn(one_call(i, codec, plan2, cert2, start, tx, counters2));
            }
            next += 1;
        }
        if let Some(d) = dialler.as_mut()
            && let Some(pgid) = d.poll(&counters, total as u64, next >= total)?
        {
            peers.add("sipp (caller)", pgid);
        }
        if now >= next_sample {
            next_sample += 1_000_000_000;
            let Some((cpu, rss)) = usage(pids) else {
                server_gone = server.try_wait()?;
                if server_gone.is_some() {
                    break;
                }
                // The media plane was lost and is being restarted: follow the new one.
                let Some(pid) = mediaplane_pid(plan.http_port, Duration::from_secs(10)).await?
                else {
                    return Err(io_err("the media plane was lost and did not come back"));
                };
                tracing::warn!(pid, "media plane restarted by the server");
                restarts += 1;
                mp_ticks_before += last
                    .1
                    .1
                    .saturating_sub(if restarts == 1 { cpu0.1 } else { 0 });
                pids.1 = pid;
                last.1.1 = 0;
                continue;
            };
            let dt = now.saturating_sub(last.0) as f64 / 1e9;
            let active = counters.active.load(Ordering::Relaxed);
            peak_active = peak_active.max(active);
            rss_peak = (rss_peak.0.max(rss.0), rss_peak.1.max(rss.1));
            let sample = Sample {
                t_secs: now.saturating_sub(t0) as f64 / 1e9,
                active,
                placed: counters.placed.load(Ordering::Relaxed),
                signalling_cpu: cpu.0.saturating_sub(last.1.0) as f64 / tps / dt.max(1e-3),
                mediaplane_cpu: cpu.1.saturating_sub(last.1.1) as f64 / tps / dt.max(1e-3),
                rss_kib: rss.0 + rss.1,
                peers_cpu: peers.sample(dt),
            };
            last = (now, cpu);
            eprintln!(
                "[{:>5.1}s] placed {:>5}/{total} up {:>5} failed {:>4} | sent {:>8} echoed {:>8} | CPU signalling {:>3.0}% media {:>3.0}% SIP peers {:>3.0}% | RSS {} MiB",
                sample.t_secs,
                if dialler.is_some() {
                    counters.registered.load(Ordering::Relaxed)
                } else {
                    sample.placed
                },
                active,
                counters.failed.load(Ordering::Relaxed),
                counters.sent.load(Ordering::Relaxed),
                counters.received.load(Ordering::Relaxed),
                sample.signalling_cpu * 100.0,
                sample.mediaplane_cpu * 100.0,
                sample.peers_cpu * 100.0,
                sample.rss_kib / 1024
            );
            if plan.codecs.iter().any(|c| c.video()) {
                eprintln!(
                    "         video sent {:>8} echoed {:>8}",
                    counters.video_sent.load(Ordering::Relaxed),
                    counters.video_received.load(Ordering::Relaxed)
                );
            }
            timeline.push(sample);
        }
        // Wait for a task to end, the next placement or the next sample, whichever is first.
        let mut wake = next_sample.min(deadline);
        if next < total {
            wake = wake.min(t0 + gap_ns * next as u64);
        }
        crate::ramp::collect_until(wake, &mut tasks, &counters, &mut outcomes).await?;
    }
    let run_secs = monotonic_ns().saturating_sub(t0) as f64 / 1e9;
    let unfinished = tasks.len() + (total - next);
    tasks.abort_all();
    let (cpu1, rss_end) = usage(pids).unwrap_or((last.1, rss_idle));
    let mp_base = if restarts == 0 { cpu0.1 } else { 0 };
    rss_peak = (rss_peak.0.max(rss_end.0), rss_peak.1.max(rss_end.1));
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
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(server_pid as libc::pid_t, libc::SIGTERM) };
    match tokio::time::timeout(Duration::from_secs(5), server.wait()).await {
        Ok(Ok(status)) => tracing::info!(%status, "server stopped"),
        _ => {
            tracing::warn!("server ignored SIGTERM for 5 s; killing it");
            let _ = server.kill().await;
        }
    }
    if let Some(status) = server_gone {
        return Err(RunError::Exited(status));
    }

    let failures_by_cause = by_cause(
        outcomes.iter().filter_map(|o| o.failure.clone()),
        unfinished as u64,
    );
    let setup_us: Vec<u64> = outcomes.iter().filter_map(|o| o.setup_us).collect();
    let connect_us: Vec<u64> = media.iter().filter_map(|m| m.connect_us).collect();
    let established = setup_us.len() as u64;

    let (codecs, all_sent, all_received) = codec_figures(&media).map_err(io_err)?;
    let video_calls: Vec<(u64, &crate::video::VideoCall)> = media
        .iter()
        .filter_map(|m| Some((m.sent, m.video.as_ref()?)))
        .collect();
    let video = video_figures(&plan.video, &video_calls).map_err(io_err)?;
    let sip_setup = dialler.map(Dialler::finish);
    let tps = sysinfo::ticks_per_sec().max(1) as f64;
    let cpu_secs = (
        cpu1.0.saturating_sub(cpu0.0) as f64 / tps,
        (mp_ticks_before + cpu1.1.saturating_sub(mp_base)) as f64 / tps,
    );
    let rss_growth = rss_peak.0.saturating_sub(rss_idle.0) + rss_peak.1.saturating_sub(rss_idle.1);
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
            target: plan.callee.clone(),
            calls: total as u32,
            cps: plan.cps,
            hold_secs: plan.hold_secs,
            max_seconds: plan.max_seconds,
            codec_mix: plan.mix_text.clone(),
            pps: plan.pps,
            payload: plan.payload,
            server_env: plan
                .server_env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            direction: if plan.incoming.is_some() {
                "incoming"
            } else {
                "outgoing"
            }
            .into(),
        },
        placed: counters.placed.load(Ordering::Relaxed),
        established,
        finished: outcomes.iter().filter(|o| o.finished).count() as u64,
        failures_by_cause,
        peak_concurrent: peak_active,
        setup: Spread::from_us(&setup_us),
        media_connect: Spread::from_us(&connect_us),
        codecs,
        loss_ratio: if all_sent == 0 {
            0.0
        } else {
            1.0 - all_received as f64 / all_sent as f64
        },
        processes: vec![
            ProcessFigures {
                process: "wavegate".into(),
                cpu_secs: cpu_secs.0,
                rss_idle_kib: rss_idle.0,
                rss_peak_kib: rss_peak.0,
            },
            ProcessFigures {
                process: "wavegate-mediaplane".into(),
                cpu_secs: cpu_secs.1,
                rss_idle_kib: rss_idle.1,
                rss_peak_kib: rss_peak.1,
            },
        ],
        cpu_secs_per_call: if established == 0 {
            0.0
        } else {
            (cpu_secs.0 + cpu_secs.1) / established as f64
        },
        rss_per_call_kib: if peak_active == 0 {
            0.0
        } else {
            rss_growth as f64 / peak_active as f64
        },
        run_secs,
        timeline,
        setup_us: sorted_setup,
        mediaplane_restarts: restarts,
        transcoded_share: transcoded_share(&media),
        peers: peers.figures(),
        sip_setup,
        video,
        failures: Vec::new(),
    })
}
