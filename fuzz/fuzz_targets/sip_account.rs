//! Fuzzes the SIP account boundary: any text, split into account fields, is accepted or refused
//! without panicking, and whatever is accepted renders and re-parses to the same values; the SIP
//! URI and digest-challenge parsers run on the same text (`sip::account::exercise` asserts all of
//! it; the same entry point runs under proptest in the crate's unit tests).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        wavegate_signalling::sip::account::exercise(text);
    }
});
