//! Hold and resume by re-offers from either side, and the `Stats` figures, on virtual time with
//! a str0m browser.

use super::super::super::dtmf::TelephoneEvent;
use super::*;
use str0m::change::SdpAnswer;
use str0m::media::Direction as RtcDirection;

fn sip_sdp(version: u32, port: u16, dir: &str) -> String {
    format!(
        "v=0\r\no=phone 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na={dir}\r\n\
         m=video 0 RTP/AVP 34\r\n"
    )
}

/// 20 ms of audio each way for `count` packets; returns (packets the browser got, packets sent
/// to the SIP side) and checks those went to `sip_peer`.
fn pump(i: &mut Incoming, sip_peer: SocketAddr, count: u16, seq: &mut u16) -> (usize, usize) {
    i.b.got.clear();
    i.net.to_sip.clear();
    for _ in 0..count {
        *seq += 1;
        let ts = 160 * u32::from(*seq);
        let mut p = sip_rtp(8, *seq, ts, false, &[0xA0, *seq as u8]);
        assert!(i.bridge.on_sip_packet(i.now, i.sip_port, sip_peer, &mut p, &mut i.net));
        let mid = i.b.mid.unwrap();
        let at = i.b.clock.instant(i.now);
        if let Some(tx) = i.b.rtc.direct_api().stream_tx_by_mid(mid, None) {
            tx.write_rtp(RtpWrite::new(8.into(), (10_000 + u64::from(*seq)).into(), ts, at, vec![0xB0]));
        }
        i.now = run(&mut i.bridge, &mut i.b, &mut i.net, i.now, 20, |_, _| false);
    }
    assert!(i.net.to_sip.iter().all(|(_, dst, _)| *dst == sip_peer), "media to {sip_peer}");
    (i.b.got.iter().filter(|g| g.0 == 8).count(), i.net.to_sip.len())
}

/// The browser re-offers with `dir`; the SIP side answers `sip_dir` on `port`. Returns our SIP
/// re-offer.
fn browser_reoffer(i: &mut Incoming, dir: RtcDirection, sip_dir: &str, port: u16, version: u32) -> String {
    let mid = i.b.mid.unwrap();
    let mut change = i.b.rtc.sdp_api();
    change.set_direction(mid, dir);
    let (offer, pending) = change.apply().expect("a change to offer");
    let flags = OfferFlags::default();
    let mut relay = Relay::new(
        RelayConfig {
            shard: ShardId(0),
            ports: "30100-30119".parse().unwrap(),
            announce_ip: "127.0.0.1".parse().unwrap(),
            media_timeout_secs: 60,
        },
        3,
    );
    let reply =
        i.bridge.offer(i.now, &i.call, &i.browser_tag, &offer.to_sdp_string(), &flags, &mut relay, &mut i.net).unwrap();
    i.b.rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&reply.browser_answer).unwrap()).unwrap();
    let stats = i.bridge.query(i.now, &i.call).unwrap();
    assert_eq!(stats.answerer.tag.as_ref(), Some(&i.browser_tag));
    assert_eq!(i.bridge.answer(&i.call, &i.sip_tag, &sip_sdp(version, port, sip_dir)).unwrap(), "");
    reply.sip_offer
}

#[test]
fn hold_and_resume_from_either_side_gate_media_and_keep_the_connection() {
    let mut i = incoming_call();
    let mut seq = 0u16;
    let first: SocketAddr = SIP_PEER.parse().unwrap();
    let (to_browser, to_sip) = pump(&mut i, first, 6, &mut seq);
    assert!(to_browser >= 3 && to_sip >= 3, "flowing: {to_browser} {to_sip}");

    // SIP holds (sendonly) and moves its media to port 6100: the answer is recvonly, the new
    // address replaces the latched one, only SIP -> browser flows.
    let moved: SocketAddr = "127.0.0.1:6100".parse().unwrap();
    let answer = i.bridge.sip_reoffer(&i.call, &sip_sdp(2, 6100, "sendonly")).unwrap();
    assert!(answer.contains("a=recvonly") && answer.contains("o=wavegate 1 3 "), "{answer}");
    let sdp = Sdp::parse(&answer).unwrap();
    assert_eq!(sdp.media[0].payload_types().collect::<Vec<_>>(), vec![8, 0, 101]);
    assert_eq!((sdp.media.len(), sdp.media[1].desc.port), (2, 0));
    assert_eq!(i.bridge.query(i.now, &i.call).unwrap().offerer.remote_rtp, Some(moved));
    let (to_browser, to_sip) = pump(&mut i, moved, 6, &mut seq);
    assert!(to_browser >= 5, "music on hold reaches the browser: {to_browser}");
    assert_eq!(to_sip, 0, "nothing toward a side that does not receive");
    // A stranger (the old address) is dropped once the new one latched.
    let dropped = i.bridge.query(i.now, &i.call).unwrap().offerer.dropped;
    let mut p = sip_rtp(8, 999, 0, false, &[0]);
    i.bridge.on_sip_packet(i.now, i.sip_port, first, &mut p, &mut i.net);
    assert_eq!(i.bridge.query(i.now, &i.call).unwrap().offerer.dropped, dropped + 1);

    // SIP resumes.
    let answer = i.bridge.sip_reoffer(&i.call, &sip_sdp(3, 6100, "sendrecv")).unwrap();
    assert!(answer.contains("a=sendrecv"), "{answer}");
    let (to_browser, to_sip) = pump(&mut i, moved, 6, &mut seq);
    assert!(to_browser >= 5 && to_sip >= 5, "resumed: {to_browser} {to_sip}");

    // The browser holds (inactive): our SIP re-offer says inactive; nothing flows for 10 s while
    // ICE consent and DTLS carry on.
    let sip_offer = browser_reoffer(&mut i, RtcDirection::Inactive, "inactive", 6100, 4);
    assert!(sip_offer.contains("a=inactive") && sip_offer.contains("m=audio"), "{sip_offer}");
    let (to_browser, to_sip) = pump(&mut i, moved, 500, &mut seq);
    assert_eq!((to_browser, to_sip), (0, 0), "held both ways");
    assert!(!i.b.disconnected, "ICE consent kept up on hold");
    let mut events = Vec::new();
    i.bridge.poll_timeouts(i.now, &mut events);
    assert!(events.iter().all(|e| !matches!(e, MediaEvent::LegFailed { .. })), "{events:?}");
    assert!(i.bridge.query(i.now, &i.call).unwrap().offerer.rtp_packets_in >= 500, "SIP media still counted");

    // The browser resumes.
    let sip_offer = browser_reoffer(&mut i, RtcDirection::SendRecv, "sendrecv", 6100, 5);
    assert!(sip_offer.contains("a=sendrecv"), "{sip_offer}");
    let (to_browser, to_sip) = pump(&mut i, moved, 6, &mut seq);
    assert!(to_browser >= 5 && to_sip >= 5, "resumed by the browser: {to_browser} {to_sip}");
}

#[test]
fn stats_report_counters_loss_jitter_and_rtcp_figures() {
    let mut i = incoming_call();
    let peer: SocketAddr = SIP_PEER.parse().unwrap();
    let mut out_ssrc = None;
    // 10 s of audio both ways; SIP packets 7, 17, 27, ... never arrive and every other one is
    // 4 ms late.
    for k in 0..500u32 {
        let seq = 1000 + k as u16;
        if k % 10 != 7 {
            let late = if k % 2 == 1 { 4 * MS } else { 0 };
            let mut p = sip_rtp(8, seq, 160 * k, false, &[0xA0]);
            assert!(i.bridge.on_sip_packet(i.now + late, i.sip_port, peer, &mut p, &mut i.net));
        }
        let mid = i.b.mid.unwrap();
        let at = i.b.clock.instant(i.now);
        let mut api = i.b.rtc.direct_api();
        let tx = api.stream_tx_by_mid(mid, None).unwrap();
        tx.write_rtp(RtpWrite::new(8.into(), (20_000 + u64::from(k)).into(), 160 * k, at, vec![0xB0]));
        i.now = run(&mut i.bridge, &mut i.b, &mut i.net, i.now, 20, |_, _| false);
        if let Some((_, _, raw)) = i.net.to_sip.first() {
            out_ssrc.get_or_insert(u32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]));
        }
        i.net.to_sip.clear();
    }
    // The SIP peer's receiver report on our stream (fraction 25/256, 3 lost, jitter 80 ticks).
    let ssrc = out_ssrc.unwrap().to_be_bytes();
    let mut rr = vec![0x81, 201, 0, 7, 0, 0, 0x51, 0x51];
    rr.extend_from_slice(&ssrc);
    rr.extend_from_slice(&[25, 0, 0, 3, 0, 0, 0x10, 0, 0, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert!(i.bridge.on_sip_packet(i.now, i.sip_port, peer, &mut rr, &mut i.net));

    let q = i.bridge.stats(&i.call).unwrap();
    let sip = &q.sip;
    assert_eq!(sip.tag.as_ref(), Some(&i.sip_tag));
    assert_eq!((sip.packets_in, sip.lost_in), (450, 50), "{sip:?}");
    assert!((2_000..=4_000).contains(&sip.jitter_in_us), "about 4 ms: {sip:?}");
    assert_eq!((sip.remote_lost, sip.remote_fraction_lost, sip.remote_jitter_us), (Some(3), Some(25), Some(10_000)));
    assert!(sip.packets_out >= 490, "{sip:?}");
    let browser = &q.browser;
    assert_eq!(browser.tag.as_ref(), Some(&i.browser_tag));
    assert!(browser.packets_in >= 490 && browser.lost_in == 0, "{browser:?}");
    assert!(browser.packets_out >= 440, "{browser:?}");
    assert_eq!(browser.jitter_in_us, 0, "virtual network without jitter");
    // The SIP side's gaps pass through to the browser, whose receiver reports (through str0m)
    // say so; RTT is not asserted: str0m derived none on this virtual network.
    assert!(browser.remote_lost.is_some_and(|n| (20..=50).contains(&n)), "the browser's reports: {browser:?}");
    assert!(i.bridge.stats(&CallId::new("nope").unwrap()).is_err());
}

#[test]
fn telephone_events_are_rescaled_between_48k_and_8k() {
    let (mut bridge, mut relay, clock) = new_bridge();
    let mut net = Net::default();
    let call = CallId::new("out@t").unwrap();
    let (web, sip_tag) = (LegTag::new("web").unwrap(), LegTag::new("far").unwrap());
    // The browser knows Opus and telephone-event/48000 only.
    let mut b = Browser::new(clock, &[(111, Codec::Opus, 48_000, Some(2)), (110, Codec::Tele, 48_000, None)]);
    let mut change = b.rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, RtcDirection::SendRecv, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    b.mid = Some(mid);
    let flags = OfferFlags::default();
    let reply = bridge.offer(0, &call, &web, &offer.to_sdp_string(), &flags, &mut relay, &mut net).unwrap();
    assert!(reply.sip_offer.contains("a=rtpmap:110 telephone-event/48000"), "{}", reply.sip_offer);
    b.rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&reply.browser_answer).unwrap()).unwrap();
    let sip_port = Sdp::parse(&reply.sip_offer).unwrap().media[0].desc.port;
    // The SIP phone takes Opus but only knows telephone-event/8000 (its own number, 101).
    let answer = "v=0\r\no=p 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 6000 RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n";
    bridge.answer(&call, &sip_tag, answer).unwrap();
    let now = run(&mut bridge, &mut b, &mut net, 0, 5000, |b, _| b.connected);
    assert!(b.connected);

    // Browser "4" at 48 kHz: durations 0, 2400, 4800 ticks (0, 50, 100 ms) -> 0, 400, 800 at 8 kHz.
    let mut t = now;
    for (k, (end, dur)) in
        [(false, 0u16), (false, 2400), (true, 4800), (true, 4800), (true, 4800)].into_iter().enumerate()
    {
        let ev = TelephoneEvent { event: 4, end, volume: 10, duration: dur };
        b.send(t, 110, 500 + k as u64, 96_000, k == 0, &ev.to_bytes());
        step(&mut bridge, &mut b, &mut net, t);
        t += 20 * MS;
    }
    let at_sip: Vec<(u8, u16, bool)> = net
        .to_sip
        .drain(..)
        .map(|(_, _, mut raw)| {
            let p = RtpPacket::parse(&mut raw).unwrap();
            let ev = TelephoneEvent::parse(p.payload()).unwrap();
            (p.payload_type(), ev.duration, ev.end)
        })
        .collect();
    assert_eq!(at_sip, vec![(101, 0, false), (101, 400, false), (101, 800, true), (101, 800, true), (101, 800, true)]);
    // SIP "9" at 8 kHz: 800 ticks -> 4800 at the browser, payload type 110.
    for (k, (end, dur)) in [(false, 0u16), (false, 400), (true, 800), (true, 800), (true, 800)].into_iter().enumerate()
    {
        let ev = TelephoneEvent { event: 9, end, volume: 10, duration: dur };
        let mut p = sip_rtp(101, 40 + k as u16, 16_000, k == 0, &ev.to_bytes());
        assert!(bridge.on_sip_packet(t, sip_port, SIP_PEER.parse().unwrap(), &mut p, &mut net));
    }
    run(&mut bridge, &mut b, &mut net, t, 200, |b, _| b.got.len() >= 5);
    let at_browser: Vec<(u8, u16)> =
        b.got.iter().map(|g| (g.0, TelephoneEvent::parse(&g.4).unwrap().duration)).collect();
    assert_eq!(at_browser, vec![(110, 0), (110, 2400), (110, 4800), (110, 4800), (110, 4800)]);
    let mut events = Vec::new();
    bridge.take_events(&mut events);
    assert_eq!(
        events,
        vec![
            MediaEvent::DtmfReceived { call: call.clone(), tag: Some(web), digit: '4', duration_ms: 100 },
            MediaEvent::DtmfReceived { call, tag: Some(sip_tag), digit: '9', duration_ms: 100 },
        ]
    );
}

#[test]
fn the_answer_keeps_the_browsers_codec_order() {
    let (mut bridge, mut relay, clock) = new_bridge();
    let mut net = Net::default();
    let call = CallId::new("order@t").unwrap();
    let mut b = Browser::new(
        clock,
        &[(0, Codec::PCMU, 8000, None), (111, Codec::Opus, 48_000, Some(2)), (126, Codec::Tele, 8000, None)],
    );
    let mut change = b.rtc.sdp_api();
    change.add_media(MediaKind::Audio, RtcDirection::SendRecv, None, None, None);
    let (offer, _) = change.apply().unwrap();
    let offer = offer.to_sdp_string();
    assert!(offer.contains("RTP/SAVPF 0 111 126"), "PCMU first in the offer\n{offer}");
    let reply = bridge
        .offer(0, &call, &LegTag::new("w").unwrap(), &offer, &OfferFlags::default(), &mut relay, &mut net)
        .unwrap();
    let first_pt = |sdp: &str| Sdp::parse(sdp).unwrap().media[0].payload_types().next();
    assert_eq!(first_pt(&reply.browser_answer), Some(0), "PCMU first in the answer\n{}", reply.browser_answer);
    assert_eq!(first_pt(&reply.sip_offer), Some(0), "and in the SIP offer\n{}", reply.sip_offer);
}

#[test]
fn checks_and_dtls_sent_before_the_answer_arrives_are_not_lost() {
    let (mut bridge, mut relay, clock) = new_bridge();
    let mut net = Net::default();
    let call = CallId::new("early@t").unwrap();
    let sip_offer = "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 6000 RTP/AVP 0\r\na=sendrecv\r\n";
    let flags = OfferFlags::default();
    let reply = bridge
        .offer_to_browser(0, &call, &LegTag::new("c").unwrap(), Some(sip_offer), &flags, &mut relay, &mut net)
        .unwrap();
    let mut b = Browser::new(clock, &[(0, Codec::PCMU, 8000, None)]);
    let answer = b.answer(&reply.browser_offer);
    // The browser checks, nominates and starts DTLS for 2 s before its answer reaches us.
    let now = run(&mut bridge, &mut b, &mut net, 0, 2000, |b, _| b.connected);
    assert!(!b.connected, "nothing can connect before the answer");
    bridge.browser_answer(now, &call, &LegTag::new("w").unwrap(), &answer, &mut net).unwrap();
    let connected_at = run(&mut bridge, &mut b, &mut net, now, 3000, |b, _| b.connected);
    assert!(b.connected);
    let waited_ms = (connected_at - now) / MS;
    assert!(waited_ms <= 20, "connected {waited_ms} ms after the answer (the early datagrams were replayed)");
}

#[test]
fn a_browser_gone_silent_fails_its_leg_after_the_grace_period() {
    let mut i = incoming_call();
    // The browser vanishes: no more datagrams; only the bridge's timers run.
    let start = i.now;
    let mut events = Vec::new();
    let mut failed_at = None;
    for s in 1..=60u64 {
        for ms in (0..1000).step_by(10) {
            let now = start + s * 1_000 * MS + ms * MS;
            i.bridge.on_timeout(now, &mut i.net);
            i.net.to_browser.clear();
        }
        let now = start + (s + 1) * 1_000 * MS;
        i.bridge.poll_timeouts(now, &mut events);
        if failed_at.is_none() && events.iter().any(|e| matches!(e, MediaEvent::LegFailed { .. })) {
            failed_at = Some(s);
        }
    }
    let failed: Vec<_> = events.iter().filter(|e| matches!(e, MediaEvent::LegFailed { .. })).collect();
    assert_eq!(failed.len(), 1, "reported once: {events:?}");
    let MediaEvent::LegFailed { tag, cause, .. } = failed[0] else { unreachable!("filtered") };
    assert_eq!(tag.as_ref(), Some(&i.browser_tag));
    assert!(cause.contains("ICE"), "{cause}");
    let s = failed_at.unwrap();
    assert!(s >= 10, "not before the grace period: {s} s");
    assert!(s <= 50, "consent loss plus grace: {s} s");
}

#[test]
fn sdes_srtp_toward_a_sip_peer_that_offers_rtp_savp() {
    use super::super::super::sdes::{CryptoAttr, crypto_value, parse_crypto};
    use super::super::super::srtp::{MasterKey, SrtpSession, SrtpSuite};
    let (mut bridge, mut relay, clock) = new_bridge();
    let mut net = Net::default();
    let call = CallId::new("savp@t").unwrap();
    let (caller, web) = (LegTag::new("c").unwrap(), LegTag::new("w").unwrap());
    let theirs = MasterKey { key: [5; 16], salt: [6; 14] };
    let suite = SrtpSuite::AesCm128HmacSha1_32;
    let attr = CryptoAttr { tag: 2, suite, key: theirs.clone() };
    let offer = format!(
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 6000 RTP/SAVP 0\r\na=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:x\r\na=crypto:{}\r\na=sendrecv\r\n",
        crypto_value(&attr)
    );
    let flags = OfferFlags::default();
    let reply = bridge.offer_to_browser(0, &call, &caller, Some(&offer), &flags, &mut relay, &mut net).unwrap();
    let mut b = Browser::new(clock, &[(0, Codec::PCMU, 8000, None)]);
    let answer = b.answer(&reply.browser_offer);
    let sip_answer = bridge.browser_answer(0, &call, &web, &answer, &mut net).unwrap();
    assert!(sip_answer.contains("m=audio") && sip_answer.contains(" RTP/SAVP 0\r\n"), "{sip_answer}");
    let line = sip_answer.lines().find_map(|l| l.strip_prefix("a=crypto:")).expect("our key");
    let ours = parse_crypto(line).unwrap();
    assert_eq!((ours.tag, ours.suite), (2, suite), "the accepted line's tag and suite");
    assert_ne!(ours.key, theirs, "our own key");
    let sip_port = Sdp::parse(&sip_answer).unwrap().media[0].desc.port;
    let mut peer = SrtpSession::new(suite, &theirs, &ours.key);
    let mut now = run(&mut bridge, &mut b, &mut net, 0, 5000, |b, _| b.connected);
    assert!(b.connected);

    let from: SocketAddr = SIP_PEER.parse().unwrap();
    let mut protected = Vec::new();
    for i in 0..6u16 {
        let plain = sip_rtp(0, 300 + i, 160 * u32::from(i), false, &[0xA0, i as u8]);
        let mut buf = vec![0u8; plain.len() + 16];
        buf[..plain.len()].copy_from_slice(&plain);
        let n = peer.protect_rtp(&mut buf, plain.len(), 12).unwrap();
        buf.truncate(n);
        protected.push(buf.clone());
        assert!(bridge.on_sip_packet(now, sip_port, from, &mut buf, &mut net));
        b.send(now, 0, 900 + u64::from(i), 160 * u32::from(i), false, &[0xB0, i as u8]);
        now = run(&mut bridge, &mut b, &mut net, now, 20, |_, _| false);
    }
    assert!(
        b.got.len() >= 5 && b.got.iter().all(|g| g.0 == 0 && g.4[0] == 0xA0),
        "decrypted to the browser: {:?}",
        b.got
    );
    assert!(net.to_sip.len() >= 5);
    for (_, dst, raw) in net.to_sip.drain(..) {
        assert_eq!(dst, from);
        let mut raw = raw;
        let n = peer.unprotect_rtp(&mut raw, 12).expect("SRTP the peer can authenticate");
        assert_eq!(raw[12], 0xB0, "browser audio, encrypted on the wire then decrypted");
        assert_eq!(n, 14);
    }
    // Bad auth and replays are dropped and counted.
    let dropped = bridge.query(now, &call).unwrap().offerer.dropped;
    let mut tampered = protected[5].clone();
    tampered[13] ^= 1;
    bridge.on_sip_packet(now, sip_port, from, &mut tampered, &mut net);
    bridge.on_sip_packet(now, sip_port, from, &mut protected[4].clone(), &mut net);
    assert_eq!(bridge.query(now, &call).unwrap().offerer.dropped, dropped + 2);
    // SRTCP from the peer feeds Stats.
    let ssrc = bridge.call_mut(&call).unwrap().rewriter.out_ssrc.to_be_bytes();
    let mut rr = vec![0x81, 201, 0, 7, 0, 0, 0x51, 0x51];
    rr.extend_from_slice(&ssrc);
    rr.extend_from_slice(&[12, 0, 0, 2, 0, 0, 0x10, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
    let len = rr.len();
    rr.resize(len + 14, 0);
    let n = peer.protect_rtcp(&mut rr, len).unwrap();
    rr.truncate(n);
    assert!(bridge.on_sip_packet(now, sip_port, from, &mut rr, &mut net));
    let q = bridge.stats(&call).unwrap();
    assert_eq!((q.sip.remote_lost, q.sip.remote_fraction_lost), (Some(2), Some(12)), "{q:?}");

    // A re-offer keeps SRTP (a new key from the peer re-keys its side); RTP/AVP is refused.
    let theirs2 = MasterKey { key: [8; 16], salt: [9; 14] };
    let reoffer =
        offer.replace(&crypto_value(&attr), &crypto_value(&CryptoAttr { tag: 2, suite, key: theirs2.clone() }));
    let re = bridge.sip_reoffer(&call, &reoffer).unwrap();
    assert!(re.contains(&format!("a=crypto:{line}")), "the same key of ours\n{re}");
    let mut peer2 = SrtpSession::new(suite, &theirs2, &ours.key);
    let plain = sip_rtp(0, 400, 99_000, false, &[0xA0, 99]);
    let mut buf = vec![0u8; plain.len() + 16];
    buf[..plain.len()].copy_from_slice(&plain);
    let n = peer2.protect_rtp(&mut buf, plain.len(), 12).unwrap();
    buf.truncate(n);
    b.got.clear();
    assert!(bridge.on_sip_packet(now, sip_port, from, &mut buf, &mut net));
    run(&mut bridge, &mut b, &mut net, now, 50, |b, _| !b.got.is_empty());
    assert_eq!(b.got.first().map(|g| g.4.clone()), Some(vec![0xA0, 99]), "re-keyed");
    let avp = reoffer.replace("RTP/SAVP", "RTP/AVP");
    assert_eq!(bridge.sip_reoffer(&call, &avp).unwrap_err().code, ErrorCode::BadSdp);
}
