//! Re-negotiation of an established bridged call, from either side: the browser's new offer
//! (hold, resume; answered by the leg, mirrored to the SIP side as our re-offer) and the SIP
//! side's re-INVITE (answered by the media plane alone with what the call already has). Both
//! refuse a call still being negotiated; neither changes the call's codecs or ports. Our own
//! re-offers to the browser (the Opus cap, the video narrowing) are in `bridge_reoffer`.

use str0m::format::Codec;
use wavegate_shared::ids::CallId;
use wavegate_shared::protocol::{ControlError, ErrorCode, WebRtcOfferReply};

use super::bridge::{Bridge, BridgeIo, OfferDigest, Stage, drain, err};
use super::bridge_reoffer;
use super::bridge_sdp::{
    answer_direction, audio, leg_codec, offered_direction, own_audio, sip_sdp_text, tc_formats, tc_only, tele_of,
};
use super::bridge_setup::{learn_sip_address, sdes_offer};
use super::bridge_video::{map_formats, video_codecs, video_of};
use super::leg::LegCodec;
use super::srtp::SrtpSession;
use crate::call::PtMap;
use crate::sdp::Sdp;
use crate::transcode::call::Format;

impl Bridge {
    /// The browser's new offer on an existing call (hold: sendonly/inactive; resume: sendrecv).
    /// The same offer again is a retry and gets the same reply. Otherwise the leg answers, the
    /// browser's direction gates the media at once, and the reply carries a re-offer for the SIP
    /// side (same port and codecs, the browser's direction), whose answer comes in `Answer`.
    pub(super) fn browser_reoffer(
        &mut self,
        now_ns: u64,
        call: &CallId,
        browser_sdp: &str,
        io: &mut dyn BridgeIo,
    ) -> Result<WebRtcOfferReply, ControlError> {
        let announce_ip = self.announce_ip;
        let slot = self.slot_of(call)?;
        let Some(c) = self.calls.get_mut(slot).and_then(Option::as_deref_mut) else {
            return Err(err(ErrorCode::Internal, "empty slot"));
        };
        if let Some((digest, reply)) = &c.last_browser_offer
            && *digest == OfferDigest::of(browser_sdp)
        {
            return Ok(reply.clone());
        }
        if c.stage != Stage::Up {
            return Err(err(ErrorCode::BadSdp, format!("call {call} is still being negotiated")));
        }
        let direction = offered_direction(browser_sdp)?;
        // Glare with our narrowing re-offer: the browser's offer wins, ours is withdrawn; what
        // the browser accepted of ours before is undone by our answer to this one.
        bridge_reoffer::browser_offered(c);
        let browser_answer =
            c.leg.handle_offer(now_ns, browser_sdp).map_err(|e| err(ErrorCode::BadSdp, e.to_string()))?;
        c.browser_dir = direction;
        let codecs: Vec<LegCodec> = c.sip_local.payload_types().filter_map(|pt| leg_codec(&c.sip_local, pt)).collect();
        let extra = tc_only(&c.sip_local);
        c.sip_sdp_version += 1;
        let video = c.video.as_ref().map(|v| (v.sip_port, v.codecs.clone()));
        let sip_offer = sip_sdp_text(
            announce_ip,
            c.sip_port,
            c.sip_sdp_version,
            &codecs,
            &extra,
            direction,
            None,
            c.sip_crypto.as_ref(),
            video.as_ref().map(|(port, formats)| (*port, formats.as_slice())),
        );
        c.sip_local = own_audio(&sip_offer)?;
        c.stage = Stage::AwaitSipAnswer;
        drain(c, now_ns, &mut self.buf, io, &mut Vec::new());
        self.earliest = self.earliest.min(c.deadline);
        let reply = WebRtcOfferReply { browser_answer, sip_offer };
        c.last_browser_offer = Some((OfferDigest::of(browser_sdp), reply.clone()));
        Ok(reply)
    }

    /// The SIP side's new offer on an existing call (a re-INVITE: hold, resume, a new media
    /// address). Answered by the media plane alone, with the codecs the call already has (the
    /// SIP side's numbers) and the mirrored direction; the browser is not re-negotiated, the
    /// media plane stops forwarding toward a side that does not receive (ICE consent and DTLS
    /// go on untouched).
    pub fn sip_reoffer(&mut self, call: &CallId, sip_sdp: &str) -> Result<String, ControlError> {
        let announce_ip = self.announce_ip;
        let c = self.call_mut(call)?;
        if c.stage != Stage::Up {
            return Err(err(ErrorCode::BadSdp, format!("call {call} is still being negotiated")));
        }
        let sdp = Sdp::parse(sip_sdp).map_err(|e| err(ErrorCode::BadSdp, e.to_string()))?;
        let (index, m) = audio(&sdp).ok_or_else(|| err(ErrorCode::BadSdp, "the re-offer has no audio m-line"))?;
        // The profile cannot change mid-call; a new SDES key from the peer re-keys its side.
        match (c.srtp.is_some(), m.desc.proto.as_str()) {
            (false, "RTP/AVP") => {}
            (true, "RTP/SAVP") => {
                let theirs = sdes_offer(m).ok_or_else(|| err(ErrorCode::BadSdp, "no usable a=crypto"))?;
                if c.sip_their_crypto.as_ref() != Some(&theirs) {
                    let ours = c.sip_crypto.as_ref().ok_or_else(|| err(ErrorCode::Internal, "no SDES key"))?;
                    c.srtp = Some(SrtpSession::new(ours.suite, &ours.key, &theirs.key));
                    c.sip_their_crypto = Some(theirs);
                }
            }
            (_, proto) => {
                return Err(err(ErrorCode::BadSdp, format!("{proto} does not match the call's profile")));
            }
        }
        // What the call has, in the re-offer's numbers.
        let ours: Vec<LegCodec> = c.sip_local.payload_types().filter_map(|pt| leg_codec(&c.sip_local, pt)).collect();
        let accepted: Vec<LegCodec> = m
            .payload_types()
            .filter_map(|pt| leg_codec(m, pt))
            .filter(|x| ours.iter().any(|o| o.codec == x.codec && o.clock_rate == x.clock_rate))
            .collect();
        // Codecs only the transcoder takes, when the call has them.
        let ours_extra = if c.tc.is_some() { tc_only(&c.sip_local) } else { Vec::new() };
        let accepted_extra: Vec<Format> =
            tc_only(m).into_iter().filter(|x| ours_extra.iter().any(|o| o.codec == x.codec)).collect();
        if !accepted.iter().any(|x| x.codec != Codec::Tele) && accepted_extra.is_empty() {
            return Err(err(ErrorCode::BadSdp, "the re-offer keeps no codec the browser negotiated"));
        }
        // Video: the re-offer's formats that match the call's (its numbers); none, or no video
        // m-line, stops the video.
        let video: Option<(usize, Vec<(u8, u8)>, Vec<LegCodec>)> = match (c.video.as_deref(), video_of(&sdp)) {
            (Some(v), Some((vi, vm))) if vm.desc.port != 0 && c.srtp.is_none() => {
                let theirs = video_codecs(vm);
                let map = map_formats(&v.codecs, &theirs);
                let answered = theirs.iter().filter(|t| map.iter().any(|(_, s)| *s == t.pt)).copied().collect();
                Some((vi, map, answered))
            }
            _ => None,
        };
        c.sip_sdp_version += 1;
        let answer = sip_sdp_text(
            announce_ip,
            c.sip_port,
            c.sip_sdp_version,
            &accepted,
            &accepted_extra,
            answer_direction(m.direction()),
            Some((&sdp, index)),
            c.sip_crypto.as_ref(),
            match (c.video.as_deref(), &video) {
                (Some(v), Some((_, _, answered))) => Some((v.sip_port, answered.as_slice())),
                _ => None,
            },
        );
        if let Some(v) = c.video.as_deref_mut() {
            match video {
                Some((vi, map, _)) => v.activate(map, &sdp, vi),
                None => v.active = false,
            }
        }
        let answered = own_audio(&answer)?;
        c.to_sip = PtMap::between(&c.sip_local, &answered);
        c.to_browser = PtMap::between(&answered, &c.sip_local);
        c.sip_tele = tele_of(&answered);
        if let Some(t) = c.tc.as_deref_mut() {
            // The SIP side may renumber its codec in a re-offer; the transcoder follows.
            let codec = t.formats().0.codec;
            if let Some(f) = tc_formats(&answered).into_iter().find(|f| f.codec == codec) {
                t.set_sip_pt(f.pt);
            }
        }
        c.sip_dir = m.direction();
        learn_sip_address(c, &sdp, index);
        Ok(answer)
    }
}
