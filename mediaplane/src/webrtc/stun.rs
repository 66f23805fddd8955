//! Just enough STUN (RFC 8489) to route a datagram to its WebRTC leg: the 20-byte header and the
//! USERNAME attribute, from which the local ICE ufrag (the part before `:`) is taken.
//!
//! Invariants: every read is bounds-checked against the datagram and against the header's own
//! length field, the walk over attributes is bounded by that length, and nothing allocates, so
//! this is safe to run on every datagram of the shard's WebRTC port. Routing does not check message
//! integrity (a decision made on an unauthenticated name can only deliver a packet to a leg that
//! then rejects it); [`integrity_ok`] is what the leg runs on a Binding request before str0m
//! sees it, so that checks with the wrong password are counted, not only dropped.

use thiserror::Error;

/// The fixed STUN header length.
pub const HEADER_LEN: usize = 20;
/// RFC 8489 §5: the magic cookie in bytes 4..8 of every STUN message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// RFC 8489 §14.3: USERNAME attribute type.
pub const ATTR_USERNAME: u16 = 0x0006;
/// RFC 8489 §14.5: MESSAGE-INTEGRITY attribute type (a 20-byte HMAC-SHA1).
pub const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
/// RFC 8489 §18.2: the message type of a Binding request (an ICE connectivity check).
pub const BINDING_REQUEST: u16 = 0x0001;
/// RFC 8489 §14.3: a USERNAME is at most 509 bytes (we accept up to 513, the older limit).
pub const MAX_USERNAME: usize = 513;

/// Why a datagram yielded no ICE username.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum StunError {
    /// Shorter than a STUN header.
    #[error("datagram shorter than a STUN header")]
    Truncated,
    /// The two top bits of the type are set, or the magic cookie is wrong: not STUN.
    #[error("not a STUN message")]
    NotStun,
    /// The header's length is not a multiple of 4 or exceeds the datagram.
    #[error("STUN length field inconsistent with the datagram")]
    BadLength,
    /// An attribute runs past the end of the message.
    #[error("STUN attribute overruns the message")]
    BadAttribute,
    /// The message has no USERNAME attribute (responses and indications usually have none).
    #[error("no USERNAME attribute")]
    NoUsername,
    /// The USERNAME is longer than RFC 8489 allows.
    #[error("USERNAME too long")]
    UsernameTooLong,
    /// The USERNAME has no `:` separating the two ufrags, or an empty local ufrag.
    #[error("USERNAME is not `local:remote`")]
    NotIceUsername,
    /// The message has no MESSAGE-INTEGRITY attribute (or a short one).
    #[error("no MESSAGE-INTEGRITY attribute")]
    NoIntegrity,
}

/// RFC 7983 demultiplexing: a first byte of 0..=3 means STUN on a WebRTC 5-tuple.
pub fn looks_like_stun(datagram: &[u8]) -> bool {
    matches!(datagram.first(), Some(0..=3))
}

/// The STUN message class and method bits, unparsed.
pub fn message_type(datagram: &[u8]) -> Result<u16, StunError> {
    header(datagram).map(|(ty, _)| ty)
}

/// Validates the header; returns the message type and the attribute section.
fn header(datagram: &[u8]) -> Result<(u16, &[u8]), StunError> {
    let Some(head) = datagram.get(..HEADER_LEN) else {
        return Err(StunError::Truncated);
    };
    let ty = u16::from_be_bytes([head[0], head[1]]);
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let cookie = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if ty & 0xC000 != 0 || cookie != MAGIC_COOKIE {
        return Err(StunError::NotStun);
    }
    if len % 4 != 0 {
        return Err(StunError::BadLength);
    }
    let body = datagram.get(HEADER_LEN..HEADER_LEN + len).ok_or(StunError::BadLength)?;
    Ok((ty, body))
}

/// The whole USERNAME attribute value (`local:remote` for ICE connectivity checks).
pub fn username(datagram: &[u8]) -> Result<&[u8], StunError> {
    let (_, mut attrs) = header(datagram)?;
    // Each iteration consumes at least 4 bytes, so the walk ends within len / 4 steps.
    while !attrs.is_empty() {
        let Some(tl) = attrs.get(..4) else {
            return Err(StunError::BadAttribute);
        };
        let ty = u16::from_be_bytes([tl[0], tl[1]]);
        let len = usize::from(u16::from_be_bytes([tl[2], tl[3]]));
        let value = attrs.get(4..4 + len).ok_or(StunError::BadAttribute)?;
        if ty == ATTR_USERNAME {
            if len > MAX_USERNAME {
                return Err(StunError::UsernameTooLong);
            }
            return Ok(value);
        }
        let padded = 4 + len.div_ceil(4) * 4;
        // The last attribute's padding may be cut off by a sloppy sender; treat that as the end.
        attrs = attrs.get(padded..).unwrap_or(&[]);
    }
    Err(StunError::NoUsername)
}

/// The local ICE ufrag a connectivity check is addressed to: USERNAME up to the first `:`.
pub fn local_ufrag(datagram: &[u8]) -> Result<&[u8], StunError> {
    let name = username(datagram)?;
    match name.iter().position(|&b| b == b':') {
        Some(0) | None => Err(StunError::NotIceUsername),
        Some(i) => Ok(&name[..i]),
    }
}

/// Whether the MESSAGE-INTEGRITY of `datagram` is right for `key` (RFC 8489 §14.5: HMAC-SHA1
/// over the message up to the attribute, with the header's length covering it; ICE uses the
/// receiver's password as the short-term key). `hmac(key, parts)` computes HMAC-SHA1 over the
/// concatenation of `parts`. Allocation-free.
pub fn integrity_ok(
    datagram: &[u8],
    key: &[u8],
    hmac: impl Fn(&[u8], &[&[u8]]) -> [u8; 20],
) -> Result<bool, StunError> {
    let (_, attrs) = header(datagram)?;
    let mut at = 0;
    // Each iteration consumes at least 4 bytes, so the walk ends within len / 4 steps.
    while at < attrs.len() {
        let Some(tl) = attrs.get(at..at + 4) else {
            return Err(StunError::BadAttribute);
        };
        let ty = u16::from_be_bytes([tl[0], tl[1]]);
        let len = usize::from(u16::from_be_bytes([tl[2], tl[3]]));
        let value = attrs.get(at + 4..at + 4 + len).ok_or(StunError::BadAttribute)?;
        if ty == ATTR_MESSAGE_INTEGRITY {
            let Ok(tag) = <&[u8; 20]>::try_from(value) else {
                return Err(StunError::NoIntegrity);
            };
            // The length field as if the message ended with this attribute.
            let covered = u16::try_from(at + 4 + 20).map_err(|_| StunError::BadLength)?;
            let mut head = [0u8; HEADER_LEN];
            head.copy_from_slice(&datagram[..HEADER_LEN]);
            head[2..4].copy_from_slice(&covered.to_be_bytes());
            let body = &datagram[HEADER_LEN..HEADER_LEN + at];
            return Ok(hmac(key, &[&head, body]) == *tag);
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    Err(StunError::NoIntegrity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 5769 §2.1, "Sample Request": a Binding request with SOFTWARE, PRIORITY, ICE-CONTROLLED,
    /// USERNAME "evtj:h6vY", MESSAGE-INTEGRITY and FINGERPRINT.
    const RFC5769_REQUEST: [u8; 108] = [
        0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87,
        0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c,
        0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f,
        0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76,
        0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e,
        0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
    ];

    /// RFC 5769 §2.2, "Sample IPv4 Response": XOR-MAPPED-ADDRESS, no USERNAME.
    const RFC5769_RESPONSE: [u8; 80] = [
        0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87,
        0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20,
        0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91,
        0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7,
        0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
    ];

    /// Builds a Binding request carrying `attrs` (type, value), padded per RFC 8489.
    fn build(attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (ty, value) in attrs {
            body.extend_from_slice(&ty.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(body.len() as u16).to_be_bytes());
        msg.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn rfc5769_sample_request_username() {
        assert!(looks_like_stun(&RFC5769_REQUEST));
        assert_eq!(message_type(&RFC5769_REQUEST), Ok(0x0001));
        assert_eq!(username(&RFC5769_REQUEST), Ok(&b"evtj:h6vY"[..]));
        assert_eq!(local_ufrag(&RFC5769_REQUEST), Ok(&b"evtj"[..]));
    }

    #[test]
    fn rfc5769_sample_response_has_no_username() {
        assert_eq!(message_type(&RFC5769_RESPONSE), Ok(0x0101));
        assert_eq!(username(&RFC5769_RESPONSE), Err(StunError::NoUsername));
    }

    #[test]
    fn rejects_non_stun() {
        assert_eq!(username(&[0u8; 19]), Err(StunError::Truncated));
        let mut rtp = RFC5769_REQUEST;
        rtp[0] = 0x80;
        assert!(!looks_like_stun(&rtp));
        assert_eq!(username(&rtp), Err(StunError::NotStun));
        let mut cookie = RFC5769_REQUEST;
        cookie[4] = 0;
        assert_eq!(username(&cookie), Err(StunError::NotStun));
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut odd = RFC5769_REQUEST;
        odd[3] = 0x57;
        assert_eq!(username(&odd), Err(StunError::BadLength));
        assert_eq!(username(&RFC5769_REQUEST[..100]), Err(StunError::BadLength));
        // An attribute claiming more bytes than the message holds.
        let mut msg = build(&[(ATTR_USERNAME, b"ab:cd")]);
        msg[22] = 0x00;
        msg[23] = 0x40;
        assert_eq!(username(&msg), Err(StunError::BadAttribute));
    }

    #[test]
    fn ufrag_needs_a_colon_and_a_name() {
        assert_eq!(local_ufrag(&build(&[(ATTR_USERNAME, b"nocolon")])), Err(StunError::NotIceUsername));
        assert_eq!(local_ufrag(&build(&[(ATTR_USERNAME, b":remote")])), Err(StunError::NotIceUsername));
        assert_eq!(local_ufrag(&build(&[(ATTR_USERNAME, b"a:")])), Ok(&b"a"[..]));
        let long = vec![b'x'; MAX_USERNAME + 1];
        assert_eq!(username(&build(&[(ATTR_USERNAME, &long)])), Err(StunError::UsernameTooLong));
    }

    #[test]
    fn skips_padded_attributes_before_username() {
        let msg = build(&[(0x8022, b"abc"), (0x0024, &[1, 2, 3, 4]), (ATTR_USERNAME, b"L1:R2")]);
        assert_eq!(local_ufrag(&msg), Ok(&b"L1"[..]));
    }

    fn sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
        str0m::crypto::from_feature_flags().sha1_hmac_provider.sha1_hmac(key, parts)
    }

    /// RFC 5769 §2.1/§2.2: both samples are signed with this short-term password.
    const RFC5769_PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";

    #[test]
    fn rfc5769_integrity_verifies_and_catches_wrong_keys_and_tampering() {
        assert_eq!(message_type(&RFC5769_REQUEST), Ok(BINDING_REQUEST));
        assert_eq!(integrity_ok(&RFC5769_REQUEST, RFC5769_PASSWORD, sha1), Ok(true));
        assert_eq!(integrity_ok(&RFC5769_RESPONSE, RFC5769_PASSWORD, sha1), Ok(true));
        assert_eq!(integrity_ok(&RFC5769_REQUEST, b"VOkJxbRl1RmTxUk/WvJxBu", sha1), Ok(false));
        let mut tampered = RFC5769_REQUEST;
        tampered[30] ^= 1; // inside SOFTWARE, covered by the HMAC
        assert_eq!(integrity_ok(&tampered, RFC5769_PASSWORD, sha1), Ok(false));
        // FINGERPRINT comes after MESSAGE-INTEGRITY and is not covered.
        let mut fp = RFC5769_REQUEST;
        fp[107] ^= 1;
        assert_eq!(integrity_ok(&fp, RFC5769_PASSWORD, sha1), Ok(true));
        let bare = build(&[(ATTR_USERNAME, b"a:b")]);
        assert_eq!(integrity_ok(&bare, RFC5769_PASSWORD, sha1), Err(StunError::NoIntegrity));
        let short = build(&[(ATTR_MESSAGE_INTEGRITY, &[0; 8])]);
        assert_eq!(integrity_ok(&short, RFC5769_PASSWORD, sha1), Err(StunError::NoIntegrity));
    }

    proptest! {
        /// The integrity check never panics on arbitrary bytes.
        #[test]
        fn integrity_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = integrity_ok(&data, b"pw", sha1);
        }

        /// Never panics, and whatever it returns lies inside the datagram.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(u) = local_ufrag(&data) {
                prop_assert!(!u.is_empty() && u.len() <= MAX_USERNAME);
                prop_assert!(!u.contains(&b':'));
            }
        }

        /// Any well-formed request round-trips its ufrag, wherever USERNAME sits among others.
        #[test]
        fn built_requests_round_trip(
            local in "[A-Za-z0-9+/]{1,32}",
            remote in "[A-Za-z0-9+/]{0,32}",
            before in proptest::collection::vec((0x8000u16..0xffff, proptest::collection::vec(any::<u8>(), 0..40)), 0..4),
        ) {
            let name = format!("{local}:{remote}");
            let mut attrs: Vec<(u16, &[u8])> = before.iter().map(|(t, v)| (*t, v.as_slice())).collect();
            attrs.push((ATTR_USERNAME, name.as_bytes()));
            let msg = build(&attrs);
            prop_assert_eq!(local_ufrag(&msg), Ok(local.as_bytes()));
        }
    }
}
