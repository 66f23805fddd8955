//! Fuzzes the per-browser codec policy (`ws::codecs::apply`) the WebSocket sessions run on every
//! SDP a page or the media plane sends: any text must give an SDP or a policy error, never a
//! panic, and applying the policy to its own output must change nothing (idempotence).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wavegate_signalling::config::CodecRule;
use wavegate_signalling::ws::codecs::{Family, apply};

fuzz_target!(|data: &[u8]| {
    let sdp = String::from_utf8_lossy(data);
    let rule = CodecRule {
        strip: vec!["G722".into(), "SILK".into(), "VP8".into()],
        prefer: vec!["PCMU".into(), "opus".into()],
    };
    if let Ok(once) = apply(&sdp, &rule, Family::Edge, true) {
        assert_eq!(apply(&once, &rule, Family::Edge, true), Ok(once.clone()));
    }
});
