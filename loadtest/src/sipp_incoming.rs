//! The `call` scenario's SIP-facing parts: incoming calls (`--direction incoming`: each
//! browser session registers through Kamailio with its own login, SIPp calls every login once
//! through Kamailio, the browser answers the `incoming` offer with its str0m answer, sends
//! media until SIPp's BYE) and the CPU/RSS of the SIP peer processes.
//!
//! Invariants: every wait has a deadline (the step timeout, or the run's bound for the ringing
//! call); the dialler starts SIPp once, when every session is registered or the ramp is over
//! and [`REGISTER_GRACE`] has passed; setup times come from both ends: the browser's
//! (`incoming` received -> `ESTABLISHED`) and SIPp's (INVITE sent -> 200 OK received).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{Value, json};
use str0m::config::DtlsCert;
use tokio_tungstenite::tungstenite::Message;
use wavegate_shared::clock::monotonic_ns;

use crate::browser::{AudioCodec, Browser};
use crate::call::{CallOutcome, CallPlan, Cmd, Counters, status_of, wait_for};
use crate::call_report::{ProcessFigures, Spread};
use crate::relay::RunError;
use crate::sip_target::{SipCaller, UacOpts, group_pids};
use crate::sysinfo;

/// How long after the last registration was sent the dialler waits for stragglers.
const REGISTER_GRACE: Duration = Duration::from_secs(10);
/// Drain after the browser stops sending, before SIPp's BYE is due.
const STOP_BEFORE_BYE: Duration = Duration::from_millis(800);

/// What the incoming direction needs beyond the call plan.
#[derive(Debug, Clone)]
pub struct IncomingPlan {
    /// Kamailio's port (the sessions' registrar and SIPp's proxy).
    pub registrar_port: u16,
    /// SIPp's options; `callees` is filled in from the call count.
    pub uac: UacOpts,
}

/// The login of session `index`.
pub fn login(index: u32) -> String {
    format!("in{index}")
}

/// Starts SIPp once the sessions are registered; collects its setup times at the end.
pub struct Dialler {
    plan: IncomingPlan,
    codecs: Vec<AudioCodec>,
    caller: Option<SipCaller>,
    ramp_done: Option<Instant>,
}

impl Dialler {
    /// Not started yet; `codecs` are the browsers' codecs, by index.
    pub fn new(plan: IncomingPlan, codecs: Vec<AudioCodec>) -> Dialler {
        Dialler {
            plan,
            codecs,
            caller: None,
            ramp_done: None,
        }
    }

    /// Starts SIPp when all `total` sessions are registered (or the grace after the ramp ran
    /// out); returns its process group when it was started by this call.
    pub fn poll(
        &mut self,
        counters: &Counters,
        total: u64,
        ramp_over: bool,
    ) -> Result<Option<u32>, RunError> {
        if self.caller.is_some() {
            return Ok(None);
        }
        if ramp_over && self.ramp_done.is_none() {
            self.ramp_done = Some(Instant::now());
        }
        let registered = counters.registered.load(Ordering::Relaxed);
        let grace_over = self
            .ramp_done
            .is_some_and(|t| t.elapsed() >= REGISTER_GRACE);
        if registered < total && !grace_over {
            return Ok(None);
        }
        let mut opts = self.plan.uac.clone();
        // PCMU browsers are offered PCMU (passthrough); Opus browsers G.729, which no browser
        // takes, so the gateway offers them Opus and transcodes (a PCMU offer would be answered
        // PCMU: passthrough).
        opts.callees = (0..total as u32)
            .map(|i| match self.codecs.get(i as usize) {
                Some(AudioCodec::Opus) => format!("{};18;G729/8000", login(i)),
                _ => format!("{};0;PCMU/8000", login(i)),
            })
            .collect();
        tracing::info!(registered, total, "starting the SIPp caller");
        let caller = SipCaller::start(&opts).map_err(|e| RunError::Io(std::io::Error::other(e)))?;
        let pid = caller.uac.pid();
        tracing::info!(pid, media_port = caller.media_port, "SIPp caller up");
        self.caller = Some(caller);
        Ok(Some(pid))
    }

    /// SIPp's INVITE -> 200 OK times (empty if it never ran).
    pub fn finish(self) -> Spread {
        let Some(mut caller) = self.caller else {
            return Spread::default();
        };
        // SIPp writes its summary when it exits (after its last BYE); bounded wait.
        let _ = caller.uac.wait_for_exit(Duration::from_secs(3));
        if let Some((ok, failed)) = caller.outcome() {
            tracing::info!(ok, failed, "SIPp caller's own count");
        }
        let us: Vec<u64> = caller
            .setup_ms()
            .iter()
            .map(|ms| (ms * 1000.0) as u64)
            .collect();
        Spread::from_us(&us)
    }
}

/// CPU and RSS of SIP peer process groups (a group's workers included), sampled each second.
pub struct PeerUsage {
    groups: Vec<Group>,
    tps: f64,
}

struct Group {
    name: String,
    pgid: u32,
    ticks0: u64,
    ticks: u64,
    rss_idle: u64,
    rss_peak: u64,
}

fn group_usage(pgid: u32) -> (u64, u64) {
    group_pids(pgid).iter().fold((0, 0), |(t, r), &pid| {
        (
            t + sysinfo::cpu_ticks(pid).unwrap_or(0),
            r + sysinfo::rss_kib(pid).unwrap_or(0),
        )
    })
}

impl PeerUsage {
    /// Baselines of the given groups.
    pub fn new(peers: &[(String, u32)]) -> PeerUsage {
        let mut u = PeerUsage {
            groups: Vec::new(),
            tps: sysinfo::ticks_per_sec().max(1) as f64,
        };
        for (name, pgid) in peers {
            u.add(name, *pgid);
        }
        u
    }

    /// One more group, from now.
    pub fn add(&mut self, name: &str, pgid: u32) {
        let (ticks, rss) = group_usage(pgid);
        self.groups.push(Group {
            name: name.to_owned(),
            pgid,
            ticks0: ticks,
            ticks,
            rss_idle: rss,
            rss_peak: rss,
        });
    }

    /// Samples every group; their CPU over the last `dt` seconds, share of one core. A group
    /// that ended keeps its last figures.
    pub fn sample(&mut self, dt: f64) -> f64 {
        let mut ticks = 0u64;
        for g in &mut self.groups {
            let (t, rss) = group_usage(g.pgid);
            if t >= g.ticks {
                ticks += t - g.ticks;
                g.ticks = t;
            }
            g.rss_peak = g.rss_peak.max(rss);
        }
        ticks as f64 / self.tps / dt.max(1e-3)
    }

    /// Totals since each group's baseline.
    pub fn figures(&self) -> Vec<ProcessFigures> {
        self.groups
            .iter()
            .map(|g| ProcessFigures {
                process: g.name.clone(),
                cpu_secs: g.ticks.saturating_sub(g.ticks0) as f64 / self.tps,
                rss_idle_kib: g.rss_idle,
                rss_peak_kib: g.rss_peak,
            })
            .collect()
    }
}

/// One registered session taking one incoming call, start to end.
pub async fn one_session(
    index: u32,
    codec: AudioCodec,
    plan: Arc<CallPlan>,
    cert: DtlsCert,
    start: Instant,
    tx: mpsc::Sender<Cmd>,
    counters: Arc<Counters>,
) -> CallOutcome {
    match session(index, codec, &plan, &cert, start, &tx, &counters).await {
        Ok(out) => out,
        Err(e) => CallOutcome {
            failure: Some(e),
            ..CallOutcome::default()
        },
    }
}

async fn session(
    index: u32,
    codec: AudioCodec,
    plan: &CallPlan,
    cert: &DtlsCert,
    start: Instant,
    tx: &mpsc::Sender<Cmd>,
    counters: &Counters,
) -> Result<CallOutcome, String> {
    let Some(inc) = &plan.incoming else {
        return Err("not an incoming plan".into());
    };
    let step = plan.step_timeout;
    let url = format!("ws://127.0.0.1:{}/ws", plan.http_port);
    let (mut ws, _) = tokio::time::timeout(step, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "WebSocket connect: timeout".to_owned())?
        .map_err(|e| format!("WebSocket connect: {e}"))?;
    let hello = json!({"type": "connect", "sipOptions": {"login": login(index),
        "domain": "127.0.0.1", "port": inc.registrar_port, "registerRequired": true}});
    send(&mut ws, &hello).await?;
    wait_for(&mut ws, step * 2, |v| {
        let (status, cause) = status_of(v, "session")?;
        match status.as_str() {
            "REGISTERED" => Some(Ok(())),
            "ESTABLISHED" => None,
            _ => Some(Err(format!("session {status}: {cause}"))),
        }
    })
    .await
    .map_err(|e| format!("register: {e}"))?;
    counters.registered.fetch_add(1, Ordering::Relaxed);
    // Ringing may come late: after every session registered and SIPp's own ramp.
    let ring_wait = Duration::from_secs(u64::from(plan.max_seconds));
    let (call_id, offer) = wait_for(&mut ws, ring_wait, |v| {
        (v.get("type")?.as_str()? == "incoming").then(|| {
            let id = v.get("callId").and_then(Value::as_str);
            let sdp = v.get("sdp").and_then(Value::as_str);
            match (id, sdp) {
                (Some(id), Some(sdp)) => Ok((id.to_owned(), sdp.to_owned())),
                _ => Err("incoming without callId or sdp".to_owned()),
            }
        })
    })
    .await
    .map_err(|e| format!("waiting for the incoming call: {e}"))?;
    let rang = monotonic_ns();
    counters.placed.fetch_add(1, Ordering::Relaxed);
    let (mut browser, answer) = Browser::answering(index, cert, start, codec, &offer)
        .map_err(|e| format!("browser: {e}"))?;
    if codec != AudioCodec::Pcmu {
        browser
            .measure_audio()
            .map_err(|e| format!("browser: {e}"))?;
    }
    tx.send(Cmd::Add(Box::new(browser), codec, rang))
        .map_err(|_| "browser thread gone".to_owned())?;
    let mut out = CallOutcome::default();
    let r = async {
        send(
            &mut ws,
            &json!({"type": "answer", "callId": call_id, "sdp": answer}),
        )
        .await?;
        wait_for(&mut ws, step, |v| {
            let (status, cause) = status_of(v, "call")?;
            match status.as_str() {
                "ESTABLISHED" => Some(Ok(())),
                "FAILED" | "FINISH" | "BUSY" => Some(Err(format!("{status}: {cause}"))),
                _ => None,
            }
        })
        .await?;
        out.setup_us = Some(monotonic_ns().saturating_sub(rang) / 1000);
        counters.established.fetch_add(1, Ordering::Relaxed);
        counters.active.fetch_add(1, Ordering::Relaxed);
        let _ = tx.send(Cmd::Start(index));
        // Send until shortly before SIPp's BYE is due, so nothing is in flight when it comes.
        let hold = Duration::from_secs(u64::from(plan.hold_secs)).saturating_sub(STOP_BEFORE_BYE);
        let early = wait_for(&mut ws, hold, |v| {
            let (status, cause) = status_of(v, "call")?;
            matches!(status.as_str(), "FAILED" | "FINISH")
                .then(|| Err(format!("{status}: {cause}")))
        })
        .await;
        let _ = tx.send(Cmd::Stop(index));
        match early {
            Err(e) if e == "timeout" => {}
            Err(e) => {
                counters.active.fetch_sub(1, Ordering::Relaxed);
                return Err(format!("ended during the hold: {e}"));
            }
            Ok(()) => {}
        }
        let end = wait_for(&mut ws, STOP_BEFORE_BYE + step, |v| {
            let (status, cause) = status_of(v, "call")?;
            match status.as_str() {
                "FINISH" => Some(Ok(())),
                "FAILED" => Some(Err(format!("FAILED: {cause}"))),
                _ => None,
            }
        })
        .await;
        counters.active.fetch_sub(1, Ordering::Relaxed);
        end.map_err(|e| format!("waiting for SIPp's BYE: {e}"))
    }
    .await;
    let _ = tx.send(Cmd::Remove(index));
    match r {
        Ok(()) => out.finished = true,
        Err(e) => out.failure = Some(e),
    }
    let _ = ws.close(None).await;
    Ok(out)
}

async fn send<S>(ws: &mut S, v: &Value) -> Result<(), String>
where
    S: futures_util::Sink<Message> + Unpin,
{
    ws.send(Message::text(v.to_string()))
        .await
        .map_err(|_| "WebSocket send failed".to_owned())
}

/// The SIP side of a run, started before the calls and dropped after them.
pub struct SipSide {
    /// Kamailio and the SIPp UAS (kept alive for the run: dropping it stops them).
    #[allow(dead_code)]
    pub target: crate::sip_target::SipTarget,
    /// What the browsers call.
    pub callee: String,
    /// Peer process groups to measure.
    pub peers: Vec<(String, u32)>,
    /// Set for `--direction incoming`.
    pub incoming: Option<IncomingPlan>,
}

/// Starts Kamailio and the SIPp UAS for `calls` calls within `max_seconds`; with `incoming`,
/// prepares the SIPp caller placing `cps` calls/s held `hold_secs` each.
pub fn prepare(
    peers_dir: std::path::PathBuf,
    calls: u32,
    cps: f64,
    hold_secs: u32,
    max_seconds: u32,
    incoming: bool,
    kamailio_children: u32,
) -> Result<SipSide, crate::sip_target::SipTargetError> {
    use crate::sip_target::{SipTarget, SipTargetOpts};
    let mut opts = SipTargetOpts::new(peers_dir.clone(), calls.max(1), max_seconds + 30);
    opts.kamailio_children = kamailio_children;
    let target = SipTarget::start(&opts)?;
    let proxy = target
        .registrar()
        .ok_or(crate::sip_target::SipTargetError::Start {
            what: "kamailio",
            detail: "not started".into(),
        })?;
    tracing::info!(
        uri = %target.uri(),
        uas_media_port = target.uas_media_port,
        work_dir = %opts.work_dir.display(),
        "SIP side up (Kamailio, SIPp UAS with RTP echo)"
    );
    let mut peers: Vec<(String, u32)> = target
        .pids()
        .into_iter()
        .map(|(n, p)| (n.to_owned(), p))
        .collect();
    if incoming {
        // The UAS takes no calls in this direction; it is not measured.
        peers.retain(|(n, _)| n != "sipp");
    }
    let incoming = incoming.then(|| IncomingPlan {
        registrar_port: proxy.port(),
        uac: UacOpts {
            peers_dir,
            proxy,
            callees: Vec::new(),
            cps,
            limit: calls.max(1),
            hold_ms: u64::from(hold_secs) * 1000,
            max_seconds: max_seconds + 30,
            work_dir: opts.work_dir.join("caller"),
        },
    });
    Ok(SipSide {
        callee: target.uri(),
        target,
        peers,
        incoming,
    })
}
