//! Video of a bridged call: VP8 and H.264 (packetization-mode=1, same profile) passed through
//! between the browser's video m-line and a second plain RTP port pair facing the SIP side.
//!
//! Codec choice (the one place that decides which video formats are bridged, see
//! [`video_codec`]): VP8/90000, and H264/90000 with `packetization-mode=1`; two H.264 formats
//! match only with the same profile (RFC 6184 §8.2.2, [`h264_profile`]; the level may differ,
//! as str0m matches the browser side). Everything else (VP9, AV1, RTX, RED, ULPFEC, H.264 mode
//! 0) is neither offered nor answered, so no packet needs more than a header rewrite.
//!
//! Paths: browser video RTP (after SRTP) leaves the call's video port with one SSRC and
//! continuous numbers ([`Rewriter`]); SIP video RTP is latched to its sender, mapped and given
//! to the leg. Keyframe requests are translated: the browser's PLI/FIR (str0m's
//! `KeyframeRequest`) becomes a PLI or FIR toward the SIP side's RTCP address about the SSRC it
//! sends; a PLI/FIR from the SIP side becomes str0m's `request_keyframe` toward the browser. A
//! keyframe is also asked of the browser when the SIP side starts receiving (it would
//! otherwise start mid-stream), and periodically (the bridge's `keyframe_interval_ns`) for SIP
//! phones that never sent a PLI/FIR on the call (no RTCP feedback: a lost packet would freeze
//! their picture until the browser's next keyframe, which Chrome sends only when asked).
//!
//! Invariants: video follows the audio m-line's directions (hold/resume); no allocation on the
//! packet path (the payload-type maps are a few pairs built at negotiation); SDES-SRTP calls get
//! no video (the SIP-side m-line is rejected).

use std::net::SocketAddr;

use str0m::format::Codec;
use str0m::media::Mid;
use wavegate_shared::protocol::{MediaEvent, VideoQuality};

use super::bridge::{BridgeCall, BridgeIo, RTP_BUF};
use super::bridge_media::drain;
use super::leg::{LegCodec, LegRtp, OutRtp};
use super::rtcp_fb::{keyframe_requests, write_fir, write_pli};
use crate::call::Rewriter;
use crate::rtp::{PacketClass, RtpPacket, classify, write_rtp};
use crate::sdp::{Attribute, Media, Sdp};

/// RTP clock of every bridged video format.
pub(super) const VIDEO_CLOCK: u32 = 90_000;

/// Payload type on one side -> payload type on the other (a handful of formats).
pub(super) type VideoMap = Vec<(u8, u8)>;

fn map_get(map: &[(u8, u8)], pt: u8) -> Option<u8> {
    map.iter().find(|(from, _)| *from == pt).map(|(_, to)| *to)
}

/// One call's video.
#[derive(Debug)]
pub(super) struct VideoPath {
    /// The browser's video m-line.
    pub(super) mid: Mid,
    /// Our SIP-side video RTP port (RTCP on the next one, or multiplexed).
    pub(super) sip_port: u16,
    /// The formats the SIP-side m-line carries, in the browser's numbers (our offer or answer).
    pub(super) codecs: Vec<LegCodec>,
    /// The SIP side's video m-line index in its offer (our answer mirrors its m-lines).
    pub(super) sip_index: Option<usize>,
    /// The SIP side accepted video with a format both share: packets flow.
    pub(super) active: bool,
    /// The browser's payload type of the first format of the SIP answer the browser has (what
    /// a narrowing re-offer asks the browser to send, `bridge_reoffer`).
    pub(super) sip_first: Option<u8>,
    pub(super) sip_remote: Option<SocketAddr>,
    pub(super) sip_latched: bool,
    pub(super) sip_sdp_addr: Option<SocketAddr>,
    /// Where RTCP for the SIP side goes: from its SDP (a=rtcp, RTP + 1 or rtcp-mux), then
    /// latched from its first RTCP packet.
    pub(super) sip_rtcp: Option<SocketAddr>,
    pub(super) sip_rtcp_latched: bool,
    /// The SIP side multiplexes RTCP on its RTP port (we then send ours from the RTP port).
    pub(super) sip_rtcp_mux: bool,
    /// Which keyframe requests the SIP side declared (`a=rtcp-fb ... nack pli`, `ccm fir`).
    pub(super) sip_takes_pli: bool,
    pub(super) sip_takes_fir: bool,
    pub(super) to_sip: VideoMap,
    pub(super) to_browser: VideoMap,
    /// Browser -> SIP: one SSRC, continuous numbers.
    pub(super) rewriter: Rewriter,
    /// SIP -> browser: continuous numbers across SIP SSRC changes; `in_ssrc` is the SSRC our
    /// PLI/FIR toward the SIP side is about.
    pub(super) to_browser_rewriter: Rewriter,
    /// The SIP side sent a PLI or FIR on this call: it has feedback, no periodic requests.
    pub(super) sip_feedback: bool,
    /// Ask the browser for a keyframe with the next packet forwarded to the SIP side.
    pub(super) want_keyframe: bool,
    /// Next periodic keyframe request (`0`: schedule at the next timer run; `u64::MAX`: none).
    pub(super) next_keyframe_ns: u64,
    pub(super) fir_seq: u8,
    pub(super) q: VideoQuality,
}

impl VideoPath {
    pub(super) fn new(mid: Mid, sip_port: u16, codecs: Vec<LegCodec>, out_ssrc: u32) -> Self {
        let identity: VideoMap = codecs.iter().map(|c| (c.pt, c.pt)).collect();
        Self {
            mid,
            sip_port,
            codecs,
            sip_index: None,
            active: false,
            sip_first: None,
            sip_remote: None,
            sip_latched: false,
            sip_sdp_addr: None,
            sip_rtcp: None,
            sip_rtcp_latched: false,
            sip_rtcp_mux: false,
            sip_takes_pli: true,
            sip_takes_fir: false,
            to_sip: identity.clone(),
            to_browser: identity,
            rewriter: Rewriter::new(out_ssrc),
            to_browser_rewriter: Rewriter::new(0),
            sip_feedback: false,
            want_keyframe: false,
            next_keyframe_ns: u64::MAX,
            fir_seq: 0,
            q: VideoQuality::default(),
        }
    }

    /// The SIP side's video m-line `index` of `sdp` was agreed on with `to_sip` (browser pt ->
    /// SIP pt): packets flow, the SIP side gets a keyframe first, periodic requests start.
    pub(super) fn activate(&mut self, to_sip: VideoMap, sdp: &Sdp, index: usize) {
        self.to_browser = to_sip.iter().map(|(b, s)| (*s, *b)).collect();
        self.to_sip = to_sip;
        self.active = !self.to_sip.is_empty();
        self.want_keyframe = self.active;
        self.next_keyframe_ns = if self.active { 0 } else { u64::MAX };
        self.learn(sdp, index);
    }

    /// Takes the SIP side's media and RTCP addresses and its feedback from its SDP; a new RTP
    /// address replaces even a latched one (as for audio).
    fn learn(&mut self, sdp: &Sdp, index: usize) {
        let Some(m) = sdp.media.get(index) else {
            return;
        };
        let fb: Vec<&str> = m
            .attributes()
            .filter_map(|a| match a {
                Attribute::Other { name, value: Some(v) } if name == "rtcp-fb" => Some(v.as_str()),
                _ => None,
            })
            .collect();
        let has = |what: &str| fb.iter().any(|v| v.split_once(' ').is_some_and(|(_, f)| f.trim() == what));
        let (pli, fir) = (has("nack pli"), has("ccm fir"));
        // A peer that declares nothing still gets PLIs (the common request; RFC 4585 receivers
        // ignore feedback they do not know).
        self.sip_takes_pli = pli || !fir;
        self.sip_takes_fir = fir;
        self.sip_rtcp_mux = m.rtcp_mux();
        let Some(ip) = sdp.media_address(index).filter(|ip| !ip.is_unspecified()) else {
            return;
        };
        if m.desc.port == 0 {
            return;
        }
        let addr = SocketAddr::new(ip, m.desc.port);
        if self.sip_sdp_addr != Some(addr) {
            self.sip_sdp_addr = Some(addr);
            self.sip_remote = Some(addr);
            self.sip_latched = false;
            self.sip_rtcp_latched = false;
        } else if !self.sip_latched {
            self.sip_remote = Some(addr);
        }
        if !self.sip_rtcp_latched {
            let (port, at) = m.rtcp().unwrap_or((m.desc.port.wrapping_add(1), None));
            self.sip_rtcp = Some(if self.sip_rtcp_mux { addr } else { SocketAddr::new(at.unwrap_or(ip), port) });
        }
    }
}

/// Profiles of RFC 6184 table 5 (profile_idc + profile-iop patterns) that WebRTC uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum H264Profile {
    ConstrainedBaseline,
    Baseline,
    Main,
    Extended,
    High,
    ConstrainedHigh,
}

/// The profile a `profile-level-id` names (RFC 6184 §8.1 table 5); `None` for profiles we do
/// not bridge.
pub(super) fn h264_profile(profile_level_id: u32) -> Option<H264Profile> {
    use H264Profile::*;
    let idc = (profile_level_id >> 16) as u8;
    let iop = (profile_level_id >> 8) as u8;
    let is = |mask: u8, value: u8| iop & mask == value;
    match idc {
        0x42 if is(0x4f, 0x40) => Some(ConstrainedBaseline),
        0x42 if is(0x4f, 0x00) => Some(Baseline),
        0x4d if is(0x8f, 0x80) => Some(ConstrainedBaseline),
        0x4d if is(0xaf, 0x00) => Some(Main),
        0x58 if is(0xcf, 0xc0) => Some(ConstrainedBaseline),
        0x58 if is(0xcf, 0x80) => Some(Baseline),
        0x58 if is(0xcf, 0x00) => Some(Extended),
        0x64 if iop == 0x00 => Some(High),
        0x64 if iop == 0x0c => Some(ConstrainedHigh),
        _ => None,
    }
}

/// The fmtp parameters of payload type `pt` as `(key, value)` pairs.
fn fmtp<'a>(m: &'a Media, pt: u8) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    m.attributes()
        .filter_map(move |a| match a {
            Attribute::Fmtp { pt: p, params } if *p == pt => Some(params.as_str()),
            _ => None,
        })
        .flat_map(|params| params.split(';'))
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.trim(), v.trim())))
}

/// The bridged video format a payload type of `m` names, if any: VP8/90000, or H264/90000
/// with packetization-mode=1 and a known profile (`profile-level-id` absent: 42001f, as
/// libwebrtc assumes).
pub fn video_codec(m: &Media, pt: u8) -> Option<LegCodec> {
    let r = m.rtpmap(pt)?;
    if r.clock_rate != VIDEO_CLOCK {
        return None;
    }
    if r.encoding.eq_ignore_ascii_case("VP8") {
        return Some(LegCodec::vp8(pt));
    }
    if !r.encoding.eq_ignore_ascii_case("H264") {
        return None;
    }
    let mut mode = 0;
    let mut plid = 0x42_00_1f;
    for (k, v) in fmtp(m, pt) {
        if k.eq_ignore_ascii_case("packetization-mode") {
            mode = v.parse().unwrap_or(0);
        } else if k.eq_ignore_ascii_case("profile-level-id") {
            plid = u32::from_str_radix(v, 16).ok()?;
        }
    }
    (mode == 1 && h264_profile(plid).is_some()).then_some(LegCodec::h264(pt, plid))
}

/// The bridged video formats of `m`, in its order.
pub fn video_codecs(m: &Media) -> Vec<LegCodec> {
    m.payload_types().filter_map(|pt| video_codec(m, pt)).collect()
}

/// Two formats carry the same video: same codec, and for H.264 the same profile.
pub(super) fn same_format(a: &LegCodec, b: &LegCodec) -> bool {
    a.codec == b.codec
        && (a.codec != Codec::H264
            || a.profile_level_id.and_then(h264_profile) == b.profile_level_id.and_then(h264_profile))
}

/// `ours` (browser numbers) -> the numbers of the same formats among `theirs`.
pub(super) fn map_formats(ours: &[LegCodec], theirs: &[LegCodec]) -> VideoMap {
    ours.iter().filter_map(|o| theirs.iter().find(|t| same_format(o, t)).map(|t| (o.pt, t.pt))).collect()
}

/// The browser's payload type (among `ours`) of the first of `theirs` (the SIP side's formats,
/// its order) the browser has.
pub(super) fn first_shared(theirs: &[LegCodec], ours: &[LegCodec]) -> Option<u8> {
    theirs.iter().find_map(|t| ours.iter().find(|o| same_format(o, t)).map(|o| o.pt))
}

/// The first video m-line of `sdp` (and its index) that is not rejected.
pub(super) fn video_of(sdp: &Sdp) -> Option<(usize, &Media)> {
    sdp.media.iter().enumerate().find(|(_, m)| m.desc.kind == "video")
}

/// Our SIP-side video m-line: `codecs` on `port`, PLI and FIR declared, `direction`.
pub(super) fn video_mline(s: &mut String, port: u16, codecs: &[LegCodec], direction: &str) {
    let pts: Vec<String> = codecs.iter().map(|c| c.pt.to_string()).collect();
    s.push_str(&format!("m=video {port} RTP/AVP {}\r\n", pts.join(" ")));
    for c in codecs {
        match c.codec {
            Codec::H264 => {
                s.push_str(&format!("a=rtpmap:{} H264/90000\r\n", c.pt));
                let plid = c.profile_level_id.unwrap_or(0x42_e0_1f);
                s.push_str(&format!("a=fmtp:{} profile-level-id={plid:06x};packetization-mode=1\r\n", c.pt));
            }
            _ => s.push_str(&format!("a=rtpmap:{} VP8/90000\r\n", c.pt)),
        }
        s.push_str(&format!("a=rtcp-fb:{} nack pli\r\na=rtcp-fb:{} ccm fir\r\n", c.pt, c.pt));
    }
    s.push_str(&format!("a={direction}\r\n"));
}

/// Browser video RTP (after SRTP) toward the SIP side. Counted always, forwarded while the SIP
/// side takes video and neither side holds.
pub(super) fn from_browser(
    c: &mut BridgeCall,
    now_ns: u64,
    r: &LegRtp,
    buf: &mut [u8; RTP_BUF],
    io: &mut dyn BridgeIo,
) {
    let forward = c.browser_to_sip();
    let Some(v) = c.video.as_deref_mut() else {
        return;
    };
    v.q.packets_from_browser += 1;
    c.last_media_ns = now_ns;
    c.timed_out = false;
    if !forward || !v.active {
        return;
    }
    let (Some(dst), Some(pt)) = (v.sip_remote, map_get(&v.to_sip, r.pt)) else {
        v.q.dropped += 1;
        return;
    };
    let Some(n) = write_rtp(&mut buf[..], r.pt, r.seq, r.timestamp, r.ssrc, &r.payload) else {
        v.q.dropped += 1;
        return;
    };
    if r.marker {
        buf[1] |= 0x80;
    }
    let Ok(mut p) = RtpPacket::parse(&mut buf[..n]) else {
        v.q.dropped += 1;
        return;
    };
    v.rewriter.rewrite(now_ns, &mut p, pt, VIDEO_CLOCK);
    io.send_rtp(v.sip_port, dst, &buf[..n]);
    v.q.packets_to_sip += 1;
    if v.want_keyframe && c.leg.request_keyframe(v.mid, false) {
        v.want_keyframe = false;
        v.q.keyframe_requests_to_browser += 1;
    }
}

/// The browser asked for a keyframe of what we send it: the same request toward the SIP side
/// (FIR or PLI, whichever it declared), about the SSRC it sends.
pub(super) fn keyframe_to_sip(c: &mut BridgeCall, mid: Mid, fir: bool, buf: &mut [u8; RTP_BUF], io: &mut dyn BridgeIo) {
    let Some(v) = c.video.as_deref_mut() else {
        return;
    };
    if v.mid != mid || !v.active {
        return;
    }
    v.q.keyframe_requests_from_browser += 1;
    let (Some(media), Some(dst)) = (v.to_browser_rewriter.in_ssrc, v.sip_rtcp) else {
        return; // the SIP side sends no video yet: there is no stream to ask about
    };
    let fir = (fir && v.sip_takes_fir) || !v.sip_takes_pli;
    let n = if fir {
        v.fir_seq = v.fir_seq.wrapping_add(1);
        write_fir(&mut buf[..], v.rewriter.out_ssrc, media, v.fir_seq)
    } else {
        write_pli(&mut buf[..], v.rewriter.out_ssrc, media)
    };
    let Some(n) = n else { return };
    let from = if v.sip_rtcp_mux { v.sip_port } else { v.sip_port.wrapping_add(1) };
    io.send_rtp(from, dst, &buf[..n]);
    v.q.keyframe_requests_to_sip += 1;
}

/// A datagram on the call's video port pair (`rtcp_port`: it came to the RTCP port).
pub(super) fn from_sip(
    c: &mut BridgeCall,
    now_ns: u64,
    src: SocketAddr,
    datagram: &mut [u8],
    buf: &mut [u8; RTP_BUF],
    io: &mut dyn BridgeIo,
    events: &mut Vec<MediaEvent>,
) {
    let forward = c.sip_to_browser();
    let Some(v) = c.video.as_deref_mut() else {
        return;
    };
    if classify(datagram) == PacketClass::Rtcp {
        // The SIP side's own address (or, before any packet, its SDP's): others are strangers.
        if v.sip_remote.is_some_and(|r| r.ip() != src.ip()) {
            v.q.dropped += 1;
            return;
        }
        if !v.sip_rtcp_latched {
            v.sip_rtcp = Some(src);
            v.sip_rtcp_latched = true;
        }
        let mut want = None;
        keyframe_requests(datagram, |k| want = Some(want.unwrap_or(false) || k.fir));
        let Some(fir) = want else { return };
        v.sip_feedback = true;
        v.next_keyframe_ns = u64::MAX;
        v.q.keyframe_requests_from_sip += 1;
        if forward && c.leg.request_keyframe(v.mid, fir) {
            v.q.keyframe_requests_to_browser += 1;
            drain(c, now_ns, buf, io, events);
        }
        return;
    }
    if v.sip_latched && v.sip_remote != Some(src) {
        v.q.dropped += 1;
        return;
    }
    let Ok(mut p) = RtpPacket::parse(datagram) else {
        v.q.dropped += 1;
        return;
    };
    let Some(pt) = map_get(&v.to_browser, p.payload_type()).filter(|_| v.active) else {
        v.q.dropped += 1;
        return;
    };
    if !v.sip_latched {
        v.sip_remote = Some(src);
        v.sip_latched = true;
    }
    v.q.packets_from_sip += 1;
    c.last_media_ns = now_ns;
    c.timed_out = false;
    if !forward {
        return; // on hold: received (and counted), not forwarded
    }
    v.to_browser_rewriter.rewrite(now_ns, &mut p, pt, VIDEO_CLOCK);
    let out = OutRtp { pt, seq: p.sequence(), timestamp: p.timestamp(), marker: p.marker(), payload: p.payload() };
    match c.leg.write_rtp(now_ns, v.mid, out) {
        Ok(()) => v.q.packets_to_browser += 1,
        Err(e) => {
            tracing::trace!(call = %c.id, error = %e, "cannot write video to the browser");
            v.q.dropped += 1;
        }
    }
    drain(c, now_ns, buf, io, events);
}

/// The periodic keyframe request toward the browser, due by `now_ns`.
pub(super) fn periodic(
    c: &mut BridgeCall,
    now_ns: u64,
    interval_ns: u64,
    buf: &mut [u8; RTP_BUF],
    io: &mut dyn BridgeIo,
    events: &mut Vec<MediaEvent>,
) {
    let forward = c.browser_to_sip();
    let Some(v) = c.video.as_deref_mut() else {
        return;
    };
    if v.next_keyframe_ns > now_ns {
        return;
    }
    if interval_ns == 0 || v.sip_feedback || !v.active {
        v.next_keyframe_ns = u64::MAX;
        return;
    }
    let first = v.next_keyframe_ns == 0;
    v.next_keyframe_ns = now_ns.saturating_add(interval_ns);
    if first || !forward || v.sip_remote.is_none() {
        return;
    }
    if c.leg.request_keyframe(v.mid, false) {
        v.q.periodic_keyframe_requests += 1;
        v.q.keyframe_requests_to_browser += 1;
        drain(c, now_ns, buf, io, events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(formats: &str, attrs: &str) -> Media {
        let text =
            format!("v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\nm=video 4000 RTP/AVP {formats}\r\n{attrs}");
        Sdp::parse(&text).unwrap().media.remove(0)
    }

    #[test]
    fn h264_profiles_of_rfc_6184_table_5() {
        use H264Profile::*;
        assert_eq!(h264_profile(0x42e01f), Some(ConstrainedBaseline));
        assert_eq!(h264_profile(0x42c01f), Some(ConstrainedBaseline));
        assert_eq!(h264_profile(0x42001f), Some(Baseline));
        assert_eq!(h264_profile(0x4d001f), Some(Main));
        assert_eq!(h264_profile(0x4d801f), Some(ConstrainedBaseline));
        assert_eq!(h264_profile(0x640c34), Some(ConstrainedHigh));
        assert_eq!(h264_profile(0x64001f), Some(High));
        assert_eq!(h264_profile(0x6e001f), None, "High 10 is not bridged");
    }

    #[test]
    fn video_formats_of_a_browser_m_line() {
        // Chrome's kind of offer: VP8 + RTX, VP9, H.264 in both modes and three profiles.
        let m = media(
            "96 97 98 102 103 127 112",
            "a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:98 VP9/90000\r\n\
             a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
             a=rtpmap:103 H264/90000\r\na=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
             a=rtpmap:127 H264/90000\r\na=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
             a=rtpmap:112 H264/90000\r\na=fmtp:112 packetization-mode=1;profile-level-id=4d001f\r\n",
        );
        let got = video_codecs(&m);
        assert_eq!(
            got,
            vec![
                LegCodec::vp8(96),
                LegCodec::h264(102, 0x42001f),
                LegCodec::h264(127, 0x42e01f),
                LegCodec::h264(112, 0x4d001f)
            ]
        );
        // Mapping by profile: constrained baseline at level 3.1 matches level 4.0, not main.
        let theirs = [LegCodec::h264(100, 0x42e028), LegCodec::vp8(120)];
        assert_eq!(map_formats(&got, &theirs), vec![(96, 120), (127, 100)]);
        let mut s = String::new();
        video_mline(&mut s, 30_002, &got, "sendrecv");
        let back = media("96 102 127 112", s.split_once("\r\n").unwrap().1);
        assert_eq!(video_codecs(&back), got, "our own m-line reads back: {s}");
        assert!(s.contains("a=rtcp-fb:96 nack pli\r\na=rtcp-fb:96 ccm fir\r\n"));
    }
}
