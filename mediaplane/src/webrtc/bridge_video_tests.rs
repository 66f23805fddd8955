//! Video (VP8, H.264) through the bridge on virtual time with a str0m browser sending and
//! receiving audio and video: payload types, SSRC, sequence numbers and timestamps rewritten
//! both ways, keyframe requests translated both ways, the periodic request for SIP peers without
//! feedback, hold, and H.264 profile mismatches leaving the call audio-only.

use super::super::super::rtcp_fb::{KeyframeRequest, keyframe_requests, write_fir, write_pli};
use super::*;
use crate::rtp::{PacketClass, classify};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction as RtcDirection, KeyframeRequestKind};
use wavegate_shared::protocol::VideoQuality;

const VIDEO_PEER: &str = "127.0.0.1:6010";
const VIDEO_PEER_RTCP: &str = "127.0.0.1:6011";

/// A str0m browser with one audio (PCMU) and one video m-line.
struct VBrowser {
    rtc: Rtc,
    clock: Clock,
    audio: Option<Mid>,
    video: Option<Mid>,
    connected: bool,
    /// Video RTP received: (pt, seq, timestamp, marker, payload).
    video_got: Vec<Got>,
    audio_got: usize,
    /// Keyframe requests received (true: FIR).
    keyframe_requests: Vec<bool>,
    pending: Option<SdpPendingOffer>,
}

fn h264_params(plid: u32) -> FormatParams {
    FormatParams {
        level_asymmetry_allowed: Some(true),
        packetization_mode: Some(1),
        profile_level_id: Some(plid),
        ..Default::default()
    }
}

impl VBrowser {
    /// `vp8`: VP8 as 96; `h264`: H.264 mode 1 as 102 with that profile-level-id.
    fn new(clock: Clock, vp8: bool, h264: Option<u32>) -> Self {
        Self::with_audio(clock, false, vp8, h264)
    }

    /// As [`Self::new`], with Opus as 111 for audio instead of PCMU when `opus`.
    fn with_audio(clock: Clock, opus: bool, vp8: bool, h264: Option<u32>) -> Self {
        let mut config = RtcConfig::new().set_rtp_mode(true).clear_codecs();
        let f = |hz| Frequency::new(hz).unwrap();
        if opus {
            config.codec_config().add_config(111.into(), None, Codec::Opus, f(48_000), Some(2), FormatParams::default());
        } else {
            config.codec_config().add_config(0.into(), None, Codec::PCMU, f(8000), None, FormatParams::default());
        }
        if vp8 {
            config.codec_config().add_config(96.into(), None, Codec::Vp8, f(90_000), None, FormatParams::default());
        }
        if let Some(plid) = h264 {
            config.codec_config().add_config(102.into(), None, Codec::H264, f(90_000), None, h264_params(plid));
        }
        let mut rtc = config.build(clock.instant(0));
        rtc.add_local_candidate(Candidate::host(BROWSER.parse().unwrap(), "udp").unwrap()).unwrap();
        Self {
            rtc,
            clock,
            audio: None,
            video: None,
            connected: false,
            video_got: Vec::new(),
            audio_got: 0,
            keyframe_requests: Vec::new(),
            pending: None,
        }
    }

    fn offer(&mut self) -> String {
        let mut change = self.rtc.sdp_api();
        self.audio = Some(change.add_media(MediaKind::Audio, RtcDirection::SendRecv, None, None, None));
        self.video = Some(change.add_media(MediaKind::Video, RtcDirection::SendRecv, None, None, None));
        let (offer, pending) = change.apply().unwrap();
        self.pending = Some(pending);
        offer.to_sdp_string()
    }

    fn accept_answer(&mut self, answer: &str) {
        let pending = self.pending.take().unwrap();
        self.rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(answer).unwrap()).unwrap();
    }

    fn answer(&mut self, offer: &str) -> String {
        let answer = self.rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(offer).unwrap()).unwrap();
        let text = answer.to_sdp_string();
        let mut kind = "";
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("m=") {
                kind = rest.split(' ').next().unwrap_or("");
            }
            if let Some(mid) = line.strip_prefix("a=mid:") {
                let mid = Some(Mid::from(mid.trim()));
                if kind == "audio" { self.audio = mid } else { self.video = mid }
            }
        }
        text
    }

    fn send(&mut self, now: u64, mid: Mid, pt: u8, seq: u64, ts: u32, marker: bool, payload: &[u8]) {
        let at = self.clock.instant(now);
        let mut api = self.rtc.direct_api();
        let tx = api.stream_tx_by_mid(mid, None).unwrap();
        tx.write_rtp(RtpWrite::new(pt.into(), seq.into(), ts, at, payload.to_vec()).marker(marker));
    }

    fn ask_keyframe(&mut self, fir: bool) {
        let kind = if fir { KeyframeRequestKind::Fir } else { KeyframeRequestKind::Pli };
        let mid = self.video.unwrap();
        self.rtc.direct_api().stream_rx_by_mid(mid, None).expect("video received").request_keyframe(kind);
    }
}

fn drain_vb(bridge: &mut Bridge, b: &mut VBrowser, net: &mut Net, now: u64) {
    let browser: SocketAddr = BROWSER.parse().unwrap();
    for _ in 0..1000 {
        match b.rtc.poll_output().unwrap() {
            Output::Timeout(_) => break,
            Output::Transmit(t) => bridge.on_webrtc_datagram(now, browser, &t.contents, net),
            Output::Event(Event::Connected) => b.connected = true,
            Output::Event(Event::KeyframeRequest(k)) => b.keyframe_requests.push(k.kind == KeyframeRequestKind::Fir),
            Output::Event(Event::RtpPacket(p)) => {
                if matches!(*p.header.payload_type, 0 | 111) {
                    b.audio_got += 1;
                } else {
                    b.video_got.push((
                        *p.header.payload_type,
                        p.header.sequence_number,
                        p.header.timestamp,
                        p.header.marker,
                        p.payload.to_vec(),
                    ));
                }
            }
            Output::Event(_) => {}
        }
    }
}

/// `ms` virtual milliseconds of the world, 1 ms steps.
fn advance(bridge: &mut Bridge, b: &mut VBrowser, net: &mut Net, from: u64, ms: u64) -> u64 {
    let browser: SocketAddr = BROWSER.parse().unwrap();
    let shard: SocketAddr = SHARD.parse().unwrap();
    let mut now = from;
    for _ in 0..ms {
        b.rtc.handle_input(Input::Timeout(b.clock.instant(now))).unwrap();
        drain_vb(bridge, b, net, now);
        bridge.on_timeout(now, net);
        for _ in 0..100 {
            if net.to_browser.is_empty() {
                break;
            }
            for d in std::mem::take(&mut net.to_browser) {
                let contents = d.as_slice().try_into().unwrap();
                let r = Receive { proto: Protocol::Udp, source: shard, destination: browser, contents };
                b.rtc.handle_input(Input::Receive(b.clock.instant(now), r)).unwrap();
                drain_vb(bridge, b, net, now);
            }
        }
        now += MS;
    }
    now
}

/// A video RTP packet as the SIP peer sends it (SSRC 0x7777).
fn sip_video(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let n = write_rtp(&mut buf, pt, seq, ts, 0x7777, payload).unwrap();
    if marker {
        buf[1] |= 0x80;
    }
    buf[..n].to_vec()
}

/// The keyframe requests the bridge sent to the SIP side's RTCP address (from our RTCP port).
fn rtcp_requests(net: &Net, vport: u16) -> Vec<KeyframeRequest> {
    let mut out = Vec::new();
    for (from, dst, bytes) in &net.to_sip {
        if *from == vport + 1 && *dst == VIDEO_PEER_RTCP.parse().unwrap() {
            keyframe_requests(bytes, |k| out.push(k));
        }
    }
    out
}

/// The video RTP sent to the SIP peer: (pt, seq, ts, ssrc, marker, payload).
fn video_to_sip(net: &Net, vport: u16) -> Vec<(u8, u16, u32, u32, bool, Vec<u8>)> {
    net.to_sip
        .iter()
        .filter(|(from, dst, b)| {
            *from == vport && *dst == VIDEO_PEER.parse().unwrap() && classify(b) == PacketClass::Rtp
        })
        .map(|(_, _, b)| {
            let mut v = b.clone();
            let p = RtpPacket::parse(&mut v).unwrap();
            (p.payload_type(), p.sequence(), p.timestamp(), p.ssrc(), p.marker(), p.payload().to_vec())
        })
        .collect()
}

fn sip_answer_av(video: &str) -> String {
    format!(
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n{video}"
    )
}

struct Out {
    bridge: Bridge,
    _relay: Relay,
    net: Net,
    b: VBrowser,
    call: CallId,
    vport: u16,
    now: u64,
}

/// A browser call out with audio + video; the SIP side answers `video` (an m-line or "").
fn outgoing(vp8: bool, h264: Option<u32>, video: &str, interval_ms: u32) -> (Out, String) {
    let (mut bridge, mut relay, clock) = new_bridge();
    bridge.set_keyframe_interval_ms(interval_ms);
    let mut net = Net::default();
    let call = CallId::new("v@t").unwrap();
    let mut b = VBrowser::new(clock, vp8, h264);
    let offer = b.offer();
    let free = relay.free_pairs();
    let (bt, st) = (LegTag::new("web").unwrap(), LegTag::new("phone").unwrap());
    let reply = bridge.offer(0, &call, &bt, &offer, &OfferFlags::default(), &mut relay, &mut net).unwrap();
    assert_eq!(relay.free_pairs(), free - 2, "a port pair for audio and one for video");
    let sip = Sdp::parse(&reply.sip_offer).unwrap();
    assert_eq!(sip.media.len(), 2, "{}", reply.sip_offer);
    let vport = sip.media[1].desc.port;
    assert_eq!(sip.media[1].desc.kind, "video");
    assert_ne!(vport, sip.media[0].desc.port);
    b.accept_answer(&reply.browser_answer);
    bridge.answer(&call, &st, &sip_answer_av(video)).unwrap();
    let now = advance(&mut bridge, &mut b, &mut net, 0, 300);
    assert!(b.connected, "ICE + DTLS up");
    (Out { bridge, _relay: relay, net, b, call, vport, now }, reply.sip_offer)
}

/// Browser video for `frames` frames of 3 packets (the last with the marker), 33 ms apart.
fn browser_frames(o: &mut Out, pt: u8, first_seq: u64, frames: u32) {
    let mid = o.b.video.unwrap();
    for f in 0..frames {
        for k in 0..3u64 {
            let seq = first_seq + u64::from(f) * 3 + k;
            o.b.send(o.now, mid, pt, seq, 3000 * f, k == 2, &[0x90, f as u8, k as u8]);
        }
        o.now = advance(&mut o.bridge, &mut o.b, &mut o.net, o.now, 33);
    }
}

/// SIP video for `frames` frames of 2 packets, 33 ms apart, from the video peer.
fn sip_frames(o: &mut Out, pt: u8, first_seq: u16, frames: u16) {
    let peer: SocketAddr = VIDEO_PEER.parse().unwrap();
    for f in 0..frames {
        for k in 0..2u16 {
            let mut p = sip_video(
                pt,
                first_seq.wrapping_add(f * 2 + k),
                50_000 + 3000 * u32::from(f),
                k == 1,
                &[0x50, f as u8],
            );
            assert!(o.bridge.on_sip_packet(o.now, o.vport, peer, &mut p, &mut o.net));
        }
        o.now = advance(&mut o.bridge, &mut o.b, &mut o.net, o.now, 33);
    }
}

fn video_quality(o: &Out) -> VideoQuality {
    o.bridge.stats(&o.call).unwrap().video.expect("video counters")
}

#[test]
fn vp8_both_ways_with_rewrites_and_keyframe_requests_translated() {
    // The SIP phone numbers VP8 100 and declares FIR only.
    let video = "m=video 6010 RTP/AVP 100\r\na=rtpmap:100 VP8/90000\r\na=rtcp-fb:100 ccm fir\r\n";
    let (mut o, sip_offer) = outgoing(true, Some(0x42e01f), video, 0);
    for needle in [
        "a=rtpmap:96 VP8/90000",
        "a=rtpmap:102 H264/90000",
        "a=fmtp:102 profile-level-id=42e01f;packetization-mode=1",
        "a=rtcp-fb:96 nack pli",
        "a=rtcp-fb:96 ccm fir",
    ] {
        assert!(sip_offer.contains(needle), "{needle} in\n{sip_offer}");
    }

    // Browser -> SIP: 96 -> 100, our SSRC, sequence numbers and timestamps continuous.
    browser_frames(&mut o, 96, 1000, 10);
    let sent = video_to_sip(&o.net, o.vport);
    assert_eq!(sent.len(), 30, "every packet forwarded");
    let ssrc = sent[0].3;
    for (i, p) in sent.iter().enumerate() {
        let (f, k) = (i / 3, i % 3);
        assert_eq!((p.0, p.3, p.4), (100, ssrc, k == 2), "pt, one SSRC, marker: {p:?}");
        assert_eq!(p.5, vec![0x90, f as u8, k as u8], "payload intact");
        assert_eq!(p.1, sent[0].1.wrapping_add(i as u16), "consecutive sequence numbers");
        assert_eq!(p.2.wrapping_sub(sent[0].2), 3000 * f as u32, "the frame's timestamp");
    }
    // The SIP side joined mid-stream: the browser was asked for a keyframe once.
    assert_eq!(o.b.keyframe_requests, vec![false], "one PLI at the start");

    // SIP -> browser: 100 -> 96, markers and payloads kept.
    sip_frames(&mut o, 100, 500, 10);
    assert!(o.b.video_got.len() >= 16, "browser got {:?}", o.b.video_got);
    for w in o.b.video_got.windows(2) {
        assert_eq!(w[1].1, w[0].1.wrapping_add(1), "consecutive");
    }
    assert!(o.b.video_got.iter().all(|p| p.0 == 96 && p.4[0] == 0x50));
    assert!(o.b.video_got.iter().filter(|p| p.3).count() >= 8, "frame ends keep the marker");

    // The browser's PLI becomes a FIR (all the phone declared) about the phone's SSRC.
    o.b.ask_keyframe(false);
    o.now = advance(&mut o.bridge, &mut o.b, &mut o.net, o.now, 50);
    assert_eq!(rtcp_requests(&o.net, o.vport), vec![KeyframeRequest { fir: true, media_ssrc: 0x7777 }]);
    let q = video_quality(&o);
    assert_eq!((q.keyframe_requests_from_browser, q.keyframe_requests_to_sip), (1, 1), "{q:?}");

    // The phone's PLI and FIR (to our RTCP port) reach the browser as keyframe requests.
    let peer_rtcp: SocketAddr = VIDEO_PEER_RTCP.parse().unwrap();
    let mut buf = [0u8; 32];
    let n = write_pli(&mut buf, 0x7777, ssrc).unwrap();
    assert!(o.bridge.on_sip_packet(o.now, o.vport + 1, peer_rtcp, &mut buf[..n], &mut o.net));
    o.now = advance(&mut o.bridge, &mut o.b, &mut o.net, o.now, 50);
    let n = write_fir(&mut buf, 0x7777, ssrc, 1).unwrap();
    // A stranger's FIR is dropped.
    assert!(o.bridge.on_sip_packet(o.now, o.vport + 1, "127.0.0.9:6011".parse().unwrap(), &mut buf[..n], &mut o.net));
    assert!(o.bridge.on_sip_packet(o.now, o.vport + 1, peer_rtcp, &mut buf[..n], &mut o.net));
    o.now = advance(&mut o.bridge, &mut o.b, &mut o.net, o.now, 50);
    assert_eq!(o.b.keyframe_requests, vec![false, false, true], "start PLI, then the phone's PLI and FIR");
    let q = video_quality(&o);
    assert_eq!((q.keyframe_requests_from_sip, q.keyframe_requests_to_browser), (2, 3), "{q:?}");
    assert_eq!((q.packets_from_browser, q.packets_to_sip), (30, 30));
    assert_eq!(q.packets_from_sip, 20);
    assert!(q.packets_to_browser >= 16 && q.dropped == 1, "{q:?}");
    // Audio still has its own counters, untouched by video.
    let stats = o.bridge.stats(&o.call).unwrap();
    assert_eq!(stats.browser.packets_in, 0);
}

#[test]
fn periodic_keyframe_requests_until_the_sip_side_sends_feedback() {
    // No rtcp-fb at all: a phone without feedback; the interval is 2 s.
    let video = "m=video 6010 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n";
    let (mut o, _) = outgoing(true, None, video, 2000);
    browser_frames(&mut o, 96, 1, 10); // ~0.33 s: the start request
    assert_eq!(o.b.keyframe_requests.len(), 1);
    // 5 s more of video: requests at ~2 s and ~4 s after the timer started.
    browser_frames(&mut o, 96, 100, 150);
    let q = video_quality(&o);
    assert_eq!(q.periodic_keyframe_requests, 2, "{q:?}");
    assert_eq!(o.b.keyframe_requests, vec![false; 3], "PLIs");
    // The phone turns out to send PLIs: no more periodic requests.
    let mut buf = [0u8; 16];
    let n = write_pli(&mut buf, 1, 2).unwrap();
    o.bridge.on_sip_packet(o.now, o.vport + 1, VIDEO_PEER_RTCP.parse().unwrap(), &mut buf[..n], &mut o.net);
    browser_frames(&mut o, 96, 1000, 200);
    let q = video_quality(&o);
    assert_eq!(q.periodic_keyframe_requests, 2, "stopped: {q:?}");
    assert_eq!(q.keyframe_requests_from_sip, 1);
    assert_eq!(o.b.keyframe_requests.len(), 4, "start + 2 periodic + the phone's");

    // With the interval off there is only the start request.
    let (mut o, _) = outgoing(true, None, video, 0);
    browser_frames(&mut o, 96, 1, 200);
    assert_eq!(video_quality(&o).periodic_keyframe_requests, 0);
    assert_eq!(o.b.keyframe_requests.len(), 1);
}

#[test]
fn video_follows_audio_on_hold_and_resume() {
    let video = "m=video 6010 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\n";
    let (mut o, _) = outgoing(true, None, video, 0);
    let hold = |dir: &str| {
        format!(
            "v=0\r\no=phone 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 6000 RTP/AVP 0\r\na={dir}\r\nm=video 6010 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\na={dir}\r\n"
        )
    };
    // The phone holds (sendonly): our answer is recvonly on both m-lines.
    let answer = o.bridge.sip_reoffer(&o.call, &hold("sendonly")).unwrap();
    let sdp = Sdp::parse(&answer).unwrap();
    assert_eq!(sdp.media.len(), 2, "{answer}");
    assert_eq!(sdp.media[1].desc.port, o.vport);
    assert!(sdp.media.iter().all(|m| m.direction() == crate::sdp::Direction::RecvOnly), "{answer}");
    o.net.to_sip.clear();
    browser_frames(&mut o, 96, 1, 5);
    sip_frames(&mut o, 96, 1, 5);
    assert!(video_to_sip(&o.net, o.vport).is_empty(), "nothing to the holding phone");
    assert!(o.b.video_got.len() >= 6, "the phone's video still reaches the browser");
    let q = video_quality(&o);
    assert_eq!((q.packets_from_browser, q.packets_to_sip), (15, 0), "received and counted: {q:?}");
    // Resume: video flows again.
    o.bridge.sip_reoffer(&o.call, &hold("sendrecv")).unwrap();
    browser_frames(&mut o, 96, 100, 5);
    assert_eq!(video_to_sip(&o.net, o.vport).len(), 15);
}

#[test]
fn h264_profile_mismatch_leaves_the_call_audio_only() {
    // The browser offers constrained baseline; the phone answers main profile.
    let video = "m=video 6010 RTP/AVP 102\r\na=rtpmap:102 H264/90000\r\n\
                 a=fmtp:102 profile-level-id=4d001f;packetization-mode=1\r\n";
    let (mut o, _) = outgoing(false, Some(0x42e01f), video, 0);
    let audio_mid = o.b.audio.unwrap();
    let peer: SocketAddr = SIP_PEER.parse().unwrap();
    let sip_audio_port = o.bridge.query(o.now, &o.call).unwrap().answerer.local_rtp.unwrap().port();
    for i in 0..10u16 {
        o.b.send(o.now, audio_mid, 0, 1 + u64::from(i), 160 * u32::from(i), false, &[0xff; 4]);
        let mut p = sip_rtp(0, 10 + i, 160 * u32::from(i), false, &[0x7f; 4]);
        o.bridge.on_sip_packet(o.now, sip_audio_port, peer, &mut p, &mut o.net);
        o.now = advance(&mut o.bridge, &mut o.b, &mut o.net, o.now, 20);
    }
    browser_frames(&mut o, 102, 1, 5);
    sip_frames(&mut o, 102, 1, 5);
    assert!(video_to_sip(&o.net, o.vport).is_empty() && o.b.video_got.is_empty(), "no video either way");
    let stats = o.bridge.stats(&o.call).unwrap();
    assert!(stats.browser.packets_in >= 8 && stats.sip.packets_in == 10, "audio works: {stats:?}");
    assert!(o.b.audio_got >= 8);
    assert!(o.net.to_sip.iter().filter(|(from, _, _)| *from == sip_audio_port).count() >= 8);
    let q = stats.video.unwrap();
    assert_eq!((q.packets_from_browser, q.packets_to_sip, q.packets_from_sip), (15, 0, 0), "{q:?}");
    assert_eq!(q.dropped, 10, "the phone's video has no mapping");
}

/// An incoming SIP call with PCMU and H.264 (constrained baseline as 99, mode 1) from the phone.
fn incoming_h264(browser_plid: u32) -> (Out, String) {
    let (mut bridge, mut relay, clock) = new_bridge();
    let mut net = Net::default();
    let call = CallId::new("vin@t").unwrap();
    let (st, bt) = (LegTag::new("phone").unwrap(), LegTag::new("web").unwrap());
    let offer = "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
        m=video 6010 RTP/AVP 99 34\r\na=rtpmap:99 H264/90000\r\n\
        a=fmtp:99 profile-level-id=42e01f;packetization-mode=1\r\na=rtcp-fb:99 nack pli\r\n";
    let reply =
        bridge.offer_to_browser(0, &call, &st, Some(offer), &OfferFlags::default(), &mut relay, &mut net).unwrap();
    assert!(reply.browser_offer.contains("m=video"), "{}", reply.browser_offer);
    assert!(reply.browser_offer.contains("a=rtpmap:99 H264/90000"), "{}", reply.browser_offer);
    let mut b = VBrowser::new(clock, false, Some(browser_plid));
    let answer = b.answer(&reply.browser_offer);
    let sip_answer = bridge.browser_answer(0, &call, &bt, &answer, &mut net).unwrap();
    let now = advance(&mut bridge, &mut b, &mut net, 0, 300);
    assert!(b.connected);
    let sdp = Sdp::parse(&sip_answer).unwrap();
    let vport = sdp.media.get(1).map_or(0, |m| m.desc.port);
    (Out { bridge, _relay: relay, net, b, call, vport, now }, sip_answer)
}

#[test]
fn h264_incoming_call_both_ways() {
    let (mut o, sip_answer) = incoming_h264(0x42e01f);
    let sdp = Sdp::parse(&sip_answer).unwrap();
    assert_eq!(sdp.media.len(), 2, "{sip_answer}");
    let v = &sdp.media[1];
    assert_ne!(o.vport, 0, "video accepted\n{sip_answer}");
    assert_eq!(v.payload_types().collect::<Vec<_>>(), vec![99], "the phone's number, H.264 only\n{sip_answer}");
    assert!(sip_answer.contains("a=fmtp:99 profile-level-id=42e01f;packetization-mode=1"), "{sip_answer}");
    // The browser's numbers are the phone's: 99 both ways, SSRC and sequence rewritten.
    browser_frames(&mut o, 99, 40_000, 10);
    let sent = video_to_sip(&o.net, o.vport);
    assert_eq!(sent.len(), 30);
    assert!(sent.iter().all(|p| p.0 == 99 && p.3 == sent[0].3));
    for w in sent.windows(2) {
        assert_eq!(w[1].1, w[0].1.wrapping_add(1));
    }
    sip_frames(&mut o, 99, 65_530, 10); // across the sequence wrap
    assert!(o.b.video_got.len() >= 16, "{:?}", o.b.video_got);
    assert!(o.b.video_got.iter().all(|p| p.0 == 99));
    // The browser's FIR goes to the phone as a PLI (what it declared).
    o.b.ask_keyframe(true);
    o.now = advance(&mut o.bridge, &mut o.b, &mut o.net, o.now, 50);
    assert_eq!(rtcp_requests(&o.net, o.vport), vec![KeyframeRequest { fir: false, media_ssrc: 0x7777 }]);
}

#[test]
fn h264_incoming_profile_mismatch_rejects_video_keeps_audio() {
    // The browser only does main profile: it rejects the phone's constrained baseline.
    let (mut o, sip_answer) = incoming_h264(0x4d001f);
    let sdp = Sdp::parse(&sip_answer).unwrap();
    assert_eq!(sdp.media.len(), 2, "{sip_answer}");
    assert_eq!(sdp.media[1].desc.port, 0, "video rejected\n{sip_answer}");
    assert_ne!(sdp.media[0].desc.port, 0);
    let audio_mid = o.b.audio.unwrap();
    let sip_audio_port = sdp.media[0].desc.port;
    let peer: SocketAddr = SIP_PEER.parse().unwrap();
    for i in 0..10u16 {
        o.b.send(o.now, audio_mid, 0, 1 + u64::from(i), 160 * u32::from(i), false, &[0xff; 4]);
        let mut p = sip_rtp(0, 10 + i, 160 * u32::from(i), false, &[0x7f; 4]);
        o.bridge.on_sip_packet(o.now, sip_audio_port, peer, &mut p, &mut o.net);
        o.now = advance(&mut o.bridge, &mut o.b, &mut o.net, o.now, 20);
    }
    assert!(o.b.audio_got >= 8);
    let stats = o.bridge.stats(&o.call).unwrap();
    assert!(stats.browser.packets_in >= 8 && stats.sip.packets_in == 10, "{stats:?}");
}

#[path = "bridge_video_reoffer_tests.rs"]
mod reoffer;
