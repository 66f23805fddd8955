//! Starts the media plane, watches it, and starts a new one when it dies or hangs.
//!
//! One generation = one child process + one control region. The watch loop ends a generation
//! when the child exits (noticed at once through `waitpid`), when a shard's heartbeat is older
//! than `heartbeat_timeout_ms`, or when the control channel breaks (a corrupt frame). It then
//! closes the old channel (pending requests fail), reports the loss to the call registry with
//! a cause, and spawns the next generation straight away; repeated failures back off up to
//! five seconds so a broken binary does not spin.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use wavegate_shared::ShardId;
use wavegate_shared::client::ControlClient;
use wavegate_shared::protocol::{MediaEvent, Ping};
use wavegate_shared::region::{Geometry, ShardState};
use wavegate_shared::spawn::{MediaPlane, MediaPlaneCommand, spawn_media_plane};

use crate::config::{LogFormat, MediaConfig};
use crate::media::CallRegistry;

/// Where the media plane is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaneState {
    /// A generation is starting and has not answered yet.
    Starting,
    /// Every shard answered and beats.
    Running,
    /// The last generation died; the next one is being started.
    Restarting,
    /// Shut down on request.
    Stopped,
}

/// What `/health` shows about the media plane.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlaneStatus {
    /// Lifecycle state.
    pub state: PlaneState,
    /// Process id of the current generation.
    pub pid: Option<u32>,
    /// Generation number, 1 for the first process.
    pub generation: u64,
    /// How many times a generation was lost.
    pub restarts: u64,
    /// Why the last generation ended.
    pub last_exit: Option<String>,
    /// Milliseconds since the current generation started running.
    pub uptime_ms: Option<u64>,
    /// Per-shard liveness.
    pub shards: Vec<ShardStatus>,
}

/// Liveness of one shard.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShardStatus {
    /// Shard index.
    pub shard: u16,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: Option<u64>,
    /// Calls it holds.
    pub calls: u32,
    /// Whether it reported itself running.
    pub running: bool,
}

struct Current {
    client: ControlClient,
    pid: u32,
    generation: u64,
    running_since: Option<Instant>,
}

struct Shared {
    current: RwLock<Option<Current>>,
    state: watch::Sender<PlaneState>,
    restarts: RwLock<(u64, Option<String>)>,
    shutdown: Notify,
}

/// Handle to the supervised media plane; cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<Shared>,
    config: Arc<MediaConfig>,
}

impl Supervisor {
    /// Starts supervising: the first generation is spawned by the returned task.
    pub fn start(
        config: MediaConfig,
        log_format: LogFormat,
        calls: CallRegistry,
    ) -> (Supervisor, tokio::task::JoinHandle<()>) {
        let (state, _) = watch::channel(PlaneState::Starting);
        let sup = Supervisor {
            shared: Arc::new(Shared {
                current: RwLock::new(None),
                state,
                restarts: RwLock::new((0, None)),
                shutdown: Notify::new(),
            }),
            config: Arc::new(config),
        };
        let task = tokio::spawn(sup.clone().run(log_format, calls));
        (sup, task)
    }

    /// The media plane's settings.
    pub fn media_config(&self) -> &MediaConfig {
        &self.config
    }

    /// The control channel of the running generation, if any.
    pub fn client(&self) -> Option<(ControlClient, u64)> {
        let current = read(&self.shared.current);
        current
            .as_ref()
            .filter(|c| c.running_since.is_some())
            .map(|c| (c.client.clone(), c.generation))
    }

    /// Follows state changes.
    pub fn watch_state(&self) -> watch::Receiver<PlaneState> {
        self.shared.state.subscribe()
    }

    /// Asks the loop to stop and kill the media plane.
    pub fn shutdown(&self) {
        self.shared.state.send_replace(PlaneState::Stopped);
        self.shared.shutdown.notify_waiters();
    }

    /// A snapshot for `/health`.
    pub fn status(&self) -> PlaneStatus {
        let state = *self.shared.state.borrow();
        let (restarts, last_exit) = read(&self.shared.restarts).clone();
        let current = read(&self.shared.current);
        let mut status = PlaneStatus {
            state,
            pid: None,
            generation: 0,
            restarts,
            last_exit,
            uptime_ms: None,
            shards: Vec::new(),
        };
        if let Some(c) = current.as_ref() {
            status.pid = Some(c.pid);
            status.generation = c.generation;
            status.uptime_ms = c.running_since.map(|t| t.elapsed().as_millis() as u64);
            for s in 0..c.client.shard_count() {
                let id = ShardId(s);
                let slot = c.client.region().shard(id);
                status.shards.push(ShardStatus {
                    shard: s,
                    heartbeat_age_ms: c.client.heartbeat_age(id).map(|d| d.as_millis() as u64),
                    calls: slot.map(|s| s.calls()).unwrap_or(0),
                    running: slot
                        .map(|s| s.state() == ShardState::Running)
                        .unwrap_or(false),
                });
            }
        }
        status
    }

    fn command(&self, log_format: LogFormat) -> MediaPlaneCommand {
        let c = &self.config;
        let mut args: Vec<String> = vec![
            "--rtp-ports".into(),
            c.rtp_ports.to_string(),
            "--bind-ip".into(),
            c.bind_ip.to_string(),
            "--media-timeout-secs".into(),
            c.media_timeout_secs.to_string(),
            "--video-keyframe-interval-ms".into(),
            c.video_keyframe_interval_ms.to_string(),
            "--transcoding".into(),
            c.transcoding.to_string(),
            "--connect-latched".into(),
            c.connect_latched.to_string(),
            "--opus-complexity".into(),
            c.opus_complexity.to_string(),
            "--opus-fec".into(),
            c.opus_fec.to_string(),
            "--opus-dtx".into(),
            c.opus_dtx.to_string(),
            "--opus-bitrate".into(),
            c.opus_bitrate.to_string(),
            "--opus-expected-loss-pct".into(),
            c.opus_expected_loss_pct.to_string(),
            "--jitter-min-ms".into(),
            c.jitter_min_ms.to_string(),
            "--jitter-max-ms".into(),
            c.jitter_max_ms.to_string(),
            "--log-format".into(),
            match log_format {
                LogFormat::Text => "text".into(),
                LogFormat::Json => "json".into(),
            },
        ];
        if c.webrtc_port_base != 0 {
            args.extend(["--webrtc-port-base".into(), c.webrtc_port_base.to_string()]);
        }
        if let Some(ip) = c.announce_ip {
            args.extend(["--announce-ip".into(), ip.to_string()]);
        }
        if !c.pin {
            args.push("--no-pin".into());
        } else if !c.cpus.is_empty() {
            let cpus = c
                .cpus
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",");
            args.extend(["--cpus".into(), cpus]);
        }
        MediaPlaneCommand {
            program: c.binary_path(),
            args: args.into_iter().map(Into::into).collect(),
            geometry: Geometry::with_shards(c.effective_shards()),
            request_timeout: Duration::from_millis(c.request_timeout_ms),
        }
    }

    async fn run(self, log_format: LogFormat, calls: CallRegistry) {
        let command = self.command(log_format);
        let mut generation = 0u64;
        let mut backoff = Duration::ZERO;
        loop {
            if *self.shared.state.borrow() == PlaneState::Stopped {
                return;
            }
            if !backoff.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = self.shared.shutdown.notified() => return,
                }
            }
            generation += 1;
            let started = Instant::now();
            let plane = match spawn_media_plane(&command) {
                Ok(plane) => plane,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the media plane");
                    self.lost(generation, format!("start failed: {e}"), &calls);
                    backoff = next_backoff(backoff);
                    continue;
                }
            };
            let cause = self.watch_generation(plane, generation, &calls).await;
            let Some(cause) = cause else { return };
            self.lost(generation, cause, &calls);
            // A generation that ran for a while earns an immediate restart.
            backoff = if started.elapsed() > Duration::from_secs(10) {
                Duration::ZERO
            } else {
                next_backoff(backoff)
            };
        }
    }

    /// Runs one generation until it is lost (returns the cause) or shut down (returns None).
    async fn watch_generation(
        &self,
        plane: MediaPlane,
        generation: u64,
        calls: &CallRegistry,
    ) -> Option<String> {
        let MediaPlane {
            mut child,
            pid,
            client,
            mut events,
        } = plane;
        tracing::info!(
            pid,
            generation,
            shards = client.shard_count(),
            "media plane started"
        );
        *write(&self.shared.current) = Some(Current {
            client: client.clone(),
            pid,
            generation,
            running_since: None,
        });
        self.shared.state.send_replace(PlaneState::Starting);

        let startup = Duration::from_millis(self.config.startup_timeout_ms);
        let hb_limit = Duration::from_millis(self.config.heartbeat_timeout_ms);
        let ready = wait_ready(&client, startup);
        tokio::pin!(ready);
        let mut is_running = false;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let cause = loop {
            tokio::select! {
                status = child.wait() => {
                    break match status {
                        Ok(s) => format!("media plane exited ({s})"),
                        Err(e) => format!("media plane wait failed: {e}"),
                    };
                }
                result = &mut ready, if !is_running => match result {
                    Ok(()) => {
                        is_running = true;
                        if let Some(c) = write(&self.shared.current).as_mut() {
                            c.running_since = Some(Instant::now());
                        }
                        self.shared.state.send_replace(PlaneState::Running);
                        tracing::info!(pid, generation, "media plane ready");
                    }
                    Err(e) => break format!("media plane did not become ready: {e}"),
                },
                _ = tick.tick() => {
                    if client.is_closed() {
                        break "control channel broken".to_string();
                    }
                    if is_running {
                        let stale = (0..client.shard_count()).map(ShardId).find(|s| {
                            client.heartbeat_age(*s).is_none_or(|age| age > hb_limit)
                        });
                        if let Some(shard) = stale {
                            break format!("{shard} heartbeat older than {} ms", hb_limit.as_millis());
                        }
                    }
                }
                Some((shard, event)) = events.recv() => {
                    self.on_event(shard, event, generation, calls, &client);
                }
                _ = self.shared.shutdown.notified() => {
                    client.close();
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    *write(&self.shared.current) = None;
                    tracing::info!(pid, "media plane stopped");
                    return None;
                }
            }
        };
        client.close();
        let _ = child.start_kill();
        let _ = child.wait().await;
        Some(cause)
    }

    fn on_event(
        &self,
        shard: ShardId,
        event: MediaEvent,
        generation: u64,
        calls: &CallRegistry,
        client: &ControlClient,
    ) {
        match event {
            MediaEvent::MediaTimeout { call, idle_secs } => {
                tracing::info!(%shard, %call, idle_secs, "media timeout");
                if calls
                    .end(&call, crate::media::EndCause::MediaTimeout { idle_secs })
                    .is_some()
                {
                    let client = client.clone();
                    tokio::spawn(async move {
                        let _ = client
                            .request(shard, &wavegate_shared::protocol::Delete { call })
                            .await;
                    });
                }
            }
            MediaEvent::LegFailed { call, tag, cause } => {
                tracing::warn!(%shard, %call, ?tag, %cause, generation, "media leg failed");
                calls.end(&call, crate::media::EndCause::LegFailed(cause));
            }
            MediaEvent::DtmfReceived { call, tag, digit, duration_ms } => {
                tracing::info!(%shard, %call, ?tag, %digit, duration_ms, "DTMF received");
            }
            MediaEvent::BrowserReoffer { call, tag, sdp } => {
                let forwarded = calls.reoffer(call.clone(), sdp);
                tracing::debug!(%shard, %call, ?tag, forwarded, "re-offer for the browser");
            }
        }
    }

    fn lost(&self, generation: u64, cause: String, calls: &CallRegistry) {
        tracing::error!(generation, %cause, "media plane lost; restarting");
        let ended = calls.end_generation(generation, &cause);
        if ended > 0 {
            tracing::warn!(ended, "calls ended by the media plane loss");
        }
        {
            let mut r = write(&self.shared.restarts);
            r.0 += 1;
            r.1 = Some(cause);
        }
        *write(&self.shared.current) = None;
        if *self.shared.state.borrow() != PlaneState::Stopped {
            self.shared.state.send_replace(PlaneState::Restarting);
        }
    }
}

async fn wait_ready(client: &ControlClient, within: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + within;
    for s in 0..client.shard_count() {
        let shard = ShardId(s);
        loop {
            match tokio::time::timeout_at(deadline, client.request(shard, &Ping)).await {
                Ok(Ok(_)) => break,
                Ok(Err(e)) if tokio::time::Instant::now() < deadline && !client.is_closed() => {
                    tracing::debug!(%shard, error = %e, "waiting for shard");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(Err(e)) => return Err(format!("{shard}: {e}")),
                Err(_) => return Err(format!("{shard}: no answer within {within:?}")),
            }
        }
    }
    Ok(())
}

fn next_backoff(prev: Duration) -> Duration {
    (prev * 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
