//! Our capping re-offer to the browser (`bridge_reoffer`), on virtual time with a str0m browser:
//! an outgoing Opus call whose SIP side answers PCMU (G.722) is re-offered Opus capped at 8
//! (16) kHz once the SIP answer is in, the browser's answer is accepted, and transcoded media
//! flows both ways before, during and after; no re-offer when the SIP side answers Opus or the
//! call did not ask for it; an unanswered re-offer is withdrawn after its timeout and a browser
//! offer in the meantime wins.

use super::*;
use crate::webrtc::bridge_reoffer::REOFFER_TIMEOUT_NS;

const OPUS_ONLY: [(u8, Codec, u32, Option<u8>); 2] =
    [(111, Codec::Opus, 48_000, Some(2)), (110, Codec::Tele, 48_000, None)];
const PCMU_ANSWER: &str = "m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

fn flags(reoffer: bool) -> OfferFlags {
    OfferFlags { browser_reoffer: reoffer, ..Default::default() }
}

/// A browser's Opus call, connected (ICE, DTLS) before the SIP side answers, as in life: the
/// SIP answer comes seconds after our answer to the browser.
fn connected(flags: &OfferFlags) -> Out {
    let (mut bridge, mut relay, clock) = new_bridge();
    let mut net = Net::default();
    let call = CallId::new("re@t").unwrap();
    let (web, sip_tag) = (LegTag::new("web").unwrap(), LegTag::new("far").unwrap());
    let mut b = Browser::new(clock, &OPUS_ONLY);
    let mut change = b.rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, RtcDirection::SendRecv, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    b.mid = Some(mid);
    let reply = bridge.offer(0, &call, &web, &offer.to_sdp_string(), flags, &mut relay, &mut net).unwrap();
    b.rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&reply.browser_answer).unwrap()).unwrap();
    let sip_port = Sdp::parse(&reply.sip_offer).unwrap().media[0].desc.port;
    let now = run(&mut bridge, &mut b, &mut net, 0, 5000, |b, _| b.connected);
    assert!(b.connected);
    let browser_answer = reply.browser_answer;
    Out { bridge, _relay: relay, net, b, call, sip_tag, sip_port, sip_offer: reply.sip_offer, browser_answer, now }
}

/// The SIP side answers `m`; the world runs 5 ms; returns the re-offers the bridge queued.
fn sip_answers(o: &mut Out, m: &str) -> Vec<(Option<LegTag>, String)> {
    assert_eq!(o.bridge.answer(&o.call, &o.sip_tag, &sip_sdp(1, m)).unwrap(), "");
    o.now = run(&mut o.bridge, &mut o.b, &mut o.net, o.now, 5, |_, _| false);
    reoffers(&mut o.bridge)
}

fn reoffers(bridge: &mut Bridge) -> Vec<(Option<LegTag>, String)> {
    let mut events = Vec::new();
    bridge.take_events(&mut events);
    events
        .into_iter()
        .filter_map(|e| match e {
            MediaEvent::BrowserReoffer { tag, sdp, .. } => Some((tag, sdp)),
            _ => None,
        })
        .collect()
}

/// The value of the first `a=<name>:` line.
fn attr<'a>(sdp: &'a str, name: &str) -> Option<&'a str> {
    sdp.lines().find_map(|l| l.strip_prefix("a=")?.strip_prefix(name)?.strip_prefix(':'))
}

/// Checks the re-offer keeps the call's ICE and DTLS and caps Opus at `rate`.
fn check_reoffer(o: &Out, sdp: &str, rate: u32) {
    for name in ["ice-ufrag", "ice-pwd", "fingerprint"] {
        assert_eq!(attr(sdp, name), attr(&o.browser_answer, name), "{name} unchanged:\n{sdp}");
    }
    assert_eq!(attr(sdp, "setup"), Some("actpass"), "{sdp}");
    assert_eq!(attr(sdp, "mid"), attr(&o.browser_answer, "mid"), "same m-line:\n{sdp}");
    let caps = format!("maxplaybackrate={rate};sprop-maxcapturerate={rate}");
    let fmtp = sdp.lines().find(|l| l.starts_with("a=fmtp:111 ")).unwrap_or_else(|| panic!("Opus fmtp:\n{sdp}"));
    assert!(fmtp.contains(&caps), "{fmtp}");
    assert_eq!(sdp.matches("m=audio").count(), 1, "{sdp}");
    assert!(sdp.contains("a=sendrecv"), "{sdp}");
}

/// The str0m browser answers `offer`; returns its answer.
fn browser_accepts(o: &mut Out, offer: &str) -> String {
    let answer = o.b.rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(offer).unwrap()).unwrap();
    answer.to_sdp_string()
}

#[test]
fn pcmu_answer_reoffers_the_browser_narrowband_opus_and_media_flows_throughout() {
    let mut o = connected(&flags(true));
    let (browser, sip) = (Format { pt: 111, codec: Tc::Opus }, Format { pt: 0, codec: Tc::Pcmu });
    let re = sip_answers(&mut o, PCMU_ANSWER);
    assert_eq!(re.len(), 1, "one re-offer: {re:?}");
    assert_eq!(re[0].0, Some(LegTag::new("web").unwrap()), "names the browser's leg");
    let offer = re[0].1.clone();
    check_reoffer(&o, &offer, 8000);
    assert_eq!(o.bridge.transcoded_formats(&o.call), Some((sip, browser)));

    // Media flows while the re-offer is out (the page takes its time).
    let (to_sip, at_browser) = tones(&mut o, browser, sip, 60, 1);
    check_stream(&to_sip, 0, 160);
    let pcm: Vec<Vec<u8>> = to_sip.iter().map(|p| p.5.clone()).collect();
    check_tone(&decode_all(Tc::Pcmu, 8000, &pcm), 8000, "Opus -> PCMU, re-offer pending");
    assert!(at_browser.len() >= 40, "toward the browser, re-offer pending: {}", at_browser.len());

    // The browser answers; the bridge accepts it (no SDP for the SIP side).
    let answer = browser_accepts(&mut o, &offer);
    let web = LegTag::new("web").unwrap();
    assert_eq!(o.bridge.browser_answer(o.now, &o.call, &web, &answer, &mut o.net).unwrap(), "");
    assert!(reoffers(&mut o.bridge).is_empty(), "no second re-offer");
    // The same answer again: nothing is waiting for one, said so.
    let e = o.bridge.browser_answer(o.now, &o.call, &web, &answer, &mut o.net).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadSdp);
    assert!(e.message.contains("no offer to the browser is waiting"), "{}", e.message);

    // Media flows both ways after the renegotiation, on the same streams.
    let (to_sip2, at_browser2) = tones(&mut o, browser, sip, 60, 61);
    check_stream(&to_sip2, 0, 160);
    assert_eq!(to_sip2[0].3, to_sip[0].3, "same SSRC toward SIP");
    assert_eq!(to_sip2[0].1, to_sip.last().unwrap().1.wrapping_add(1), "numbering continues toward SIP");
    let pcm: Vec<Vec<u8>> = to_sip2.iter().map(|p| p.5.clone()).collect();
    check_tone(&decode_all(Tc::Pcmu, 8000, &pcm), 8000, "Opus -> PCMU after the re-offer");
    assert!(at_browser2.len() >= 40 && at_browser2.iter().all(|g| g.0 == 111), "{}", at_browser2.len());
    let opus: Vec<Vec<u8>> = at_browser2.iter().map(|g| g.4.clone()).collect();
    check_tone(&decode_all(Tc::Opus, 48_000, &opus), 48_000, "PCMU -> Opus after the re-offer");
    for w in at_browser2.windows(2) {
        assert_eq!(w[1].1, w[0].1.wrapping_add(1), "consecutive toward the browser");
    }

    // A later SIP re-answer at the same rate (a re-INVITE) does not re-offer again.
    let answer2 = o.bridge.sip_reoffer(&o.call, &sip_sdp(2, PCMU_ANSWER)).unwrap();
    assert!(answer2.contains("m=audio"));
    o.now = run(&mut o.bridge, &mut o.b, &mut o.net, o.now, 5, |_, _| false);
    assert!(reoffers(&mut o.bridge).is_empty());
}

#[test]
fn g722_answer_caps_at_wideband() {
    let mut o = connected(&flags(true));
    let re = sip_answers(&mut o, "m=audio 6000 RTP/AVP 9\r\n");
    assert_eq!(re.len(), 1, "{re:?}");
    check_reoffer(&o, &re[0].1, 16_000);
    let answer = browser_accepts(&mut o, &re[0].1);
    let web = LegTag::new("web").unwrap();
    assert_eq!(o.bridge.browser_answer(o.now, &o.call, &web, &answer, &mut o.net).unwrap(), "");
}

#[test]
fn no_reoffer_for_opus_answers_or_calls_that_did_not_ask() {
    // The SIP side takes Opus: passthrough, nothing to cap.
    let mut o = connected(&flags(true));
    assert!(sip_answers(&mut o, "m=audio 6000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n").is_empty());
    assert_eq!(o.bridge.transcoded_formats(&o.call), None);
    // Transcoded to PCMU, but the call's signalling cannot forward re-offers.
    let mut o = connected(&flags(false));
    assert!(sip_answers(&mut o, PCMU_ANSWER).is_empty());
    assert!(o.bridge.transcoded_formats(&o.call).is_some());
    // Nothing is pending: an answer out of the blue is refused with a clear error.
    let web = LegTag::new("web").unwrap();
    let e = o.bridge.browser_answer(o.now, &o.call, &web, &o.browser_answer.clone(), &mut o.net).unwrap_err();
    assert!(e.message.contains("no offer to the browser is waiting"), "{}", e.message);
}

#[test]
fn an_unanswered_reoffer_is_withdrawn_and_the_call_goes_on() {
    let mut o = connected(&flags(true));
    let (browser, sip) = (Format { pt: 111, codec: Tc::Opus }, Format { pt: 0, codec: Tc::Pcmu });
    let re = sip_answers(&mut o, PCMU_ANSWER);
    assert_eq!(re.len(), 1);
    let answered_late = browser_accepts(&mut o, &re[0].1);
    // Not yet: the timeout has not passed.
    let mut events = Vec::new();
    o.bridge.poll_timeouts(o.now + REOFFER_TIMEOUT_NS - 1_000_000, &mut events);
    // Media over the timeout (the world's clock moves 1 ms per step; jump it past the limit).
    o.now += REOFFER_TIMEOUT_NS;
    o.bridge.poll_timeouts(o.now, &mut events);
    assert!(events.iter().all(|e| !matches!(e, MediaEvent::LegFailed { .. })), "{events:?}");
    let web = LegTag::new("web").unwrap();
    let e = o.bridge.browser_answer(o.now, &o.call, &web, &answered_late, &mut o.net).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadSdp);
    assert!(e.message.contains("withdrawn"), "{}", e.message);
    // The browser rolls its side back as a page would (its state: stable again).
    let (to_sip, at_browser) = tones(&mut o, browser, sip, 40, 1);
    assert!(to_sip.len() >= 25 && at_browser.len() >= 25, "still flowing: {} {}", to_sip.len(), at_browser.len());
}

#[test]
fn a_browser_offer_while_ours_is_pending_wins() {
    let mut o = connected(&flags(true));
    let (browser, sip) = (Format { pt: 111, codec: Tc::Opus }, Format { pt: 0, codec: Tc::Pcmu });
    let re = sip_answers(&mut o, PCMU_ANSWER);
    assert_eq!(re.len(), 1);
    // The browser never saw ours (crossed on the wire) and holds: its offer goes through.
    let mid = o.b.mid.unwrap();
    let mut change = o.b.rtc.sdp_api();
    change.set_direction(mid, RtcDirection::SendOnly);
    let (offer, pending) = change.apply().unwrap();
    let web = LegTag::new("web").unwrap();
    let reply = o.bridge.offer(o.now, &o.call, &web, &offer.to_sdp_string(), &flags(true), &mut o._relay, &mut o.net);
    let reply = reply.expect("the browser's offer is answered, ours withdrawn");
    o.b.rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&reply.browser_answer).unwrap()).unwrap();
    assert!(reply.sip_offer.contains("a=sendonly"), "{}", reply.sip_offer);
    // Our withdrawn re-offer's answer, if it ever came, is refused.
    let late = browser_accepts_ignoring(&re[0].1);
    let e = o.bridge.browser_answer(o.now, &o.call, &web, &late, &mut o.net).unwrap_err();
    assert!(e.message.contains("no offer to the browser is waiting"), "{}", e.message);
    // The SIP side answers the hold; media goes on toward the SIP side, none back.
    o.bridge.answer(&o.call, &o.sip_tag, &sip_sdp(2, &format!("{PCMU_ANSWER}a=recvonly\r\n"))).unwrap();
    let (to_sip, _) = tones(&mut o, browser, sip, 30, 1);
    assert!(to_sip.len() >= 20, "held call still sends toward SIP: {}", to_sip.len());
}

/// An answer to `offer` from a fresh str0m peer (only its text matters here).
fn browser_accepts_ignoring(offer: &str) -> String {
    let mut rtc = str0m::RtcConfig::new().set_rtp_mode(true).build(Instant::now());
    rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(offer).unwrap()).unwrap().to_sdp_string()
}
