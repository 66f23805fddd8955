//! Zero-allocation views of RTP (RFC 3550 §5.1) and RTCP (RFC 3550 §6) packets in a caller's
//! `&mut [u8]`, for the relay's hot path.
//!
//! A view exists only after its header was validated: version 2, the fixed header, the CSRC
//! list, the header extension and the padding all fit in the buffer (RTP); every packet of a
//! compound has version 2, a PT in 200..=206 and a length inside the buffer (RTCP). Accessors
//! therefore index without further checks and never panic. [`classify`] is the RFC 5761 §4
//! demultiplexer for rtcp-mux: the second byte's low seven bits in 64..=95 mean RTCP.

/// Why a buffer is not a usable RTP or RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the fixed header.
    #[error("packet of {len} bytes is shorter than the fixed header")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    /// CSRC list or header extension runs past the end of the packet.
    #[error("header of {header} bytes exceeds the {len}-byte packet")]
    HeaderOverrun {
        /// Bytes the header claims.
        header: usize,
        /// Bytes received.
        len: usize,
    },
    /// The padding count is zero or larger than the payload.
    #[error("bad padding")]
    BadPadding,
    /// An RTCP packet type outside 200..=206.
    #[error("RTCP packet type {0} outside 200..=206")]
    BadRtcpType(u8),
    /// An RTCP length field runs past the end of the compound packet.
    #[error("RTCP length runs past the end of the compound packet")]
    RtcpOverrun,
}

/// What a datagram on an RTP port is, by its first two bytes (RFC 5761 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketClass {
    /// Version 2 and a payload type outside 64..=95.
    Rtp,
    /// Version 2 and a packet type 192..=223 (low seven bits 64..=95).
    Rtcp,
    /// Too short or not version 2 (STUN, garbage).
    Other,
}

/// Sorts a datagram received on a port that may carry multiplexed RTP and RTCP.
pub fn classify(buf: &[u8]) -> PacketClass {
    if buf.len() < 2 || buf[0] >> 6 != 2 {
        return PacketClass::Other;
    }
    if (64..=95).contains(&(buf[1] & 0x7f)) { PacketClass::Rtcp } else { PacketClass::Rtp }
}

/// The fixed RTP header length.
pub const RTP_HEADER_LEN: usize = 12;

/// A validated RTP packet inside a mutable buffer.
#[derive(Debug)]
pub struct RtpPacket<'a> {
    buf: &'a mut [u8],
    header_len: usize,
    padding: usize,
}

impl<'a> RtpPacket<'a> {
    /// Validates `buf` as one RTP packet.
    pub fn parse(buf: &'a mut [u8]) -> Result<Self, RtpError> {
        let (header_len, padding) = validate_rtp(buf)?;
        Ok(Self { buf, header_len, padding })
    }

    /// The marker bit.
    pub fn marker(&self) -> bool {
        self.buf[1] & 0x80 != 0
    }
    /// The payload type (0..=127).
    pub fn payload_type(&self) -> u8 {
        self.buf[1] & 0x7f
    }
    /// Replaces the payload type, keeping the marker bit.
    pub fn set_payload_type(&mut self, pt: u8) {
        self.buf[1] = (self.buf[1] & 0x80) | (pt & 0x7f);
    }
    /// The sequence number.
    pub fn sequence(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }
    /// Replaces the sequence number.
    pub fn set_sequence(&mut self, seq: u16) {
        self.buf[2..4].copy_from_slice(&seq.to_be_bytes());
    }
    /// The media timestamp.
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]])
    }
    /// Replaces the media timestamp.
    pub fn set_timestamp(&mut self, ts: u32) {
        self.buf[4..8].copy_from_slice(&ts.to_be_bytes());
    }
    /// The synchronisation source.
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]])
    }
    /// Replaces the synchronisation source.
    pub fn set_ssrc(&mut self, ssrc: u32) {
        self.buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    }
    /// Number of contributing sources.
    pub fn csrc_count(&self) -> usize {
        usize::from(self.buf[0] & 0x0f)
    }
    /// Whether a header extension is present.
    pub fn has_extension(&self) -> bool {
        self.buf[0] & 0x10 != 0
    }
    /// Bytes of fixed header, CSRCs and extension.
    pub fn header_len(&self) -> usize {
        self.header_len
    }
    /// The payload, without header and padding.
    pub fn payload(&self) -> &[u8] {
        &self.buf[self.header_len..self.buf.len() - self.padding]
    }
    /// The payload, writable in place (a telephone-event's duration is rescaled there).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.buf.len() - self.padding;
        &mut self.buf[self.header_len..end]
    }
    /// The whole packet.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf
    }
}

/// Checks an RTP header; returns (header length, padding length).
fn validate_rtp(buf: &[u8]) -> Result<(usize, usize), RtpError> {
    let len = buf.len();
    if len < RTP_HEADER_LEN {
        return Err(RtpError::TooShort { len });
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let mut header = RTP_HEADER_LEN + 4 * usize::from(buf[0] & 0x0f);
    if buf[0] & 0x10 != 0 {
        // Extension: 16-bit profile, 16-bit length in 32-bit words, then the words.
        if header + 4 > len {
            return Err(RtpError::HeaderOverrun { header: header + 4, len });
        }
        let words = usize::from(u16::from_be_bytes([buf[header + 2], buf[header + 3]]));
        header += 4 + 4 * words;
    }
    if header > len {
        return Err(RtpError::HeaderOverrun { header, len });
    }
    let padding = if buf[0] & 0x20 != 0 {
        let p = usize::from(buf[len - 1]);
        if p == 0 || header + p > len {
            return Err(RtpError::BadPadding);
        }
        p
    } else {
        0
    };
    Ok((header, padding))
}

/// The RTCP common header length.
pub const RTCP_HEADER_LEN: usize = 4;

/// A validated compound RTCP packet inside a mutable buffer.
#[derive(Debug)]
pub struct RtcpCompound<'a> {
    buf: &'a mut [u8],
}

/// Position of one packet inside a compound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpItem {
    /// Offset of its common header.
    pub offset: usize,
    /// Its length in bytes, header included.
    pub len: usize,
    /// Packet type (200..=206).
    pub packet_type: u8,
    /// The 5-bit count field (report blocks, sources, or feedback format).
    pub count: u8,
}

impl<'a> RtcpCompound<'a> {
    /// Validates every packet in `buf`.
    pub fn parse(buf: &'a mut [u8]) -> Result<Self, RtpError> {
        let mut offset = 0;
        if buf.len() < RTCP_HEADER_LEN + 4 {
            return Err(RtpError::TooShort { len: buf.len() });
        }
        while offset < buf.len() {
            let item = read_item(buf, offset)?;
            offset += item.len;
        }
        Ok(Self { buf })
    }

    /// The packets of the compound, in order.
    pub fn items(&self) -> impl Iterator<Item = RtcpItem> + '_ {
        let mut offset = 0;
        std::iter::from_fn(move || {
            if offset >= self.buf.len() {
                return None;
            }
            let item = read_item(self.buf, offset).ok()?;
            offset += item.len;
            Some(item)
        })
    }

    /// Reads the 32-bit word at byte `at`; `None` when outside the buffer.
    pub fn word(&self, at: usize) -> Option<u32> {
        let b = self.buf.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Writes the 32-bit word at byte `at`; false when outside the buffer.
    pub fn set_word(&mut self, at: usize, v: u32) -> bool {
        match self.buf.get_mut(at..at + 4) {
            Some(b) => {
                b.copy_from_slice(&v.to_be_bytes());
                true
            }
            None => false,
        }
    }

    /// Rewrites SSRCs in every packet without allocating.
    ///
    /// `sender` maps the sender SSRC (the word after each common header: SR/RR/SDES's first
    /// chunk/BYE's first source/APP/feedback's sender). `reported` maps the SSRCs the packet
    /// talks *about* (SR/RR report blocks, feedback media SSRC).
    pub fn rewrite_ssrcs(&mut self, sender: impl Fn(u32) -> u32, reported: impl Fn(u32) -> u32) {
        let mut offset = 0;
        while offset < self.buf.len() {
            let Ok(item) = read_item(self.buf, offset) else { return };
            let ssrc_at = item.offset + RTCP_HEADER_LEN;
            if let Some(s) = self.word(ssrc_at) {
                self.set_word(ssrc_at, sender(s));
            }
            let blocks_at = match item.packet_type {
                200 => Some(ssrc_at + 4 + 20), // SR: sender info is 20 bytes
                201 => Some(ssrc_at + 4),
                _ => None,
            };
            if let Some(mut at) = blocks_at {
                for _ in 0..item.count {
                    if at + 24 > item.offset + item.len {
                        break;
                    }
                    if let Some(s) = self.word(at) {
                        self.set_word(at, reported(s));
                    }
                    at += 24;
                }
            }
            if matches!(item.packet_type, 205 | 206) {
                let media_at = ssrc_at + 4;
                if media_at + 4 <= item.offset + item.len
                    && let Some(s) = self.word(media_at)
                {
                    self.set_word(media_at, reported(s));
                }
            }
            offset += item.len;
        }
    }

    /// The whole compound packet.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf
    }
}

fn read_item(buf: &[u8], offset: usize) -> Result<RtcpItem, RtpError> {
    let Some(h) = buf.get(offset..offset + RTCP_HEADER_LEN) else {
        return Err(RtpError::RtcpOverrun);
    };
    let version = h[0] >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let packet_type = h[1];
    if !(200..=206).contains(&packet_type) {
        return Err(RtpError::BadRtcpType(packet_type));
    }
    let len = (usize::from(u16::from_be_bytes([h[2], h[3]])) + 1) * 4;
    if offset + len > buf.len() {
        return Err(RtpError::RtcpOverrun);
    }
    Ok(RtcpItem { offset, len, packet_type, count: h[0] & 0x1f })
}

/// Writes a minimal RTP packet into `out` (tests, benches and tools); returns its length or
/// `None` when `out` is too small.
pub fn write_rtp(out: &mut [u8], pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Option<usize> {
    let len = RTP_HEADER_LEN + payload.len();
    let dst = out.get_mut(..len)?;
    dst[0] = 0x80;
    dst[1] = pt & 0x7f;
    dst[2..4].copy_from_slice(&seq.to_be_bytes());
    dst[4..8].copy_from_slice(&ts.to_be_bytes());
    dst[8..12].copy_from_slice(&ssrc.to_be_bytes());
    dst[RTP_HEADER_LEN..].copy_from_slice(payload);
    Some(len)
}

/// Runs every parser and rewriter over arbitrary bytes; the fuzz target and the property
/// tests share this entry point. Never panics.
pub fn exercise(data: &[u8]) {
    let mut buf = [0u8; 2048];
    let n = data.len().min(buf.len());
    buf[..n].copy_from_slice(&data[..n]);
    let _ = classify(&buf[..n]);
    if let Ok(mut p) = RtpPacket::parse(&mut buf[..n]) {
        let _ = (p.marker(), p.csrc_count(), p.has_extension(), p.payload().len());
        let (pt, seq, ts, ssrc) = (p.payload_type(), p.sequence(), p.timestamp(), p.ssrc());
        p.set_payload_type(pt.wrapping_add(1));
        p.set_sequence(seq.wrapping_add(1));
        p.set_timestamp(ts.wrapping_add(1));
        p.set_ssrc(!ssrc);
    }
    if let Ok(mut c) = RtcpCompound::parse(&mut buf[..n]) {
        let _ = c.items().count();
        c.rewrite_ssrcs(|s| !s, |s| s.rotate_left(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixed_header_roundtrip() {
        let mut buf = [0u8; 172];
        let n = write_rtp(&mut buf, 0, 1000, 160_000, 0xdead_beef, &[0xff; 160]).unwrap();
        assert_eq!(n, 172);
        let mut p = RtpPacket::parse(&mut buf[..n]).unwrap();
        assert_eq!((p.payload_type(), p.sequence(), p.timestamp(), p.ssrc()), (0, 1000, 160_000, 0xdead_beef));
        assert_eq!(p.payload().len(), 160);
        p.set_payload_type(8);
        p.set_sequence(7);
        p.set_timestamp(9);
        p.set_ssrc(1);
        assert_eq!((p.payload_type(), p.sequence(), p.timestamp(), p.ssrc()), (8, 7, 9, 1));
    }

    #[test]
    fn marker_survives_pt_rewrite() {
        let mut buf = [0u8; 20];
        write_rtp(&mut buf, 96, 1, 1, 1, &[0; 8]).unwrap();
        buf[1] |= 0x80;
        let mut p = RtpPacket::parse(&mut buf).unwrap();
        p.set_payload_type(101);
        assert!(p.marker());
        assert_eq!(p.payload_type(), 101);
    }

    #[test]
    fn csrc_extension_and_padding() {
        // V=2 P=1 X=1 CC=2, PT 96; 2 CSRCs; extension of 1 word; payload 4; padding 4.
        let mut buf = vec![0xb2, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2];
        buf.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 4]); // CSRCs
        buf.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // extension
        buf.extend_from_slice(&[9, 9, 9, 9]); // payload
        buf.extend_from_slice(&[0, 0, 0, 4]); // padding
        let p = RtpPacket::parse(&mut buf).unwrap();
        assert_eq!(p.csrc_count(), 2);
        assert!(p.has_extension());
        assert_eq!(p.header_len(), 12 + 8 + 8);
        assert_eq!(p.payload(), &[9, 9, 9, 9]);
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(RtpPacket::parse(&mut [0x80; 11]).unwrap_err(), RtpError::TooShort { len: 11 });
        assert_eq!(RtpPacket::parse(&mut [0x40; 12]).unwrap_err(), RtpError::BadVersion(1));
        let mut cc = [0u8; 16];
        cc[0] = 0x82; // two CSRCs need 20 bytes
        assert!(matches!(RtpPacket::parse(&mut cc), Err(RtpError::HeaderOverrun { header: 20, len: 16 })));
        let mut ext = [0u8; 16];
        ext[0] = 0x90;
        ext[14] = 0;
        ext[15] = 5;
        assert!(matches!(RtpPacket::parse(&mut ext), Err(RtpError::HeaderOverrun { .. })));
        let mut pad = [0u8; 13];
        pad[0] = 0xa0;
        pad[12] = 0;
        assert_eq!(RtpPacket::parse(&mut pad).unwrap_err(), RtpError::BadPadding);
    }

    #[test]
    fn rfc5761_demux() {
        assert_eq!(classify(&[0x80, 0]), PacketClass::Rtp);
        assert_eq!(classify(&[0x80, 96 | 0x80]), PacketClass::Rtp);
        assert_eq!(classify(&[0x80, 200]), PacketClass::Rtcp);
        assert_eq!(classify(&[0x80, 206]), PacketClass::Rtcp);
        assert_eq!(classify(&[0x80, 192]), PacketClass::Rtcp);
        assert_eq!(classify(&[0x80, 223]), PacketClass::Rtcp);
        assert_eq!(classify(&[0x80, 224]), PacketClass::Rtp);
        assert_eq!(classify(&[0x00, 1]), PacketClass::Other); // STUN starts with 0b00
        assert_eq!(classify(&[0x80]), PacketClass::Other);
    }

    /// An SR with one report block followed by an SDES chunk, then a PLI.
    fn compound() -> Vec<u8> {
        let mut b = vec![0x81, 200, 0, 12];
        b.extend_from_slice(&0x1111_1111u32.to_be_bytes()); // sender SSRC
        b.extend_from_slice(&[0; 20]); // sender info
        b.extend_from_slice(&0x2222_2222u32.to_be_bytes()); // report block SSRC
        b.extend_from_slice(&[0; 20]);
        b.extend_from_slice(&[0x81, 202, 0, 2]);
        b.extend_from_slice(&0x1111_1111u32.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(&[0x81, 206, 0, 2]);
        b.extend_from_slice(&0x1111_1111u32.to_be_bytes());
        b.extend_from_slice(&0x2222_2222u32.to_be_bytes());
        b
    }

    #[test]
    fn rtcp_compound_parse_and_rewrite() {
        let mut b = compound();
        let mut c = RtcpCompound::parse(&mut b).unwrap();
        let types: Vec<u8> = c.items().map(|i| i.packet_type).collect();
        assert_eq!(types, vec![200, 202, 206]);
        c.rewrite_ssrcs(|s| if s == 0x1111_1111 { 0xaaaa_aaaa } else { s }, |s| if s == 0x2222_2222 { 0xbbbb_bbbb } else { s });
        assert_eq!(c.word(4), Some(0xaaaa_aaaa));
        assert_eq!(c.word(28), Some(0xbbbb_bbbb));
        assert_eq!(c.word(56), Some(0xaaaa_aaaa));
        assert_eq!(c.word(68), Some(0xaaaa_aaaa));
        assert_eq!(c.word(72), Some(0xbbbb_bbbb));
    }

    #[test]
    fn rtcp_rejects_bad_type_and_length() {
        let mut b = compound();
        b[1] = 199;
        assert_eq!(RtcpCompound::parse(&mut b).unwrap_err(), RtpError::BadRtcpType(199));
        let mut b = compound();
        b[3] = 200;
        assert_eq!(RtcpCompound::parse(&mut b).unwrap_err(), RtpError::RtcpOverrun);
        let mut b = compound();
        b.push(0); // trailing garbage is not a packet
        assert!(RtcpCompound::parse(&mut b).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            exercise(&data);
        }

        #[test]
        fn rtp_like_bytes_never_panic(first in 0x80u8..0xc0, rest in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut data = vec![first];
            data.extend(rest);
            exercise(&data);
        }

        #[test]
        fn written_packets_parse_back(pt in 0u8..128, seq in any::<u16>(), ts in any::<u32>(), ssrc in any::<u32>(), payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut buf = [0u8; 256];
            let n = write_rtp(&mut buf, pt, seq, ts, ssrc, &payload).unwrap();
            let p = RtpPacket::parse(&mut buf[..n]).unwrap();
            prop_assert_eq!((p.payload_type(), p.sequence(), p.timestamp(), p.ssrc()), (pt, seq, ts, ssrc));
            prop_assert_eq!(p.payload(), &payload[..]);
            let class = classify(&buf[..n]);
            prop_assert_eq!(class == PacketClass::Rtcp, (64..=95).contains(&pt));
        }
    }
}
