//! The parts of a call: endpoints (one per leg and m-line), per-direction rewriters and
//! payload-type maps.
//!
//! An [`Endpoint`] is one port pair of the media plane and what it knows about the peer on
//! that side: the address to send to (from SDP until the first packet latches it), whether
//! RTCP is multiplexed, and the [`Rewriter`] for packets that *arrive* on it and leave by the
//! other leg. Rewriters keep the outgoing SSRC fixed per direction and the outgoing sequence
//! numbers and timestamps continuous when the incoming SSRC changes. Everything here is plain
//! data mutated in place: no allocation per packet.

use std::net::SocketAddr;

use crate::rtp::RtpPacket;
use crate::sdp::Media;

/// Marks an unmapped payload type.
const NO_PT: u8 = 0xff;

/// (encoding, clock rate, channels) of the RFC 3551 static payload types.
fn static_codec(pt: u8) -> Option<(&'static str, u32, u16)> {
    Some(match pt {
        0 => ("PCMU", 8000, 1),
        3 => ("GSM", 8000, 1),
        4 => ("G723", 8000, 1),
        5 => ("DVI4", 8000, 1),
        6 => ("DVI4", 16000, 1),
        7 => ("LPC", 8000, 1),
        8 => ("PCMA", 8000, 1),
        9 => ("G722", 8000, 1),
        10 => ("L16", 44100, 2),
        11 => ("L16", 44100, 1),
        12 => ("QCELP", 8000, 1),
        13 => ("CN", 8000, 1),
        14 => ("MPA", 90000, 1),
        15 => ("G728", 8000, 1),
        16 => ("DVI4", 11025, 1),
        17 => ("DVI4", 22050, 1),
        18 => ("G729", 8000, 1),
        25 => ("CelB", 90000, 1),
        26 => ("JPEG", 90000, 1),
        28 => ("nv", 90000, 1),
        31 => ("H261", 90000, 1),
        32 => ("MPV", 90000, 1),
        33 => ("MP2T", 90000, 1),
        34 => ("H263", 90000, 1),
        _ => return None,
    })
}

/// What a payload type means in one m-line: rtpmap first, RFC 3551 for static types.
fn codec_of(m: &Media, pt: u8) -> Option<(&str, u32, u16)> {
    match m.rtpmap(pt) {
        Some(r) => Some((r.encoding.as_str(), r.clock_rate, r.channels.unwrap_or(1))),
        None => static_codec(pt),
    }
}

fn same_codec(a: (&str, u32, u16), b: (&str, u32, u16)) -> bool {
    // Opus is one codec whatever channel count a peer writes: RFC 7587 §7 mandates
    // `opus/48000/2`, but some SIP peers write `opus/48000`, and every Opus stream decodes
    // either way.
    let opus = a.0.eq_ignore_ascii_case("opus");
    a.0.eq_ignore_ascii_case(b.0) && a.1 == b.1 && (a.2 == b.2 || opus)
}

/// Payload-type translation for one direction of one stream, with each output's clock rate.
#[derive(Clone)]
pub struct PtMap {
    out: [u8; 128],
    clock: [u32; 128],
}

impl std::fmt::Debug for PtMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pairs: Vec<(usize, u8)> =
            self.out.iter().enumerate().filter(|(_, o)| **o != NO_PT).map(|(i, o)| (i, *o)).collect();
        f.debug_struct("PtMap").field("pairs", &pairs).finish()
    }
}

impl Default for PtMap {
    fn default() -> Self {
        Self { out: [NO_PT; 128], clock: [8000; 128] }
    }
}

impl PtMap {
    /// Every payload type of `m` to itself (before an answer, both sides use the offer's).
    pub fn identity(m: &Media) -> Self {
        let mut map = Self::default();
        for pt in m.payload_types() {
            map.set(pt, pt, codec_of(m, pt).map_or(8000, |c| c.1));
        }
        map
    }

    /// Maps `from`'s payload types to `to`'s by codec; types with no counterpart stay unmapped.
    pub fn between(from: &Media, to: &Media) -> Self {
        let mut map = Self::default();
        for pt in from.payload_types() {
            let mine = codec_of(from, pt);
            let theirs = to.payload_types().find(|&q| match (mine, codec_of(to, q)) {
                (Some(a), Some(b)) => same_codec(a, b),
                // Neither side says what the number means: only the same number matches.
                (None, None) => q == pt,
                _ => false,
            });
            if let Some(q) = theirs {
                map.set(pt, q, mine.map_or(8000, |c| c.1));
            }
        }
        map
    }

    fn set(&mut self, from: u8, to: u8, clock: u32) {
        if let (Some(o), Some(c)) = (self.out.get_mut(usize::from(from)), self.clock.get_mut(usize::from(from))) {
            *o = to;
            *c = clock.max(1);
        }
    }

    /// The outgoing payload type and its clock rate, if `pt` is mapped.
    #[inline]
    pub fn get(&self, pt: u8) -> Option<(u8, u32)> {
        let i = usize::from(pt & 0x7f);
        let o = self.out[i];
        (o != NO_PT).then_some((o, self.clock[i]))
    }
}

/// Rewrites the packets of one direction of one stream.
#[derive(Debug, Clone)]
pub struct Rewriter {
    /// The SSRC every packet of this direction leaves with.
    pub out_ssrc: u32,
    /// The SSRC currently arriving, once seen.
    pub in_ssrc: Option<u32>,
    seq_delta: u16,
    ts_delta: u32,
    last_out_seq: u16,
    last_out_ts: u32,
    last_ns: u64,
    /// Packets were inserted ([`Rewriter::insert`]) before any source was seen: the first source
    /// must continue after them like a new source would.
    inserted: bool,
}

impl Rewriter {
    /// A rewriter that sends as `out_ssrc`.
    pub fn new(out_ssrc: u32) -> Self {
        Self {
            out_ssrc,
            in_ssrc: None,
            seq_delta: 0,
            ts_delta: 0,
            last_out_seq: 0,
            last_out_ts: 0,
            last_ns: 0,
            inserted: false,
        }
    }

    /// Rewrites SSRC, sequence number, timestamp and payload type of `p` in place.
    ///
    /// When the incoming SSRC changes (a re-INVITE, a new source behind a PBX), the new
    /// source's numbers are shifted so the receiver sees the next sequence number and a
    /// timestamp advanced by the wall-clock gap, as if one source kept talking.
    #[inline]
    pub fn rewrite(&mut self, now_ns: u64, p: &mut RtpPacket<'_>, out_pt: u8, clock_rate: u32) {
        let ssrc = p.ssrc();
        let (seq, ts) = (p.sequence(), p.timestamp());
        if self.in_ssrc != Some(ssrc) {
            if self.in_ssrc.is_some() || self.inserted {
                let gap_ns = now_ns.saturating_sub(self.last_ns);
                let ticks = (u128::from(gap_ns) * u128::from(clock_rate) / 1_000_000_000).max(1) as u32;
                self.seq_delta = self.last_out_seq.wrapping_add(1).wrapping_sub(seq);
                self.ts_delta = self.last_out_ts.wrapping_add(ticks).wrapping_sub(ts);
            }
            self.in_ssrc = Some(ssrc);
            self.last_out_seq = seq.wrapping_add(self.seq_delta).wrapping_sub(1);
        }
        let out_seq = seq.wrapping_add(self.seq_delta);
        let out_ts = ts.wrapping_add(self.ts_delta);
        // Only a newer packet moves the continuation point; reordered ones keep their slot.
        if (out_seq.wrapping_sub(self.last_out_seq) as i16) > 0 {
            self.last_out_seq = out_seq;
            self.last_out_ts = out_ts;
            self.last_ns = now_ns;
        }
        p.set_ssrc(self.out_ssrc);
        p.set_sequence(out_seq);
        p.set_timestamp(out_ts);
        p.set_payload_type(out_pt);
    }

    /// Takes the next outgoing sequence number for a packet of our own (an injected DTMF event)
    /// and shifts the source's numbers after it, so the receiver sees no duplicate and no gap.
    pub fn insert(&mut self) -> u16 {
        self.last_out_seq = self.last_out_seq.wrapping_add(1);
        self.seq_delta = self.seq_delta.wrapping_add(1);
        self.inserted = true;
        self.last_out_seq
    }

    /// The outgoing timestamp for `now_ns` on a `clock_rate` Hz timeline: the last one sent,
    /// advanced by the wall-clock time since.
    pub fn now_ts(&self, now_ns: u64, clock_rate: u32) -> u32 {
        let gap_ns = now_ns.saturating_sub(self.last_ns);
        let ticks = (u128::from(gap_ns) * u128::from(clock_rate) / 1_000_000_000) as u32;
        self.last_out_ts.wrapping_add(ticks)
    }
}

/// One port pair of the media plane, facing one leg's peer for one m-line.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Our RTP port (RTCP is the next one).
    pub local_port: u16,
    /// Where this peer's RTP goes: from SDP, then latched.
    pub remote_rtp: Option<SocketAddr>,
    /// Where this peer's RTCP goes when not multiplexed.
    pub remote_rtcp: Option<SocketAddr>,
    /// The RTP address was learnt from a packet (symmetric RTP); strangers are dropped.
    pub rtp_latched: bool,
    /// The RTCP address was learnt from a packet.
    pub rtcp_latched: bool,
    /// This peer multiplexes RTCP on the RTP port (RFC 5761).
    pub rtcp_mux: bool,
    /// For packets arriving here and leaving by the other leg.
    pub rewriter: Rewriter,
    /// Payload types arriving here, mapped to the other leg's numbers.
    pub pt_map: PtMap,
}

impl Endpoint {
    /// A fresh endpoint on `local_port` whose outgoing direction sends as `out_ssrc`.
    pub fn new(local_port: u16, out_ssrc: u32) -> Self {
        Self {
            local_port,
            remote_rtp: None,
            remote_rtcp: None,
            rtp_latched: false,
            rtcp_latched: false,
            rtcp_mux: false,
            rewriter: Rewriter::new(out_ssrc),
            pt_map: PtMap::default(),
        }
    }

    /// Takes the peer's addresses from its SDP section unless packets already latched them.
    pub fn learn_from_sdp(&mut self, m: &Media, address: Option<std::net::IpAddr>) {
        self.rtcp_mux = m.rtcp_mux();
        let Some(ip) = address.filter(|ip| !ip.is_unspecified()) else {
            return;
        };
        if m.desc.port == 0 {
            return;
        }
        if !self.rtp_latched {
            self.remote_rtp = Some(SocketAddr::new(ip, m.desc.port));
        }
        if !self.rtcp_latched {
            let (port, addr) = m.rtcp().unwrap_or((m.desc.port.wrapping_add(1), None));
            self.remote_rtcp = Some(SocketAddr::new(addr.unwrap_or(ip), port));
        }
    }

    /// Where RTCP for this peer goes and from which of our ports.
    #[inline]
    pub fn rtcp_route(&self) -> Option<(SocketAddr, u16)> {
        if self.rtcp_mux {
            self.remote_rtp.map(|a| (a, self.local_port))
        } else {
            let dst =
                self.remote_rtcp.or_else(|| self.remote_rtp.map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1))));
            dst.map(|a| (a, self.local_port.wrapping_add(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::write_rtp;
    use crate::sdp::Sdp;

    fn media(formats: &str, maps: &str) -> Media {
        let text = format!("v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP {formats}\r\n{maps}");
        Sdp::parse(&text).unwrap().media.remove(0)
    }

    #[test]
    fn pt_map_by_codec_and_static_meaning() {
        let offer = media("0 8 96 101", "a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n");
        let answer = media(
            "8 111 100",
            "a=rtpmap:111 OPUS/48000/2\r\na=rtpmap:100 telephone-event/8000\r\na=rtpmap:8 PCMA/8000\r\n",
        );
        let a_to_b = PtMap::between(&offer, &answer);
        assert_eq!(a_to_b.get(0), None, "PCMU not in the answer");
        assert_eq!(a_to_b.get(8), Some((8, 8000)));
        assert_eq!(a_to_b.get(96), Some((111, 48000)), "case-insensitive encoding");
        assert_eq!(a_to_b.get(101), Some((100, 8000)));
        let b_to_a = PtMap::between(&answer, &offer);
        assert_eq!(b_to_a.get(111), Some((96, 48000)));
        assert_eq!(b_to_a.get(100), Some((101, 8000)));
        let mono = media("96", "a=rtpmap:96 opus/48000\r\n");
        assert_eq!(PtMap::between(&offer, &mono).get(96), Some((96, 48000)), "Opus without /2 is Opus");
        let pcmu2 = media("97", "a=rtpmap:97 PCMU/8000/2\r\n");
        assert_eq!(PtMap::between(&media("0", ""), &pcmu2).get(0), None, "other codecs: channels differ");
    }

    fn packet(buf: &mut [u8], seq: u16, ts: u32, ssrc: u32) -> RtpPacket<'_> {
        let n = write_rtp(buf, 0, seq, ts, ssrc, &[0; 160]).unwrap();
        RtpPacket::parse(&mut buf[..n]).unwrap()
    }

    #[test]
    fn continuity_across_ssrc_change() {
        let mut r = Rewriter::new(0xabcd);
        let mut buf = [0u8; 200];
        for i in 0..3u16 {
            let mut p = packet(&mut buf, 100 + i, 1000 + 160 * u32::from(i), 1);
            r.rewrite(20_000_000 * u64::from(i), &mut p, 8, 8000);
            assert_eq!(
                (p.ssrc(), p.sequence(), p.timestamp(), p.payload_type()),
                (0xabcd, 100 + i, 1000 + 160 * u32::from(i), 8)
            );
        }
        // New source 20 ms later with unrelated numbers.
        let mut p = packet(&mut buf, 5, 999_999, 2);
        r.rewrite(60_000_000, &mut p, 8, 8000);
        assert_eq!((p.ssrc(), p.sequence(), p.timestamp()), (0xabcd, 103, 1320 + 160));
        let mut p = packet(&mut buf, 6, 999_999 + 160, 2);
        r.rewrite(80_000_000, &mut p, 8, 8000);
        assert_eq!((p.sequence(), p.timestamp()), (104, 1320 + 320));
    }

    #[test]
    fn inserted_packets_shift_the_source() {
        let mut r = Rewriter::new(9);
        let mut buf = [0u8; 200];
        let first = r.insert();
        let mut p = packet(&mut buf, 500, 8000, 1);
        r.rewrite(0, &mut p, 0, 8000);
        assert_eq!(p.sequence(), first.wrapping_add(1), "the first source continues after an insert");
        let mut p = packet(&mut buf, 501, 8160, 1);
        r.rewrite(20_000_000, &mut p, 0, 8000);
        let mine = r.insert();
        assert_eq!(mine, p.sequence().wrapping_add(1));
        assert_eq!(r.now_ts(30_000_000, 8000), p.timestamp() + 80, "10 ms later at 8 kHz");
        let mut p2 = packet(&mut buf, 502, 8320, 1);
        r.rewrite(40_000_000, &mut p2, 0, 8000);
        assert_eq!(p2.sequence(), mine.wrapping_add(1), "no duplicate after the insert");
    }

    #[test]
    fn reordered_packet_does_not_move_continuation() {
        let mut r = Rewriter::new(7);
        let mut buf = [0u8; 200];
        for seq in [10u16, 12, 11] {
            let mut p = packet(&mut buf, seq, u32::from(seq) * 160, 1);
            r.rewrite(0, &mut p, 0, 8000);
        }
        let mut p = packet(&mut buf, 1, 0, 2);
        r.rewrite(0, &mut p, 0, 8000);
        assert_eq!(p.sequence(), 13);
    }
}
