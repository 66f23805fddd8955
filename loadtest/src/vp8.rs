//! Synthetic VP8 for the load tester's video calls (RFC 7741 payload format), sans-IO: a
//! [`Vp8Source`] lays out frames at a bitrate and frame rate (a keyframe every N seconds and
//! whenever one is requested) and [`Vp8Source::packet`] writes each MTU-sized RTP payload: a
//! payload descriptor with a 15-bit PictureID, the VP8 payload header on a frame's first packet
//! (a keyframe's with the start code and a 640x480 size), a probe slot the caller fills, and
//! filler. No encoder: the media plane passes VP8 through and only looks at RTP headers, so
//! the bytes after the headers need not decode; they only have the sizes real video has.
//! [`parse_payload`] reads any descriptor back (every optional field) and finds the slot.
//!
//! Invariants: every payload is at most `max_payload` bytes and holds [`PROBE_ROOM`] bytes after
//! its headers; a frame's packets carry exactly its size in VP8 bytes; the last one is marked.
//! Self-contained (std and thiserror only) so the fuzz crate includes it by path.

/// Bytes reserved after the headers of every packet for the caller's probe (the load tester's
/// `wire::PROBE_LEN`).
pub const PROBE_ROOM: usize = 24;
/// The descriptor this source writes: X=1, I=1 with M=1 (15-bit PictureID).
pub const DESCRIPTOR_LEN: usize = 4;
/// VP8 payload header of an interframe (3-byte frame tag, RFC 6386 §9.1).
pub const INTER_HEADER_LEN: usize = 3;
/// ...and of a keyframe: the tag, the start code 9d 01 2a, width and height.
pub const KEY_HEADER_LEN: usize = 10;
/// RTP clock of VP8.
pub const CLOCK: u32 = 90_000;
/// Keyframes are this many times the average frame (the rest of the budget goes to deltas).
const KEYFRAME_FACTOR: u64 = 5;
/// Picture size written in keyframe headers.
const WIDTH: u16 = 640;
const HEIGHT: u16 = 480;

/// Why a payload or a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Vp8Error {
    /// The payload ends inside the descriptor or a header.
    #[error("VP8 payload truncated")]
    Truncated,
    /// A keyframe's start code is not 9d 01 2a.
    #[error("VP8 keyframe without its start code")]
    StartCode,
    /// A configuration value out of range.
    #[error("VP8 source: {0}")]
    Config(&'static str),
}

/// What a source sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Config {
    /// Average bitrate of VP8 bytes (descriptors and RTP headers not counted), bit/s.
    pub bitrate_bps: u32,
    /// Frames per second.
    pub fps: u32,
    /// A keyframe at least this often, ms (0: only the first and when asked).
    pub keyframe_interval_ms: u32,
    /// Largest RTP payload, bytes (an MTU less IP, UDP, RTP, SRTP and extension overhead).
    pub max_payload: usize,
}

impl Default for Vp8Config {
    fn default() -> Self {
        Vp8Config {
            bitrate_bps: 400_000,
            fps: 30,
            keyframe_interval_ms: 3000,
            max_payload: 1200,
        }
    }
}

/// One frame laid out by [`Vp8Source::next_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePlan {
    /// Counted from 0.
    pub index: u64,
    /// An intra frame.
    pub keyframe: bool,
    /// Keyframe requests this keyframe answers (0 for periodic or delta frames).
    pub answers: u32,
    /// PictureID (15 bits).
    pub picture_id: u16,
    /// RTP timestamp (from 0).
    pub rtp_ts: u32,
    /// VP8 bytes (payload header + data), without descriptors.
    pub size: usize,
    /// RTP packets it takes.
    pub packets: usize,
}

impl FramePlan {
    /// VP8 bytes carried by packet `k` (the first ones take the remainder).
    pub fn packet_data(&self, k: usize) -> usize {
        let n = self.packets.max(1);
        self.size / n + usize::from(k < self.size % n)
    }
}

/// A synthetic VP8 sender's state.
#[derive(Debug, Clone)]
pub struct Vp8Source {
    cfg: Vp8Config,
    frames: u64,
    picture_id: u16,
    /// Frame index of the last keyframe.
    last_key: Option<u64>,
    /// Keyframe requests not yet answered.
    pending: u32,
}

impl Vp8Source {
    /// A source; `picture_id` is the first PictureID (browsers start at a random one).
    pub fn new(cfg: Vp8Config, picture_id: u16) -> Result<Vp8Source, Vp8Error> {
        if !(1..=120).contains(&cfg.fps) {
            return Err(Vp8Error::Config("fps must be 1..=120"));
        }
        if cfg.bitrate_bps < 8 * cfg.fps {
            return Err(Vp8Error::Config("bitrate below one byte per frame"));
        }
        if cfg.max_payload < DESCRIPTOR_LEN + KEY_HEADER_LEN + PROBE_ROOM || cfg.max_payload > 1400
        {
            return Err(Vp8Error::Config("max payload must be 38..=1400 bytes"));
        }
        Ok(Vp8Source {
            cfg,
            frames: 0,
            picture_id: picture_id & 0x7fff,
            last_key: None,
            pending: 0,
        })
    }

    /// Nanoseconds between frames.
    pub fn frame_period_ns(&self) -> u64 {
        1_000_000_000 / u64::from(self.cfg.fps)
    }

    /// A PLI or FIR arrived: the next frame is a keyframe.
    pub fn request_keyframe(&mut self) {
        self.pending = self.pending.saturating_add(1);
    }

    /// Frames between periodic keyframes (None: no periodic keyframes).
    fn key_every(&self) -> Option<u64> {
        let ms = u64::from(self.cfg.keyframe_interval_ms);
        (ms > 0).then(|| (ms * u64::from(self.cfg.fps) / 1000).max(1))
    }

    /// Lays out the next frame and advances.
    pub fn next_frame(&mut self) -> FramePlan {
        let index = self.frames;
        let periodic = match (self.last_key, self.key_every()) {
            (None, _) => true,
            (Some(k), Some(every)) => index - k >= every,
            (Some(_), None) => false,
        };
        let keyframe = periodic || self.pending > 0;
        let answers = std::mem::take(&mut self.pending);
        let avg = u64::from(self.cfg.bitrate_bps) / 8 / u64::from(self.cfg.fps);
        // Keyframes take KEYFRAME_FACTOR average frames; the deltas of a keyframe interval
        // share what is left of its budget (at least a quarter of the average each).
        let delta = match self.key_every() {
            Some(every) if every > KEYFRAME_FACTOR => avg * (every - KEYFRAME_FACTOR) / (every - 1),
            _ => avg,
        }
        .max(avg / 4);
        let size = if keyframe {
            avg * KEYFRAME_FACTOR
        } else {
            delta
        };
        let header = if keyframe {
            KEY_HEADER_LEN
        } else {
            INTER_HEADER_LEN
        };
        // Each packet's VP8 bytes hold at least the probe and the header (as the first one
        // must); `room` (>= KEY_HEADER_LEN + PROBE_ROOM) bounds them all.
        let room = self.cfg.max_payload - DESCRIPTOR_LEN;
        let packets = (size as usize).div_ceil(room).max(1);
        let size = (size as usize).max(packets * (header + PROBE_ROOM));
        let plan = FramePlan {
            index,
            keyframe,
            answers: if keyframe { answers } else { 0 },
            picture_id: self.picture_id,
            rtp_ts: (index * u64::from(CLOCK) / u64::from(self.cfg.fps)) as u32,
            size,
            packets,
        };
        if keyframe {
            self.last_key = Some(index);
        }
        self.frames += 1;
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        plan
    }

    /// Writes packet `k` of `plan` into `out` (cleared first) with `probe` (at most
    /// [`PROBE_ROOM`] bytes) in its slot; returns whether it carries the RTP marker (last).
    pub fn packet(plan: &FramePlan, k: usize, probe: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        let first = k == 0;
        // X=1, S on a frame's first packet, partition 0; I=1; M=1 and the 15-bit PictureID.
        out.push(0x80 | if first { 0x10 } else { 0 });
        out.push(0x80);
        out.push(0x80 | (plan.picture_id >> 8) as u8 & 0x7f);
        out.push(plan.picture_id as u8);
        let data = plan.packet_data(k);
        let start = out.len();
        if first {
            let header = if plan.keyframe {
                KEY_HEADER_LEN
            } else {
                INTER_HEADER_LEN
            };
            // Frame tag: P (0 = key), version 0, show_frame 1, first partition size (19 bits).
            let part = (plan.size.saturating_sub(header) as u32).min(0x7ffff);
            let tag = u32::from(!plan.keyframe) | 1 << 4 | part << 5;
            out.extend_from_slice(&tag.to_le_bytes()[..3]);
            if plan.keyframe {
                out.extend_from_slice(&[0x9d, 0x01, 0x2a]);
                out.extend_from_slice(&WIDTH.to_le_bytes());
                out.extend_from_slice(&HEIGHT.to_le_bytes());
            }
        }
        let slot = &probe[..probe.len().min(PROBE_ROOM)];
        out.extend_from_slice(slot);
        out.resize(out.len() + PROBE_ROOM - slot.len(), 0);
        // Filler up to this packet's share, a pattern that changes per frame.
        let fill = (plan.index as u8).wrapping_mul(31);
        while out.len() - start < data {
            let i = out.len();
            out.push(fill ^ i as u8);
        }
        k + 1 == plan.packets
    }
}

/// An RFC 7741 §4.2 payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Descriptor {
    /// N: a non-reference frame.
    pub non_reference: bool,
    /// S: the first packet of a VP8 partition.
    pub start: bool,
    /// PID: partition index (0..=7).
    pub partition: u8,
    /// PictureID (7 or 15 bits) when I=1.
    pub picture_id: Option<u16>,
    /// TL0PICIDX when L=1.
    pub tl0_pic_idx: Option<u8>,
    /// TID and Y when T=1.
    pub tid: Option<(u8, bool)>,
    /// KEYIDX when K=1.
    pub key_idx: Option<u8>,
    /// Bytes it takes.
    pub len: usize,
}

/// What [`parse_payload`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The descriptor.
    pub descriptor: Descriptor,
    /// The packet starts a keyframe (S=1, partition 0, P bit clear).
    pub keyframe: bool,
    /// The bytes after the descriptor and (on a frame's first packet) the payload header.
    pub data: &'a [u8],
}

/// Reads an RFC 7741 payload descriptor.
pub fn parse_descriptor(p: &[u8]) -> Result<Descriptor, Vp8Error> {
    let b0 = *p.first().ok_or(Vp8Error::Truncated)?;
    let mut d = Descriptor {
        non_reference: b0 & 0x20 != 0,
        start: b0 & 0x10 != 0,
        partition: b0 & 0x07,
        ..Descriptor::default()
    };
    let mut at = 1;
    let next = |at: &mut usize| -> Result<u8, Vp8Error> {
        let b = *p.get(*at).ok_or(Vp8Error::Truncated)?;
        *at += 1;
        Ok(b)
    };
    if b0 & 0x80 != 0 {
        let x = next(&mut at)?;
        if x & 0x80 != 0 {
            let i = next(&mut at)?;
            d.picture_id = Some(if i & 0x80 != 0 {
                u16::from(i & 0x7f) << 8 | u16::from(next(&mut at)?)
            } else {
                u16::from(i)
            });
        }
        if x & 0x40 != 0 {
            d.tl0_pic_idx = Some(next(&mut at)?);
        }
        if x & 0x30 != 0 {
            let tk = next(&mut at)?;
            if x & 0x20 != 0 {
                d.tid = Some((tk >> 6, tk & 0x20 != 0));
            }
            if x & 0x10 != 0 {
                d.key_idx = Some(tk & 0x1f);
            }
        }
    }
    d.len = at;
    Ok(d)
}

/// Reads a VP8 RTP payload: its descriptor, whether it starts a keyframe, and the bytes after
/// the headers (where this source puts its probe).
pub fn parse_payload(p: &[u8]) -> Result<Parsed<'_>, Vp8Error> {
    let descriptor = parse_descriptor(p)?;
    let rest = &p[descriptor.len..];
    if !(descriptor.start && descriptor.partition == 0) {
        return Ok(Parsed {
            descriptor,
            keyframe: false,
            data: rest,
        });
    }
    let tag = *rest.first().ok_or(Vp8Error::Truncated)?;
    let keyframe = tag & 1 == 0;
    let header = if keyframe {
        KEY_HEADER_LEN
    } else {
        INTER_HEADER_LEN
    };
    if rest.len() < header {
        return Err(Vp8Error::Truncated);
    }
    if keyframe && rest[3..6] != [0x9d, 0x01, 0x2a] {
        return Err(Vp8Error::StartCode);
    }
    Ok(Parsed {
        descriptor,
        keyframe,
        data: &rest[header..],
    })
}

#[cfg(test)]
#[path = "vp8_tests.rs"]
mod tests;
