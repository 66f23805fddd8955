//! The media plane's per-shard traffic as Prometheus series: packet and byte counters and the
//! relay latency histogram (`wavegate_shard_packets_total`, `wavegate_shard_bytes_total`,
//! `wavegate_relay_latency_seconds`).
//!
//! Each shard reports cumulative figures since it started (`ShardStats`). Here they are turned
//! into totals that never go down: each scrape adds the difference from the previous report,
//! and a report smaller than the previous one (the media plane restarted) counts from zero. So
//! the series are true Prometheus counters across media-plane restarts and `rate()` works.
//!
//! The prometheus crate cannot hold a histogram whose buckets were filled elsewhere, so these
//! families are written in the text format directly and appended to the registry's output.
//! Invariants: one series set per shard index (bounded by the shard count), no panics.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use wavegate_shared::protocol::{LatencyHistogram, ShardTraffic};

/// Running totals of one shard.
#[derive(Debug, Default, Clone)]
struct Totals {
    last: ShardTraffic,
    total: ShardTraffic,
}

/// Totals of every shard seen, by shard index.
#[derive(Debug, Default)]
pub struct TrafficTotals {
    shards: BTreeMap<u16, Totals>,
}

fn restarted(last: &ShardTraffic, new: &ShardTraffic) -> bool {
    new.packets_in < last.packets_in
        || new.packets_out < last.packets_out
        || new.bytes_in < last.bytes_in
        || new.bytes_out < last.bytes_out
        || new
            .relay_latency
            .buckets
            .iter()
            .zip(last.relay_latency.buckets.iter())
            .any(|(n, l)| n < l)
}

impl TrafficTotals {
    /// Adds what `shard` reported since its previous report.
    pub fn absorb(&mut self, shard: u16, new: &ShardTraffic) {
        let t = self.shards.entry(shard).or_default();
        let base = if restarted(&t.last, new) {
            ShardTraffic::default()
        } else {
            t.last.clone()
        };
        let add = |total: &mut u64, n: u64, b: u64| *total = total.wrapping_add(n - b);
        add(&mut t.total.packets_in, new.packets_in, base.packets_in);
        add(&mut t.total.packets_out, new.packets_out, base.packets_out);
        add(&mut t.total.bytes_in, new.bytes_in, base.bytes_in);
        add(&mut t.total.bytes_out, new.bytes_out, base.bytes_out);
        let (h, nh, bh) = (
            &mut t.total.relay_latency,
            &new.relay_latency,
            &base.relay_latency,
        );
        for ((total, n), b) in h.buckets.iter_mut().zip(nh.buckets).zip(bh.buckets) {
            add(total, n, b);
        }
        h.sum_ns = h.sum_ns.wrapping_add(nh.sum_ns.wrapping_sub(bh.sum_ns));
        t.last = new.clone();
    }

    /// The three families in the text exposition format (empty before any report).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.shards.is_empty() {
            return out;
        }
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut out,
            "wavegate_shard_packets_total",
            "counter",
            "Datagrams each media-plane shard received (in) and the kernel accepted for sending \
             (out), all its sockets, live calls included.",
        );
        for (shard, t) in &self.shards {
            for (dir, n) in [("in", t.total.packets_in), ("out", t.total.packets_out)] {
                let _ = writeln!(
                    out,
                    "wavegate_shard_packets_total{{direction=\"{dir}\",shard=\"{shard}\"}} {n}"
                );
            }
        }
        family(
            &mut out,
            "wavegate_shard_bytes_total",
            "counter",
            "UDP payload bytes of those datagrams.",
        );
        for (shard, t) in &self.shards {
            for (dir, n) in [("in", t.total.bytes_in), ("out", t.total.bytes_out)] {
                let _ = writeln!(
                    out,
                    "wavegate_shard_bytes_total{{direction=\"{dir}\",shard=\"{shard}\"}} {n}"
                );
            }
        }
        family(
            &mut out,
            "wavegate_relay_latency_seconds",
            "histogram",
            "Relay packet path per shard: end of the recvmmsg that read a datagram to the \
             return of the sendto that forwarded it.",
        );
        for (shard, t) in &self.shards {
            write_histogram(&mut out, *shard, &t.total.relay_latency);
        }
        out
    }
}

fn write_histogram(out: &mut String, shard: u16, h: &LatencyHistogram) {
    let name = "wavegate_relay_latency_seconds";
    for (bound, n) in h.cumulative() {
        let le = bound.map_or_else(|| "+Inf".to_string(), |ns| format!("{}", ns as f64 / 1e9));
        let _ = writeln!(out, "{name}_bucket{{shard=\"{shard}\",le=\"{le}\"}} {n}");
    }
    let sum = h.sum_ns as f64 / 1e9;
    let _ = writeln!(out, "{name}_sum{{shard=\"{shard}\"}} {sum}");
    let _ = writeln!(out, "{name}_count{{shard=\"{shard}\"}} {}", h.count());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(packets: u64, latencies: &[u64]) -> ShardTraffic {
        let mut t = ShardTraffic {
            packets_in: packets,
            packets_out: packets,
            bytes_in: packets * 172,
            bytes_out: packets * 172,
            ..ShardTraffic::default()
        };
        for ns in latencies {
            t.relay_latency.record(*ns);
        }
        t
    }

    #[test]
    fn totals_add_differences_and_survive_restarts() {
        let mut totals = TrafficTotals::default();
        assert_eq!(totals.render(), "");
        totals.absorb(0, &traffic(10, &[300, 300]));
        totals.absorb(0, &traffic(25, &[300, 300, 2_000]));
        totals.absorb(1, &traffic(4, &[]));
        let t = &totals.shards[&0].total;
        assert_eq!((t.packets_in, t.bytes_out), (25, 25 * 172));
        assert_eq!(t.relay_latency.count(), 3);
        // The media plane restarted: its counters start again from 5.
        totals.absorb(0, &traffic(5, &[100]));
        let t = &totals.shards[&0].total;
        assert_eq!(t.packets_out, 30);
        assert_eq!(t.relay_latency.count(), 4);
        assert_eq!(t.relay_latency.sum_ns, 300 + 300 + 2_000 + 100);
        let text = totals.render();
        assert!(
            text.contains("wavegate_shard_packets_total{direction=\"in\",shard=\"0\"} 30"),
            "{text}"
        );
        assert!(text.contains("wavegate_shard_packets_total{direction=\"out\",shard=\"1\"} 4"));
        assert!(text.contains("wavegate_relay_latency_seconds_count{shard=\"0\"} 4"));
        assert!(
            text.contains(
                "wavegate_relay_latency_seconds_bucket{shard=\"0\",le=\"0.000000256\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("wavegate_relay_latency_seconds_bucket{shard=\"0\",le=\"+Inf\"} 4"));
    }

    #[test]
    fn exposition_parses_as_prometheus_text() {
        let mut totals = TrafficTotals::default();
        totals.absorb(3, &traffic(7, &[1_000, 50_000, 9_000_000]));
        let text = totals.render();
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("text format");
        let count = scrape
            .samples
            .iter()
            .find(|s| s.metric == "wavegate_relay_latency_seconds_count")
            .map(|s| format!("{:?}", s.value));
        assert_eq!(count.as_deref(), Some("Untyped(3.0)"), "{text}");
        let hist = scrape
            .samples
            .iter()
            .find(|s| s.metric == "wavegate_relay_latency_seconds");
        match hist.map(|s| &s.value) {
            Some(prometheus_parse::Value::Histogram(b)) => {
                assert_eq!(b.len(), wavegate_shared::protocol::LATENCY_BUCKETS);
                assert_eq!(b.last().map(|c| c.count), Some(3.0));
            }
            other => panic!("no histogram: {other:?}\n{text}"),
        }
    }
}
