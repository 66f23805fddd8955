//! The video rows of the `call` report: what the `vp8` browsers sent and got back, summed
//! over their calls ([`video_figures`]), judged ([`VideoFigures::judge`]) and written as a
//! Markdown section ([`VideoFigures::markdown`]). No I/O.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::call_report::Spread;
use crate::video::VideoCall;
use crate::vp8::Vp8Config;

/// Video over the calls that offered it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VideoFigures {
    /// What each video browser sent: bit/s of VP8 bytes.
    pub bitrate_bps: u32,
    /// Frames per second.
    pub fps: u32,
    /// Periodic keyframe interval, ms (0: only when asked).
    pub keyframe_interval_ms: u32,
    /// Largest RTP payload, bytes.
    pub max_payload: usize,
    /// Video calls that sent media (audio or video).
    pub calls: u64,
    /// Of those, calls that sent video (none: the server refused the video line).
    pub calls_sending_video: u64,
    /// Of those, calls that got some of their video back.
    pub calls_with_video_back: u64,
    /// Frames sent.
    pub frames: u64,
    /// Keyframes sent (the first, periodic and requested ones).
    pub keyframes: u64,
    /// RTP packets sent.
    pub sent: u64,
    /// Our packets echoed back.
    pub received: u64,
    /// Video RTP received that was not ours (should be 0).
    pub foreign: u64,
    /// `1 - received / sent` (saturating).
    pub loss_ratio: f64,
    /// Round trip of video packets (every packet carries a probe).
    pub rtt: Spread,
    /// Keyframe requests (PLI/FIR) the server sent the browsers.
    pub keyframe_requests: u64,
    /// Requests answered by a keyframe.
    pub requests_answered: u64,
    /// Calls that received at least one keyframe request.
    pub calls_with_requests: u64,
}

/// Sums the video calls that sent media, given as (audio packets sent, video); None when none
/// did.
pub fn video_figures(
    cfg: &Vp8Config,
    calls: &[(u64, &VideoCall)],
) -> Result<Option<VideoFigures>, String> {
    let calls: Vec<&VideoCall> = calls
        .iter()
        .filter(|(audio, c)| *audio > 0 || c.sent > 0)
        .map(|(_, c)| *c)
        .collect();
    if calls.is_empty() {
        return Ok(None);
    }
    let mut rtt = Histogram::<u64>::new_with_bounds(1, 60_000_000, 2).map_err(|e| e.to_string())?;
    let mut f = VideoFigures {
        bitrate_bps: cfg.bitrate_bps,
        fps: cfg.fps,
        keyframe_interval_ms: cfg.keyframe_interval_ms,
        max_payload: cfg.max_payload,
        calls: calls.len() as u64,
        ..VideoFigures::default()
    };
    for c in &calls {
        rtt.add(&c.rtt_us).map_err(|e| e.to_string())?;
        f.calls_sending_video += u64::from(c.sent > 0);
        f.calls_with_video_back += u64::from(c.received > 0);
        f.calls_with_requests += u64::from(c.keyframe_requests > 0);
        f.frames += c.frames;
        f.keyframes += c.keyframes;
        f.sent += c.sent;
        f.received += c.received.min(c.sent);
        f.foreign += c.foreign;
        f.keyframe_requests += c.keyframe_requests;
        f.requests_answered += c.requests_answered;
    }
    f.loss_ratio = if f.sent == 0 {
        0.0
    } else {
        1.0 - f.received as f64 / f.sent as f64
    };
    f.rtt = Spread {
        count: rtt.len() as usize,
        p50_ms: rtt.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: rtt.value_at_quantile(0.99) as f64 / 1000.0,
        max_ms: rtt.max() as f64 / 1000.0,
    };
    Ok(Some(f))
}

impl VideoFigures {
    /// Thresholds missed: a video call that sent no video or got none back, or video loss
    /// above `max_loss`.
    pub fn judge(&self, max_loss: f64) -> Vec<String> {
        let mut out = Vec::new();
        if self.calls_sending_video < self.calls {
            out.push(format!(
                "{} of {} video calls could send no video (video line refused?)",
                self.calls - self.calls_sending_video,
                self.calls
            ));
        } else if self.calls_with_video_back < self.calls {
            out.push(format!(
                "{} of {} video calls got no video back",
                self.calls - self.calls_with_video_back,
                self.calls
            ));
        }
        if self.loss_ratio > max_loss {
            out.push(format!(
                "video loss {:.6} above {max_loss}",
                self.loss_ratio
            ));
        }
        out
    }

    /// The Markdown section.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "## Video (VP8)\n\n`vp8` browsers offer PCMU audio plus a bundled VP8 video line \
             and send synthetic VP8 (RFC 7741 payload descriptor with a 15-bit PictureID, no \
             encoder: the path is passthrough) at {kbps} kbit/s and {fps} frames/s, split into \
             RTP payloads of at most {mp} bytes; a keyframe (five average frames) {every} and \
             whenever the server sends a PLI or FIR. Every packet carries a probe, so each \
             echoed packet gives a round trip. Their audio is counted in the PCMU row above.\n\n\
             | figure | value |\n|---|---|\n",
            kbps = self.bitrate_bps / 1000,
            fps = self.fps,
            mp = self.max_payload,
            every = if self.keyframe_interval_ms == 0 {
                "first".to_owned()
            } else {
                format!("every {} ms", self.keyframe_interval_ms)
            },
        );
        for (k, v) in [
            ("calls with video", self.calls.to_string()),
            ("of which sent video", self.calls_sending_video.to_string()),
            (
                "of which got video back",
                self.calls_with_video_back.to_string(),
            ),
            (
                "frames sent (keyframes)",
                format!("{} ({})", self.frames, self.keyframes),
            ),
            ("video packets sent", self.sent.to_string()),
            ("video packets echoed back", self.received.to_string()),
            ("video loss", format!("{:.6}", self.loss_ratio)),
            (
                "video RTT p50 / p99 / max",
                format!(
                    "{:.2} / {:.2} / {:.2} ms",
                    self.rtt.p50_ms, self.rtt.p99_ms, self.rtt.max_ms
                ),
            ),
            (
                "keyframe requests (PLI/FIR) received / answered with a keyframe",
                format!("{} / {}", self.keyframe_requests, self.requests_answered),
            ),
            (
                "calls that got a keyframe request",
                self.calls_with_requests.to_string(),
            ),
            ("video RTP not ours", self.foreign.to_string()),
        ] {
            s += &format!("| {k} | {v} |\n");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(sent: u64, received: u64, rtt_ms: &[u64], requests: u64) -> VideoCall {
        let mut rtt_us = Histogram::new_with_bounds(1, 60_000_000, 2).unwrap();
        for ms in rtt_ms {
            rtt_us.record(ms * 1000).unwrap();
        }
        VideoCall {
            frames: 10,
            keyframes: 1 + requests,
            sent,
            received,
            foreign: 0,
            keyframe_requests: requests,
            requests_answered: requests,
            rtt_us,
        }
    }

    #[test]
    fn sums_calls_and_judges_loss_and_dead_video() {
        let cfg = Vp8Config::default();
        assert_eq!(video_figures(&cfg, &[]), Ok(None));
        let (a, b) = (call(100, 100, &[1, 2], 2), call(100, 98, &[3], 0));
        let f = video_figures(&cfg, &[(50, &a), (50, &b)]).unwrap().unwrap();
        assert_eq!((f.calls, f.calls_with_video_back), (2, 2));
        assert_eq!((f.sent, f.received, f.keyframe_requests), (200, 198, 2));
        assert_eq!(f.calls_with_requests, 1);
        assert!((f.loss_ratio - 0.01).abs() < 1e-9);
        // Two significant digits in the histogram: 3 ms reads back as 3.00x.
        assert_eq!(f.rtt.count, 3);
        assert!((3.0..3.05).contains(&f.rtt.max_ms), "{}", f.rtt.max_ms);
        assert!(f.judge(0.02).is_empty());
        assert_eq!(f.judge(0.001).len(), 1);
        // A call whose video never came back fails the run even under the loss bound.
        let dead = call(3, 0, &[], 0);
        let f = video_figures(&cfg, &[(50, &a), (50, &dead)])
            .unwrap()
            .unwrap();
        let missed = f.judge(1.0);
        assert_eq!(
            missed,
            vec!["1 of 2 video calls got no video back".to_owned()]
        );
        // A call whose audio flowed but no video went out: its video line was refused.
        let idle = call(0, 0, &[], 0);
        let f = video_figures(&cfg, &[(50, &a), (50, &idle)])
            .unwrap()
            .unwrap();
        assert_eq!((f.calls, f.calls_sending_video), (2, 1));
        assert!(f.judge(1.0)[0].starts_with("1 of 2 video calls could send no video"));
        // A call that sent nothing at all (never connected) is not counted here.
        let f = video_figures(&cfg, &[(50, &a), (0, &idle)])
            .unwrap()
            .unwrap();
        assert_eq!(f.calls, 1);
        let md = f.markdown();
        assert!(md.contains("| video packets echoed back | 100 |"), "{md}");
        assert!(md.contains(
            "| keyframe requests (PLI/FIR) received / answered with a keyframe | 2 / 2 |"
        ));
    }
}
