//! Fuzzes the RTP/RTCP views, the rtcp-mux classifier and the SSRC rewriters on arbitrary
//! bytes (`rtp::exercise`, also run by the crate's property tests).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wavegate_mediaplane::rtp::exercise(data);
});
