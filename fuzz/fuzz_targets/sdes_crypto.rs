//! Fuzzes the SDES `a=crypto` parser (RFC 4568) run on the SIP side's SDP: no panic, and what
//! parses writes back to a line that parses to the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wavegate_mediaplane::webrtc::sdes::{crypto_value, parse_crypto};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(attr) = parse_crypto(text) {
        assert_eq!(parse_crypto(&crypto_value(&attr)), Some(attr));
    }
});
