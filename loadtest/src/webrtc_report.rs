//! The `webrtc` scenario's report: figures, verdict against thresholds, JSON and Markdown. No
//! I/O; the figures come from [`crate::webrtc::run`].
//!
//! Invariants: loss is counted per crossing of the media plane (browser -> SIP: sent by the
//! browsers vs. received by the SIP echo; SIP -> browser: echoed vs. received by the browsers),
//! over the whole run after the drain; CPU and packet rate cover the measurement window only.

use serde::Serialize;

use crate::report::{LatencyFigures, Machine, Resources};

/// The CPU target per relayed SRTP <-> RTP packet on this VM, µs.
pub const TARGET_CPU_US: f64 = 3.5;
/// rtpengine 10.5 (userspace) per SDES-SRTP <-> RTP packet on this VM, µs (issue 4).
pub const RTPENGINE_CPU_US: f64 = 8.8;
/// The memory target per WebRTC <-> SIP call, KiB.
pub const TARGET_KIB_PER_CALL: f64 = 64.0;

/// Delivery across one crossing of the media plane.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Leg {
    /// Packets sent into the media plane.
    pub sent: u64,
    /// Packets received out of it.
    pub received: u64,
    /// `sent - received` (saturating).
    pub lost: u64,
    /// `lost / sent`.
    pub loss_ratio: f64,
}

impl Leg {
    /// Figures from the two counts.
    pub fn new(sent: u64, received: u64) -> Self {
        let lost = sent.saturating_sub(received);
        Self {
            sent,
            received,
            lost,
            loss_ratio: if sent == 0 {
                0.0
            } else {
                lost as f64 / sent as f64
            },
        }
    }
}

/// What was asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WebRtcConfig {
    /// Calls.
    pub calls: u32,
    /// Packets per second per call, each way.
    pub pps: u32,
    /// Measured seconds.
    pub seconds: u32,
    /// Warm-up seconds.
    pub warmup_secs: u32,
    /// RTP payload bytes.
    pub payload: usize,
    /// Threads driving the simulated browsers.
    pub browser_threads: usize,
    /// The media plane's arguments.
    pub mediaplane_args: Vec<String>,
}

/// The whole report, written as `<name>.json` and `<name>.md`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WebRtcReport {
    /// Report name.
    pub name: String,
    /// Unix seconds at the start.
    pub started_unix: u64,
    /// The machine.
    pub machine: Machine,
    /// What was asked for.
    pub config: WebRtcConfig,
    /// Time to set up all calls (WebRtcOffer + Answer each), ms.
    pub setup_ms: f64,
    /// Time until every call had ICE + DTLS up (or the wait gave up), ms.
    pub connect_ms: f64,
    /// Calls whose browser saw DTLS connect.
    pub calls_connected: u64,
    /// Media-plane CPU and memory (`rss_per_stream_kib` is per call).
    pub resources: Resources,
    /// Browser -> media plane -> SIP echo -> media plane -> browser, probes received in the
    /// window.
    pub round_trip: LatencyFigures,
    /// SRTP in, plain RTP out.
    pub browser_to_sip: Leg,
    /// Plain RTP in, SRTP out.
    pub sip_to_browser: Leg,
    /// Both crossings.
    pub loss_ratio: f64,
    /// Failed sends and str0m errors in the load generator.
    pub load_generator_errors: u64,
    /// RTP that carried no probe of its call.
    pub not_probes: u64,
    /// `Delete` requests that failed or timed out.
    pub delete_failures: u64,
    /// Packets the media plane counted in / out / dropped (from the `Delete` replies).
    pub mediaplane_rtp_in: u64,
    /// See `mediaplane_rtp_in`.
    pub mediaplane_rtp_out: u64,
    /// See `mediaplane_rtp_in`.
    pub mediaplane_dropped: u64,
    /// Failures against the thresholds; empty means passed.
    pub failures: Vec<String>,
}

impl WebRtcReport {
    /// Fills `loss_ratio` and `failures`.
    pub fn judge(&mut self, max_loss: f64, max_p99_us: Option<f64>, max_cpu_us: Option<f64>) {
        let (b, s) = (&self.browser_to_sip, &self.sip_to_browser);
        let (lost, sent) = (b.lost + s.lost, b.sent + s.sent);
        self.loss_ratio = if sent == 0 {
            0.0
        } else {
            lost as f64 / sent as f64
        };
        self.failures.clear();
        if self.calls_connected < u64::from(self.config.calls) {
            self.failures.push(format!(
                "{} of {} calls never connected",
                u64::from(self.config.calls) - self.calls_connected,
                self.config.calls
            ));
        }
        if sent == 0 || self.resources.packets_per_sec == 0.0 {
            self.failures.push("nothing was relayed".into());
        }
        if self.loss_ratio > max_loss {
            self.failures
                .push(format!("loss {:.6} > allowed {max_loss}", self.loss_ratio));
        }
        if let Some(max) = max_p99_us
            && (self.round_trip.samples == 0 || self.round_trip.p99_us > max)
        {
            self.failures.push(format!(
                "round-trip p99 {} us > allowed {max} us",
                self.round_trip.p99_us
            ));
        }
        if let Some(max) = max_cpu_us
            && self.resources.cpu_us_per_packet > max
        {
            self.failures.push(format!(
                "CPU {:.3} us/packet > allowed {max} us",
                self.resources.cpu_us_per_packet
            ));
        }
        if self.delete_failures > 0 {
            self.failures
                .push(format!("{} calls could not be deleted", self.delete_failures));
        }
    }

    /// The human-readable report.
    pub fn markdown(&self) -> String {
        let c = &self.config;
        let r = &self.resources;
        let l = &self.round_trip;
        let verdict = if self.failures.is_empty() {
            "PASSED".to_owned()
        } else {
            format!("FAILED: {}", self.failures.join("; "))
        };
        let leg = |name: &str, d: &Leg| {
            format!(
                "| {name} | {} | {} | {} | {:.6} |\n",
                d.sent, d.received, d.lost, d.loss_ratio
            )
        };
        format!(
            "# WebRTC load test `{name}`\n\n\
             {calls} WebRTC <-> SIP calls through one media-plane shard: str0m browsers (ICE, DTLS, \
             SRTP, PCMU) on loopback send {pps} packets/s each; a plain RTP peer on the SIP side \
             echoes every packet, so each crosses the media plane twice (SRTP -> RTP, RTP -> SRTP). \
             {payload}-byte payload, {seconds} s measured after {warmup} s warm-up, browsers driven \
             by {threads} thread(s).\n\n\
             Machine: {nproc} CPUs, {cpu}, {kernel}; load average {load0} before, {load1} after. \
             Media plane arguments: `{args}`.\n\n\
             **Verdict: {verdict}**\n\n\
             ## Media plane\n\n\
             | figure | value |\n|---|---|\n\
             | calls connected (ICE + DTLS) | {connected} of {calls} in {connect:.0} ms |\n\
             | call set-up (WebRtcOffer + Answer, all calls) | {setup:.1} ms |\n\
             | packets relayed per second (both crossings) | {pps_total:.0} |\n\
             | **CPU per relayed packet** | **{cpu_pkt:.3} µs** ({vs_target:.2}× the {target} µs target, \
             {vs_rtpengine:.2}× rtpengine's {rtpengine} µs) |\n\
             | CPU (share of one core) | {cpu_pct:.1} % |\n\
             | RSS idle / end | {rss0} KiB / {rss1} KiB |\n\
             | **RSS per call** | **{rss_call:.1} KiB** (target {kib_target} KiB) |\n\
             | media plane counted in / out / dropped | {mp_in} / {mp_out} / {mp_drop} |\n\
             | load generator errors / non-probe packets / failed deletes | {errors} / {np} / {del} |\n\n\
             ## Round trip (browser -> media plane -> SIP echo -> media plane -> browser)\n\n\
             | samples | p50 | p99 | p99.9 | max | mean |\n|---|---|---|---|---|---|\n\
             | {samples} | {p50} µs | {p99} µs | {p999} µs | {max} µs | {mean} µs |\n\n\
             Includes the load generator's own work (str0m encryption and decryption on the \
             browser side, polling every 50-100 µs) on a shared core.\n\n\
             ## Delivery\n\n\
             | crossing | sent | received | lost | loss |\n|---|---|---|---|---|\n{b2s}{s2b}\n\
             Loss counts every packet of the run after a drain period; CPU and packet rate cover \
             the measurement window only.\n",
            name = self.name,
            calls = c.calls,
            pps = c.pps,
            payload = c.payload,
            seconds = c.seconds,
            warmup = c.warmup_secs,
            threads = c.browser_threads,
            nproc = self.machine.nproc,
            cpu = self.machine.cpu_model,
            kernel = self.machine.kernel,
            load0 = self.machine.loadavg_before,
            load1 = self.machine.loadavg_after,
            args = c.mediaplane_args.join(" "),
            connected = self.calls_connected,
            connect = self.connect_ms,
            setup = self.setup_ms,
            pps_total = r.packets_per_sec,
            cpu_pkt = r.cpu_us_per_packet,
            vs_target = r.cpu_us_per_packet / TARGET_CPU_US,
            target = TARGET_CPU_US,
            vs_rtpengine = r.cpu_us_per_packet / RTPENGINE_CPU_US,
            rtpengine = RTPENGINE_CPU_US,
            cpu_pct = r.cpu_percent_of_core,
            rss0 = r.rss_idle_kib,
            rss1 = r.rss_end_kib,
            rss_call = r.rss_per_stream_kib,
            kib_target = TARGET_KIB_PER_CALL,
            mp_in = self.mediaplane_rtp_in,
            mp_out = self.mediaplane_rtp_out,
            mp_drop = self.mediaplane_dropped,
            errors = self.load_generator_errors,
            np = self.not_probes,
            del = self.delete_failures,
            samples = l.samples,
            p50 = l.p50_us,
            p99 = l.p99_us,
            p999 = l.p999_us,
            max = l.max_us,
            mean = l.mean_us,
            b2s = leg("browser -> SIP (SRTP -> RTP)", &self.browser_to_sip),
            s2b = leg("SIP -> browser (RTP -> SRTP)", &self.sip_to_browser),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> WebRtcReport {
        WebRtcReport {
            name: "t".into(),
            config: WebRtcConfig {
                calls: 10,
                ..WebRtcConfig::default()
            },
            calls_connected: 10,
            resources: Resources::compute(10_000_000_000, 100, 100, 1_000_000, (1000, 2000), 10),
            browser_to_sip: Leg::new(1000, 990),
            sip_to_browser: Leg::new(990, 990),
            ..WebRtcReport::default()
        }
    }

    #[test]
    fn legs_and_loss() {
        let l = Leg::new(100, 97);
        assert_eq!((l.lost, l.loss_ratio), (3, 0.03));
        assert_eq!(Leg::new(0, 0).loss_ratio, 0.0);
        assert_eq!(Leg::new(5, 7).lost, 0, "duplicates never make loss negative");
    }

    #[test]
    fn verdict_follows_thresholds() {
        let mut r = report();
        r.judge(0.01, None, None);
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        assert!((r.loss_ratio - 10.0 / 1990.0).abs() < 1e-12);
        r.judge(0.001, None, Some(0.5));
        assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
        r.calls_connected = 9;
        r.judge(0.01, Some(1000.0), None);
        assert!(r.failures.iter().any(|f| f.contains("never connected")));
        assert!(r.failures.iter().any(|f| f.contains("p99")), "no samples fails p99");
        let md = r.markdown();
        assert!(md.contains("FAILED") && md.contains("1.000 µs"), "{md}");
    }
}
