//! Fuzzes the keyframe-request walk (PLI, FIR) the WebRTC bridge runs on the SIP side's video
//! RTCP: no panic, never more requests than the bytes can hold, and requests we write read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wavegate_mediaplane::webrtc::rtcp_fb::{keyframe_requests, write_fir, write_pli};

fuzz_target!(|data: &[u8]| {
    let mut n = 0usize;
    keyframe_requests(data, |_| n += 1);
    assert!(n <= data.len() / 8);
    if let Some(c) = data.get(..9) {
        let sender = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        let media = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
        let mut buf = [0u8; 32];
        let len =
            if c[8] & 1 == 1 { write_fir(&mut buf, sender, media, c[8]) } else { write_pli(&mut buf, sender, media) };
        let mut got = Vec::new();
        keyframe_requests(&buf[..len.unwrap_or(0)], |k| got.push(k));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].media_ssrc, media);
        assert_eq!(got[0].fir, c[8] & 1 == 1);
    }
});
