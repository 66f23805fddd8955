//! Server-initiated renegotiation toward the browser on calls it offered: our answer went out
//! before the SIP side answered, and the SIP answer can then leave the browser sending what
//! is wasteful or useless. Two narrowings, made by one re-offer when both apply:
//!
//! - *Opus capped at the SIP codec's rate*: the browser sends Chrome's default fullband Opus
//!   (hybrid/CELT: ~38 µs per 20 ms to decode). When the SIP answer makes the bridge transcode
//!   that Opus to an 8 kHz (PCMU, PCMA, G.729, Speex NB) or 16 kHz (G.722, Speex WB) codec, the
//!   Opus fmtp of the re-offer carries `maxplaybackrate` / `sprop-maxcapturerate` at that rate
//!   (`cap_opus_rate`); the browser then sends SILK narrowband (wideband), ~13 (~22) µs.
//! - *Video narrowed to the SIP side's format*: the browser was answered with every bridged
//!   video format in its order and sends the first; when the SIP answer did not take that one
//!   (VP8 vs H.264, or an H.264 of another profile), browser → SIP video would be dropped. The
//!   re-offer's video m-line then lists only the format the SIP side put first among those the
//!   browser has (`narrow_video`), so the browser's encoder switches to it.
//!
//! [`Bridge::answer`] marks the call ([`CapReoffer::Wanted`]); the next [`Bridge::on_timeout`]
//! makes a new offer with the leg's own SDP API (same m-lines, ICE credentials and DTLS
//! fingerprint), rewrites it as above and queues it as a [`MediaEvent::BrowserReoffer`]. The
//! browser's answer comes back through [`Bridge::browser_answer`] ([`Bridge::browser_reanswer`]
//! here).
//!
//! Invariants: at most one offer of ours is pending per leg, and only on a negotiated call
//! (`Stage::Up`): a re-offer that finds another pending is skipped. Media flows throughout
//! (str0m applies nothing before the answer). A browser offer while ours is pending wins: ours
//! is withdrawn (glare, [`withdraw`]); a browser offer also undoes an accepted narrowing (our
//! answer to it lists the leg's formats again), so the SIP answer that follows may re-offer.
//! An answer that does not come within [`REOFFER_TIMEOUT_NS`] is given up (logged): the call
//! goes on as negotiated. Only calls whose signalling asked for it
//! (`OfferFlags::browser_reoffer`) are re-offered.

use wavegate_shared::protocol::{ControlError, ErrorCode, MediaEvent};

use super::bridge::{Bridge, BridgeCall, BridgeIo, RTP_BUF, Stage, drain, err};
use super::bridge_sdp::{audio, cap_opus_rate, narrow_video};
use crate::sdp::Sdp;
use crate::transcode::Codec as TcCodec;

/// How long the browser has to answer our re-offer before it is withdrawn.
pub const REOFFER_TIMEOUT_NS: u64 = 10_000_000_000;

/// What a re-offer to the browser narrows (`None`: as the leg negotiated it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Narrowing {
    /// The browser's Opus capped at this rate (8000 or 16000).
    pub(super) opus_rate: Option<u32>,
    /// The browser's video m-line narrowed to this format (its payload type).
    pub(super) video_pt: Option<u8>,
}

impl Narrowing {
    /// Nothing to narrow.
    fn is_empty(&self) -> bool {
        self.opus_rate.is_none() && self.video_pt.is_none()
    }

    /// Everything `want` narrows, `self` narrows the same way already.
    fn covers(&self, want: &Narrowing) -> bool {
        want.opus_rate.is_none_or(|r| self.opus_rate == Some(r))
            && want.video_pt.is_none_or(|pt| self.video_pt == Some(pt))
    }
}

/// Where a call's narrowing re-offer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum CapReoffer {
    /// Nothing to do (not asked for, or the call needs no narrowing).
    #[default]
    Idle,
    /// The SIP answer asks for this narrowing: re-offer at the next timer turn.
    Wanted(Narrowing),
    /// Our offer with this narrowing is out since `since_ns`.
    Pending { want: Narrowing, since_ns: u64 },
    /// The browser accepted this narrowing.
    Capped(Narrowing),
}

/// The rate to cap the browser's Opus at, when the call transcodes it to an 8 or 16 kHz codec.
pub(super) fn cap_rate(c: &BridgeCall) -> Option<u32> {
    let (sip, browser) = c.tc.as_ref()?.formats();
    if browser.codec != TcCodec::Opus {
        return None;
    }
    sip.codec.native_rate().filter(|r| matches!(r, 8000 | 16_000))
}

/// The format the browser's video should be narrowed to: when the SIP side's answer did not
/// take the one the browser sends (the first of our answer to it), the SIP answer's first
/// format the browser has (`VideoPath::sip_first`).
pub(super) fn video_narrowing(c: &BridgeCall) -> Option<u8> {
    let v = c.video.as_deref()?;
    if !v.active {
        return None;
    }
    let sends = v.codecs.first()?.pt;
    if v.to_sip.iter().any(|(browser, _)| *browser == sends) {
        return None;
    }
    v.sip_first.filter(|pt| *pt != sends)
}

/// After a SIP answer: asks for a re-offer when the call allows it and its browser should be
/// narrowed further than it was (Opus capped, video narrowed). `true` when one is wanted.
pub(super) fn want_reoffer(c: &mut BridgeCall) -> bool {
    if !c.browser_reoffer || !c.browser_offered {
        return false;
    }
    let want = Narrowing { opus_rate: cap_rate(c), video_pt: video_narrowing(c) };
    if want.is_empty() {
        return false;
    }
    match c.cap {
        CapReoffer::Capped(has) | CapReoffer::Wanted(has) if has.covers(&want) => false,
        CapReoffer::Pending { .. } => false, // one at a time; the pending one stands
        _ => {
            c.cap = CapReoffer::Wanted(want);
            true
        }
    }
}

/// The browser offered on its own: a pending offer of ours is withdrawn (glare), and what it
/// accepted of ours before no longer holds (our answer lists the leg's formats again).
pub(super) fn browser_offered(c: &mut BridgeCall) {
    withdraw(c, "the browser offered in the meantime");
    if let CapReoffer::Capped(_) = c.cap {
        c.cap = CapReoffer::Idle;
    }
}

/// Withdraws our pending re-offer (the browser offered: glare, or it never answered).
pub(super) fn withdraw(c: &mut BridgeCall, why: &str) {
    if let CapReoffer::Pending { want, .. } = c.cap {
        c.leg.rollback_offer();
        c.cap = CapReoffer::Idle;
        tracing::info!(call = %c.id, ?want, "our re-offer to the browser withdrawn: {why}");
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
    let CapReoffer::Wanted(want) = c.cap else {
        return;
    };
    if c.stage != Stage::Up || c.leg.awaiting_answer() {
        // Another negotiation is under way: skip (the call goes on as negotiated).
        tracing::debug!(call = %c.id, "narrowing re-offer skipped: a negotiation is pending");
        c.cap = CapReoffer::Idle;
        return;
    }
    match c.leg.make_reoffer(now_ns) {
        Ok(mut sdp) => {
            if let Some(rate) = want.opus_rate {
                sdp = cap_opus_rate(&sdp, rate);
            }
            if let Some(pt) = want.video_pt {
                sdp = narrow_video(&sdp, pt);
            }
            c.cap = CapReoffer::Pending { want, since_ns: now_ns };
            tracing::debug!(call = %c.id, ?want, "re-offering the browser narrowed to what the SIP side takes");
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
    if let CapReoffer::Pending { since_ns, want } = c.cap
        && now_ns.saturating_sub(since_ns) >= REOFFER_TIMEOUT_NS
    {
        c.leg.rollback_offer();
        c.cap = CapReoffer::Idle;
        tracing::warn!(
            call = %c.id,
            ?want,
            "the browser did not answer our re-offer within {} s; the call goes on as negotiated \
             (fullband Opus; a video format the SIP side did not take is not forwarded)",
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
        let CapReoffer::Pending { want, .. } = c.cap else {
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
        c.cap = CapReoffer::Capped(want);
        tracing::debug!(call = %c.id, ?want, "the browser accepted our narrowing re-offer");
        drain(c, now_ns, &mut self.buf, io, &mut self.events);
        self.earliest = self.earliest.min(c.next_deadline());
        Ok(String::new())
    }
}
