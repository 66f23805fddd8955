//! Fuzzes the load tester's VP8 payload reader (RFC 7741 descriptor and payload header): no
//! panic on any bytes, the slices it returns lie inside the input, and every packet the
//! synthetic source writes for a frame sized from the input reads back with its probe slot.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The load tester is a binary crate; its VP8 module is self-contained (std + thiserror).
#[allow(dead_code)]
#[path = "../../loadtest/src/vp8.rs"]
mod vp8;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = vp8::parse_payload(data) {
        assert!(p.descriptor.len <= data.len());
        assert!(p.data.len() <= data.len() - p.descriptor.len);
    }
    if data.len() >= 4 {
        let cfg = vp8::Vp8Config {
            bitrate_bps: 8_000 + u32::from(u16::from_le_bytes([data[0], data[1]])) * 100,
            fps: 1 + u32::from(data[2] % 60),
            keyframe_interval_ms: u32::from(data[3]) * 20,
            max_payload: 38 + usize::from(data[3]) * 5,
        };
        let Ok(mut source) = vp8::Vp8Source::new(cfg, 0) else {
            return;
        };
        let probe = [0x5a; vp8::PROBE_ROOM];
        let mut out = Vec::new();
        for &ask in &data[4..data.len().min(12)] {
            if ask & 1 == 1 {
                source.request_keyframe();
            }
            let plan = source.next_frame();
            for k in 0..plan.packets {
                let marker = vp8::Vp8Source::packet(&plan, k, &probe, &mut out);
                assert_eq!(marker, k + 1 == plan.packets);
                assert!(out.len() <= cfg.max_payload);
                let p = vp8::parse_payload(&out).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(&p.data[..vp8::PROBE_ROOM], &probe[..]);
            }
        }
    }
});
