//! Per-call transcoding, ready for the WebRTC bridge: codec choice, both directions, RTP out.
//!
//! [`choose`] decides from the two sides' audio codecs whether a call is passthrough (a codec in
//! common), transcoded, or refused with "Transcoding required but disabled". [`sip_offer`] lists
//! what to offer a SIP peer when transcoding is allowed (the browser's own codecs first, so
//! passthrough still wins when the peer can). [`CallTranscoder`] owns both directions'
//! [`Transcoder`]s and writes complete RTP packets (our SSRC, continuous sequence numbers,
//! isochronous timestamps, the peer's payload type); it never sees telephone-event packets:
//! `on_audio` refuses any payload type but the side's audio codec, and the bridge maps DTMF as
//! on passthrough calls, stamping it with [`CallTranscoder::audio_ts`] so events line up with the
//! transcoded audio.
//!
//! Driving: `poll` writes at most one packet per call; the shard calls it while
//! `next_deadline()` has passed, at most [`POLL_BUDGET`] times per loop turn, so one shard's
//! transcoding never starves its relaying (the io_uring loop's equivalent of glommio's
//! `yield_if_needed`). Invariant: nothing allocates after `new`.

use super::codec::{Codec, MAX_PAYLOAD, OpusSettings};
use super::jitter::JitterConfig;
use super::pipeline::{PipelineError, Transcoder, TranscoderConfig};
use crate::rtp::write_rtp;

/// Packets one call may produce per shard loop turn before the shard moves on.
pub const POLL_BUDGET: usize = 8;

/// A side of a bridged call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Browser,
    Sip,
}

/// One negotiated audio format: payload type and codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub pt: u8,
    pub codec: Codec,
}

/// The audio plan of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Both sides share this codec (the SIP side's payload type and the browser's).
    Passthrough { sip: Format, browser: Format },
    /// No codec in common: transcode between these two.
    Transcode { sip: Format, browser: Format },
}

/// Why a call cannot have audio.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiateError {
    /// The call's cause, as signalling reports it.
    #[error("Transcoding required but disabled")]
    Disabled,
    #[error("no audio codec on one side")]
    NoCodec,
}

/// Chooses the audio plan: the SIP side's first codec the browser also has (passthrough), else
/// the two sides' first codecs (transcoding), else an error.
pub fn choose(
    browser: &[Format],
    sip: &[Format],
    transcoding: bool,
) -> Result<Plan, NegotiateError> {
    let (Some(b0), Some(s0)) = (browser.first(), sip.first()) else {
        return Err(NegotiateError::NoCodec);
    };
    for s in sip {
        if let Some(b) = browser.iter().find(|b| b.codec == s.codec) {
            return Ok(Plan::Passthrough {
                sip: *s,
                browser: *b,
            });
        }
    }
    if !transcoding {
        return Err(NegotiateError::Disabled);
    }
    Ok(Plan::Transcode {
        sip: *s0,
        browser: *b0,
    })
}

/// The codecs we can transcode to, in the order we offer them to a SIP peer: G.711 first (what
/// every peer has), then the wideband and low-bitrate ones, Opus last. That is every codec we
/// have, in [`Codec::ALL`]'s order.
pub const TRANSCODABLE: [Codec; 7] = Codec::ALL;

/// The dynamic payload type we prefer for a codec without a static one.
fn preferred_dynamic_pt(c: Codec) -> u8 {
    match c {
        Codec::SpeexWb => 97,
        Codec::SpeexNb => 98,
        Codec::Opus => 111,
        _ => 96,
    }
}

/// What to add to a SIP offer when transcoding is allowed: every codec we can transcode that
/// `browser` does not already list, with a payload type not in `taken` (the numbers the m-line
/// already uses, telephone-event included). Nothing when transcoding is disabled.
pub fn transcode_extras(browser: &[Format], taken: &[u8], transcoding: bool) -> Vec<Format> {
    let mut v: Vec<Format> = Vec::new();
    if !transcoding {
        return v;
    }
    let used =
        |pt: u8, v: &[Format]| taken.contains(&pt) || browser.iter().chain(v).any(|f| f.pt == pt);
    for c in TRANSCODABLE {
        if browser.iter().any(|f| f.codec == c) {
            continue;
        }
        let pt = match c.static_pt() {
            Some(pt) => pt,
            None => {
                let first = preferred_dynamic_pt(c);
                match std::iter::once(first)
                    .chain(96..=127)
                    .find(|pt| !used(*pt, &v))
                {
                    Some(pt) => pt,
                    None => continue, // every dynamic number taken: offer the others
                }
            }
        };
        if !used(pt, &v) {
            v.push(Format { pt, codec: c });
        }
    }
    v
}

/// What to offer a SIP peer: the browser's codecs first (passthrough preferred), then, when
/// transcoding is allowed, every codec we can transcode to (see [`transcode_extras`]).
pub fn sip_offer(browser: &[Format], transcoding: bool) -> Vec<Format> {
    let mut v: Vec<Format> = browser.to_vec();
    v.extend(transcode_extras(browser, &[], transcoding));
    v
}

/// The configurable part of every transcoded call (`media.opus_*`, `media.jitter_*_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallSettings {
    pub opus: OpusSettings,
    pub jitter: JitterConfig,
}

/// Settings of a transcoded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallConfig {
    pub opus: OpusSettings,
    /// The jitter buffers' playout-margin range (both directions).
    pub jitter: JitterConfig,
    /// Packet time sent to the SIP side (its `a=ptime`, default 20).
    pub sip_ptime_ms: u32,
    /// Packet time sent to the browser (20).
    pub browser_ptime_ms: u32,
    pub sip_ssrc: u32,
    pub browser_ssrc: u32,
}

struct Out {
    tc: Transcoder,
    pt: u8,
    ssrc: u32,
    seq: u16,
    ts_base: u32,
    last_ts: u32,
    /// When the last packet toward this side left (for timestamps of inserted events).
    last_ns: u64,
    /// The RTP clock of this side's codec.
    clock: u32,
    /// The last telephone-event mapped toward this side: its timestamp as it arrived and the
    /// one it was given on our timeline (every packet of one event shares its timestamp).
    event: Option<(u32, u32)>,
}

impl Out {
    fn new(
        from: Format,
        to: Format,
        ptime: u32,
        opus: OpusSettings,
        jitter: JitterConfig,
        ssrc: u32,
    ) -> Result<Self, PipelineError> {
        let mut cfg = TranscoderConfig::new(from.codec, to.codec);
        cfg.out_ptime_ms = ptime;
        cfg.opus = opus;
        cfg.jitter = jitter;
        // Start sequence and timestamp from the SSRC's bits: unpredictable enough, deterministic.
        Ok(Self {
            tc: Transcoder::new(cfg)?,
            pt: to.pt,
            ssrc,
            seq: (ssrc >> 16) as u16,
            ts_base: ssrc.rotate_left(7),
            last_ts: ssrc.rotate_left(7),
            last_ns: 0,
            clock: to.codec.rtp_clock(),
            event: None,
        })
    }

    /// Our timeline's timestamp for `now_ns`: the last one sent plus the time since.
    fn now_ts(&self, now_ns: u64) -> u32 {
        if self.last_ns == 0 {
            return self.last_ts; // nothing sent yet: the timeline starts at its base
        }
        let gap = now_ns.saturating_sub(self.last_ns);
        let ticks = (u128::from(gap) * u128::from(self.clock) / 1_000_000_000) as u32;
        self.last_ts.wrapping_add(ticks)
    }
}

/// Both directions of a transcoded call.
pub struct CallTranscoder {
    sip_in: Format,
    browser_in: Format,
    to_sip: Out,
    to_browser: Out,
    payload: [u8; MAX_PAYLOAD],
}

impl CallTranscoder {
    pub fn new(sip: Format, browser: Format, cfg: CallConfig) -> Result<Self, PipelineError> {
        Ok(Self {
            sip_in: sip,
            browser_in: browser,
            to_sip: Out::new(browser, sip, cfg.sip_ptime_ms, cfg.opus, cfg.jitter, cfg.sip_ssrc)?,
            to_browser: Out::new(
                sip,
                browser,
                cfg.browser_ptime_ms,
                cfg.opus,
                cfg.jitter,
                cfg.browser_ssrc,
            )?,
            payload: [0; MAX_PAYLOAD],
        })
    }

    /// Takes an audio packet that arrived from `from`. Returns `false`, touching nothing, when
    /// `pt` is not that side's audio codec (telephone-event, comfort noise...): the caller keeps
    /// handling those as on a passthrough call.
    pub fn on_audio(
        &mut self,
        from: Side,
        now_ns: u64,
        pt: u8,
        seq: u16,
        ts: u32,
        payload: &[u8],
    ) -> bool {
        let (fmt, out) = match from {
            Side::Browser => (self.browser_in, &mut self.to_sip),
            Side::Sip => (self.sip_in, &mut self.to_browser),
        };
        if pt != fmt.pt {
            return false;
        }
        out.tc.push(now_ns, seq, ts, payload);
        true
    }

    /// The earliest time `poll` has a packet to write.
    pub fn next_deadline(&self) -> Option<u64> {
        match (
            self.to_sip.tc.next_deadline(),
            self.to_browser.tc.next_deadline(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The RTP timestamp of the audio most recently sent toward `to` (for telephone-events).
    pub fn audio_ts(&self, to: Side) -> u32 {
        match to {
            Side::Sip => self.to_sip.last_ts,
            Side::Browser => self.to_browser.last_ts,
        }
    }

    /// The negotiated formats: (SIP side, browser side).
    pub fn formats(&self) -> (Format, Format) {
        (self.sip_in, self.browser_in)
    }

    fn out(&mut self, to: Side) -> &mut Out {
        match to {
            Side::Sip => &mut self.to_sip,
            Side::Browser => &mut self.to_browser,
        }
    }

    /// The SIP side's payload type changed in a re-negotiation (same codec, new number).
    pub fn set_sip_pt(&mut self, pt: u8) {
        self.sip_in.pt = pt;
        self.to_sip.pt = pt;
    }

    /// Whether any packet went toward `to` yet.
    pub fn sending(&self, to: Side) -> bool {
        match to {
            Side::Sip => self.to_sip.last_ns != 0,
            Side::Browser => self.to_browser.last_ns != 0,
        }
    }

    /// The SSRC of the stream we send toward `to`.
    pub fn ssrc(&self, to: Side) -> u32 {
        match to {
            Side::Sip => self.to_sip.ssrc,
            Side::Browser => self.to_browser.ssrc,
        }
    }

    /// Takes the next sequence number toward `to` for a packet of the bridge's own (a
    /// telephone-event), so the receiver sees one stream without gaps or duplicates.
    pub fn insert_seq(&mut self, to: Side) -> u16 {
        let o = self.out(to);
        let seq = o.seq;
        o.seq = o.seq.wrapping_add(1);
        seq
    }

    /// The timestamp on our timeline toward `to` for an event starting at `now_ns` (the last
    /// audio timestamp sent, advanced by the time since).
    pub fn now_ts(&self, to: Side, now_ns: u64) -> u32 {
        match to {
            Side::Sip => self.to_sip.now_ts(now_ns),
            Side::Browser => self.to_browser.now_ts(now_ns),
        }
    }

    /// Maps a relayed telephone-event's timestamp (`in_ts`, the sender's timeline) onto our
    /// timeline toward `to`: the first packet of an event gets "now" on our timeline, the
    /// event's later packets (same `in_ts`) the same value, as RFC 4733 §2.5.1.2 wants.
    pub fn event_ts(&mut self, to: Side, in_ts: u32, now_ns: u64) -> u32 {
        let o = self.out(to);
        if let Some((seen, mapped)) = o.event
            && seen == in_ts
        {
            return mapped;
        }
        let mapped = o.now_ts(now_ns);
        o.event = Some((in_ts, mapped));
        mapped
    }

    /// Writes at most one due RTP packet into `out`; returns toward which side and its length.
    pub fn poll(
        &mut self,
        now_ns: u64,
        out: &mut [u8],
    ) -> Result<Option<(Side, usize)>, PipelineError> {
        for (side, o) in [
            (Side::Sip, &mut self.to_sip),
            (Side::Browser, &mut self.to_browser),
        ] {
            let due = o.tc.next_deadline().is_some_and(|d| d <= now_ns);
            if !due {
                continue;
            }
            if let Some(p) = o.tc.poll(now_ns, &mut self.payload)? {
                let ts = o.ts_base.wrapping_add(p.ts);
                let Some(n) = write_rtp(out, o.pt, o.seq, ts, o.ssrc, &self.payload[..p.len])
                else {
                    continue; // buffer too small for this packet: dropped, not fatal
                };
                if p.marker {
                    out[1] |= 0x80;
                }
                o.seq = o.seq.wrapping_add(1);
                o.last_ts = ts;
                o.last_ns = now_ns;
                return Ok(Some((side, n)));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
#[path = "call_tests.rs"]
mod tests;
