//! The bridge's read-only views of a call for the control plane: its legs' counters
//! (`Query`) and both legs' media quality (`Stats`: our receive statistics, the peers' RTCP
//! reports, RTT). Nothing here changes a call; the packet path never calls it.

use std::net::SocketAddr;

use wavegate_shared::ids::CallId;
use wavegate_shared::protocol::{CallQuality, CallStats, ControlError, ErrorCode, LegQuality};

use super::bridge::{Bridge, err};
use super::quality::ticks_to_us;

impl Bridge {
    /// The call's counters: the offerer's leg (the browser after `WebRtcOffer`, the SIP caller
    /// after `OfferToBrowser`) and the answerer's.
    pub fn query(&self, now_ns: u64, call: &CallId) -> Result<CallStats, ControlError> {
        let slot = self.slot_of(call)?;
        let c = self.calls.get(slot).and_then(Option::as_deref).ok_or_else(|| err(ErrorCode::Internal, "empty slot"))?;
        let mut browser = c.browser.clone();
        browser.tag = c.browser_tag();
        browser.local_rtp = Some(self.addr.announce);
        let mut sip = c.sip.clone();
        sip.tag = c.sip_tag();
        sip.local_rtp = Some(SocketAddr::new(self.announce_ip, c.sip_port));
        sip.remote_rtp = c.sip_remote;
        let (offerer, answerer) = if c.browser_offered { (browser, sip) } else { (sip, browser) };
        Ok(CallStats {
            call: Some(c.id.clone()),
            offerer,
            answerer,
            age_ms: now_ns.saturating_sub(c.created_ns) / 1_000_000,
        })
    }

    /// Media quality of both legs: our own receive statistics, the peers' RTCP reports (str0m's
    /// for the browser, the SIP peer's report blocks on our stream), RTT where RTCP gives one.
    pub fn stats(&self, call: &CallId) -> Result<CallQuality, ControlError> {
        let slot = self.slot_of(call)?;
        let c = self.calls.get(slot).and_then(Option::as_deref).ok_or_else(|| err(ErrorCode::Internal, "empty slot"))?;
        let mut browser = LegQuality {
            tag: c.browser_tag(),
            packets_in: c.browser.rtp_packets_in,
            bytes_in: c.browser.rtp_bytes_in,
            packets_out: c.browser.rtp_packets_out,
            bytes_out: c.browser.rtp_bytes_out,
            lost_in: c.browser_rx.total_lost(),
            jitter_in_us: c.browser_rx.jitter_us(),
            ..LegQuality::default()
        };
        let (ingress, egress) = c.leg.stats();
        // The browser's clock for our stream: the first audio codec of the call.
        let clock = c.sip_local.payload_types().find_map(|pt| c.to_sip.get(pt)).map_or(48_000, |(_, clock)| clock);
        if let Some(e) = egress {
            if let Some(remote) = &e.remote {
                browser.remote_lost = Some(remote.packets_lost);
                browser.remote_jitter_us = Some(ticks_to_us(remote.jitter, clock));
            }
            browser.remote_fraction_lost = e.loss.map(|f| (f.clamp(0.0, 1.0) * 256.0).min(255.0) as u8);
        }
        let rtt = egress.and_then(|e| e.rtt).or_else(|| ingress.and_then(|i| i.rtt));
        browser.rtt_us = rtt.map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
        let mut sip = LegQuality {
            tag: c.sip_tag(),
            packets_in: c.sip.rtp_packets_in,
            bytes_in: c.sip.rtp_bytes_in,
            packets_out: c.sip.rtp_packets_out,
            bytes_out: c.sip.rtp_bytes_out,
            lost_in: c.sip_rx.total_lost(),
            jitter_in_us: c.sip_rx.jitter_us(),
            ..LegQuality::default()
        };
        if let Some(r) = c.sip_report {
            sip.remote_lost = Some(u64::from(r.cumulative_lost));
            sip.remote_fraction_lost = Some(r.fraction_lost);
            sip.remote_jitter_us = Some(ticks_to_us(r.jitter, clock));
        }
        let video = c.video.as_ref().map(|v| v.q.clone());
        Ok(CallQuality { browser, sip, video })
    }
}
