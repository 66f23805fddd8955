//! The `versus-rtpengine` scenario: the same load through our media plane and through
//! rtpengine, alternating in the same minutes, repeated; writes the comparison report.
//!
//! Each repeat runs both servers one after the other (ours first in odd repeats, rtpengine
//! first in even ones, so drift in the machine's load does not always favour one side), each
//! started fresh, pinned to the same CPU, with the same ports, streams, schedule and
//! measurement (the `relay` or `webrtc` driver). Every run is bounded by its scenario's own
//! deadlines; a run that cannot be carried out is recorded as broken and fails the report.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::relay::{self, RelayPlan};
use crate::report::Machine;
use crate::rtpengine::{self, RtpengineConfig};
use crate::rtpengine_report::{Mode, RunFigures, Server, VersusConfig, VersusReport};
use crate::sysinfo;
use crate::webrtc::{self, WebRtcPlan};

/// Options of `versus-rtpengine`.
#[derive(Debug, Args)]
pub struct VersusArgs {
    /// What both servers relay: plain RTP <-> RTP, or DTLS-SRTP browsers <-> plain RTP.
    #[arg(long, value_enum, default_value_t = Mode::Plain)]
    mode: Mode,
    /// Relay sessions (plain) or browser calls (webrtc).
    #[arg(long, default_value_t = 100)]
    streams: u32,
    /// RTP packets per second per stream and direction (50 = 20 ms ptime).
    #[arg(long, default_value_t = 50)]
    pps: u32,
    /// Measured seconds per run, after the warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Seconds of traffic before measuring starts.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u32,
    /// Milliseconds to wait for late packets after the last send.
    #[arg(long, default_value_t = 1000)]
    drain_ms: u64,
    /// Repeats (each runs both servers).
    #[arg(long, default_value_t = 1)]
    repeats: u32,
    /// RTP port range of both servers (ours: 4 ports per plain stream, 2 per call plus one
    /// WebRTC port; rtpengine: 4 per plain stream, 3 per call).
    #[arg(long, default_value = "57000-59999")]
    rtp_ports: String,
    /// rtpengine's ng control port on 127.0.0.1.
    #[arg(long, default_value_t = 22300)]
    ng_port: u16,
    /// The rtpengine binary.
    #[arg(long, default_value = "rtpengine")]
    rtpengine: PathBuf,
    /// rtpengine worker threads (`--num-threads`).
    #[arg(long, default_value_t = 1)]
    rtpengine_threads: u32,
    /// The media-plane binary [default: wavegate-mediaplane next to this executable].
    #[arg(long)]
    mediaplane: Option<PathBuf>,
    /// CPU both servers are pinned to (ours: its one shard; rtpengine: all its threads).
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// CPU for the load generator's threads [default: 1 when there are 2+ CPUs].
    #[arg(long)]
    pin_cpu: Option<usize>,
    /// Threads driving the simulated browsers (webrtc).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seconds every call may take to connect (ICE + DTLS), webrtc.
    #[arg(long, default_value_t = 20)]
    connect_timeout_secs: u64,
    /// RTP payload bytes per packet (at least 24: the probe).
    #[arg(long, default_value_t = 160)]
    payload: usize,
    /// Receive buffer per load-generator socket, bytes (plain).
    #[arg(long, default_value_t = 8 << 20)]
    rcvbuf: usize,
    /// Deadline for each control request (ours and ng), ms.
    #[arg(long, default_value_t = 3000)]
    request_timeout_ms: u64,
    /// Directory for the report files.
    #[arg(long, default_value = "docs/benchmarks")]
    out: PathBuf,
    /// Report name: writes <out>/<name>.json, .md and .svg [default: versus-rtpengine-<mode>].
    #[arg(long)]
    name: Option<String>,
    /// Highest loss ratio allowed in any run of either server.
    #[arg(long, default_value_t = 0.0)]
    max_loss: f64,
}

fn parse_range(range: &str) -> Option<(u16, u16)> {
    let (a, b) = range.split_once('-')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a < b).then_some((a, b))
}

/// A UDP port free now on loopback, outside `range` (our media plane's WebRTC port).
fn free_port_outside(range: (u16, u16)) -> std::io::Result<u16> {
    let mut held = Vec::new();
    for _ in 0..64 {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let port = sock.local_addr()?.port();
        if !(range.0..=range.1).contains(&port) {
            return Ok(port);
        }
        held.push(sock);
    }
    Err(std::io::Error::other(
        "no free UDP port outside the RTP range",
    ))
}

fn default_mediaplane() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("wavegate-mediaplane")))
        .unwrap_or_else(|| PathBuf::from("wavegate-mediaplane"))
}

/// Runs the comparison, writes `<out>/<name>.{json,md,svg}`; Ok(true) when it passed.
pub fn main(args: VersusArgs) -> Result<bool, Box<dyn std::error::Error>> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("versus-rtpengine-{}", mode_name(args.mode)));
    let ports = parse_range(&args.rtp_ports)
        .ok_or_else(|| format!("--rtp-ports {:?}: expected LOW-HIGH", args.rtp_ports))?;
    let pin_cpu = args
        .pin_cpu
        .or_else(|| (sysinfo::nproc() >= 2).then_some(usize::from(args.server_cpu == 0)));
    let rtpengine = RtpengineConfig {
        program: args.rtpengine.clone(),
        ng_port: args.ng_port,
        ports,
        cpu: Some(args.server_cpu),
        threads: args.rtpengine_threads.max(1),
        log: std::env::temp_dir().join(format!("wavegate-rtpengine-{}.log", std::process::id())),
    };
    let mut mediaplane_args = vec![
        "--rtp-ports".to_owned(),
        args.rtp_ports.clone(),
        "--bind-ip".into(),
        "127.0.0.1".into(),
        "--cpus".into(),
        args.server_cpu.to_string(),
    ];
    if args.mode == Mode::Webrtc {
        mediaplane_args.push("--webrtc-port-base".into());
        mediaplane_args.push(free_port_outside(ports)?.to_string());
    }
    let program = args.mediaplane.clone().unwrap_or_else(default_mediaplane);
    let request_timeout = Duration::from_millis(args.request_timeout_ms);
    let relay_plan = |server: Server| RelayPlan {
        streams: args.streams,
        pps: args.pps.max(1),
        seconds: args.seconds,
        warmup_secs: args.warmup_secs,
        drain_ms: args.drain_ms,
        shards: 1,
        program: program.clone(),
        mediaplane_args: match server {
            Server::Wavegate => mediaplane_args.clone(),
            Server::Rtpengine => rtpengine.args(),
        },
        payload: args.payload,
        rcvbuf: args.rcvbuf,
        request_timeout,
        pin_cpu,
        name: name.clone(),
    };
    let webrtc_plan = |server: Server| WebRtcPlan {
        calls: args.streams,
        pps: args.pps.max(1),
        seconds: args.seconds,
        warmup_secs: args.warmup_secs,
        drain_ms: args.drain_ms,
        program: program.clone(),
        mediaplane_args: match server {
            Server::Wavegate => mediaplane_args.clone(),
            Server::Rtpengine => rtpengine.args(),
        },
        payload: args.payload,
        threads: args.threads.max(1),
        request_timeout,
        connect_timeout: Duration::from_secs(args.connect_timeout_secs),
        pin_cpu,
        name: name.clone(),
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started_unix = sysinfo::unix_now();
    let loadavg_before = sysinfo::loadavg();
    let mut runs = Vec::new();
    for repeat in 1..=args.repeats.max(1) {
        let order = if repeat % 2 == 1 {
            [Server::Wavegate, Server::Rtpengine]
        } else {
            [Server::Rtpengine, Server::Wavegate]
        };
        for server in order {
            eprintln!(
                "== repeat {repeat}: {server:?}, load average {}",
                sysinfo::loadavg()
            );
            let figures = match args.mode {
                Mode::Plain => {
                    let plan = relay_plan(server);
                    let report = runtime.block_on(async {
                        match server {
                            Server::Wavegate => relay::run(&plan).await,
                            Server::Rtpengine => rtpengine::run_relay(&plan, &rtpengine).await,
                        }
                    });
                    match report {
                        Ok(mut r) => {
                            r.judge(args.max_loss, None);
                            RunFigures::from_relay(repeat, server, &r)
                        }
                        Err(e) => RunFigures::broken(repeat, server, e.to_string()),
                    }
                }
                Mode::Webrtc => {
                    let plan = webrtc_plan(server);
                    let report = runtime.block_on(async {
                        match server {
                            Server::Wavegate => webrtc::run(&plan).await,
                            Server::Rtpengine => rtpengine::run_webrtc(&plan, &rtpengine).await,
                        }
                    });
                    match report {
                        Ok(mut r) => {
                            r.judge(args.max_loss, None, None);
                            eprintln!(
                                "   browser -> SIP {} of {}, SIP -> browser {} of {}, \
                                 {} packets not probes, {} load-generator errors",
                                r.browser_to_sip.received,
                                r.browser_to_sip.sent,
                                r.sip_to_browser.received,
                                r.sip_to_browser.sent,
                                r.not_probes,
                                r.load_generator_errors
                            );
                            RunFigures::from_webrtc(repeat, server, &r)
                        }
                        Err(e) => RunFigures::broken(repeat, server, e.to_string()),
                    }
                }
            };
            eprintln!(
                "   {server:?}: {:.3} us CPU/packet, {:.0} packets/s, lost {} of {}{}",
                figures.cpu_us_per_packet,
                figures.packets_per_sec,
                figures.lost,
                figures.sent,
                if figures.failures.is_empty() {
                    String::new()
                } else {
                    format!("; FAILED: {}", figures.failures.join("; "))
                }
            );
            runs.push(figures);
        }
    }
    let report = VersusReport::new(
        name.clone(),
        args.mode,
        started_unix,
        Machine {
            loadavg_before,
            loadavg_after: sysinfo::loadavg(),
            ..sysinfo::machine()
        },
        VersusConfig {
            streams: args.streams,
            pps: args.pps.max(1),
            seconds: args.seconds,
            warmup_secs: args.warmup_secs,
            payload: args.payload.max(crate::wire::PROBE_LEN),
            repeats: args.repeats.max(1),
            rtp_ports: args.rtp_ports.clone(),
            server_cpu: args.server_cpu.to_string(),
            generator_cpu: pin_cpu.map_or("not pinned".into(), |c| c.to_string()),
            rtpengine_version: rtpengine.version(),
            rtpengine_args: rtpengine.args(),
            mediaplane_args,
        },
        runs,
        args.max_loss,
    );
    std::fs::create_dir_all(&args.out)?;
    let json = args.out.join(format!("{name}.json"));
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(args.out.join(format!("{name}.md")), report.markdown())?;
    std::fs::write(args.out.join(format!("{name}.svg")), report.svg()?)?;
    eprintln!(
        "{name}: CPU us/packet ours {:.2} ({:.2}-{:.2}), rtpengine {:.2} ({:.2}-{:.2}); \
         rtpengine/ours {:.2}x ({:.2}-{:.2}x, target {:.1}x) -> {}",
        report.wavegate_cpu_us.median,
        report.wavegate_cpu_us.min,
        report.wavegate_cpu_us.max,
        report.rtpengine_cpu_us.median,
        report.rtpengine_cpu_us.min,
        report.rtpengine_cpu_us.max,
        report.ratio.median,
        report.ratio.min,
        report.ratio.max,
        report.target_ratio,
        json.display()
    );
    for f in &report.failures {
        eprintln!("FAILED: {f}");
    }
    Ok(report.failures.is_empty())
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Plain => "plain",
        Mode::Webrtc => "webrtc",
    }
}
