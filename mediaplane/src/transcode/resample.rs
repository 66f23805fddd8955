//! Fixed-ratio resampling between the PCM rates of two codecs (8 kHz ↔ 16 kHz, or to/from
//! 48 kHz), with rubato's synchronous FFT resampler.
//!
//! Why rubato's `Fft`: the media plane only ever needs fixed integer ratios, for which the FFT
//! resampler is both the cheapest and the cleanest option of the maintained crate (measured in
//! benches/benches/transcode.rs against rubato's asynchronous sinc resampler; figures in
//! docs/benchmarks/transcode.md). It works on 10 ms chunks so every codec frame size fits.
//! Note Opus never needs it: libopus runs at the other side's rate directly.
//!
//! Invariant: buffers are sized at construction; `process` allocates nothing.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

/// Errors building or running a resampler.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("cannot build a {from} Hz -> {to} Hz resampler: {why}")]
    Build { from: u32, to: u32, why: String },
    #[error("resampling failed: {0}")]
    Run(String),
    #[error("input of {0} samples is not a whole number of 10 ms chunks")]
    Chunk(usize),
    #[error("output buffer too small")]
    Buffer,
}

/// A mono fixed-ratio resampler with i16 in and out.
pub struct Resampler {
    inner: Fft<f32>,
    chunk_in: usize,
    chunk_out: usize,
    fin: Vec<f32>,
    fout: Vec<f32>,
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        let chunk_in = from as usize / 100;
        let chunk_out = to as usize / 100;
        let inner = Fft::<f32>::new(from as usize, to as usize, chunk_in, 1, FixedSync::Both)
            .map_err(|e| ResampleError::Build {
                from,
                to,
                why: e.to_string(),
            })?;
        if inner.input_frames_next() != chunk_in || inner.output_frames_next() != chunk_out {
            return Err(ResampleError::Build {
                from,
                to,
                why: "chunk sizes differ from 10 ms".into(),
            });
        }
        Ok(Self {
            inner,
            chunk_in,
            chunk_out,
            fin: vec![0.0; chunk_in],
            fout: vec![0.0; chunk_out],
        })
    }

    /// Output samples per input sample count `n` (a multiple of 10 ms).
    pub fn output_len(&self, n: usize) -> usize {
        n / self.chunk_in * self.chunk_out
    }

    /// The resampler's delay, in output samples.
    pub fn delay(&self) -> usize {
        self.inner.output_delay()
    }

    /// Resamples `input` (whole 10 ms chunks) into `out`; returns the samples written.
    pub fn process(&mut self, input: &[i16], out: &mut [i16]) -> Result<usize, ResampleError> {
        if input.len() % self.chunk_in != 0 {
            return Err(ResampleError::Chunk(input.len()));
        }
        let total = self.output_len(input.len());
        if out.len() < total {
            return Err(ResampleError::Buffer);
        }
        for (k, chunk) in input.chunks_exact(self.chunk_in).enumerate() {
            for (f, s) in self.fin.iter_mut().zip(chunk) {
                *f = *s as f32 * (1.0 / 32768.0);
            }
            let a = InterleavedSlice::new(&self.fin[..], 1, self.chunk_in)
                .map_err(|e| ResampleError::Run(e.to_string()))?;
            let mut b = InterleavedSlice::new_mut(&mut self.fout[..], 1, self.chunk_out)
                .map_err(|e| ResampleError::Run(e.to_string()))?;
            self.inner
                .process_into_buffer(&a, &mut b, None)
                .map_err(|e| ResampleError::Run(e.to_string()))?;
            for (o, f) in out[k * self.chunk_out..(k + 1) * self.chunk_out]
                .iter_mut()
                .zip(&self.fout)
            {
                *o = (f * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
            }
        }
        Ok(total)
    }
}
