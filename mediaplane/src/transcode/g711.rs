//! G.711 µ-law and A-law, table-driven (our own code, computed at compile time).
//!
//! Decoding is one 256-entry lookup per byte. Encoding indexes a table by the sample's top 14
//! bits (µ-law, 16 KiB) or 13 bits (A-law, 8 KiB): G.711 ignores the low bits anyway, so the
//! table gives exactly the segment-search result of the ITU-T reference without branching.
//! Lost frames are concealed by [`Plc`] (pitch repetition), as G.711 has no concealment of its own.

use super::codec::{AudioDecoder, AudioEncoder, CodecError};
use super::plc::Plc;

/// Which companding law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    Mu,
    A,
}

const BIAS: i32 = 0x84;

const fn ulaw_encode_calc(pcm: i32) -> u8 {
    // pcm is the 14-bit value (sample >> 2).
    let (mut v, mask) = if pcm < 0 { (-pcm, 0x7F) } else { (pcm, 0xFF) };
    if v > 8159 {
        v = 8159;
    }
    v += BIAS >> 2;
    let mut seg = 0;
    while seg < 8 && v > (0x40 << seg) - 1 {
        seg += 1;
    }
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let uval = (seg << 4) | ((v >> (seg + 1)) & 0xF);
    (uval ^ mask) as u8
}

const fn ulaw_decode_calc(u: u8) -> i16 {
    let u = !u as i32;
    let t = (((u & 0x0F) << 3) + BIAS) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { BIAS - t } else { t - BIAS }) as i16
}

const fn alaw_encode_calc(pcm: i32) -> u8 {
    // pcm is the 13-bit value (sample >> 3).
    let (v, mask) = if pcm >= 0 {
        (pcm, 0xD5)
    } else {
        (-pcm - 1, 0x55)
    };
    let mut seg = 0;
    while seg < 8 && v > (0x20 << seg) - 1 {
        seg += 1;
    }
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut aval = seg << 4;
    aval |= if seg < 2 {
        (v >> 1) & 0xF
    } else {
        (v >> seg) & 0xF
    };
    (aval ^ mask) as u8
}

const fn alaw_decode_calc(a: u8) -> i16 {
    let a = (a ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (seg - 1),
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const fn ulaw_enc_table() -> [u8; 16384] {
    let mut t = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        // Index = the sample's top 14 bits as an unsigned pattern; sign-extend back.
        let v = if i >= 8192 {
            i as i32 - 16384
        } else {
            i as i32
        };
        t[i] = ulaw_encode_calc(v);
        i += 1;
    }
    t
}

const fn alaw_enc_table() -> [u8; 8192] {
    let mut t = [0u8; 8192];
    let mut i = 0;
    while i < 8192 {
        let v = if i >= 4096 { i as i32 - 8192 } else { i as i32 };
        t[i] = alaw_encode_calc(v);
        i += 1;
    }
    t
}

const fn dec_table(law: Law) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match law {
            Law::Mu => ulaw_decode_calc(i as u8),
            Law::A => alaw_decode_calc(i as u8),
        };
        i += 1;
    }
    t
}

static ULAW_ENC: [u8; 16384] = ulaw_enc_table();
static ALAW_ENC: [u8; 8192] = alaw_enc_table();
static ULAW_DEC: [i16; 256] = dec_table(Law::Mu);
static ALAW_DEC: [i16; 256] = dec_table(Law::A);

/// Encodes one linear sample to µ-law.
#[inline]
pub fn ulaw_encode(s: i16) -> u8 {
    ULAW_ENC[(s as u16 >> 2) as usize]
}

/// Encodes one linear sample to A-law.
#[inline]
pub fn alaw_encode(s: i16) -> u8 {
    ALAW_ENC[(s as u16 >> 3) as usize]
}

/// Decodes one µ-law byte.
#[inline]
pub fn ulaw_decode(b: u8) -> i16 {
    ULAW_DEC[b as usize]
}

/// Decodes one A-law byte.
#[inline]
pub fn alaw_decode(b: u8) -> i16 {
    ALAW_DEC[b as usize]
}

/// G.711 decoder with pitch-repetition concealment.
pub struct Decoder {
    table: &'static [i16; 256],
    plc: Plc,
}

impl Decoder {
    pub fn new(law: Law, rate: u32) -> Self {
        let table = match law {
            Law::Mu => &ULAW_DEC,
            Law::A => &ALAW_DEC,
        };
        Self {
            table,
            plc: Plc::new(rate),
        }
    }
}

impl AudioDecoder for Decoder {
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let n = payload.len();
        if out.len() < n {
            return Err(CodecError::Buffer {
                need: n,
                have: out.len(),
            });
        }
        for (o, b) in out.iter_mut().zip(payload) {
            *o = self.table[*b as usize];
        }
        self.plc.good(&mut out[..n]);
        Ok(n)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        self.plc.conceal(out);
        Ok(out.len())
    }
}

/// G.711 encoder (stateless).
pub struct Encoder {
    law: Law,
}

impl Encoder {
    pub fn new(law: Law) -> Self {
        Self { law }
    }
}

impl AudioEncoder for Encoder {
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        if out.len() < pcm.len() {
            return Err(CodecError::Buffer {
                need: pcm.len(),
                have: out.len(),
            });
        }
        match self.law {
            Law::Mu => pcm
                .iter()
                .zip(out.iter_mut())
                .for_each(|(s, o)| *o = ulaw_encode(*s)),
            Law::A => pcm
                .iter()
                .zip(out.iter_mut())
                .for_each(|(s, o)| *o = alaw_encode(*s)),
        }
        Ok(pcm.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Silence codes of both laws, and the extremes.
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
    }

    #[test]
    fn every_code_round_trips() {
        for c in 0..=255u8 {
            // µ-law 0x7F is negative zero; it decodes to 0 which encodes as 0xFF.
            if c != 0x7F {
                assert_eq!(ulaw_encode(ulaw_decode(c)), c, "ulaw {c:#x}");
            }
            assert_eq!(alaw_encode(alaw_decode(c)), c, "alaw {c:#x}");
        }
    }

    #[test]
    fn quantisation_error_is_bounded_by_the_segment_step() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let u = ulaw_decode(ulaw_encode(s)) as i32;
            let a = alaw_decode(alaw_encode(s)) as i32;
            let s = s as i32;
            // Step sizes grow with magnitude: about 1/16 of the value plus the first step.
            assert!((u - s).abs() <= s.abs() / 16 + 16, "ulaw {s} -> {u}");
            assert!((a - s).abs() <= s.abs() / 16 + 16, "alaw {s} -> {a}");
        }
    }
}
