//! The `versus-rtpengine` report: our media plane and rtpengine under the same load, run after
//! run in the same minutes; per-run figures, the spread over the repeats, the ratio of CPU per
//! relayed packet (rtpengine / ours), the verdict, Markdown and an SVG bar chart. No I/O.
//!
//! Invariants: a ratio is taken within one repeat (the two runs closest in time), then summarised
//! over repeats; a run with nothing relayed yields no ratio rather than an infinite one. A run
//! that measured but lost packets keeps its CPU figure (per packet actually relayed) and fails
//! the report.

use plotters::prelude::*;
use serde::Serialize;

use crate::report::{Machine, Report};
use crate::webrtc_report::WebRtcReport;

/// The issue's target: at least this many times fewer CPU µs per packet than rtpengine.
pub const TARGET_RATIO: f64 = 2.5;
/// rtpengine userspace as measured for the issue on this VM, plain RTP <-> RTP, µs/packet.
pub const ISSUE_RTPENGINE_PLAIN_US: f64 = 7.5;
/// The same for SDES-SRTP <-> RTP, µs/packet.
pub const ISSUE_RTPENGINE_SRTP_US: f64 = 8.8;

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("chart: {0}")]
pub struct SvgError(String);

/// What was relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Plain RTP <-> RTP relay sessions (the `relay` scenario).
    Plain,
    /// DTLS-SRTP browsers (str0m, ICE) <-> plain RTP echo (the `webrtc` scenario).
    Webrtc,
}

/// Which server a run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    /// Our media plane, one shard.
    Wavegate,
    /// rtpengine, userspace.
    Rtpengine,
}

impl Server {
    fn label(self) -> &'static str {
        match self {
            Server::Wavegate => "wavegate-mediaplane",
            Server::Rtpengine => "rtpengine",
        }
    }
}

/// The figures of one run of one server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunFigures {
    /// 1-based repeat.
    pub repeat: u32,
    /// The server.
    pub server: Server,
    /// Load averages around the run.
    pub loadavg_before: String,
    pub loadavg_after: String,
    /// Server CPU (all threads) per relayed packet in the window.
    pub cpu_us_per_packet: f64,
    /// Server CPU as a share of one core.
    pub cpu_percent_of_core: f64,
    /// Packets relayed per second in the window.
    pub packets_per_sec: f64,
    /// Packets sent into the server (both directions / both crossings).
    pub sent: u64,
    /// Of those, never received.
    pub lost: u64,
    /// `lost / sent`.
    pub loss_ratio: f64,
    /// Latency p50 / p99, µs (added latency for plain; round trip for webrtc).
    pub p50_us: f64,
    pub p99_us: f64,
    /// Server RSS growth per stream or call, KiB.
    pub rss_per_stream_kib: f64,
    /// Time to set every session up, ms.
    pub setup_ms: f64,
    /// What went wrong in this run (empty: passed).
    pub failures: Vec<String>,
}

impl RunFigures {
    /// From a judged `relay` report.
    pub fn from_relay(repeat: u32, server: Server, r: &Report) -> Self {
        Self {
            repeat,
            server,
            loadavg_before: r.machine.loadavg_before.clone(),
            loadavg_after: r.machine.loadavg_after.clone(),
            cpu_us_per_packet: r.resources.cpu_us_per_packet,
            cpu_percent_of_core: r.resources.cpu_percent_of_core,
            packets_per_sec: r.resources.packets_per_sec,
            sent: r.a_to_b.sent + r.b_to_a.sent,
            lost: r.a_to_b.lost + r.b_to_a.lost,
            loss_ratio: r.loss_ratio,
            p50_us: r.latency.p50_us,
            p99_us: r.latency.p99_us,
            rss_per_stream_kib: r.resources.rss_per_stream_kib,
            setup_ms: r.setup_ms,
            failures: r.failures.clone(),
        }
    }

    /// From a judged `webrtc` report.
    pub fn from_webrtc(repeat: u32, server: Server, r: &WebRtcReport) -> Self {
        Self {
            repeat,
            server,
            loadavg_before: r.machine.loadavg_before.clone(),
            loadavg_after: r.machine.loadavg_after.clone(),
            cpu_us_per_packet: r.resources.cpu_us_per_packet,
            cpu_percent_of_core: r.resources.cpu_percent_of_core,
            packets_per_sec: r.resources.packets_per_sec,
            sent: r.browser_to_sip.sent + r.sip_to_browser.sent,
            lost: r.browser_to_sip.lost + r.sip_to_browser.lost,
            loss_ratio: r.loss_ratio,
            p50_us: r.round_trip.p50_us,
            p99_us: r.round_trip.p99_us,
            rss_per_stream_kib: r.resources.rss_per_stream_kib,
            setup_ms: r.setup_ms,
            failures: r.failures.clone(),
        }
    }

    /// A run the harness could not finish.
    pub fn broken(repeat: u32, server: Server, why: String) -> Self {
        Self {
            repeat,
            server,
            loadavg_before: String::new(),
            loadavg_after: String::new(),
            cpu_us_per_packet: 0.0,
            cpu_percent_of_core: 0.0,
            packets_per_sec: 0.0,
            sent: 0,
            lost: 0,
            loss_ratio: 0.0,
            p50_us: 0.0,
            p99_us: 0.0,
            rss_per_stream_kib: 0.0,
            setup_ms: 0.0,
            failures: vec![format!("could not run: {why}")],
        }
    }
}

/// Median, minimum and maximum of a few values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// How many values.
    pub n: usize,
}

impl Spread {
    /// The spread of `values` (all zero when empty).
    pub fn of(values: &[f64]) -> Spread {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            return Spread::default();
        }
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        }
    }
}

/// What was asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VersusConfig {
    /// Streams (plain) or calls (webrtc).
    pub streams: u32,
    /// Packets per second per stream and direction.
    pub pps: u32,
    pub seconds: u32,
    pub warmup_secs: u32,
    pub payload: usize,
    pub repeats: u32,
    /// RTP port range both servers used (one after the other).
    pub rtp_ports: String,
    /// CPU both servers were pinned to; the load generator's CPU.
    pub server_cpu: String,
    pub generator_cpu: String,
    pub rtpengine_version: String,
    pub rtpengine_args: Vec<String>,
    pub mediaplane_args: Vec<String>,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersusReport {
    pub name: String,
    pub mode: Mode,
    pub started_unix: u64,
    /// The machine, with the load averages at the start and the end of the whole comparison.
    pub machine: Machine,
    pub config: VersusConfig,
    /// Every run in the order it ran.
    pub runs: Vec<RunFigures>,
    /// CPU µs per packet over the repeats.
    pub wavegate_cpu_us: Spread,
    pub rtpengine_cpu_us: Spread,
    /// rtpengine's CPU per packet over ours, per repeat.
    pub ratio: Spread,
    pub target_ratio: f64,
    /// rtpengine's figure from the issue for this mode, µs/packet.
    pub issue_rtpengine_us: f64,
    /// Highest loss ratio allowed per run.
    pub max_loss: f64,
    /// Empty: every run ran and stayed within `max_loss`.
    pub failures: Vec<String>,
}

impl VersusReport {
    /// Summarises the runs and judges them.
    pub fn new(
        name: String,
        mode: Mode,
        started_unix: u64,
        machine: Machine,
        config: VersusConfig,
        runs: Vec<RunFigures>,
        max_loss: f64,
    ) -> Self {
        let cpu = |server: Server| -> Vec<f64> {
            runs.iter()
                .filter(|r| r.server == server && r.cpu_us_per_packet > 0.0)
                .map(|r| r.cpu_us_per_packet)
                .collect()
        };
        let ratios: Vec<f64> = (1..=config.repeats)
            .filter_map(|k| {
                let of = |s: Server| {
                    runs.iter()
                        .find(|r| r.repeat == k && r.server == s)
                        .map(|r| r.cpu_us_per_packet)
                        .filter(|&us| us > 0.0)
                };
                Some(of(Server::Rtpengine)? / of(Server::Wavegate)?)
            })
            .collect();
        let mut failures = Vec::new();
        for r in &runs {
            for f in &r.failures {
                failures.push(format!("run {} {}: {f}", r.repeat, r.server.label()));
            }
            if r.failures.is_empty() && r.sent == 0 {
                failures.push(format!(
                    "run {} {}: nothing sent",
                    r.repeat,
                    r.server.label()
                ));
            }
        }
        if ratios.is_empty() {
            failures.push("no repeat measured both servers".into());
        }
        Self {
            name,
            mode,
            started_unix,
            machine,
            wavegate_cpu_us: Spread::of(&cpu(Server::Wavegate)),
            rtpengine_cpu_us: Spread::of(&cpu(Server::Rtpengine)),
            ratio: Spread::of(&ratios),
            target_ratio: TARGET_RATIO,
            issue_rtpengine_us: match mode {
                Mode::Plain => ISSUE_RTPENGINE_PLAIN_US,
                Mode::Webrtc => ISSUE_RTPENGINE_SRTP_US,
            },
            config,
            runs,
            max_loss,
            failures,
        }
    }

    fn what(&self) -> &'static str {
        match self.mode {
            Mode::Plain => "plain RTP <-> RTP relay sessions",
            Mode::Webrtc => "DTLS-SRTP (str0m browsers, ICE) <-> plain RTP calls",
        }
    }

    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let c = &self.config;
        let m = &self.machine;
        let unit = match self.mode {
            Mode::Plain => "streams",
            Mode::Webrtc => "calls",
        };
        let mut s = format!(
            "# {}: our media plane versus rtpengine\n\n\
             {} {unit} of {}, {} packets/s per {} and direction, {} s measured after {} s of \
             warm-up, {} repeats; in each repeat both servers ran one after the other under the \
             same load (the order alternates between repeats).\n\n\
             - Machine: {} x {}, {}; load average at the start {} and at the end {}.\n\
             - Both servers pinned to CPU {} (ours: one shard; rtpengine: `--num-threads=1` and \
             every thread on that CPU); the load generator on CPU {}.\n\
             - rtpengine: {} in userspace: `rtpengine {}`.\n\
             - Ours: `wavegate-mediaplane {}`.\n\
             - CPU: utime + stime of the whole server process (all threads) from /proc over the \
             window, divided by the packets relayed in it; loss counted at the receivers.\n\n",
            self.name,
            c.streams,
            self.what(),
            c.pps,
            if self.mode == Mode::Plain {
                "stream"
            } else {
                "call"
            },
            c.seconds,
            c.warmup_secs,
            c.repeats,
            m.nproc,
            m.cpu_model,
            m.kernel,
            m.loadavg_before,
            m.loadavg_after,
            c.server_cpu,
            c.generator_cpu,
            c.rtpengine_version,
            c.rtpengine_args.join(" "),
            c.mediaplane_args.join(" "),
        );
        s += &format!(
            "## Result\n\n\
             | | CPU µs per relayed packet, median (min-max) |\n|---|---|\n\
             | wavegate-mediaplane | **{:.2}** ({:.2}-{:.2}) |\n\
             | rtpengine | **{:.2}** ({:.2}-{:.2}) |\n\
             | ratio rtpengine / ours, per repeat | **{:.2}x** ({:.2}-{:.2}x); target >= {:.1}x: {} |\n\n\
             The issue measured rtpengine at {:.1} µs per packet for this kind of load.\n\n",
            self.wavegate_cpu_us.median,
            self.wavegate_cpu_us.min,
            self.wavegate_cpu_us.max,
            self.rtpengine_cpu_us.median,
            self.rtpengine_cpu_us.min,
            self.rtpengine_cpu_us.max,
            self.ratio.median,
            self.ratio.min,
            self.ratio.max,
            self.target_ratio,
            if self.ratio.n > 0 && self.ratio.median >= self.target_ratio {
                "met"
            } else {
                "**not met**"
            },
            self.issue_rtpengine_us,
        );
        let lat = match self.mode {
            Mode::Plain => "added latency",
            Mode::Webrtc => "round trip",
        };
        s += &format!(
            "## Every run\n\n\
             | repeat | server | load avg before / after | CPU µs/packet | % of a core | packets/s | \
             sent | lost | {lat} p50 / p99 µs | RSS KiB per {} | setup ms |\n\
             |---|---|---|---|---|---|---|---|---|---|---|\n",
            if self.mode == Mode::Plain {
                "stream"
            } else {
                "call"
            }
        );
        for r in &self.runs {
            s += &format!(
                "| {} | {} | {} / {} | {:.2} | {:.1} | {:.0} | {} | {} | {:.0} / {:.0} | {:.1} | {:.0} |\n",
                r.repeat,
                r.server.label(),
                r.loadavg_before,
                r.loadavg_after,
                r.cpu_us_per_packet,
                r.cpu_percent_of_core,
                r.packets_per_sec,
                r.sent,
                r.lost,
                r.p50_us,
                r.p99_us,
                r.rss_per_stream_kib,
                r.setup_ms
            );
        }
        s += "\n## Verdict\n\n";
        if self.failures.is_empty() {
            s += &format!(
                "Every run ran with loss within {} per run.\n",
                self.max_loss
            );
        } else {
            for f in &self.failures {
                s += &format!("- FAILED: {f}\n");
            }
        }
        s
    }

    /// A bar chart: CPU µs per packet of both servers in every repeat.
    pub fn svg(&self) -> Result<String, SvgError> {
        let err = |e: &dyn std::fmt::Display| SvgError(e.to_string());
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (800, 450)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| err(&e))?;
            let repeats = self.config.repeats.max(1);
            let ymax = self
                .runs
                .iter()
                .map(|r| r.cpu_us_per_packet)
                .fold(1.0f64, f64::max)
                * 1.2;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    format!(
                        "{}: CPU per relayed packet, {} {}; rtpengine / ours = {:.2}x (median)",
                        self.name,
                        self.config.streams,
                        match self.mode {
                            Mode::Plain => "plain RTP streams",
                            Mode::Webrtc => "DTLS-SRTP <-> RTP calls",
                        },
                        self.ratio.median
                    ),
                    ("sans-serif", 15),
                )
                .margin(15)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d(0f64..f64::from(repeats), 0f64..ymax)
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(repeats as usize)
                .x_label_formatter(&|x| format!("repeat {}", x.floor() as u32 + 1))
                .x_desc("repeat (both servers in the same minutes)")
                .y_desc("CPU µs per relayed packet")
                .draw()
                .map_err(|e| err(&e))?;
            for (server, offset, color) in [
                (Server::Wavegate, 0.15, BLUE),
                (Server::Rtpengine, 0.5, RED),
            ] {
                let bars = self.runs.iter().filter(|r| r.server == server).map(|r| {
                    let x0 = f64::from(r.repeat - 1) + offset;
                    Rectangle::new(
                        [(x0, 0.0), (x0 + 0.33, r.cpu_us_per_packet)],
                        color.filled(),
                    )
                });
                chart
                    .draw_series(bars)
                    .map_err(|e| err(&e))?
                    .label(server.label())
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(&e))?;
            root.present().map_err(|e| err(&e))?;
        }
        Ok(svg)
    }
}

#[cfg(test)]
#[path = "rtpengine_report_tests.rs"]
mod tests;
