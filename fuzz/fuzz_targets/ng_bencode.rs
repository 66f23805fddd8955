//! Fuzzes the bencode decoder the load tester reads rtpengine's ng replies with: no panic on any
//! bytes, and whatever decodes encodes to bytes that decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The load tester is a binary crate; its bencode module is self-contained (std + thiserror).
#[allow(dead_code)]
#[path = "../../loadtest/src/rtpengine_bencode.rs"]
mod bencode;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = bencode::Value::decode(data) {
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(bencode::Value::decode(&out), Ok(v));
    }
});
