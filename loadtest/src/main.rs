//! `wavegate-loadtest`: drives a real media plane through its public interfaces (the control
//! rings and UDP) and writes a benchmark report.
//!
//! `main` only parses arguments, builds the runtime and writes files; the scenario driver is
//! in [`relay`], the arithmetic in [`report`] (unit-tested, no I/O), packets and SDP in [`wire`].
//! Exit codes: 0 passed, 1 ran but missed a threshold, 2 could not run.

mod browser;
mod call;
mod call_browsers;
mod call_mix;
mod call_report;
mod call_server;
mod chart;
mod janus;
mod janus_api;
mod janus_call;
mod janus_server;
mod janus_versus;
mod janus_versus_report;
mod ramp;
mod relay;
mod report;
mod rtpengine;
mod rtpengine_bencode;
mod rtpengine_report;
mod rtpengine_versus;
mod sip_target;
mod sipp_audio;
mod sipp_incoming;
mod sysinfo;
mod video;
mod video_report;
mod vp8;
mod webrtc;
mod webrtc_report;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Load generator for Wavegate's media plane.
///
/// Starts `wavegate-mediaplane` itself (pinned to its own core), programs relay sessions
/// through the shared-memory control channel exactly as the signalling process does, sends
/// paced RTP through them from 127.0.0.1 and reports added latency, loss, and the media
/// plane's CPU and memory per packet and per stream, as JSON and Markdown.
#[derive(Debug, Parser)]
#[command(name = "wavegate-loadtest", version)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Bidirectional plain-RTP relay sessions (PCMU, offer/answer, latching).
    ///
    /// Each stream is one call: an Offer from endpoint A and an Answer from endpoint B; A and
    /// B then send RTP to the media plane at --pps each, and every packet's probe (stream,
    /// sequence, send time) is checked on arrival. Writes <out>/<name>.json and .md.
    ///
    /// Acceptance run (release build):
    ///     wavegate-loadtest relay --streams 1000 --seconds 20
    ///
    /// CI smoke test:
    ///     wavegate-loadtest relay --streams 50 --seconds 5 --out target/loadtest
    #[command(verbatim_doc_comment)]
    Relay(RelayArgs),
    /// WebRTC <-> SIP calls: str0m browsers (ICE, DTLS, SRTP) and a plain RTP echo peer.
    ///
    /// Starts the media plane with --webrtc-port-base, sets up each call with WebRtcOffer and
    /// Answer, then every browser sends --pps PCMU packets/s; the SIP-side peer echoes them, so
    /// each packet crosses the media plane twice (SRTP -> RTP, RTP -> SRTP). Reports the media
    /// plane's CPU per relayed packet, RSS per call, loss and the round trip.
    /// Writes <out>/<name>.json and .md.
    ///
    /// Acceptance run (release build):
    ///     wavegate-loadtest webrtc --calls 500 --seconds 20
    ///
    /// CI smoke test:
    ///     wavegate-loadtest webrtc --calls 20 --seconds 5 --out target/loadtest
    #[command(verbatim_doc_comment)]
    Webrtc(WebRtcArgs),
    /// The whole gateway under call load: browsers on the WebSocket API calling `echo`.
    ///
    /// Starts `wavegate` (which spawns its media plane) on loopback with free ports; each
    /// simulated browser (str0m: ICE, DTLS, SRTP) opens a WebSocket session, connects, calls
    /// the target with a one-codec offer, sends --pps probe packets/s for --hold-secs once
    /// ESTABLISHED, measures the echo (round trip, loss, jitter, MOS) and hangs up. Reports
    /// setup time, failures by cause, and CPU/RSS of both server processes per call.
    /// `vp8` calls in --codec-mix add a bundled VP8 video line: synthetic VP8 at --video-kbps
    /// and --video-fps with probes in every packet, PLI/FIR answered with a keyframe; the
    /// report's video section gives their loss, RTT and keyframe requests (echo and sipp).
    /// Writes <out>/<name>.json, .md, -setup.svg and -load.svg.
    ///
    /// Report run (release build):
    ///     wavegate-loadtest call --calls 200 --cps 20 --hold-secs 20
    ///
    /// CI smoke test:
    ///     wavegate-loadtest call --calls 50 --cps 10 --hold-secs 10 --rtp-ports 47000-47999
    ///
    /// SIP targets (--target sipp): Kamailio (proxy + registrar) in front of a SIPp UAS that
    /// answers PCMU only and echoes RTP (configs in loadtest/peers/). PCMU browsers are
    /// passed through (probe RTT); Opus browsers are transcoded Opus <-> PCMU and send real
    /// Opus with a loud marker burst once a second, whose decoded return gives the RTT
    /// (loss from RTP sequence gaps, missed markers fail the run). --direction incoming:
    /// browsers register through Kamailio and SIPp calls each (PCMU offer for PCMU browsers,
    /// G.729 for Opus browsers, which the gateway then transcodes). Reports add the
    /// transcoded share, SIPp's INVITE -> 200 times and CPU/RSS of SIPp and Kamailio.
    ///     wavegate-loadtest call --target sipp --calls 300 --cps 20 --hold-secs 20 \
    ///         --codec-mix pcmu=50,opus=50 --name call-sipp-mixed
    ///     wavegate-loadtest call --target sipp --direction incoming --calls 100 --cps 10 \
    ///         --hold-secs 20 --codec-mix pcmu=100 --name call-sipp-incoming
    #[command(verbatim_doc_comment)]
    Call(CallArgs),
    /// Wavegate versus Janus 1.1.2's SIP plugin: CPU seconds per browser -> SIP call.
    ///
    /// Runs the same call load through Wavegate (WebSocket API) and then through Janus (SIP
    /// plugin over its WebSocket transport; Debian's `janus`, configured from
    /// loadtest/peers/janus/), both against one SIP target: a SIPp UAS answering PCMU with
    /// RTP echo. Each browser offers PCMU only (no transcoding on either side), sends --pps
    /// probes for --hold-secs, measures the echo and hangs up. CPU of Wavegate = both its
    /// processes, of Janus = the janus process; the SIP target's is reported apart.
    /// Runs itself in a private network namespace (unshare; Janus gathers ICE candidates on
    /// no loopback interface, so it gets 127.0.0.2 on a veth there that leads nowhere).
    /// Writes <out>/<name>.json, .md and .svg; exit 1 when a call fails, media is lost, or
    /// Janus' CPU per call is under --min-ratio times Wavegate's.
    ///
    /// Full run (release build):
    ///     wavegate-loadtest versus-janus --calls 200 --cps 10 --hold-secs 20
    ///
    /// CI smoke test:
    ///     wavegate-loadtest versus-janus --calls 10 --cps 5 --hold-secs 5 --min-ratio 0 --out target/loadtest
    #[command(verbatim_doc_comment)]
    VersusJanus(janus_versus::VersusArgs),
    /// Our media plane versus rtpengine 10.5 (userspace) under the same load, side by side.
    ///
    /// Each repeat runs both servers one after the other in the same minutes, each pinned to
    /// --server-cpu (ours: one shard; rtpengine: --num-threads=1, every thread on that CPU,
    /// --table=-1 so nothing is forwarded in the kernel), with the same streams, schedule and
    /// measurement: plain = the `relay` scenario (RTP <-> RTP; rtpengine set up with ng
    /// offer/answer, RTP/AVP both sides); webrtc = the `webrtc` scenario (str0m browsers with
    /// ICE + DTLS-SRTP <-> a plain RTP echo; rtpengine gets the browser's offer turned into
    /// RTP/AVP and answers it with ICE + DTLS). CPU is utime + stime of the whole server
    /// process over the window per relayed packet; loss is counted at the receivers.
    /// Writes <out>/<name>.json, .md and .svg (CPU per packet of both, and the ratio).
    ///
    /// Report runs (release build; rtpengine from Debian's rtpengine-daemon):
    ///     wavegate-loadtest versus-rtpengine --mode plain --streams 1000 --seconds 20 \
    ///         --repeats 3 --rtp-ports 61000-65000
    ///     wavegate-loadtest versus-rtpengine --mode webrtc --streams 300 --seconds 20 --repeats 3
    ///
    /// CI smoke test:
    ///     wavegate-loadtest versus-rtpengine --streams 20 --seconds 3 --max-loss 0.01 \
    ///         --out target/loadtest
    #[command(verbatim_doc_comment)]
    VersusRtpengine(rtpengine_versus::VersusArgs),
}

/// What the browsers call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    /// The built-in `echo` extension (answers the offered codec, echoes audio).
    Echo,
    /// A SIPp UAS behind Kamailio answering PCMU only and echoing RTP: PCMU browsers are
    /// passed through, Opus browsers transcoded (measured with real Opus and a timed marker).
    Sipp,
}

/// Who calls whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CallDirection {
    /// Browsers call the target.
    Outgoing,
    /// Browsers register through Kamailio; SIPp calls each one (needs --target sipp).
    Incoming,
}

#[derive(Debug, Args)]
struct CallArgs {
    /// Calls to place (with --hold-secs long enough, the concurrency reached).
    #[arg(long, default_value_t = 50)]
    calls: u32,
    /// Calls placed per second (the ramp).
    #[arg(long, default_value_t = 10.0)]
    cps: f64,
    /// Seconds each call sends media once ESTABLISHED, before it hangs up.
    #[arg(long, default_value_t = 10)]
    hold_secs: u32,
    /// Bound of the whole run in seconds [default: calls / cps + hold + 30].
    #[arg(long)]
    seconds: Option<u32>,
    /// Share of calls per codec, e.g. `pcmu=70,opus=20,vp8=10`: each browser offers one audio
    /// codec; `vp8` browsers offer PCMU plus a bundled VP8 video line and send synthetic VP8
    /// (--video-kbps, --video-fps, --video-keyframe-ms), measured apart (outgoing calls only).
    #[arg(long, default_value = "pcmu=100")]
    codec_mix: String,
    /// Bitrate of each `vp8` browser's video (VP8 bytes), kbit/s.
    #[arg(long, default_value_t = 400)]
    video_kbps: u32,
    /// Frames per second of each `vp8` browser's video.
    #[arg(long, default_value_t = 30)]
    video_fps: u32,
    /// A keyframe at least this often, ms, besides those the server asks for (0: only asked).
    #[arg(long, default_value_t = 3000)]
    video_keyframe_ms: u32,
    /// Largest video RTP payload, bytes (MTU-sized packets).
    #[arg(long, default_value_t = 1200)]
    video_max_payload: usize,
    /// What to call.
    #[arg(long, value_enum, default_value_t = Target::Echo)]
    target: Target,
    /// Who calls: browsers call the target, or SIPp calls registered browsers.
    #[arg(long, value_enum, default_value_t = CallDirection::Outgoing)]
    direction: CallDirection,
    /// SIPp scenarios and Kamailio config (--target sipp).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/peers"))]
    peers_dir: PathBuf,
    /// Kamailio's UDP worker processes (--target sipp).
    #[arg(long, default_value_t = 2)]
    kamailio_children: u32,
    /// RTP packets per second per call (50 = 20 ms frames).
    #[arg(long, default_value_t = 50)]
    pps: u32,
    /// RTP payload bytes per packet (at least 24: the probe).
    #[arg(long, default_value_t = 160)]
    payload: usize,
    /// Threads driving the simulated browsers.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The server binary [default: wavegate next to this executable].
    #[arg(long)]
    server: Option<PathBuf>,
    /// RTP port range of the server's media plane.
    #[arg(long, default_value = "20000-39999")]
    rtp_ports: String,
    /// The server's HTTP/WebSocket port [default: a free port].
    #[arg(long)]
    http_port: Option<u16>,
    /// The media plane's WebRTC UDP port [default: a free port].
    #[arg(long)]
    webrtc_port: Option<u16>,
    /// CPU the media plane's shard is pinned to (`media.cpus`); `none` = no pinning.
    #[arg(long, default_value = "0")]
    mp_cpus: String,
    #[command(flatten)]
    pin: PinArgs,
    /// Extra server settings as WAVEGATE_<SECTION>__<KEY>=value (repeatable; docs/configuration.md),
    /// e.g. WAVEGATE_MEDIA__HEARTBEAT_TIMEOUT_MS=3000 on a starved VM. Applied after ours.
    #[arg(long = "server-env", value_name = "KEY=VALUE")]
    server_env: Vec<String>,
    /// Seconds to wait for each server answer (session, answer SDP, ESTABLISHED, FINISH).
    #[arg(long, default_value_t = 10)]
    step_timeout_secs: u64,
    /// Directory for the report files.
    #[arg(long, default_value = "docs/benchmarks")]
    out: PathBuf,
    /// Report name [default: call-echo-<calls>].
    #[arg(long)]
    name: Option<String>,
    /// Highest acceptable loss ratio over all calls.
    #[arg(long, default_value_t = 0.001)]
    max_loss: f64,
    /// Highest acceptable setup-time p99, ms.
    #[arg(long)]
    max_setup_p99_ms: Option<f64>,
    /// Failed calls tolerated.
    #[arg(long, default_value_t = 0)]
    max_failed: u64,
    /// Highest acceptable ratio of transcoded calls' audio markers not back within 800 ms.
    #[arg(long, default_value_t = 0.001)]
    max_missed_markers: f64,
}

#[derive(Debug, Args)]
struct WebRtcArgs {
    /// Number of calls (a browser and a SIP peer each).
    #[arg(long, default_value_t = 100)]
    calls: u32,
    /// RTP packets per second per call per direction (50 = 20 ms ptime).
    #[arg(long, default_value_t = 50)]
    pps: u32,
    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Seconds of traffic before measuring starts.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u32,
    /// Milliseconds to wait for late packets after the last send.
    #[arg(long, default_value_t = 1000)]
    drain_ms: u64,
    /// Seconds every call may take to connect (ICE + DTLS) after set-up.
    #[arg(long, default_value_t = 20)]
    connect_timeout_secs: u64,
    /// Threads driving the simulated browsers.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The media-plane binary [default: wavegate-mediaplane next to this executable].
    #[arg(long)]
    mediaplane: Option<PathBuf>,
    /// RTP port range handed to the media plane (one pair per call for the SIP side).
    #[arg(long, default_value = "20000-39999")]
    rtp_ports: String,
    /// The media plane's WebRTC UDP port [default: a free port].
    #[arg(long)]
    webrtc_port: Option<u16>,
    /// CPUs the media plane pins its shard to (its --cpus).
    #[arg(long, default_value = "0")]
    mp_cpus: String,
    #[command(flatten)]
    pin: PinArgs,
    /// RTP payload bytes per packet (at least 24: the probe).
    #[arg(long, default_value_t = 160)]
    payload: usize,
    /// Deadline for each control request, ms.
    #[arg(long, default_value_t = 5000)]
    request_timeout_ms: u64,
    /// Directory for the report files.
    #[arg(long, default_value = "docs/benchmarks")]
    out: PathBuf,
    /// Report name: writes <out>/<name>.json and <out>/<name>.md [default: webrtc-<calls>].
    #[arg(long)]
    name: Option<String>,
    /// Highest acceptable loss ratio over both crossings.
    #[arg(long, default_value_t = 0.0)]
    max_loss: f64,
    /// Highest acceptable round-trip p99 in microseconds.
    #[arg(long)]
    max_p99_us: Option<f64>,
    /// Highest acceptable media-plane CPU per relayed packet in microseconds.
    #[arg(long)]
    max_cpu_us: Option<f64>,
}

/// Where the load generator's own threads run.
#[derive(Debug, Args)]
struct PinArgs {
    /// CPU for the load generator's own threads [default: 1 when there are 2+ CPUs].
    #[arg(long)]
    pin_cpu: Option<usize>,
    /// Do not pin the load generator's threads.
    #[arg(long)]
    no_pin: bool,
}

impl PinArgs {
    /// The CPU to pin to, if any.
    fn cpu(&self) -> Option<usize> {
        match (self.no_pin, self.pin_cpu) {
            (true, _) => None,
            (false, Some(cpu)) => Some(cpu),
            (false, None) => (sysinfo::nproc() >= 2).then_some(1),
        }
    }
}

#[derive(Debug, Args)]
struct RelayArgs {
    /// Number of relay sessions (each has an A and a B endpoint).
    #[arg(long, default_value_t = 100)]
    streams: u32,
    /// RTP packets per second per stream per direction (50 = 20 ms ptime).
    #[arg(long, default_value_t = 50)]
    pps: u32,
    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Seconds of traffic before measuring (latency, CPU) starts.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u32,
    /// Milliseconds to wait for late packets after the last send before counting losses.
    #[arg(long, default_value_t = 1000)]
    drain_ms: u64,
    /// Media-plane shards (one per CPU given with --mp-cpus).
    #[arg(long, default_value_t = 1)]
    shards: u16,
    /// The media-plane binary [default: wavegate-mediaplane next to this executable].
    #[arg(long)]
    mediaplane: Option<PathBuf>,
    /// RTP port range handed to the media plane.
    #[arg(long, default_value = "20000-39999")]
    rtp_ports: String,
    /// CPUs the media plane pins its shards to (its --cpus).
    #[arg(long, default_value = "0")]
    mp_cpus: String,
    #[command(flatten)]
    pin: PinArgs,
    /// RTP payload bytes per packet (at least 24: the probe).
    #[arg(long, default_value_t = 160)]
    payload: usize,
    /// Receive buffer per socket, bytes.
    #[arg(long, default_value_t = 8 << 20)]
    rcvbuf: usize,
    /// Deadline for each control request, ms.
    #[arg(long, default_value_t = 2000)]
    request_timeout_ms: u64,
    /// Directory for the report files.
    #[arg(long, default_value = "docs/benchmarks")]
    out: PathBuf,
    /// Report name: writes <out>/<name>.json and <out>/<name>.md [default: relay-<streams>].
    #[arg(long)]
    name: Option<String>,
    /// Highest acceptable loss ratio over both directions (0.001 = 0.1 %).
    #[arg(long, default_value_t = 0.0)]
    max_loss: f64,
    /// Highest acceptable p99 added latency in microseconds.
    #[arg(long)]
    max_p99_us: Option<f64>,
}

fn next_to_me(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A TCP port free right now on loopback (the server binds it a moment later).
fn free_tcp_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn call(args: CallArgs) -> Result<bool, Box<dyn std::error::Error>> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| match (args.target, args.direction) {
            (Target::Echo, _) => format!("call-echo-{}", args.calls),
            (Target::Sipp, CallDirection::Outgoing) => format!("call-sipp-{}", args.calls),
            (Target::Sipp, CallDirection::Incoming) => format!("call-sipp-in-{}", args.calls),
        });
    if args.direction == CallDirection::Incoming && args.target != Target::Sipp {
        return Err("--direction incoming needs --target sipp (SIPp calls the browsers)".into());
    }
    let mix = call_mix::parse_mix(&args.codec_mix)?;
    let codecs = call_mix::assign_mix(&mix, args.calls);
    if args.direction == CallDirection::Incoming && codecs.iter().any(|c| c.video()) {
        return Err(
            "vp8 in --codec-mix needs --direction outgoing (SIPp's offers are audio only)".into(),
        );
    }
    let video = vp8::Vp8Config {
        bitrate_bps: args.video_kbps.saturating_mul(1000),
        fps: args.video_fps,
        keyframe_interval_ms: args.video_keyframe_ms,
        max_payload: args.video_max_payload,
    };
    // Checked now rather than in every browser.
    vp8::Vp8Source::new(video, 0)?;
    let webrtc_port = match args.webrtc_port {
        Some(p) => p,
        None => free_port_outside(&args.rtp_ports)?,
    };
    let http_port = match args.http_port {
        Some(p) => p,
        None => free_tcp_port()?,
    };
    let mut env = vec![
        (
            "WAVEGATE_HTTP__LISTEN".to_owned(),
            format!("127.0.0.1:{http_port}"),
        ),
        ("WAVEGATE_SIP__LISTEN".into(), "127.0.0.1:0".into()),
        ("WAVEGATE_MEDIA__SHARDS".into(), "1".into()),
        ("WAVEGATE_MEDIA__BIND_IP".into(), "127.0.0.1".into()),
        ("WAVEGATE_MEDIA__RTP_PORTS".into(), args.rtp_ports.clone()),
        (
            "WAVEGATE_MEDIA__WEBRTC_PORT_BASE".into(),
            webrtc_port.to_string(),
        ),
        ("WAVEGATE_LOG__LEVEL".into(), "warn".into()),
    ];
    if args.mp_cpus == "none" {
        env.push(("WAVEGATE_MEDIA__PIN".into(), "false".into()));
    } else {
        env.push(("WAVEGATE_MEDIA__CPUS".into(), format!("[{}]", args.mp_cpus)));
    }
    for kv in &args.server_env {
        let Some((k, v)) = kv
            .split_once('=')
            .filter(|(k, _)| k.starts_with("WAVEGATE_"))
        else {
            return Err(
                format!("--server-env {kv:?}: expected WAVEGATE_<SECTION>__<KEY>=value").into(),
            );
        };
        env.push((k.to_owned(), v.to_owned()));
    }
    let seconds = args.seconds.unwrap_or_else(|| {
        (f64::from(args.calls) / args.cps.max(0.01)).ceil() as u32 + args.hold_secs + 30
    });
    let incoming = args.direction == CallDirection::Incoming;
    let sip = match args.target {
        Target::Echo => None,
        Target::Sipp => Some(sipp_incoming::prepare(
            args.peers_dir.clone(),
            args.calls,
            args.cps,
            args.hold_secs,
            seconds,
            incoming,
            args.kamailio_children,
        )?),
    };
    let plan = call::CallPlan {
        server: args
            .server
            .clone()
            .unwrap_or_else(|| next_to_me("wavegate")),
        server_env: env,
        http_port,
        callee: sip.as_ref().map_or("echo".into(), |s| s.callee.clone()),
        far_codec: sip.as_ref().map(|_| browser::AudioCodec::Pcmu),
        peers: sip.as_ref().map(|s| s.peers.clone()).unwrap_or_default(),
        incoming: sip.as_ref().and_then(|s| s.incoming.clone()),
        codecs,
        video,
        mix_text: args.codec_mix.clone(),
        cps: args.cps,
        hold_secs: args.hold_secs,
        max_seconds: seconds,
        pps: args.pps.max(1),
        payload: args.payload.max(wire::PROBE_LEN),
        threads: args.threads.max(1),
        step_timeout: Duration::from_secs(args.step_timeout_secs.max(1)),
        pin_cpu: args.pin.cpu(),
        name: name.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut report = runtime.block_on(call::run(plan))?;
    drop(sip);
    report.judge(args.max_loss, args.max_setup_p99_ms, args.max_failed);
    report.judge_markers(args.max_missed_markers);
    std::fs::create_dir_all(&args.out)?;
    let json = args.out.join(format!("{name}.json"));
    let md = args.out.join(format!("{name}.md"));
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(&md, report.markdown())?;
    std::fs::write(
        args.out.join(format!("{name}-setup.svg")),
        chart::setup_svg(&report)?,
    )?;
    std::fs::write(
        args.out.join(format!("{name}-load.svg")),
        chart::load_svg(&report)?,
    )?;
    let failed: u64 = report.failures_by_cause.iter().map(|(_, n)| n).sum();
    eprintln!(
        "{name}: {} of {} calls established (peak {} at once), {failed} failed; setup p50 {:.1} ms \
         p99 {:.1} ms; loss {:.6}; {:.4} CPU s/call, {:.1} KiB/call -> {} and {}",
        report.established,
        report.placed,
        report.peak_concurrent,
        report.setup.p50_ms,
        report.setup.p99_ms,
        report.loss_ratio,
        report.cpu_secs_per_call,
        report.rss_per_call_kib,
        json.display(),
        md.display()
    );
    for f in &report.codecs {
        eprintln!(
            "  {}{}: {} calls, RTT p50 {:.2} ms p99 {:.2} ms, loss {:.6}, jitter {:.3} ms, MOS {:.2} (min {:.2})",
            f.codec,
            if f.transcoded { " (transcoded)" } else { "" },
            f.calls,
            f.rtt.p50_ms,
            f.rtt.p99_ms,
            f.loss_ratio,
            f.jitter_mean_ms,
            f.mos_mean,
            f.mos_min
        );
    }
    if let Some(v) = &report.video {
        eprintln!(
            "  vp8 video: {} calls ({} got video back), {} of {} packets echoed, loss {:.6}, RTT p50 {:.2} ms p99 {:.2} ms, keyframe requests {} answered {}",
            v.calls,
            v.calls_with_video_back,
            v.received,
            v.sent,
            v.loss_ratio,
            v.rtt.p50_ms,
            v.rtt.p99_ms,
            v.keyframe_requests,
            v.requests_answered
        );
    }
    for (cause, n) in &report.failures_by_cause {
        eprintln!("  failed x{n}: {cause}");
    }
    for f in &report.failures {
        eprintln!("FAILED: {f}");
    }
    Ok(report.failures.is_empty())
}

fn default_mediaplane() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("wavegate-mediaplane")))
        .unwrap_or_else(|| PathBuf::from("wavegate-mediaplane"))
}

fn relay(args: RelayArgs) -> Result<bool, Box<dyn std::error::Error>> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("relay-{}", args.streams));
    let pin_cpu = args.pin.cpu();
    let plan = relay::RelayPlan {
        streams: args.streams,
        pps: args.pps.max(1),
        seconds: args.seconds,
        warmup_secs: args.warmup_secs,
        drain_ms: args.drain_ms,
        shards: args.shards.max(1),
        program: args.mediaplane.clone().unwrap_or_else(default_mediaplane),
        mediaplane_args: vec![
            "--rtp-ports".into(),
            args.rtp_ports.clone(),
            "--bind-ip".into(),
            "127.0.0.1".into(),
            "--cpus".into(),
            args.mp_cpus.clone(),
        ],
        payload: args.payload,
        rcvbuf: args.rcvbuf,
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        pin_cpu,
        name: name.clone(),
    };
    // One thread drives control and timing; the packet threads are plain threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut report = runtime.block_on(relay::run(&plan))?;
    report.judge(args.max_loss, args.max_p99_us);
    std::fs::create_dir_all(&args.out)?;
    let json = args.out.join(format!("{name}.json"));
    let md = args.out.join(format!("{name}.md"));
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(&md, report.markdown())?;
    let r = &report.resources;
    let l = &report.latency;
    eprintln!(
        "{name}: {:.0} packets/s, {:.3} us CPU/packet, latency p50 {} us p99 {} us p99.9 {} us max {} us, \
         loss {:.6}, RSS {:.1} KiB/stream -> {} and {}",
        r.packets_per_sec,
        r.cpu_us_per_packet,
        l.p50_us,
        l.p99_us,
        l.p999_us,
        l.max_us,
        report.loss_ratio,
        r.rss_per_stream_kib,
        json.display(),
        md.display()
    );
    for f in &report.failures {
        eprintln!("FAILED: {f}");
    }
    Ok(report.failures.is_empty())
}

/// A UDP port free right now (the media plane binds it a moment later) and outside the RTP
/// range `a-b`, where the media plane would also bind its port pairs.
fn free_port_outside(range: &str) -> std::io::Result<u16> {
    let (lo, hi) = range
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)))
        .unwrap_or((0, 0));
    let mut held = Vec::new();
    for _ in 0..64 {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let port = sock.local_addr()?.port();
        if !(lo..=hi).contains(&port) {
            return Ok(port);
        }
        // Keep it bound so the next bind gets another port.
        held.push(sock);
    }
    Err(std::io::Error::other(
        "no free UDP port outside the RTP range; give --webrtc-port",
    ))
}

fn webrtc(args: WebRtcArgs) -> Result<bool, Box<dyn std::error::Error>> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("webrtc-{}", args.calls));
    let webrtc_port = match args.webrtc_port {
        Some(p) => p,
        None => free_port_outside(&args.rtp_ports)?,
    };
    let plan = webrtc::WebRtcPlan {
        calls: args.calls,
        pps: args.pps.max(1),
        seconds: args.seconds,
        warmup_secs: args.warmup_secs,
        drain_ms: args.drain_ms,
        program: args.mediaplane.clone().unwrap_or_else(default_mediaplane),
        mediaplane_args: vec![
            "--rtp-ports".into(),
            args.rtp_ports.clone(),
            "--bind-ip".into(),
            "127.0.0.1".into(),
            "--cpus".into(),
            args.mp_cpus.clone(),
            "--webrtc-port-base".into(),
            webrtc_port.to_string(),
        ],
        payload: args.payload,
        threads: args.threads.max(1),
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        connect_timeout: Duration::from_secs(args.connect_timeout_secs),
        pin_cpu: args.pin.cpu(),
        name: name.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut report = runtime.block_on(webrtc::run(&plan))?;
    report.judge(args.max_loss, args.max_p99_us, args.max_cpu_us);
    std::fs::create_dir_all(&args.out)?;
    let json = args.out.join(format!("{name}.json"));
    let md = args.out.join(format!("{name}.md"));
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(&md, report.markdown())?;
    let r = &report.resources;
    let l = &report.round_trip;
    eprintln!(
        "{name}: {:.0} packets/s, {:.3} us CPU/packet ({:.2}x the {} us target, {:.2}x rtpengine), \
         round trip p50 {} us p99 {} us, loss {:.6}, RSS {:.1} KiB/call -> {} and {}",
        r.packets_per_sec,
        r.cpu_us_per_packet,
        r.cpu_us_per_packet / webrtc_report::TARGET_CPU_US,
        webrtc_report::TARGET_CPU_US,
        r.cpu_us_per_packet / webrtc_report::RTPENGINE_CPU_US,
        l.p50_us,
        l.p99_us,
        report.loss_ratio,
        r.rss_per_stream_kib,
        json.display(),
        md.display()
    );
    for f in &report.failures {
        eprintln!("FAILED: {f}");
    }
    Ok(report.failures.is_empty())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome = match cli.scenario {
        Scenario::Relay(args) => relay(args),
        Scenario::Webrtc(args) => webrtc(args),
        Scenario::Call(args) => call(args),
        Scenario::VersusJanus(args) => janus_versus::versus(args),
        Scenario::VersusRtpengine(args) => rtpengine_versus::main(args),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("wavegate-loadtest: {e}");
            ExitCode::from(2)
        }
    }
}
