//! An incoming SIP call to a browser through the real `wavegate-mediaplane` binary on loopback:
//! `OfferToBrowser` turns the SIP caller's offer (PCMU + telephone-event/8000) into the
//! browser's offer (the media plane's WebRTC leg offers, ICE-lite), a str0m `Rtc` plays the
//! browser and answers, `BrowserAnswer` returns the SIP answer. Audio flows both ways; DTMF is
//! passed through both ways (one `DtmfReceived` per digit, with the sender's tag) and injected
//! toward both sides (`InjectDtmf`: start with marker, continuations, three end packets). Every
//! wait is bounded.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::Browser;

use str0m::change::SdpOffer;
use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, Mid};
use str0m::rtp::RtpWrite;
use str0m::{Event, Input, RtcConfig};
use wavegate_mediaplane::rtp::{RtpPacket, write_rtp};
use wavegate_mediaplane::sdp::Sdp;
use wavegate_mediaplane::webrtc::dtmf::TelephoneEvent;
use wavegate_shared::client::EventReceiver;
use wavegate_shared::protocol::{
    BrowserAnswer, Delete, DtmfToward, InjectDtmf, MediaEvent, OfferFlags, OfferToBrowser, Ping, Stats,
};
use wavegate_shared::{CallId, LegTag, ShardId};

const BIN: &str = env!("CARGO_BIN_EXE_wavegate-mediaplane");
const BUDGET: Duration = Duration::from_secs(15);
const TELE: u8 = 101;

fn port_range() -> String {
    let base = 52_000 + (std::process::id() % 500) * 20;
    format!("{base}-{}", base + 19)
}

/// (pt, seq, ts, marker, payload)
type Pkt = (u8, u16, u32, bool, Vec<u8>);

struct World {
    browser: Browser,
    mid: Mid,
    sip_sock: UdpSocket,
    sip_side: SocketAddr,
    connected: bool,
    browser_got: Vec<Pkt>,
    sip_got: Vec<Pkt>,
    events: Vec<MediaEvent>,
    browser_seq: u64,
    sip_seq: u16,
}

impl World {
    fn drain_browser(&mut self) {
        self.browser.drain(|e| match e {
            Event::Connected => self.connected = true,
            Event::RtpPacket(p) => self.browser_got.push((
                *p.header.payload_type,
                p.header.sequence_number,
                p.header.timestamp,
                p.header.marker,
                p.payload.to_vec(),
            )),
            _ => {}
        });
    }

    /// Runs sockets and the browser until `done` or `limit`; every 20 ms `send` may emit.
    fn run(
        &mut self,
        events: &mut EventReceiver,
        limit: Duration,
        mut send: impl FnMut(&mut World, usize),
        done: impl Fn(&World) -> bool,
    ) {
        let start = Instant::now();
        let mut last = start;
        let mut tick = 0usize;
        let mut buf = [0u8; 2048];
        while start.elapsed() < limit && !done(self) {
            self.drain_browser();
            // Several datagrams per turn; str0m is drained after each.
            for _ in 0..16 {
                if !self.browser.receive(&mut buf) {
                    break;
                }
                self.drain_browser();
            }
            self.browser.rtc.handle_input(Input::Timeout(Instant::now())).unwrap();
            for _ in 0..16 {
                let Ok((n, src)) = self.sip_sock.recv_from(&mut buf) else { break };
                assert_eq!(src, self.sip_side, "symmetric RTP from the answered port");
                let p = RtpPacket::parse(&mut buf[..n]).expect("plain RTP to the SIP side");
                self.sip_got.push((p.payload_type(), p.sequence(), p.timestamp(), p.marker(), p.payload().to_vec()));
            }
            while let Ok((_, e)) = events.try_recv() {
                self.events.push(e);
            }
            if self.connected && last.elapsed() >= Duration::from_millis(20) {
                last = Instant::now();
                send(self, tick);
                tick += 1;
            }
        }
    }

    fn browser_send(&mut self, pt: u8, ts: u32, marker: bool, payload: &[u8]) {
        self.browser_seq += 1;
        let mut api = self.browser.rtc.direct_api();
        let tx = api.stream_tx_by_mid(self.mid, None).unwrap();
        tx.write_rtp(
            RtpWrite::new(pt.into(), self.browser_seq.into(), ts, Instant::now(), payload.to_vec()).marker(marker),
        );
    }

    fn sip_send(&mut self, pt: u8, ts: u32, marker: bool, payload: &[u8]) {
        self.sip_seq = self.sip_seq.wrapping_add(1);
        let mut pkt = [0u8; 256];
        let n = write_rtp(&mut pkt, pt, self.sip_seq, ts, 0xfeed, payload).unwrap();
        if marker {
            pkt[1] |= 0x80;
        }
        self.sip_sock.send_to(&pkt[..n], self.sip_side).unwrap();
    }
}

/// A 5-packet RFC 4733 train for `code` (start, two continuations, ends) at tick `k` of 0..8.
fn train(k: usize, code: u8) -> Option<(bool, TelephoneEvent)> {
    let (end, duration) = match k {
        0 => (false, 0),
        1 => (false, 160),
        2 => (false, 320),
        3..=5 => (true, 480),
        _ => return None,
    };
    Some((k == 0, TelephoneEvent { event: code, end, volume: 10, duration }))
}

/// The telephone-events of `pkts` for event `code`, checked as one RFC 4733 train.
fn check_train(pkts: &[Pkt], code: u8, duration: u16, what: &str) {
    let ev: Vec<(&Pkt, TelephoneEvent)> = pkts
        .iter()
        .filter(|p| p.0 == TELE)
        .map(|p| (p, TelephoneEvent::parse(&p.4).unwrap()))
        .filter(|(_, e)| e.event == code)
        .collect();
    assert!(ev.len() >= 5, "{what}: start, continuation(s), three ends: {ev:?}");
    assert!(ev[0].0.3 && !ev[0].1.end, "{what}: the start has the marker");
    assert!(ev.iter().all(|(p, _)| p.2 == ev[0].0.2), "{what}: one timestamp");
    for w in ev.windows(2) {
        assert_eq!(w[1].0.1, w[0].0.1.wrapping_add(1), "{what}: increasing sequence numbers");
    }
    let ends: Vec<_> = ev.iter().filter(|(_, e)| e.end).collect();
    assert_eq!(ends.len(), 3, "{what}: three end packets");
    assert!(ends.iter().all(|(_, e)| e.duration == duration), "{what}: {ends:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_call_to_a_browser_with_audio_and_dtmf_both_ways() {
    let (mut mp, webrtc_port) = common::start_media_plane(BIN, &port_range(), &[]).await;
    let client = mp.client.clone();
    let shard = ShardId(0);

    let sip_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sip_offer = format!(
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0 {TELE}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:{TELE} telephone-event/8000\r\n\
         a=fmtp:{TELE} 0-16\r\na=sendrecv\r\n",
        sip_sock.local_addr().unwrap().port()
    );
    let call = CallId::new("incoming-1@test").unwrap();
    let (caller, web) = (LegTag::new("caller").unwrap(), LegTag::new("web").unwrap());
    let reply = client
        .request(
            shard,
            &OfferToBrowser {
                call: call.clone(),
                from_tag: caller.clone(),
                sip_sdp: Some(sip_offer),
                flags: OfferFlags::default(),
            },
        )
        .await
        .expect("offer to browser");
    let offer = reply.browser_offer;
    assert!(offer.contains("a=ice-lite") && offer.contains("a=setup:actpass"), "{offer}");
    assert!(offer.contains(&format!("127.0.0.1 {webrtc_port} typ host")), "{offer}");

    // The browser answers (full ICE, controlling against our ICE-lite offer).
    let mut config = RtcConfig::new().clear_codecs();
    config.codec_config().add_config(0.into(), None, Codec::PCMU, Frequency::EIGHT_KHZ, None, FormatParams::default());
    config.codec_config().add_config(
        TELE.into(),
        None,
        Codec::Tele,
        Frequency::EIGHT_KHZ,
        None,
        FormatParams::default(),
    );
    let mut browser = Browser::new(config, Instant::now());
    let offer = SdpOffer::from_sdp_string(&offer).unwrap();
    let answer = browser.rtc.sdp_api().accept_offer(offer).unwrap().to_sdp_string();
    let mid = Mid::from(answer.lines().find_map(|l| l.strip_prefix("a=mid:")).unwrap().trim());

    let sip_answer = client
        .request(shard, &BrowserAnswer { call: call.clone(), to_tag: web.clone(), sdp: answer })
        .await
        .expect("browser answer")
        .sdp;
    let sdp = Sdp::parse(&sip_answer).expect("SIP answer parses");
    let m = &sdp.media[0];
    assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![0, TELE], "{sip_answer}");
    assert!(!sip_answer.contains("ice-") && !sip_answer.contains("fingerprint"), "plain RTP/AVP\n{sip_answer}");
    let sip_side: SocketAddr = (sdp.media_address(0).unwrap(), m.desc.port).into();

    browser.sock.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
    sip_sock.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
    let mut w = World {
        browser,
        mid,
        sip_sock,
        sip_side,
        connected: false,
        browser_got: Vec::new(),
        sip_got: Vec::new(),
        events: Vec::new(),
        browser_seq: 1000,
        sip_seq: 300,
    };
    let events = &mut mp.events;

    // Audio both ways, then each side sends one digit: browser "5", SIP "#".
    tokio::task::block_in_place(|| {
        w.run(
            events,
            BUDGET,
            |w, k| {
                let ts = 160 * k as u32;
                if k < 10 {
                    w.browser_send(0, ts, false, &[0xB0, k as u8]);
                    w.sip_send(0, ts, false, &[0xC0, k as u8]);
                } else if let Some((marker, ev)) = train(k - 10, 5) {
                    w.browser_send(TELE, 1600, marker, &ev.to_bytes());
                    let (m2, ev2) = train(k - 10, 11).unwrap();
                    w.sip_send(TELE, 1600, m2, &ev2.to_bytes());
                }
            },
            |w| w.events.len() >= 2 && w.tick_done(),
        )
    });
    assert!(w.connected, "ICE + DTLS connected within {BUDGET:?}");
    let audio_b: Vec<&Pkt> = w.browser_got.iter().filter(|p| p.0 == 0).collect();
    let audio_s: Vec<&Pkt> = w.sip_got.iter().filter(|p| p.0 == 0).collect();
    assert!(audio_b.len() >= 5 && audio_b.iter().all(|p| p.4[0] == 0xC0), "browser audio {audio_b:?}");
    assert!(audio_s.len() >= 5 && audio_s.iter().all(|p| p.4[0] == 0xB0), "SIP audio {audio_s:?}");
    check_train(&w.browser_got, 11, 480, "SIP '#' at the browser");
    check_train(&w.sip_got, 5, 480, "browser '5' at the SIP side");
    let mut got = w.events.clone();
    got.sort_by_key(|e| format!("{e:?}"));
    let mut want = vec![
        MediaEvent::DtmfReceived { call: call.clone(), tag: Some(web.clone()), digit: '5', duration_ms: 60 },
        MediaEvent::DtmfReceived { call: call.clone(), tag: Some(caller.clone()), digit: '#', duration_ms: 60 },
    ];
    want.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(got, want, "once per digit, with the sender's tag");

    // Per-leg figures through `Stats`.
    let q = client.request(shard, &Stats { call: call.clone() }).await.expect("stats");
    assert_eq!((q.browser.tag.as_ref(), q.sip.tag.as_ref()), (Some(&web), Some(&caller)));
    assert!(q.browser.packets_in >= 5 && q.sip.packets_in >= 5, "{q:?}");
    assert!(q.browser.packets_out >= 5 && q.sip.packets_out >= 5, "{q:?}");
    assert_eq!((q.browser.lost_in, q.sip.lost_in), (0, 0), "loopback loses nothing: {q:?}");

    // Injected: '7' toward the browser, '3' toward the SIP side, 120 ms each.
    for (toward, digit) in [(DtmfToward::Browser, '7'), (DtmfToward::Sip, '3')] {
        client
            .request(shard, &InjectDtmf { call: call.clone(), toward, digit, duration_ms: 120 })
            .await
            .expect("inject dtmf");
    }
    let has_ends = |pkts: &[Pkt], code: u8| {
        pkts.iter()
            .filter(|p| p.0 == TELE && TelephoneEvent::parse(&p.4).is_ok_and(|e| e.event == code && e.end))
            .count()
            >= 3
    };
    tokio::task::block_in_place(|| {
        w.run(events, Duration::from_secs(5), |_, _| {}, |w| has_ends(&w.browser_got, 7) && has_ends(&w.sip_got, 3))
    });
    check_train(&w.browser_got, 7, 960, "injected '7' at the browser");
    check_train(&w.sip_got, 3, 960, "injected '3' at the SIP side");
    assert_eq!(w.events.len(), 2, "injected digits are not reported as received");

    client.request(shard, &Delete { call }).await.expect("delete");
    assert_eq!(client.request(shard, &Ping).await.expect("ping").calls, 0);
}

impl World {
    /// Both digits' trains arrived (three end packets each side).
    fn tick_done(&self) -> bool {
        let ends = |pkts: &[Pkt], code: u8| {
            pkts.iter()
                .filter(|p| p.0 == TELE && TelephoneEvent::parse(&p.4).is_ok_and(|e| e.event == code && e.end))
                .count()
        };
        ends(&self.browser_got, 11) >= 3 && ends(&self.sip_got, 5) >= 3
    }
}
