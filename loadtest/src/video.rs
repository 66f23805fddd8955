//! The video of a `vp8` browser in the `call` scenario: paces synthetic VP8 frames
//! ([`crate::vp8::Vp8Source`]), puts a probe ([`crate::wire::Probe`]) in every packet, and
//! measures what comes back (echoed packets, round trip) and the keyframe requests (PLI/FIR)
//! the server sends, each answered by a keyframe on the next frame.
//!
//! No I/O and no str0m calls here: the browser (browser.rs) owns the `Rtc` and asks
//! [`VideoTx::due`] for the packets of a frame, then hands received video payloads and keyframe
//! requests back. Frames are due every `1/fps` from [`VideoTx::start`]; after a stall at most
//! one frame is sent late (the rest are skipped, as an encoder would drop them), so a busy
//! load generator never bursts.

use hdrhistogram::Histogram;
use str0m::media::Mid;

use crate::vp8::{FramePlan, PROBE_ROOM, Vp8Config, Vp8Error, Vp8Source, parse_payload};
use crate::wire::{self, Direction, Probe};

/// A browser's video m-line: its mid, the VP8 payload type, the sender.
#[derive(Debug)]
pub struct VideoLine {
    /// The video line's mid.
    pub mid: Mid,
    /// VP8's payload type.
    pub pt: u8,
    /// Sender and meter.
    pub tx: VideoTx,
}

/// One call's video figures.
#[derive(Debug, Clone)]
pub struct VideoCall {
    /// Frames sent.
    pub frames: u64,
    /// Keyframes sent (periodic, requested and the first).
    pub keyframes: u64,
    /// RTP packets sent.
    pub sent: u64,
    /// Our packets echoed back (probe of this call found).
    pub received: u64,
    /// Video RTP that carried no probe of ours.
    pub foreign: u64,
    /// Keyframe requests (PLI or FIR) received.
    pub keyframe_requests: u64,
    /// Requests answered by a keyframe sent.
    pub requests_answered: u64,
    /// Round trips of echoed packets, µs.
    pub rtt_us: Histogram<u64>,
}

/// A browser's video sender and meter.
#[derive(Debug)]
pub struct VideoTx {
    index: u32,
    source: Vp8Source,
    /// When the next frame is due, ns (0: not sending).
    next_ns: u64,
    probe_seq: u32,
    rtp_seq: u64,
    frame: Option<FramePlan>,
    /// The figures so far.
    pub call: VideoCall,
}

impl VideoTx {
    /// The video of call `index`.
    pub fn new(index: u32, cfg: Vp8Config) -> Result<VideoTx, Vp8Error> {
        // A different PictureID start per call, as browsers pick a random one.
        let pid = (index.wrapping_mul(2654435761) >> 17) as u16;
        Ok(VideoTx {
            index,
            source: Vp8Source::new(cfg, pid)?,
            next_ns: 0,
            probe_seq: 0,
            rtp_seq: 1_000,
            frame: None,
            call: VideoCall {
                frames: 0,
                keyframes: 0,
                sent: 0,
                received: 0,
                foreign: 0,
                keyframe_requests: 0,
                requests_answered: 0,
                rtt_us: Histogram::new_with_bounds(1, 60_000_000, 2)
                    .map_err(|_| Vp8Error::Config("histogram bounds"))?,
            },
        })
    }

    /// Frames become due from `at_ns` on.
    pub fn start(&mut self, at_ns: u64) {
        self.next_ns = at_ns.max(1);
    }

    /// Frames stop.
    pub fn stop(&mut self) {
        self.next_ns = 0;
    }

    /// When `now_ns` has reached the next frame: lays it out and returns it (the caller then
    /// sends its packets with [`VideoTx::packet`]).
    pub fn due(&mut self, now_ns: u64) -> Option<FramePlan> {
        if self.next_ns == 0 || now_ns < self.next_ns {
            return None;
        }
        let period = self.source.frame_period_ns();
        self.next_ns += period;
        if self.next_ns <= now_ns {
            // Behind by more than a frame: this one goes now, the skipped ones never.
            self.next_ns = now_ns + period;
        }
        let plan = self.source.next_frame();
        self.call.frames += 1;
        if plan.keyframe {
            self.call.keyframes += 1;
            self.call.requests_answered += u64::from(plan.answers);
        }
        self.frame = Some(plan);
        Some(plan)
    }

    /// Packet `k` of `plan` with a fresh probe sent at `now_ns`: `(rtp seq, rtp ts, marker)`,
    /// the payload in `out`. Counted as sent by [`VideoTx::sent`].
    pub fn packet(
        &mut self,
        plan: &FramePlan,
        k: usize,
        now_ns: u64,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> (u64, u32, bool) {
        let probe = Probe {
            stream: self.index,
            direction: Direction::AToB,
            seq: self.probe_seq,
            sent_ns: now_ns,
        };
        self.probe_seq = self.probe_seq.wrapping_add(1);
        wire::encode_packet(&probe, wire::PROBE_LEN, scratch);
        let slot = &scratch[wire::RTP_HEADER..wire::RTP_HEADER + PROBE_ROOM];
        let marker = Vp8Source::packet(plan, k, slot, out);
        let seq = self.rtp_seq;
        self.rtp_seq += 1;
        (seq, plan.rtp_ts, marker)
    }

    /// A packet went out.
    pub fn sent(&mut self) {
        self.call.sent += 1;
    }

    /// A PLI or FIR about our video arrived: the next frame is a keyframe.
    pub fn keyframe_requested(&mut self) {
        self.call.keyframe_requests += 1;
        self.source.request_keyframe();
    }

    /// A video RTP payload arrived at `now_ns`; `scratch` is working space.
    pub fn on_rtp(&mut self, payload: &[u8], now_ns: u64, scratch: &mut Vec<u8>) {
        let Ok(parsed) = parse_payload(payload) else {
            self.call.foreign += 1;
            return;
        };
        // The probe decoder reads whole RTP packets: a neutral header in front.
        scratch.clear();
        scratch.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        scratch.extend_from_slice(&parsed.data[..parsed.data.len().min(PROBE_ROOM)]);
        match wire::decode_packet(scratch) {
            Some(rx) if rx.probe.stream == self.index => {
                self.call.received += 1;
                let transit = now_ns.saturating_sub(rx.probe.sent_ns) / 1000;
                let _ = self.call.rtt_us.record(transit.clamp(1, 60_000_000));
            }
            _ => self.call.foreign += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_paced_and_packets_come_back_measured() {
        let cfg = Vp8Config {
            bitrate_bps: 300_000,
            fps: 25,
            keyframe_interval_ms: 0,
            max_payload: 1000,
        };
        let mut v = VideoTx::new(7, cfg).unwrap();
        assert!(v.due(1_000).is_none(), "not started");
        v.start(1_000_000);
        assert!(v.due(999_999).is_none());
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        let mut echoed = Vec::new();
        let mut t = 1_000_000;
        for _ in 0..10 {
            if let Some(plan) = v.due(t) {
                for k in 0..plan.packets {
                    let (_, ts, marker) = v.packet(&plan, k, t, &mut scratch, &mut out);
                    assert_eq!(ts, plan.rtp_ts);
                    assert_eq!(marker, k + 1 == plan.packets);
                    v.sent();
                    echoed.push(out.clone());
                }
            }
            t += 40_000_000 / 2;
        }
        // 200 ms at 25 fps: 5 frames, the first a keyframe (7500 bytes: 8 packets), then
        // 1500-byte deltas (2 packets each).
        assert_eq!((v.call.frames, v.call.keyframes), (5, 1));
        assert_eq!(v.call.sent, 8 + 4 * 2);
        // All but one come back 3 ms later; a foreign payload is not counted as ours.
        for p in &echoed[1..] {
            v.on_rtp(p, t + 3_000_000, &mut scratch);
        }
        let mut other = VideoTx::new(8, cfg).unwrap();
        other.start(1);
        let plan = other.due(1).unwrap();
        other.packet(&plan, 0, 1, &mut scratch, &mut out);
        v.on_rtp(&out, t, &mut scratch);
        v.on_rtp(&[0x80], t, &mut scratch);
        assert_eq!((v.call.received, v.call.foreign), (15, 2));
        assert!(v.call.rtt_us.min() >= 3_000, "{}", v.call.rtt_us.min());
        // A keyframe request is answered by the next frame.
        v.keyframe_requested();
        let plan = v.due(t).unwrap();
        assert!(plan.keyframe);
        assert_eq!((v.call.keyframe_requests, v.call.requests_answered), (1, 1));
        v.stop();
        assert!(v.due(t + 1_000_000_000).is_none());
    }

    #[test]
    fn a_stall_sends_one_late_frame_not_a_burst() {
        let mut v = VideoTx::new(1, Vp8Config::default()).unwrap();
        v.start(1);
        assert!(v.due(1).is_some());
        // One second late: one frame now, the next one a period later.
        let late = 1_000_000_001;
        assert!(v.due(late).is_some());
        assert!(v.due(late).is_none());
        assert!(v.due(late + 33_333_333).is_some());
    }
}
