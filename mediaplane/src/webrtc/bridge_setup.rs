//! Offer/answer for the bridge's calls: which codecs each side is offered, the SDP the SIP side
//! gets, and the payload-type maps that follow from the answers.
//!
//! Invariant: a call's `sip_local` m-line always carries the *browser's* payload-type numbers
//! (for an incoming SIP offer they are the SIP side's own, because the browser is offered them),
//! so `PtMap::between(sip_local, sip_answer)` and back are the whole translation.
//!
//! Codec choice: passthrough whenever the SIP side takes the codec the browser sends (the
//! first of the leg's negotiation); otherwise, when the bridge allows transcoding, our SIP offer
//! also lists every codec we can transcode ([`transcode_extras`]) and the call gets a
//! [`crate::transcode::call::CallTranscoder`] between the browser's codec and the SIP side's first; a SIP offer with no
//! codec a browser takes (G.729 only...) gets the browser offered Opus and G.711 and is
//! transcoded likewise (`transcode_incoming`). When transcoding is disabled such a call fails
//! with [`crate::transcode::call::NegotiateError::Disabled`] ("Transcoding required but disabled",
//! `ErrorCode::TranscodingDisabled`). On transcoded calls of an incoming SIP offer, `sip_local`
//! is our answer to the SIP side (its numbers) and the browser's telephone-event numbers are
//! kept apart in `browser_tele`.

use std::net::SocketAddr;

use str0m::format::Codec;
use str0m::media::{Direction as LegDirection, MediaKind};
use wavegate_shared::ids::{CallId, LegTag};
use wavegate_shared::protocol::{ControlError, ErrorCode, OfferFlags, OfferToBrowserReply, WebRtcOfferReply};

use super::bridge::{Bridge, BridgeCall, BridgeIo, BridgeSockets, DtmfOut, OfferDigest, Stage, Tele, drain, err};
pub(super) use super::bridge_sdp::sip_sdp_text;
use super::bridge_sdp::{
    answer_direction, audio, cap_opus_rate, disabled, leg_codec, new_transcoder, offered_direction, own_audio, ptime_of, tc_format, tc_formats,
    tele_of,
};
use super::bridge_reoffer;
use super::bridge_video::{VideoPath, first_shared, map_formats, video_codecs, video_of};
use super::demux::LegId;
use super::dtmf::DtmfDetector;
use super::leg::{DEFAULT_CODECS, LegCodec, WebRtcLeg};
use super::sdes::{CryptoAttr, parse_crypto, random_key};
use super::srtp::SrtpSession;

use crate::call::{PtMap, Rewriter};
use crate::relay::Relay;
use crate::sdp::{Direction, Media, Sdp};
use crate::transcode::call::{Format, transcode_extras};

/// Takes the SIP side's media address from its SDP: a new address (a re-INVITE moving the media,
/// RFC 3264 §8.3.1) replaces even a latched one, which then latches again on the next packet.
pub(super) fn learn_sip_address(c: &mut BridgeCall, sdp: &Sdp, index: usize) {
    let Some(m) = sdp.media.get(index) else {
        return;
    };
    let Some(ip) = sdp.media_address(index).filter(|ip| !ip.is_unspecified()) else {
        return;
    };
    if m.desc.port == 0 {
        return;
    }
    let addr = SocketAddr::new(ip, m.desc.port);
    if c.sip_sdp_addr != Some(addr) {
        c.sip_sdp_addr = Some(addr);
        c.sip_remote = Some(addr);
        c.sip_latched = false;
    } else if !c.sip_latched {
        c.sip_remote = Some(addr);
    }
}

/// The first `a=crypto` line of an m-line we can use.
pub(super) fn sdes_offer(m: &Media) -> Option<CryptoAttr> {
    m.attributes().find_map(|a| match a {
        crate::sdp::Attribute::Other { name, value: Some(v) } if name == "crypto" => parse_crypto(v),
        _ => None,
    })
}

/// How a new call starts.
struct NewCall<'a> {
    call: &'a CallId,
    from_tag: &'a LegTag,
    browser_offered: bool,
    stage: Stage,
    leg: WebRtcLeg,
    sip_port: u16,
    sip_local: Media,
    sip_remote: Option<SocketAddr>,
    sip_offer: Option<(Sdp, usize)>,
    browser_dir: Direction,
    sip_dir: Direction,
    /// The SIP side's SDES key when it offered RTP/SAVP.
    sdes: Option<CryptoAttr>,
    /// The call's video (its own port pair, reserved), when a bridged format was negotiated.
    video: Option<VideoPath>,
    /// The audio format the browser sends, when already known (it offered).
    browser_send: Option<Format>,
    /// The browser's audio payload types, when already known.
    browser_audio: Vec<u8>,
    /// The SIP offer needs transcoding (see `BridgeCall::transcode_incoming`).
    transcode_incoming: bool,
}

/// Frees the SIP-side port pairs of a call that could not be set up.
fn release(relay: &mut Relay, sockets: &mut dyn BridgeSockets, port: u16, video: Option<&VideoPath>) {
    relay.release_pair(port, &mut *sockets);
    if let Some(v) = video {
        relay.release_pair(v.sip_port, &mut *sockets);
    }
}

impl Bridge {
    /// Creates the call: answers the browser and offers plain RTP to the SIP side.
    #[allow(clippy::too_many_arguments)]
    pub fn offer(
        &mut self,
        now_ns: u64,
        call: &CallId,
        from_tag: &LegTag,
        browser_sdp: &str,
        flags: &OfferFlags,
        relay: &mut Relay,
        sockets: &mut dyn BridgeSockets,
    ) -> Result<WebRtcOfferReply, ControlError> {
        if self.by_id.contains_key(call) {
            return self.browser_reoffer(now_ns, call, browser_sdp, sockets);
        }
        if relay.has_call(call) {
            return Err(err(ErrorCode::BadSdp, format!("call {call} is a relay call")));
        }
        let browser_dir = offered_direction(browser_sdp)?;
        // The leg takes the passthrough codecs in the browser's order of preference (str0m
        // answers in its configured order, and the browser sends the answer's first codec).
        let parsed_offer = Sdp::parse(browser_sdp).ok();
        let offered: Vec<LegCodec> = parsed_offer
            .as_ref()
            .and_then(|sdp| audio(sdp).map(|(_, m)| m.payload_types().filter_map(|pt| leg_codec(m, pt)).collect()))
            .unwrap_or_default();
        let mut codecs = if offered.is_empty() { DEFAULT_CODECS.to_vec() } else { offered };
        // Video: the browser's bridged formats (VP8, H.264 packetization-mode=1; see
        // `bridge_video::video_codec`), in its order and with its numbers.
        codecs.extend(
            parsed_offer.as_ref().and_then(|sdp| video_of(sdp).map(|(_, m)| video_codecs(m))).unwrap_or_default(),
        );
        let mut leg = WebRtcLeg::with_codecs(self.clock, now_ns, self.addr, &self.cert, &codecs)
            .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
        let browser_answer =
            leg.handle_offer(now_ns, browser_sdp).map_err(|e| err(ErrorCode::BadSdp, e.to_string()))?;
        if !leg.media().iter().any(|(_, kind)| *kind == MediaKind::Audio) {
            return Err(err(ErrorCode::BadSdp, "the browser offered no audio m-line"));
        }
        // What the answer accepted, read back from it (str0m keeps unmatched codecs configured).
        let answer_sdp =
            Sdp::parse(&browser_answer).map_err(|e| err(ErrorCode::Internal, format!("our answer: {e}")))?;
        let codecs: Vec<LegCodec> = match audio(&answer_sdp) {
            Some((_, m)) => m.payload_types().filter_map(|pt| leg_codec(m, pt)).collect(),
            None => Vec::new(),
        };
        if !codecs.iter().any(|c| c.codec != Codec::Tele) {
            return Err(err(
                ErrorCode::BadSdp,
                "no codec both a browser and a SIP peer can share (Opus, G.722, PCMU, PCMA)",
            ));
        }
        let video_mid = leg.media().iter().find(|(_, kind)| *kind == MediaKind::Video).map(|(mid, _)| *mid);
        let answered_video = video_of(&answer_sdp).filter(|(_, m)| m.desc.port != 0).map(|(_, m)| video_codecs(m));
        let sip_port = relay.reserve_pair(&mut *sockets)?;
        let video = match (video_mid, answered_video) {
            (Some(mid), Some(formats)) if !formats.is_empty() => match relay.reserve_pair(&mut *sockets) {
                Ok(port) => Some(VideoPath::new(mid, port, formats, relay.random_ssrc())),
                Err(e) => {
                    relay.release_pair(sip_port, &mut *sockets);
                    return Err(e);
                }
            },
            _ => None,
        };
        let video_sdp = video.as_ref().map(|v| (v.sip_port, v.codecs.as_slice()));
        // The browser's codecs first (passthrough wins when the peer can), then what we can
        // transcode to.
        let browser_formats: Vec<Format> = codecs.iter().filter_map(tc_format).collect();
        let taken: Vec<u8> = codecs.iter().map(|c| c.pt).collect();
        let extra = transcode_extras(&browser_formats, &taken, self.transcoding);
        let sip_offer =
            sip_sdp_text(self.announce_ip, sip_port, 1, &codecs, &extra, Direction::SendRecv, None, None, video_sdp);
        let sip_local = match own_audio(&sip_offer) {
            Ok(m) => m,
            Err(e) => {
                release(relay, sockets, sip_port, video.as_ref());
                return Err(e);
            }
        };
        let new = NewCall {
            call,
            from_tag,
            browser_offered: true,
            stage: Stage::AwaitSipAnswer,
            leg,
            sip_port,
            sip_local,
            sip_remote: None,
            sip_offer: None,
            browser_dir,
            sip_dir: Direction::SendRecv,
            sdes: None,
            video,
            browser_send: browser_formats.first().copied(),
            browser_audio: browser_formats.iter().map(|f| f.pt).collect(),
            transcode_incoming: false,
        };
        self.insert_call(now_ns, new, flags, relay, sockets)?;
        let reply = WebRtcOfferReply { browser_answer, sip_offer };
        if let Ok(c) = self.call_mut(call) {
            c.last_browser_offer = Some((OfferDigest::of(browser_sdp), reply.clone()));
        }
        Ok(reply)
    }

    /// An incoming SIP call: makes the browser's offer from the SIP caller's codecs (`None`: an
    /// INVITE without SDP, every passthrough codec is offered).
    #[allow(clippy::too_many_arguments)]
    pub fn offer_to_browser(
        &mut self,
        now_ns: u64,
        call: &CallId,
        from_tag: &LegTag,
        sip_sdp: Option<&str>,
        flags: &OfferFlags,
        relay: &mut Relay,
        sockets: &mut dyn BridgeSockets,
    ) -> Result<OfferToBrowserReply, ControlError> {
        if self.by_id.contains_key(call) || relay.has_call(call) {
            return Err(err(ErrorCode::BadSdp, format!("call {call} exists")));
        }
        let mut offered = None;
        let mut sdes = None;
        let mut transcode_incoming = false;
        let mut sip_rate = None;
        // The SIP offer's video m-line (index, bridged formats), offered to the browser beside
        // the audio (not with SDES-SRTP: the video m-line is then rejected).
        let mut sip_video: Option<(usize, Vec<LegCodec>)> = None;
        let (codecs, sip_remote, sip_offer) = match sip_sdp {
            None => (DEFAULT_CODECS.to_vec(), None, None),
            Some(text) => {
                let sdp = Sdp::parse(text).map_err(|e| err(ErrorCode::BadSdp, e.to_string()))?;
                let (index, m) =
                    audio(&sdp).ok_or_else(|| err(ErrorCode::BadSdp, "the SIP offer has no audio m-line"))?;
                sdes = match m.desc.proto.as_str() {
                    "RTP/AVP" => None,
                    "RTP/SAVP" => Some(sdes_offer(m).ok_or_else(|| {
                        err(ErrorCode::BadSdp, "RTP/SAVP without a supported a=crypto (AES_CM_128_HMAC_SHA1_80/32)")
                    })?),
                    other => {
                        return Err(err(ErrorCode::BadSdp, format!("{other} is not supported towards SIP")));
                    }
                };
                let mut codecs: Vec<LegCodec> = m.payload_types().filter_map(|pt| leg_codec(m, pt)).collect();
                if !codecs.iter().any(|c| c.codec != Codec::Tele) {
                    if tc_formats(m).is_empty() {
                        return Err(err(
                            ErrorCode::BadSdp,
                            "the SIP offer has no codec a browser takes (Opus, G.722, PCMU, PCMA) or we transcode",
                        ));
                    }
                    if !self.transcoding {
                        return Err(disabled());
                    }
                    // No codec in common: the browser gets Opus and G.711 (and
                    // telephone-event), the SIP side keeps its codec; transcoded.
                    codecs = DEFAULT_CODECS.iter().filter(|c| c.codec != Codec::G722).copied().collect();
                    transcode_incoming = true;
                    // The SIP side keeps its first codec we transcode: at 8 (16) kHz the
                    // browser is asked for narrowband (wideband) Opus, much cheaper to decode.
                    sip_rate = tc_formats(m).first().and_then(|f| f.codec.native_rate());
                }
                if sdes.is_none() {
                    sip_video = video_of(&sdp)
                        .filter(|(_, v)| v.desc.port != 0 && v.desc.proto == "RTP/AVP")
                        .map(|(i, v)| (i, video_codecs(v)))
                        .filter(|(_, formats)| !formats.is_empty());
                }
                let remote = sdp.media_address(index).filter(|ip| !ip.is_unspecified() && m.desc.port != 0);
                let result = (codecs, remote.map(|ip| SocketAddr::new(ip, m.desc.port)), Some(m.direction()));
                offered = Some((sdp.clone(), index));
                result
            }
        };
        let mut leg_codecs = codecs.clone();
        if let Some((_, formats)) = &sip_video {
            leg_codecs.extend_from_slice(formats);
        }
        let mut leg = WebRtcLeg::with_codecs(self.clock, now_ns, self.addr, &self.cert, &leg_codecs)
            .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
        let mut browser_offer = leg
            .make_offer(now_ns, LegDirection::SendRecv, sip_video.is_some())
            .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
        if let Some(rate) = sip_rate {
            browser_offer = cap_opus_rate(&browser_offer, rate);
        }
        let video_mid = leg.media().iter().find(|(_, kind)| *kind == MediaKind::Video).map(|(mid, _)| *mid);
        let sip_port = relay.reserve_pair(&mut *sockets)?;
        let video = match (video_mid, sip_video) {
            (Some(mid), Some((index, formats))) => match relay.reserve_pair(&mut *sockets) {
                Ok(port) => {
                    let mut v = VideoPath::new(mid, port, formats, relay.random_ssrc());
                    v.sip_index = Some(index);
                    Some(v)
                }
                Err(e) => {
                    relay.release_pair(sip_port, &mut *sockets);
                    return Err(e);
                }
            },
            _ => None,
        };
        // Until the browser answers, the SIP-side m-line is what the browser was offered.
        let text = sip_sdp_text(self.announce_ip, sip_port, 1, &codecs, &[], Direction::SendRecv, None, None, None);
        let sip_local = match own_audio(&text) {
            Ok(m) => m,
            Err(e) => {
                release(relay, sockets, sip_port, video.as_ref());
                return Err(e);
            }
        };
        let new = NewCall {
            call,
            from_tag,
            browser_offered: false,
            stage: Stage::AwaitBrowserAnswer { sip_offer },
            leg,
            sip_port,
            sip_local,
            sip_remote,
            sip_dir: sip_offer.unwrap_or(Direction::SendRecv),
            browser_dir: Direction::SendRecv,
            sip_offer: offered,
            sdes,
            video,
            browser_send: None,
            browser_audio: Vec::new(),
            transcode_incoming,
        };
        self.insert_call(now_ns, new, flags, relay, sockets)?;
        Ok(OfferToBrowserReply { browser_offer })
    }

    /// The browser's answer to our offer; returns the SDP for the SIP side (its answer, or our
    /// offer when the SIP INVITE had no SDP).
    pub fn browser_answer(
        &mut self,
        now_ns: u64,
        call: &CallId,
        to_tag: &LegTag,
        sdp: &str,
        io: &mut dyn BridgeIo,
    ) -> Result<String, ControlError> {
        let (announce_ip, bind, transcoding) = (self.announce_ip, self.addr.bind, self.transcoding);
        let settings = self.tc_settings;
        let slot = self.slot_of(call)?;
        let Some(c) = self.calls.get_mut(slot).and_then(Option::as_deref_mut) else {
            return Err(err(ErrorCode::Internal, "empty slot"));
        };
        let Stage::AwaitBrowserAnswer { sip_offer } = c.stage else {
            // An answer to our re-offer on a negotiated call, or nothing is waiting for one.
            return self.browser_reanswer(now_ns, slot, sdp, io);
        };
        let parsed = Sdp::parse(sdp).map_err(|e| err(ErrorCode::BadSdp, e.to_string()))?;
        let (_, m) = audio(&parsed).ok_or_else(|| err(ErrorCode::BadSdp, "the browser's answer has no audio"))?;
        // What the browser accepted, in its order, as offered (the SIP side's numbers).
        let accepted: Vec<LegCodec> = m.payload_types().filter_map(|pt| leg_codec(&c.sip_local, pt)).collect();
        if m.desc.port == 0 || !accepted.iter().any(|x| x.codec != Codec::Tele) {
            return Err(err(ErrorCode::BadSdp, "the browser accepted no offered codec"));
        }
        // The video formats the browser accepted (the SIP side's numbers), none if it rejected
        // the m-line: the SIP answer then rejects it too.
        let video_accepted: Vec<LegCodec> = match (c.video.as_deref(), video_of(&parsed)) {
            (Some(v), Some((_, bm))) if bm.desc.port != 0 => {
                bm.payload_types().filter_map(|pt| v.codecs.iter().find(|x| x.pt == pt).copied()).collect()
            }
            _ => Vec::new(),
        };
        c.leg.handle_answer(now_ns, sdp).map_err(|e| err(ErrorCode::BadSdp, e.to_string()))?;
        c.to_tag = Some(to_tag.clone());
        // What the browser sent before its answer arrived (it starts checks, nominates and sends
        // its ClientHello as soon as it has applied its own answer): fed again now that the leg
        // knows the remote credentials and its DTLS role.
        for (src, datagram) in std::mem::take(&mut c.early) {
            if let Err(e) = c.leg.handle_input(now_ns, src, bind, &datagram) {
                tracing::debug!(call = %c.id, error = %e, "early webrtc datagram refused");
            }
            drain(c, now_ns, &mut self.buf, io, &mut Vec::new());
        }
        c.browser_send = accepted.iter().find_map(tc_format);
        c.browser_audio = accepted.iter().filter_map(tc_format).map(|f| f.pt).collect();
        // What the SIP side gets: the browser's codecs (passthrough), or, transcoding an
        // offer of codecs no browser takes, the SIP offer's first such codec and its
        // telephone-events; a delayed offer also lists what we can transcode to.
        let (sip_codecs, extra, tc_sip) = if c.transcode_incoming {
            let om = c
                .sip_offer
                .as_ref()
                .and_then(|(sdp, i)| sdp.media.get(*i))
                .ok_or_else(|| err(ErrorCode::Internal, "the SIP offer is gone"))?;
            let sip_fmt = tc_formats(om)
                .first()
                .copied()
                .ok_or_else(|| err(ErrorCode::Internal, "the SIP offer has no codec to transcode"))?;
            let tele: Vec<LegCodec> =
                om.payload_types().filter_map(|pt| leg_codec(om, pt)).filter(|x| x.codec == Codec::Tele).collect();
            (tele, vec![sip_fmt], Some((sip_fmt, ptime_of(om))))
        } else if sip_offer.is_none() {
            let formats: Vec<Format> = accepted.iter().filter_map(tc_format).collect();
            let taken: Vec<u8> = accepted.iter().map(|x| x.pt).collect();
            (accepted.clone(), transcode_extras(&formats, &taken, transcoding), None)
        } else {
            (accepted.clone(), Vec::new(), None)
        };
        let direction = sip_offer.map_or(Direction::SendRecv, answer_direction);
        let offer = c.sip_offer.as_ref().map(|(sdp, i)| (sdp, *i));
        c.sip_sdp_version += 1;
        let text = sip_sdp_text(
            announce_ip,
            c.sip_port,
            c.sip_sdp_version,
            &sip_codecs,
            &extra,
            direction,
            offer,
            c.sip_crypto.as_ref(),
            c.video.as_ref().map(|v| (v.sip_port, video_accepted.as_slice())),
        );
        if let (Some(v), Some((sip_sdp, _))) = (c.video.as_deref_mut(), c.sip_offer.as_ref()) {
            let identity = video_accepted.iter().map(|x| (x.pt, x.pt)).collect();
            if let Some(index) = v.sip_index {
                v.activate(identity, sip_sdp, index);
            }
            v.codecs = video_accepted;
        }
        c.browser_dir = m.direction();
        c.sip_local = own_audio(&text)?;
        c.browser_tele = tele_of(&c.sip_local);
        if let (Some((sip_fmt, sip_ptime)), Some(browser)) = (tc_sip, c.browser_send) {
            // The browser's telephone-events (its numbers), the one on its codec's clock first.
            let clock = browser.codec.rtp_clock();
            let mut tele: Vec<Tele> =
                accepted.iter().filter(|x| x.codec == Codec::Tele).map(|x| (x.pt, x.clock_rate)).collect();
            tele.sort_by_key(|t| t.1 != clock);
            c.browser_tele = tele;
            c.sip_tele = tele_of(&c.sip_local);
            c.to_sip = PtMap::identity(&c.sip_local);
            c.to_browser = PtMap::identity(&c.sip_local);
            c.tc = Some(new_transcoder(sip_fmt, browser, c.rewriter.out_ssrc, sip_ptime, settings)?);
            c.tc_full = true;
            c.stage = Stage::Up;
        } else if sip_offer.is_some() {
            // Both sides use the SIP offer's numbers.
            c.to_sip = PtMap::identity(&c.sip_local);
            c.to_browser = PtMap::identity(&c.sip_local);
            c.sip_tele = c.browser_tele.clone();
            c.stage = Stage::Up;
        } else {
            c.stage = Stage::AwaitSipAnswer;
        }
        drain(c, now_ns, &mut self.buf, io, &mut Vec::new());
        self.earliest = self.earliest.min(c.next_deadline());
        Ok(text)
    }

    /// Completes the call with the SIP side's answer to our SIP offer; the reply SDP is empty
    /// (the browser has its SDP already).
    pub fn answer(&mut self, call: &CallId, to_tag: &LegTag, sip_sdp: &str) -> Result<String, ControlError> {
        let (transcoding, settings) = (self.transcoding, self.tc_settings);
        let c = self.call_mut(call)?;
        if c.stage != Stage::AwaitSipAnswer {
            return Err(err(ErrorCode::BadSdp, "no offer to the SIP side is waiting for an answer"));
        }
        let sdp = Sdp::parse(sip_sdp).map_err(|e| err(ErrorCode::BadSdp, e.to_string()))?;
        let (index, m) = audio(&sdp).ok_or_else(|| err(ErrorCode::BadSdp, "answer has no audio m-line"))?;
        let to_sip = PtMap::between(&c.sip_local, m);
        let browser_tele = tele_of(&c.sip_local);
        // On an incoming transcoded call `sip_local` has the SIP side's numbers and the
        // browser's telephone-events are kept apart.
        let browser_tele = if c.transcode_incoming { c.browser_tele.clone() } else { browser_tele };
        let shares_audio =
            c.sip_local.payload_types().any(|pt| to_sip.get(pt).is_some() && !browser_tele.iter().any(|t| t.0 == pt));
        // A codec of the browser's own the SIP side took (not one only we transcode).
        let shared = !c.transcode_incoming && c.browser_audio.iter().any(|pt| to_sip.get(*pt).is_some());
        // Passthrough when the SIP side takes the codec the browser sends. Else transcode that
        // codec to the answer's first we can transcode: only toward SIP when another codec of
        // the browser's is shared (the rest stays passthrough), both ways when none is.
        let takes_browser_codec = match c.browser_send {
            Some(b) if !c.transcode_incoming => to_sip.get(b.pt).is_some(),
            _ => shared,
        };
        let sip_first = tc_formats(m).first().copied();
        let plan = match (takes_browser_codec, c.browser_send, sip_first) {
            (true, _, _) => None,
            (false, Some(browser), Some(sip)) if transcoding && browser.codec != sip.codec => {
                Some((sip, browser, !shared))
            }
            _ if shares_audio => None, // transcoding off: passthrough on what is shared
            _ if !transcoding => return Err(disabled()),
            _ => {
                return Err(err(ErrorCode::BadSdp, "the SIP answer has no codec we can bridge or transcode"));
            }
        };
        match plan {
            None => {
                c.tc = None;
                c.tc_full = false;
            }
            Some((sip, browser, full)) => {
                match c.tc.as_deref_mut() {
                    Some(t) if t.formats().0.codec == sip.codec && t.formats().1 == browser => t.set_sip_pt(sip.pt),
                    _ => c.tc = Some(new_transcoder(sip, browser, c.rewriter.out_ssrc, ptime_of(m), settings)?),
                }
                c.tc_full = full;
            }
        }
        if c.transcode_incoming {
            // Keep the SIP side's numbers and the browser's telephone-events as they were.
            c.to_sip = PtMap::identity(m);
            c.to_browser = PtMap::identity(m);
            c.sip_tele = tele_of(m);
            c.sip_dir = m.direction();
            learn_sip_address(c, &sdp, index);
            c.stage = Stage::Up;
            return Ok(String::new());
        }
        c.to_browser = PtMap::between(m, &c.sip_local);
        c.to_sip = to_sip;
        c.browser_tele = browser_tele;
        c.sip_tele = tele_of(m);
        c.sip_dir = m.direction();
        learn_sip_address(c, &sdp, index);
        if c.browser_offered {
            c.to_tag = Some(to_tag.clone());
        }
        c.stage = Stage::Up;
        // Video: the formats of our offer the SIP side answered with (H.264 by profile);
        // none, or a rejected m-line, leaves the call audio-only (the browser's video is
        // received and counted, not forwarded).
        if let Some(v) = c.video.as_deref_mut() {
            match video_of(&sdp) {
                Some((vi, vm)) if vm.desc.port != 0 => {
                    let theirs = video_codecs(vm);
                    let map = map_formats(&v.codecs, &theirs);
                    v.sip_first = first_shared(&theirs, &v.codecs);
                    v.activate(map, &sdp, vi);
                }
                _ => v.active = false,
            }
        }
        let video_on = c.video.as_ref().is_some_and(|v| v.active);
        // Our narrowing re-offer to the browser (Opus cap, video format) goes out at the next
        // timer turn.
        let reoffer = bridge_reoffer::want_reoffer(c);
        if video_on || reoffer {
            self.earliest = 0; // schedule the periodic keyframe timer, the re-offer
        }
        Ok(String::new())
    }

    /// Registers a new call's leg and SIP port; releases the port on failure.
    fn insert_call(
        &mut self,
        now_ns: u64,
        new: NewCall<'_>,
        flags: &OfferFlags,
        relay: &mut Relay,
        sockets: &mut dyn BridgeSockets,
    ) -> Result<(), ControlError> {
        let Some(&(mid, _)) = new.leg.media().iter().find(|(_, kind)| *kind == MediaKind::Audio) else {
            release(relay, sockets, new.sip_port, new.video.as_ref());
            return Err(err(ErrorCode::BadSdp, "no audio m-line"));
        };
        let slot = self.free.pop().unwrap_or(self.calls.len() as u32);
        let leg_id = LegId(slot);
        if let Err(e) = self.demux.insert(leg_id, new.leg.local_ufrag()) {
            release(relay, sockets, new.sip_port, new.video.as_ref());
            self.free.push(slot);
            return Err(err(ErrorCode::Internal, e.to_string()));
        }
        let identity = PtMap::identity(&new.sip_local);
        // SDES: our own fresh key, same suite and tag as the line we accept.
        let ours_crypto = new.sdes.as_ref().map(|t| CryptoAttr { tag: t.tag, suite: t.suite, key: random_key() });
        let sdes_session = match (&ours_crypto, &new.sdes) {
            (Some(o), Some(t)) => Some(SrtpSession::new(o.suite, &o.key, &t.key)),
            _ => None,
        };
        let timeout_secs = flags.media_timeout_secs.unwrap_or(relay.config().media_timeout_secs);
        let mut c = BridgeCall {
            id: new.call.clone(),
            from_tag: new.from_tag.clone(),
            to_tag: None,
            browser_offered: new.browser_offered,
            stage: new.stage,
            leg: new.leg,
            leg_id,
            mid,
            sip_port: new.sip_port,
            sip_remote: new.sip_remote,
            sip_latched: false,
            to_sip: identity.clone(),
            to_browser: identity,
            browser_tele: Vec::new(),
            sip_tele: Vec::new(),
            sip_local: new.sip_local,
            sip_offer: new.sip_offer,
            browser_dir: new.browser_dir,
            sip_dir: new.sip_dir,
            sip_sdp_version: 1,
            sip_sdp_addr: new.sip_remote,
            last_browser_offer: None,
            rewriter: Rewriter::new(relay.random_ssrc()),
            to_browser_rewriter: Rewriter::new(0),
            dtmf_from_browser: DtmfDetector::default(),
            dtmf_from_sip: DtmfDetector::default(),
            dtmf_to_browser: DtmfOut::default(),
            dtmf_to_sip: DtmfOut::default(),
            deadline: u64::MAX,
            created_ns: now_ns,
            last_media_ns: now_ns,
            timeout_ns: (timeout_secs > 0).then_some(u64::from(timeout_secs) * 1_000_000_000),
            timed_out: false,
            failed: None,
            failure_reported: false,
            ice_lost_at: None,
            browser: Default::default(),
            sip: Default::default(),
            browser_rx: Default::default(),
            sip_rx: Default::default(),
            sip_report: None,
            delivered: Default::default(),
            early: Vec::new(),
            srtp: sdes_session,
            sip_crypto: ours_crypto,
            sip_their_crypto: new.sdes.clone(),
            video: new.video.map(Box::new),
            browser_send: new.browser_send,
            browser_audio: new.browser_audio,
            transcode_incoming: new.transcode_incoming,
            tc: None,
            tc_full: false,
            browser_reoffer: flags.browser_reoffer,
            cap: Default::default(),
        };
        drain(&mut c, now_ns, &mut self.buf, &mut *sockets, &mut Vec::new());
        self.earliest = self.earliest.min(c.deadline);
        if slot as usize == self.calls.len() {
            self.calls.push(Some(Box::new(c)));
        } else {
            self.calls[slot as usize] = Some(Box::new(c));
        }
        self.by_id.insert(new.call.clone(), slot);
        self.by_sip_port.insert(new.sip_port, slot);
        if let Some(v) = self.calls.get(slot as usize).and_then(Option::as_deref).and_then(|c| c.video.as_ref()) {
            let port = v.sip_port;
            self.by_sip_port.insert(port, slot);
            self.by_sip_port.insert(port.wrapping_add(1), slot);
        }
        tracing::debug!(call = %new.call, sip_port = new.sip_port, "webrtc call created");
        Ok(())
    }
}
