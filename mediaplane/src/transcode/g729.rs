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
    /// The last frame was an Annex B SID: a missing frame then means "no transmission" (DTX),
    /// decoded as comfort noise, not as an erasure.
    in_dtx: bool,
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
            in_dtx: false,
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
        self.in_dtx = sid == 2;
        Ok(need)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        let mut n = 0;
        for chunk in out.chunks_exact_mut(FRAME_SAMPLES) {
            let pcm = if self.in_dtx {
                self.inner.decode(&[], false, true, false)
            } else {
                self.inner.decode(&[], true, false, false)
            };
            chunk.copy_from_slice(&pcm);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// bcg729's reference bitstream (voice, SID and untransmitted frames) decodes through our
    /// wrapper to bcg729's reference output, sample for sample.
    #[test]
    fn decodes_the_bcg729_reference_bitstream_bit_exact() {
        let text = include_str!("testdata/g729/annex_b_ref_enc.txt");
        let want: Vec<i16> = include_bytes!("testdata/g729/annex_b_ref_dec.pcm")
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        let mut dec = Decoder::new();
        let mut out = [0i16; FRAME_SAMPLES];
        let (mut voice, mut sid, mut dtx) = (0, 0, 0);
        for (idx, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            let nums: Vec<u8> = line
                .split_whitespace()
                .skip(1)
                .map(|t| t.parse::<u32>().expect("int") as u8)
                .collect();
            let len = nums[0] as usize;
            let payload = &nums[1..1 + len];
            match len {
                0 => {
                    dtx += 1;
                    dec.conceal(&mut out).expect("conceal");
                }
                _ => {
                    if len == 2 {
                        sid += 1
                    } else {
                        voice += 1
                    }
                    assert_eq!(
                        dec.decode(payload, &mut out).expect("decode"),
                        FRAME_SAMPLES
                    );
                }
            }
            assert_eq!(
                &out[..],
                &want[idx * FRAME_SAMPLES..(idx + 1) * FRAME_SAMPLES],
                "frame {idx} (len {len})"
            );
        }
        assert!(
            voice > 100 && sid > 0 && dtx > 0,
            "voice {voice} sid {sid} dtx {dtx}"
        );
    }

    #[test]
    fn encoder_output_decodes_to_the_input_tone() {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        let pcm: Vec<i16> = (0..8000)
            .map(|i| {
                (6000.0 * (2.0 * std::f64::consts::PI * 500.0 * i as f64 / 8000.0).sin()) as i16
            })
            .collect();
        let (mut buf, mut out) = ([0u8; 20], [0i16; 160]);
        let mut energy = (0f64, 0f64);
        for (k, f) in pcm.chunks_exact(160).enumerate() {
            assert_eq!(
                enc.encode(f, &mut buf).expect("encode"),
                20,
                "VAD off: two voice frames"
            );
            dec.decode(&buf, &mut out).expect("decode");
            if k > 10 {
                energy.0 += f.iter().map(|s| (*s as f64).powi(2)).sum::<f64>();
                energy.1 += out.iter().map(|s| (*s as f64).powi(2)).sum::<f64>();
            }
        }
        let ratio_db = 10.0 * (energy.1 / energy.0).log10();
        assert!(ratio_db.abs() < 1.0, "level {ratio_db:.2} dB");
    }
}
