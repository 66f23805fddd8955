//! Packet loss concealment for codecs that have none of their own (G.711, G.722).
//!
//! Pitch repetition in the spirit of G.711 Appendix I, simplified: on the first lost frame the
//! pitch period is estimated by normalised autocorrelation over the last 30 ms of good audio
//! (lags 2.5–15 ms) and the last period is repeated; after 10 ms of loss the level ramps down
//! 20% per 10 ms, reaching silence at 60 ms. The first good frame after a loss is cross-faded
//! over 4 ms from the continued synthesis, so neither edge of a gap makes a click.
//!
//! Invariant: fixed-size state (history of 48 ms at up to 16 kHz); nothing allocates after
//! construction.

const HIST_MAX: usize = 768; // 48 ms at 16 kHz

/// Concealment state for one decoder.
pub struct Plc {
    rate: usize,
    hist: [i16; HIST_MAX],
    hist_len: usize,
    hist_cap: usize,
    /// Samples concealed in the current loss burst (0 = not in a loss).
    lost: usize,
    pitch: usize,
    /// Position inside the repeated period.
    phase: usize,
}

impl Plc {
    /// `rate` is the PCM rate (8 or 16 kHz; higher rates are clamped to the history size).
    pub fn new(rate: u32) -> Self {
        let rate = rate as usize;
        let hist_cap = (rate * 48 / 1000).clamp(1, HIST_MAX);
        Self {
            rate,
            hist: [0; HIST_MAX],
            hist_len: 0,
            hist_cap,
            lost: 0,
            pitch: 1,
            phase: 0,
        }
    }

    /// Whether the last frame was concealed.
    pub fn in_loss(&self) -> bool {
        self.lost > 0
    }

    /// Takes a good decoded frame: cross-fades it in after a loss and records it as history.
    pub fn good(&mut self, frame: &mut [i16]) {
        if self.lost > 0 {
            let fade = (self.rate * 4 / 1000).min(frame.len());
            for (i, s) in frame.iter_mut().take(fade).enumerate() {
                let synth = self.next_synth() as i32;
                let w = (i + 1) as i32 * 1024 / (fade as i32 + 1);
                *s = ((synth * (1024 - w) + *s as i32 * w) >> 10) as i16;
            }
            self.lost = 0;
        }
        self.push_history(frame);
    }

    /// Fills `out` with concealment for a lost frame.
    pub fn conceal(&mut self, out: &mut [i16]) {
        if self.lost == 0 {
            self.pitch = self.estimate_pitch();
            self.phase = 0;
        }
        for s in out.iter_mut() {
            *s = self.next_synth();
        }
    }

    /// One sample of the repeated period, with the loss-length gain applied.
    fn next_synth(&mut self) -> i16 {
        if self.hist_len < self.pitch {
            self.lost += 1;
            return 0;
        }
        let start = self.hist_len - self.pitch;
        let v = self.hist[start + self.phase] as i32;
        self.phase = (self.phase + 1) % self.pitch;
        let ms10 = self.rate / 100;
        // Full level for 10 ms, then linear to zero at 60 ms (20% per 10 ms).
        let g = if self.lost < ms10 {
            1024
        } else {
            let past = (self.lost - ms10) as i32;
            (1024 - past * 1024 / (5 * ms10 as i32)).max(0)
        };
        self.lost += 1;
        ((v * g) >> 10) as i16
    }

    fn push_history(&mut self, frame: &[i16]) {
        let cap = self.hist_cap;
        if frame.len() >= cap {
            self.hist[..cap].copy_from_slice(&frame[frame.len() - cap..]);
            self.hist_len = cap;
            return;
        }
        let keep = (cap - frame.len()).min(self.hist_len);
        self.hist
            .copy_within(self.hist_len - keep..self.hist_len, 0);
        self.hist[keep..keep + frame.len()].copy_from_slice(frame);
        self.hist_len = keep + frame.len();
    }

    /// Lag with the highest normalised autocorrelation of the last 20 ms against itself.
    fn estimate_pitch(&self) -> usize {
        let min_lag = (self.rate / 400).max(1);
        let max_lag = self.rate * 15 / 1000;
        let win = self.rate * 20 / 1000;
        if self.hist_len < max_lag + win {
            return min_lag.min(self.hist_len.max(1));
        }
        let h = &self.hist[..self.hist_len];
        let end = h.len();
        let x = &h[end - win..];
        let (mut best, mut best_lag) = (f32::MIN, min_lag);
        for lag in min_lag..=max_lag {
            let y = &h[end - win - lag..end - lag];
            let (mut xy, mut yy) = (0f32, 1e-3f32);
            for (a, b) in x.iter().zip(y) {
                xy += *a as f32 * *b as f32;
                yy += *b as f32 * *b as f32;
            }
            let score = xy / yy.sqrt();
            // Prefer the shortest of near-equal multiples of the period.
            if score > best * 1.02 || (best < 0.0 && score > best) {
                best = score;
                best_lag = lag;
            }
        }
        best_lag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, start: usize, f: f32, rate: f32) -> Vec<i16> {
        (start..start + n)
            .map(|i| (8000.0 * (2.0 * std::f32::consts::PI * f * i as f32 / rate).sin()) as i16)
            .collect()
    }

    #[test]
    fn concealment_continues_a_tone_without_a_step() {
        let mut plc = Plc::new(8000);
        for k in 0..5 {
            let mut f = tone(160, k * 160, 400.0, 8000.0);
            plc.good(&mut f);
        }
        let mut out = [0i16; 160];
        plc.conceal(&mut out);
        let expect = tone(160, 800, 400.0, 8000.0);
        // A 400 Hz period is 20 samples: repetition reproduces the tone almost exactly for the
        // first 10 ms (full level), then the same waveform fades.
        for (a, b) in out.iter().zip(&expect).take(80) {
            assert!((*a as i32 - *b as i32).abs() < 200, "{a} vs {b}");
        }
    }

    #[test]
    fn long_loss_fades_to_silence() {
        let mut plc = Plc::new(8000);
        let mut f = tone(400, 0, 300.0, 8000.0);
        plc.good(&mut f);
        let mut out = [0i16; 160];
        for _ in 0..4 {
            plc.conceal(&mut out);
        }
        assert!(out.iter().all(|s| *s == 0), "silent after 80 ms of loss");
    }
}
