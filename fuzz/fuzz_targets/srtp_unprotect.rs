//! Fuzzes SRTP/SRTCP unprotect (the SIP side's SDES-SRTP entry path): arbitrary datagrams are
//! refused (short, bad auth, replay) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wavegate_mediaplane::webrtc::srtp::{MasterKey, SrtpSession, SrtpSuite};

fuzz_target!(|data: &[u8]| {
    let key = MasterKey { key: [1; 16], salt: [2; 14] };
    for suite in [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AesCm128HmacSha1_32] {
        let mut s = SrtpSession::new(suite, &key, &key);
        let header = data.first().map_or(12, |b| 12 + usize::from(b & 0x1f));
        let mut buf = data.to_vec();
        let _ = s.unprotect_rtp(&mut buf, header);
        let mut buf = data.to_vec();
        let _ = s.unprotect_rtcp(&mut buf);
    }
});
