//! Fuzzes the RTCP report-block walk the WebRTC bridge runs on the SIP side's RTCP (for the
//! `Stats` request): no panic, never more blocks than the bytes can hold, and the receive
//! statistics fed arbitrary headers stay sane.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wavegate_mediaplane::webrtc::quality::{RecvStats, report_blocks};

fuzz_target!(|data: &[u8]| {
    let mut n = 0usize;
    report_blocks(data, |_| n += 1);
    assert!(n <= data.len() / 24);
    let mut s = RecvStats::default();
    for (i, c) in data.chunks_exact(8).enumerate() {
        let ssrc = u32::from(c[0] & 1);
        let seq = u16::from_be_bytes([c[1], c[2]]);
        let ts = u32::from_be_bytes([c[3], c[4], c[5], c[6]]);
        s.on_packet(i as u64 * 20_000_000 + u64::from(c[7]) * 1_000_000, ssrc, seq, ts, 8000);
        let _ = (s.lost(), s.total_lost(), s.jitter_us());
    }
});
