//! Fuzzes the SIP entry path of the user agent: bytes → rsipstack's message parser → our request
//! check (`sip::inbound::check_request`) → the routing decision. Any input must be refused or
//! routed without panicking (the same entry point runs under proptest in the crate's tests).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wavegate_signalling::sip::inbound::exercise(data);
});
