//! Opus through libopus 1.6 (the `opus` crate over `opusic-sys`, which builds the bundled
//! libopus source).
//!
//! Runs at the SIP side's PCM rate (8 or 16 kHz) so that no resampler sits next to it: libopus
//! decodes to and encodes from any of 8/12/16/24/48 kHz internally. The encoder is set for
//! density: `signal=voice`, VoIP application, configurable complexity (default 0, see
//! [`OpusSettings`] for the measured cost of each), inband FEC
//! and DTX as configured. The decoder conceals losses with libopus' own PLC and recovers a lost
//! frame from the next packet's inband FEC when the sender put any there.

use super::codec::{AudioDecoder, AudioEncoder, CodecError, OpusSettings};
use ::opus as libopus;

/// Opus decoder at a fixed output rate.
pub struct Decoder {
    inner: libopus::Decoder,
}

impl Decoder {
    pub fn new(rate: u32) -> Result<Self, CodecError> {
        Ok(Self {
            inner: libopus::Decoder::new(rate, libopus::Channels::Mono)?,
        })
    }
}

impl AudioDecoder for Decoder {
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        Ok(self.inner.decode(payload, out, false)?)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        // An empty packet asks libopus for exactly `out.len()` samples of concealment.
        Ok(self.inner.decode(&[], out, false)?)
    }

    fn decode_fec(&mut self, next: &[u8], out: &mut [i16]) -> Result<Option<usize>, CodecError> {
        if next.is_empty() {
            return Ok(None);
        }
        // With fec=true libopus decodes the LBRR copy of the previous frame carried in `next`
        // (or conceals if there is none), `out.len()` samples.
        Ok(Some(self.inner.decode(next, out, true)?))
    }
}

/// Opus encoder set for voice density.
pub struct Encoder {
    inner: libopus::Encoder,
}

impl Encoder {
    pub fn new(rate: u32, s: OpusSettings) -> Result<Self, CodecError> {
        let mut inner =
            libopus::Encoder::new(rate, libopus::Channels::Mono, libopus::Application::Voip)?;
        inner.set_signal(libopus::Signal::Voice)?;
        inner.set_complexity(s.complexity.min(10) as i32)?;
        inner.set_bitrate(libopus::Bitrate::Bits(s.bitrate_for(rate) as i32))?;
        inner.set_inband_fec(s.fec)?;
        if s.fec {
            inner.set_packet_loss_perc(s.expected_loss_pct.min(100) as i32)?;
        }
        inner.set_dtx(s.dtx)?;
        Ok(Self { inner })
    }
}

impl AudioEncoder for Encoder {
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        let n = self.inner.encode(pcm, out)?;
        // With DTX libopus returns 1- or 2-byte packets for silence; those are still sent
        // (RFC 7587 §3.1.3: the receiver needs them to know it is in DTX), so pass them on.
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean packet size of 2 s of a noisy 440 Hz tone at 8 kHz through an encoder set to `s`.
    fn mean_packet_bytes(s: OpusSettings) -> f64 {
        let mut enc = Encoder::new(8_000, s).unwrap();
        let mut pcm = [0i16; 160];
        let mut out = [0u8; 1500];
        let mut seed = 1u32;
        let mut total = 0usize;
        for frame in 0..100 {
            for (k, v) in pcm.iter_mut().enumerate() {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let t = (frame * 160 + k) as f64 / 8_000.0;
                let noise = f64::from((seed >> 16) % 600) - 300.0;
                *v = (4_000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin() + noise) as i16;
            }
            total += enc.encode(&pcm, &mut out).unwrap();
        }
        total as f64 / 100.0
    }

    #[test]
    fn the_configured_bitrate_sets_the_packet_size() {
        let at = |bitrate| {
            mean_packet_bytes(OpusSettings {
                bitrate,
                ..OpusSettings::default()
            })
        };
        let (low, default, high) = (at(8_000), at(24_000), at(40_000));
        // 20 ms packets: bytes = bit/s / 400, within the encoder's own rate control.
        assert!((12.0..=28.0).contains(&low), "8 kbit/s: {low} bytes");
        assert!(
            (45.0..=75.0).contains(&default),
            "24 kbit/s: {default} bytes"
        );
        assert!(
            high > default * 1.2,
            "40 kbit/s: {high} vs 24 kbit/s: {default}"
        );
    }

    #[test]
    fn fec_is_coded_only_when_loss_is_expected_and_the_bitrate_affords_it() {
        // A SILK-only 20 ms mono packet (TOC configs 0-11) starts its range-coded payload with
        // two raw flag bits, VAD then LBRR (RFC 6716 §4.2.3): LBRR set means the packet carries
        // an FEC copy of the previous frame.
        let packets_with_fec = |bitrate, loss| {
            let settings = OpusSettings {
                bitrate,
                expected_loss_pct: loss,
                ..OpusSettings::default()
            };
            let mut enc = Encoder::new(8_000, settings).unwrap();
            let mut pcm = [0i16; 160];
            let mut out = [0u8; 1500];
            let mut with_fec = 0;
            for frame in 0..50 {
                for (k, v) in pcm.iter_mut().enumerate() {
                    let t = (frame * 160 + k) as f64 / 8_000.0;
                    *v = (6_000.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()) as i16;
                }
                let n = enc.encode(&pcm, &mut out).unwrap();
                assert!(
                    n >= 2 && out[0] >> 3 < 12,
                    "not a SILK-only packet: {:?}",
                    &out[..n]
                );
                with_fec += usize::from(out[1] & 0x40 != 0);
            }
            with_fec
        };
        // Documented in OpusSettings: complexity 0 and 10% loss need more than ~24.2 kbit/s.
        assert!(
            packets_with_fec(28_000, 10) > 10,
            "28 kbit/s, 10%: {}",
            packets_with_fec(28_000, 10)
        );
        assert_eq!(
            packets_with_fec(28_000, 0),
            0,
            "28 kbit/s, no loss expected"
        );
        assert_eq!(
            packets_with_fec(24_000, 10),
            0,
            "24 kbit/s: below libopus' LBRR threshold"
        );
    }
}
