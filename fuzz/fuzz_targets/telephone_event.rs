//! Fuzzes the RFC 4733 telephone-event path: the payload parser (no panic; what parses writes
//! back to the same four bytes, reserved bit cleared), the detector fed a stream of arbitrary
//! events (each reported digit is a DTMF digit), and duration rescaling.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wavegate_mediaplane::webrtc::dtmf::{DtmfDetector, TelephoneEvent, rescale};

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = TelephoneEvent::parse(data) {
        let b = ev.to_bytes();
        assert_eq!((b[0], b[1], b[2], b[3]), (data[0], data[1] & 0xbf, data[2], data[3]));
        let _ = rescale(ev.duration, 48_000, 8_000);
        let _ = rescale(ev.duration, 8_000, 48_000);
    }
    // Six-byte records: 2 bytes of timestamp, then one event payload.
    let mut detector = DtmfDetector::default();
    for chunk in data.chunks_exact(6) {
        let ts = u32::from(u16::from_be_bytes([chunk[0], chunk[1]]));
        if let Ok(ev) = TelephoneEvent::parse(&chunk[2..]) {
            detector.on_packet(ts, ev, 8000, |digit, _| {
                assert!("0123456789*#ABCD".contains(digit));
            });
        }
    }
});
