//! One direction of a transcoded call: jitter buffer → decode/conceal → resample → re-frame →
//! encode, paced by the outgoing packet clock.
//!
//! The driver calls [`Transcoder::push`] for every arriving audio RTP packet (telephone-event
//! packets never come here) and [`Transcoder::poll`] whenever [`Transcoder::next_deadline`]
//! passes; each poll yields at most one outgoing payload, so a driver can bound how many frames
//! it encodes per loop turn and keep its other work (relaying) responsive. Outgoing timestamps
//! advance by exactly one packet per tick, so the outgoing stream is isochronous whatever the
//! incoming jitter, loss or clock drift; the jitter buffer absorbs the difference.
//!
//! Invariant: every buffer is allocated in [`Transcoder::new`], sized to what the two codecs
//! can need (the largest decoded payload, resampled, plus one outgoing frame); `push` and `poll`
//! allocate nothing (codec states included) and copy PCM once from the decoder into the FIFO.

use super::codec::{self, AudioDecoder, AudioEncoder, Codec, CodecError, OpusSettings};
use super::jitter::{self, JitterBuffer, JitterConfig, JitterStats, Pop};
use super::resample::{ResampleError, Resampler};

/// Errors building or running a transcoder.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Resample(#[from] ResampleError),
    #[error("{codec:?} cannot be sent with a {ms} ms ptime")]
    Ptime { codec: Codec, ms: u32 },
    #[error("no transcoding is needed from {0:?} to itself")]
    SameCodec(Codec),
}

/// How to build one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranscoderConfig {
    pub from: Codec,
    pub to: Codec,
    /// Packet duration sent (10, 20, 30 or 40 ms; must suit `to`).
    pub out_ptime_ms: u32,
    /// Packet duration expected from the sender until the stream shows it.
    pub in_ptime_ms: u32,
    pub opus: OpusSettings,
    pub jitter: JitterConfig,
}

impl TranscoderConfig {
    pub fn new(from: Codec, to: Codec) -> Self {
        Self {
            from,
            to,
            out_ptime_ms: 20,
            in_ptime_ms: 20,
            opus: OpusSettings::default(),
            jitter: JitterConfig::default(),
        }
    }
}

/// One outgoing payload produced by [`Transcoder::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub len: usize,
    /// RTP timestamp in the outgoing codec's clock (starting at 0; the bridge adds its offset).
    pub ts: u32,
    /// First packet of a talkspurt (after a gap in what we sent).
    pub marker: bool,
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TranscodeStats {
    pub frames_out: u64,
    pub concealed: u64,
    pub fec_recovered: u64,
    pub decode_errors: u64,
    pub jitter: JitterStats,
}

/// After this long with nothing received we stop sending (hold, or the sender went away).
const IDLE_STOP_MS: u32 = 1000;

/// One direction of a transcoded call.
pub struct Transcoder {
    cfg: TranscoderConfig,
    jb: JitterBuffer,
    dec: Box<dyn AudioDecoder>,
    enc: Box<dyn AudioEncoder>,
    rs: Option<Resampler>,
    dec_rate: u32,
    enc_rate: u32,
    dec_buf: Vec<i16>,
    rs_buf: Vec<i16>,
    fifo: Vec<i16>,
    fifo_len: usize,
    out_frame: usize,
    ts_step: u32,
    out_ts: u32,
    tick_ns: u64,
    next_tick: Option<u64>,
    idle_ms: u32,
    sending: bool,
    /// A packet has been decoded: before that there is nothing to conceal from, and some
    /// decoders (libspeex NB) derail for good when asked to conceal from their initial state.
    started: bool,
    /// The tick at which sending stopped for lack of input: no wake-ups until input returns,
    /// then the outgoing timestamp jumps by the ticks skipped (the clock kept, not the timer).
    paused_at: Option<u64>,
    stats: TranscodeStats,
}

fn frame_ok(codec: Codec, samples: usize, rate: u32) -> bool {
    codec.accepts_frame(samples, rate)
}

impl Transcoder {
    pub fn new(cfg: TranscoderConfig) -> Result<Self, PipelineError> {
        if cfg.from == cfg.to {
            return Err(PipelineError::SameCodec(cfg.from));
        }
        // Opus runs at the other side's rate; between two fixed-rate codecs a resampler bridges.
        let (dec_rate, enc_rate) = match (cfg.from.native_rate(), cfg.to.native_rate()) {
            (Some(a), Some(b)) => (a, b),
            (Some(a), None) => (a, a),
            (None, Some(b)) => (b, b),
            (None, None) => return Err(PipelineError::SameCodec(cfg.from)),
        };
        let out_frame = (enc_rate * cfg.out_ptime_ms / 1000) as usize;
        if !matches!(cfg.out_ptime_ms, 10 | 20 | 30 | 40) || !frame_ok(cfg.to, out_frame, enc_rate)
        {
            return Err(PipelineError::Ptime {
                codec: cfg.to,
                ms: cfg.out_ptime_ms,
            });
        }
        let rs = if dec_rate != enc_rate {
            Some(Resampler::new(dec_rate, enc_rate)?)
        } else {
            None
        };
        let frame_ts = cfg.from.rtp_clock() * cfg.in_ptime_ms.clamp(10, 120) / 1000;
        // The decode buffer takes the largest payload the jitter buffer keeps; the resampler
        // output and the FIFO follow from it (whole 10 ms chunks), so nothing is ever cut.
        let dec_max = codec::max_decoded(cfg.from, dec_rate, jitter::MAX_PAYLOAD);
        let chunk = dec_rate as usize / 100;
        let (rs_buf, pcm_max) = match rs.as_ref() {
            Some(r) => {
                let n = r.output_len(dec_max.div_ceil(chunk) * chunk);
                (vec![0; n], n)
            }
            None => (Vec::new(), dec_max),
        };
        Ok(Self {
            jb: JitterBuffer::new(cfg.jitter, cfg.from.rtp_clock(), frame_ts),
            dec: codec::new_decoder(cfg.from, dec_rate)?,
            enc: codec::new_encoder(cfg.to, enc_rate, cfg.opus)?,
            rs,
            dec_rate,
            enc_rate,
            dec_buf: vec![0; dec_max],
            rs_buf,
            fifo: vec![0; out_frame + pcm_max],
            fifo_len: 0,
            out_frame,
            ts_step: cfg.to.rtp_clock() * cfg.out_ptime_ms / 1000,
            out_ts: 0,
            tick_ns: cfg.out_ptime_ms as u64 * 1_000_000,
            next_tick: None,
            idle_ms: 0,
            sending: false,
            started: false,
            paused_at: None,
            stats: TranscodeStats::default(),
            cfg,
        })
    }

    pub fn config(&self) -> &TranscoderConfig {
        &self.cfg
    }

    pub fn stats(&self) -> TranscodeStats {
        TranscodeStats {
            jitter: self.jb.stats(),
            ..self.stats
        }
    }

    /// Bytes of this direction's own buffers (jitter buffer, decode, resample and FIFO), not
    /// counting the codec states: for the memory-per-call figure.
    pub fn buffer_bytes(&self) -> usize {
        let pcm = self.dec_buf.capacity() + self.rs_buf.capacity() + self.fifo.capacity();
        self.jb.heap_bytes() + pcm * std::mem::size_of::<i16>()
    }

    /// Current jitter-buffer depth in ms (for tests and stats).
    pub fn buffered_ms(&self) -> u32 {
        self.jb.depth_ms() + (self.fifo_len as u64 * 1000 / self.enc_rate as u64) as u32
    }

    /// Takes one arriving audio packet of the `from` codec.
    pub fn push(&mut self, now_ns: u64, seq: u16, ts: u32, payload: &[u8]) {
        self.jb.insert(now_ns, seq, ts, payload);
        self.idle_ms = 0;
        if let Some(at) = self.paused_at.take() {
            let skipped = now_ns.saturating_sub(at) / self.tick_ns;
            self.out_ts = self.out_ts.wrapping_add((skipped as u32).wrapping_mul(self.ts_step));
        }
        if self.next_tick.is_none() {
            self.next_tick = Some(now_ns);
        }
    }

    /// When `poll` next has a frame to produce; `None` before any input and while paused after
    /// a second without input.
    pub fn next_deadline(&self) -> Option<u64> {
        self.next_tick
    }

    /// Produces the next outgoing payload into `out` if its time has come.
    pub fn poll(&mut self, now_ns: u64, out: &mut [u8]) -> Result<Option<Produced>, PipelineError> {
        let Some(tick) = self.next_tick else {
            return Ok(None);
        };
        if now_ns < tick {
            return Ok(None);
        }
        // A stalled driver does not get a burst of catch-up frames: resynchronise instead.
        self.next_tick = Some(if now_ns > tick + 5 * self.tick_ns {
            now_ns + self.tick_ns
        } else {
            tick + self.tick_ns
        });
        let mut guard = 0;
        while self.fifo_len < self.out_frame && guard < 16 {
            self.pull_one()?;
            guard += 1;
        }
        let ts = self.out_ts;
        self.out_ts = self.out_ts.wrapping_add(self.ts_step);
        if self.idle_ms >= IDLE_STOP_MS {
            // Sender silent for a second (hold, or gone): send nothing, drop stale audio, and
            // stop the timer so an idle call costs no wake-ups; `push` restarts it.
            self.fifo_len = 0;
            self.sending = false;
            self.paused_at = Some(tick);
            self.next_tick = None;
            return Ok(None);
        }
        self.idle_ms += self.cfg.out_ptime_ms;
        let n = self.out_frame.min(self.fifo_len);
        if n < self.out_frame {
            self.fifo[n..self.out_frame].fill(0);
        }
        let len = self.enc.encode(&self.fifo[..self.out_frame], out)?;
        self.fifo.copy_within(n..self.fifo_len, 0);
        self.fifo_len -= n;
        self.stats.frames_out += 1;
        if len == 0 {
            self.sending = false;
            return Ok(None);
        }
        let marker = !self.sending;
        self.sending = true;
        Ok(Some(Produced { len, ts, marker }))
    }

    /// Samples of one input packet at the decode rate, rounded to what the codec can conceal.
    fn conceal_len(&self) -> usize {
        let ms = (self.jb.frame_ts() as u64 * 1000 / self.cfg.from.rtp_clock() as u64) as u32;
        let step = if matches!(self.cfg.from, Codec::SpeexNb | Codec::SpeexWb) {
            20
        } else {
            10
        };
        let ms = (ms / step * step).clamp(step, 60);
        (self.dec_rate * ms / 1000) as usize
    }

    /// Decodes (or conceals) one input packet into the FIFO.
    fn pull_one(&mut self) -> Result<(), PipelineError> {
        let conceal = self.conceal_len();
        let (n, keep) = match self.jb.pop() {
            Pop::Wait if !self.started => {
                // Prefilling before the first packet: silence, not concealment.
                self.dec_buf[..conceal].fill(0);
                (conceal, true)
            }
            Pop::Wait => {
                self.stats.concealed += 1;
                (self.dec.conceal(&mut self.dec_buf[..conceal])?, true)
            }
            Pop::Packet {
                payload, discard, ..
            } => match self.dec.decode(payload, &mut self.dec_buf) {
                Ok(n) => {
                    self.started = true;
                    (n, !discard)
                }
                Err(_) => {
                    self.stats.decode_errors += 1;
                    self.stats.concealed += 1;
                    (self.dec.conceal(&mut self.dec_buf[..conceal])?, true)
                }
            },
            Pop::Lost { next } => {
                let fec = match next {
                    Some(p) => self.dec.decode_fec(p, &mut self.dec_buf[..conceal])?,
                    None => None,
                };
                match fec {
                    Some(n) => {
                        self.stats.fec_recovered += 1;
                        (n, true)
                    }
                    None => {
                        self.stats.concealed += 1;
                        (self.dec.conceal(&mut self.dec_buf[..conceal])?, true)
                    }
                }
            }
        };
        if !keep || n == 0 {
            return Ok(());
        }
        let (src, len) = match self.rs.as_mut() {
            Some(rs) => {
                let m = rs.process(&self.dec_buf[..n], &mut self.rs_buf)?;
                (&self.rs_buf[..m], m)
            }
            None => (&self.dec_buf[..n], n),
        };
        let room = self.fifo.len() - self.fifo_len;
        let take = len.min(room);
        self.fifo[self.fifo_len..self.fifo_len + take].copy_from_slice(&src[..take]);
        self.fifo_len += take;
        Ok(())
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
