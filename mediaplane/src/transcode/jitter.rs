//! Adaptive jitter buffer for the transcoding path (passthrough calls never use it).
//!
//! Packets are kept by extended sequence number in a fixed ring of slots; the transcoder pops
//! one packet each time it needs more input for its next outgoing frame, which paces playout by
//! the outgoing clock. The playout *margin* (audio held in reserve behind the packet being
//! played, i.e. how late a packet may arrive and still be played) adapts between `min_ms` and
//! `max_ms` (20–60 ms by default):
//! - the margin is `4 × jitter` (RFC 3550 interarrival jitter, a mean deviation; 4× covers
//!   nearly all of its spread), clamped to the range, in whole packets: at least one packet
//!   waits behind the one being played, so a few ms of jitter never starves playout;
//! - playout starts (and restarts after an underrun: nothing to play, nothing later buffered)
//!   once the packet to play plus the margin are buffered; the transcoder conceals meanwhile;
//! - when the smallest depth seen over the last 50 pops exceeds that by a whole packet, one
//!   packet is marked `discard` (decoded to keep codec state, then dropped): this is how a
//!   sender clock running fast (±100 ppm drift) is absorbed without the delay growing, while a
//!   slow sender clock shows up as rare underruns, each costing one concealed frame.
//!
//! A missing packet with later packets present is a loss: popped as `Lost` with the next
//! payload (for codecs with inband FEC). Late packets (already played out) are dropped and
//! counted. Invariant: slots are allocated once; `insert` and `pop` allocate nothing.

const SLOTS: usize = 16;
/// Largest payload kept (60 ms of G.711 is 480 bytes).
pub const MAX_PAYLOAD: usize = 640;
const WINDOW: u32 = 50;

/// Jitter buffer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    pub min_ms: u32,
    pub max_ms: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            min_ms: 20,
            max_ms: 60,
        }
    }
}

/// Counters, for stats and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    pub late: u64,
    pub duplicate: u64,
    pub oversize: u64,
    pub lost: u64,
    pub underruns: u64,
    pub discarded: u64,
}

struct Slot {
    used: bool,
    seq: u64,
    ts: u32,
    len: usize,
    data: [u8; MAX_PAYLOAD],
}

/// What the transcoder should play next.
#[derive(Debug, PartialEq, Eq)]
pub enum Pop<'a> {
    /// Buffering (before the first packet or after an underrun): conceal one frame.
    Wait,
    /// The next packet. `discard`: decode it (codec state) but drop the audio (drift).
    Packet {
        payload: &'a [u8],
        ts: u32,
        discard: bool,
    },
    /// The next packet was lost; `next` is the following one when already here (for FEC).
    Lost { next: Option<&'a [u8]> },
}

/// The jitter buffer of one direction of one call.
pub struct JitterBuffer {
    cfg: JitterConfig,
    clock: u32,
    slots: Vec<Slot>,
    /// Extended sequence number to play next; None before the first packet.
    next: Option<u64>,
    highest: u64,
    buffering: bool,
    /// Packet duration in RTP clock units, learnt from timestamp steps.
    frame_ts: u32,
    last_ts: Option<u32>,
    last_seq: u64,
    /// Interarrival jitter, RTP clock units × 16 (RFC 3550 A.8 fixed point).
    jitter16: u64,
    last_transit: Option<i64>,
    window_min: u64,
    window_pops: u32,
    stats: JitterStats,
}

impl JitterBuffer {
    /// Heap bytes of the packet slots (for the memory-per-call figure).
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }

    /// `clock` is the RTP clock rate; `frame_ts` the expected packet duration in clock units.
    pub fn new(cfg: JitterConfig, clock: u32, frame_ts: u32) -> Self {
        let slots = (0..SLOTS)
            .map(|_| Slot {
                used: false,
                seq: 0,
                ts: 0,
                len: 0,
                data: [0; MAX_PAYLOAD],
            })
            .collect();
        Self {
            cfg,
            clock,
            slots,
            next: None,
            highest: 0,
            buffering: true,
            frame_ts: frame_ts.max(1),
            last_ts: None,
            last_seq: 0,
            jitter16: 0,
            last_transit: None,
            window_min: u64::MAX,
            window_pops: 0,
            stats: JitterStats::default(),
        }
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Packet duration in RTP clock units as currently known.
    pub fn frame_ts(&self) -> u32 {
        self.frame_ts
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> u32 {
        ((self.jitter16 / 16) * 1000 / self.clock as u64) as u32
    }

    /// Current playout margin in milliseconds: how late a packet may be and still be played.
    pub fn target_ms(&self) -> u32 {
        (4 * self.jitter_ms()).clamp(self.cfg.min_ms, self.cfg.max_ms)
    }

    fn frame_ms(&self) -> u32 {
        (self.frame_ts as u64 * 1000 / self.clock as u64).max(1) as u32
    }

    /// Packets that must be buffered when one is popped: the one played plus the margin.
    /// Counting the played packet out of the margin is what gives a packet arriving a few ms
    /// after its playout tick somewhere to wait; with the played one counted in, packets
    /// arrive in phase with the ticks and half of them are "late" under a little jitter.
    fn target_pkts(&self) -> u64 {
        1 + self.target_ms().div_ceil(self.frame_ms()).max(1) as u64
    }

    /// Buffered packets from the playout point to the newest (gaps included).
    pub fn depth(&self) -> u64 {
        match self.next {
            Some(n) if self.highest >= n => self.highest - n + 1,
            _ => 0,
        }
    }

    /// Buffered audio in milliseconds.
    pub fn depth_ms(&self) -> u32 {
        (self.depth() * self.frame_ms() as u64) as u32
    }

    fn extend(&self, seq: u16) -> u64 {
        if self.next.is_none() && self.highest == 0 {
            return (1u64 << 16) + seq as u64; // room below for reordering
        }
        let base = self.highest;
        let cand = (base & !0xFFFF) | seq as u64;
        // Pick the candidate closest to the highest seen.
        [cand.wrapping_sub(1 << 16), cand, cand + (1 << 16)]
            .into_iter()
            .min_by_key(|c| (*c as i64 - base as i64).unsigned_abs())
            .unwrap_or(cand)
    }

    /// Stores an arriving packet. `now_ns` is the arrival time on the shard's clock.
    pub fn insert(&mut self, now_ns: u64, seq: u16, ts: u32, payload: &[u8]) {
        if payload.len() > MAX_PAYLOAD {
            self.stats.oversize += 1;
            return;
        }
        let ext = self.extend(seq);
        if let Some(n) = self.next {
            if ext < n {
                self.stats.late += 1;
                return;
            }
            if ext >= n + SLOTS as u64 {
                // Far ahead of playout (a jump or a long stall): restart around this packet.
                self.clear();
            }
        }
        let slot = &mut self.slots[(ext % SLOTS as u64) as usize];
        if slot.used && slot.seq == ext {
            self.stats.duplicate += 1;
            return;
        }
        slot.used = true;
        slot.seq = ext;
        slot.ts = ts;
        slot.len = payload.len();
        slot.data[..payload.len()].copy_from_slice(payload);
        self.stats.received += 1;
        if self.next.is_none() {
            self.next = Some(ext);
            self.highest = ext;
        }
        // Learn the packet duration from consecutive packets.
        if let Some(lts) = self.last_ts
            && ext == self.last_seq + 1
        {
            let step = ts.wrapping_sub(lts);
            if step > 0 && step <= self.clock / 5 {
                self.frame_ts = step;
            }
        }
        // RFC 3550 A.8 jitter, in clock units.
        let arrival = (now_ns as u128 * self.clock as u128 / 1_000_000_000) as i64;
        let transit = arrival - ts as i64;
        if let Some(prev) = self.last_transit
            && ext > self.last_seq
        {
            let d = (transit - prev).unsigned_abs();
            let d = d.min(self.clock as u64); // one wild packet cannot blow the estimate up
            self.jitter16 = self.jitter16 + d - ((self.jitter16 + 8) >> 4);
        }
        if ext >= self.last_seq || self.last_ts.is_none() {
            self.last_transit = Some(transit);
            self.last_ts = Some(ts);
            self.last_seq = ext;
        }
        self.highest = self.highest.max(ext);
    }

    fn clear(&mut self) {
        for s in self.slots.iter_mut() {
            s.used = false;
        }
        self.next = None;
        self.highest = 0;
        self.buffering = true;
        self.last_ts = None;
        self.last_transit = None;
    }

    fn present(&self, ext: u64) -> bool {
        let s = &self.slots[(ext % SLOTS as u64) as usize];
        s.used && s.seq == ext
    }

    /// The next thing to play.
    pub fn pop(&mut self) -> Pop<'_> {
        let Some(n) = self.next else {
            return Pop::Wait;
        };
        let depth = self.depth();
        if self.buffering {
            if depth < self.target_pkts() {
                return Pop::Wait;
            }
            self.buffering = false;
            self.window_min = u64::MAX;
            self.window_pops = 0;
        }
        if depth == 0 || (!self.present(n) && self.highest <= n) {
            // Nothing here and nothing later: the sender is late (or stopped), not lost.
            self.stats.underruns += 1;
            self.buffering = true;
            return Pop::Wait;
        }
        // Drift and jitter control: a whole packet more than the target over the window.
        self.window_min = self.window_min.min(depth);
        self.window_pops += 1;
        let mut discard = false;
        if self.window_pops >= WINDOW {
            if self.window_min > self.target_pkts() && self.present(n) {
                discard = true;
                self.stats.discarded += 1;
            }
            self.window_min = u64::MAX;
            self.window_pops = 0;
        }
        self.next = Some(n + 1);
        let idx = (n % SLOTS as u64) as usize;
        if self.present(n) {
            self.slots[idx].used = false;
            let s = &self.slots[idx];
            Pop::Packet {
                payload: &s.data[..s.len],
                ts: s.ts,
                discard,
            }
        } else {
            self.stats.lost += 1;
            let ni = ((n + 1) % SLOTS as u64) as usize;
            let next = self
                .present(n + 1)
                .then(|| &self.slots[ni].data[..self.slots[ni].len]);
            Pop::Lost { next }
        }
    }
}

#[cfg(test)]
#[path = "jitter_tests.rs"]
mod tests;
