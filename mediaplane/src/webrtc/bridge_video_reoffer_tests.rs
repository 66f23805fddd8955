//! Our narrowing re-offer for video (`bridge_reoffer`), on virtual time with a str0m browser
//! offering VP8 then H.264: a SIP answer taking H.264 only gets the browser one re-offer whose
//! video m-line lists H.264 alone; before its answer the browser's VP8 (the first format of our
//! first answer, what a browser sends) is dropped, after it the browser's H.264 reaches the SIP
//! side with the SIP side's payload type. A SIP answer taking VP8 (the browser's first) gets no
//! re-offer; PCMU audio + H.264 video gets a single re-offer with both the Opus cap and the
//! video narrowing; a browser re-offer undoes the narrowing and the SIP answer after it
//! narrows again.

use super::*;

const CB: u32 = 0x42e01f; // H.264 constrained baseline 3.1, as 102 at the browser

/// The SIP answer's video m-line: H.264 constrained baseline as 99.
const H264_ONLY: &str = "m=video 6010 RTP/AVP 99\r\na=rtpmap:99 H264/90000\r\n\
                         a=fmtp:99 profile-level-id=42e01f;packetization-mode=1\r\n";

fn flags(reoffer: bool) -> OfferFlags {
    OfferFlags { browser_reoffer: reoffer, ..Default::default() }
}

/// The payload types of the first video m-line of `sdp`.
fn video_pts(sdp: &str) -> Vec<u8> {
    let parsed = Sdp::parse(sdp).unwrap();
    parsed.media.iter().find(|m| m.desc.kind == "video").unwrap().payload_types().collect()
}

/// The re-offers the bridge queued since the last look.
fn reoffers(bridge: &mut Bridge) -> Vec<String> {
    let mut events = Vec::new();
    bridge.take_events(&mut events);
    events
        .into_iter()
        .filter_map(|e| match e {
            MediaEvent::BrowserReoffer { sdp, .. } => Some(sdp),
            _ => None,
        })
        .collect()
}

/// A browser call out (PCMU or Opus audio, VP8 96 then H.264 102 video), connected; the SIP
/// side answers `audio` + `video`. Returns the call and our first answer to the browser.
fn call_out(flags: &OfferFlags, opus: bool, audio: &str, video: &str) -> (Out, String) {
    let (mut bridge, mut relay, clock) = new_bridge();
    bridge.set_keyframe_interval_ms(0);
    let mut net = Net::default();
    let call = CallId::new("vre@t").unwrap();
    let mut b = VBrowser::with_audio(clock, opus, true, Some(CB));
    let offer = b.offer();
    let (bt, st) = (LegTag::new("web").unwrap(), LegTag::new("phone").unwrap());
    let reply = bridge.offer(0, &call, &bt, &offer, flags, &mut relay, &mut net).unwrap();
    assert_eq!(video_pts(&reply.browser_answer), vec![96, 102], "answered in the browser's order");
    let vport = Sdp::parse(&reply.sip_offer).unwrap().media[1].desc.port;
    b.accept_answer(&reply.browser_answer);
    let now = advance(&mut bridge, &mut b, &mut net, 0, 300);
    assert!(b.connected, "ICE + DTLS up before the SIP side answers");
    let sip = format!(
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n{audio}{video}"
    );
    assert_eq!(bridge.answer(&call, &st, &sip).unwrap(), "");
    let mut o = Out { bridge, _relay: relay, net, b, call, vport, now };
    o.now = advance(&mut o.bridge, &mut o.b, &mut o.net, o.now, 5);
    (o, reply.browser_answer)
}

const PCMU: &str = "m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// The value of the first `a=<name>:` line.
fn attr<'a>(sdp: &'a str, name: &str) -> Option<&'a str> {
    sdp.lines().find_map(|l| l.strip_prefix("a=")?.strip_prefix(name)?.strip_prefix(':'))
}

/// The browser answers our re-offer and the bridge takes its answer; returns the answer. A
/// browser answers with formats of the offer only (RFC 8829 §5.3.1; Chrome does), and str0m
/// as the browser keeps the video list of its first negotiation (`Media::set_remote_pts`
/// takes the first only), so its answer to a one-format video m-line is cut to that format
/// here, as Chrome would write it.
fn browser_takes(o: &mut Out, offer: &str) -> String {
    let mut answer = o.b.answer(offer);
    if let [only] = video_pts(offer)[..] {
        answer = crate::webrtc::bridge_sdp::narrow_video(&answer, only);
    }
    let web = LegTag::new("web").unwrap();
    assert_eq!(o.bridge.browser_answer(o.now, &o.call, &web, &answer, &mut o.net).unwrap(), "");
    answer
}

#[test]
fn sip_answer_taking_h264_narrows_the_browser_to_it_and_its_video_flows() {
    let (mut o, first_answer) = call_out(&flags(true), false, PCMU, H264_ONLY);
    let re = reoffers(&mut o.bridge);
    assert_eq!(re.len(), 1, "one re-offer: {re:?}");
    let offer = re[0].clone();
    assert_eq!(video_pts(&offer), vec![102], "H.264 only:\n{offer}");
    assert!(offer.contains("a=fmtp:102 ") && !offer.contains("VP8"), "{offer}");
    for name in ["ice-ufrag", "ice-pwd", "fingerprint"] {
        assert_eq!(attr(&offer, name), attr(&first_answer, name), "{name} unchanged");
    }
    assert_eq!(attr(&offer, "setup"), Some("actpass"));
    assert_eq!(Sdp::parse(&offer).unwrap().media[0].payload_types().next(), Some(0), "audio kept");

    // Before the answer the browser sends the first format it was answered with: VP8,
    // which the SIP side did not take (dropped, counted).
    let sends = video_pts(&first_answer)[0];
    assert_eq!(sends, 96);
    browser_frames(&mut o, sends, 1, 5);
    assert!(video_to_sip(&o.net, o.vport).is_empty(), "VP8 not forwarded to an H.264-only phone");
    assert_eq!(video_quality(&o).packets_from_browser, 15);

    // The browser answers; now it sends the first (only) format of its answer: H.264.
    let answer = browser_takes(&mut o, &offer);
    let sends = video_pts(&answer)[0];
    assert_eq!(sends, 102, "{answer}");
    o.now = advance(&mut o.bridge, &mut o.b, &mut o.net, o.now, 20);
    assert!(reoffers(&mut o.bridge).is_empty(), "no second re-offer");
    browser_frames(&mut o, sends, 16, 10);
    let got = video_to_sip(&o.net, o.vport);
    assert_eq!(got.len(), 30, "the browser's H.264 reaches the phone");
    assert!(got.iter().all(|p| p.0 == 99), "as the phone's payload type 99");
    for w in got.windows(2) {
        assert_eq!(w[1].1, w[0].1.wrapping_add(1), "consecutive sequence numbers");
        assert_eq!(w[1].3, w[0].3, "one SSRC");
    }
    assert_eq!(got.iter().filter(|p| p.4).count(), 10, "one marker per frame");
    // The phone's H.264 reaches the browser as 102.
    sip_frames(&mut o, 99, 500, 5);
    assert_eq!(o.b.video_got.len(), 10);
    assert!(o.b.video_got.iter().all(|g| g.0 == 102));
    let q = video_quality(&o);
    assert_eq!((q.packets_from_browser, q.packets_to_sip, q.packets_from_sip), (45, 30, 10), "{q:?}");
}

#[test]
fn no_video_reoffer_when_the_sip_side_takes_what_the_browser_sends() {
    // VP8 (the browser's first) taken: nothing to narrow.
    let vp8 = "m=video 6010 RTP/AVP 100\r\na=rtpmap:100 VP8/90000\r\n";
    let (mut o, _) = call_out(&flags(true), false, PCMU, vp8);
    assert!(reoffers(&mut o.bridge).is_empty());
    browser_frames(&mut o, 96, 1, 3);
    assert_eq!(video_to_sip(&o.net, o.vport).len(), 9, "VP8 flows as it is");
    // H.264 first but VP8 taken too: the browser's VP8 is taken, nothing to narrow.
    let both = format!("{}a=rtpmap:100 VP8/90000\r\n", H264_ONLY.replace("RTP/AVP 99", "RTP/AVP 99 100"));
    let (mut o, _) = call_out(&flags(true), false, PCMU, &both);
    assert!(reoffers(&mut o.bridge).is_empty());
    // H.264 only, but the call's signalling does not forward re-offers.
    let (mut o, _) = call_out(&flags(false), false, PCMU, H264_ONLY);
    assert!(reoffers(&mut o.bridge).is_empty());
    // H.264 of another profile (main): no shared format, audio-only, nothing to narrow to.
    let main = H264_ONLY.replace("42e01f", "4d001f");
    let (mut o, _) = call_out(&flags(true), false, PCMU, &main);
    assert!(reoffers(&mut o.bridge).is_empty());
}

#[test]
fn pcmu_and_h264_answer_gets_one_reoffer_with_the_opus_cap_and_the_video_narrowed() {
    let (mut o, _) = call_out(&flags(true), true, PCMU, H264_ONLY);
    assert!(o.bridge.transcoded_formats(&o.call).is_some(), "Opus transcoded to PCMU");
    let re = reoffers(&mut o.bridge);
    assert_eq!(re.len(), 1, "a single re-offer: {re:?}");
    let offer = re[0].clone();
    let fmtp = offer.lines().find(|l| l.starts_with("a=fmtp:111 ")).unwrap_or_else(|| panic!("{offer}"));
    assert!(fmtp.contains("maxplaybackrate=8000;sprop-maxcapturerate=8000"), "{fmtp}");
    assert_eq!(video_pts(&offer), vec![102], "{offer}");
    let answer = browser_takes(&mut o, &offer);
    assert_eq!(video_pts(&answer)[0], 102, "{offer}\n---\n{answer}");
    o.now = advance(&mut o.bridge, &mut o.b, &mut o.net, o.now, 20);
    assert!(reoffers(&mut o.bridge).is_empty(), "nothing left to narrow");
    browser_frames(&mut o, 102, 1, 4);
    let got = video_to_sip(&o.net, o.vport);
    assert_eq!(got.len(), 12);
    assert!(got.iter().all(|p| p.0 == 99));
}

#[test]
fn a_browser_reoffer_undoes_the_narrowing_and_the_next_sip_answer_narrows_again() {
    let (mut o, _) = call_out(&flags(true), false, PCMU, H264_ONLY);
    let re = reoffers(&mut o.bridge);
    assert_eq!(re.len(), 1);
    browser_takes(&mut o, &re[0]);
    // The browser holds: its offer lists VP8 and H.264 again, and so does our answer.
    let (audio, video) = (o.b.audio.unwrap(), o.b.video.unwrap());
    let mut change = o.b.rtc.sdp_api();
    change.set_direction(audio, RtcDirection::SendOnly);
    change.set_direction(video, RtcDirection::SendOnly);
    let (offer, pending) = change.apply().unwrap();
    o.b.pending = Some(pending);
    let web = LegTag::new("web").unwrap();
    let reply = o.bridge.offer(o.now, &o.call, &web, &offer.to_sdp_string(), &flags(true), &mut o._relay, &mut o.net);
    let reply = reply.unwrap();
    assert_eq!(video_pts(&reply.browser_answer)[0], 96, "the browser would send VP8 again");
    o.b.accept_answer(&reply.browser_answer);
    let answer = sip_answer_av(H264_ONLY).replace("a=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:0 PCMU/8000\r\na=recvonly\r\n");
    let answer = answer.replace("o=phone 1 1", "o=phone 1 2") + "a=recvonly\r\n";
    assert_eq!(o.bridge.answer(&o.call, &LegTag::new("phone").unwrap(), &answer).unwrap(), "");
    o.now = advance(&mut o.bridge, &mut o.b, &mut o.net, o.now, 5);
    let re = reoffers(&mut o.bridge);
    assert_eq!(re.len(), 1, "narrowed again: {re:?}");
    assert_eq!(video_pts(&re[0]), vec![102]);
    let answer = browser_takes(&mut o, &re[0]);
    assert_eq!(video_pts(&answer), vec![102]);
    browser_frames(&mut o, 102, 100, 3);
    assert_eq!(video_to_sip(&o.net, o.vport).len(), 9, "held browser still sends to the phone");
}
