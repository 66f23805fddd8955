//! Telling why the shard's WebRTC socket dropped a datagram, so drops are counted by reason
//! ([`WebRtcDrops`], the `ShardStats` request) instead of only traced.
//!
//! Strangers and malformed STUN are known at routing ([`super::demux`]); checks with the wrong
//! password are refused by the leg before str0m sees them. SRTP is harder: str0m authenticates
//! and replay-checks it internally and drops failures silently. The bridge therefore watches
//! the outcome: an SRTP packet (RTP, not RTCP) from a known 5-tuple that yields no decrypted RTP
//! was refused, and [`Delivered`] — the sequence numbers str0m recently delivered per SSRC —
//! tells a replay (already delivered) from an authentication failure.
//!
//! Invariants: fixed-size state per call (a few SSRC slots of a 64-packet window), no allocation,
//! integer operations only; the SRTP header fields read here are the cleartext ones (RFC 3711
//! encrypts only the payload).

use wavegate_shared::protocol::WebRtcDrops;

use super::demux::DemuxError;

/// SSRCs remembered per call (audio + video, each with a possible RTX stream).
const SLOTS: usize = 4;
/// How far back a sequence number is remembered.
const WINDOW: u16 = 64;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    ssrc: u32,
    /// Highest sequence number delivered (modulo 2^16).
    top: u16,
    /// Bit `i` set: `top - i` was delivered.
    bits: u64,
    used: bool,
}

/// Sequence numbers recently delivered by a leg, per SSRC.
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    slots: [Slot; SLOTS],
    /// The slot the next unknown SSRC replaces.
    next: usize,
}

impl Delivered {
    /// Notes that `(ssrc, seq)` was delivered.
    pub fn mark(&mut self, ssrc: u32, seq: u16) {
        let i = match self.slots.iter().position(|s| s.used && s.ssrc == ssrc) {
            Some(i) => i,
            None => {
                let i = self.next;
                self.next = (self.next + 1) % SLOTS;
                self.slots[i] = Slot { ssrc, top: seq, bits: 0, used: true };
                i
            }
        };
        let s = &mut self.slots[i];
        // Signed distance on the 16-bit circle: ahead of `top` or behind it.
        let ahead = seq.wrapping_sub(s.top) as i16;
        if ahead > 0 {
            let shift = ahead as u32;
            s.bits = if shift >= 64 { 0 } else { s.bits << shift };
            s.top = seq;
            s.bits |= 1;
        } else {
            let behind = u32::from(ahead.unsigned_abs());
            if behind < u32::from(WINDOW) {
                s.bits |= 1 << behind;
            }
        }
    }

    /// Whether `(ssrc, seq)` was delivered recently.
    pub fn seen(&self, ssrc: u32, seq: u16) -> bool {
        let Some(s) = self.slots.iter().find(|s| s.used && s.ssrc == ssrc) else {
            return false;
        };
        let behind = s.top.wrapping_sub(seq);
        behind < WINDOW && s.bits & (1 << behind) != 0
    }
}

/// The cleartext SSRC and sequence number of an SRTP packet (not SRTCP), if it is one.
pub fn srtp_id(datagram: &[u8]) -> Option<(u32, u16)> {
    if datagram.len() < 12 || crate::rtp::classify(datagram) != crate::rtp::PacketClass::Rtp {
        return None;
    }
    let seq = u16::from_be_bytes([datagram[2], datagram[3]]);
    let ssrc = u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]);
    Some((ssrc, seq))
}

/// Counts a datagram the demultiplexer could not route.
pub fn count_unrouted(drops: &mut WebRtcDrops, e: &DemuxError) {
    match e {
        DemuxError::UnknownUfrag | DemuxError::UnknownTuple => drops.strangers += 1,
        DemuxError::Stun(_) => drops.malformed_stun += 1,
        DemuxError::DuplicateUfrag | DemuxError::DuplicateLeg => drops.other += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn window_remembers_recent_numbers_per_ssrc_across_the_wrap() {
        let mut d = Delivered::default();
        for seq in [65_530u16, 65_531, 65_535, 0, 3] {
            d.mark(7, seq);
        }
        for seq in [65_530u16, 65_531, 65_535, 0, 3] {
            assert!(d.seen(7, seq), "{seq}");
        }
        assert!(!d.seen(7, 1) && !d.seen(7, 65_532) && !d.seen(7, 4), "gaps and the future are unseen");
        assert!(!d.seen(8, 3), "another SSRC");
        d.mark(7, 100);
        assert!(!d.seen(7, 3), "beyond the window: forgotten");
        d.mark(7, 99);
        assert!(d.seen(7, 99), "a late packet inside the window");
        // Slots are recycled oldest first.
        for ssrc in 10..10 + SLOTS as u32 {
            d.mark(ssrc, 1);
        }
        assert!(!d.seen(7, 100));
        assert!(d.seen(10, 1));
    }

    #[test]
    fn srtp_id_reads_cleartext_rtp_only() {
        let mut rtp = [0u8; 20];
        rtp[0] = 0x80;
        rtp[1] = 111;
        rtp[2..4].copy_from_slice(&513u16.to_be_bytes());
        rtp[8..12].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        assert_eq!(srtp_id(&rtp), Some((0xdead_beef, 513)));
        rtp[1] = 200; // SRTCP sender report
        assert_eq!(srtp_id(&rtp), None);
        assert_eq!(srtp_id(&[22, 254, 253]), None, "DTLS");
        assert_eq!(srtp_id(&rtp[..11]), None);
    }

    proptest! {
        /// Marking never panics; a packet marked within the window of its SSRC's newest is
        /// seen, one never marked is not.
        #[test]
        fn marked_is_seen(marks in proptest::collection::vec((0u32..3, any::<u16>()), 1..200)) {
            let mut d = Delivered::default();
            for (ssrc, seq) in &marks {
                d.mark(*ssrc, *seq);
            }
            let (ssrc, seq) = marks[marks.len() - 1];
            let newer = marks.iter().filter(|m| m.0 == ssrc).any(|m| (m.1.wrapping_sub(seq) as i16) >= 64);
            prop_assert!(newer || d.seen(ssrc, seq));
            let never = (0..=u16::MAX).find(|s| !marks.iter().any(|m| m.0 == ssrc && m.1 == *s));
            if let Some(never) = never {
                prop_assert!(!d.seen(ssrc, never));
            }
        }
    }
}
