//! Transcoded calls through the bridge, on virtual time with a str0m browser: codec choice and
//! SDP, 1 kHz tones both ways decoded by our own decoders, telephone-events on the transcoder's
//! stream, hold, and the "Transcoding required but disabled" cause.

use super::super::super::dtmf::TelephoneEvent;
use super::*;
use crate::transcode::Codec as Tc;
use crate::transcode::call::Format;
use crate::transcode::codec::{self as tcodec, OpusSettings};
use str0m::change::SdpAnswer;
use str0m::media::Direction as RtcDirection;

const TONE_HZ: f64 = 1000.0;

/// `n` samples of a 1 kHz tone at `rate` starting at sample `start`, amplitude `amp`.
fn tone(rate: u32, start: usize, n: usize, amp: f64) -> Vec<i16> {
    (start..start + n)
        .map(|i| (amp * (2.0 * std::f64::consts::PI * TONE_HZ * i as f64 / f64::from(rate)).sin()) as i16)
        .collect()
}

/// Frequency from upward zero crossings (interpolated between samples) over the whole buffer.
fn frequency(s: &[i16], rate: u32) -> f64 {
    let mut crossings = Vec::new();
    for i in 1..s.len() {
        let (a, b) = (f64::from(s[i - 1]), f64::from(s[i]));
        if a < 0.0 && b >= 0.0 {
            crossings.push((i - 1) as f64 + a / (a - b));
        }
    }
    assert!(crossings.len() > 10, "no tone: {} crossings", crossings.len());
    let span = crossings[crossings.len() - 1] - crossings[0];
    (crossings.len() - 1) as f64 * f64::from(rate) / span
}

fn dbfs(s: &[i16]) -> f64 {
    let p = s.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / s.len().max(1) as f64;
    10.0 * (p.max(1e-9) / (32768.0 * 32768.0)).log10()
}

/// Checks the tone in the second half of `pcm` (after the jitter buffer and codec start-up).
fn check_tone(pcm: &[i16], rate: u32, what: &str) {
    let tail = &pcm[pcm.len() / 2..];
    let f = frequency(tail, rate);
    let level = dbfs(tail);
    assert!((f - TONE_HZ).abs() <= TONE_HZ * 0.01, "{what}: {f:.1} Hz");
    // Sent at an RMS of -15 dBFS (amplitude 8200): within 2 dB after two lossy codecs.
    assert!((-17.0..=-13.0).contains(&level), "{what}: level {level:.1} dBFS");
}

fn decode_all(codec: Tc, rate: u32, payloads: &[Vec<u8>]) -> Vec<i16> {
    let mut dec = tcodec::new_decoder(codec, rate).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0i16; tcodec::MAX_FRAME_SAMPLES];
    for p in payloads {
        let n = dec.decode(p, &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// RTP the bridge sent to the SIP side, parsed: (pt, seq, ts, ssrc, marker, payload).
fn parsed_to_sip(net: &mut Net) -> Vec<(u8, u16, u32, u32, bool, Vec<u8>)> {
    net.to_sip
        .drain(..)
        .map(|(_, _, mut raw)| {
            let p = RtpPacket::parse(&mut raw).unwrap();
            (p.payload_type(), p.sequence(), p.timestamp(), p.ssrc(), p.marker(), p.payload().to_vec())
        })
        .collect()
}

/// A connected outgoing call: a browser with `formats` offers, the SIP side answers `answer`.
struct Out {
    bridge: Bridge,
    _relay: Relay,
    net: Net,
    b: Browser,
    call: CallId,
    sip_tag: LegTag,
    sip_port: u16,
    sip_offer: String,
    /// Our answer to the browser's offer.
    browser_answer: String,
    now: u64,
}

fn sip_sdp(version: u32, m: &str) -> String {
    format!("v=0\r\no=p 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n{m}")
}

fn outgoing(formats: &[(u8, Codec, u32, Option<u8>)], answer: &str) -> Out {
    outgoing_with(formats, answer, &OfferFlags::default())
}

/// [`outgoing`] with the call's `flags` (e.g. `browser_reoffer`).
fn outgoing_with(formats: &[(u8, Codec, u32, Option<u8>)], answer: &str, flags: &OfferFlags) -> Out {
    let (mut bridge, mut relay, clock) = new_bridge();
    let mut net = Net::default();
    let call = CallId::new("tc@t").unwrap();
    let (web, sip_tag) = (LegTag::new("web").unwrap(), LegTag::new("far").unwrap());
    let mut b = Browser::new(clock, formats);
    let mut change = b.rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, RtcDirection::SendRecv, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    b.mid = Some(mid);
    let reply = bridge.offer(0, &call, &web, &offer.to_sdp_string(), flags, &mut relay, &mut net).unwrap();
    b.rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&reply.browser_answer).unwrap()).unwrap();
    let sip_port = Sdp::parse(&reply.sip_offer).unwrap().media[0].desc.port;
    assert_eq!(bridge.answer(&call, &sip_tag, &sip_sdp(1, answer)).unwrap(), "");
    let now = run(&mut bridge, &mut b, &mut net, 0, 5000, |b, _| b.connected);
    assert!(b.connected);
    let browser_answer = reply.browser_answer;
    Out { bridge, _relay: relay, net, b, call, sip_tag, sip_port, sip_offer: reply.sip_offer, browser_answer, now }
}

/// Plays `frames` 20 ms frames of a 1 kHz tone each way: from the browser in `browser` (its
/// payload type), from the SIP side in `sip`. Returns what each side received, decoded with our
/// decoders: (PCM at the SIP side at its codec's rate, PCM at the browser at 48 kHz or 8 kHz).
#[allow(clippy::too_many_arguments)]
fn tones(
    o: &mut Out,
    browser: Format,
    sip: Format,
    frames: u32,
    seq0: u16,
) -> (Vec<(u8, u16, u32, u32, bool, Vec<u8>)>, Vec<Got>) {
    let peer: SocketAddr = SIP_PEER.parse().unwrap();
    let b_rate = tcodec::pcm_rate(browser.codec, 48_000);
    let s_rate = tcodec::pcm_rate(sip.codec, 8_000);
    let mut b_enc = tcodec::new_encoder(browser.codec, b_rate, OpusSettings::default()).unwrap();
    let mut s_enc = tcodec::new_encoder(sip.codec, s_rate, OpusSettings::default()).unwrap();
    let (b_step, s_step) = (browser.codec.rtp_clock() / 50, sip.codec.rtp_clock() / 50);
    let mut buf = [0u8; 1500];
    o.b.got.clear();
    o.net.to_sip.clear();
    for k in 0..frames {
        let seq = seq0.wrapping_add(k as u16);
        let pcm = tone(b_rate, (k * b_rate / 50) as usize, (b_rate / 50) as usize, 8200.0);
        let n = b_enc.encode(&pcm, &mut buf).unwrap();
        let (mid, at) = (o.b.mid.unwrap(), o.b.clock.instant(o.now));
        if let Some(tx) = o.b.rtc.direct_api().stream_tx_by_mid(mid, None) {
            let w = RtpWrite::new(browser.pt.into(), u64::from(seq).into(), k * b_step, at, buf[..n].to_vec());
            tx.write_rtp(w.marker(k == 0));
        }
        let pcm = tone(s_rate, (k * s_rate / 50) as usize, (s_rate / 50) as usize, 8200.0);
        let n = s_enc.encode(&pcm, &mut buf).unwrap();
        let mut p = sip_rtp(sip.pt, seq, k * s_step, k == 0, &buf[..n]);
        assert!(o.bridge.on_sip_packet(o.now, o.sip_port, peer, &mut p, &mut o.net));
        o.now = run(&mut o.bridge, &mut o.b, &mut o.net, o.now, 20, |_, _| false);
    }
    let to_sip = parsed_to_sip(&mut o.net);
    (to_sip, std::mem::take(&mut o.b.got))
}

/// Checks an RFC 4733 train interleaved with transcoded audio: as `check_train`, but the
/// sequence numbers need only increase (audio packets sit between the events); `all_seqs`, the
/// numbers of every packet of the stream in arrival order, must be consecutive.
fn check_interleaved(ev: &[(u16, u32, bool, TelephoneEvent)], code: u8, duration: u16, all_seqs: &[u16]) {
    let renumbered: Vec<_> =
        ev.iter().enumerate().map(|(i, e)| (ev[0].0.wrapping_add(i as u16), e.1, e.2, e.3)).collect();
    check_train(&renumbered, code, duration);
    for w in ev.windows(2) {
        assert!((w[1].0.wrapping_sub(w[0].0) as i16) > 0, "increasing: {ev:?}");
    }
    for w in all_seqs.windows(2) {
        assert_eq!(w[1], w[0].wrapping_add(1), "one numbering for audio and events");
    }
}

/// Checks one transcoded stream toward the SIP side: one SSRC, +1 sequence, +`step` timestamps.
fn check_stream(pkts: &[(u8, u16, u32, u32, bool, Vec<u8>)], pt: u8, step: u32) {
    let audio: Vec<_> = pkts.iter().filter(|p| p.0 == pt).collect();
    assert!(audio.len() >= 40, "audio packets: {}", audio.len());
    for w in audio.windows(2) {
        assert_eq!(w[1].1, w[0].1.wrapping_add(1), "consecutive sequence numbers");
        assert_eq!(w[1].2.wrapping_sub(w[0].2), step, "isochronous timestamps");
        assert_eq!(w[1].3, w[0].3, "one SSRC");
    }
}

#[test]
fn opus_browser_and_pcmu_sip_are_transcoded_both_ways() {
    let mut o = outgoing(
        &[(111, Codec::Opus, 48_000, Some(2)), (110, Codec::Tele, 48_000, None)],
        "m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    // Our SIP offer: the browser's Opus first, then what we transcode, with rtpmaps.
    let m = Sdp::parse(&o.sip_offer).unwrap().media.remove(0);
    let pts: Vec<u8> = m.payload_types().collect();
    assert_eq!(pts[0], 111, "{}", o.sip_offer);
    assert_eq!(&pts[1..5], &[0, 8, 9, 18], "{}", o.sip_offer);
    assert_eq!(*pts.last().unwrap(), 110, "telephone-event last: {}", o.sip_offer);
    for needle in ["a=rtpmap:18 G729/8000", "a=fmtp:18 annexb=no", "speex/8000", "speex/16000", "a=rtpmap:0 PCMU/8000"]
    {
        assert!(o.sip_offer.contains(needle), "{needle} in\n{}", o.sip_offer);
    }
    let (browser, sip) = (Format { pt: 111, codec: Tc::Opus }, Format { pt: 0, codec: Tc::Pcmu });
    assert_eq!(o.bridge.transcoded_formats(&o.call), Some((sip, browser)));
    assert_eq!(o.bridge.transcoding_legs(), 1);

    let (to_sip, at_browser) = tones(&mut o, browser, sip, 60, 1000);
    check_stream(&to_sip, 0, 160);
    assert!(to_sip.iter().all(|p| p.0 == 0 && p.5.len() == 160), "PCMU, 20 ms");
    let pcm: Vec<Vec<u8>> = to_sip.iter().map(|p| p.5.clone()).collect();
    check_tone(&decode_all(Tc::Pcmu, 8000, &pcm), 8000, "Opus -> PCMU at the SIP side");
    assert!(at_browser.len() >= 40 && at_browser.iter().all(|g| g.0 == 111), "{}", at_browser.len());
    for w in at_browser.windows(2) {
        assert_eq!(w[1].2.wrapping_sub(w[0].2), 960, "Opus timestamps at 48 kHz");
    }
    let opus: Vec<Vec<u8>> = at_browser.iter().map(|g| g.4.clone()).collect();
    check_tone(&decode_all(Tc::Opus, 48_000, &opus), 48_000, "PCMU -> Opus at the browser");
    let stats = o.bridge.query(o.now, &o.call).unwrap();
    assert!(stats.answerer.rtp_packets_out >= 50 && stats.offerer.rtp_packets_out >= 50, "{stats:?}");
}

#[test]
fn dtmf_on_a_transcoded_call_rides_the_transcoders_stream() {
    let mut o = outgoing(
        &[(111, Codec::Opus, 48_000, Some(2)), (110, Codec::Tele, 48_000, None)],
        "m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    let (browser, sip) = (Format { pt: 111, codec: Tc::Opus }, Format { pt: 0, codec: Tc::Pcmu });
    let (to_sip, _) = tones(&mut o, browser, sip, 20, 1);
    let last_audio = to_sip.last().unwrap().clone();

    // Browser "4" at 48 kHz while its audio goes on: the events toward the SIP side carry the
    // transcoded stream's SSRC, its sequence numbers and a timestamp on its timeline.
    let mut t = o.now;
    let mut opus = tcodec::new_encoder(Tc::Opus, 48_000, OpusSettings::default()).unwrap();
    let mut buf = [0u8; 1500];
    for (k, (end, dur)) in
        [(false, 0u16), (false, 2400), (true, 4800), (true, 4800), (true, 4800)].into_iter().enumerate()
    {
        let ev = TelephoneEvent { event: 4, end, volume: 10, duration: dur };
        o.b.send(t, 110, 500 + k as u64, 777_000, k == 0, &ev.to_bytes());
        let n = opus.encode(&tone(48_000, 0, 960, 8200.0), &mut buf).unwrap();
        o.b.send(t, 111, 21 + k as u64, (20 + k as u32) * 960, false, &buf[..n]);
        t = run(&mut o.bridge, &mut o.b, &mut o.net, t, 20, |_, _| false);
    }
    t = run(&mut o.bridge, &mut o.b, &mut o.net, t, 100, |_, _| false);
    let pkts = parsed_to_sip(&mut o.net);
    assert!(pkts.iter().all(|p| p.3 == last_audio.3), "one SSRC for audio and events");
    let mut seq = last_audio.1;
    for p in &pkts {
        assert_eq!(p.1, seq.wrapping_add(1), "one numbering for audio and events: {:?}", (p.0, p.1));
        seq = p.1;
    }
    let events: Vec<(u16, u32, bool, TelephoneEvent)> =
        pkts.iter().filter(|p| p.0 == 101).map(|p| (p.1, p.2, p.4, TelephoneEvent::parse(&p.5).unwrap())).collect();
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| e.1 == events[0].1), "one timestamp per event");
    let ev_ts = events[0].1;
    assert!(ev_ts.wrapping_sub(last_audio.2) < 8000, "event on the audio's timeline: {ev_ts} vs {}", last_audio.2);
    assert_eq!(events.iter().map(|e| e.3.duration).collect::<Vec<_>>(), vec![0, 400, 800, 800, 800], "rescaled");
    assert!(events[0].2, "marker on the start");

    // SIP "9" at 8 kHz toward the browser: 110 at 48 kHz, one train.
    let peer: SocketAddr = SIP_PEER.parse().unwrap();
    o.b.got.clear();
    for (k, (end, dur)) in [(false, 0u16), (false, 400), (true, 800), (true, 800), (true, 800)].into_iter().enumerate()
    {
        let ev = TelephoneEvent { event: 9, end, volume: 10, duration: dur };
        let mut p = sip_rtp(101, 40 + k as u16, 16_000, k == 0, &ev.to_bytes());
        assert!(o.bridge.on_sip_packet(t, o.sip_port, peer, &mut p, &mut o.net));
    }
    t = run(&mut o.bridge, &mut o.b, &mut o.net, t, 200, |b, _| b.got.iter().filter(|g| g.0 == 110).count() >= 5);
    let seqs: Vec<u16> = o.b.got.iter().map(|g| g.1).collect();
    check_interleaved(&events_of(&o.b.got, 110), 9, 4800, &seqs);
    let mut events = Vec::new();
    o.bridge.take_events(&mut events);
    assert_eq!(events.len(), 2, "both digits reported: {events:?}");

    // Injected digits toward both sides on a transcoded call.
    o.b.got.clear();
    o.net.to_sip.clear();
    o.bridge.inject_dtmf(t, &o.call, DtmfToward::Sip, '7', 120, &mut o.net).unwrap();
    o.bridge.inject_dtmf(t, &o.call, DtmfToward::Browser, '8', 120, &mut o.net).unwrap();
    run(&mut o.bridge, &mut o.b, &mut o.net, t, 600, |_, _| false);
    let pkts = parsed_to_sip(&mut o.net);
    let ev: Vec<(u16, u32, bool, TelephoneEvent)> =
        pkts.iter().filter(|p| p.0 == 101).map(|p| (p.1, p.2, p.4, TelephoneEvent::parse(&p.5).unwrap())).collect();
    let seqs: Vec<u16> = pkts.iter().map(|p| p.1).collect();
    check_interleaved(&ev, 7, 960, &seqs);
    assert!(pkts.iter().all(|p| p.3 == last_audio.3));
    let seqs: Vec<u16> = o.b.got.iter().map(|g| g.1).collect();
    check_interleaved(&events_of(&o.b.got, 110), 8, 5760, &seqs);
}

#[test]
fn a_g729_only_sip_offer_gets_the_browser_opus_and_g711_and_is_transcoded() {
    let (mut bridge, mut relay, clock) = new_bridge();
    let mut net = Net::default();
    let call = CallId::new("g729@t").unwrap();
    let (sip_tag, web) = (LegTag::new("caller").unwrap(), LegTag::new("web").unwrap());
    let offer = sip_sdp(
        1,
        "m=audio 6000 RTP/AVP 18 101\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
    );
    let reply = bridge
        .offer_to_browser(0, &call, &sip_tag, Some(&offer), &OfferFlags::default(), &mut relay, &mut net)
        .unwrap();
    let bo = &reply.browser_offer;
    assert!(bo.contains("opus/48000/2") && bo.contains("PCMU/8000") && !bo.contains("G729"), "{bo}");
    // The SIP side is narrowband: the browser is asked for narrowband Opus (RFC 7587).
    assert!(bo.contains(";maxplaybackrate=8000;sprop-maxcapturerate=8000;maxaveragebitrate=16000\r\n"), "{bo}");
    // A browser that takes only PCMU.
    let mut b = Browser::new(clock, &[(0, Codec::PCMU, 8000, None), (126, Codec::Tele, 8000, None)]);
    let answer = b.answer(bo);
    let sip_answer = bridge.browser_answer(0, &call, &web, &answer, &mut net).unwrap();
    let m = Sdp::parse(&sip_answer).unwrap().media.remove(0);
    assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![18, 101], "the SIP side's codec: {sip_answer}");
    assert!(sip_answer.contains("a=fmtp:18 annexb=no"), "{sip_answer}");
    let (sip, browser) = (Format { pt: 18, codec: Tc::G729 }, Format { pt: 0, codec: Tc::Pcmu });
    assert_eq!(bridge.transcoded_formats(&call), Some((sip, browser)));
    let now = run(&mut bridge, &mut b, &mut net, 0, 5000, |b, _| b.connected);
    assert!(b.connected);
    let sip_port = m.desc.port;
    let mut o = Out { bridge, _relay: relay, net, b, call, sip_tag, sip_port, sip_offer: String::new(), browser_answer: String::new(), now };

    let (to_sip, at_browser) = tones(&mut o, browser, sip, 60, 1);
    check_stream(&to_sip, 18, 160);
    assert!(to_sip.iter().all(|p| p.5.len() == 20), "two G.729 frames per 20 ms packet");
    let g729: Vec<Vec<u8>> = to_sip.iter().map(|p| p.5.clone()).collect();
    check_tone(&decode_all(Tc::G729, 8000, &g729), 8000, "PCMU -> G.729 at the SIP side");
    assert!(at_browser.len() >= 40 && at_browser.iter().all(|g| g.0 == 0 && g.4.len() == 160));
    let ulaw: Vec<Vec<u8>> = at_browser.iter().map(|g| g.4.clone()).collect();
    check_tone(&decode_all(Tc::Pcmu, 8000, &ulaw), 8000, "G.729 -> PCMU at the browser");

    // Telephone-event of the SIP side (101) reaches the browser as its 126.
    let peer: SocketAddr = SIP_PEER.parse().unwrap();
    let mut t = o.now;
    for (k, (end, dur)) in [(false, 0u16), (false, 400), (true, 800), (true, 800), (true, 800)].into_iter().enumerate()
    {
        let ev = TelephoneEvent { event: 3, end, volume: 10, duration: dur };
        let mut p = sip_rtp(101, 500 + k as u16, 99_000, k == 0, &ev.to_bytes());
        assert!(o.bridge.on_sip_packet(t, o.sip_port, peer, &mut p, &mut o.net));
        t += MS;
    }
    run(&mut o.bridge, &mut o.b, &mut o.net, t, 200, |b, _| b.got.iter().filter(|g| g.0 == 126).count() >= 5);
    let seqs: Vec<u16> = o.b.got.iter().map(|g| g.1).collect();
    check_interleaved(&events_of(&o.b.got, 126), 3, 800, &seqs);
}

#[test]
fn hold_on_a_transcoded_call_gates_each_direction() {
    let mut o = outgoing(
        &[(111, Codec::Opus, 48_000, Some(2)), (110, Codec::Tele, 48_000, None)],
        "m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    let (browser, sip) = (Format { pt: 111, codec: Tc::Opus }, Format { pt: 0, codec: Tc::Pcmu });
    let (to_sip, at_browser) = tones(&mut o, browser, sip, 20, 1);
    assert!(to_sip.len() >= 15 && at_browser.len() >= 15, "flowing: {} {}", to_sip.len(), at_browser.len());

    // The SIP side holds (sendonly): our answer keeps PCMU, recvonly; audio flows only toward
    // the browser.
    let answer = o
        .bridge
        .sip_reoffer(
            &o.call,
            &sip_sdp(2, "m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n"),
        )
        .unwrap();
    assert!(answer.contains("a=recvonly") && answer.contains("m=audio"), "{answer}");
    assert_eq!(Sdp::parse(&answer).unwrap().media[0].payload_types().next(), Some(0), "{answer}");
    let (to_sip, at_browser) = tones(&mut o, browser, sip, 20, 21);
    assert_eq!(to_sip.len(), 0, "nothing toward a side on hold");
    assert!(at_browser.len() >= 15, "music on hold reaches the browser: {}", at_browser.len());
    assert_eq!(o.bridge.transcoding_legs(), 1, "still transcoding");

    // Resumed.
    o.bridge
        .sip_reoffer(
            &o.call,
            &sip_sdp(3, "m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"),
        )
        .unwrap();
    let (to_sip, at_browser) = tones(&mut o, browser, sip, 20, 41);
    assert!(to_sip.len() >= 15 && at_browser.len() >= 15, "resumed: {} {}", to_sip.len(), at_browser.len());

    // The browser holds (inactive): our SIP re-offer keeps the transcoded codecs; nothing flows.
    let mid = o.b.mid.unwrap();
    let mut change = o.b.rtc.sdp_api();
    change.set_direction(mid, RtcDirection::Inactive);
    let (offer, pending) = change.apply().unwrap();
    let web = LegTag::new("web").unwrap();
    let reply = o
        .bridge
        .offer(o.now, &o.call, &web, &offer.to_sdp_string(), &OfferFlags::default(), &mut o._relay, &mut o.net)
        .unwrap();
    o.b.rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&reply.browser_answer).unwrap()).unwrap();
    assert!(reply.sip_offer.contains("a=inactive") && reply.sip_offer.contains("a=rtpmap:18 G729/8000"));
    let sip_tag = o.sip_tag.clone();
    o.bridge
        .answer(
            &o.call,
            &sip_tag,
            &sip_sdp(4, "m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=inactive\r\n"),
        )
        .unwrap();
    let (to_sip, at_browser) = tones(&mut o, browser, sip, 20, 61);
    assert_eq!((to_sip.len(), at_browser.len()), (0, 0), "held both ways");
    assert_eq!(o.bridge.transcoded_formats(&o.call), Some((sip, browser)), "the transcoder is kept");
}

#[test]
fn transcoding_disabled_fails_the_call_with_the_cause() {
    // Incoming: a G.729-only SIP offer cannot reach a browser.
    let (mut bridge, mut relay, _) = new_bridge();
    bridge.set_transcoding(false);
    let mut net = Net::default();
    let call = CallId::new("off@t").unwrap();
    let offer = sip_sdp(1, "m=audio 6000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n");
    let e = bridge
        .offer_to_browser(
            0,
            &call,
            &LegTag::new("c").unwrap(),
            Some(&offer),
            &OfferFlags::default(),
            &mut relay,
            &mut net,
        )
        .unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (ErrorCode::TranscodingDisabled, "Transcoding required but disabled"));
    assert!(!bridge.has_call(&call));

    // Outgoing: the SIP offer lists only the browser's codecs; an answer with another fails.
    let (mut bridge, mut relay, clock) = new_bridge();
    bridge.set_transcoding(false);
    let mut b = Browser::new(clock, &[(111, Codec::Opus, 48_000, Some(2))]);
    let mut change = b.rtc.sdp_api();
    change.add_media(MediaKind::Audio, RtcDirection::SendRecv, None, None, None);
    let (offer, _pending) = change.apply().unwrap();
    let web = LegTag::new("web").unwrap();
    let reply =
        bridge.offer(0, &call, &web, &offer.to_sdp_string(), &OfferFlags::default(), &mut relay, &mut net).unwrap();
    let m = Sdp::parse(&reply.sip_offer).unwrap().media.remove(0);
    assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![111], "{}", reply.sip_offer);
    let e = bridge.answer(&call, &LegTag::new("far").unwrap(), &sip_sdp(1, "m=audio 6000 RTP/AVP 0\r\n")).unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (ErrorCode::TranscodingDisabled, "Transcoding required but disabled"));
    assert_eq!(bridge.transcoding_legs(), 0);
}

#[test]
fn a_page_answered_opus_and_a_pcmu_only_phone_hear_each_other() {
    // The browser offers Opus and PCMU and is answered Opus first (it sends Opus); the phone
    // answers PCMU only. Before, the browser's Opus was dropped: now it is transcoded toward
    // the phone while the phone's PCMU stays passthrough (the browser negotiated PCMU too).
    let mut o = outgoing(
        &[(111, Codec::Opus, 48_000, Some(2)), (0, Codec::PCMU, 8000, None), (126, Codec::Tele, 8000, None)],
        "m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    let (browser, sip) = (Format { pt: 111, codec: Tc::Opus }, Format { pt: 0, codec: Tc::Pcmu });
    assert_eq!(o.bridge.transcoded_formats(&o.call), Some((sip, browser)));
    assert_eq!(o.bridge.transcoding_legs(), 0, "nothing transcoded before the browser's audio");
    let (to_sip, at_browser) = tones(&mut o, browser, sip, 60, 1);
    check_stream(&to_sip, 0, 160);
    let pcm: Vec<Vec<u8>> = to_sip.iter().map(|p| p.5.clone()).collect();
    check_tone(&decode_all(Tc::Pcmu, 8000, &pcm), 8000, "the page's Opus at the phone");
    assert_eq!(o.bridge.transcoding_legs(), 1);
    // The phone's PCMU reaches the browser untouched (passthrough): byte for byte what the
    // phone's encoder made, in PCMU.
    assert!(at_browser.len() >= 40 && at_browser.iter().all(|g| g.0 == 0), "{}", at_browser.len());
    let mut ulaw = tcodec::new_encoder(Tc::Pcmu, 8000, OpusSettings::default()).unwrap();
    let mut buf = [0u8; 400];
    let n = ulaw.encode(&tone(8000, 10 * 160, 160, 8200.0), &mut buf).unwrap();
    assert!(at_browser.iter().any(|g| g.4 == buf[..n]), "passthrough payloads");

    // The browser's digit toward the phone rides the transcoded stream (one numbering).
    let mut t = o.now;
    for (k, (end, dur)) in [(false, 0u16), (false, 400), (true, 800), (true, 800), (true, 800)].into_iter().enumerate()
    {
        let ev = TelephoneEvent { event: 2, end, volume: 10, duration: dur };
        o.b.send(t, 126, 900 + k as u64, 55_000, k == 0, &ev.to_bytes());
        t = run(&mut o.bridge, &mut o.b, &mut o.net, t, 20, |_, _| false);
    }
    let pkts = parsed_to_sip(&mut o.net);
    let ev: Vec<(u16, u32, bool, TelephoneEvent)> =
        pkts.iter().filter(|p| p.0 == 101).map(|p| (p.1, p.2, p.4, TelephoneEvent::parse(&p.5).unwrap())).collect();
    let seqs: Vec<u16> = pkts.iter().map(|p| p.1).collect();
    check_interleaved(&ev, 2, 800, &seqs);
    assert!(pkts.iter().all(|p| p.3 == to_sip[0].3), "one SSRC");
}

#[path = "bridge_reoffer_tests.rs"]
mod reoffer;
