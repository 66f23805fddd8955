//! WebRTC legs: the browser side of a call, terminated in the media plane with str0m.
//!
//! - [`stun`]: the STUN header + USERNAME, enough to route a connectivity check.
//! - [`demux`]: one WebRTC UDP port per shard; datagrams go to legs by ufrag, then by 5-tuple.
//! - [`drops`]: why the WebRTC socket dropped a datagram (counted per shard).
//! - [`leg`]: a sans-IO leg around `str0m::Rtc` in ICE-lite + RTP mode.
//! - [`bridge`]: a shard's WebRTC <-> RTP calls: leg + SIP-side RTP port(s), passthrough audio
//!   and video (`bridge_video`).
//!   `bridge_setup` is the offer/answer flow and codec choice (passthrough or transcoded),
//!   `bridge_sdp` the SIP-side SDP and codec mapping behind it, `bridge_reoffer` our re-offer
//!   to the browser capping its Opus at a transcoded SIP codec's rate.
//! - [`rtcp_fb`]: RTCP keyframe requests (PLI, FIR) for the video bridge.
//! - [`dtmf`]: RFC 4733 telephone-events: payload, detector, generator.
//! - [`quality`]: receive statistics and RTCP report blocks for the `Stats` request.
//! - [`srtp`], [`sdes`]: SRTP (RFC 3711) with SDES keys (RFC 4568) toward SIP peers offering
//!   RTP/SAVP.
//!
//! Invariants: nothing here reads the clock or touches a socket. Time enters as the shard's
//! monotonic nanoseconds (`now_ns`, the same clock the relay uses) and is turned into the
//! `Instant`s str0m wants in exactly one place, [`Clock`]. The io driver owns the sockets and
//! feeds [`bridge::Bridge`]: see docs/webrtc.md.

pub mod bridge;
mod bridge_media;
mod bridge_midcall;
mod bridge_reoffer;
mod bridge_sdp;
mod bridge_setup;
mod bridge_stats;
mod bridge_video;
pub mod demux;
pub mod drops;
pub mod dtmf;
pub mod leg;
pub mod quality;
pub mod rtcp_fb;
pub mod sdes;
pub mod srtp;
pub mod stun;

use std::time::{Duration, Instant};

/// Maps the shard's monotonic nanoseconds onto `Instant`s and back: `instant(ns) = base + ns`.
///
/// The base is any fixed `Instant` (the driver takes one when the shard starts, tests use a
/// virtual one); only differences matter to str0m, so the two clocks need not be the same.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
}

impl Clock {
    /// A clock on which `now_ns == 0` is `base`.
    pub fn new(base: Instant) -> Self {
        Self { base }
    }

    /// The `Instant` for shard time `ns`.
    pub fn instant(&self, ns: u64) -> Instant {
        self.base + Duration::from_nanos(ns)
    }

    /// Shard time for an `Instant` (saturating at 0 before the base and at `u64::MAX` after
    /// ~584 years, which str0m uses for "no timeout").
    pub fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_round_trips_and_saturates() {
        let base = Instant::now();
        let clock = Clock::new(base + Duration::from_secs(10));
        assert_eq!(clock.ns(clock.instant(123_456_789)), 123_456_789);
        assert_eq!(clock.ns(base), 0);
        assert_eq!(clock.ns(base + Duration::from_secs(1_000_000_000_000)), u64::MAX);
    }
}
