//! CPU cost of audio transcoding (mediaplane::transcode), without sockets.
//!
//! Groups:
//! - `transcode_pair/<from>-><to>`: one 20 ms frame through a `Transcoder` with the default
//!   settings (jitter buffer, decode, resample when needed, encode) per iteration, for every
//!   codec pair; the input is a pre-encoded second of a 1004 Hz tone plus speech-like noise,
//!   cycled (Opus input as a browser sends it, see `BROWSER`).
//! - `opus_pcmu_call/complexity_N[_fec28k|_nofec]`: both directions of one Opus<->PCMU call for
//!   20 ms with the default settings (24 kbit/s, FEC requested) at complexity N; calls per core =
//!   20 000 µs / this time. `_fec28k`: 28 kbit/s, where libopus really codes FEC at complexity 0.
//! - `opus_codec/<stage>`: libopus alone through the media plane's wrappers, per 20 ms: encode at
//!   8 kHz input per complexity; decode of browser packets to 8 kHz and to 48 kHz, and to 8 kHz
//!   of packets from a browser capped to narrowband / wideband (where a call's time goes).
//!   Browser packets: 48 kHz capture, 32 kbit/s, complexity 9 (see `BROWSER`);
//!   `opus_pcmu_call/complexity_0_browser_nb` has the browser capped to narrowband at 16 kbit/s
//!   (what our re-offer asks: `maxplaybackrate=8000;maxaveragebitrate=16000`), `_browser_nb_32k`
//!   capped to narrowband only (Chrome's default 32 kbit/s).
//!
//! Once per run it prints the memory of one Opus<->PCMU call: libopus' encoder and decoder state
//! (`opus_encoder_get_size`, `opus_decoder_get_size`) plus both directions' own buffers.
//! - `resample_8k_16k/<kind>`: 20 ms through rubato's FFT, sinc and cubic resamplers; the SNR of
//!   each on a 1 kHz tone is printed once (quality), the time is the cost.
//!
//! Times are the measuring thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time, so other
//! load on the shared VM inflates them less.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use opusic_sys::{opus_decoder_get_size, opus_encoder_get_size};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, PolynomialDegree, Resampler, SincInterpolationParameters,
};
use wavegate_mediaplane::transcode::codec::{self, Codec, OpusSettings};
use wavegate_mediaplane::transcode::g711;
use wavegate_mediaplane::transcode::pipeline::{Transcoder, TranscoderConfig};

const MS: u64 = 1_000_000;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Thread CPU time of `iters` runs of `f`.
fn cpu_time(iters: u64, mut f: impl FnMut()) -> Duration {
    let t0 = thread_cpu_ns();
    for _ in 0..iters {
        f();
    }
    Duration::from_nanos(thread_cpu_ns() - t0)
}

fn rate(c: Codec) -> u32 {
    c.native_rate().unwrap_or(48_000)
}

/// A tone with some noise, so that codecs do real work (not a trivially predictable signal).
fn signal(rate: u32, n: usize) -> Vec<i16> {
    let mut x: u32 = 12345;
    (0..n)
        .map(|i| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = ((x >> 16) as i32 - 32768) as f64 / 32768.0 * 1500.0;
            let t = i as f64 / rate as f64;
            (6000.0 * (2.0 * std::f64::consts::PI * 1004.0 * t).sin() + noise) as i16
        })
        .collect()
}

/// What a browser sends: Opus from 48 kHz capture at 32 kbit/s and complexity 9 (Chrome's
/// defaults for mono voice), so packets are hybrid super-/fullband. `BROWSER_NB`: the same
/// browser told `maxplaybackrate=8000;maxaveragebitrate=16000`, so it encodes narrowband (SILK
/// only) at 16 kbit/s; `BROWSER_NB_32K`: told only `maxplaybackrate=8000`.
const BROWSER: (u32, u32) = (48_000, 32_000);
const BROWSER_NB: (u32, u32) = (8_000, 16_000);
const BROWSER_NB_32K: (u32, u32) = (8_000, 32_000);

/// One second of `c` packets (20 ms each); Opus as a browser sends it.
fn packets(c: Codec) -> Vec<Vec<u8>> {
    match c {
        Codec::Opus => opus_packets(BROWSER),
        _ => encoded(c, rate(c), OpusSettings::default()),
    }
}

/// One second of Opus packets from capture at `rate` and `bitrate`, complexity 9, FEC on.
fn opus_packets((rate, bitrate): (u32, u32)) -> Vec<Vec<u8>> {
    let s = OpusSettings {
        complexity: 9,
        bitrate,
        ..OpusSettings::default()
    };
    encoded(Codec::Opus, rate, s)
}

fn encoded(c: Codec, r: u32, s: OpusSettings) -> Vec<Vec<u8>> {
    let mut enc = codec::new_encoder(c, r, s).expect("encoder");
    let pcm = signal(r, r as usize);
    let mut buf = [0u8; 1500];
    pcm.chunks_exact(r as usize / 50)
        .map(|f| {
            let n = enc.encode(f, &mut buf).expect("encode");
            buf[..n].to_vec()
        })
        .collect()
}

struct Dir {
    tc: Transcoder,
    input: Vec<Vec<u8>>,
    k: u64,
    out: [u8; 1500],
    ts_step: u32,
}

impl Dir {
    fn new(from: Codec, to: Codec, complexity: u8) -> Self {
        Self::with_fec(from, to, complexity, true)
    }

    fn with_fec(from: Codec, to: Codec, complexity: u8, fec: bool) -> Self {
        Self::with_opus(from, to, complexity, fec, OpusSettings::default().bitrate)
    }

    fn with_opus(from: Codec, to: Codec, complexity: u8, fec: bool, bitrate: u32) -> Self {
        Self::with_input(from, to, complexity, fec, bitrate, packets(from))
    }

    fn with_input(
        from: Codec,
        to: Codec,
        complexity: u8,
        fec: bool,
        bitrate: u32,
        input: Vec<Vec<u8>>,
    ) -> Self {
        let mut cfg = TranscoderConfig::new(from, to);
        cfg.opus.complexity = complexity;
        cfg.opus.fec = fec;
        cfg.opus.bitrate = bitrate;
        Self {
            tc: Transcoder::new(cfg).expect("transcoder"),
            input,
            k: 0,
            out: [0; 1500],
            ts_step: from.rtp_clock() / 50,
        }
    }

    /// One 20 ms frame in and (after the prefill) one frame out.
    fn step(&mut self) -> usize {
        let now = self.k * 20 * MS;
        let p = &self.input[(self.k % self.input.len() as u64) as usize];
        self.tc.push(
            now,
            self.k as u16,
            (self.k as u32).wrapping_mul(self.ts_step),
            p,
        );
        let mut n = 0;
        while let Some(r) = self.tc.poll(now, &mut self.out).expect("poll") {
            n += r.len;
        }
        self.k += 1;
        n
    }
}

fn pairs(c: &mut Criterion) {
    let mut g = c.benchmark_group("transcode_pair");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(800))
        .sample_size(20);
    for from in Codec::ALL {
        for to in Codec::ALL {
            if from == to {
                continue;
            }
            let mut d = Dir::new(from, to, OpusSettings::default().complexity);
            for _ in 0..10 {
                d.step();
            }
            g.bench_function(format!("{from:?}->{to:?}"), |b| {
                b.iter_custom(|n| {
                    cpu_time(n, || {
                        black_box(d.step());
                    })
                })
            });
        }
    }
    g.finish();
}

fn opus_call(c: &mut Criterion) {
    let mut g = c.benchmark_group("opus_pcmu_call");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let default_rate = OpusSettings::default().bitrate;
    let cases = [
        (0u8, true, default_rate, ""),
        (1, true, default_rate, ""),
        (3, true, default_rate, ""),
        (5, true, default_rate, ""),
        (0, true, 28_000, "_fec28k"),
        (5, false, default_rate, "_nofec"),
        (0, true, default_rate, "_browser_nb"),
        (0, true, default_rate, "_browser_nb_32k"),
    ];
    for (complexity, fec, bitrate, tag) in cases {
        let browser = match tag {
            "_browser_nb" => BROWSER_NB,
            "_browser_nb_32k" => BROWSER_NB_32K,
            _ => BROWSER,
        };
        let mut a = Dir::with_input(
            Codec::Opus,
            Codec::Pcmu,
            complexity,
            fec,
            bitrate,
            opus_packets(browser),
        );
        let mut b2 = Dir::with_opus(Codec::Pcmu, Codec::Opus, complexity, fec, bitrate);
        for _ in 0..10 {
            a.step();
            b2.step();
        }
        g.bench_function(format!("complexity_{complexity}{tag}"), |b| {
            b.iter_custom(|n| {
                cpu_time(n, || {
                    black_box(a.step() + b2.step());
                })
            })
        });
    }
    g.finish();
}

/// libopus alone, per 20 ms: the encoder at 8 kHz input per complexity (default settings
/// otherwise) and the decoder to 8 and 48 kHz.
fn opus_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("opus_codec");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let pcm = signal(8000, 8000);
    let mut buf = [0u8; 1500];
    for (complexity, bitrate, tag) in [
        (0u8, 24_000, ""),
        (0, 28_000, "_fec28k"),
        (1, 24_000, ""),
        (3, 24_000, ""),
        (5, 24_000, ""),
    ] {
        let s = OpusSettings {
            complexity,
            bitrate,
            ..OpusSettings::default()
        };
        let mut enc = codec::new_encoder(Codec::Opus, 8000, s).expect("encoder");
        let mut k = 0;
        g.bench_function(format!("encode_8k_complexity_{complexity}{tag}"), |b| {
            b.iter_custom(|n| {
                cpu_time(n, || {
                    let f = &pcm[k % 50 * 160..(k % 50 + 1) * 160];
                    k += 1;
                    black_box(enc.encode(f, &mut buf).expect("encode"));
                })
            })
        });
    }
    let mut out = vec![0i16; 5760];
    for (rate, from, tag) in [
        (8000u32, BROWSER, ""),
        (48_000, BROWSER, ""),
        (8000, BROWSER_NB, "_from_nb"),
        (8000, BROWSER_NB_32K, "_from_nb_32k"),
        (8000, (16_000, 32_000), "_from_wb"),
    ] {
        let input = opus_packets(from);
        let mut dec = codec::new_decoder(Codec::Opus, rate).expect("decoder");
        let mut k = 0;
        g.bench_function(format!("decode_{}k{tag}", rate / 1000), |b| {
            b.iter_custom(|n| {
                cpu_time(n, || {
                    let p = &input[k % input.len()];
                    k += 1;
                    black_box(dec.decode(p, &mut out).expect("decode"));
                })
            })
        });
    }
    g.finish();
}

/// Prints the memory of one Opus<->PCMU call (both directions).
fn call_memory() {
    // SAFETY: the size queries only read their argument (1 = mono).
    let (enc, dec) = unsafe { (opus_encoder_get_size(1), opus_decoder_get_size(1)) };
    let a = Dir::new(Codec::Opus, Codec::Pcmu, 0);
    let b = Dir::new(Codec::Pcmu, Codec::Opus, 0);
    let g711 = std::mem::size_of::<g711::Decoder>() + std::mem::size_of::<g711::Encoder>();
    let buffers = a.tc.buffer_bytes() + b.tc.buffer_bytes();
    let transcoders = 2 * std::mem::size_of::<Transcoder>();
    eprintln!(
        "opus_pcmu_call memory: libopus encoder {enc} B + decoder {dec} B, G.711 {g711} B, \
         buffers {buffers} B (both directions), transcoder structs {transcoders} B: {} B per call",
        enc.max(0) as usize + dec.max(0) as usize + g711 + buffers + transcoders
    );
}

fn memory(_: &mut Criterion) {
    call_memory();
}

fn to_f32(x: &[i16]) -> Vec<f32> {
    x.iter().map(|s| *s as f32 / 32768.0).collect()
}

/// SNR of a resampled 1 kHz tone against the ideal one (best delay search over 0..200 samples).
fn resampler_snr(r: &mut dyn Resampler<f32>, chunk_in: usize) -> f64 {
    let input: Vec<f32> = (0..8000)
        .map(|i| 0.5 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 8000.0).sin() as f32)
        .collect();
    let mut out = Vec::new();
    let mut buf = vec![0f32; r.output_frames_max()];
    let mut pos = 0;
    while pos + r.input_frames_next() <= input.len() {
        let need = r.input_frames_next();
        let a = InterleavedSlice::new(&input[pos..pos + need], 1, need).expect("in");
        let max = buf.len();
        let mut b = InterleavedSlice::new_mut(&mut buf[..], 1, max).expect("out");
        let (_, n) = r.process_into_buffer(&a, &mut b, None).expect("process");
        out.extend_from_slice(&buf[..n]);
        pos += need;
    }
    let _ = chunk_in;
    let mut best = f64::MIN;
    for delay in 0..200usize {
        let (mut s, mut e) = (0f64, 0f64);
        for (i, v) in out.iter().enumerate().skip(delay + 2000).take(8000) {
            let ideal =
                0.5 * (2.0 * std::f64::consts::PI * 1000.0 * (i - delay) as f64 / 16000.0).sin();
            s += ideal * ideal;
            e += (*v as f64 - ideal).powi(2);
        }
        best = best.max(10.0 * (s / e.max(1e-12)).log10());
    }
    best
}

fn resamplers(c: &mut Criterion) {
    let mut g = c.benchmark_group("resample_8k_16k");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let input = to_f32(&signal(8000, 160));
    let mut kinds: Vec<(&str, Box<dyn Resampler<f32>>)> = vec![
        (
            "fft",
            Box::new(Fft::<f32>::new(8000, 16000, 80, 1, FixedSync::Both).expect("fft")),
        ),
        (
            "sinc256",
            Box::new(
                Async::<f32>::new_sinc(
                    2.0,
                    1.0,
                    &SincInterpolationParameters::default(),
                    80,
                    1,
                    FixedAsync::Input,
                )
                .expect("sinc"),
            ),
        ),
        (
            "cubic",
            Box::new(
                Async::<f32>::new_poly(2.0, 1.0, PolynomialDegree::Cubic, 80, 1, FixedAsync::Input)
                    .expect("poly"),
            ),
        ),
    ];
    for (name, r) in kinds.iter_mut() {
        eprintln!(
            "resample_8k_16k/{name}: SNR {:.1} dB on a 1 kHz tone",
            resampler_snr(r.as_mut(), 80)
        );
        r.reset();
        let mut out = vec![0f32; r.output_frames_max()];
        g.bench_function(*name, |b| {
            b.iter_custom(|n| {
                cpu_time(n, || {
                    for half in input.chunks_exact(80) {
                        let a = InterleavedSlice::new(half, 1, 80).expect("in");
                        let max = out.len();
                        let mut o = InterleavedSlice::new_mut(&mut out[..], 1, max).expect("out");
                        black_box(r.process_into_buffer(&a, &mut o, None).expect("process"));
                    }
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, memory, opus_call, opus_codec, resamplers, pairs);
criterion_main!(benches);
