use super::*;
use crate::transcode::codec;

const MS: u64 = 1_000_000;

fn f(pt: u8, codec: Codec) -> Format {
    Format { pt, codec }
}

#[test]
fn a_shared_codec_is_passthrough_in_the_sip_side_order() {
    let browser = [f(111, Codec::Opus), f(9, Codec::G722), f(0, Codec::Pcmu)];
    let sip = [f(8, Codec::Pcma), f(0, Codec::Pcmu)];
    assert_eq!(
        choose(&browser, &sip, true),
        Ok(Plan::Passthrough {
            sip: sip[1],
            browser: browser[2]
        })
    );
    assert_eq!(
        choose(&browser, &sip, false),
        Ok(Plan::Passthrough {
            sip: sip[1],
            browser: browser[2]
        })
    );
}

#[test]
fn no_shared_codec_transcodes_or_fails_with_the_cause() {
    let browser = [f(111, Codec::Opus)];
    let sip = [f(0, Codec::Pcmu), f(18, Codec::G729)];
    assert_eq!(
        choose(&browser, &sip, true),
        Ok(Plan::Transcode {
            sip: sip[0],
            browser: browser[0]
        })
    );
    let e = choose(&browser, &sip, false).expect_err("disabled");
    assert_eq!(e.to_string(), "Transcoding required but disabled");
    assert_eq!(choose(&[], &sip, true), Err(NegotiateError::NoCodec));
}

#[test]
fn the_sip_offer_keeps_the_browser_codecs_first_and_adds_ours_only_when_allowed() {
    let browser = [f(111, Codec::Opus)];
    let offer = sip_offer(&browser, true);
    assert_eq!(offer[0], browser[0]);
    assert_eq!(offer[1], f(0, Codec::Pcmu));
    assert!(offer.iter().any(|x| x.codec == Codec::G729 && x.pt == 18));
    let pts: Vec<u8> = offer.iter().map(|x| x.pt).collect();
    let mut dedup = pts.clone();
    dedup.sort_unstable();
    dedup.dedup();
    assert_eq!(dedup.len(), pts.len(), "payload types unique: {pts:?}");
    assert_eq!(sip_offer(&browser, false), browser.to_vec());
}

fn config() -> CallConfig {
    CallConfig {
        opus: OpusSettings::default(),
        jitter: Default::default(),
        sip_ptime_ms: 20,
        browser_ptime_ms: 20,
        sip_ssrc: 0x1111_2222,
        browser_ssrc: 0x3333_4444,
    }
}

#[test]
fn opus_from_the_browser_leaves_as_pcmu_rtp_and_back() {
    let (sip, browser) = (f(0, Codec::Pcmu), f(111, Codec::Opus));
    let mut call = CallTranscoder::new(sip, browser, config()).expect("call");
    let mut opus = codec::new_encoder(Codec::Opus, 48_000, OpusSettings::default()).expect("opus");
    let mut ulaw = codec::new_encoder(Codec::Pcmu, 8_000, OpusSettings::default()).expect("pcmu");
    let tone48: Vec<i16> = (0..960)
        .map(|i| (5000.0 * (i as f64 * 0.131).sin()) as i16)
        .collect();
    let tone8: Vec<i16> = (0..160)
        .map(|i| (5000.0 * (i as f64 * 0.785).sin()) as i16)
        .collect();
    let (mut p, mut out) = ([0u8; 1500], [0u8; 1500]);
    let mut to_sip = Vec::new();
    let mut to_browser = Vec::new();
    for k in 0..20u32 {
        let now = k as u64 * 20 * MS;
        let n = opus.encode(&tone48, &mut p).expect("enc");
        assert!(call.on_audio(Side::Browser, now, 111, k as u16, k * 960, &p[..n]));
        let n = ulaw.encode(&tone8, &mut p).expect("enc");
        assert!(call.on_audio(Side::Sip, now, 0, 500 + k as u16, k * 160, &p[..n]));
        // Telephone-event (or anything but the side's audio codec) is not taken.
        assert!(!call.on_audio(Side::Sip, now, 101, 0, 0, &[1, 0x80, 0, 160]));
        let mut budget = POLL_BUDGET;
        while budget > 0 {
            let Some((side, n)) = call.poll(now, &mut out).expect("poll") else {
                break;
            };
            let hdr = (
                out[1] & 0x7f,
                u16::from_be_bytes([out[2], out[3]]),
                u32::from_be_bytes([out[4], out[5], out[6], out[7]]),
            );
            let ssrc = u32::from_be_bytes([out[8], out[9], out[10], out[11]]);
            match side {
                Side::Sip => {
                    assert_eq!((hdr.0, ssrc, n), (0, 0x1111_2222, 12 + 160));
                    to_sip.push(hdr);
                }
                Side::Browser => {
                    assert_eq!((hdr.0, ssrc), (111, 0x3333_4444));
                    to_browser.push(hdr);
                }
            }
            budget -= 1;
        }
    }
    assert!(
        to_sip.len() >= 18 && to_browser.len() >= 18,
        "{} {}",
        to_sip.len(),
        to_browser.len()
    );
    for w in to_sip.windows(2) {
        assert_eq!(w[1].1, w[0].1.wrapping_add(1));
        assert_eq!(w[1].2.wrapping_sub(w[0].2), 160);
    }
    for w in to_browser.windows(2) {
        assert_eq!(w[1].1, w[0].1.wrapping_add(1));
        assert_eq!(w[1].2.wrapping_sub(w[0].2), 960);
    }
    assert_eq!(call.audio_ts(Side::Sip), to_sip.last().expect("sent").2);
}

/// Resident memory of this process in KiB (Linux `/proc/self/statm`, 4 KiB pages).
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 4
}

#[test]
fn memory_per_opus_pcmu_call_transcoder() {
    // 100 Opus <-> PCMU calls, each driven through 200 ms of audio both ways so the buffers
    // they use are resident (zeroed allocations are not until touched).
    const CALLS: usize = 100;
    let (sip, browser) = (f(0, Codec::Pcmu), f(111, Codec::Opus));
    let mut opus = codec::new_encoder(Codec::Opus, 48_000, OpusSettings::default()).expect("opus");
    let mut ulaw = codec::new_encoder(Codec::Pcmu, 8_000, OpusSettings::default()).expect("pcmu");
    let tone48: Vec<i16> = (0..960).map(|i| (5000.0 * (i as f64 * 0.131).sin()) as i16).collect();
    let tone8: Vec<i16> = (0..160).map(|i| (5000.0 * (i as f64 * 0.785).sin()) as i16).collect();
    let mut p_opus = [0u8; 1500];
    let n_opus = opus.encode(&tone48, &mut p_opus).expect("enc");
    let mut p_ulaw = [0u8; 400];
    let n_ulaw = ulaw.encode(&tone8, &mut p_ulaw).expect("enc");
    let before = rss_kib();
    let mut calls = Vec::with_capacity(CALLS);
    let mut out = [0u8; 1500];
    for _ in 0..CALLS {
        let mut call = CallTranscoder::new(sip, browser, config()).expect("call");
        for k in 0..10u32 {
            let now = u64::from(k) * 20 * MS;
            call.on_audio(Side::Browser, now, 111, k as u16, k * 960, &p_opus[..n_opus]);
            call.on_audio(Side::Sip, now, 0, k as u16, k * 160, &p_ulaw[..n_ulaw]);
            while call.poll(now, &mut out).expect("poll").is_some() {}
        }
        calls.push(call);
    }
    let per_call = rss_kib().saturating_sub(before) as f64 / CALLS as f64;
    eprintln!(
        "CallTranscoder Opus<->PCMU: {per_call:.0} KiB resident per call ({} bytes inline)",
        std::mem::size_of::<CallTranscoder>()
    );
    assert!(per_call < 1024.0, "{per_call} KiB per call");
    assert_eq!(calls.len(), CALLS);
}
