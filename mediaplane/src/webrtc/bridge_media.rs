//! The media paths of a bridged call that run per packet or per timer tick: draining the
//! browser leg (browser RTP -> SIP side), telephone-event mapping, SDES protection toward the
//! SIP side and our own DTMF generation. Split from [`super::bridge`] (which keeps the call
//! table and the entry points) to keep files small.
//!
//! Invariants: as in [`super::bridge`]: no allocation, locks or awaits between receive and
//! send; every output of the leg is drained until its `Timeout`.

use wavegate_shared::protocol::MediaEvent;

use super::bridge::{BridgeCall, BridgeIo, DTMF_GAP_NS, DtmfOut, RTP_BUF, Tele};
use super::dtmf::{DtmfPacket, DtmfSender, TelephoneEvent, rescale};
use super::leg::{LegEvent, LegOutput, OutRtp};
use crate::call::PtMap;
use crate::rtp::{RTP_HEADER_LEN, RtpPacket, write_rtp};
use crate::transcode::call::{POLL_BUDGET, Side};

/// Where a telephone-event of payload type `from` goes on the other side: the same clock rate
/// when the other side has it (plain payload-type mapping), else its first telephone-event
/// (durations are then rescaled). Returns the other side's payload type and clock rate.
pub(super) fn tele_target(from: Tele, other: &[Tele], map: &PtMap) -> Option<(u8, u32)> {
    map.get(from.0).filter(|(pt, _)| other.iter().any(|t| t.0 == *pt)).or_else(|| other.first().copied())
}

/// SRTP-protects the RTP packet in `buf[..n]` (12-byte header, as we write them) when the SIP
/// side uses SDES; returns the length to send.
pub(super) fn protect(c: &mut BridgeCall, buf: &mut [u8], n: usize) -> Option<usize> {
    match c.srtp.as_mut() {
        None => Some(n),
        Some(s) => s.protect_rtp(buf, n, 12).ok(),
    }
}

/// The next DTMF packet of one direction due by `now_ns`, starting a queued digit (on timestamp
/// `start_ts`) when the previous one is done and the gap has passed.
pub(super) fn next_dtmf(out: &mut DtmfOut, now_ns: u64, clock: u32, start_ts: u32) -> Option<DtmfPacket> {
    // Bounded: a digit ends after three end packets and the next starts only after a gap.
    loop {
        if let Some(sender) = out.current.as_mut() {
            if let Some(p) = sender.poll(now_ns) {
                return Some(p);
            }
            if !sender.is_done() {
                return None;
            }
            out.current = None;
            out.next_start = now_ns + DTMF_GAP_NS;
        }
        if now_ns < out.next_start {
            return None;
        }
        let (digit, ms) = out.queue.pop_front()?;
        // Validated when queued; a failure here would only skip the digit.
        out.current = DtmfSender::new(digit, ms, now_ns, start_ts, clock).ok();
    }
}

/// The clock rate of the call's audio (the first non-telephone-event codec of the SIP-side
/// m-line; passthrough means both sides share it).
pub(super) fn audio_clock(c: &BridgeCall) -> u32 {
    c.sip_local
        .payload_types()
        .filter(|pt| !c.browser_tele.iter().any(|t| t.0 == *pt))
        .find_map(|pt| c.sip_local.rtpmap(pt).map(|r| r.clock_rate))
        .unwrap_or(8000)
}

/// Sends whatever the call's DTMF senders have due by `now_ns`, starting queued digits.
pub(super) fn pump_dtmf(
    c: &mut BridgeCall,
    now_ns: u64,
    buf: &mut [u8; RTP_BUF],
    io: &mut dyn BridgeIo,
    events: &mut Vec<MediaEvent>,
) {
    // Toward the SIP side: plain RTP from our port, numbered by the browser->SIP rewriter.
    if let Some(&(pt, clock)) = c.sip_tele.first() {
        // The event starts "now" on the stream's timeline, which runs at the audio clock (the
        // transcoder's own timeline on a transcoded call).
        let owns = c.tc_owns(Side::Sip);
        let start_ts = match c.tc.as_deref().filter(|_| owns) {
            Some(t) => t.now_ts(Side::Sip, now_ns),
            None => c.rewriter.now_ts(now_ns, audio_clock(c)),
        };
        while let Some(d) = next_dtmf(&mut c.dtmf_to_sip, now_ns, clock, start_ts) {
            let Some(dst) = c.sip_remote else { continue };
            let seq = match c.tc.as_deref_mut().filter(|_| owns) {
                Some(t) => t.insert_seq(Side::Sip),
                None => c.rewriter.insert(),
            };
            if let Some(n) = write_rtp(&mut buf[..], pt, seq, d.timestamp, c.rewriter.out_ssrc, &d.event.to_bytes()) {
                if d.marker {
                    buf[1] |= 0x80;
                }
                let Some(n) = protect(c, &mut buf[..], n) else {
                    continue;
                };
                io.send_rtp(c.sip_port, dst, &buf[..n]);
                c.sip.rtp_packets_out += 1;
                c.sip.rtp_bytes_out += n as u64;
            }
        }
    }
    // Toward the browser: through the leg (SRTP), numbered by the SIP->browser rewriter.
    if let Some(&(pt, clock)) = c.browser_tele.first() {
        let owns = c.tc_owns(Side::Browser);
        let start_ts = match c.tc.as_deref().filter(|_| owns) {
            Some(t) => t.now_ts(Side::Browser, now_ns),
            None => c.to_browser_rewriter.now_ts(now_ns, audio_clock(c)),
        };
        let mut wrote = false;
        while let Some(d) = next_dtmf(&mut c.dtmf_to_browser, now_ns, clock, start_ts) {
            let seq = match c.tc.as_deref_mut().filter(|_| owns) {
                Some(t) => t.insert_seq(Side::Browser),
                None => c.to_browser_rewriter.insert(),
            };
            let payload = d.event.to_bytes();
            let out = OutRtp { pt, seq, timestamp: d.timestamp, marker: d.marker, payload: &payload };
            if c.leg.write_rtp(now_ns, c.mid, out).is_ok() {
                c.browser.rtp_packets_out += 1;
                c.browser.rtp_bytes_out += payload.len() as u64;
                wrote = true;
            }
        }
        if wrote {
            drain(c, now_ns, buf, io, events);
        }
    }
}

/// Sends what the call's transcoder has due by `now_ns`: at most [`POLL_BUDGET`] packets, so a
/// backlog is spread over loop turns and relaying on the shard never waits long for it (the
/// call's deadline stays in the past, so the shard loop comes back without sleeping).
pub(super) fn pump_transcoder(
    c: &mut BridgeCall,
    now_ns: u64,
    buf: &mut [u8; RTP_BUF],
    io: &mut dyn BridgeIo,
    events: &mut Vec<MediaEvent>,
) {
    let mut wrote = false;
    for _ in 0..POLL_BUDGET {
        let Some(t) = c.tc.as_deref_mut() else { return };
        let (side, n) = match t.poll(now_ns, &mut buf[..]) {
            Ok(Some(x)) => x,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(call = %c.id, error = %e, "transcoding step failed");
                break;
            }
        };
        match side {
            Side::Sip => {
                let Some(dst) = c.sip_remote.filter(|_| c.browser_to_sip()) else {
                    continue;
                };
                let Some(n) = protect(c, &mut buf[..], n) else {
                    continue;
                };
                io.send_rtp(c.sip_port, dst, &buf[..n]);
                c.sip.rtp_packets_out += 1;
                c.sip.rtp_bytes_out += n as u64;
            }
            Side::Browser => {
                if !c.sip_to_browser() || n < RTP_HEADER_LEN {
                    continue;
                }
                let out = OutRtp {
                    pt: buf[1] & 0x7f,
                    seq: u16::from_be_bytes([buf[2], buf[3]]),
                    timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                    marker: buf[1] & 0x80 != 0,
                    payload: &buf[RTP_HEADER_LEN..n],
                };
                match c.leg.write_rtp(now_ns, c.mid, out) {
                    Ok(()) => {
                        c.browser.rtp_packets_out += 1;
                        c.browser.rtp_bytes_out += (n - RTP_HEADER_LEN) as u64;
                        wrote = true;
                    }
                    Err(e) => {
                        tracing::trace!(call = %c.id, error = %e, "cannot write RTP to the browser")
                    }
                }
            }
        }
    }
    if wrote {
        drain(c, now_ns, buf, io, events);
    }
}

/// Drains the leg's outputs until its next timeout.
pub(super) fn drain(
    c: &mut BridgeCall,
    now_ns: u64,
    buf: &mut [u8; RTP_BUF],
    io: &mut dyn BridgeIo,
    events: &mut Vec<MediaEvent>,
) {
    // Bounded: str0m ends every drain with a Timeout; the cap only guards against a bug there.
    for _ in 0..10_000 {
        let out = match c.leg.poll() {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(call = %c.id, error = %e, "webrtc leg failed");
                c.failed.get_or_insert_with(|| format!("WebRTC leg failed: {e}"));
                c.deadline = u64::MAX;
                return;
            }
        };
        match out {
            LegOutput::Timeout(at) => {
                c.deadline = at;
                return;
            }
            LegOutput::Transmit(t) => io.send_webrtc(t.destination, &t.contents),
            LegOutput::Rtp(r) => {
                if c.video.as_ref().is_some_and(|v| r.mid == Some(v.mid)) {
                    c.delivered.mark(r.ssrc, r.seq);
                    super::bridge_video::from_browser(c, now_ns, &r, buf, io);
                    continue;
                }
                c.browser.rtp_packets_in += 1;
                c.delivered.mark(r.ssrc, r.seq);
                c.browser.rtp_bytes_in += r.payload.len() as u64;
                c.last_media_ns = now_ns;
                c.timed_out = false;
                let rx_clock = c.to_sip.get(r.pt).map_or(48_000, |(_, clock)| clock);
                c.browser_rx.on_packet(now_ns, r.ssrc, r.seq, r.timestamp, rx_clock);
                if !c.browser_to_sip() {
                    continue; // on hold: received (and counted), not forwarded
                }
                let tele_in = c.browser_tele.iter().find(|t| t.0 == r.pt).copied();
                let full = c.tc_full;
                if tele_in.is_none()
                    && let Some(t) = c.tc.as_deref_mut()
                    && (full || t.formats().1.pt == r.pt)
                {
                    // Transcoded call: the browser's codec goes into the transcoder (polled
                    // in `pump_transcoder`); on a fully transcoded call anything else but
                    // telephone-event is dropped, on a half one it is passthrough.
                    if !t.on_audio(Side::Browser, now_ns, r.pt, r.seq, r.timestamp, &r.payload) {
                        c.browser.dropped += 1;
                    }
                    continue;
                }
                let mapped = match tele_in {
                    Some(t) => tele_target(t, &c.sip_tele, &c.to_sip),
                    None => c.to_sip.get(r.pt),
                };
                let (Some(dst), Some((pt, clock))) = (c.sip_remote, mapped) else {
                    c.browser.dropped += 1;
                    continue;
                };
                let Some(n) = write_rtp(&mut buf[..], r.pt, r.seq, r.timestamp, r.ssrc, &r.payload) else {
                    c.browser.dropped += 1;
                    continue;
                };
                if let Some((_, in_clock)) = tele_in {
                    let Ok(ev) = TelephoneEvent::parse(&r.payload) else {
                        c.browser.dropped += 1;
                        continue;
                    };
                    let (call, tag) = (&c.id, c.browser_tag());
                    c.dtmf_from_browser.on_packet(r.timestamp, ev, in_clock, |digit, duration_ms| {
                        events.push(MediaEvent::DtmfReceived {
                            call: call.clone(),
                            tag: tag.clone(),
                            digit,
                            duration_ms,
                        });
                    });
                    let d = rescale(ev.duration, in_clock, clock).to_be_bytes();
                    buf[RTP_HEADER_LEN + 2..RTP_HEADER_LEN + 4].copy_from_slice(&d);
                }
                if r.marker {
                    buf[1] |= 0x80;
                }
                let Ok(mut p) = RtpPacket::parse(&mut buf[..n]) else {
                    continue;
                };
                let owns = c.tc_owns(Side::Sip);
                match c.tc.as_deref_mut().filter(|_| owns) {
                    // The transcoder owns the stream toward the SIP side: its SSRC, numbers
                    // and timeline.
                    Some(t) => {
                        p.set_ssrc(t.ssrc(Side::Sip));
                        p.set_sequence(t.insert_seq(Side::Sip));
                        p.set_timestamp(t.event_ts(Side::Sip, r.timestamp, now_ns));
                        p.set_payload_type(pt);
                    }
                    None => c.rewriter.rewrite(now_ns, &mut p, pt, clock),
                }
                let Some(n) = protect(c, &mut buf[..], n) else {
                    c.browser.dropped += 1;
                    continue;
                };
                io.send_rtp(c.sip_port, dst, &buf[..n]);
                c.sip.rtp_packets_out += 1;
                c.sip.rtp_bytes_out += n as u64;
            }
            LegOutput::Event(e) => match e {
                LegEvent::Closed => {
                    tracing::debug!(call = %c.id, "webrtc leg closed");
                    c.failed.get_or_insert_with(|| "the browser closed the peer connection".to_owned());
                }
                LegEvent::IceDisconnected => {
                    tracing::debug!(call = %c.id, "webrtc leg: ICE disconnected");
                    c.ice_lost_at.get_or_insert(now_ns);
                }
                LegEvent::IceConnected => {
                    tracing::debug!(call = %c.id, "webrtc leg: ICE connected");
                    c.ice_lost_at = None;
                }
                LegEvent::DtlsConnected => {
                    tracing::debug!(call = %c.id, "webrtc leg: DTLS connected")
                }
                LegEvent::MediaAdded { .. } => {}
                LegEvent::KeyframeRequest { mid, fir } => super::bridge_video::keyframe_to_sip(c, mid, fir, buf, io),
            },
        }
    }
}
