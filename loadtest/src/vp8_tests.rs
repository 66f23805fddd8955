//! Tests of the synthetic VP8 packetizer and the RFC 7741 descriptor reader.

use proptest::prelude::*;

use super::*;

#[test]
fn rfc7741_descriptors_with_each_optional_field() {
    // Only the required octet: S=1, PID=0 (RFC 7741 §4.2, X=0).
    assert_eq!(
        parse_descriptor(&[0x10]),
        Ok(Descriptor {
            start: true,
            len: 1,
            ..Descriptor::default()
        })
    );
    // X, I with a 7-bit PictureID 17, N=1, partition 3.
    let d = parse_descriptor(&[0xa3, 0x80, 17]).unwrap();
    assert_eq!(
        (d.non_reference, d.start, d.partition, d.picture_id, d.len),
        (true, false, 3, Some(17), 3)
    );
    // X, I with M=1 (15-bit PictureID 0x1234), L (TL0PICIDX 9), T (TID 2, Y=1) and K (KEYIDX 5).
    let d = parse_descriptor(&[0x90, 0xf0, 0x92, 0x34, 9, 0xa5]).unwrap();
    assert_eq!(d.picture_id, Some(0x1234));
    assert_eq!(d.tl0_pic_idx, Some(9));
    assert_eq!(d.tid, Some((2, true)));
    assert_eq!(d.key_idx, Some(5));
    assert_eq!(d.len, 6);
    // K without T still takes the TID/Y/KEYIDX octet (TID then ignored).
    let d = parse_descriptor(&[0x80, 0x10, 0xc7]).unwrap();
    assert_eq!((d.tid, d.key_idx, d.len), (None, Some(7), 3));
    // Truncated anywhere.
    for bad in [
        &[][..],
        &[0x80],
        &[0x80, 0x80],
        &[0x80, 0x80, 0x80],
        &[0x80, 0x40],
    ] {
        assert_eq!(parse_descriptor(bad), Err(Vp8Error::Truncated), "{bad:?}");
    }
}

#[test]
fn payload_headers_and_keyframes() {
    // A keyframe's first packet: descriptor, tag with P=0, start code, 640x480.
    let key = [
        0x10, 0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, 0xaa,
    ];
    let p = parse_payload(&key).unwrap();
    assert!(p.keyframe);
    assert_eq!(p.data, &[0xaa]);
    // Bad start code.
    let mut bad = key;
    bad[5] = 0;
    assert_eq!(parse_payload(&bad), Err(Vp8Error::StartCode));
    // An interframe's first packet: P=1, 3-byte tag.
    let p = parse_payload(&[0x10, 0x51, 0x01, 0x00, 0xbb]).unwrap();
    assert!(!p.keyframe);
    assert_eq!(p.data, &[0xbb]);
    // A continuation packet has no payload header.
    let p = parse_payload(&[0x00, 0xcc]).unwrap();
    assert_eq!((p.keyframe, p.data), (false, &[0xcc][..]));
    // A first packet cut inside its header.
    assert_eq!(parse_payload(&[0x10, 0x50, 0x01]), Err(Vp8Error::Truncated));
}

fn frame_packets(plan: &FramePlan, probe: &[u8]) -> Vec<(Vec<u8>, bool)> {
    (0..plan.packets)
        .map(|k| {
            let mut out = Vec::new();
            let marker = Vp8Source::packet(plan, k, probe, &mut out);
            (out, marker)
        })
        .collect()
}

#[test]
fn bitrate_keyframes_and_requests() {
    let cfg = Vp8Config {
        bitrate_bps: 480_000,
        fps: 30,
        keyframe_interval_ms: 1000,
        max_payload: 1100,
    };
    let mut s = Vp8Source::new(cfg, 0x7ffe).unwrap();
    let frames: Vec<FramePlan> = (0..90).map(|_| s.next_frame()).collect();
    // A keyframe first and then every 30 frames.
    let keys: Vec<u64> = frames
        .iter()
        .filter(|f| f.keyframe)
        .map(|f| f.index)
        .collect();
    assert_eq!(keys, vec![0, 30, 60]);
    // 2000 bytes per frame on average: 60 000 bytes per second, within rounding.
    let second: usize = frames[30..60].iter().map(|f| f.size).sum();
    assert!((59_900..=60_000).contains(&second), "{second}");
    assert_eq!(frames[0].size, 10_000);
    assert_eq!(frames[0].packets, 10);
    assert_eq!(frames[1].packets, 2);
    // 90 kHz timestamps at 30 fps; PictureID wraps at 15 bits.
    assert_eq!(frames[3].rtp_ts, 9000);
    assert_eq!(
        (
            frames[0].picture_id,
            frames[1].picture_id,
            frames[2].picture_id
        ),
        (0x7ffe, 0x7fff, 0)
    );
    // Two requests: one keyframe answering both, then deltas again.
    s.request_keyframe();
    s.request_keyframe();
    let f = s.next_frame();
    assert!(f.keyframe && f.answers == 2, "{f:?}");
    let f = s.next_frame();
    assert!(!f.keyframe && f.answers == 0, "{f:?}");
    assert!(Vp8Source::new(Vp8Config { fps: 0, ..cfg }, 0).is_err());
    assert!(
        Vp8Source::new(
            Vp8Config {
                max_payload: 20,
                ..cfg
            },
            0
        )
        .is_err()
    );
    assert!(
        Vp8Source::new(
            Vp8Config {
                bitrate_bps: 8,
                ..cfg
            },
            0
        )
        .is_err()
    );
}

#[test]
fn only_requested_keyframes_without_an_interval() {
    let cfg = Vp8Config {
        keyframe_interval_ms: 0,
        ..Vp8Config::default()
    };
    let mut s = Vp8Source::new(cfg, 1).unwrap();
    let keys = (0..300).filter(|_| s.next_frame().keyframe).count();
    assert_eq!(keys, 1);
}

#[test]
fn packets_carry_the_frame_and_the_probe() {
    let mut s = Vp8Source::new(Vp8Config::default(), 300).unwrap();
    let probe: Vec<u8> = (1..=24).collect();
    for _ in 0..4 {
        let plan = s.next_frame();
        let packets = frame_packets(&plan, &probe);
        let mut data = 0;
        for (k, (p, marker)) in packets.iter().enumerate() {
            assert!(p.len() <= Vp8Config::default().max_payload);
            assert_eq!(*marker, k + 1 == plan.packets);
            let parsed = parse_payload(p).unwrap();
            assert_eq!(parsed.descriptor.start, k == 0);
            assert_eq!(parsed.descriptor.picture_id, Some(plan.picture_id));
            assert_eq!(parsed.keyframe, k == 0 && plan.keyframe);
            assert_eq!(&parsed.data[..24], &probe[..]);
            data += p.len() - DESCRIPTOR_LEN;
        }
        assert_eq!(data, plan.size);
    }
}

proptest! {
    #[test]
    fn any_bytes_parse_or_fail_cleanly(p in proptest::collection::vec(any::<u8>(), 0..40)) {
        if let Ok(parsed) = parse_payload(&p) {
            prop_assert!(parsed.descriptor.len <= p.len());
            prop_assert!(parsed.data.len() <= p.len());
        }
    }

    #[test]
    fn every_config_packetizes_within_bounds(
        kbps in 10u32..3000,
        fps in 1u32..=60,
        key_ms in 0u32..5000,
        max_payload in 38usize..=1400,
        requests in proptest::collection::vec(any::<bool>(), 1..40),
    ) {
        let cfg = Vp8Config {
            bitrate_bps: kbps * 1000,
            fps,
            keyframe_interval_ms: key_ms,
            max_payload,
        };
        let mut s = Vp8Source::new(cfg, 5).unwrap();
        let probe = [7u8; PROBE_ROOM];
        for ask in requests {
            if ask {
                s.request_keyframe();
            }
            let plan = s.next_frame();
            prop_assert!(!ask || plan.keyframe);
            let mut data = 0;
            for (k, (p, marker)) in frame_packets(&plan, &probe).into_iter().enumerate() {
                prop_assert!(p.len() <= max_payload, "{} > {max_payload}", p.len());
                prop_assert_eq!(marker, k + 1 == plan.packets);
                let parsed = parse_payload(&p).unwrap();
                prop_assert_eq!(&parsed.data[..PROBE_ROOM], &probe[..]);
                data += p.len() - DESCRIPTOR_LEN;
            }
            prop_assert_eq!(data, plan.size);
        }
    }
}
