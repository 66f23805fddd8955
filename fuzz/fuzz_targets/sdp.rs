//! Fuzzes the SDP parser and rewriter: any text parses or errors, never panics, and whatever
//! parses survives write/parse and a relay rewrite unchanged (`sdp::exercise` asserts both;
//! the same entry point runs under proptest in the crate's unit tests).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        wavegate_mediaplane::sdp::exercise(text);
    }
});
