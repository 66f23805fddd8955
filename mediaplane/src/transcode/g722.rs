//! G.722 at 64 kbit/s (mode 1): sub-band ADPCM, 16 kHz PCM, one byte per two samples.
//!
//! Our own implementation of the ITU-T G.722 algorithm (QMF split into a 6-bit low band and a
//! 2-bit high band, each with its adaptive predictor, "block 4" of the recommendation). Integer
//! arithmetic with the recommendation's saturations, so output is deterministic. Lost frames
//! are concealed by [`Plc`] on the decoded 16 kHz signal (the ADPCM state then re-adapts).

use super::codec::{AudioDecoder, AudioEncoder, CodecError};
use super::plc::Plc;

const QMF: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
const RL42: [i32; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
const Q6: [i32; 32] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0,
];
const ILN: [i32; 32] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4, 0,
];
const ILP: [i32; 32] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32, 0,
];
const WH: [i32; 3] = [0, -214, 798];
const RH2: [i32; 4] = [2, 1, 2, 1];
const IHN: [i32; 3] = [0, 1, 0];
const IHP: [i32; 3] = [0, 3, 2];

#[inline]
fn sat(v: i32) -> i32 {
    v.clamp(i16::MIN as i32, i16::MAX as i32)
}

/// One sub-band's adaptive predictor state.
#[derive(Clone, Copy, Default)]
struct Band {
    s: i32,
    sp: i32,
    sz: i32,
    r: [i32; 3],
    a: [i32; 3],
    ap: [i32; 3],
    p: [i32; 3],
    d: [i32; 7],
    b: [i32; 7],
    bp: [i32; 7],
    nb: i32,
    det: i32,
}

impl Band {
    fn new(det: i32) -> Self {
        Self {
            det,
            ..Self::default()
        }
    }

    /// Block 4: reconstruct, adapt the pole and zero predictors, predict the next sample.
    fn block4(&mut self, d: i32) {
        let mut sg = [0i32; 7];
        self.d[0] = d;
        self.r[0] = sat(self.s + d);
        self.p[0] = sat(self.sz + d);
        // UPPOL2
        for i in 0..3 {
            sg[i] = self.p[i] >> 15;
        }
        let wd1 = sat(self.a[1] << 2);
        let wd2 = if sg[0] == sg[1] { -wd1 } else { wd1 }.min(32767);
        let mut wd3 = (wd2 >> 7) + if sg[0] == sg[2] { 128 } else { -128 };
        wd3 += (self.a[2] * 32512) >> 15;
        self.ap[2] = wd3.clamp(-12288, 12288);
        // UPPOL1
        let wd1 = if sg[0] == sg[1] { 192 } else { -192 };
        let wd2 = (self.a[1] * 32640) >> 15;
        let lim = sat(15360 - self.ap[2]);
        self.ap[1] = sat(wd1 + wd2).clamp(-lim, lim);
        // UPZERO
        let wd1 = if d == 0 { 0 } else { 128 };
        sg[0] = d >> 15;
        for i in 1..7 {
            sg[i] = self.d[i] >> 15;
            let wd2 = if sg[i] == sg[0] { wd1 } else { -wd1 };
            let wd3 = (self.b[i] * 32640) >> 15;
            self.bp[i] = sat(wd2 + wd3);
        }
        // DELAYA
        for i in (1..7).rev() {
            self.d[i] = self.d[i - 1];
            self.b[i] = self.bp[i];
        }
        for i in (1..3).rev() {
            self.r[i] = self.r[i - 1];
            self.p[i] = self.p[i - 1];
            self.a[i] = self.ap[i];
        }
        // FILTEP
        let wd1 = (self.a[1] * sat(self.r[1] + self.r[1])) >> 15;
        let wd2 = (self.a[2] * sat(self.r[2] + self.r[2])) >> 15;
        self.sp = sat(wd1 + wd2);
        // FILTEZ
        let mut sz = 0;
        for i in (1..7).rev() {
            sz += (self.b[i] * sat(self.d[i] + self.d[i])) >> 15;
        }
        self.sz = sat(sz);
        // PREDIC
        self.s = sat(self.sp + self.sz);
    }

    /// LOGSCL + SCALEL (low band) or LOGSCH + SCALEH (high band).
    fn scale(&mut self, w: i32, max_nb: i32, shift: i32) {
        self.nb = (((self.nb * 127) >> 7) + w).clamp(0, max_nb);
        let wd1 = ((self.nb >> 6) & 31) as usize;
        let wd2 = shift - (self.nb >> 11);
        let wd3 = if wd2 < 0 {
            ILB[wd1] << -wd2
        } else {
            ILB[wd1] >> wd2
        };
        self.det = wd3 << 2;
    }
}

/// G.722 encoder state.
pub struct Encoder {
    x: [i32; 24],
    low: Band,
    high: Band,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        Self {
            x: [0; 24],
            low: Band::new(32),
            high: Band::new(8),
        }
    }

    /// Encodes two 16 kHz samples into one G.722 byte.
    fn encode_pair(&mut self, a: i16, b: i16) -> u8 {
        self.x.copy_within(2.., 0);
        self.x[22] = a as i32;
        self.x[23] = b as i32;
        let (mut sumodd, mut sumeven) = (0i32, 0i32);
        for i in 0..12 {
            sumodd += self.x[2 * i] * QMF[i];
            sumeven += self.x[2 * i + 1] * QMF[11 - i];
        }
        let xlow = (sumeven + sumodd) >> 14;
        let xhigh = (sumeven - sumodd) >> 14;

        // Low band: SUBTRA, QUANTL, INVQAL, LOGSCL, SCALEL.
        let el = sat(xlow - self.low.s);
        let wd = if el >= 0 { el } else { -(el + 1) };
        let mut i = 1;
        while i < 30 {
            if wd < (Q6[i] * self.low.det) >> 12 {
                break;
            }
            i += 1;
        }
        let ilow = if el < 0 { ILN[i] } else { ILP[i] };
        let ril = (ilow >> 2) as usize;
        let dlow = (self.low.det * QM4[ril]) >> 15;
        self.low.scale(WL[RL42[ril] as usize], 18432, 8);
        self.low.block4(dlow);

        // High band: SUBTRA, QUANTH, INVQAH, LOGSCH, SCALEH.
        let eh = sat(xhigh - self.high.s);
        let wd = if eh >= 0 { eh } else { -(eh + 1) };
        let mih = if wd >= (564 * self.high.det) >> 12 {
            2
        } else {
            1
        };
        let ihigh = if eh < 0 { IHN[mih] } else { IHP[mih] };
        let dhigh = (self.high.det * QM2[ihigh as usize]) >> 15;
        self.high.scale(WH[RH2[ihigh as usize] as usize], 22528, 10);
        self.high.block4(dhigh);

        ((ihigh << 6) | ilow) as u8
    }
}

impl AudioEncoder for Encoder {
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        let n = pcm.len() / 2;
        if out.len() < n {
            return Err(CodecError::Buffer {
                need: n,
                have: out.len(),
            });
        }
        for (o, pair) in out.iter_mut().zip(pcm.chunks_exact(2)) {
            *o = self.encode_pair(pair[0], pair[1]);
        }
        Ok(n)
    }
}

/// G.722 decoder state with concealment.
pub struct Decoder {
    x: [i32; 24],
    low: Band,
    high: Band,
    plc: Plc,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            x: [0; 24],
            low: Band::new(32),
            high: Band::new(8),
            plc: Plc::new(16_000),
        }
    }

    fn decode_byte(&mut self, code: u8) -> (i16, i16) {
        let code = code as i32;
        let ilow = (code & 0x3F) as usize;
        let ihigh = ((code >> 6) & 0x03) as usize;
        // Low band: INVQBL, RECONS, LIMIT, then the adaptation path on the 4-bit code.
        let rlow = (self.low.s + ((self.low.det * QM6[ilow]) >> 15)).clamp(-16384, 16383);
        let ril = ilow >> 2;
        let dlowt = (self.low.det * QM4[ril]) >> 15;
        self.low.scale(WL[RL42[ril] as usize], 18432, 8);
        self.low.block4(dlowt);
        // High band.
        let dhigh = (self.high.det * QM2[ihigh]) >> 15;
        let rhigh = (dhigh + self.high.s).clamp(-16384, 16383);
        self.high.scale(WH[RH2[ihigh] as usize], 22528, 10);
        self.high.block4(dhigh);
        // Receive QMF.
        self.x.copy_within(2.., 0);
        self.x[22] = rlow + rhigh;
        self.x[23] = rlow - rhigh;
        let (mut xout1, mut xout2) = (0i32, 0i32);
        for i in 0..12 {
            xout2 += self.x[2 * i] * QMF[i];
            xout1 += self.x[2 * i + 1] * QMF[11 - i];
        }
        (sat(xout1 >> 11) as i16, sat(xout2 >> 11) as i16)
    }
}

impl AudioDecoder for Decoder {
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let n = payload.len() * 2;
        if out.len() < n {
            return Err(CodecError::Buffer {
                need: n,
                have: out.len(),
            });
        }
        for (pair, b) in out.chunks_exact_mut(2).zip(payload) {
            let (a, c) = self.decode_byte(*b);
            pair[0] = a;
            pair[1] = c;
        }
        self.plc.good(&mut out[..n]);
        Ok(n)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        self.plc.conceal(out);
        Ok(out.len())
    }
}
