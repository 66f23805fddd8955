//! Media measurement for calls the gateway transcodes (browser Opus <-> SIP PCMU), where the
//! probe payload of [`crate::wire`] cannot survive: the browser sends real Opus, a one-second
//! loop encoded once per run ([`MarkerLoop`]) of quiet noise with one loud 20 ms tone burst (the
//! marker) at its start, and [`AudioRx`] decodes what comes back (at 8 kHz, to keep it cheap)
//! and times the marker's return: round trip = (arrival of the packet holding the burst's
//! onset + the onset's offset in it) - (send time of the marker frame). That is a mouth-to-ear
//! style figure: it includes both Opus codec delays and the transcoder's jitter buffer, which
//! a probe would not see. Loss is counted from gaps in the returning stream's RTP sequence
//! numbers, jitter (RFC 3550) from its RTP timestamps, markers not back within
//! [`MARKER_WINDOW_NS`] are counted missed (those still inside it when the call ends are
//! unresolved, not missed).
//!
//! Invariants: the loop is encoded once and shared read-only; per call, state is a decoder, a
//! fixed buffer and a bounded queue of pending marker send times (never more than
//! [`MAX_PENDING`]); nothing allocates per packet.

use std::collections::VecDeque;

use crate::call_report::Jitter;

/// Samples per 20 ms frame at 48 kHz (the loop's encoding rate).
const FRAME_48K: usize = 960;
/// Samples per 20 ms frame decoded at 8 kHz.
const FRAME_8K: usize = 160;
/// Frames in the loop: one marker per second at 50 packets/s.
pub const LOOP_FRAMES: usize = 50;
/// Peak of the marker tone (1 kHz).
const MARKER_PEAK: f64 = 16_000.0;
/// Peak of the background noise (about -40 dBFS: not silence, so no encoder goes quiet).
const NOISE_PEAK: i32 = 300;
/// A decoded sample at least this loud is the marker (far above the noise after two Opus and
/// two G.711 codings, far below the tone's peak).
const ONSET: i16 = 6_000;
/// A marker not back within this time is missed (under the 1 s loop period, so an onset is
/// never matched to the next marker).
pub const MARKER_WINDOW_NS: u64 = 800_000_000;
/// Pending markers kept per call.
const MAX_PENDING: usize = 4;

/// Why the loop could not be encoded or a decoder built.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// libopus refused.
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
}

/// The pre-encoded one-second Opus loop; frame 0 holds the marker. Encoded twice: fullband
/// (what a browser sends by default, 32 kbit/s) and narrowband at 16 kbit/s (what it sends once
/// the gateway's re-offer capped its Opus at 8 kHz, `maxplaybackrate=8000;maxaveragebitrate=16000`).
#[derive(Debug)]
pub struct MarkerLoop {
    frames: Vec<Vec<u8>>,
    narrowband: Vec<Vec<u8>>,
}

impl MarkerLoop {
    /// Encodes the loop (48 kHz mono, VoIP; twice round so frame 0 is coded with a
    /// warm encoder, the second pass is kept).
    pub fn new() -> Result<MarkerLoop, AudioError> {
        let frames = Self::encode(opus::Bandwidth::Auto, 32_000)?;
        let narrowband = Self::encode(opus::Bandwidth::Narrowband, 16_000)?;
        Ok(MarkerLoop { frames, narrowband })
    }

    /// The loop's frames coded at most at `max` bandwidth and at `bitrate` bit/s.
    fn encode(max: opus::Bandwidth, bitrate: i32) -> Result<Vec<Vec<u8>>, AudioError> {
        let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)?;
        enc.set_bitrate(opus::Bitrate::Bits(bitrate))?;
        if max != opus::Bandwidth::Auto {
            enc.set_max_bandwidth(max)?;
        }
        let mut pcm = vec![0i16; FRAME_48K];
        let mut out = vec![0u8; 1500];
        let mut frames = Vec::with_capacity(LOOP_FRAMES);
        // A fixed LCG: the same noise every run.
        let mut seed: u32 = 0x2545_f491;
        for pass in 0..2 {
            for f in 0..LOOP_FRAMES {
                for (i, s) in pcm.iter_mut().enumerate() {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let noise = ((seed >> 16) as i32 % (2 * NOISE_PEAK + 1)) - NOISE_PEAK;
                    *s = if f == 0 {
                        let t = i as f64 / 48_000.0;
                        (MARKER_PEAK * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16
                    } else {
                        noise as i16
                    };
                }
                let n = enc.encode(&pcm, &mut out)?;
                if pass == 1 {
                    frames.push(out[..n].to_vec());
                }
            }
        }
        Ok(frames)
    }

    /// The payload of the `seq`-th frame sent (narrowband or not), and whether it is the marker.
    pub fn frame(&self, seq: u32, narrowband: bool) -> (&[u8], bool) {
        let k = seq as usize % LOOP_FRAMES;
        let frames = if narrowband {
            &self.narrowband
        } else {
            &self.frames
        };
        (&frames[k], k == 0)
    }
}

/// One call's figures from the returning audio.
#[derive(Debug, Clone, Default)]
pub struct AudioFigures {
    /// Packets received.
    pub received: u64,
    /// Packets the sequence numbers say were sent to us (highest - first + 1).
    pub expected: u64,
    /// Marker round trips, µs.
    pub rtt_us: Vec<u64>,
    /// Markers sent.
    pub markers_sent: u64,
    /// Markers not back within the window.
    pub markers_missed: u64,
    /// Markers still within their window when the call ended (the drain after the last send
    /// is shorter than the window): neither back nor missed, not counted in `markers_sent`.
    pub markers_unresolved: u64,
    /// RFC 3550 jitter of the returning stream.
    pub jitter: Jitter,
    /// Packets libopus could not decode.
    pub undecodable: u64,
}

/// The receiving side of one transcoded call.
pub struct AudioRx {
    dec: opus::Decoder,
    pcm: [i16; FRAME_8K * 6],
    pending: VecDeque<u64>,
    /// The previous frame had a loud sample (an onset needs a quiet frame before it).
    loud: bool,
    first_seq: Option<u64>,
    highest_seq: u64,
    /// RTP clock of the returning stream, Hz.
    clock: u64,
    last_ts: Option<u32>,
    ts_ext: i64,
    /// The call's figures so far.
    pub figures: AudioFigures,
}

impl AudioRx {
    /// A receiver for a stream with RTP clock `clock` (48 000 for Opus).
    pub fn new(clock: u32) -> Result<AudioRx, AudioError> {
        Ok(AudioRx {
            dec: opus::Decoder::new(8_000, opus::Channels::Mono)?,
            pcm: [0; FRAME_8K * 6],
            pending: VecDeque::with_capacity(MAX_PENDING),
            loud: false,
            first_seq: None,
            highest_seq: 0,
            clock: u64::from(clock.max(1)),
            last_ts: None,
            ts_ext: 0,
            figures: AudioFigures::default(),
        })
    }

    /// A marker frame went out at `now_ns`.
    pub fn marker_sent(&mut self, now_ns: u64) {
        self.expire(now_ns);
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
            self.figures.markers_missed += 1;
        }
        self.pending.push_back(now_ns);
        self.figures.markers_sent += 1;
    }

    fn expire(&mut self, now_ns: u64) {
        while let Some(&t) = self.pending.front() {
            if now_ns.saturating_sub(t) <= MARKER_WINDOW_NS {
                break;
            }
            self.pending.pop_front();
            self.figures.markers_missed += 1;
        }
    }

    /// A returning RTP packet: extended sequence number, timestamp, payload, arrival.
    pub fn on_rtp(&mut self, seq: u64, ts: u32, payload: &[u8], now_ns: u64) {
        let f = &mut self.figures;
        f.received += 1;
        let first = *self.first_seq.get_or_insert(seq);
        self.highest_seq = self.highest_seq.max(seq);
        f.expected = self.highest_seq.saturating_sub(first) + 1;
        // Unwrap the timestamp (a step is a signed 32-bit difference).
        if let Some(last) = self.last_ts {
            self.ts_ext += i64::from(ts.wrapping_sub(last) as i32);
        }
        self.last_ts = Some(ts);
        let media_ns = i128::from(self.ts_ext) * 1_000_000_000 / i128::from(self.clock);
        // The offset keeps the transit positive whatever the stream's start.
        let transit = i128::from(now_ns) + (1i128 << 62) - media_ns;
        f.jitter
            .observe(transit.clamp(0, i128::from(u64::MAX)) as u64);
        self.expire(now_ns);
        let f = &mut self.figures;
        let n = match self.dec.decode(payload, &mut self.pcm, false) {
            Ok(n) => n.min(self.pcm.len()),
            Err(_) => {
                f.undecodable += 1;
                return;
            }
        };
        let onset = self.pcm[..n]
            .iter()
            .position(|s| s.unsigned_abs() >= ONSET as u16);
        match onset {
            Some(k) if !self.loud => {
                self.loud = true;
                if let Some(sent) = self.pending.pop_front() {
                    let at = now_ns + k as u64 * 1_000_000_000 / 8_000;
                    f.rtt_us.push(at.saturating_sub(sent) / 1000);
                }
            }
            Some(_) => {}
            None => self.loud = false,
        }
    }

    /// The call ended at `now_ns`: pending markers older than the window are missed, younger
    /// ones unresolved (they could still have come back).
    pub fn finish(&mut self, now_ns: u64) -> AudioFigures {
        self.expire(now_ns);
        let young = self.pending.len() as u64;
        self.figures.markers_unresolved += young;
        self.figures.markers_sent = self.figures.markers_sent.saturating_sub(young);
        self.pending.clear();
        std::mem::take(&mut self.figures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop decoded locally (no gateway): the onset is found in frame 0 of each second and
    /// nowhere else, and a marker "sent" at t comes back with the delay we feed in.
    #[test]
    fn the_marker_is_found_once_per_loop_with_the_delay_fed_in() {
        let l = MarkerLoop::new().unwrap();
        for narrowband in [false, true] {
            marker_round_trip(&l, narrowband);
        }
    }

    /// The narrowband loop is narrowband (TOC configs 0-3 SILK NB, 16-19 CELT NB, RFC 6716
    /// §3.1) and the default one is not.
    #[test]
    fn the_narrowband_loop_is_narrowband() {
        let l = MarkerLoop::new().unwrap();
        let nb = |c: u8| c <= 3 || (16..=19).contains(&c);
        let configs = |narrow| -> Vec<u8> {
            (0..LOOP_FRAMES as u32)
                .map(|k| l.frame(k, narrow).0[0] >> 3)
                .collect()
        };
        assert!(configs(true).into_iter().all(nb), "{:?}", configs(true));
        assert!(!configs(false).into_iter().all(nb), "{:?}", configs(false));
    }

    fn marker_round_trip(l: &MarkerLoop, narrowband: bool) {
        let mut rx = AudioRx::new(48_000).unwrap();
        let t0 = 1_000_000_000u64;
        let delay = 70_000_000u64;
        for seq in 0..(3 * LOOP_FRAMES as u32) {
            let sent = t0 + u64::from(seq) * 20_000_000;
            let (payload, marker) = l.frame(seq, narrowband);
            if marker {
                rx.marker_sent(sent);
            }
            rx.on_rtp(u64::from(seq) + 7, seq * 960, payload, sent + delay);
        }
        let f = rx.finish(t0 + 3 * 1_000_000_000);
        assert_eq!(f.markers_sent, 3);
        assert_eq!(f.rtt_us.len(), 3, "{f:?}");
        assert_eq!(f.markers_missed, 0);
        for rtt in &f.rtt_us {
            // The fed delay plus where in the frame the decoded onset falls (codec delay).
            assert!((70_000..95_000).contains(rtt), "{rtt}");
        }
        assert_eq!(f.received, 150);
        assert_eq!(f.expected, 150);
        assert!(f.jitter.jitter_ns < 1.0, "{:?}", f.jitter);
    }

    #[test]
    fn gaps_count_as_loss_and_silence_misses_the_marker() {
        let l = MarkerLoop::new().unwrap();
        let mut rx = AudioRx::new(48_000).unwrap();
        rx.marker_sent(0);
        // Only quiet frames come back, with one sequence number skipped.
        for (i, seq) in [1u32, 2, 4, 5].iter().enumerate() {
            rx.on_rtp(
                u64::from(*seq),
                seq * 960,
                l.frame(*seq, false).0,
                i as u64 * 20_000_000,
            );
        }
        rx.on_rtp(6, 6 * 960, l.frame(6, false).0, MARKER_WINDOW_NS + 1);
        // A marker sent just before the end is unresolved, not missed.
        rx.marker_sent(MARKER_WINDOW_NS + 2);
        let f = rx.finish(MARKER_WINDOW_NS + 3);
        assert_eq!((f.received, f.expected), (5, 6));
        assert_eq!(
            (f.markers_sent, f.markers_missed, f.markers_unresolved),
            (1, 1, 1)
        );
        assert!(f.rtt_us.is_empty());
    }
}
