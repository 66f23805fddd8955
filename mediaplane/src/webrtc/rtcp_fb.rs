//! RTCP keyframe requests: Picture Loss Indication (RFC 4585 §6.3.1, PT 206 FMT 1) and Full
//! Intra Request (RFC 5104 §4.3.1, PT 206 FMT 4) — found in a compound RTCP packet from the SIP
//! side, and written toward it when the browser asks for a keyframe.
//!
//! Invariants: bounds-checked walk, no allocation, never panics on any input (fuzz target
//! `rtcp_feedback`); every step of the walk advances by at least one 4-byte word.

/// A keyframe request found in RTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyframeRequest {
    /// FIR (RFC 5104) rather than PLI (RFC 4585).
    pub fir: bool,
    /// The SSRC of the stream a keyframe is wanted for (PLI: media source; FIR: the FCI entry).
    pub media_ssrc: u32,
}

/// Payload-specific feedback packet type (RFC 4585 §6.1).
const PSFB: u8 = 206;
const FMT_PLI: u8 = 1;
const FMT_FIR: u8 = 4;

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Calls `f` for every PLI and every FIR entry in the compound RTCP packet `rtcp`. Stops at the
/// first packet whose header does not validate (version, length beyond the datagram).
pub fn keyframe_requests(rtcp: &[u8], mut f: impl FnMut(KeyframeRequest)) {
    let mut offset = 0;
    while let Some(h) = rtcp.get(offset..offset + 4) {
        if h[0] >> 6 != 2 {
            return;
        }
        let fmt = h[0] & 0x1f;
        let len = (usize::from(u16::from_be_bytes([h[2], h[3]])) + 1) * 4;
        let Some(packet) = rtcp.get(offset..offset + len) else {
            return;
        };
        if h[1] == PSFB {
            match fmt {
                FMT_PLI => {
                    if let Some(media_ssrc) = be32(packet, 8) {
                        f(KeyframeRequest { fir: false, media_ssrc });
                    }
                }
                FMT_FIR => {
                    // FCI entries of 8 bytes after the 12-byte common header: SSRC, seq, reserved.
                    let mut at = 12;
                    while let Some(media_ssrc) = be32(packet, at) {
                        if packet.len() < at + 8 {
                            break;
                        }
                        f(KeyframeRequest { fir: true, media_ssrc });
                        at += 8;
                    }
                }
                _ => {}
            }
        }
        offset += len;
    }
}

/// Length of a PLI packet.
pub const PLI_LEN: usize = 12;
/// Length of a FIR packet with one FCI entry.
pub const FIR_LEN: usize = 20;

/// Writes a PLI from `sender_ssrc` about `media_ssrc` into `buf`; returns its length, `None`
/// when `buf` is too short.
pub fn write_pli(buf: &mut [u8], sender_ssrc: u32, media_ssrc: u32) -> Option<usize> {
    let out = buf.get_mut(..PLI_LEN)?;
    out[0] = 0x80 | FMT_PLI;
    out[1] = PSFB;
    out[2..4].copy_from_slice(&2u16.to_be_bytes());
    out[4..8].copy_from_slice(&sender_ssrc.to_be_bytes());
    out[8..12].copy_from_slice(&media_ssrc.to_be_bytes());
    Some(PLI_LEN)
}

/// Writes a FIR from `sender_ssrc` asking `media_ssrc` for a keyframe, command sequence number
/// `seq` (RFC 5104 §4.3.1.1: incremented per new request); returns its length.
pub fn write_fir(buf: &mut [u8], sender_ssrc: u32, media_ssrc: u32, seq: u8) -> Option<usize> {
    let out = buf.get_mut(..FIR_LEN)?;
    out[0] = 0x80 | FMT_FIR;
    out[1] = PSFB;
    out[2..4].copy_from_slice(&4u16.to_be_bytes());
    out[4..8].copy_from_slice(&sender_ssrc.to_be_bytes());
    out[8..12].copy_from_slice(&0u32.to_be_bytes()); // media source SSRC: unused (RFC 5104)
    out[12..16].copy_from_slice(&media_ssrc.to_be_bytes());
    out[16] = seq;
    out[17..20].fill(0);
    Some(FIR_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A receiver report with no blocks (RFC 3550 §6.4.2), as phones send before feedback.
    const RR: [u8; 8] = [0x80, 201, 0, 1, 0, 0, 0, 7];

    #[test]
    fn pli_as_in_rfc_4585() {
        // RFC 4585 §6.1 common format: V=2 P=0 FMT=1, PT=206, length 2, sender, media source.
        let pli = [0x81, 0xce, 0x00, 0x02, 0x11, 0x22, 0x33, 0x44, 0xaa, 0xbb, 0xcc, 0xdd];
        let mut got = Vec::new();
        keyframe_requests(&pli, |r| got.push(r));
        assert_eq!(got, vec![KeyframeRequest { fir: false, media_ssrc: 0xaabb_ccdd }]);
        let mut buf = [0u8; 12];
        assert_eq!(write_pli(&mut buf, 0x1122_3344, 0xaabb_ccdd), Some(12));
        assert_eq!(buf, pli);
    }

    #[test]
    fn fir_entries_in_a_compound_packet() {
        // RR then a FIR with two FCI entries (RFC 5104 §4.3.1.1).
        let mut rtcp = RR.to_vec();
        rtcp.extend_from_slice(&[0x84, 0xce, 0x00, 0x06, 0, 0, 0, 1, 0, 0, 0, 0]);
        rtcp.extend_from_slice(&[0, 0, 0, 9, 3, 0, 0, 0, 0, 0, 0, 10, 4, 0, 0, 0]);
        let mut got = Vec::new();
        keyframe_requests(&rtcp, |r| got.push(r));
        assert_eq!(
            got,
            vec![KeyframeRequest { fir: true, media_ssrc: 9 }, KeyframeRequest { fir: true, media_ssrc: 10 }]
        );
        let mut buf = [0u8; 32];
        let n = write_fir(&mut buf, 1, 9, 3).unwrap();
        let mut again = Vec::new();
        keyframe_requests(&buf[..n], |r| again.push(r));
        assert_eq!(again, vec![KeyframeRequest { fir: true, media_ssrc: 9 }]);
        assert_eq!(buf[16], 3, "sequence number");
    }

    #[test]
    fn other_feedback_and_broken_packets_yield_nothing() {
        let mut got = 0;
        // Generic NACK (RTPFB 205 FMT 1), REMB (206 FMT 15), a truncated PLI, a bad version.
        let nack = [0x81, 205, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 5, 0, 0];
        let remb = [0x8f, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0];
        for p in [&nack[..], &remb[..], &[0x81, 206, 0, 2, 0, 0, 0, 1][..], &[0x41, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]]
        {
            keyframe_requests(p, |_| got += 1);
        }
        assert_eq!(got, 0);
        assert_eq!(write_pli(&mut [0u8; 11], 1, 2), None);
        assert_eq!(write_fir(&mut [0u8; 19], 1, 2, 0), None);
    }

    proptest! {
        #[test]
        fn never_panics_and_is_bounded(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut n = 0usize;
            keyframe_requests(&data, |_| n += 1);
            prop_assert!(n <= data.len() / 8);
        }

        #[test]
        fn written_requests_read_back(sender in any::<u32>(), media in any::<u32>(), seq in any::<u8>(), fir in any::<bool>()) {
            let mut buf = [0u8; 32];
            let n = if fir { write_fir(&mut buf, sender, media, seq) } else { write_pli(&mut buf, sender, media) };
            let mut got = Vec::new();
            keyframe_requests(&buf[..n.unwrap()], |r| got.push(r));
            prop_assert_eq!(got, vec![KeyframeRequest { fir, media_ssrc: media }]);
        }
    }
}
