//! Media quality of the SIP side of a WebRTC call: receive statistics of its RTP (RFC 3550 A.3
//! loss, A.8 interarrival jitter) and the report blocks of its RTCP (what it says about ours).
//!
//! Sans-IO and allocation-free: [`RecvStats::on_packet`] is a handful of integer operations per
//! packet (arrival time is the shard's `now_ns`); [`report_blocks`] walks a compound RTCP packet
//! with bounds checks and never panics (a fuzz target and a property test cover it). The browser
//! side's figures come from str0m, which runs RTCP with the browser.

/// One RTCP report block (RFC 3550 §6.4.1), as sent in an SR or RR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source it reports on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, per 256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed on the wire; negative clamps to 0).
    pub cumulative_lost: u32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received from the source.
    pub lsr: u32,
    /// Delay since that SR, 1/65536 s.
    pub dlsr: u32,
}

const BLOCK_LEN: usize = 24;

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The report blocks of every SR (200) and RR (201) in a compound RTCP packet, passed to `f`.
/// Stops at the first malformed header or length; other packet types are skipped.
pub fn report_blocks(rtcp: &[u8], mut f: impl FnMut(ReportBlock)) {
    let mut offset = 0;
    // Bounded: every step advances by at least one 4-byte word.
    while let Some(h) = rtcp.get(offset..offset + 4) {
        if h[0] >> 6 != 2 {
            return;
        }
        let count = usize::from(h[0] & 0x1f);
        let len = (usize::from(u16::from_be_bytes([h[2], h[3]])) + 1) * 4;
        let Some(packet) = rtcp.get(offset..offset + len) else { return };
        let first_block = match h[1] {
            200 => Some(28),
            201 => Some(8),
            _ => None,
        };
        if let Some(start) = first_block {
            for i in 0..count {
                let at = start + i * BLOCK_LEN;
                let Some(b) = packet.get(at..at + BLOCK_LEN) else { break };
                let lost = u32::from_be_bytes([0, b[5], b[6], b[7]]);
                let cumulative_lost = if lost & 0x80_0000 != 0 { 0 } else { lost };
                let (Some(ssrc), Some(highest_seq), Some(jitter), Some(lsr), Some(dlsr)) =
                    (be32(b, 0), be32(b, 8), be32(b, 12), be32(b, 16), be32(b, 20))
                else {
                    break;
                };
                f(ReportBlock { ssrc, fraction_lost: b[4], cumulative_lost, highest_seq, jitter, lsr, dlsr });
            }
        }
        offset += len;
    }
}

/// Receive statistics of one RTP source (RFC 3550 A.1, A.3, A.8), restarted when the SSRC
/// changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecvStats {
    ssrc: Option<u32>,
    base_seq: u32,
    /// Extended highest sequence number.
    max_seq: u32,
    received: u64,
    /// Previous transit time (arrival in RTP units minus timestamp).
    transit: Option<i64>,
    /// Jitter ×16 in RTP timestamp units (the RFC's fixed-point form).
    jitter16: u64,
    clock: u32,
    /// Loss of earlier sources, so a source change does not forget it.
    lost_before: u64,
}

impl RecvStats {
    /// Accounts one packet arriving at `now_ns` with header `seq`/`timestamp` of a `clock` Hz
    /// stream from `ssrc`.
    pub fn on_packet(&mut self, now_ns: u64, ssrc: u32, seq: u16, timestamp: u32, clock: u32) {
        if self.ssrc != Some(ssrc) {
            self.lost_before += self.lost();
            *self = Self {
                ssrc: Some(ssrc),
                base_seq: u32::from(seq),
                max_seq: u32::from(seq),
                clock: clock.max(1),
                lost_before: self.lost_before,
                ..Self::default()
            };
        }
        self.received += 1;
        // Extend the sequence number around the highest one (accept up to 3000 ahead, treat the
        // rest as late/reordered, as A.1 does without its probation and resync).
        let cycles = self.max_seq & !0xffff;
        let delta = seq.wrapping_sub(self.max_seq as u16);
        if delta != 0 && delta < 3000 {
            let ext = if seq < self.max_seq as u16 { cycles.wrapping_add(0x1_0000) } else { cycles };
            self.max_seq = ext | u32::from(seq);
        }
        // Jitter: arrival in RTP units; only differences matter, so wrapping is fine.
        let arrival = (u128::from(now_ns) * u128::from(self.clock) / 1_000_000_000) as u64 as i64;
        let transit = arrival.wrapping_sub(i64::from(timestamp));
        if let Some(prev) = self.transit {
            let d = transit.wrapping_sub(prev).unsigned_abs().min(u64::from(u32::MAX));
            // J += (|D| - J) / 16, kept ×16.
            self.jitter16 = self.jitter16 + d - (self.jitter16 + 8) / 16;
        }
        self.transit = Some(transit);
    }

    /// Packets expected but not received (never negative: duplicates do not count as gains).
    pub fn lost(&self) -> u64 {
        if self.ssrc.is_none() {
            return 0;
        }
        let expected = u64::from(self.max_seq.wrapping_sub(self.base_seq)) + 1;
        expected.saturating_sub(self.received)
    }

    /// Packets lost across all sources seen.
    pub fn total_lost(&self) -> u64 {
        self.lost_before + self.lost()
    }

    /// Interarrival jitter in microseconds.
    pub fn jitter_us(&self) -> u32 {
        let ticks = self.jitter16 / 16;
        u32::try_from(ticks * 1_000_000 / u64::from(self.clock.max(1))).unwrap_or(u32::MAX)
    }
}

/// RTP timestamp units of a `clock` Hz stream in microseconds.
pub fn ticks_to_us(ticks: u32, clock: u32) -> u32 {
    u32::try_from(u64::from(ticks) * 1_000_000 / u64::from(clock.max(1))).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn steady_stream_has_no_loss_and_no_jitter() {
        let mut s = RecvStats::default();
        for i in 0..100u16 {
            s.on_packet(u64::from(i) * 20 * MS, 7, 65_500u16.wrapping_add(i), 160 * u32::from(i), 8000);
        }
        assert_eq!((s.lost(), s.jitter_us()), (0, 0), "across the sequence wrap");
    }

    #[test]
    fn gaps_count_as_loss_and_late_arrivals_as_jitter() {
        let mut s = RecvStats::default();
        for i in 0..50u16 {
            if i % 10 == 3 {
                continue; // 5 lost
            }
            // Every other packet 4 ms late: |D| alternates 32 ticks at 8 kHz.
            let late = if i % 2 == 1 { 4 * MS } else { 0 };
            s.on_packet(u64::from(i) * 20 * MS + late, 7, i, 160 * u32::from(i), 8000);
        }
        assert_eq!(s.lost(), 5);
        let j = s.jitter_us();
        assert!((2_500..=4_000).contains(&j), "about 4 ms of jitter converging: {j} µs");
        // A new source starts over but keeps the old loss in the total.
        s.on_packet(2000 * MS, 9, 100, 0, 8000);
        assert_eq!((s.lost(), s.total_lost()), (0, 5));
    }

    #[test]
    fn rfc3550_receiver_report_blocks() {
        // An RR with two blocks, then an SR with one block, then an SDES (skipped).
        let mut p = vec![0x82, 201, 0, 13, 0, 0, 0, 1];
        p.extend_from_slice(&[0xAA, 0, 0, 1, 64, 0, 0, 12, 0, 1, 0, 5, 0, 0, 0, 80, 1, 2, 3, 4, 0, 1, 0, 0]);
        p.extend_from_slice(&[0xBB, 0, 0, 2, 0, 0xff, 0xff, 0xff, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut sr = vec![0x81, 200, 0, 12, 0, 0, 0, 2];
        sr.extend_from_slice(&[0; 20]);
        sr.extend_from_slice(&[0xCC, 0, 0, 3, 10, 0, 0, 3, 0, 0, 0, 7, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&sr);
        p.extend_from_slice(&[0x81, 202, 0, 1, 0, 0, 0, 2]);
        let mut blocks = Vec::new();
        report_blocks(&p, |b| blocks.push(b));
        assert_eq!(blocks.len(), 3);
        assert_eq!(
            blocks[0],
            ReportBlock {
                ssrc: 0xAA00_0001,
                fraction_lost: 64,
                cumulative_lost: 12,
                highest_seq: 0x0001_0005,
                jitter: 80,
                lsr: 0x0102_0304,
                dlsr: 0x0001_0000
            }
        );
        assert_eq!(blocks[1].cumulative_lost, 0, "a negative count (duplicates) clamps to 0");
        assert_eq!((blocks[2].ssrc, blocks[2].fraction_lost, blocks[2].jitter), (0xCC00_0003, 10, 256));
        // A count larger than the packet holds stops at the end of the packet; a length beyond
        // the buffer stops the walk.
        let mut more = p[..56].to_vec();
        more[0] = 0x9f;
        let mut n = 0;
        report_blocks(&more, |_| n += 1);
        assert_eq!(n, 2);
        report_blocks(&p[..40], |_| n += 1);
        assert_eq!(n, 2);
        assert_eq!(ticks_to_us(80, 8000), 10_000);
    }

    proptest! {
        #[test]
        fn report_blocks_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut n = 0usize;
            report_blocks(&bytes, |_| n += 1);
            prop_assert!(n <= bytes.len() / BLOCK_LEN);
        }

        #[test]
        fn loss_is_exact_for_in_order_streams(keep in proptest::collection::vec(any::<bool>(), 2..400), start in any::<u16>()) {
            let mut s = RecvStats::default();
            // The first and last packets arrive; the rest as `keep` says.
            let n = keep.len();
            let mut lost = 0;
            for (i, k) in keep.iter().enumerate() {
                if *k || i == 0 || i == n - 1 {
                    s.on_packet(i as u64 * 20 * MS, 1, start.wrapping_add(i as u16), 160 * i as u32, 8000);
                } else {
                    lost += 1;
                }
            }
            prop_assert_eq!(s.lost(), lost);
        }
    }
}
