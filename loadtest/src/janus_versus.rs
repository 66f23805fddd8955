//! `versus-janus`: the same browser -> SIP call load through Wavegate (the `call` scenario's
//! driver) and then through Janus' SIP plugin ([`crate::janus`]), one after the other on this
//! machine, against one SIP target, and the CPU seconds per call of each, as a ratio.
//!
//! Janus 1.1.2 never gathers ICE candidates on a loopback interface (its ICE setup skips
//! `IFF_LOOPBACK` interfaces) and the machine's other interfaces are off limits to tests, so the
//! command re-executes itself in a private network namespace (`unshare -n`, `-rn` when not
//! root) where loopback is up and [`ICE_IP`] sits on one end of a veth pair that leads
//! nowhere: Janus' only host candidate. Everything (load generator, both gateways, SIPp,
//! Kamailio) runs in that namespace, so both gateways see the same network, nothing can leave
//! the machine, and no port there can collide with another test.
//!
//! Invariants: both legs get the same calls, rate, hold, packets and codec (PCMU only: no
//! transcoding on either side), the same UDP port range for their media, and the same SIP
//! target; the target's CPU is measured around each leg and reported apart. Each leg is
//! bounded by its own deadline.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::browser::AudioCodec;
use crate::call_report::CallReport;
use crate::janus::JanusPlan;
use crate::janus_call::JanusCallPlan;
use crate::janus_server::{JanusConfig, split_range};
use crate::janus_versus_report::{Leg, VersusReport};
use crate::sysinfo;

/// The address Janus gathers on, inside the namespace (a loopback-range address on a veth).
pub const ICE_IP: &str = "127.0.0.2";
/// Set in the environment of the re-executed command: we are inside the namespace.
// (Not WAVEGATE_*: the server reads every such variable as a setting.)
const NETNS_MARK: &str = "VERSUS_JANUS_IN_NETNS";

/// Which gateways to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// Wavegate only.
    Wavegate,
    /// Janus only.
    Janus,
}

/// Options of `versus-janus`.
#[derive(Debug, Args)]
pub struct VersusArgs {
    /// Calls to place through each gateway.
    #[arg(long, default_value_t = 200)]
    pub calls: u32,
    /// Calls placed per second (the ramp).
    #[arg(long, default_value_t = 10.0)]
    pub cps: f64,
    /// Seconds each call sends media once answered, before it hangs up.
    #[arg(long, default_value_t = 20)]
    pub hold_secs: u32,
    /// Bound of each leg in seconds [default: calls / cps + hold + 30].
    #[arg(long)]
    pub seconds: Option<u32>,
    /// RTP packets per second per call (50 = 20 ms frames).
    #[arg(long, default_value_t = 50)]
    pub pps: u32,
    /// RTP payload bytes per packet (at least 24: the probe).
    #[arg(long, default_value_t = 160)]
    pub payload: usize,
    /// Threads driving the simulated browsers.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// UDP ports of the gateways' media: Wavegate's media plane gets the whole range; Janus
    /// uses the lower half for ICE and the upper half for its SIP plugin's RTP.
    #[arg(long, default_value = "60000-61999")]
    pub ports: String,
    /// Janus' WebSocket port [default: the first free one in 8300-8399].
    #[arg(long)]
    pub janus_ws_port: Option<u16>,
    /// Janus' debug level (0-7; 2 = errors only).
    #[arg(long, default_value_t = 2)]
    pub janus_log_level: u8,
    /// The Wavegate server binary [default: wavegate next to this executable].
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// CPU the Wavegate media plane's shard is pinned to (`media.cpus`); `none` = no pinning.
    #[arg(long, default_value = "0")]
    pub mp_cpus: String,
    /// Extra Wavegate settings as WAVEGATE_<SECTION>__<KEY>=value (repeatable).
    #[arg(long = "server-env", value_name = "KEY=VALUE")]
    pub server_env: Vec<String>,
    /// SIPp scenarios and Kamailio config.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/peers"))]
    pub peers_dir: PathBuf,
    /// Kamailio's UDP worker processes.
    #[arg(long, default_value_t = 2)]
    pub kamailio_children: u32,
    /// Run one gateway only (no ratio).
    #[arg(long, value_enum)]
    pub only: Option<Only>,
    /// CPU for the load generator's own threads [default: 1 when there are 2+ CPUs].
    #[arg(long)]
    pub pin_cpu: Option<usize>,
    /// Do not pin the load generator's threads.
    #[arg(long)]
    pub no_pin: bool,
    /// Seconds to wait for each answer from a gateway.
    #[arg(long, default_value_t = 10)]
    pub step_timeout_secs: u64,
    /// Directory for the report files.
    #[arg(long, default_value = "docs/benchmarks")]
    pub out: PathBuf,
    /// Report name: writes <out>/<name>.json, .md and .svg.
    #[arg(long, default_value = "versus-janus")]
    pub name: String,
    /// Run in the current network namespace (Janus then gathers on the machine's non-loopback
    /// interfaces; for debugging only).
    #[arg(long)]
    pub no_netns: bool,
    /// Janus' CPU seconds per call over Wavegate's must be at least this.
    #[arg(long, default_value_t = 2.0)]
    pub min_ratio: f64,
    /// Highest acceptable loss ratio of each leg.
    #[arg(long, default_value_t = 0.001)]
    pub max_loss: f64,
    /// Failed calls tolerated in each leg.
    #[arg(long, default_value_t = 0)]
    pub max_failed: u64,
}

impl VersusArgs {
    fn pin(&self) -> Option<usize> {
        match (self.no_pin, self.pin_cpu) {
            (true, _) => None,
            (false, Some(cpu)) => Some(cpu),
            (false, None) => (sysinfo::nproc() >= 2).then_some(1),
        }
    }

    fn seconds(&self) -> u32 {
        self.seconds.unwrap_or_else(|| {
            (f64::from(self.calls) / self.cps.max(0.01)).ceil() as u32 + self.hold_secs + 30
        })
    }
}

/// The first TCP port of `lo..=hi` nothing listens on and we can bind.
fn free_tcp_in(lo: u16, hi: u16) -> std::io::Result<u16> {
    (lo..=hi)
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .ok_or_else(|| std::io::Error::other(format!("no free TCP port in {lo}-{hi}")))
}

/// Wavegate's environment, as the `call` scenario sets it: loopback, one media shard with the
/// given RTP ports, little logging, then the user's overrides.
fn wavegate_env(
    args: &VersusArgs,
    http_port: u16,
    webrtc_port: u16,
) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = [
        ("WAVEGATE_HTTP__LISTEN", format!("127.0.0.1:{http_port}")),
        ("WAVEGATE_SIP__LISTEN", "127.0.0.1:0".into()),
        ("WAVEGATE_MEDIA__SHARDS", "1".into()),
        ("WAVEGATE_MEDIA__BIND_IP", "127.0.0.1".into()),
        ("WAVEGATE_MEDIA__RTP_PORTS", args.ports.clone()),
        ("WAVEGATE_MEDIA__WEBRTC_PORT_BASE", webrtc_port.to_string()),
        ("WAVEGATE_LOG__LEVEL", "warn".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
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
            return Err(format!(
                "--server-env {kv:?}: expected WAVEGATE_<SECTION>__<KEY>=value"
            ));
        };
        env.push((k.to_owned(), v.to_owned()));
    }
    Ok(env)
}

/// The `call` scenario's thresholds, plus: every established call got media through (a call
/// that never connected ICE/DTLS sends nothing, so it would not show as loss).
fn judge(report: &mut CallReport, args: &VersusArgs) {
    report.judge(args.max_loss, None, args.max_failed);
    let without = report
        .established
        .saturating_sub(report.media_connect.count as u64);
    if without > 0 {
        report.failures.push(format!(
            "{without} established calls never connected media (ICE+DTLS)"
        ));
    }
    let echoed: u64 = report.codecs.iter().map(|c| c.received).sum();
    if report.established > 0 && echoed == 0 {
        report.failures.push("no probe came back".into());
    }
}

/// The shell script run by `unshare` before it execs this command again: loopback up, and
/// [`ICE_IP`] on a veth whose peer is up (so the link is running) and goes nowhere.
fn netns_setup() -> String {
    format!(
        "set -e; ip link set lo up; ip link add wgj0 type veth peer name wgj1; \
         ip addr add {ICE_IP}/32 dev wgj0; ip link set wgj1 up; ip link set wgj0 up; exec \"$@\""
    )
}

/// Re-executes this command inside a fresh network namespace; returns its exit status.
fn reexec_in_netns() -> Result<std::process::ExitStatus, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = std::process::Command::new("unshare");
    cmd.arg(if root { "-n" } else { "-rn" });
    cmd.args(["--", "sh", "-c", &netns_setup(), "sh"]);
    cmd.arg(exe).args(std::env::args_os().skip(1));
    cmd.env(NETNS_MARK, "1");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run unshare (util-linux) for the network namespace: {e}"))?;
    Ok(status)
}

/// Runs the comparison and writes the report; returns whether it passed.
pub fn versus(args: VersusArgs) -> Result<bool, Box<dyn std::error::Error>> {
    if !args.no_netns && std::env::var_os(NETNS_MARK).is_none() {
        let status = reexec_in_netns()?;
        return match status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(format!("versus-janus in its network namespace: {status}").into()),
        };
    }
    let ports = split_range(&args.ports).map(|((lo, _), (_, hi))| (lo, hi))?;
    let codecs = vec![AudioCodec::Pcmu; args.calls as usize];
    let seconds = args.seconds();
    let step_timeout = Duration::from_secs(args.step_timeout_secs.max(1));
    let work = std::env::temp_dir().join(format!("wavegate-versus-janus-{}", std::process::id()));
    // One SIP target for both legs: Kamailio in front of a SIPp UAS answering PCMU with RTP
    // echo, taking the calls of both legs.
    let sip = crate::sipp_incoming::prepare(
        args.peers_dir.clone(),
        args.calls.saturating_mul(2),
        args.cps,
        args.hold_secs,
        seconds.saturating_mul(2),
        false,
        args.kamailio_children,
    )?;
    let target_text = format!(
        "Kamailio in front of a SIPp UAS answering PCMU with RTP echo, `{}`",
        sip.callee
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut legs = Vec::new();
    if args.only != Some(Only::Janus) {
        let http_port = crate::free_tcp_port()?;
        let webrtc_port = crate::free_port_outside(&args.ports)?;
        let plan = crate::call::CallPlan {
            server: args
                .server
                .clone()
                .unwrap_or_else(|| crate::next_to_me("wavegate")),
            server_env: wavegate_env(&args, http_port, webrtc_port)?,
            http_port,
            callee: sip.callee.clone(),
            codecs: vec![crate::call_mix::MixCodec::Pcmu; codecs.len()],
            video: crate::vp8::Vp8Config::default(),
            mix_text: "pcmu=100".into(),
            cps: args.cps,
            hold_secs: args.hold_secs,
            max_seconds: seconds,
            pps: args.pps.max(1),
            payload: args.payload.max(crate::wire::PROBE_LEN),
            threads: args.threads.max(1),
            step_timeout,
            pin_cpu: args.pin(),
            name: format!("{}-wavegate", args.name),
            far_codec: Some(AudioCodec::Pcmu),
            peers: sip.peers.clone(),
            incoming: None,
        };
        eprintln!("versus-janus: Wavegate leg, {} calls", args.calls);
        let mut report = runtime.block_on(crate::call::run(plan))?;
        judge(&mut report, &args);
        legs.push(Leg {
            gateway: "wavegate".into(),
            report,
        });
    }
    if args.only != Some(Only::Wavegate) {
        let ws_port = match args.janus_ws_port {
            Some(p) => p,
            None => free_tcp_in(8300, 8399)?,
        };
        let plan = JanusPlan {
            server: JanusConfig {
                dir: work.join("janus"),
                ws_port,
                ports,
                log_level: args.janus_log_level,
                ice_ip: ICE_IP.into(),
            },
            call: JanusCallPlan {
                ws_port,
                uri: sip.callee.clone(),
                // Guests: Wavegate's sessions do not REGISTER for outgoing calls either; both
                // gateways send their INVITEs straight to Kamailio.
                domain: "127.0.0.1".into(),
                browser_ip: if std::env::var_os(NETNS_MARK).is_some() {
                    ICE_IP.parse()?
                } else {
                    std::net::Ipv4Addr::LOCALHOST
                },
                hold_secs: args.hold_secs,
                step_timeout,
            },
            codecs: codecs.clone(),
            mix_text: "pcmu=100".into(),
            cps: args.cps,
            max_seconds: seconds,
            pps: args.pps.max(1),
            payload: args.payload.max(crate::wire::PROBE_LEN),
            threads: args.threads.max(1),
            pin_cpu: args.pin(),
            name: format!("{}-janus", args.name),
            peers: sip.peers.clone(),
        };
        eprintln!("versus-janus: Janus leg, {} calls", args.calls);
        let mut report = runtime.block_on(crate::janus::run(plan))?;
        judge(&mut report, &args);
        legs.push(Leg {
            gateway: "janus".into(),
            report,
        });
    }
    drop(sip);
    let report = VersusReport::new(args.name.clone(), target_text, legs, args.min_ratio);
    std::fs::create_dir_all(&args.out)?;
    let json = args.out.join(format!("{}.json", args.name));
    let md = args.out.join(format!("{}.md", args.name));
    let svg = args.out.join(format!("{}.svg", args.name));
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(&md, report.markdown())?;
    std::fs::write(&svg, report.svg()?)?;
    for l in &report.legs {
        let r = &l.report;
        let failed: u64 = r.failures_by_cause.iter().map(|(_, n)| n).sum();
        eprintln!(
            "{}: {} of {} established (peak {}), {failed} failed; setup p50 {:.1} ms p99 {:.1} ms; loss {:.6}; {:.4} CPU s/call; SIP target {:.2} CPU s (not counted)",
            l.gateway,
            r.established,
            r.placed,
            r.peak_concurrent,
            r.setup.p50_ms,
            r.setup.p99_ms,
            r.loss_ratio,
            r.cpu_secs_per_call,
            l.target_cpu_secs()
        );
        for (cause, n) in &r.failures_by_cause {
            eprintln!("  {} failed x{n}: {cause}", l.gateway);
        }
    }
    if let Some(r) = report.cpu_ratio {
        eprintln!(
            "Janus / Wavegate CPU s per call: {r:.2}x (target {}x)",
            args.min_ratio
        );
    }
    eprintln!("-> {}, {}, {}", json.display(), md.display(), svg.display());
    for f in &report.failures {
        eprintln!("FAILED: {f}");
    }
    if report.failures.is_empty() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!("logs kept in {}", work.display());
    }
    Ok(report.failures.is_empty())
}
