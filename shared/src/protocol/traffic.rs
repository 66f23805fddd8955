//! Per-shard traffic figures carried by the `ShardStats` reply (protocol version 5): packets
//! and bytes each way, and the relay's packet-path latency as a fixed log2 histogram.
//!
//! The shard keeps one [`ShardTraffic`] in its own state and bumps it with plain integer
//! additions on the packet path (the shard thread is its only writer and answers
//! `ShardStats` itself, so no atomics or locks); the reply is a copy. All figures are
//! cumulative since the shard started, so the host exposes them as Prometheus counters and
//! `rate()` gives live packet rates.
//!
//! Histogram buckets are powers of two of nanoseconds: bucket 0 holds values up to
//! [`LATENCY_FIRST_BOUND_NS`] (256 ns), bucket `k` values in `(2^(k+7), 2^(k+8)]` ns, and the
//! last bucket everything above the previous bound (Prometheus `+Inf`). Recording is a
//! `leading_zeros`, a clamp and two additions: no allocation, no branch on the data size.

use serde::{Deserialize, Serialize};

/// Number of latency buckets, the last one unbounded.
pub const LATENCY_BUCKETS: usize = 20;
/// log2 of the first bucket's upper bound.
const FIRST_SHIFT: u32 = 8;
/// Upper bound of the first bucket in nanoseconds.
pub const LATENCY_FIRST_BOUND_NS: u64 = 1 << FIRST_SHIFT;

/// Cumulative traffic of one shard (all its sockets: relay ports and the WebRTC socket).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTraffic {
    /// Datagrams received.
    pub packets_in: u64,
    /// Their bytes (UDP payload).
    pub bytes_in: u64,
    /// Datagrams the kernel accepted for sending.
    pub packets_out: u64,
    /// Their bytes (UDP payload).
    pub bytes_out: u64,
    /// Relay forwards: time from the end of the `recvmmsg` that read a datagram to the return
    /// of the `sendto` that forwarded it.
    pub relay_latency: LatencyHistogram,
}

impl ShardTraffic {
    /// Counts a received batch.
    #[inline]
    pub fn received(&mut self, packets: usize, bytes: usize) {
        self.packets_in = self.packets_in.wrapping_add(packets as u64);
        self.bytes_in = self.bytes_in.wrapping_add(bytes as u64);
    }

    /// Counts one datagram the kernel took.
    #[inline]
    pub fn sent(&mut self, bytes: usize) {
        self.packets_out = self.packets_out.wrapping_add(1);
        self.bytes_out = self.bytes_out.wrapping_add(bytes as u64);
    }
}

/// A latency histogram in fixed log2 buckets of nanoseconds (not cumulative per bucket: each
/// value lands in exactly one bucket; the exposition accumulates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    /// Values per bucket.
    pub buckets: [u64; LATENCY_BUCKETS],
    /// Sum of all recorded values, nanoseconds (wraps after ~584 years of latency).
    pub sum_ns: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self { buckets: [0; LATENCY_BUCKETS], sum_ns: 0 }
    }
}

impl LatencyHistogram {
    /// The bucket a value of `ns` nanoseconds falls in.
    #[inline]
    pub fn bucket_index(ns: u64) -> usize {
        if ns <= LATENCY_FIRST_BOUND_NS {
            return 0;
        }
        // ceil(log2(ns)) for ns >= 2 is the bit length of ns - 1.
        let ceil_log2 = u64::BITS - (ns - 1).leading_zeros();
        ((ceil_log2 - FIRST_SHIFT) as usize).min(LATENCY_BUCKETS - 1)
    }

    /// Upper bound of bucket `k` in nanoseconds; `None` for the last (unbounded) bucket and
    /// beyond.
    pub fn upper_bound_ns(k: usize) -> Option<u64> {
        (k < LATENCY_BUCKETS - 1).then(|| LATENCY_FIRST_BOUND_NS << k)
    }

    /// Records one value.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        let k = Self::bucket_index(ns);
        // `k < LATENCY_BUCKETS` by construction; `get_mut` keeps this panic-free anyway.
        if let Some(b) = self.buckets.get_mut(k) {
            *b = b.wrapping_add(1);
        }
        self.sum_ns = self.sum_ns.wrapping_add(ns);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().fold(0u64, |a, b| a.wrapping_add(*b))
    }

    /// `(upper bound in ns or None for +Inf, values at or below it)`, Prometheus style.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        self.buckets.iter().enumerate().scan(0u64, |acc, (k, n)| {
            *acc = acc.wrapping_add(*n);
            Some((Self::upper_bound_ns(k), *acc))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bucket_edges() {
        assert_eq!(LatencyHistogram::bucket_index(0), 0);
        assert_eq!(LatencyHistogram::bucket_index(256), 0);
        assert_eq!(LatencyHistogram::bucket_index(257), 1);
        assert_eq!(LatencyHistogram::bucket_index(512), 1);
        assert_eq!(LatencyHistogram::bucket_index(513), 2);
        assert_eq!(LatencyHistogram::bucket_index(1_000), 2);
        assert_eq!(LatencyHistogram::bucket_index(1_025), 3);
        // 1 ms = 1e6 ns lies in (2^19, 2^20] -> bucket 12.
        assert_eq!(LatencyHistogram::bucket_index(1_000_000), 12);
        assert_eq!(LatencyHistogram::bucket_index(u64::MAX), LATENCY_BUCKETS - 1);
        assert_eq!(LatencyHistogram::upper_bound_ns(0), Some(256));
        assert_eq!(LatencyHistogram::upper_bound_ns(12), Some(1 << 20));
        assert_eq!(LatencyHistogram::upper_bound_ns(LATENCY_BUCKETS - 2), Some(256 << 18));
        assert_eq!(LatencyHistogram::upper_bound_ns(LATENCY_BUCKETS - 1), None);
    }

    #[test]
    fn cumulative_counts_and_sum() {
        let mut h = LatencyHistogram::default();
        for ns in [100, 300, 300, 5_000, u64::from(u32::MAX)] {
            h.record(ns);
        }
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum_ns, 100 + 600 + 5_000 + u64::from(u32::MAX));
        let c: Vec<_> = h.cumulative().collect();
        assert_eq!(c.len(), LATENCY_BUCKETS);
        assert_eq!(c[0], (Some(256), 1));
        assert_eq!(c[1], (Some(512), 3));
        assert_eq!(c[5], (Some(8_192), 4));
        assert_eq!(c[LATENCY_BUCKETS - 2].1, 4, "4.29 s is above the last bound (67 ms)");
        assert_eq!(c[LATENCY_BUCKETS - 1], (None, 5));
    }

    proptest! {
        #[test]
        fn value_lies_within_its_bucket(ns in any::<u64>()) {
            let k = LatencyHistogram::bucket_index(ns);
            prop_assert!(k < LATENCY_BUCKETS);
            if let Some(hi) = LatencyHistogram::upper_bound_ns(k) {
                prop_assert!(ns <= hi);
            }
            if k > 0 {
                let lo = LatencyHistogram::upper_bound_ns(k - 1);
                prop_assert!(lo.is_some_and(|lo| ns > lo));
            }
        }
    }
}
