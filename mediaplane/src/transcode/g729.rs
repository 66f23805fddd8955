//! G.729 through `g729-sys` 0.3 (a pure-Rust port verified bit-exact against bcg729, Annex A
//! compatible bitstream, Annex B VAD/DTX/CNG).
//!
//! A payload is a run of 10-byte frames (10 ms each), optionally ending in a 2-byte Annex B SID
//! frame (RFC 3551 §4.5.6). We encode with VAD off (continuous 8 kbit/s) because not every SIP
//! peer that offers G729 accepts `annexb=yes`; received SID frames still decode to comfort noise.
//! Lost frames use the codec's own erasure concealment.

use super::codec::{AudioDecoder, AudioEncoder, Codec, CodecError};
use g729_sys::{FRAME_SAMPLES, VOICE_FRAME_BYTES};

/// G.729 decoder.
pub struct Decoder {
    inner: g729_sys::Decoder,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            inner: g729_sys::Decoder::new(),
        }
    }
}

impl AudioDecoder for Decoder {
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let voice = payload.len() / VOICE_FRAME_BYTES;
        let sid = payload.len() % VOICE_FRAME_BYTES;
        if sid != 0 && sid != 2 {
            return Err(CodecError::Payload {
                codec: Codec::G729,
                len: payload.len(),
            });
        }
        let frames = voice + usize::from(sid == 2);
        let need = frames * FRAME_SAMPLES;
        if out.len() < need {
            return Err(CodecError::Buffer {
                need,
                have: out.len(),
            });
        }
        for (i, chunk) in out.chunks_exact_mut(FRAME_SAMPLES).take(frames).enumerate() {
            let pcm = if i < voice {
                self.inner
                    .decode(&payload[i * 10..i * 10 + 10], false, false, false)
            } else {
                self.inner
                    .decode(&payload[voice * 10..], false, true, false)
            };
            chunk.copy_from_slice(&pcm);
        }
        Ok(need)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        let mut n = 0;
        for chunk in out.chunks_exact_mut(FRAME_SAMPLES) {
            chunk.copy_from_slice(&self.inner.decode(&[], true, false, false));
            n += FRAME_SAMPLES;
        }
        Ok(n)
    }
}

/// G.729 encoder (VAD off).
pub struct Encoder {
    inner: g729_sys::Encoder,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        Self {
            inner: g729_sys::Encoder::new(false),
        }
    }
}

impl AudioEncoder for Encoder {
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        if pcm.len() % FRAME_SAMPLES != 0 {
            return Err(CodecError::Frame {
                codec: Codec::G729,
                samples: pcm.len(),
            });
        }
        let need = pcm.len() / FRAME_SAMPLES * VOICE_FRAME_BYTES;
        if out.len() < need {
            return Err(CodecError::Buffer {
                need,
                have: out.len(),
            });
        }
        let mut n = 0;
        for (frame, dst) in pcm
            .chunks_exact(FRAME_SAMPLES)
            .zip(out.chunks_exact_mut(VOICE_FRAME_BYTES))
        {
            let mut input = [0i16; FRAME_SAMPLES];
            input.copy_from_slice(frame);
            let mut buf = [0u8; VOICE_FRAME_BYTES];
            let len = self.inner.encode_into(&input, &mut buf) as usize;
            dst[..len].copy_from_slice(&buf[..len]);
            n += len;
        }
        Ok(n)
    }
}
