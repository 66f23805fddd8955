//! SDES (RFC 4568) `a=crypto` attributes: the SIP side's SRTP keys in its SDP, and ours.
//!
//! `a=crypto:<tag> <suite> inline:<base64 key||salt>[|<lifetime>][|<MKI>:<length>]
//! [<session params>]`. Only the two AES_CM_128 suites of [`SrtpSuite`] and a single key without
//! MKI are taken (what SIP phones and trunks send); anything else is skipped, so the caller
//! picks the first line it can use. Parsing never panics and checks every length: the key must
//! decode to exactly 30 bytes.

use super::srtp::{MasterKey, SrtpSuite};

/// One usable `a=crypto` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttr {
    /// The line's tag (echoed in the answer).
    pub tag: u32,
    /// Its suite.
    pub suite: SrtpSuite,
    /// Its master key and salt.
    pub key: MasterKey,
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn sextet(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

/// Decodes standard base64 (padding optional) into `out`; `None` unless it fills `out` exactly.
fn decode_exact(text: &str, out: &mut [u8]) -> Option<()> {
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut acc = 0u32;
    let mut bits = 0;
    let mut n = 0;
    for &c in bytes {
        acc = (acc << 6) | sextet(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(n)? = (acc >> bits) as u8;
            n += 1;
        }
        acc &= (1 << bits) - 1;
    }
    (n == out.len() && acc == 0).then_some(())
}

/// Standard base64 with padding.
fn encode(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(char::from(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Parses the value of one `a=crypto` attribute (after `crypto:`); `None` when it is malformed
/// or uses what we do not support (other suites, MKI, several keys).
pub fn parse_crypto(value: &str) -> Option<CryptoAttr> {
    let mut parts = value.split_ascii_whitespace();
    let tag = parts.next()?.parse().ok()?;
    let suite = SrtpSuite::from_name(parts.next()?)?;
    let params = parts.next()?;
    if params.contains(';') {
        return None; // several keys
    }
    let inline = params.strip_prefix("inline:")?;
    let mut fields = inline.split('|');
    let b64 = fields.next()?;
    for f in fields {
        if f.contains(':') {
            return None; // MKI
        }
    }
    let mut raw = [0u8; 30];
    decode_exact(b64, &mut raw)?;
    let mut key = MasterKey { key: [0; 16], salt: [0; 14] };
    key.key.copy_from_slice(&raw[..16]);
    key.salt.copy_from_slice(&raw[16..]);
    Some(CryptoAttr { tag, suite, key })
}

/// The value of our `a=crypto` attribute.
pub fn crypto_value(attr: &CryptoAttr) -> String {
    let mut raw = [0u8; 30];
    raw[..16].copy_from_slice(&attr.key.key);
    raw[16..].copy_from_slice(&attr.key.salt);
    format!("{} {} inline:{}", attr.tag, attr.suite.name(), encode(&raw))
}

/// A fresh random master key and salt (the thread's CSPRNG, reseeded by rand).
pub fn random_key() -> MasterKey {
    use rand::RngCore;
    let mut raw = [0u8; 30];
    rand::rng().fill_bytes(&mut raw);
    let mut key = MasterKey { key: [0; 16], salt: [0; 14] };
    key.key.copy_from_slice(&raw[..16]);
    key.salt.copy_from_slice(&raw[16..]);
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc4568_example_line() {
        // RFC 4568 §4's example key (with a lifetime and no MKI).
        let v = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20";
        let a = parse_crypto(v).unwrap();
        assert_eq!((a.tag, a.suite), (1, SrtpSuite::AesCm128HmacSha1_80));
        assert_eq!(&a.key.key[..4], b"=-n@");
        let back = crypto_value(&a);
        assert_eq!(back, "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR");
        assert_eq!(parse_crypto(&back), Some(a));
    }

    #[test]
    fn unsupported_or_malformed_lines_are_skipped() {
        let key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        assert!(parse_crypto(&format!("2 AES_CM_128_HMAC_SHA1_32 inline:{key}")).is_some());
        assert!(parse_crypto(&format!("1 AES_256_CM_HMAC_SHA1_80 inline:{key}")).is_none(), "suite");
        assert!(parse_crypto(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:4")).is_none(), "MKI");
        assert!(parse_crypto(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key};inline:{key}")).is_none());
        assert!(parse_crypto("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkp").is_none(), "short key");
        assert!(parse_crypto(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}AAAA")).is_none(), "long key");
        assert!(parse_crypto(&format!("x AES_CM_128_HMAC_SHA1_80 inline:{key}")).is_none(), "tag");
        assert!(parse_crypto("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaV!R").is_none());
        assert!(parse_crypto("").is_none());
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,120}") {
            let _ = parse_crypto(&s);
        }

        #[test]
        fn keys_round_trip(raw in proptest::array::uniform30(any::<u8>()), tag in 0u32..1000) {
            let mut key = MasterKey { key: [0; 16], salt: [0; 14] };
            key.key.copy_from_slice(&raw[..16]);
            key.salt.copy_from_slice(&raw[16..]);
            let a = CryptoAttr { tag, suite: SrtpSuite::AesCm128HmacSha1_32, key };
            prop_assert_eq!(parse_crypto(&crypto_value(&a)), Some(a));
        }
    }
}
