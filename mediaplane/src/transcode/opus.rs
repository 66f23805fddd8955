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
        inner.set_bitrate(libopus::Bitrate::Bits(s.bitrate as i32))?;
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
