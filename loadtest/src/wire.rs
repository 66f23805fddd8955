//! What the load generator puts on the wire and reads back: test RTP packets, the SDP it
//! offers, and the media-plane port it parses out of the rewritten SDP.
//!
//! A test packet is a plain RTP header (PCMU, payload type 0) followed by a probe: magic,
//! stream, direction, sequence number and send time (CLOCK_MONOTONIC ns), then padding up to
//! the configured payload size. The probe lets one socket serve every stream: the media plane
//! may rewrite the RTP header (sequence, timestamp, SSRC), never the payload. Parsing never
//! panics; anything that is not a probe is `None`.

use std::net::Ipv4Addr;

/// RTP fixed header length.
pub const RTP_HEADER: usize = 12;
/// Probe bytes after the RTP header.
pub const PROBE_LEN: usize = 24;
const MAGIC: [u8; 4] = *b"WGLT";
/// PCMU.
pub const PAYLOAD_TYPE: u8 = 0;

/// Which way a packet travels through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the offerer (A) to the answerer (B).
    AToB = 0,
    /// From B to A.
    BToA = 1,
}

/// The probe carried in every test packet's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Stream (call) index.
    pub stream: u32,
    /// Direction it was sent in.
    pub direction: Direction,
    /// Per stream and direction, 0, 1, 2, ...
    pub seq: u32,
    /// CLOCK_MONOTONIC ns at send.
    pub sent_ns: u64,
}

/// What the receiver learns from a packet: the probe plus the RTP header as relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The probe.
    pub probe: Probe,
    /// RTP payload type as received.
    pub payload_type: u8,
    /// SSRC as received (the relay may rewrite it, but must keep it constant per stream).
    pub ssrc: u32,
}

/// SSRC the generator uses for a stream and direction.
pub fn ssrc_for(stream: u32, direction: Direction) -> u32 {
    0x5747_0000u32
        .wrapping_add(stream.wrapping_mul(2))
        .wrapping_add(direction as u32)
}

/// Writes a test packet of `RTP_HEADER + payload_len` bytes into `out` (cleared first).
/// `payload_len` below [`PROBE_LEN`] is raised to it.
pub fn encode_packet(probe: &Probe, payload_len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.push(0x80); // V=2, no padding, no extension, no CSRC
    out.push(PAYLOAD_TYPE);
    out.extend_from_slice(&(probe.seq as u16).to_be_bytes());
    out.extend_from_slice(&probe.seq.wrapping_mul(160).to_be_bytes());
    out.extend_from_slice(&ssrc_for(probe.stream, probe.direction).to_be_bytes());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&probe.stream.to_le_bytes());
    out.extend_from_slice(&[probe.direction as u8, 0, 0, 0]);
    out.extend_from_slice(&probe.seq.to_le_bytes());
    out.extend_from_slice(&probe.sent_ns.to_le_bytes());
    out.resize(RTP_HEADER + payload_len.max(PROBE_LEN), 0xff);
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Parses a received packet; `None` unless it is RTP v2 carrying a probe.
pub fn decode_packet(pkt: &[u8]) -> Option<Received> {
    if pkt.len() < RTP_HEADER || pkt[0] >> 6 != 2 {
        return None;
    }
    let csrc = usize::from(pkt[0] & 0x0f) * 4;
    let mut at = RTP_HEADER + csrc;
    if pkt[0] & 0x10 != 0 {
        let ext = pkt.get(at + 2..at + 4)?;
        at += 4 + usize::from(u16::from_be_bytes([ext[0], ext[1]])) * 4;
    }
    let p = pkt.get(at..at + PROBE_LEN)?;
    if p[..4] != MAGIC {
        return None;
    }
    let direction = match p[8] {
        0 => Direction::AToB,
        1 => Direction::BToA,
        _ => return None,
    };
    let mut sent = [0u8; 8];
    sent.copy_from_slice(&p[16..24]);
    Some(Received {
        probe: Probe {
            stream: u32_le(&p[4..8]),
            direction,
            seq: u32_le(&p[12..16]),
            sent_ns: u64::from_le_bytes(sent),
        },
        payload_type: pkt[1] & 0x7f,
        ssrc: u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]),
    })
}

/// A minimal plain-RTP PCMU SDP for an endpoint at `ip:port`.
pub fn endpoint_sdp(session: u64, ip: Ipv4Addr, port: u16) -> String {
    format!(
        "v=0\r\no=- {session} 1 IN IP4 {ip}\r\ns=wavegate-loadtest\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
}

/// Why a reply SDP did not name a usable audio address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// No `m=audio` line.
    #[error("no m=audio line in the media plane's SDP")]
    NoAudio,
    /// The port of the `m=audio` line is not a number in 1..=65535.
    #[error("bad port in {0:?}")]
    BadPort(String),
    /// A `c=` line's address is not IPv4.
    #[error("bad connection line {0:?}")]
    BadConnection(String),
}

/// The RTP address the media plane asks the peer to send to: the `m=audio` port and the
/// media-level `c=` (or else the session-level one).
pub fn audio_address(sdp: &str) -> Result<(Ipv4Addr, u16), SdpError> {
    let mut session_ip = None;
    let mut media_ip = None;
    let mut port = None;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(rest) = line.strip_prefix("c=") {
            let ip = rest
                .strip_prefix("IN IP4 ")
                .and_then(|a| a.split('/').next())
                .and_then(|a| a.trim().parse::<Ipv4Addr>().ok())
                .ok_or_else(|| SdpError::BadConnection(line.to_owned()))?;
            if port.is_some() {
                media_ip.get_or_insert(ip);
            } else {
                session_ip = Some(ip);
            }
        } else if let Some(rest) = line.strip_prefix("m=") {
            if port.is_some() {
                break; // only the first audio section matters
            }
            if let Some(rest) = rest.strip_prefix("audio ") {
                let p = rest
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|&p| p != 0);
                port = Some(p.ok_or_else(|| SdpError::BadPort(line.to_owned()))?);
            }
        }
    }
    let port = port.ok_or(SdpError::NoAudio)?;
    let ip = media_ip
        .or(session_ip)
        .ok_or_else(|| SdpError::BadConnection("no c= line".into()))?;
    Ok((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn packet_roundtrip_and_size() {
        let probe = Probe {
            stream: 7,
            direction: Direction::BToA,
            seq: 70_000,
            sent_ns: 123_456_789,
        };
        let mut buf = Vec::new();
        encode_packet(&probe, 160, &mut buf);
        assert_eq!(buf.len(), 172);
        let got = decode_packet(&buf).unwrap();
        assert_eq!(got.probe, probe);
        assert_eq!(got.payload_type, 0);
        assert_eq!(got.ssrc, ssrc_for(7, Direction::BToA));
        encode_packet(&probe, 1, &mut buf);
        assert_eq!(buf.len(), RTP_HEADER + PROBE_LEN);
    }

    #[test]
    fn rewritten_header_with_csrc_and_extension_still_parses() {
        let probe = Probe {
            stream: 1,
            direction: Direction::AToB,
            seq: 3,
            sent_ns: 9,
        };
        let mut buf = Vec::new();
        encode_packet(&probe, 24, &mut buf);
        // One CSRC and a one-word header extension inserted after the fixed header.
        let mut relayed = vec![
            0x80 | 0x10 | 1,
            0x80,
            0,
            1,
            0,
            0,
            0,
            2,
            0xde,
            0xad,
            0xbe,
            0xef,
        ];
        relayed.extend_from_slice(&[1, 2, 3, 4]);
        relayed.extend_from_slice(&[0xbe, 0xde, 0, 1, 9, 9, 9, 9]);
        relayed.extend_from_slice(&buf[RTP_HEADER..]);
        let got = decode_packet(&relayed).unwrap();
        assert_eq!(got.probe, probe);
        assert_eq!(got.ssrc, 0xdead_beef);
    }

    #[test]
    fn non_probes_are_none() {
        assert_eq!(decode_packet(&[]), None);
        assert_eq!(decode_packet(&[0x80; 20]), None);
        let mut buf = Vec::new();
        encode_packet(
            &Probe {
                stream: 0,
                direction: Direction::AToB,
                seq: 0,
                sent_ns: 0,
            },
            24,
            &mut buf,
        );
        buf[0] = 0x40; // RTP version 1
        assert_eq!(decode_packet(&buf), None);
    }

    #[test]
    fn sdp_address_from_media_plane_reply() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                   m=audio 20002 RTP/AVP 0\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:0 PCMU/8000\r\n\
                   m=video 20004 RTP/AVP 96\r\nc=IN IP4 10.9.9.9\r\n";
        assert_eq!(audio_address(sdp), Ok((Ipv4Addr::LOCALHOST, 20002)));
        let ours = endpoint_sdp(1, Ipv4Addr::LOCALHOST, 4000);
        assert_eq!(audio_address(&ours), Ok((Ipv4Addr::LOCALHOST, 4000)));
        assert_eq!(
            audio_address("v=0\r\nc=IN IP4 1.2.3.4\r\n"),
            Err(SdpError::NoAudio)
        );
        assert!(matches!(
            audio_address("c=IN IP4 1.2.3.4\nm=audio x RTP/AVP 0\n"),
            Err(SdpError::BadPort(_))
        ));
        assert!(matches!(
            audio_address("c=IN IP6 ::1\nm=audio 5 RTP/AVP 0\n"),
            Err(SdpError::BadConnection(_))
        ));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_packet(&bytes);
        }

        #[test]
        fn sdp_parse_never_panics(s in ".{0,300}") {
            let _ = audio_address(&s);
        }

        #[test]
        fn probes_roundtrip(stream in any::<u32>(), b in any::<bool>(), seq in any::<u32>(), t in any::<u64>(), len in 0usize..400) {
            let probe = Probe { stream, direction: if b { Direction::BToA } else { Direction::AToB }, seq, sent_ns: t };
            let mut buf = Vec::new();
            encode_packet(&probe, len, &mut buf);
            prop_assert_eq!(decode_packet(&buf).map(|r| r.probe), Some(probe));
        }
    }
}
