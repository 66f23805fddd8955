//! The load test's arithmetic, free of sockets and clocks: the send schedule, per-flow loss /
//! duplicate / reorder accounting, latency figures from a histogram, the pass/fail verdict
//! and the JSON / Markdown report.
//!
//! Invariants: a flow is one stream in one direction; its packets carry sequence numbers
//! 0, 1, 2, ... in send order, so `lost = sent - distinct received`, a repeat of a seen number
//! is a duplicate and a number below the highest seen is a reordering. Sequence numbers beyond
//! what the schedule can have sent are counted as `unexpected`, never stored.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::wire::{Direction, Received};

/// The even send schedule: `flows` flows at `pps` each, interleaved so packet `k` overall
/// belongs to flow `k % flows`, carries sequence `k / flows` and is due `k / (flows * pps)`
/// seconds after the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Number of flows (streams x 2 directions).
    pub flows: u64,
    /// Packets per second per flow.
    pub pps: u64,
}

impl Schedule {
    /// Nanoseconds after the start at which packet `k` is due (the inverse of `due_before`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn due_ns(&self, k: u64) -> u64 {
        let rate = u128::from(self.flows * self.pps).max(1);
        (u128::from(k) * 1_000_000_000 / rate) as u64
    }

    /// Packets due in the first `ns` nanoseconds (those with `due_ns(k) < ns`).
    pub fn due_before(&self, ns: u64) -> u64 {
        let rate = u128::from(self.flows * self.pps);
        (u128::from(ns) * rate).div_ceil(1_000_000_000) as u64
    }

    /// Flow index and sequence number of packet `k`.
    pub fn packet(&self, k: u64) -> (u64, u32) {
        (k % self.flows, (k / self.flows) as u32)
    }

    /// How many packets of `flow` are among the first `total` packets.
    pub fn sent_of_flow(&self, total: u64, flow: u64) -> u64 {
        total / self.flows + u64::from(flow < total % self.flows)
    }
}

/// Flow index of a stream and direction.
pub fn flow_index(stream: u32, direction: Direction) -> u64 {
    u64::from(stream) * 2 + direction as u64
}

/// Receive-side accounting of one flow.
#[derive(Debug, Clone, Default)]
struct Flow {
    seen: Vec<u64>,
    highest: Option<u32>,
    unique: u64,
    duplicated: u64,
    reordered: u64,
    ssrc: Option<u32>,
    ssrc_changes: u64,
}

/// Everything one receiver learns about the direction it receives.
#[derive(Debug)]
pub struct DirectionTracker {
    direction: Direction,
    flows: Vec<Flow>,
    max_seq: u32,
    /// Packets that were not probes of this direction and a known stream.
    pub malformed: u64,
    /// Probes with a sequence number the schedule cannot have sent.
    pub unexpected: u64,
    /// Probes whose RTP payload type was not PCMU.
    pub wrong_payload_type: u64,
    /// Added latency (ns) of probes sent inside the measurement window.
    pub latency: Histogram<u64>,
    /// Probes sent inside the window and received.
    pub in_window: u64,
}

/// Why a tracker could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The latency histogram's bounds were refused.
    #[error("histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
    /// Merging histograms failed.
    #[error("histogram merge: {0}")]
    Merge(#[from] hdrhistogram::AdditionError),
}

/// Latencies above this (ns) are clamped into the top bucket.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

impl DirectionTracker {
    /// A tracker for `streams` streams whose sequence numbers stay below `max_seq`.
    pub fn new(direction: Direction, streams: u32, max_seq: u32) -> Result<Self, ReportError> {
        Ok(Self {
            direction,
            flows: vec![Flow::default(); streams as usize],
            max_seq,
            malformed: 0,
            unexpected: 0,
            wrong_payload_type: 0,
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)?,
            in_window: 0,
        })
    }

    /// Accounts one received packet (`None`: not a probe) at `now_ns`; latency is recorded
    /// when the probe was sent inside `[window.0, window.1)`.
    pub fn observe(&mut self, packet: Option<&Received>, now_ns: u64, window: (u64, u64)) {
        let Some(rx) = packet.filter(|r| r.probe.direction == self.direction) else {
            self.malformed += 1;
            return;
        };
        let Some(flow) = self.flows.get_mut(rx.probe.stream as usize) else {
            self.malformed += 1;
            return;
        };
        let seq = rx.probe.seq;
        if seq >= self.max_seq {
            self.unexpected += 1;
            return;
        }
        if rx.payload_type != crate::wire::PAYLOAD_TYPE {
            self.wrong_payload_type += 1;
        }
        match flow.ssrc {
            None => flow.ssrc = Some(rx.ssrc),
            Some(s) if s != rx.ssrc => {
                flow.ssrc_changes += 1;
                flow.ssrc = Some(rx.ssrc);
            }
            Some(_) => {}
        }
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if flow.seen.len() <= word {
            flow.seen.resize(word + 1, 0);
        }
        if flow.seen[word] & bit != 0 {
            flow.duplicated += 1;
            return;
        }
        flow.seen[word] |= bit;
        flow.unique += 1;
        match flow.highest {
            Some(h) if seq < h => flow.reordered += 1,
            _ => flow.highest = Some(seq),
        }
        if (window.0..window.1).contains(&rx.probe.sent_ns) {
            self.in_window += 1;
            let _ = self.latency.record(
                now_ns
                    .saturating_sub(rx.probe.sent_ns)
                    .clamp(1, MAX_LATENCY_NS),
            );
        }
    }

    /// Loss accounting against what the sender sent (`sent_of(stream)` packets per stream).
    pub fn figures(&self, sent_of: impl Fn(u32) -> u64) -> DirectionFigures {
        let mut f = DirectionFigures {
            malformed: self.malformed,
            unexpected: self.unexpected,
            wrong_payload_type: self.wrong_payload_type,
            ..DirectionFigures::default()
        };
        for (i, flow) in self.flows.iter().enumerate() {
            let sent = sent_of(i as u32);
            f.sent += sent;
            f.received += flow.unique;
            f.lost += sent.saturating_sub(flow.unique);
            f.duplicated += flow.duplicated;
            f.reordered += flow.reordered;
            f.ssrc_changes += flow.ssrc_changes;
            f.streams_silent += u64::from(sent > 0 && flow.unique == 0);
        }
        f.loss_ratio = ratio(f.lost, f.sent);
        f
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Loss accounting of one direction.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DirectionFigures {
    /// Packets sent.
    pub sent: u64,
    /// Distinct packets received.
    pub received: u64,
    /// Sent and never received.
    pub lost: u64,
    /// `lost / sent`.
    pub loss_ratio: f64,
    /// Received more than once.
    pub duplicated: u64,
    /// Received after a later packet of the same flow.
    pub reordered: u64,
    /// Times a flow's SSRC changed mid-stream (the relay must keep it constant).
    pub ssrc_changes: u64,
    /// Streams that sent but received nothing at all.
    pub streams_silent: u64,
    /// Packets that were not our probes.
    pub malformed: u64,
    /// Probes with impossible sequence numbers.
    pub unexpected: u64,
    /// Probes relayed with another payload type.
    pub wrong_payload_type: u64,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencyFigures {
    /// Samples behind the figures.
    pub samples: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl LatencyFigures {
    /// Figures of a histogram recorded in nanoseconds.
    pub fn from_ns(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
        Self {
            samples: h.len(),
            p50_us: us(h.value_at_quantile(0.5)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: (h.mean() / 100.0).round() / 10.0,
        }
    }
}

/// The machine the run happened on.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Machine {
    /// Online CPUs.
    pub nproc: usize,
    /// First `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// `uname -sr`.
    pub kernel: String,
    /// /proc/loadavg before the run (other work on the machine skews every figure).
    pub loadavg_before: String,
    /// /proc/loadavg after the measurement window.
    pub loadavg_after: String,
}

/// What was asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunConfig {
    /// Relay sessions.
    pub streams: u32,
    /// Packets per second per stream per direction.
    pub pps: u32,
    /// Measured seconds (after warm-up).
    pub seconds: u32,
    /// Warm-up seconds.
    pub warmup_secs: u32,
    /// Media-plane shards.
    pub shards: u16,
    /// RTP payload bytes.
    pub payload: usize,
    /// The media plane's arguments.
    pub mediaplane_args: Vec<String>,
}

/// Media-plane resource use over the measurement window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Resources {
    /// Length of the window.
    pub window_secs: f64,
    /// Media-plane CPU time (user + system) inside the window.
    pub cpu_ms: f64,
    /// Share of one core.
    pub cpu_percent_of_core: f64,
    /// Media-plane CPU per relayed packet.
    pub cpu_us_per_packet: f64,
    /// Packets relayed per second (both directions) inside the window.
    pub packets_per_sec: f64,
    /// Resident set before any session existed.
    pub rss_idle_kib: u64,
    /// Resident set at the end of the window.
    pub rss_end_kib: u64,
    /// `(rss_end - rss_idle) / streams`.
    pub rss_per_stream_kib: f64,
}

impl Resources {
    /// Derives the per-packet and per-stream figures.
    pub fn compute(
        window_ns: u64,
        cpu_ticks: u64,
        ticks_per_sec: u64,
        relayed: u64,
        rss: (u64, u64),
        streams: u32,
    ) -> Self {
        let window_secs = window_ns as f64 / 1e9;
        let cpu_us = cpu_ticks as f64 * 1e6 / ticks_per_sec.max(1) as f64;
        Self {
            window_secs,
            cpu_ms: cpu_us / 1e3,
            cpu_percent_of_core: if window_ns == 0 {
                0.0
            } else {
                cpu_us / (window_ns as f64 / 1e3) * 100.0
            },
            cpu_us_per_packet: if relayed == 0 {
                0.0
            } else {
                cpu_us / relayed as f64
            },
            packets_per_sec: if window_ns == 0 {
                0.0
            } else {
                relayed as f64 / window_secs
            },
            rss_idle_kib: rss.0,
            rss_end_kib: rss.1,
            rss_per_stream_kib: if streams == 0 {
                0.0
            } else {
                rss.1.saturating_sub(rss.0) as f64 / f64::from(streams)
            },
        }
    }
}

/// The whole report, written as `<name>.json` and `<name>.md`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Report name.
    pub name: String,
    /// Unix seconds at the start.
    pub started_unix: u64,
    /// The machine.
    pub machine: Machine,
    /// What was asked for.
    pub config: RunConfig,
    /// Time to program all sessions (Offer + Answer each), ms.
    pub setup_ms: f64,
    /// Media-plane CPU and memory.
    pub resources: Resources,
    /// Added latency through the relay, both directions, probes sent inside the window.
    pub latency: LatencyFigures,
    /// Offerer to answerer.
    pub a_to_b: DirectionFigures,
    /// Answerer to offerer.
    pub b_to_a: DirectionFigures,
    /// Both directions.
    pub loss_ratio: f64,
    /// `send_to` calls that failed (those packets count as lost).
    pub send_errors: u64,
    /// `Delete` requests that failed or timed out at the end of the run.
    pub delete_failures: u64,
    /// Packets the media plane counted in and out (from the `Delete` replies).
    pub mediaplane_rtp_in: u64,
    /// See `mediaplane_rtp_in`.
    pub mediaplane_rtp_out: u64,
    /// Packets the media plane dropped (its own counters).
    pub mediaplane_dropped: u64,
    /// Failures against the thresholds; empty means passed.
    pub failures: Vec<String>,
}

impl Report {
    /// Fills `loss_ratio` and `failures` from the figures and the thresholds.
    pub fn judge(&mut self, max_loss: f64, max_p99_us: Option<f64>) {
        let (lost, sent) = (
            self.a_to_b.lost + self.b_to_a.lost,
            self.a_to_b.sent + self.b_to_a.sent,
        );
        self.loss_ratio = ratio(lost, sent);
        self.failures.clear();
        if sent == 0 {
            self.failures.push("nothing was sent".into());
        }
        if self.loss_ratio > max_loss {
            self.failures
                .push(format!("loss {:.6} > allowed {max_loss}", self.loss_ratio));
        }
        if let Some(max) = max_p99_us
            && (self.latency.samples == 0 || self.latency.p99_us > max)
        {
            self.failures
                .push(format!("p99 {} us > allowed {max} us", self.latency.p99_us));
        }
        let dups = self.a_to_b.duplicated + self.b_to_a.duplicated;
        if dups > 0 {
            self.failures.push(format!("{dups} duplicated packets"));
        }
        if self.delete_failures > 0 {
            self.failures.push(format!(
                "{} sessions could not be deleted",
                self.delete_failures
            ));
        }
        let ssrc = self.a_to_b.ssrc_changes + self.b_to_a.ssrc_changes;
        if ssrc > 0 {
            self.failures
                .push(format!("SSRC changed {ssrc} times mid-stream"));
        }
    }

    /// The human-readable report.
    pub fn markdown(&self) -> String {
        let c = &self.config;
        let r = &self.resources;
        let l = &self.latency;
        let verdict = if self.failures.is_empty() {
            "PASSED".to_owned()
        } else {
            format!("FAILED: {}", self.failures.join("; "))
        };
        let dir = |name: &str, d: &DirectionFigures| {
            format!(
                "| {name} | {} | {} | {} | {:.6} | {} | {} | {} | {} |\n",
                d.sent,
                d.received,
                d.lost,
                d.loss_ratio,
                d.duplicated,
                d.reordered,
                d.ssrc_changes,
                d.malformed
            )
        };
        format!(
            "# Relay load test `{name}`\n\n\
             {streams} bidirectional PCMU relay sessions, {pps} packets/s per stream per direction, \
             {payload}-byte payload, {seconds} s measured after {warmup} s warm-up, {shards} media-plane shard(s).\n\n\
             Machine: {nproc} CPUs, {cpu}, {kernel}; load average {load0} before, {load1} after. \
             Media plane arguments: `{args}`.\n\n\
             **Verdict: {verdict}**\n\n\
             ## Media plane\n\n\
             | figure | value |\n|---|---|\n\
             | packets relayed per second | {pps_total:.0} |\n\
             | CPU per relayed packet | {cpu_pkt:.3} µs |\n\
             | CPU (share of one core) | {cpu_pct:.1} % |\n\
             | RSS idle / end | {rss0} KiB / {rss1} KiB |\n\
             | RSS per stream | {rss_stream:.1} KiB |\n\
             | session setup (offer + answer, all streams) | {setup:.1} ms |\n\
             | media plane counted in / out / dropped | {mp_in} / {mp_out} / {mp_drop} |\n\
             | load generator send errors / failed deletes | {send_err} / {del_fail} |\n\n\
             ## Added latency (send to receive through the relay)\n\n\
             | samples | p50 | p99 | p99.9 | max | mean |\n|---|---|---|---|---|---|\n\
             | {samples} | {p50} µs | {p99} µs | {p999} µs | {max} µs | {mean} µs |\n\n\
             Receivers poll their sockets every 50 µs instead of blocking (so the media plane is not \
             billed for waking them), so figures include up to 50 µs of polling delay plus the \
             load generator's own scheduling.\n\n\
             ## Delivery\n\n\
             | direction | sent | received | lost | loss | duplicated | reordered | SSRC changes | malformed |\n\
             |---|---|---|---|---|---|---|---|---|\n{ab}{ba}\n\
             Loss counts every packet of the run (warm-up included) after a drain period; latency, CPU and \
             packet rate cover the measurement window only.\n",
            name = self.name,
            streams = c.streams,
            pps = c.pps,
            payload = c.payload,
            seconds = c.seconds,
            warmup = c.warmup_secs,
            shards = c.shards,
            nproc = self.machine.nproc,
            cpu = self.machine.cpu_model,
            kernel = self.machine.kernel,
            load0 = self.machine.loadavg_before,
            load1 = self.machine.loadavg_after,
            args = c.mediaplane_args.join(" "),
            pps_total = r.packets_per_sec,
            cpu_pkt = r.cpu_us_per_packet,
            cpu_pct = r.cpu_percent_of_core,
            rss0 = r.rss_idle_kib,
            rss1 = r.rss_end_kib,
            rss_stream = r.rss_per_stream_kib,
            setup = self.setup_ms,
            mp_in = self.mediaplane_rtp_in,
            mp_out = self.mediaplane_rtp_out,
            mp_drop = self.mediaplane_dropped,
            send_err = self.send_errors,
            del_fail = self.delete_failures,
            samples = l.samples,
            p50 = l.p50_us,
            p99 = l.p99_us,
            p999 = l.p999_us,
            max = l.max_us,
            mean = l.mean_us,
            ab = dir("A → B", &self.a_to_b),
            ba = dir("B → A", &self.b_to_a),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Probe;

    fn rx(stream: u32, direction: Direction, seq: u32, sent_ns: u64, ssrc: u32) -> Received {
        Received {
            probe: Probe {
                stream,
                direction,
                seq,
                sent_ns,
            },
            payload_type: 0,
            ssrc,
        }
    }

    #[test]
    fn schedule_is_even_and_interleaved() {
        let s = Schedule {
            flows: 2000,
            pps: 50,
        }; // 100k packets/s: one every 10 us
        assert_eq!(s.due_ns(0), 0);
        assert_eq!(s.due_ns(1), 10_000);
        assert_eq!(s.due_ns(100_000), 1_000_000_000);
        assert_eq!(s.due_before(1_000_000_000), 100_000);
        assert_eq!(s.due_before(1), 1);
        assert_eq!(s.packet(2001), (1, 1));
        // 2500 packets: every flow sent once, the first 500 twice.
        assert_eq!(s.sent_of_flow(2500, 499), 2);
        assert_eq!(s.sent_of_flow(2500, 500), 1);
        let total: u64 = (0..2000).map(|f| s.sent_of_flow(2500, f)).sum();
        assert_eq!(total, 2500);
    }

    #[test]
    fn loss_duplicates_reordering_and_ssrc() {
        let mut t = DirectionTracker::new(Direction::AToB, 2, 100).unwrap();
        let w = (0, u64::MAX);
        for seq in [0, 1, 3, 2, 3, 5] {
            t.observe(Some(&rx(0, Direction::AToB, seq, 10, 77)), 1_010, w);
        }
        t.observe(Some(&rx(1, Direction::AToB, 0, 10, 1)), 20, w);
        t.observe(Some(&rx(1, Direction::AToB, 1, 10, 2)), 20, w); // SSRC changed
        t.observe(Some(&rx(1, Direction::BToA, 2, 10, 2)), 20, w); // wrong direction
        t.observe(Some(&rx(9, Direction::AToB, 0, 10, 2)), 20, w); // unknown stream
        t.observe(Some(&rx(1, Direction::AToB, 100, 10, 2)), 20, w); // beyond the schedule
        t.observe(None, 20, w);
        let f = t.figures(|s| if s == 0 { 7 } else { 2 });
        assert_eq!(f.sent, 9);
        assert_eq!(f.received, 5 + 2);
        assert_eq!(f.lost, 2); // seq 4 and 6 of stream 0
        assert_eq!(f.duplicated, 1);
        assert_eq!(f.reordered, 1);
        assert_eq!(f.ssrc_changes, 1);
        assert_eq!(f.malformed, 3);
        assert_eq!(f.unexpected, 1);
        assert!((f.loss_ratio - 2.0 / 9.0).abs() < 1e-12);
        assert_eq!(t.in_window, 7);
    }

    #[test]
    fn latency_only_inside_window_and_percentiles() {
        let mut t = DirectionTracker::new(Direction::BToA, 1, 10_000).unwrap();
        t.observe(
            Some(&rx(0, Direction::BToA, 0, 5, 1)),
            1_000_000_000,
            (100, 1_000_000),
        ); // before window
        for seq in 1..=1000u32 {
            // latencies 1..=1000 us
            t.observe(
                Some(&rx(0, Direction::BToA, seq, 1000, 1)),
                1000 + u64::from(seq) * 1000,
                (100, 1_000_000),
            );
        }
        let l = LatencyFigures::from_ns(&t.latency);
        assert_eq!(l.samples, 1000);
        assert!((l.p50_us - 500.0).abs() <= 1.0, "{l:?}");
        assert!((l.p99_us - 990.0).abs() <= 1.0, "{l:?}");
        assert!((l.max_us - 1000.0).abs() <= 1.0, "{l:?}");
        assert_eq!(
            LatencyFigures::from_ns(
                &DirectionTracker::new(Direction::AToB, 1, 1)
                    .unwrap()
                    .latency
            )
            .samples,
            0
        );
    }

    #[test]
    fn resources_per_packet_and_stream() {
        // 2 s window, 50 ticks of 100 Hz = 0.5 s CPU, 200k packets, RSS 10 MiB -> 20 MiB, 1000 streams.
        let r = Resources::compute(2_000_000_000, 50, 100, 200_000, (10_240, 20_480), 1000);
        assert!((r.cpu_us_per_packet - 2.5).abs() < 1e-9);
        assert!((r.cpu_percent_of_core - 25.0).abs() < 1e-9);
        assert!((r.packets_per_sec - 100_000.0).abs() < 1e-6);
        assert!((r.rss_per_stream_kib - 10.24).abs() < 1e-9);
    }

    #[test]
    fn verdict_follows_thresholds() {
        let mut r = Report {
            a_to_b: DirectionFigures {
                sent: 1000,
                received: 999,
                lost: 1,
                ..Default::default()
            },
            b_to_a: DirectionFigures {
                sent: 1000,
                received: 1000,
                ..Default::default()
            },
            latency: LatencyFigures {
                samples: 10,
                p99_us: 300.0,
                ..Default::default()
            },
            ..Default::default()
        };
        r.judge(0.0, None);
        assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
        assert!((r.loss_ratio - 0.0005).abs() < 1e-12);
        r.judge(0.001, Some(500.0));
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        r.judge(0.001, Some(200.0));
        assert_eq!(r.failures.len(), 1);
        assert!(r.markdown().contains("FAILED"));
        r.judge(0.001, None);
        assert!(r.markdown().contains("PASSED"));
        assert!(
            serde_json::to_string(&r)
                .unwrap()
                .contains("\"loss_ratio\"")
        );
    }
}
