//! Codec identities, the decoder/encoder traits every codec implements, and construction.
//!
//! A decoder turns one RTP payload into 16-bit mono PCM at the codec's PCM rate and can conceal a
//! lost frame; an encoder turns a whole number of codec frames of PCM into one payload. Both write
//! into caller-provided buffers so the per-frame path allocates nothing; states are boxed once at
//! call setup.

use super::{g711, g722, g729, opus, speex};

/// Largest frame any decoder here produces: 120 ms at 48 kHz (an Opus maximum).
pub const MAX_FRAME_SAMPLES: usize = 5760;
/// Largest payload any encoder here produces for one packet (Opus' recommended ceiling).
pub const MAX_PAYLOAD: usize = 1500;

/// The audio codecs the media plane can transcode between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law (PT 0).
    Pcmu,
    /// G.711 A-law (PT 8).
    Pcma,
    /// G.722 64 kbit/s, 16 kHz audio on an 8 kHz RTP clock (RFC 3551 §4.5.2).
    G722,
    /// G.729 (Annex A compatible bitstream; Annex B SID frames decoded).
    G729,
    /// Speex narrowband (8 kHz).
    SpeexNb,
    /// Speex wideband (16 kHz).
    SpeexWb,
    /// Opus (48 kHz RTP clock; decoded and encoded at the other side's rate).
    Opus,
}

/// Errors of codec construction and of the per-frame calls.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("opus: {0}")]
    Opus(#[from] ::opus::Error),
    #[error("speex: {0}")]
    Speex(&'static str),
    #[error("{codec:?} cannot use {samples} samples per packet")]
    Frame { codec: Codec, samples: usize },
    #[error("{codec:?} payload of {len} bytes is malformed")]
    Payload { codec: Codec, len: usize },
    #[error("{codec:?} cannot run at {rate} Hz")]
    Rate { codec: Codec, rate: u32 },
    #[error("buffer too small: need {need}, have {have}")]
    Buffer { need: usize, have: usize },
}

/// Opus encoder settings (the density knobs of issue 5).
///
/// Measured on the project VM (docs/benchmarks/transcode.md): libopus 1.6 encoding 20 ms at
/// 8 kHz input costs ~220 k instructions at complexity 0, ~290 k at 1 (with FEC), ~510 k at 5
/// (~670 k with FEC). Complexities 2–5 are costly on AVX2 machines because libopus runs its
/// delayed-decision quantiser in plain C there (its AVX2 version only takes 3–4 states, and the
/// dispatch table has no SSE4.1 fallback at the AVX2 level); 6+ adds more analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusSettings {
    /// 0..=10. Default 0: the only setting with which an Opus↔G.711 call fits issue 5's
    /// budget of 50 µs per 20 ms on this VM; SILK at 8 kHz stays clean (the golden tests' SNR
    /// floors hold at 0 as at 5).
    pub complexity: u8,
    /// Inband FEC (LBRR): the encoder embeds a coarse copy of the previous frame. libopus
    /// decides per frame whether the bitrate affords it: at complexity 0, 10% expected loss and
    /// narrowband it needs more than ~24.2 kbit/s (complexity 1: ~24.0), so the default
    /// 20 kbit/s (and 24) at complexity 0 sends none; 28 kbit/s does, for ~22% more encoder work.
    pub fec: bool,
    /// Discontinuous transmission: silence is sent as rare tiny frames.
    pub dtx: bool,
    /// Target bitrate, bit/s; 0 (the default): [`OpusSettings::auto_bitrate`] for the
    /// encoder's input rate.
    pub bitrate: u32,
    /// The loss the encoder plans FEC for, percent (only used with `fec`).
    pub expected_loss_pct: u8,
}

impl Default for OpusSettings {
    fn default() -> Self {
        Self {
            complexity: 0,
            fec: true,
            dtx: false,
            bitrate: 0,
            expected_loss_pct: 10,
        }
    }
}

impl OpusSettings {
    /// The bitrate when none is configured: 20 kbit/s for narrowband input (8 kHz; SILK NB is
    /// transparent there for what G.711 carries, and 24 kbit/s costs the encoder ~2 % more for
    /// nothing audible; at 16 kbit/s the tone SNR through A-law drops under the golden tests'
    /// Opus floor), 24 kbit/s for wideband.
    pub fn auto_bitrate(input_rate: u32) -> u32 {
        if input_rate <= 8_000 { 20_000 } else { 24_000 }
    }

    /// The bitrate an encoder at `input_rate` is set to.
    pub fn bitrate_for(&self, input_rate: u32) -> u32 {
        if self.bitrate == 0 { Self::auto_bitrate(input_rate) } else { self.bitrate }
    }
}

impl Codec {
    /// All codecs, for tests and benches that walk every pair.
    pub const ALL: [Codec; 7] = [
        Codec::Pcmu,
        Codec::Pcma,
        Codec::G722,
        Codec::G729,
        Codec::SpeexNb,
        Codec::SpeexWb,
        Codec::Opus,
    ];

    /// The RTP timestamp clock (what the SDP's rtpmap says).
    pub fn rtp_clock(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            Codec::SpeexWb => 16_000,
            _ => 8_000,
        }
    }

    /// The PCM rate the codec works at natively; `None` for Opus, which runs at the rate the
    /// pipeline chooses (8, 12, 16, 24 or 48 kHz) so that no resampler is needed next to it.
    pub fn native_rate(self) -> Option<u32> {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G729 | Codec::SpeexNb => Some(8_000),
            Codec::G722 | Codec::SpeexWb => Some(16_000),
            Codec::Opus => None,
        }
    }

    /// The rtpmap encoding name.
    pub fn sdp_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::G729 => "G729",
            Codec::SpeexNb | Codec::SpeexWb => "speex",
            Codec::Opus => "opus",
        }
    }

    /// The static payload type, when RFC 3551 assigns one.
    pub fn static_pt(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::G722 => Some(9),
            Codec::G729 => Some(18),
            _ => None,
        }
    }

    /// The codec an rtpmap line names (case-insensitive), if we can transcode it.
    pub fn from_rtpmap(name: &str, clock: u32) -> Option<Codec> {
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        match clock {
            8_000 if is("PCMU") => Some(Codec::Pcmu),
            8_000 if is("PCMA") => Some(Codec::Pcma),
            8_000 if is("G722") => Some(Codec::G722),
            8_000 if is("G729") => Some(Codec::G729),
            8_000 if is("speex") => Some(Codec::SpeexNb),
            16_000 if is("speex") => Some(Codec::SpeexWb),
            48_000 if is("opus") => Some(Codec::Opus),
            _ => None,
        }
    }

    /// Whether a packet may carry `samples` PCM samples at `rate` (codec frame granularity).
    pub fn accepts_frame(self, samples: usize, rate: u32) -> bool {
        let ms10 = rate as usize / 100;
        if samples == 0 || samples % (rate as usize / 400) != 0 {
            return false;
        }
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => samples % ms10 == 0 && samples <= 12 * ms10,
            Codec::G729 => samples % ms10 == 0 && samples <= 12 * ms10,
            Codec::SpeexNb | Codec::SpeexWb => samples % (2 * ms10) == 0 && samples <= 12 * ms10,
            // 10, 20, 40 and 60 ms single frames (2.5 and 5 ms are legal but useless for SIP).
            Codec::Opus => [1, 2, 4, 6].iter().any(|m| samples == m * ms10),
        }
    }
}

/// Decodes one codec's payloads to PCM at its PCM rate.
pub trait AudioDecoder: Send {
    /// Decodes `payload` into `out`; returns the number of samples written.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError>;
    /// Conceals one lost frame of exactly `out.len()` samples.
    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError>;
    /// Rebuilds the lost frame before `next` from `next`'s inband FEC, when the codec has any.
    fn decode_fec(&mut self, _next: &[u8], _out: &mut [i16]) -> Result<Option<usize>, CodecError> {
        Ok(None)
    }
}

/// Encodes PCM at the codec's PCM rate into one payload.
pub trait AudioEncoder: Send {
    /// Encodes all of `pcm` (a whole number of codec frames) into `out`; returns the bytes
    /// written (0 means "send nothing", e.g. a DTX gap).
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError>;
}

/// Most samples one payload of at most `max_payload` bytes decodes to at `rate`, and at least
/// the 60 ms a concealed frame may span: sizes a pipeline's decode buffer to what the codec can
/// produce instead of the 120 ms at 48 kHz any codec might.
pub fn max_decoded(codec: Codec, rate: u32, max_payload: usize) -> usize {
    let conceal = rate as usize * 60 / 1000;
    let most = match codec {
        // One sample per byte; G.722 two (16 kHz audio, 8 bits per pair of samples).
        Codec::Pcmu | Codec::Pcma => max_payload,
        Codec::G722 => max_payload * 2,
        // An Opus packet carries at most 120 ms whatever its size.
        Codec::Opus => rate as usize * 120 / 1000,
        Codec::G729 | Codec::SpeexNb | Codec::SpeexWb => MAX_FRAME_SAMPLES,
    };
    most.max(conceal).min(MAX_FRAME_SAMPLES)
}

/// The PCM rate `codec` runs at in a pipeline whose other side runs at `other_rate`.
pub fn pcm_rate(codec: Codec, other_rate: u32) -> u32 {
    codec.native_rate().unwrap_or(other_rate)
}

/// Builds a decoder producing PCM at `rate` (which must be the codec's native rate, or any Opus
/// rate for Opus).
pub fn new_decoder(codec: Codec, rate: u32) -> Result<Box<dyn AudioDecoder>, CodecError> {
    check_rate(codec, rate)?;
    Ok(match codec {
        Codec::Pcmu => Box::new(g711::Decoder::new(g711::Law::Mu, rate)),
        Codec::Pcma => Box::new(g711::Decoder::new(g711::Law::A, rate)),
        Codec::G722 => Box::new(g722::Decoder::new()),
        Codec::G729 => Box::new(g729::Decoder::new()),
        Codec::SpeexNb => Box::new(speex::Decoder::new(false)?),
        Codec::SpeexWb => Box::new(speex::Decoder::new(true)?),
        Codec::Opus => Box::new(opus::Decoder::new(rate)?),
    })
}

/// Builds an encoder taking PCM at `rate`.
pub fn new_encoder(
    codec: Codec,
    rate: u32,
    settings: OpusSettings,
) -> Result<Box<dyn AudioEncoder>, CodecError> {
    check_rate(codec, rate)?;
    Ok(match codec {
        Codec::Pcmu => Box::new(g711::Encoder::new(g711::Law::Mu)),
        Codec::Pcma => Box::new(g711::Encoder::new(g711::Law::A)),
        Codec::G722 => Box::new(g722::Encoder::new()),
        Codec::G729 => Box::new(g729::Encoder::new()),
        Codec::SpeexNb => Box::new(speex::Encoder::new(false)?),
        Codec::SpeexWb => Box::new(speex::Encoder::new(true)?),
        Codec::Opus => Box::new(opus::Encoder::new(rate, settings)?),
    })
}

fn check_rate(codec: Codec, rate: u32) -> Result<(), CodecError> {
    let ok = match codec.native_rate() {
        Some(native) => rate == native,
        None => matches!(rate, 8_000 | 12_000 | 16_000 | 24_000 | 48_000),
    };
    if ok {
        Ok(())
    } else {
        Err(CodecError::Rate { codec, rate })
    }
}
