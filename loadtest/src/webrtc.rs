//! The `webrtc` scenario's driver: start the media plane with WebRTC enabled, set up N
//! browser <-> SIP calls through `WebRtcOffer` / `Answer`, push paced audio both ways and
//! measure the media plane's CPU per relayed packet, its memory per call, loss and round trip.
//!
//! The browsers are str0m `Rtc`s (full ICE, DTLS client, PCMU), each on its own loopback UDP
//! socket, driven by a few threads ([`browser_loop`]: one epoll set per thread, polled without
//! blocking so the media plane is not billed for waking a sleeping receiver). The SIP side is
//! one plain UDP socket that echoes every RTP packet to where it came from ([`echo_loop`]): the
//! media plane latches each call's SIP peer to it, so one socket serves every call. A browser
//! packet thus crosses the media plane twice (SRTP -> RTP, then RTP -> SRTP) and comes back to
//! its sender, which gives the round trip; both crossings count as relayed packets.
//!
//! Bounded in time: set-up requests have deadlines, connecting has `connect_timeout`, sending
//! stops at the end of the window, the drain is `drain_ms`, deletes have a deadline.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use wavegate_shared::client::ControlClient;
use wavegate_shared::clock::monotonic_ns;
use wavegate_shared::protocol::{Answer, OfferFlags, Ping, WebRtcOffer};
use wavegate_shared::region::Geometry;
use wavegate_shared::spawn::{MediaPlaneCommand, spawn_media_plane};
use wavegate_shared::{CallId, LegTag, ShardId};

use crate::browser::{AudioCodec, Browser, BrowserEvent, Epoll, raise_nofile};
use crate::relay::{RunError, ServerSide, delete_all, gone, sleep_until_ns, stop_media_plane};
use crate::report::{LatencyFigures, Machine, Resources};
use crate::sysinfo;
use crate::webrtc_report::{Leg, WebRtcConfig, WebRtcReport};
use crate::wire::{self, Direction, Probe};

/// Everything the `webrtc` scenario needs to know.
#[derive(Debug, Clone)]
pub struct WebRtcPlan {
    /// Calls (browser + SIP peer each).
    pub calls: u32,
    /// Packets per second per call, browser -> SIP (echoed back: the same rate the other way).
    pub pps: u32,
    /// Measured seconds.
    pub seconds: u32,
    /// Seconds of traffic before measuring.
    pub warmup_secs: u32,
    /// Milliseconds to wait for stragglers after the last send.
    pub drain_ms: u64,
    /// The media-plane binary.
    pub program: PathBuf,
    /// Its arguments (`--webrtc-port-base` included).
    pub mediaplane_args: Vec<String>,
    /// RTP payload bytes.
    pub payload: usize,
    /// Threads driving the browsers.
    pub threads: usize,
    /// Deadline of each control request.
    pub request_timeout: Duration,
    /// How long every call may take to connect (ICE + DTLS) once all are set up.
    pub connect_timeout: Duration,
    /// CPU for this process's threads once the media plane runs.
    pub pin_cpu: Option<usize>,
    /// Report name.
    pub name: String,
}

/// Socket buffer of the SIP echo (which carries every call).
const ECHO_SOCKET_BUF: usize = 16 << 20;

/// What one browser thread measured.
struct BrowserCounts {
    sent: u64,
    received: u64,
    received_in_window: u64,
    round_trip: Histogram<u64>,
    not_probes: u64,
    errors: u64,
}

/// Shared between the main thread and the packet threads.
struct Shared {
    stop: AtomicBool,
    /// 0 until every call is connected (or the wait gave up); then when sending starts.
    send_start_ns: AtomicU64,
    send_end_ns: AtomicU64,
    window: (AtomicU64, AtomicU64),
    connected: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    echoed: AtomicU64,
}

impl Shared {
    fn in_window(&self, ns: u64) -> bool {
        let (a, b) = (
            self.window.0.load(Ordering::Relaxed),
            self.window.1.load(Ordering::Relaxed),
        );
        a != 0 && (a..b).contains(&ns)
    }
}

fn io_err(e: impl std::fmt::Display) -> RunError {
    RunError::Io(std::io::Error::other(e.to_string()))
}

fn call_id(run: u32, call: u32) -> Result<CallId, RunError> {
    Ok(CallId::new(&format!("wrtc{run}-{call}"))?)
}

/// `WebRtcOffer` then `Answer` (the SIP peer is the echo socket); returns the browser's answer.
async fn program(
    client: ControlClient,
    run: u32,
    index: u32,
    offer: String,
    echo: SocketAddrV4,
) -> Result<String, RunError> {
    let call = call_id(run, index)?;
    let shard = client.shard_for(&call);
    let from_tag = LegTag::new(&format!("browser{index}"))?;
    let request = WebRtcOffer {
        call: call.clone(),
        from_tag: from_tag.clone(),
        sdp: offer,
        flags: OfferFlags {
            media_timeout_secs: Some(0),
            ..Default::default()
        },
    };
    let reply = client.request(shard, &request).await?;
    let answer = Answer {
        call,
        from_tag,
        to_tag: LegTag::new(&format!("sip{index}"))?,
        sdp: wire::endpoint_sdp(u64::from(index), *echo.ip(), echo.port()),
    };
    client.request(shard, &answer).await?;
    Ok(reply.browser_answer)
}

/// Sleep when a browser thread found nothing to do.
const IDLE: Duration = Duration::from_micros(100);

/// Drives a set of browsers until `shared.stop`.
fn browser_loop(
    mut browsers: Vec<Browser>,
    shared: Arc<Shared>,
    pps: u32,
    payload: usize,
) -> Result<BrowserCounts, RunError> {
    let mut counts = BrowserCounts {
        sent: 0,
        received: 0,
        received_in_window: 0,
        round_trip: Histogram::new_with_bounds(1, 60_000_000_000, 3).map_err(io_err)?,
        not_probes: 0,
        errors: 0,
    };
    let ep = Epoll::new()?;
    for (k, b) in browsers.iter().enumerate() {
        ep.add(b.fd(), k as u64)?;
    }
    let period = 1_000_000_000 / u64::from(pps.max(1));
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
    let mut buf = vec![0u8; 2048];
    let mut scratch = Vec::with_capacity(2048);
    let mut packet = Vec::with_capacity(2048);
    let count = browsers.len().max(1) as u64;
    let mut on = |_: &Browser, ev: BrowserEvent| match ev {
        BrowserEvent::Connected => {
            shared.connected.fetch_add(1, Ordering::Relaxed);
        }
        BrowserEvent::Probe { rx, now_ns } => {
            counts.received += 1;
            shared.received.fetch_add(1, Ordering::Relaxed);
            if shared.in_window(now_ns) {
                counts.received_in_window += 1;
                let rtt = now_ns.saturating_sub(rx.probe.sent_ns).max(1);
                let _ = counts.round_trip.record(rtt.min(60_000_000_000));
            }
        }
        BrowserEvent::NotProbe => counts.not_probes += 1,
        BrowserEvent::Error => counts.errors += 1,
    };
    let mut sent = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let mut busy = false;
        let n = ep.poll(&mut events);
        for ev in events.iter().take(n) {
            if let Some(b) = browsers.get_mut(ev.u64 as usize) {
                busy |= b.receive(&mut buf, &mut scratch, &mut on);
            }
        }
        let now = Instant::now();
        let now_ns = monotonic_ns();
        let start = shared.send_start_ns.load(Ordering::Relaxed);
        let end = shared.send_end_ns.load(Ordering::Relaxed);
        for b in &mut browsers {
            if start != 0 && b.connected && now_ns < end {
                if b.next_send_ns == 0 {
                    // Spread the calls evenly over one packet interval.
                    b.next_send_ns = start + period * u64::from(b.index) / count % period;
                }
                if now_ns >= b.next_send_ns {
                    b.next_send_ns += period;
                    let probe = Probe {
                        stream: b.index,
                        direction: Direction::AToB,
                        seq: b.seq,
                        sent_ns: now_ns,
                    };
                    b.seq += 1;
                    if b.send_probe(&probe, payload, &mut packet, &mut scratch, &mut on) {
                        sent += 1;
                        shared.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    busy = true;
                }
            }
            busy |= b.tick(now, &mut scratch, &mut on);
        }
        if !busy {
            std::thread::sleep(IDLE);
        }
    }
    drop(on);
    counts.sent = sent;
    Ok(counts)
}

/// What the SIP-side echo measured.
struct EchoCounts {
    received: u64,
    received_in_window: u64,
    not_probes: u64,
    errors: u64,
}

/// The SSRC the SIP echo sends with when it echoes a packet sent with `ssrc`.
pub(crate) fn echo_ssrc(ssrc: u32) -> u32 {
    ssrc ^ 0x5a5a_5a5a
}

/// Echoes every datagram back to its source until `shared.stop` (polling, see `relay`).
fn echo_loop(sock: UdpSocket, shared: Arc<Shared>) -> EchoCounts {
    let mut counts = EchoCounts {
        received: 0,
        received_in_window: 0,
        not_probes: 0,
        errors: 0,
    };
    let mut buf = [0u8; 2048];
    while !shared.stop.load(Ordering::Relaxed) {
        match sock.recv_from(&mut buf) {
            Ok((n, src)) => {
                if wire::decode_packet(&buf[..n]).is_none() {
                    counts.not_probes += 1;
                    continue;
                }
                counts.received += 1;
                if shared.in_window(monotonic_ns()) {
                    counts.received_in_window += 1;
                }
                // Answer with an SSRC of our own, as a real SIP peer does: a relay that passes
                // SSRCs through (rtpengine) would otherwise hand the browser its own SSRC back.
                let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                buf[8..12].copy_from_slice(&echo_ssrc(ssrc).to_be_bytes());
                if sock.send_to(&buf[..n], src).is_ok() {
                    shared.echoed.fetch_add(1, Ordering::Relaxed);
                } else {
                    counts.errors += 1;
                }
            }
            Err(_) => std::thread::sleep(crate::relay::RX_POLL),
        }
    }
    counts
}

fn progress(t0: u64, shared: &Shared) {
    let (s, r, e) = (
        shared.sent.load(Ordering::Relaxed),
        shared.received.load(Ordering::Relaxed),
        shared.echoed.load(Ordering::Relaxed),
    );
    eprintln!(
        "[{:>5.1}s] browsers sent {s:>9}, SIP echoed {e:>9}, browsers received {r:>9}",
        monotonic_ns().saturating_sub(t0) as f64 / 1e9
    );
}

/// Runs the scenario and returns its report (thresholds not yet judged).
pub async fn run(plan: &WebRtcPlan) -> Result<WebRtcReport, RunError> {
    let started_unix = sysinfo::unix_now();
    raise_nofile();
    let loadavg_before = sysinfo::loadavg();
    let mut mp = spawn_media_plane(&MediaPlaneCommand {
        program: plan.program.clone(),
        args: plan.mediaplane_args.iter().map(Into::into).collect(),
        geometry: Geometry::with_shards(1),
        request_timeout: plan.request_timeout,
    })?;
    let pid = mp.pid;
    if let Some(cpu) = plan.pin_cpu
        && let Err(e) = sysinfo::pin_current_thread(cpu)
    {
        tracing::warn!(error = %e, cpu, "cannot pin the load generator");
    }
    let mut ready = Err(RunError::Thread("ping"));
    for _ in 0..10 {
        match mp.client.request(ShardId(0), &Ping).await {
            Ok(_) => {
                ready = Ok(());
                break;
            }
            Err(e) => ready = Err(RunError::NotReady(ShardId(0), e)),
        }
        gone(&mut mp.child)?;
    }
    ready?;
    let rss_idle = {
        gone(&mut mp.child)?;
        sysinfo::rss_kib(pid)?
    };

    let (echo, echo_addr) = echo_socket()?;
    let run_id = std::process::id();
    let (browsers, setup_ms) = set_up_browsers(plan.calls, |i, offer| {
        program(mp.client.clone(), run_id, i, offer, echo_addr)
    })
    .await?;
    let traffic = drive(plan, &mut mp.child, pid, browsers, echo).await?;

    let (totals, delete_failures) = delete_all(&mp.client, plan.calls, |i| call_id(run_id, i).ok()).await;
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

/// The SIP-side echo's socket (non-blocking) and address: every call's SIP peer.
pub(crate) fn echo_socket() -> Result<(UdpSocket, SocketAddrV4), RunError> {
    let echo = crate::relay::udp_socket(ECHO_SOCKET_BUF)?;
    echo.set_nonblocking(true)?;
    let echo_addr = match echo.local_addr()? {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => return Err(io_err("expected IPv4")),
    };
    Ok((echo, echo_addr))
}

/// Creates `calls` browsers and sets each call up through `answer` (browser offer in, the
/// server's answer for the browser out), 32 at a time. Returns the answered browsers and the
/// set-up time in ms.
pub(crate) async fn set_up_browsers<F, Fut>(
    calls: u32,
    mut answer: F,
) -> Result<(Vec<Browser>, f64), RunError>
where
    F: FnMut(u32, String) -> Fut,
    Fut: std::future::Future<Output = Result<String, RunError>> + Send + 'static,
{
    // One certificate for every simulated browser: key generation is not what is measured.
    let cert = str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
        .ok_or_else(|| io_err("cannot generate a DTLS certificate"))?;
    let setup_start = monotonic_ns();
    let start = Instant::now();
    let mut browsers: Vec<Option<Browser>> = Vec::with_capacity(calls as usize);
    let mut pendings = Vec::with_capacity(calls as usize);
    let mut tasks = JoinSet::new();
    let mut next = 0u32;
    while next < calls || !tasks.is_empty() {
        while next < calls && tasks.len() < 32 {
            let (b, offer, pending) = Browser::new(next, &cert, start, AudioCodec::Pcmu)?;
            browsers.push(Some(b));
            pendings.push(Some(pending));
            let (i, reply) = (next, answer(next, offer));
            tasks.spawn(async move { (i, reply.await) });
            next += 1;
        }
        if let Some(done) = tasks.join_next().await {
            let (i, reply) = done.map_err(|_| RunError::Thread("call setup"))?;
            let reply = reply?;
            let (Some(b), Some(pending)) = (
                browsers.get_mut(i as usize).and_then(Option::as_mut),
                pendings.get_mut(i as usize).and_then(Option::take),
            ) else {
                continue;
            };
            b.accept_answer(pending, &reply)?;
        }
    }
    let setup_ms = monotonic_ns().saturating_sub(setup_start) as f64 / 1e6;
    tracing::info!(calls, setup_ms, "calls set up");
    Ok((browsers.into_iter().flatten().collect(), setup_ms))
}

/// What the traffic phase measured, before the server's own teardown.
pub(crate) struct CallTraffic {
    threads: usize,
    connect_ms: f64,
    connected: u64,
    cpu: ((u64, u64), (u64, u64)),
    rss_end: u64,
    loadavg_after: String,
    counts: Vec<BrowserCounts>,
    echo_counts: EchoCounts,
    echoed: u64,
}

/// Connects every browser (bounded by `plan.connect_timeout`), then sends the paced audio,
/// echoes it on the SIP side and measures the server (`pid`: CPU of every thread over the
/// window, RSS at its end). Works for any server that bridges browsers to the echo.
pub(crate) async fn drive(
    plan: &WebRtcPlan,
    child: &mut tokio::process::Child,
    pid: u32,
    browsers: Vec<Browser>,
    echo: UdpSocket,
) -> Result<CallTraffic, RunError> {
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        send_start_ns: AtomicU64::new(0),
        send_end_ns: AtomicU64::new(0),
        window: (AtomicU64::new(0), AtomicU64::new(0)),
        connected: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        echoed: AtomicU64::new(0),
    });
    let threads = plan.threads.clamp(1, plan.calls.max(1) as usize);
    let mut groups: Vec<Vec<Browser>> = (0..threads).map(|_| Vec::new()).collect();
    for (k, b) in browsers.into_iter().enumerate() {
        groups[k % threads].push(b);
    }
    let mut workers = Vec::new();
    for (k, group) in groups.into_iter().enumerate() {
        let (shared, pps, payload) = (shared.clone(), plan.pps, plan.payload);
        workers.push(
            std::thread::Builder::new()
                .name(format!("browsers-{k}"))
                .spawn(move || browser_loop(group, shared, pps, payload))?,
        );
    }
    let echo_thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("sip-echo".into())
            .spawn(move || echo_loop(echo, shared))?
    };

    // Connect every call (bounded), then send.
    let t0 = monotonic_ns();
    let connect_deadline = t0 + plan.connect_timeout.as_nanos() as u64;
    while shared.connected.load(Ordering::Relaxed) < u64::from(plan.calls)
        && monotonic_ns() < connect_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        gone(child)?;
    }
    let connected = shared.connected.load(Ordering::Relaxed);
    let connect_ms = monotonic_ns().saturating_sub(t0) as f64 / 1e6;
    eprintln!(
        "{connected} of {} calls connected (ICE + DTLS) in {connect_ms:.0} ms",
        plan.calls
    );
    let send_start = monotonic_ns() + 20_000_000;
    let window = (
        send_start + u64::from(plan.warmup_secs) * 1_000_000_000,
        send_start + u64::from(plan.warmup_secs + plan.seconds) * 1_000_000_000,
    );
    shared.window.0.store(window.0, Ordering::Relaxed);
    shared.window.1.store(window.1, Ordering::Relaxed);
    shared.send_end_ns.store(window.1, Ordering::Relaxed);
    shared.send_start_ns.store(send_start, Ordering::Relaxed);

    let mut cpu = Vec::new();
    let mut tick = send_start + 1_000_000_000;
    for edge in [window.0, window.1] {
        while tick < edge {
            sleep_until_ns(tick).await;
            progress(send_start, &shared);
            tick += 1_000_000_000;
        }
        sleep_until_ns(edge).await;
        gone(child)?;
        cpu.push((monotonic_ns(), sysinfo::cpu_ticks(pid)?));
    }
    let rss_end = {
        gone(child)?;
        sysinfo::rss_kib(pid)?
    };
    let loadavg_after = sysinfo::loadavg();
    tokio::time::sleep(Duration::from_millis(plan.drain_ms)).await;
    progress(send_start, &shared);
    shared.stop.store(true, Ordering::Relaxed);
    let mut counts = Vec::new();
    for w in workers {
        counts.push(w.join().map_err(|_| RunError::Thread("browser"))??);
    }
    let echo_counts = echo_thread.join().map_err(|_| RunError::Thread("echo"))?;
    Ok(CallTraffic {
        threads,
        connect_ms,
        connected,
        cpu: (cpu[0], cpu[1]),
        rss_end,
        loadavg_after,
        counts,
        echo_counts,
        echoed: shared.echoed.load(Ordering::Relaxed),
    })
}

impl CallTraffic {
    /// The report of this run (thresholds not yet judged).
    pub(crate) fn into_report(
        self,
        plan: &WebRtcPlan,
        side: ServerSide,
    ) -> Result<WebRtcReport, RunError> {
        let CallTraffic {
            threads,
            connect_ms,
            connected,
            cpu: (c0, c1),
            rss_end,
            loadavg_after,
            counts,
            echo_counts,
            echoed,
        } = self;
        let ServerSide {
            started_unix,
            loadavg_before,
            setup_ms,
            rss_idle,
            delete_failures,
            rtp_in,
            rtp_out,
            dropped,
        } = side;
        let mut round_trip =
            Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(io_err)?;
        let (mut sent, mut received, mut received_in_window, mut errors, mut not_probes) =
            (0, 0, 0, 0, 0);
        for c in &counts {
            round_trip
                .add(&c.round_trip)
                .map_err(|e| io_err(e.to_string()))?;
            sent += c.sent;
            received += c.received;
            received_in_window += c.received_in_window;
            errors += c.errors;
            not_probes += c.not_probes;
        }
        let relayed_in_window = received_in_window + echo_counts.received_in_window;
        Ok(WebRtcReport {
            name: plan.name.clone(),
            started_unix,
            machine: Machine {
                loadavg_before,
                loadavg_after,
                ..sysinfo::machine()
            },
            config: WebRtcConfig {
                calls: plan.calls,
                pps: plan.pps,
                seconds: plan.seconds,
                warmup_secs: plan.warmup_secs,
                payload: plan.payload.max(wire::PROBE_LEN),
                browser_threads: threads,
                mediaplane_args: plan.mediaplane_args.clone(),
            },
            setup_ms,
            connect_ms,
            calls_connected: connected,
            resources: Resources::compute(
                c1.0.saturating_sub(c0.0),
                c1.1.saturating_sub(c0.1),
                sysinfo::ticks_per_sec(),
                relayed_in_window,
                (rss_idle, rss_end),
                plan.calls,
            ),
            round_trip: LatencyFigures::from_ns(&round_trip),
            browser_to_sip: Leg::new(sent, echo_counts.received),
            sip_to_browser: Leg::new(echoed, received),
            loss_ratio: 0.0,
            load_generator_errors: errors + echo_counts.errors,
            not_probes: not_probes + echo_counts.not_probes,
            delete_failures,
            mediaplane_rtp_in: rtp_in,
            mediaplane_rtp_out: rtp_out,
            mediaplane_dropped: dropped,
            failures: Vec::new(),
        })
    }
}

