//! Golden-signal tests: every codec pair through a real [`Transcoder`] on virtual time.
//!
//! A source codec's encoder makes the packets a peer would send; the transcoder turns them into
//! the other codec; that codec's decoder plays them as the far peer would. The decoded output is
//! measured after a 300 ms warm-up: tone frequency (interpolated zero crossings), level (RMS),
//! SNR (least-squares sinusoid fit at the measured frequency; residual = noise + distortion),
//! silence level, and clicks under loss (peak second difference of a 400 Hz tone).

use super::codec::{self, Codec, OpusSettings};
use super::pipeline::{Transcoder, TranscoderConfig};
use std::f64::consts::PI;

const MS: u64 = 1_000_000;

/// Source and sink PCM rate for a codec in these tests (Opus as a browser: 48 kHz).
fn rate(c: Codec) -> u32 {
    c.native_rate().unwrap_or(48_000)
}

fn tone(freq: f64, amp: f64, rate: u32, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| (amp * (2.0 * PI * freq * i as f64 / rate as f64).sin()).round() as i16)
        .collect()
}

struct Run {
    out: Vec<i16>,
    rate: u32,
    concealed: u64,
}

/// Sends `pcm` (at the source rate) as 20 ms packets of `from`, dropping packets for which
/// `lose(k)` holds, and returns what the far end decodes from the `to` packets.
fn run(from: Codec, to: Codec, pcm: &[i16], lose: &dyn Fn(usize) -> bool) -> Run {
    let (fr, tr) = (rate(from), rate(to));
    let mut enc = codec::new_encoder(from, fr, OpusSettings::default()).expect("source encoder");
    let mut dec = codec::new_decoder(to, tr).expect("sink decoder");
    let mut tc = Transcoder::new(TranscoderConfig::new(from, to)).expect("transcoder");
    let step = fr as usize / 50;
    let ts_step = from.rtp_clock() / 50;
    let mut payload = [0u8; 1500];
    let mut out_payload = [0u8; 1500];
    let mut pcm_out = vec![0i16; 5760];
    let mut out = Vec::new();
    for (k, frame) in pcm.chunks_exact(step).enumerate() {
        let now = k as u64 * 20 * MS;
        let n = enc.encode(frame, &mut payload).expect("encode");
        if !lose(k) {
            tc.push(now, k as u16, k as u32 * ts_step, &payload[..n]);
        }
        while let Some(p) = tc.poll(now, &mut out_payload).expect("poll") {
            let m = dec
                .decode(&out_payload[..p.len], &mut pcm_out)
                .expect("decode");
            out.extend_from_slice(&pcm_out[..m]);
        }
    }
    Run {
        out,
        rate: tr,
        concealed: tc.stats().concealed,
    }
}

/// Frequency from interpolated rising zero crossings.
fn frequency(x: &[i16], rate: u32) -> f64 {
    let mut first = None;
    let mut last = 0.0;
    let mut count = 0;
    for i in 1..x.len() {
        let (a, b) = (x[i - 1] as f64, x[i] as f64);
        if a < 0.0 && b >= 0.0 {
            let t = (i - 1) as f64 + a / (a - b);
            if first.is_none() {
                first = Some(t);
            } else {
                count += 1;
            }
            last = t;
        }
    }
    match first {
        Some(f) if count > 0 => count as f64 * rate as f64 / (last - f),
        _ => 0.0,
    }
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

fn db(x: f64) -> f64 {
    20.0 * (x.max(1e-9)).log10()
}

/// SNR of `x` against the best-fitting sinusoid at `freq`.
fn snr(x: &[i16], freq: f64, rate: u32) -> f64 {
    let w = 2.0 * PI * freq / rate as f64;
    let (mut ss, mut cc, mut sc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, v) in x.iter().enumerate() {
        let (s, c) = ((w * i as f64).sin(), (w * i as f64).cos());
        let v = *v as f64;
        ss += s * s;
        cc += c * c;
        sc += s * c;
        xs += v * s;
        xc += v * c;
    }
    let det = ss * cc - sc * sc;
    let a = (xs * cc - xc * sc) / det;
    let b = (xc * ss - xs * sc) / det;
    let (mut sig, mut noise) = (0.0, 0.0);
    for (i, v) in x.iter().enumerate() {
        let fit = a * (w * i as f64).sin() + b * (w * i as f64).cos();
        sig += fit * fit;
        noise += (*v as f64 - fit).powi(2);
    }
    10.0 * (sig / noise.max(1e-9)).log10()
}

/// Peak absolute second difference: a click or step shows as a spike; a 400 Hz tone has little.
fn peak_d2(x: &[i16]) -> f64 {
    x.windows(3)
        .map(|w| (w[0] as f64 - 2.0 * w[1] as f64 + w[2] as f64).abs())
        .fold(0.0, f64::max)
}

/// SNR floor of a codec (dB) for a 1004 Hz tone at -16 dBFS, as measured with margin.
fn snr_floor(c: Codec) -> f64 {
    match c {
        Codec::Pcmu | Codec::Pcma => 30.0,
        Codec::G722 => 30.0,
        Codec::Opus => 20.0,
        Codec::G729 => 17.0,
        Codec::SpeexNb => 12.0,
        Codec::SpeexWb => 14.0,
    }
}

fn pairs() -> Vec<(Codec, Codec)> {
    let mut v = Vec::new();
    for a in Codec::ALL {
        for b in Codec::ALL {
            if a != b {
                v.push((a, b));
            }
        }
    }
    v
}

fn skip(r: &Run) -> &[i16] {
    let s = (r.rate as usize * 300 / 1000).min(r.out.len());
    &r.out[s..]
}

#[test]
fn tones_keep_frequency_level_and_snr_for_every_pair() {
    let freq = 1004.0;
    let amp = 32767.0 * 10f64.powf(-16.0 / 20.0);
    let mut failures = Vec::new();
    for (from, to) in pairs() {
        let pcm = tone(freq, amp, rate(from), rate(from) as usize * 3 / 2);
        let r = run(from, to, &pcm, &|_| false);
        let x = skip(&r);
        let f = frequency(x, r.rate);
        let level = db(rms(x)) - db(amp / 2f64.sqrt());
        let s = snr(x, f, r.rate);
        let floor = snr_floor(from).min(snr_floor(to));
        eprintln!(
            "{from:?} -> {to:?}: {f:.1} Hz, level {level:+.2} dB, SNR {s:.1} dB (floor {floor})"
        );
        if (f - freq).abs() > freq * 0.01 || level.abs() > 1.0 || s < floor {
            failures.push(format!(
                "{from:?}->{to:?}: f {f:.1} level {level:+.2} snr {s:.1}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn silence_stays_silence_for_every_pair() {
    let mut failures = Vec::new();
    for (from, to) in pairs() {
        let pcm = vec![0i16; rate(from) as usize];
        let r = run(from, to, &pcm, &|_| false);
        let level = db(rms(skip(&r)) / 32768.0);
        eprintln!("{from:?} -> {to:?}: silence at {level:.1} dBFS");
        if level > -60.0 {
            failures.push(format!("{from:?}->{to:?}: {level:.1} dBFS"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Deterministic 10% loss pattern (xorshift), never two in a row at the very start.
fn lossy(seed: u64) -> impl Fn(usize) -> bool {
    move |k| {
        let mut x = seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        k > 10 && x % 10 == 0
    }
}

#[test]
fn ten_percent_loss_is_concealed_without_clicks() {
    // Threshold: with loss, the output's peak second difference stays within 5× that of the same
    // pair without loss. The check can fail: zero-filling the lost frames instead of concealing
    // (checked below on the first pair) is about 10× over. Measured 1.0-3.1× for every pair but
    // Opus -> Speex WB, 4.7×: one lost Opus frame concealed by libopus (the same with or
    // without its FEC path: our source sends no LBRR at 24 kbit/s) and the first good frame
    // after it, sharpened by the Speex WB encoder (the same loss reads 2.3× into PCMU). Before
    // the jitter buffer kept a packet of margin, every loss here reached the decoder as an
    // underrun plus a loss (two concealed frames, a frame of delay added) and this pair read
    // under 4×; a single concealed frame is the behaviour we want, hence 5×, not 4×.
    let amp = 32767.0 * 10f64.powf(-16.0 / 20.0);
    let mut failures = Vec::new();
    for (from, to) in pairs() {
        let pcm = tone(400.0, amp, rate(from), rate(from) as usize * 2);
        let clean = run(from, to, &pcm, &|_| false);
        let lost = run(from, to, &pcm, &lossy(7));
        let (c, l) = (peak_d2(skip(&clean)), peak_d2(skip(&lost)));
        let ratio = l / c.max(1.0);
        eprintln!(
            "{from:?} -> {to:?}: concealed {}, peak d2 clean {c:.0} lossy {l:.0} ({ratio:.2}x)",
            lost.concealed
        );
        if lost.concealed == 0 || ratio > 5.0 {
            failures.push(format!(
                "{from:?}->{to:?}: concealed {} ratio {ratio:.2}",
                lost.concealed
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The metric sees what concealment avoids: zero-fill 20 ms of a clean output.
    let pcm = tone(400.0, amp, 8000, 16000);
    let clean = run(Codec::Pcmu, Codec::Pcma, &pcm, &|_| false);
    let mut holed = clean.out.clone();
    for k in 0..6 {
        // Several gaps at different phases of the tone, as random loss would land.
        let at = 4000 + k * 1613;
        holed[at..at + 160].fill(0);
    }
    let ratio = peak_d2(&holed[2400..]) / peak_d2(skip(&clean));
    assert!(ratio > 4.0, "zero-fill must register as clicks: {ratio:.2}");
}

/// Runs `minutes` of PCMU → PCMA with the sender's clock off by `ppm`; returns the largest
/// buffered delay seen in the last minute and the transcoder stats.
fn drift(ppm: f64, minutes: u64) -> (u32, super::pipeline::TranscodeStats, usize) {
    let mut tc =
        Transcoder::new(TranscoderConfig::new(Codec::Pcmu, Codec::Pcma)).expect("transcoder");
    let period = (20.0 * MS as f64 * (1.0 - ppm * 1e-6)) as u64; // faster clock = shorter period
    let payload = [0xFFu8; 160];
    let mut out = [0u8; 1500];
    let (mut sent_at, mut seq, mut tick) = (0u64, 0u32, 0u64);
    let end = minutes * 60_000 * MS;
    let mut max_late = 0;
    let mut produced = 0;
    while tick < end {
        while sent_at <= tick {
            tc.push(sent_at, seq as u16, seq * 160, &payload);
            seq += 1;
            sent_at += period;
        }
        while tc.poll(tick, &mut out).expect("poll").is_some() {
            produced += 1;
        }
        if tick > end - 60_000 * MS {
            max_late = max_late.max(tc.buffered_ms());
        }
        tick += 20 * MS;
    }
    (max_late, tc.stats(), produced)
}

#[test]
fn clock_drift_of_100_ppm_does_not_grow_the_delay() {
    // 15 minutes at 100 ppm is 90 ms of drift: four and a half packets' worth. Physics of the
    // jitter buffer (20 ms margin behind the packet played, packets of 20 ms):
    // - a fast sender adds a packet of depth every 200 s; once the smallest depth over the
    //   window is a whole packet above the target one is discarded, so the buffered delay stays
    //   within margin + one packet of accumulated drift = 40 ms, plus one packet of arrival
    //   phase after a restart = 60 ms at most; 90 ms of drift needs at least 3 discards;
    // - a slow sender eats the 20 ms margin in 200 s (an underrun), then each refill waits for
    //   the packet arriving just after a tick, restoring up to 40 ms: underruns at ~20 and
    //   ~60 ms of lag (≥ 2 in 90 ms), each concealing at most 2 frames (the underrun tick and
    //   the tick waiting for the margin).
    for ppm in [100.0, -100.0] {
        let (late, stats, produced) = drift(ppm, 15);
        eprintln!(
            "{ppm:+} ppm: max buffered {late} ms in the last minute, {stats:?}, {produced} frames"
        );
        assert!(late <= 60, "{ppm} ppm: delay grew to {late} ms");
        if ppm > 0.0 {
            assert!(
                stats.jitter.discarded >= 3,
                "a fast sender must be absorbed by discards: {stats:?}"
            );
            assert_eq!(stats.concealed, 0, "a fast sender never starves playout");
        } else {
            assert!(
                stats.jitter.underruns >= 2,
                "a slow sender shows as underruns: {stats:?}"
            );
            assert!(
                stats.concealed <= 2 * stats.jitter.underruns,
                "each underrun conceals at most 2 frames: {stats:?}"
            );
        }
        assert_eq!(stats.jitter.lost, 0, "drift is not loss");
    }
}

/// Xorshift in [0, n): deterministic pseudo-random numbers for the network models.
fn xorshift(state: &mut u64, n: u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state % n
}

#[test]
fn a_few_ms_of_jitter_conceals_nothing() {
    // One minute of PCMU -> PCMA whose packets arrive 0-6 ms after their nominal time (a LAN or
    // a quiet WAN path); the driver polls at the transcoder's deadlines (1 ms resolution), as
    // the bridge does. A 20 ms margin behind the packet being played absorbs that entirely: no
    // frame concealed, no underrun. The buffered delay stays within 60 ms: the packet due at
    // the next tick, the 20 ms margin, and up to one packet of start phase (playout starts at
    // the first tick with two packets in, which is a tick later when the second packet arrives
    // just after one). The old buffer, whose margin counted the packet being played, started
    // playout with the ticks in phase with arrivals, so the first packet later than the first
    // one was an underrun (seed 1: a concealed frame 0.4 s in); in the bridge, where packets and
    // ticks are not lock-stepped, that and the discard that followed recurred about once a
    // second.
    for seed in [1u64, 7, 42] {
        let mut tc =
            Transcoder::new(TranscoderConfig::new(Codec::Pcmu, Codec::Pcma)).expect("transcoder");
        let payload = [0xFFu8; 160];
        let mut out = [0u8; 1500];
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let packets = 3000u64;
        let arrivals: Vec<u64> = (0..packets)
            .map(|k| k * 20 * MS + xorshift(&mut rng, 6000) * 1000)
            .collect();
        let mut order: Vec<u64> = (0..packets).collect();
        order.sort_by_key(|k| arrivals[*k as usize]); // reordering included when jitter > gap
        let (mut next, mut produced, mut max_buffered) = (0usize, 0u64, 0u32);
        // Until packet `packets - 2` has been played (after that the stream's end is an underrun).
        let mut now = 0u64;
        while now < packets * 20 * MS {
            while next < order.len() && arrivals[order[next] as usize] <= now {
                let k = order[next];
                tc.push(now, k as u16, (k * 160) as u32, &payload);
                next += 1;
            }
            while tc.poll(now, &mut out).expect("poll").is_some() {
                produced += 1;
            }
            if now > 1000 * MS && next < order.len() {
                max_buffered = max_buffered.max(tc.buffered_ms());
            }
            now += MS;
        }
        let stats = tc.stats();
        eprintln!("seed {seed}: {produced} frames, max buffered {max_buffered} ms, {stats:?}");
        assert_eq!(stats.concealed, 0, "seed {seed}: {stats:?}");
        assert_eq!(stats.jitter.underruns, 0, "seed {seed}: {stats:?}");
        assert!(
            max_buffered <= 60,
            "seed {seed}: {max_buffered} ms buffered"
        );
        assert!(produced >= packets - 3, "seed {seed}: {produced} frames");
    }
}

#[test]
fn every_supported_ptime_yields_that_packet_size() {
    for (to, ptimes) in [
        (Codec::Opus, &[10u32, 20, 40][..]),
        (Codec::Pcmu, &[10, 20, 30, 40][..]),
        (Codec::G729, &[10, 20, 30, 40][..]),
    ] {
        for &ms in ptimes {
            let from = if to == Codec::Pcmu {
                Codec::Opus
            } else {
                Codec::Pcmu
            };
            let mut cfg = TranscoderConfig::new(from, to);
            cfg.out_ptime_ms = ms;
            let mut tc = Transcoder::new(cfg).expect("transcoder");
            let mut enc =
                codec::new_encoder(from, rate(from), OpusSettings::default()).expect("enc");
            let pcm = tone(440.0, 8000.0, rate(from), rate(from) as usize / 50);
            let mut p = [0u8; 1500];
            let mut o = [0u8; 1500];
            let mut stamps = Vec::new();
            for k in 0..20u64 {
                let n = enc.encode(&pcm, &mut p).expect("encode");
                tc.push(
                    k * 20 * MS,
                    k as u16,
                    (k * from.rtp_clock() as u64 / 50) as u32,
                    &p[..n],
                );
                let mut t = k * 20 * MS;
                while t < (k + 1) * 20 * MS {
                    while let Some(r) = tc.poll(t, &mut o).expect("poll") {
                        if to == Codec::Pcmu {
                            assert_eq!(r.len as u32, 8 * ms, "PCMU bytes at {ms} ms");
                        }
                        stamps.push(r.ts);
                    }
                    t += 5 * MS;
                }
            }
            let step = to.rtp_clock() * ms / 1000;
            assert!(stamps.len() > 3, "{to:?} {ms} ms produced {}", stamps.len());
            assert!(
                stamps.windows(2).all(|w| w[1].wrapping_sub(w[0]) == step),
                "{to:?} {ms} ms: {stamps:?}"
            );
        }
    }
    // A ptime the codec cannot carry is refused at setup.
    let mut cfg = TranscoderConfig::new(Codec::Pcmu, Codec::SpeexNb);
    cfg.out_ptime_ms = 10;
    assert!(Transcoder::new(cfg).is_err());
}
