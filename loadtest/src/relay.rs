//! The `relay` scenario's driver: start the media plane, program N bidirectional sessions
//! through the control rings, push paced RTP through them, and measure.
//!
//! Threads: the control work runs on a current-thread tokio runtime (the main thread); one
//! sender thread paces every flow on the even [`Schedule`]; one blocking receiver thread per
//! side (A = offerers, B = answerers) owns that side's socket and its [`DirectionTracker`], so
//! nothing on the packet path is shared except relaxed progress counters. All endpoints of a
//! side share one socket: the media plane latches to the source it sees, and the probe in the
//! payload says which stream and direction a packet belongs to.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use wavegate_shared::client::{ClientError, ControlClient};
use wavegate_shared::clock::monotonic_ns;
use wavegate_shared::protocol::{Answer, CallStats, Delete, Offer, OfferFlags, Ping};
use wavegate_shared::region::Geometry;
use wavegate_shared::spawn::{MediaPlaneCommand, SpawnError, spawn_media_plane};
use wavegate_shared::{CallId, IdError, LegTag, ShardId};

use crate::report::{
    DirectionTracker, LatencyFigures, Machine, Report, ReportError, Resources, RunConfig, Schedule,
    flow_index,
};
use crate::sysinfo;
use crate::wire::{self, Direction, Probe, SdpError};

/// Everything the `relay` scenario needs to know.
#[derive(Debug, Clone)]
pub struct RelayPlan {
    /// Sessions.
    pub streams: u32,
    /// Packets per second per stream and direction.
    pub pps: u32,
    /// Measured seconds.
    pub seconds: u32,
    /// Seconds sent before measuring.
    pub warmup_secs: u32,
    /// Milliseconds to wait for stragglers after the last send.
    pub drain_ms: u64,
    /// Media-plane shards.
    pub shards: u16,
    /// The media-plane binary.
    pub program: PathBuf,
    /// Its arguments.
    pub mediaplane_args: Vec<String>,
    /// RTP payload bytes.
    pub payload: usize,
    /// Receive buffer asked for on each socket.
    pub rcvbuf: usize,
    /// Deadline of each control request.
    pub request_timeout: Duration,
    /// Whether to pin this process's threads to this CPU once the media plane runs.
    pub pin_cpu: Option<usize>,
    /// Report name.
    pub name: String,
}

/// Why a run could not be carried out (as opposed to a run that measured a failure).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The media plane did not start.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// A control request failed.
    #[error("control request: {0}")]
    Client(#[from] ClientError),
    /// The media plane did not answer pings in time.
    #[error("media plane shard {0} never answered a ping: {1}")]
    NotReady(ShardId, ClientError),
    /// A reply SDP was unusable.
    #[error("stream {stream}: {source}")]
    Sdp { stream: u32, source: SdpError },
    /// A generated id was refused (a bug here).
    #[error("id: {0}")]
    Id(#[from] IdError),
    /// Sockets, threads or files.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Histogram setup.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The media plane exited while we needed it.
    #[error("the media plane exited: {0}")]
    Exited(std::process::ExitStatus),
    /// A worker thread panicked.
    #[error("{0} thread panicked")]
    Thread(&'static str),
}

fn set_int_opt(sock: &UdpSocket, opt: libc::c_int, value: libc::c_int) -> std::io::Result<()> {
    // SAFETY: plain setsockopt with an int option on an fd we own.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

pub(crate) fn udp_socket(rcvbuf: usize) -> Result<UdpSocket, RunError> {
    let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    let size = libc::c_int::try_from(rcvbuf).unwrap_or(libc::c_int::MAX);
    // SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it SO_RCVBUF is capped by rmem_max.
    // (Setting SO_RCVBUF after a successful force would shrink it again.)
    if set_int_opt(&sock, libc::SO_RCVBUFFORCE, size).is_err()
        && let Err(e) = set_int_opt(&sock, libc::SO_RCVBUF, size)
    {
        tracing::warn!(error = %e, "cannot enlarge the receive buffer");
    }
    if set_int_opt(&sock, libc::SO_SNDBUFFORCE, size).is_err()
        && let Err(e) = set_int_opt(&sock, libc::SO_SNDBUF, size)
    {
        tracing::warn!(error = %e, "cannot enlarge the send buffer");
    }
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok(sock)
}

fn local_v4(sock: &UdpSocket) -> Result<SocketAddrV4, RunError> {
    match sock.local_addr()? {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(_) => Err(RunError::Io(std::io::Error::other(
            "expected an IPv4 socket",
        ))),
    }
}

fn call_id(run: u32, stream: u32) -> Result<CallId, IdError> {
    CallId::new(&format!("lt{run}-{stream}"))
}

/// Programs `streams` relay sessions, at most `parallel` requests in flight, each by
/// `program(stream)` which gives the server's (toward A, toward B) addresses; returns them in
/// stream order and the milliseconds the whole setup took. The Wavegate and rtpengine relay
/// runs share it.
pub(crate) async fn program_streams<F, Fut>(
    streams: u32,
    parallel: usize,
    mut program: F,
) -> Result<(Vec<[SocketAddr; 2]>, f64), RunError>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<(SocketAddr, SocketAddr), RunError>> + Send + 'static,
{
    let setup_start = monotonic_ns();
    let unset = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut targets = vec![[unset; 2]; streams as usize];
    let mut tasks = JoinSet::new();
    let mut next = 0u32;
    while next < streams || !tasks.is_empty() {
        while next < streams && tasks.len() < parallel {
            let (s, setup) = (next, program(next));
            tasks.spawn(async move { (s, setup.await) });
            next += 1;
        }
        if let Some(done) = tasks.join_next().await {
            let (s, result) = done.map_err(|_| RunError::Thread("session setup"))?;
            let (to_a, to_b) = result?;
            targets[s as usize] = [to_a, to_b];
        }
    }
    Ok((targets, monotonic_ns().saturating_sub(setup_start) as f64 / 1e6))
}


/// Programs one session. Returns (where A sends, where B sends).
async fn program(
    client: ControlClient,
    run: u32,
    stream: u32,
    a: SocketAddrV4,
    b: SocketAddrV4,
) -> Result<(SocketAddr, SocketAddr), RunError> {
    let call = call_id(run, stream)?;
    let shard = client.shard_for(&call);
    let from_tag = LegTag::new(&format!("a{stream}"))?;
    let offer = Offer {
        call: call.clone(),
        from_tag: from_tag.clone(),
        sdp: wire::endpoint_sdp(u64::from(stream), *a.ip(), a.port()),
        flags: OfferFlags {
            media_timeout_secs: Some(0),
            ..Default::default()
        },
    };
    // The offer's reply goes to the answerer: it says where B sends.
    let to_b = client.request(shard, &offer).await?;
    let answer = Answer {
        call,
        from_tag,
        to_tag: LegTag::new(&format!("b{stream}"))?,
        sdp: wire::endpoint_sdp(u64::from(stream), *b.ip(), b.port()),
    };
    let to_a = client.request(shard, &answer).await?;
    let addr = |sdp: &str| {
        wire::audio_address(sdp)
            .map(|(ip, port)| SocketAddr::from((ip, port)))
            .map_err(|source| RunError::Sdp { stream, source })
    };
    Ok((addr(&to_a.sdp)?, addr(&to_b.sdp)?))
}

/// Sends every flow on the schedule until `total` packets are out. Returns send errors.
fn send_loop(
    schedule: Schedule,
    total: u64,
    t0: u64,
    payload: usize,
    sockets: [UdpSocket; 2],
    targets: Vec<[SocketAddr; 2]>,
    sent: Arc<AtomicU64>,
) -> u64 {
    let mut buf = Vec::with_capacity(wire::RTP_HEADER + payload.max(wire::PROBE_LEN));
    let mut k = 0u64;
    let mut errors = 0u64;
    while k < total {
        let due = schedule
            .due_before(monotonic_ns().saturating_sub(t0))
            .min(total);
        while k < due {
            let (flow, seq) = schedule.packet(k);
            let stream = (flow / 2) as u32;
            let direction = if flow % 2 == 0 {
                Direction::AToB
            } else {
                Direction::BToA
            };
            let side = direction as usize;
            let probe = Probe {
                stream,
                direction,
                seq,
                sent_ns: monotonic_ns(),
            };
            wire::encode_packet(&probe, payload, &mut buf);
            if sockets[side]
                .send_to(&buf, targets[stream as usize][side])
                .is_err()
            {
                errors += 1;
            }
            k += 1;
        }
        sent.store(k, Ordering::Relaxed);
        if k < total {
            // ~200 us granularity: at 100k packets/s that is ~20 packets per wake-up.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    errors
}

/// Sleep between receive polls when a receiver's socket is empty.
pub const RX_POLL: Duration = Duration::from_micros(50);

/// Receives one side's packets until `stop`; returns its tracker.
fn receive_loop(
    sock: UdpSocket,
    mut tracker: DirectionTracker,
    window: (u64, u64),
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
) -> DirectionTracker {
    let mut buf = [0u8; 2048];
    // Poll instead of blocking: a receiver asleep in recv(2) makes every packet the media plane
    // sends pay for a cross-core wake-up (an IPI, costly in a VM), which would be billed to the
    // media plane's CPU although a remote peer never costs it that. Latency figures therefore
    // include up to RX_POLL of polling delay.
    let polling = sock.set_nonblocking(true).is_ok();
    while !stop.load(Ordering::Relaxed) {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                let now = monotonic_ns();
                tracker.observe(wire::decode_packet(&buf[..n]).as_ref(), now, window);
                received.fetch_add(1, Ordering::Relaxed);
            }
            // WouldBlock: nothing queued. Other errors are ICMP errors from loopback, which
            // are not this counter's business: losses show in the accounting.
            Err(_) if polling => std::thread::sleep(RX_POLL),
            Err(_) => {}
        }
    }
    tracker
}

/// An error when the media plane has exited (its /proc entry is then a zombie's).
pub(crate) fn gone(child: &mut tokio::process::Child) -> Result<(), RunError> {
    match child.try_wait()? {
        Some(status) => Err(RunError::Exited(status)),
        None => Ok(()),
    }
}

pub(crate) fn mp_rss(child: &mut tokio::process::Child, pid: u32) -> Result<u64, RunError> {
    gone(child)?;
    Ok(sysinfo::rss_kib(pid)?)
}

/// Longest the whole delete phase may take.
const DELETE_DEADLINE: Duration = Duration::from_secs(20);

fn join<T>(h: std::thread::JoinHandle<T>, what: &'static str) -> Result<T, RunError> {
    h.join().map_err(|_| RunError::Thread(what))
}

pub(crate) async fn sleep_until_ns(t: u64) {
    let now = monotonic_ns();
    if t > now {
        tokio::time::sleep(Duration::from_nanos(t - now)).await;
    }
}

/// Runs the scenario and returns its report (thresholds not yet judged).
pub async fn run(plan: &RelayPlan) -> Result<Report, RunError> {
    let started_unix = sysinfo::unix_now();
    let loadavg_before = sysinfo::loadavg();
    let mut mp = spawn_media_plane(&MediaPlaneCommand {
        program: plan.program.clone(),
        args: plan.mediaplane_args.iter().map(Into::into).collect(),
        geometry: Geometry::with_shards(plan.shards),
        request_timeout: plan.request_timeout,
    })?;
    let pid = mp.pid;
    // The child inherited our full CPU mask and pins itself; from here on we keep off its core.
    if let Some(cpu) = plan.pin_cpu
        && let Err(e) = sysinfo::pin_current_thread(cpu)
    {
        tracing::warn!(error = %e, cpu, "cannot pin the load generator");
    }
    for s in 0..plan.shards {
        let shard = ShardId(s);
        let mut last = None;
        for _ in 0..10 {
            match mp.client.request(shard, &Ping).await {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
            gone(&mut mp.child)?;
        }
        if let Some(e) = last {
            return Err(RunError::NotReady(shard, e));
        }
    }
    let rss_idle = mp_rss(&mut mp.child, pid)?;

    let ends = Endpoints::new(plan.rcvbuf)?;
    let (addr_a, addr_b) = (ends.addr_a, ends.addr_b);
    let run_id = std::process::id();

    let client = mp.client.clone();
    let (targets, setup_ms) = program_streams(plan.streams, 64, |s| {
        program(client.clone(), run_id, s, addr_a, addr_b)
    })
    .await?;
    tracing::info!(streams = plan.streams, setup_ms, "sessions programmed");

    let traffic = drive(plan, &mut mp.child, pid, ends, targets).await?;

    // Tear down: delete every session, collecting the media plane's own counters.
    let (totals, delete_failures) = delete_all(&mp.client, plan.streams, |i| call_id(run_id, i).ok()).await;
    stop_media_plane(&mut mp).await;

    traffic.into_report(
        plan,
        ServerSide {
            started_unix,
            loadavg_before,
            setup_ms,
            rss_idle,
            delete_failures,
            rtp_in: totals.offerer.rtp_packets_in,
            rtp_out: totals.offerer.rtp_packets_out,
            dropped: totals.offerer.dropped,
        },
    )
}

/// Deletes calls `0..calls` (ids from `id`; one it cannot make counts as failed), 64 at a time
/// and within [`DELETE_DEADLINE`] overall, so a wedged media plane cannot hold us forever.
/// Returns the media plane's own counters of both legs summed (in `offerer`) and the failures.
pub(crate) async fn delete_all(
    client: &ControlClient,
    calls: u32,
    id: impl Fn(u32) -> Option<CallId>,
) -> (CallStats, u64) {
    let mut totals = CallStats::default();
    let mut failures = 0u64;
    let deletes = async {
        let mut tasks = JoinSet::new();
        let mut next = 0u32;
        while next < calls || !tasks.is_empty() {
            while next < calls && tasks.len() < 64 {
                let Some(call) = id(next) else {
                    failures += 1;
                    next += 1;
                    continue;
                };
                let client = client.clone();
                tasks.spawn(async move { client.request(client.shard_for(&call), &Delete { call }).await });
                next += 1;
            }
            match tasks.join_next().await {
                Some(Ok(Ok(st))) => {
                    for leg in [&st.offerer, &st.answerer] {
                        totals.offerer.rtp_packets_in += leg.rtp_packets_in;
                        totals.offerer.rtp_packets_out += leg.rtp_packets_out;
                        totals.offerer.dropped += leg.dropped;
                    }
                }
                Some(Ok(Err(e))) => {
                    failures += 1;
                    tracing::warn!(error = %e, "delete failed");
                }
                Some(Err(_)) => failures += 1,
                None => {}
            }
        }
    };
    if tokio::time::timeout(DELETE_DEADLINE, deletes).await.is_err() {
        tracing::warn!("gave up deleting calls after {DELETE_DEADLINE:?}");
        failures = failures.max(1);
    }
    (totals, failures)
}

/// Closes the control client and stops the media plane: SIGTERM, then SIGKILL after 5 s.
pub(crate) async fn stop_media_plane(mp: &mut wavegate_shared::spawn::MediaPlane) {
    let pid = mp.pid;
    mp.client.close();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    match tokio::time::timeout(Duration::from_secs(5), mp.child.wait()).await {
        Ok(Ok(status)) => tracing::info!(%status, "media plane stopped"),
        _ => {
            tracing::warn!("media plane ignored SIGTERM for 5 s; killing it");
            let _ = mp.child.kill().await;
        }
    }
}

/// The load generator's two endpoints: A (every offerer) and B (every answerer), one socket
/// each.
pub(crate) struct Endpoints {
    sock_a: UdpSocket,
    sock_b: UdpSocket,
    /// Where A receives (the address every offer SDP names).
    pub addr_a: SocketAddrV4,
    /// Where B receives (the address every answer SDP names).
    pub addr_b: SocketAddrV4,
}

impl Endpoints {
    /// Binds both sockets on loopback with `rcvbuf`-byte buffers.
    pub fn new(rcvbuf: usize) -> Result<Endpoints, RunError> {
        let sock_a = udp_socket(rcvbuf)?;
        let sock_b = udp_socket(rcvbuf)?;
        let (addr_a, addr_b) = (local_v4(&sock_a)?, local_v4(&sock_b)?);
        Ok(Endpoints {
            sock_a,
            sock_b,
            addr_a,
            addr_b,
        })
    }
}

/// What the traffic phase measured, before the server's own teardown.
pub(crate) struct Traffic {
    schedule: Schedule,
    total: u64,
    b_to_a: DirectionTracker,
    a_to_b: DirectionTracker,
    cpu: ((u64, u64), (u64, u64)),
    rss_end: u64,
    loadavg_after: String,
    send_errors: u64,
}

/// Facts about the server under test that its driver collects around the traffic phase.
pub(crate) struct ServerSide {
    pub started_unix: u64,
    pub loadavg_before: String,
    pub setup_ms: f64,
    pub rss_idle: u64,
    pub delete_failures: u64,
    /// The server's own counters (0 when it does not report them).
    pub rtp_in: u64,
    pub rtp_out: u64,
    pub dropped: u64,
}

/// Pushes the paced streams through a programmed relay (`targets[stream]` = where A and B
/// send) and measures: the server's CPU (`pid`, every thread) over the window, its RSS at the
/// end, and every packet at the receivers. Works for any relay that forwards A <-> B.
pub(crate) async fn drive(
    plan: &RelayPlan,
    child: &mut tokio::process::Child,
    pid: u32,
    ends: Endpoints,
    targets: Vec<[SocketAddr; 2]>,
) -> Result<Traffic, RunError> {
    let Endpoints { sock_a, sock_b, .. } = ends;
    let flows = u64::from(plan.streams) * 2;
    let schedule = Schedule {
        flows,
        pps: u64::from(plan.pps),
    };
    let send_ns = u64::from(plan.warmup_secs + plan.seconds) * 1_000_000_000;
    let total = schedule.due_before(send_ns);
    let max_seq = u32::try_from(total / flows.max(1) + 1).unwrap_or(u32::MAX);
    // Start a little ahead so every thread is up before the first packet is due.
    let t0 = monotonic_ns() + 50_000_000;
    let window = (
        t0 + u64::from(plan.warmup_secs) * 1_000_000_000,
        t0 + send_ns,
    );

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let mut receivers = Vec::new();
    // Socket A receives what B sent and vice versa.
    for (sock, dir) in [(&sock_a, Direction::BToA), (&sock_b, Direction::AToB)] {
        let tracker = DirectionTracker::new(dir, plan.streams, max_seq)?;
        let (sock, stop, received) = (sock.try_clone()?, stop.clone(), received.clone());
        receivers.push(
            std::thread::Builder::new()
                .name(format!("rx-{dir:?}"))
                .spawn(move || receive_loop(sock, tracker, window, stop, received))?,
        );
    }
    let sender = {
        let sockets = [sock_a.try_clone()?, sock_b.try_clone()?];
        let (sent, payload) = (sent.clone(), plan.payload);
        std::thread::Builder::new()
            .name("tx".into())
            .spawn(move || send_loop(schedule, total, t0, payload, sockets, targets, sent))?
    };

    // Progress once a second; CPU and RSS at the window's edges.
    let mut cpu_start = None;
    let mut cpu_end = None;
    let mut tick = t0 + 1_000_000_000;
    let mut edges = [window.0, window.1].into_iter().peekable();
    while !sender.is_finished() || edges.peek().is_some() {
        let next_edge = edges.peek().copied().unwrap_or(u64::MAX);
        sleep_until_ns(tick.min(next_edge)).await;
        let now = monotonic_ns();
        if now >= next_edge {
            edges.next();
            gone(child)?;
            let sample = (monotonic_ns(), sysinfo::cpu_ticks(pid)?);
            if cpu_start.is_none() {
                cpu_start = Some(sample)
            } else {
                cpu_end = Some(sample)
            }
            continue;
        }
        if now >= tick {
            tick += 1_000_000_000;
            let (s, r) = (
                sent.load(Ordering::Relaxed),
                received.load(Ordering::Relaxed),
            );
            eprintln!(
                "[{:>5.1}s] sent {s:>10} received {r:>10} not yet received {:>8} ({:.4}%)",
                now.saturating_sub(t0) as f64 / 1e9,
                s.saturating_sub(r),
                if s == 0 {
                    0.0
                } else {
                    s.saturating_sub(r) as f64 * 100.0 / s as f64
                }
            );
        }
    }
    let rss_end = mp_rss(child, pid)?;
    let loadavg_after = sysinfo::loadavg();
    let send_errors = join(sender, "sender")?;
    tokio::time::sleep(Duration::from_millis(plan.drain_ms)).await;
    stop.store(true, Ordering::Relaxed);
    let mut trackers = Vec::new();
    for r in receivers {
        trackers.push(join(r, "receiver")?);
    }
    let (Some(a_to_b), Some(b_to_a)) = (trackers.pop(), trackers.pop()) else {
        unreachable!("two receiver threads were started above")
    };
    Ok(Traffic {
        schedule,
        total,
        b_to_a,
        a_to_b,
        cpu: (
            cpu_start.unwrap_or((window.0, 0)),
            cpu_end.unwrap_or((window.1, 0)),
        ),
        rss_end,
        loadavg_after,
        send_errors,
    })
}

impl Traffic {
    /// The report of this run (thresholds not yet judged).
    pub(crate) fn into_report(
        self,
        plan: &RelayPlan,
        side: ServerSide,
    ) -> Result<Report, RunError> {
        let Traffic {
            schedule,
            total,
            b_to_a,
            a_to_b,
            cpu: (cpu0, cpu1),
            rss_end,
            loadavg_after,
            send_errors,
        } = self;
        let mut latency = a_to_b.latency.clone();
        latency.add(&b_to_a.latency).map_err(ReportError::from)?;
        let sent_of = |dir: Direction| {
            move |stream: u32| schedule.sent_of_flow(total, flow_index(stream, dir))
        };
        let relayed_in_window = a_to_b.in_window + b_to_a.in_window;
        Ok(Report {
            name: plan.name.clone(),
            started_unix: side.started_unix,
            machine: Machine {
                loadavg_before: side.loadavg_before,
                loadavg_after,
                ..sysinfo::machine()
            },
            config: RunConfig {
                streams: plan.streams,
                pps: plan.pps,
                seconds: plan.seconds,
                warmup_secs: plan.warmup_secs,
                shards: plan.shards,
                payload: plan.payload.max(wire::PROBE_LEN),
                mediaplane_args: plan.mediaplane_args.clone(),
            },
            setup_ms: side.setup_ms,
            resources: Resources::compute(
                cpu1.0.saturating_sub(cpu0.0),
                cpu1.1.saturating_sub(cpu0.1),
                sysinfo::ticks_per_sec(),
                relayed_in_window,
                (side.rss_idle, rss_end),
                plan.streams,
            ),
            latency: LatencyFigures::from_ns(&latency),
            a_to_b: a_to_b.figures(sent_of(Direction::AToB)),
            b_to_a: b_to_a.figures(sent_of(Direction::BToA)),
            loss_ratio: 0.0,
            send_errors,
            delete_failures: side.delete_failures,
            mediaplane_rtp_in: side.rtp_in,
            mediaplane_rtp_out: side.rtp_out,
            mediaplane_dropped: side.dropped,
            failures: Vec::new(),
        })
    }
}
