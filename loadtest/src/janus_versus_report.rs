//! The `versus-janus` report: Wavegate's and Janus' call reports side by side, the CPU-seconds
//! ratio, the SIP target's own CPU (kept out of both), as JSON, Markdown and one SVG chart
//! (each gateway's CPU over the run and its calls up). Pure: reports in, text out.

use plotters::prelude::*;
use serde::Serialize;

use crate::call_report::CallReport;

/// One gateway's leg.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leg {
    /// `wavegate` or `janus`.
    pub gateway: String,
    /// Its call report (processes: Wavegate's two, or the one janus process; `peers`: the
    /// SIP target's processes over the same leg, counted apart).
    pub report: CallReport,
}

impl Leg {
    /// CPU seconds of the SIP target (SIPp, Kamailio) during this leg.
    pub fn target_cpu_secs(&self) -> f64 {
        self.report.peers.iter().map(|p| p.cpu_secs).sum()
    }
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersusReport {
    /// Report name.
    pub name: String,
    /// How the SIP target was reached (e.g. `SIPp UAS -rtp_echo behind Kamailio`).
    pub sip_target: String,
    /// The legs, in the order run.
    pub legs: Vec<Leg>,
    /// Janus' CPU seconds per call / Wavegate's (None unless both established calls).
    pub cpu_ratio: Option<f64>,
    /// The acceptance target of that ratio.
    pub target_ratio: f64,
    /// Thresholds missed; empty = passed.
    pub failures: Vec<String>,
}

impl VersusReport {
    /// Builds the comparison, computes the ratio and judges it (legs judged already).
    pub fn new(
        name: String,
        sip_target: String,
        legs: Vec<Leg>,
        target_ratio: f64,
    ) -> VersusReport {
        let per_call = |g: &str| {
            legs.iter()
                .find(|l| l.gateway == g)
                .filter(|l| l.report.established > 0)
                .map(|l| l.report.cpu_secs_per_call)
        };
        let cpu_ratio = match (per_call("wavegate"), per_call("janus")) {
            (Some(w), Some(j)) if w > 0.0 => Some(j / w),
            _ => None,
        };
        let mut failures = Vec::new();
        for l in &legs {
            for f in &l.report.failures {
                failures.push(format!("{}: {f}", l.gateway));
            }
        }
        if legs.len() == 2 {
            match cpu_ratio {
                Some(r) if r < target_ratio => failures.push(format!(
                    "Janus uses {r:.2}x Wavegate's CPU per call (target {target_ratio}x)"
                )),
                None => failures.push("no CPU ratio: a gateway established no call".into()),
                _ => {}
            }
        }
        VersusReport {
            name,
            sip_target,
            legs,
            cpu_ratio,
            target_ratio,
            failures,
        }
    }

    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let Some(first) = self.legs.first() else {
            return format!("# {}\n\nNo leg ran.\n", self.name);
        };
        let c = &first.report.config;
        let mut s = format!(
            "# Wavegate versus Janus: browser -> SIP calls\n\n\
             The same call load through each gateway in turn, on the same machine, against the \
             same SIP target ({target}): {calls} simulated browsers (str0m: ICE, DTLS, SRTP), \
             placed at {cps} calls/s, each offering PCMU only (so neither gateway transcodes), \
             sending {pps} probe packets/s of {payload} bytes for {hold} s once the call is \
             answered, measuring the echo, then hanging up. Wavegate: its WebSocket API, both \
             processes (`wavegate` and `wavegate-mediaplane`) counted. Janus 1.1.2 (Debian): \
             its SIP plugin over its WebSocket transport, the `janus` process counted. The SIP \
             target's CPU is reported apart and counted in neither.\n\n",
            target = self.sip_target,
            calls = c.calls,
            cps = c.cps,
            pps = c.pps,
            payload = c.payload,
            hold = c.hold_secs,
        );
        let m = &first.report.machine;
        s += &format!(
            "Machine: {} CPU(s), {}, {}. Build: {}.\n\n",
            m.nproc, m.cpu_model, m.kernel, first.report.build
        );
        let verdict = if self.failures.is_empty() {
            "passed".to_owned()
        } else {
            format!("**missed**: {}", self.failures.join("; "))
        };
        match self.cpu_ratio {
            Some(r) => {
                s += &format!(
                    "**Janus uses {r:.2}x the CPU seconds per call of Wavegate** (target: at \
                     least {}x). Verdict: {verdict}.\n\n",
                    self.target_ratio
                )
            }
            None => {
                s += &format!(
                    "No ratio (a leg did not run or established no call). Verdict: {verdict}.\n\n"
                )
            }
        }
        s += "| figure |";
        for l in &self.legs {
            s += &format!(" {} |", l.gateway);
        }
        s += "\n|---|";
        s += &"---|".repeat(self.legs.len());
        s += "\n";
        let rows: Vec<(&str, Box<dyn Fn(&Leg) -> String>)> = vec![
            (
                "CPU seconds per call",
                Box::new(|l| format!("{:.4}", l.report.cpu_secs_per_call)),
            ),
            (
                "CPU seconds, by process",
                Box::new(|l| {
                    l.report
                        .processes
                        .iter()
                        .map(|p| format!("{} {:.2}", p.process, p.cpu_secs))
                        .collect::<Vec<_>>()
                        .join(", ")
                }),
            ),
            (
                "placed / established / hung up cleanly",
                Box::new(|l| {
                    format!(
                        "{} / {} / {}",
                        l.report.placed, l.report.established, l.report.finished
                    )
                }),
            ),
            (
                "failed",
                Box::new(|l| {
                    l.report
                        .failures_by_cause
                        .iter()
                        .map(|(_, n)| n)
                        .sum::<u64>()
                        .to_string()
                }),
            ),
            (
                "peak concurrent",
                Box::new(|l| l.report.peak_concurrent.to_string()),
            ),
            (
                "setup p50 / p99 ms",
                Box::new(|l| {
                    format!(
                        "{:.1} / {:.1}",
                        l.report.setup.p50_ms, l.report.setup.p99_ms
                    )
                }),
            ),
            (
                "media connected (ICE+DTLS) p50 / p99 ms",
                Box::new(|l| {
                    format!(
                        "{:.1} / {:.1}",
                        l.report.media_connect.p50_ms, l.report.media_connect.p99_ms
                    )
                }),
            ),
            (
                "RTT p50 / p99 ms",
                Box::new(|l| {
                    l.report.codecs.first().map_or("-".into(), |f| {
                        format!("{:.2} / {:.2}", f.rtt.p50_ms, f.rtt.p99_ms)
                    })
                }),
            ),
            ("loss", Box::new(|l| format!("{:.6}", l.report.loss_ratio))),
            (
                "MOS mean",
                Box::new(|l| {
                    l.report
                        .codecs
                        .first()
                        .map_or("-".into(), |f| format!("{:.2}", f.mos_mean))
                }),
            ),
            (
                "RSS idle -> peak KiB",
                Box::new(|l| {
                    l.report
                        .processes
                        .iter()
                        .map(|p| format!("{} {} -> {}", p.process, p.rss_idle_kib, p.rss_peak_kib))
                        .collect::<Vec<_>>()
                        .join(", ")
                }),
            ),
            (
                "RSS per concurrent call KiB",
                Box::new(|l| format!("{:.1}", l.report.rss_per_call_kib)),
            ),
            (
                "SIP target CPU s (not counted)",
                Box::new(|l| {
                    let names: Vec<&str> =
                        l.report.peers.iter().map(|p| p.process.as_str()).collect();
                    format!("{:.2} ({})", l.target_cpu_secs(), names.join(", "))
                }),
            ),
            (
                "load average before -> after",
                Box::new(|l| {
                    format!(
                        "{} -> {}",
                        l.report.machine.loadavg_before, l.report.machine.loadavg_after
                    )
                }),
            ),
            (
                "run seconds",
                Box::new(|l| format!("{:.1}", l.report.run_secs)),
            ),
        ];
        for (name, f) in rows {
            s += &format!("| {name} |");
            for l in &self.legs {
                s += &format!(" {} |", f(l));
            }
            s += "\n";
        }
        for l in &self.legs {
            if !l.report.failures_by_cause.is_empty() {
                s += &format!(
                    "\n{} failures by cause:\n\n| cause | calls |\n|---|---|\n",
                    l.gateway
                );
                for (cause, n) in &l.report.failures_by_cause {
                    s += &format!("| {cause} | {n} |\n");
                }
            }
        }
        s += &format!(
            "\nCPU is `utime + stime` from /proc over each leg, from just before the first call to \
             just after the last hangup (idle time between calls included for both). Chart: \
             [{n}.svg]({n}.svg) (each gateway's CPU and calls up over its leg).\n",
            n = self.name
        );
        s
    }

    /// Each gateway's CPU (percent of one core) and calls up, over time since its first call.
    pub fn svg(&self) -> Result<String, String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (800, 450)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let cpu =
                |s: &crate::call_report::Sample| (s.signalling_cpu + s.mediaplane_cpu) * 100.0;
            let samples = self.legs.iter().flat_map(|l| l.report.timeline.iter());
            let tmax = samples.clone().map(|s| s.t_secs).fold(1.0, f64::max);
            let ymax = samples
                .map(|s| cpu(s).max(s.active as f64))
                .fold(10.0, f64::max)
                * 1.1;
            let caption = match self.cpu_ratio {
                Some(r) => format!("{}: Janus {r:.2}x Wavegate's CPU s per call", self.name),
                None => self.name.clone(),
            };
            let mut chart = ChartBuilder::on(&root)
                .caption(caption, ("sans-serif", 16))
                .margin(15)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d(0f64..tmax, 0f64..ymax)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("seconds since the leg's first call")
                .y_desc("CPU % of one core / calls up")
                .draw()
                .map_err(|e| e.to_string())?;
            let colours = [BLUE, RED, GREEN, MAGENTA];
            for (k, l) in self.legs.iter().enumerate() {
                let colour = colours[k % colours.len()];
                let t = &l.report.timeline;
                chart
                    .draw_series(LineSeries::new(
                        t.iter().map(|s| (s.t_secs, cpu(s))),
                        colour.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?
                    .label(format!("{} CPU %", l.gateway))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
                chart
                    .draw_series(LineSeries::new(
                        t.iter().map(|s| (s.t_secs, s.active as f64)),
                        colour.stroke_width(1),
                    ))
                    .map_err(|e| e.to_string())?
                    .label(format!("{} calls up", l.gateway))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(1))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call_report::{ProcessFigures, Sample};

    fn leg(gateway: &str, established: u64, cpu_per_call: f64) -> Leg {
        Leg {
            gateway: gateway.into(),
            report: CallReport {
                name: gateway.into(),
                established,
                placed: established,
                cpu_secs_per_call: cpu_per_call,
                processes: vec![ProcessFigures {
                    process: gateway.into(),
                    cpu_secs: cpu_per_call * established as f64,
                    rss_idle_kib: 1000,
                    rss_peak_kib: 2000,
                }],
                timeline: vec![Sample {
                    t_secs: 1.0,
                    active: 3,
                    placed: 3,
                    signalling_cpu: 0.2,
                    mediaplane_cpu: 0.1,
                    rss_kib: 5,
                    peers_cpu: 0.1,
                }],
                peers: vec![ProcessFigures {
                    process: "sipp".into(),
                    cpu_secs: 0.5,
                    rss_idle_kib: 1,
                    rss_peak_kib: 1,
                }],
                ..CallReport::default()
            },
        }
    }

    #[test]
    fn ratio_is_janus_over_wavegate_and_judged() {
        let r = VersusReport::new(
            "v".into(),
            "t".into(),
            vec![leg("wavegate", 10, 0.05), leg("janus", 10, 0.2)],
            2.0,
        );
        assert!((r.cpu_ratio.unwrap() - 4.0).abs() < 1e-9);
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        let md = r.markdown();
        assert!(md.contains("4.00x"), "{md}");
        assert!(
            md.contains("| CPU seconds per call | 0.0500 | 0.2000 |"),
            "{md}"
        );
        assert!(r.svg().unwrap().contains("<svg"));

        let short = VersusReport::new(
            "v".into(),
            "t".into(),
            vec![leg("wavegate", 10, 0.1), leg("janus", 10, 0.15)],
            2.0,
        );
        assert_eq!(short.failures.len(), 1, "{:?}", short.failures);
        let none = VersusReport::new(
            "v".into(),
            "t".into(),
            vec![leg("wavegate", 10, 0.1), leg("janus", 0, 0.0)],
            2.0,
        );
        assert_eq!(none.cpu_ratio, None);
        assert_eq!(none.failures.len(), 1);
        // One leg alone: no ratio and nothing to judge.
        let one = VersusReport::new("v".into(), "t".into(), vec![leg("janus", 5, 0.2)], 2.0);
        assert_eq!((one.cpu_ratio, one.failures.len()), (None, 0));
    }
}
