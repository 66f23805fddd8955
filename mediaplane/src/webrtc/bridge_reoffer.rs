//! Server-initiated renegotiation toward the browser, used to cap the browser's Opus at the
//! rate of the SIP codec it is transcoded to.
//!
//! On a call the browser offered, our answer went out before the SIP side answered, so the
//! browser sends Chrome's default fullband Opus (hybrid/CELT: ~38 µs per 20 ms to decode). When
//! the SIP answer then makes the bridge transcode that Opus to an 8 kHz (PCMU, PCMA, G.729,
//! Speex NB) or 16 kHz (G.722, Speex WB) codec, [`Bridge::answer`] marks the call
//! ([`CapReoffer::Wanted`]); the next [`Bridge::on_timeout`] makes a new offer for the browser
//! with the leg's own SDP API (same m-lines, ICE credentials and DTLS fingerprint) whose Opus
//! fmtp carries `maxplaybackrate` / `sprop-maxcapturerate` at that rate, and queues it as a
//! [`MediaEvent::BrowserReoffer`]. The browser's answer comes back through
//! [`Bridge::browser_answer`] ([`Bridge::browser_reanswer`] here); the browser then sends SILK
//! narrowband (wideband) Opus, ~13 (~22) µs to decode.
//!
//! Invariants: at most one offer of ours is pending per leg, and only on a negotiated call
//! (`Stage::Up`): a re-offer that finds another pending is skipped. Media flows throughout
//! (str0m applies nothing before the answer). A browser offer while ours is pending wins: ours
//! is withdrawn (glare, [`withdraw`]). An answer that does not come within
//! [`REOFFER_TIMEOUT_NS`] is given up (logged): the call goes on as negotiated, fullband. Only
//! calls whose signalling asked for it (`OfferFlags::browser_reoffer`) are re-offered.

use wavegate_shared::protocol::{ControlError, ErrorCode, MediaEvent};

use super::bridge::{Bridge, BridgeCall, BridgeIo, RTP_BUF, Stage, drain, err};
use super::bridge_sdp::{audio, cap_opus_rate};
use crate::sdp::Sdp;
use crate::transcode::Codec as TcCodec;

/// How long the browser has to answer our re-offer before it is withdrawn.
pub const REOFFER_TIMEOUT_NS: u64 = 10_000_000_000;

/// Where a call's capping re-offer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum CapReoffer {
    /// Nothing to do (not asked for, or the call needs no cap).
    #[default]
    Idle,
    /// The SIP answer made the browser's Opus transcoded to this rate: re-offer at the next
    /// timer turn.
    Wanted(u32),
    /// Our offer capped at `rate` is out since `since_ns`.
    Pending { rate: u32, since_ns: u64 },
    /// The browser accepted Opus capped at this rate.
    Capped(u32),
}

/// The rate to cap the browser's Opus at, when the call transcodes it to an 8 or 16 kHz codec.
pub(super) fn cap_rate(c: &BridgeCall) -> Option<u32> {
    let (sip, browser) = c.tc.as_ref()?.formats();
    if browser.codec != TcCodec::Opus {
        return None;
    }
    sip.codec.native_rate().filter(|r| matches!(r, 8000 | 16_000))
}

/// After a SIP answer: asks for a capping re-offer when the call allows it and its browser's
/// Opus is now transcoded to a narrower codec than it was capped at. `true` when one is wanted.
pub(super) fn want_cap(c: &mut BridgeCall) -> bool {
    if !c.browser_reoffer || !c.browser_offered {
        return false;
    }
    let Some(rate) = cap_rate(c) else {
        return false;
    };
    match c.cap {
        CapReoffer::Capped(r) | CapReoffer::Wanted(r) | CapReoffer::Pending { rate: r, .. } if r == rate => false,
        CapReoffer::Pending { .. } => false, // one at a time; the pending one stands
        _ => {
            c.cap = CapReoffer::Wanted(rate);
            true
        }
    }
}

/// Withdraws our pending re-offer (the browser offered: glare, or it never answered).
pub(super) fn withdraw(c: &mut BridgeCall, why: &str) {
    if let CapReoffer::Pending { rate, .. } = c.cap {
        c.leg.rollback_offer();
        c.cap = CapReoffer::Idle;
        tracing::info!(call = %c.id, rate, "our re-offer to the browser withdrawn: {why}");
    }
}

/// Makes the wanted re-offer of one call, if it can go now; the event goes to `events`.
pub(super) fn make(
    c: &mut BridgeCall,
    now_ns: u64,
    buf: &mut [u8; RTP_BUF],
    io: &mut dyn BridgeIo,
    events: &mut Vec<MediaEvent>,
) {
    let CapReoffer::Wanted(rate) = c.cap else {
        return;
    };
    if c.stage != Stage::Up || c.leg.awaiting_answer() {
        // Another negotiation is under way: skip (the call goes on fullband).
        tracing::debug!(call = %c.id, "capping re-offer skipped: a negotiation is pending");
        c.cap = CapReoffer::Idle;
        return;
    }
    match c.leg.make_reoffer(now_ns) {
        Ok(offer) => {
            let sdp = cap_opus_rate(&offer, rate);
            c.cap = CapReoffer::Pending { rate, since_ns: now_ns };
            tracing::debug!(call = %c.id, rate, "re-offering the browser Opus capped at the SIP side's rate");
            events.push(MediaEvent::BrowserReoffer { call: c.id.clone(), tag: c.browser_tag(), sdp });
        }
        Err(e) => {
            tracing::info!(call = %c.id, error = %e, "cannot re-offer to the browser");
            c.cap = CapReoffer::Idle;
        }
    }
    drain(c, now_ns, buf, io, events);
}

/// Gives up re-offers the browser did not answer in time.
pub(super) fn expire(c: &mut BridgeCall, now_ns: u64) {
    if let CapReoffer::Pending { since_ns, rate } = c.cap
        && now_ns.saturating_sub(since_ns) >= REOFFER_TIMEOUT_NS
    {
        c.leg.rollback_offer();
        c.cap = CapReoffer::Idle;
        tracing::warn!(
            call = %c.id,
            rate,
            "the browser did not answer our re-offer within {} s; the call goes on as negotiated (fullband Opus)",
            REOFFER_TIMEOUT_NS / 1_000_000_000
        );
    }
}

impl Bridge {
    /// The browser's answer to our re-offer on a negotiated call; the reply SDP is empty (the
    /// SIP side is not renegotiated).
    pub(super) fn browser_reanswer(
        &mut self,
        now_ns: u64,
        slot: usize,
        sdp: &str,
        io: &mut dyn BridgeIo,
    ) -> Result<String, ControlError> {
        let Some(c) = self.calls.get_mut(slot).and_then(Option::as_deref_mut) else {
            return Err(err(ErrorCode::Internal, "empty slot"));
        };
        let CapReoffer::Pending { rate, .. } = c.cap else {
            return Err(err(
                ErrorCode::BadSdp,
                "no offer to the browser is waiting for an answer (a re-offer not answered within 10 s is withdrawn)",
            ));
        };
        let parsed = Sdp::parse(sdp).map_err(|e| err(ErrorCode::BadSdp, e.to_string()))?;
        let (_, m) = audio(&parsed).ok_or_else(|| err(ErrorCode::BadSdp, "the browser's answer has no audio"))?;
        if m.desc.port == 0 {
            // Rejecting the audio of a call in progress is not an answer we can take.
            withdraw(c, "the browser's answer rejected the audio m-line");
            return Err(err(ErrorCode::BadSdp, "the browser's answer rejects the audio m-line"));
        }
        if let Err(e) = c.leg.handle_answer(now_ns, sdp) {
            // The pending offer is consumed either way: the leg goes on as negotiated.
            c.cap = CapReoffer::Idle;
            return Err(err(ErrorCode::BadSdp, e.to_string()));
        }
        c.cap = CapReoffer::Capped(rate);
        tracing::debug!(call = %c.id, rate, "the browser accepted Opus capped at the SIP side's rate");
        drain(c, now_ns, &mut self.buf, io, &mut self.events);
        self.earliest = self.earliest.min(c.next_deadline());
        Ok(String::new())
    }
}
