//! The `call` scenario's arithmetic and report: the codec mix, percentiles, RFC 3550 jitter,
//! the E-model MOS estimate, the verdict, JSON and Markdown. No I/O; the figures come from
//! [`crate::call::run`].
//!
//! E-model (ITU-T G.107, simplified to delay and loss; every other impairment at its default):
//! `R = 93.2 - Id - Ie_eff`, `Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)` with `d` the
//! one-way mouth-to-ear delay in ms, `Ie_eff = Ie + (95 - Ie) Ppl / (Ppl + Bpl)` (random loss,
//! BurstR = 1) with `Ppl` in percent, and `MOS = 1 + 0.035 R + 7e-6 R (R - 60) (100 - R)`.
//! `d` is half the measured round trip plus the 20 ms frame plus a jitter buffer of twice the
//! measured jitter (at least 20 ms), as a browser would add. Codec constants: PCMU Ie = 0,
//! Bpl = 25.1 (G.113 Appendix I, with packet-loss concealment, which browsers do); Opus has
//! no G.113 entry: we take Ie = 0, Bpl = 20 (our assumption: on the narrowband R scale Opus
//! at 20 ms frames is at least as good as G.711 and its in-band concealment about as robust).

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::browser::AudioCodec;
use crate::report::Machine;
use crate::sipp_audio::AudioFigures;
use crate::video::VideoCall;
use crate::video_report::VideoFigures;

/// One call's media, measured by its browser thread.
#[derive(Debug)]
pub struct CallMedia {
    /// The browser's codec.
    pub codec: AudioCodec,
    /// The media plane transcodes this call (its figures are in `audio`).
    pub transcoded: bool,
    /// Packets sent.
    pub sent: u64,
    /// Probes echoed back (passthrough calls).
    pub received: u64,
    /// Probe round trips, µs.
    pub rtt_us: Histogram<u64>,
    /// Probe jitter.
    pub jitter: Jitter,
    /// `call` sent -> connected, µs (None: never connected).
    pub connect_us: Option<u64>,
    /// Transcoded calls: the decoded audio's figures.
    pub audio: Option<AudioFigures>,
    /// `vp8` calls: the video's figures.
    pub video: Option<VideoCall>,
}

/// Nearest-rank percentile of sorted values (`q` in 0..=1); 0 for no values.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// RFC 3550 interarrival jitter, in ns: fed each packet's transit time (arrival - send).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Jitter {
    last_transit: Option<i64>,
    /// Current estimate, ns.
    pub jitter_ns: f64,
}

impl Jitter {
    /// One more packet.
    pub fn observe(&mut self, transit_ns: u64) {
        let t = transit_ns.min(i64::MAX as u64) as i64;
        if let Some(last) = self.last_transit {
            let d = (t - last).unsigned_abs() as f64;
            self.jitter_ns += (d - self.jitter_ns) / 16.0;
        }
        self.last_transit = Some(t);
    }
}

/// G.107 constants of a codec: equipment impairment and packet-loss robustness.
pub fn codec_impairment(codec: AudioCodec) -> (f64, f64) {
    match codec {
        AudioCodec::Pcmu => (0.0, 25.1),
        AudioCodec::Opus => (0.0, 20.0),
    }
}

/// One-way mouth-to-ear delay estimate, ms (see the module doc).
pub fn one_way_delay_ms(rtt_ms: f64, jitter_ms: f64) -> f64 {
    rtt_ms / 2.0 + 20.0 + (2.0 * jitter_ms).max(20.0)
}

/// The E-model's R factor from one-way delay (ms), loss (0..1) and codec constants.
pub fn r_factor(delay_ms: f64, loss: f64, ie: f64, bpl: f64) -> f64 {
    let d = delay_ms.max(0.0);
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    let ppl = loss.clamp(0.0, 1.0) * 100.0;
    let ie_eff = ie + (95.0 - ie) * ppl / (ppl + bpl);
    93.2 - id - ie_eff
}

/// MOS (conversational quality, 1..4.5) from R.
pub fn mos(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)
    }
}

/// MOS of one call.
pub fn call_mos(codec: AudioCodec, rtt_ms: f64, jitter_ms: f64, loss: f64) -> f64 {
    let (ie, bpl) = codec_impairment(codec);
    mos(r_factor(one_way_delay_ms(rtt_ms, jitter_ms), loss, ie, bpl))
}

/// p50, p99 and max of a set of values, in ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Spread {
    /// Values counted.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Spread {
    /// From unsorted values in µs.
    pub fn from_us(values: &[u64]) -> Spread {
        let mut v = values.to_vec();
        v.sort_unstable();
        Spread {
            count: v.len(),
            p50_ms: percentile(&v, 0.50) as f64 / 1000.0,
            p99_ms: percentile(&v, 0.99) as f64 / 1000.0,
            max_ms: v.last().copied().unwrap_or(0) as f64 / 1000.0,
        }
    }
}

/// Media figures of the calls of one codec.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CodecFigures {
    /// The browsers' codec.
    pub codec: String,
    /// Whether the media plane transcoded it (toward `echo`: never, the echo answers it).
    pub transcoded: bool,
    /// Calls of this codec that reached ESTABLISHED.
    pub calls: u64,
    /// Probe packets sent by the browsers.
    pub sent: u64,
    /// Probe packets echoed back to them.
    pub received: u64,
    /// `1 - received / sent` (saturating).
    pub loss_ratio: f64,
    /// Round trip browser -> media plane -> SIP side -> media plane -> browser.
    pub rtt: Spread,
    /// Mean of the calls' RFC 3550 jitter, ms.
    pub jitter_mean_ms: f64,
    /// Largest call jitter, ms.
    pub jitter_max_ms: f64,
    /// Mean, worst-call MOS estimate.
    pub mos_mean: f64,
    /// Worst call's MOS.
    pub mos_min: f64,
    /// How the round trip was measured: `probe` (payload echoed byte for byte) or `marker`
    /// (transcoded calls: a loud burst in real Opus, timed on its decoded return).
    pub rtt_method: String,
    /// Transcoded calls: markers sent and not back within 800 ms.
    pub markers_sent: u64,
    /// See `markers_sent`.
    pub markers_missed: u64,
}

/// Failures counted by cause, most frequent first; `unfinished` calls count as the run
/// deadline.
pub fn by_cause(failures: impl Iterator<Item = String>, unfinished: u64) -> Vec<(String, u64)> {
    let mut causes: std::collections::HashMap<String, u64> = Default::default();
    for f in failures {
        *causes.entry(f).or_default() += 1;
    }
    if unfinished > 0 {
        *causes.entry("run deadline (--seconds)".into()).or_default() += unfinished;
    }
    let mut v: Vec<(String, u64)> = causes.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// Share of the calls that sent media which the media plane transcoded.
pub fn transcoded_share(media: &[CallMedia]) -> f64 {
    let with_media = media.iter().filter(|m| m.sent > 0);
    let transcoded = with_media.clone().filter(|m| m.transcoded).count();
    transcoded as f64 / with_media.count().max(1) as f64
}

/// Media figures per (codec, transcoded) group, and all packets sent and received (for
/// transcoded calls "sent" is what the returning stream's sequence numbers say was sent).
pub fn codec_figures(media: &[CallMedia]) -> Result<(Vec<CodecFigures>, u64, u64), String> {
    let mut out = Vec::new();
    let (mut all_sent, mut all_received) = (0u64, 0u64);
    for codec in [AudioCodec::Pcmu, AudioCodec::Opus] {
        for transcoded in [false, true] {
            let of: Vec<&CallMedia> = media
                .iter()
                .filter(|m| m.codec == codec && m.transcoded == transcoded && m.sent > 0)
                .collect();
            if of.is_empty() {
                continue;
            }
            let mut rtt =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 2).map_err(|e| e.to_string())?;
            let (mut sent, mut received, mut markers, mut missed) = (0u64, 0u64, 0u64, 0u64);
            let (mut mos_sum, mut mos_min) = (0.0, f64::MAX);
            let (mut jit_sum, mut jit_max) = (0.0f64, 0.0f64);
            for m in &of {
                // One call's (sent, received, median RTT ms, jitter ms).
                let (s, r, rtt_ms, jitter_ms) = match &m.audio {
                    Some(a) => {
                        let mut v = a.rtt_us.clone();
                        v.sort_unstable();
                        for &x in &v {
                            let _ = rtt.record(x.clamp(1, 60_000_000));
                        }
                        markers += a.markers_sent;
                        missed += a.markers_missed;
                        // A call that got nothing back lost everything it sent.
                        let expected = if a.received == 0 { m.sent } else { a.expected };
                        let p50 = percentile(&v, 0.5) as f64 / 1000.0;
                        (
                            expected,
                            a.received.min(expected),
                            p50,
                            a.jitter.jitter_ns / 1e6,
                        )
                    }
                    None => {
                        rtt.add(&m.rtt_us).map_err(|e| e.to_string())?;
                        let p50 = m.rtt_us.value_at_quantile(0.5) as f64 / 1000.0;
                        (
                            m.sent,
                            m.received.min(m.sent),
                            p50,
                            m.jitter.jitter_ns / 1e6,
                        )
                    }
                };
                sent += s;
                received += r;
                let loss = if s == 0 {
                    0.0
                } else {
                    1.0 - r as f64 / s as f64
                };
                let mos = call_mos(codec, rtt_ms, jitter_ms, loss);
                mos_sum += mos;
                mos_min = mos_min.min(mos);
                jit_sum += jitter_ms;
                jit_max = jit_max.max(jitter_ms);
            }
            all_sent += sent;
            all_received += received;
            let n = of.len() as f64;
            out.push(CodecFigures {
                codec: format!("{codec:?}").to_lowercase(),
                transcoded,
                calls: of.len() as u64,
                sent,
                received,
                loss_ratio: if sent == 0 {
                    0.0
                } else {
                    1.0 - received as f64 / sent as f64
                },
                rtt: Spread {
                    count: rtt.len() as usize,
                    p50_ms: rtt.value_at_quantile(0.5) as f64 / 1000.0,
                    p99_ms: rtt.value_at_quantile(0.99) as f64 / 1000.0,
                    max_ms: rtt.max() as f64 / 1000.0,
                },
                jitter_mean_ms: jit_sum / n,
                jitter_max_ms: jit_max,
                mos_mean: mos_sum / n,
                mos_min,
                rtt_method: if transcoded { "marker" } else { "probe" }.into(),
                markers_sent: markers,
                markers_missed: missed,
            });
        }
    }
    Ok((out, all_sent, all_received))
}

/// CPU and memory of one server process.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProcessFigures {
    /// `wavegate` or `wavegate-mediaplane`.
    pub process: String,
    /// CPU seconds (user + system) from idle (after /health) to after the last hangup.
    pub cpu_secs: f64,
    /// RSS when idle, KiB.
    pub rss_idle_kib: u64,
    /// Highest RSS sampled, KiB.
    pub rss_peak_kib: u64,
}

/// One second of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the first call was placed.
    pub t_secs: f64,
    /// Calls ESTABLISHED and not yet hung up.
    pub active: u64,
    /// Calls placed so far.
    pub placed: u64,
    /// Signalling process CPU in the last interval, share of one core.
    pub signalling_cpu: f64,
    /// Media-plane CPU in the last interval, share of one core.
    pub mediaplane_cpu: f64,
    /// RSS of both, KiB.
    pub rss_kib: u64,
    /// SIP peers' CPU (SIPp, Kamailio) in the last interval, share of one core.
    pub peers_cpu: f64,
}

/// What was asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CallConfig {
    /// `echo`.
    pub target: String,
    /// Calls placed.
    pub calls: u32,
    /// Calls placed per second.
    pub cps: f64,
    /// Seconds each call holds.
    pub hold_secs: u32,
    /// Bound of the whole run.
    pub max_seconds: u32,
    /// Codec mix as given.
    pub codec_mix: String,
    /// Packets per second per call, each way.
    pub pps: u32,
    /// Payload bytes.
    pub payload: usize,
    /// Server environment overrides.
    pub server_env: Vec<String>,
    /// `outgoing` (browsers call the target) or `incoming` (SIPp calls registered browsers).
    pub direction: String,
}

/// The report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CallReport {
    /// Report name.
    pub name: String,
    /// Unix seconds at start.
    pub started_unix: u64,
    /// The machine.
    pub machine: Machine,
    /// The build profile of this load generator (debug builds are for smoke runs only).
    pub build: String,
    /// What was asked.
    pub config: CallConfig,
    /// Calls placed.
    pub placed: u64,
    /// Calls that reached ESTABLISHED.
    pub established: u64,
    /// Calls ended by our hangup with FINISH.
    pub finished: u64,
    /// Failures by cause (e.g. `FAILED: Not Found`, `timeout waiting for ESTABLISHED`).
    pub failures_by_cause: Vec<(String, u64)>,
    /// Most calls up at once.
    pub peak_concurrent: u64,
    /// `call` sent -> `call ESTABLISHED` received.
    pub setup: Spread,
    /// `call` sent -> ICE + DTLS connected (media can flow).
    pub media_connect: Spread,
    /// Media per codec.
    pub codecs: Vec<CodecFigures>,
    /// Loss over every call.
    pub loss_ratio: f64,
    /// Server processes.
    pub processes: Vec<ProcessFigures>,
    /// CPU seconds of both processes per established call.
    pub cpu_secs_per_call: f64,
    /// (Peak RSS - idle RSS) of both, per peak concurrent call, KiB.
    pub rss_per_call_kib: f64,
    /// Wall seconds from the first call to the last hangup.
    pub run_secs: f64,
    /// The time line (for the chart).
    pub timeline: Vec<Sample>,
    /// Setup times in µs, for the chart (sorted).
    pub setup_us: Vec<u64>,
    /// Times the server's supervisor replaced a lost media plane during the run.
    pub mediaplane_restarts: u32,
    /// Share of established calls the media plane transcoded.
    pub transcoded_share: f64,
    /// SIP peers (SIPp, Kamailio and its workers): CPU and RSS, not counted per call.
    pub peers: Vec<ProcessFigures>,
    /// Incoming calls: SIPp's own INVITE -> 200 OK times (whole milliseconds).
    pub sip_setup: Option<Spread>,
    /// `vp8` calls' video (video_report.rs); None without video calls.
    pub video: Option<VideoFigures>,
    /// Thresholds missed; empty = passed.
    pub failures: Vec<String>,
}

impl CallReport {
    /// Checks the thresholds.
    pub fn judge(&mut self, max_loss: f64, max_setup_p99_ms: Option<f64>, max_failed: u64) {
        let failed: u64 = self.failures_by_cause.iter().map(|(_, n)| n).sum();
        if failed > max_failed {
            self.failures.push(format!(
                "{failed} calls failed (at most {max_failed} allowed)"
            ));
        }
        if self.mediaplane_restarts > 0 {
            self.failures.push(format!(
                "the media plane was lost and restarted {} time(s)",
                self.mediaplane_restarts
            ));
        }
        if self.established == 0 {
            self.failures.push("no call was established".into());
        }
        if self.loss_ratio > max_loss {
            self.failures
                .push(format!("loss {:.6} above {max_loss}", self.loss_ratio));
        }
        if let Some(v) = &self.video {
            self.failures.extend(v.judge(max_loss));
        }
        if let Some(max) = max_setup_p99_ms
            && self.setup.p99_ms > max
        {
            self.failures.push(format!(
                "setup p99 {:.1} ms above {max} ms",
                self.setup.p99_ms
            ));
        }
    }

    /// Checks the transcoded calls' markers: more than `max_missed` of them (a ratio) not back
    /// within the window fails the run (the end-to-end loss figure of those calls).
    pub fn judge_markers(&mut self, max_missed: f64) {
        let (markers, missed) = self.codecs.iter().fold((0, 0), |(a, b), f| {
            (a + f.markers_sent, b + f.markers_missed)
        });
        if missed as f64 > max_missed * markers as f64 {
            self.failures.push(format!(
                "{missed} of {markers} audio markers did not come back (transcoded calls)"
            ));
        }
    }

    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let c = &self.config;
        let m = &self.machine;
        let what = if c.direction == "incoming" {
            format!(
                "{} simulated browsers (str0m: ICE, DTLS, SRTP) each open a WebSocket session to \
                 `wavegate` and register through Kamailio; SIPp calls each one through Kamailio \
                 ({}), the browser answers with a one-codec answer, sends {} packets/s until \
                 SIPp's BYE after {} s and measures what SIPp echoes back.",
                c.calls, c.target, c.pps, c.hold_secs
            )
        } else {
            format!(
                "{} simulated browsers (str0m: ICE, DTLS, SRTP) each open a WebSocket session to \
                 `wavegate`, call `{}` with a one-codec offer, send {} packets/s for {} s and \
                 measure the echo, then hang up.",
                c.calls, c.target, c.pps, c.hold_secs
            )
        };
        let mut s = format!(
            "# Call load: {name}\n\n\
             The whole gateway under call load: {what} \
             Placed at {cps} calls/s; run bounded at {max} s. Codec mix `{mix}`.\n\n\
             Machine: {nproc} CPU(s), {model}, {kernel}; load average before {lb}, after {la}. \
             Build: {build}.\n\n",
            name = self.name,
            cps = c.cps,
            max = c.max_seconds,
            mix = c.codec_mix,
            nproc = m.nproc,
            model = m.cpu_model,
            kernel = m.kernel,
            lb = m.loadavg_before,
            la = m.loadavg_after,
            build = self.build,
        );
        let verdict = if self.failures.is_empty() {
            "passed".to_owned()
        } else {
            format!("**missed**: {}", self.failures.join("; "))
        };
        s += &format!("Verdict: {verdict}.\n\n## Calls\n\n| figure | value |\n|---|---|\n");
        let failed: u64 = self.failures_by_cause.iter().map(|(_, n)| n).sum();
        for (k, v) in [
            ("placed", self.placed.to_string()),
            ("established", self.established.to_string()),
            ("hung up cleanly (FINISH)", self.finished.to_string()),
            ("failed", failed.to_string()),
            ("peak concurrent", self.peak_concurrent.to_string()),
            (
                "setup (call -> ESTABLISHED) p50 / p99 / max",
                format!(
                    "{:.1} / {:.1} / {:.1} ms",
                    self.setup.p50_ms, self.setup.p99_ms, self.setup.max_ms
                ),
            ),
            (
                "media connected (call -> ICE+DTLS) p50 / p99 / max",
                format!(
                    "{:.1} / {:.1} / {:.1} ms",
                    self.media_connect.p50_ms, self.media_connect.p99_ms, self.media_connect.max_ms
                ),
            ),
            (
                "SIPp's view: INVITE -> 200 OK p50 / p99 / max",
                self.sip_setup.as_ref().map_or("-".into(), |p| {
                    format!("{:.0} / {:.0} / {:.0} ms", p.p50_ms, p.p99_ms, p.max_ms)
                }),
            ),
            (
                "transcoded share",
                format!("{:.0} %", self.transcoded_share * 100.0),
            ),
            ("loss (all calls)", format!("{:.6}", self.loss_ratio)),
            (
                "CPU seconds per call (both processes)",
                format!("{:.4}", self.cpu_secs_per_call),
            ),
            (
                "memory per call (both processes)",
                format!("{:.1} KiB", self.rss_per_call_kib),
            ),
            ("media-plane restarts", self.mediaplane_restarts.to_string()),
            ("run", format!("{:.1} s", self.run_secs)),
        ] {
            s += &format!("| {k} | {v} |\n");
        }
        if !self.failures_by_cause.is_empty() {
            s += "\n| failure cause | calls |\n|---|---|\n";
            for (cause, n) in &self.failures_by_cause {
                s += &format!("| {cause} | {n} |\n");
            }
        }
        s += "\n## Media per codec\n\n| codec | transcoded | calls | sent | echoed back | loss | \
              RTT p50 / p99 / max ms | RTT by | markers missed | jitter mean / max ms | MOS mean / min |\n\
              |---|---|---|---|---|---|---|---|---|---|---|\n";
        for f in &self.codecs {
            s += &format!(
                "| {} | {} | {} | {} | {} | {:.6} | {:.2} / {:.2} / {:.2} | {} | {} | {:.3} / {:.3} | {:.2} / {:.2} |\n",
                f.codec,
                if f.transcoded { "yes" } else { "no" },
                f.calls,
                f.sent,
                f.received,
                f.loss_ratio,
                f.rtt.p50_ms,
                f.rtt.p99_ms,
                f.rtt.max_ms,
                f.rtt_method,
                if f.transcoded {
                    format!("{} of {}", f.markers_missed, f.markers_sent)
                } else {
                    "-".into()
                },
                f.jitter_mean_ms,
                f.jitter_max_ms,
                f.mos_mean,
                f.mos_min
            );
        }
        s += "\nMOS: simplified ITU-T G.107 E-model from each call's median round trip, jitter \
              and loss (constants in `loadtest/src/call_report.rs`); the narrowband scale tops \
              out at 4.41. RTT by `probe`: the probe payload echoed byte for byte (passthrough). \
              RTT by `marker` (transcoded calls, where no payload survives): the browser sends \
              real Opus, a loop with a loud 20 ms burst once a second in quiet noise, decodes \
              what returns and times the burst's onset, so it includes both Opus codings and the \
              transcoder's jitter buffer; loss there is from gaps in the returning RTP sequence \
              numbers, and a burst not back within 800 ms is a missed marker.\n\n";
        if let Some(v) = &self.video {
            s += &v.markdown();
            s += "\n";
        }
        s += "## Processes\n\n| process | CPU s | RSS idle KiB | RSS peak KiB |\n|---|---|---|---|\n";
        for p in self.processes.iter().chain(&self.peers) {
            s += &format!(
                "| {} | {:.2} | {} | {} |\n",
                p.process, p.cpu_secs, p.rss_idle_kib, p.rss_peak_kib
            );
        }
        s += &format!(
            "\nCharts: [{n}-setup.svg]({n}-setup.svg) (setup time distribution), \
             [{n}-load.svg]({n}-load.svg) (concurrent calls and CPU over time).\n",
            n = self.name
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_by_cause_most_first() {
        let f = ["b", "a", "b"].iter().map(|s| s.to_string());
        assert_eq!(
            by_cause(f, 2),
            vec![
                ("b".into(), 2),
                ("run deadline (--seconds)".into(), 2),
                ("a".into(), 1)
            ]
        );
        assert!(by_cause(std::iter::empty(), 0).is_empty());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
        let s = Spread::from_us(&[3000, 1000, 2000]);
        assert_eq!((s.count, s.p50_ms, s.p99_ms, s.max_ms), (3, 2.0, 3.0, 3.0));
    }

    #[test]
    fn jitter_follows_rfc3550() {
        let mut j = Jitter::default();
        j.observe(1000);
        assert_eq!(j.jitter_ns, 0.0);
        j.observe(1160);
        assert_eq!(j.jitter_ns, 10.0); // |160| / 16
        j.observe(1160);
        assert_eq!(j.jitter_ns, 10.0 - 10.0 / 16.0);
        let mut steady = Jitter::default();
        for _ in 0..100 {
            steady.observe(5000);
        }
        assert_eq!(steady.jitter_ns, 0.0);
    }

    #[test]
    fn e_model_values() {
        // No impairment at all: R = 93.2, MOS 4.41.
        assert!((r_factor(0.0, 0.0, 0.0, 25.1) - 93.2).abs() < 1e-9);
        assert!((mos(93.2) - 4.409).abs() < 0.001, "{}", mos(93.2));
        // 100 ms one way: Id = 2.4.
        assert!((r_factor(100.0, 0.0, 0.0, 25.1) - 90.8).abs() < 1e-9);
        // 200 ms: Id = 4.8 + 0.11 * 22.7 = 7.297.
        assert!((r_factor(200.0, 0.0, 0.0, 25.1) - (93.2 - 7.297)).abs() < 1e-9);
        // 1 % loss, PCMU with PLC: Ie_eff = 95 * 1 / 26.1.
        let r = r_factor(0.0, 0.01, 0.0, 25.1);
        assert!((r - (93.2 - 95.0 / 26.1)).abs() < 1e-9);
        // Without PLC (Bpl 4.3) 1 % loss hurts far more.
        assert!(r_factor(0.0, 0.01, 0.0, 4.3) < r - 10.0);
        assert_eq!(mos(-5.0), 1.0);
        assert_eq!(mos(120.0), 4.5);
        // R = 50: 1 + 1.75 + 7e-6 * 50 * -10 * 50.
        assert!((mos(50.0) - (2.75 - 0.175)).abs() < 1e-9);
        // A clean loopback call is "excellent"; 5 % loss is not: d = 0.5 + 20 + 20 ms,
        // Id = 0.972, Ie_eff = 95 * 5 / 30.1, R = 76.45, MOS 3.88.
        assert!(call_mos(AudioCodec::Pcmu, 1.0, 0.1, 0.0) > 4.3);
        let lossy = call_mos(AudioCodec::Pcmu, 1.0, 0.1, 0.05);
        assert!((lossy - 3.88).abs() < 0.01, "{lossy}");
        // Delay estimate: half the RTT, a frame, a 20 ms minimum jitter buffer.
        assert_eq!(one_way_delay_ms(10.0, 1.0), 45.0);
        assert_eq!(one_way_delay_ms(10.0, 15.0), 55.0);
    }
}
