//! A WebRTC <-> RTP call through the real `wavegate-mediaplane` binary on loopback: a str0m
//! `Rtc` plays the browser (full ICE, DTLS client) on a real UDP socket, a plain UDP socket plays
//! the SIP side's RTP peer. `WebRtcOffer` answers the browser and offers RTP/AVP to the SIP side,
//! `Answer` completes the call; ICE + DTLS connect and PCMU flows both ways, passthrough. Every
//! wait is bounded (the media loop by a 15 s wall-clock budget).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::Browser;
use str0m::format::Codec;
use str0m::rtp::RtpWrite;
use str0m::{Event, RtcConfig};
use wavegate_mediaplane::rtp::{RtpPacket, write_rtp};
use wavegate_mediaplane::sdp::Sdp;
use wavegate_shared::client::ClientError;
use wavegate_shared::protocol::{Delete, ErrorCode, MediaEvent, Ping, Query, ShardStats};
use wavegate_shared::{LegTag, ShardId};

const BIN: &str = env!("CARGO_BIN_EXE_wavegate-mediaplane");
/// Packets each way that must arrive.
const PACKETS: usize = 5;
const BUDGET: Duration = Duration::from_secs(15);

fn port_range() -> String {
    let base = 42_000 + (std::process::id() % 500) * 20;
    format!("{base}-{}", base + 19)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_and_sip_peer_exchange_audio_through_the_media_plane() {
    let (mut mp, webrtc_port) = common::start_media_plane(BIN, &port_range(), &[]).await;
    let client = mp.client.clone();
    let shard = ShardId(0);

    // The browser: Opus and PCMU offered, one audio m-line, its host candidate in the offer.
    let start = Instant::now();
    let config = RtcConfig::new().clear_codecs().enable_opus(true, false).enable_pcmu(true, false);
    let mut browser = Browser::new(config, start);
    let (offer, mid, _, pending) = browser.offer(false);

    let request = common::webrtc_offer("webrtc-1@test", offer);
    let call = request.call.clone();
    let reply = client.request(shard, &request).await.expect("webrtc offer");
    let answer = &reply.browser_answer;
    assert!(answer.contains("a=ice-lite"), "ICE-lite answer:\n{answer}");
    assert!(
        answer.contains(&format!("127.0.0.1 {webrtc_port} typ host")),
        "the shard's WebRTC port:\n{answer}"
    );
    browser.accept_answer(pending, answer);
    let pcmu_pt = browser.pt(Codec::PCMU);
    let opus_pt = browser.pt(Codec::Opus);

    // The SIP offer: plain RTP/AVP on one of our RTP ports, both codecs with the browser's numbers.
    let sip_offer = Sdp::parse(&reply.sip_offer).expect("SIP offer parses");
    let m = &sip_offer.media[0];
    assert_eq!(m.desc.proto, "RTP/AVP");
    let pts: Vec<u8> = m.payload_types().collect();
    assert!(
        pts.contains(&pcmu_pt) && pts.contains(&opus_pt),
        "codecs {pts:?} in\n{}",
        reply.sip_offer
    );
    assert!(
        !reply.sip_offer.contains("ice-") && !reply.sip_offer.contains("fingerprint"),
        "no WebRTC lines"
    );
    let sip_side: SocketAddr = (sip_offer.media_address(0).unwrap(), m.desc.port).into();

    let sip_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sip_answer = common::sip_answer(&call, common::sip_answer_pcmu(sip_sock.local_addr().unwrap().port()));
    let done = client.request(shard, &sip_answer).await.expect("answer");
    assert!(done.sdp.is_empty(), "the browser already has its answer");
    let again = client.request(shard, &request).await.expect("a retried offer");
    assert_eq!(again, reply, "the same offer again is a retry and gets the same reply");

    // The media loop (blocking sockets with short read timeouts, wall clock).
    let (browser_got, mut sip_got, connected) = tokio::task::block_in_place(|| {
        browser.sock.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
        sip_sock
            .set_read_timeout(Some(Duration::from_millis(2)))
            .unwrap();
        let mut browser_got: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut sip_got: Vec<Vec<u8>> = Vec::new();
        let mut connected = false;
        let mut sent = 0usize;
        let mut last_send = start;
        let mut buf = [0u8; 2048];
        while start.elapsed() < BUDGET {
            browser.step(&mut buf, |e| match e {
                Event::Connected => connected = true,
                Event::RtpPacket(p) => browser_got.push((*p.header.payload_type, p.payload.to_vec())),
                _ => {}
            });
            if let Ok((n, src)) = sip_sock.recv_from(&mut buf) {
                assert_eq!(
                    src, sip_side,
                    "symmetric: the SIP peer hears from the port it was offered"
                );
                sip_got.push(buf[..n].to_vec());
            }
            if connected && sent < 50 && last_send.elapsed() >= Duration::from_millis(20) {
                last_send = Instant::now();
                sent += 1;
                let n = sent as u8;
                let seq = 7_000 + sent as u64;
                let mut api = browser.rtc.direct_api();
                let tx = api.stream_tx_by_mid(mid, None).unwrap();
                tx.write_rtp(RtpWrite::new(
                    pcmu_pt.into(),
                    seq.into(),
                    160 * seq as u32,
                    Instant::now(),
                    vec![0xB0, n, 1, 2],
                ));
                let mut pkt = [0u8; 64];
                let len = write_rtp(
                    &mut pkt,
                    0,
                    300 + sent as u16,
                    160 * sent as u32,
                    0xfeed,
                    &[0xC0, n, 9],
                )
                .unwrap();
                sip_sock.send_to(&pkt[..len], sip_side).unwrap();
            }
            if browser_got.len() >= PACKETS && sip_got.len() >= PACKETS {
                break;
            }
        }
        (browser_got, sip_got, connected)
    });

    assert!(connected, "ICE + DTLS connected within {BUDGET:?}");
    assert!(
        browser_got.len() >= PACKETS,
        "browser got {} RTP packets",
        browser_got.len()
    );
    assert!(
        sip_got.len() >= PACKETS,
        "SIP peer got {} RTP packets",
        sip_got.len()
    );
    // SIP -> browser: PCMU as the browser numbered it, payload untouched, in order.
    for (i, (pt, payload)) in browser_got.iter().enumerate() {
        assert_eq!(*pt, pcmu_pt);
        assert_eq!(payload[0], 0xC0);
        assert_eq!(payload[2], 9);
        if i > 0 {
            assert!(payload[1] > browser_got[i - 1].1[1], "in order");
        }
    }
    // Browser -> SIP: plain RTP, PCMU 0, one SSRC, consecutive sequence numbers.
    let mut ssrc = None;
    let mut last_seq: Option<u16> = None;
    for raw in &mut sip_got {
        let p = RtpPacket::parse(raw).expect("plain RTP to the SIP side");
        assert_eq!(p.payload_type(), 0);
        assert_eq!(&p.payload()[..1], &[0xB0]);
        assert_eq!(&p.payload()[2..], &[1, 2]);
        assert_eq!(
            *ssrc.get_or_insert(p.ssrc()),
            p.ssrc(),
            "one SSRC towards SIP"
        );
        if let Some(last) = last_seq {
            assert_eq!(p.sequence(), last.wrapping_add(1), "consecutive");
        }
        last_seq = Some(p.sequence());
    }

    let stats = client
        .request(shard, &Query { call: call.clone() })
        .await
        .expect("query");
    assert!(stats.offerer.rtp_packets_in >= PACKETS as u64, "{stats:?}");
    assert!(stats.answerer.rtp_packets_in >= PACKETS as u64, "{stats:?}");
    assert_eq!(
        stats.answerer.remote_rtp,
        Some(sip_sock.local_addr().unwrap())
    );
    let pong = client.request(shard, &Ping).await.expect("ping");
    assert_eq!(pong.calls, 1);

    // The browser hangs up (RTCP BYE, DTLS close_notify): the host hears LegFailed once.
    browser.close();
    let event = tokio::time::timeout(Duration::from_secs(5), mp.events.recv()).await;
    match event {
        Ok(Some((s, MediaEvent::LegFailed { call: c, tag, cause }))) => {
            assert_eq!((s, &c, tag.as_ref().map(LegTag::as_str)), (shard, &call, Some("browser")));
            assert!(cause.contains("closed"), "{cause}");
        }
        other => panic!("expected LegFailed for the browser leg, got {other:?}"),
    }
    client
        .request(shard, &Delete { call: call.clone() })
        .await
        .expect("delete");
    let gone = client.request(shard, &Query { call }).await;
    assert!(
        matches!(gone, Err(ClientError::Remote(ref e)) if e.code == ErrorCode::UnknownCall),
        "{gone:?}"
    );
    assert_eq!(client.request(shard, &Ping).await.expect("ping").calls, 0);

    // Strangers at the WebRTC port are counted per shard (ShardStats), not only dropped.
    let before = client.request(shard, &ShardStats).await.expect("shard stats");
    assert_eq!(before.shard, shard);
    let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = format!("127.0.0.1:{webrtc_port}");
    for junk in [&[0x80u8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9][..], &[22, 254, 253, 0], &[0, 1, 0, 0]] {
        stranger.send_to(junk, &target).unwrap();
    }
    let mut seen = before.webrtc.clone();
    for _ in 0..50 {
        seen = client.request(shard, &ShardStats).await.expect("shard stats").webrtc;
        if seen.strangers + seen.malformed_stun >= before.webrtc.strangers + before.webrtc.malformed_stun + 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen.strangers >= before.webrtc.strangers + 2 && seen.malformed_stun > before.webrtc.malformed_stun,
        "{before:?} -> {seen:?}"
    );
    assert_eq!(client.request(shard, &Ping).await.expect("ping").calls, 0, "still answering");
}
