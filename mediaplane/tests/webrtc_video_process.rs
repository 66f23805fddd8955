//! Video through the real `wavegate-mediaplane` binary on loopback: a str0m `Rtc` plays the
//! browser (full ICE, DTLS client) with an audio and a VP8 video m-line, plain UDP sockets play
//! the SIP side's audio and video peers (the video peer multiplexes RTCP and declares no RTCP
//! feedback). Checked: the SIP offer's video m-line on its own port; VP8 both ways with the
//! payload type and one SSRC toward SIP; keyframe requests at the browser at the start and
//! periodically (`--video-keyframe-interval-ms 700`); the browser's PLI reaching the SIP peer
//! about its SSRC; the SIP peer's PLI reaching the browser; the `Stats` video counters. Every
//! wait is bounded (the media loop by a 15 s wall-clock budget). RTP ports: 27400-27999.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::Browser;
use str0m::format::Codec;
use str0m::media::KeyframeRequestKind;
use str0m::rtp::RtpWrite;
use str0m::{Event, RtcConfig};
use wavegate_mediaplane::rtp::{PacketClass, RtpPacket, classify, write_rtp};
use wavegate_mediaplane::sdp::Sdp;
use wavegate_mediaplane::webrtc::rtcp_fb::{keyframe_requests, write_pli};
use wavegate_shared::protocol::{Answer, Delete, Stats};
use wavegate_shared::{LegTag, ShardId};

const BIN: &str = env!("CARGO_BIN_EXE_wavegate-mediaplane");
const BUDGET: Duration = Duration::from_secs(15);
const SIP_SSRC: u32 = 0x5eed_0001;

fn port_range() -> String {
    let base = 27_400 + (std::process::id() % 30) * 20;
    format!("{base}-{}", base + 19)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_both_ways_with_keyframe_requests_through_the_media_plane() {
    let (mp, _) = common::start_media_plane(BIN, &port_range(), &["--video-keyframe-interval-ms", "700"]).await;
    let client = mp.client.clone();
    let shard = ShardId(0);

    let start = Instant::now();
    let mut browser = Browser::new(RtcConfig::new().clear_codecs().enable_pcmu(true, false).enable_vp8(true), start);
    let (offer, _, vmid, pending) = browser.offer(true);
    let vmid = vmid.unwrap();
    let request = common::webrtc_offer("video-1@test", offer);
    let call = request.call.clone();
    let reply = client.request(shard, &request).await.expect("webrtc offer");
    browser.accept_answer(pending, &reply.browser_answer);
    let vp8 = browser.pt(Codec::Vp8);

    let sip = Sdp::parse(&reply.sip_offer).expect("SIP offer parses");
    assert_eq!(sip.media.len(), 2, "{}", reply.sip_offer);
    let v = &sip.media[1];
    assert_eq!(v.desc.kind, "video");
    assert!(v.payload_types().any(|pt| pt == vp8), "VP8 with the browser's number\n{}", reply.sip_offer);
    let sip_video_side: SocketAddr = (sip.media_address(1).unwrap(), v.desc.port).into();
    assert_ne!(v.desc.port, sip.media[0].desc.port, "its own port");

    let audio_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let video_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    // The SIP side answers VP8 as 100 (another number), rtcp-mux, no rtcp-fb: no feedback.
    let answer = format!(
        "v=0\r\no=sip 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
         m=video {} RTP/AVP 100\r\na=rtpmap:100 VP8/90000\r\na=rtcp-mux\r\n",
        audio_sock.local_addr().unwrap().port(),
        video_sock.local_addr().unwrap().port()
    );
    let to = LegTag::new("sip").unwrap();
    let done = Answer { call: call.clone(), from_tag: LegTag::new("browser").unwrap(), to_tag: to, sdp: answer };
    client.request(shard, &done).await.expect("answer");

    struct Seen {
        connected: bool,
        /// Video the browser got: (pt, payload).
        browser_video: Vec<(u8, Vec<u8>)>,
        /// Keyframe requests the browser got, and how many before the SIP peer's PLI.
        keyframe_requests: usize,
        before_sip_pli: usize,
        /// Video RTP the SIP peer got: (pt, ssrc, seq).
        sip_video: Vec<(u8, u32, u16)>,
        /// PLI/FIR the SIP peer got, about which SSRC.
        sip_requests: Vec<u32>,
    }
    let seen = tokio::task::block_in_place(|| {
        browser.sock.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
        video_sock.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let mut s = Seen {
            connected: false,
            browser_video: Vec::new(),
            keyframe_requests: 0,
            before_sip_pli: 0,
            sip_video: Vec::new(),
            sip_requests: Vec::new(),
        };
        let (mut frame, mut last_frame, mut asked) = (0u32, start, false);
        let mut buf = [0u8; 2048];
        while start.elapsed() < BUDGET {
            browser.step(&mut buf, |e| match e {
                Event::Connected => s.connected = true,
                Event::KeyframeRequest(_) => s.keyframe_requests += 1,
                Event::RtpPacket(p) if *p.header.payload_type == vp8 => {
                    s.browser_video.push((*p.header.payload_type, p.payload.to_vec()))
                }
                _ => {}
            });
            while let Ok((n, src)) = video_sock.recv_from(&mut buf) {
                assert_eq!(src, sip_video_side, "symmetric: from the video port offered");
                let raw = &mut buf[..n];
                if classify(raw) == PacketClass::Rtcp {
                    keyframe_requests(raw, |k| s.sip_requests.push(k.media_ssrc));
                } else if let Ok(p) = RtpPacket::parse(raw) {
                    s.sip_video.push((p.payload_type(), p.ssrc(), p.sequence()));
                }
            }
            if s.connected && last_frame.elapsed() >= Duration::from_millis(33) {
                last_frame = Instant::now();
                frame += 1;
                let mut api = browser.rtc.direct_api();
                let tx = api.stream_tx_by_mid(vmid, None).unwrap();
                for k in 0..3u64 {
                    let seq = u64::from(frame) * 3 + k;
                    let w = RtpWrite::new(vp8.into(), seq.into(), 3000 * frame, Instant::now(), vec![0x90, k as u8, 7]);
                    tx.write_rtp(w.marker(k == 2));
                }
                for k in 0..2u16 {
                    let mut pkt = [0u8; 64];
                    let seq = (frame as u16).wrapping_mul(2).wrapping_add(k);
                    let n = write_rtp(&mut pkt, 100, seq, 3000 * frame, SIP_SSRC, &[0x50, k as u8]).unwrap();
                    video_sock.send_to(&pkt[..n], sip_video_side).unwrap();
                }
            }
            // Once video flows both ways and a periodic request came: keyframe requests each way.
            if !asked && s.sip_video.len() >= 20 && s.browser_video.len() >= 10 && s.keyframe_requests >= 2 {
                asked = true;
                s.before_sip_pli = s.keyframe_requests;
                let rx = browser
                    .rtc
                    .direct_api()
                    .stream_rx_by_mid(vmid, None)
                    .map(|rx| rx.request_keyframe(KeyframeRequestKind::Pli));
                assert!(rx.is_some(), "the browser receives video");
                let mut pli = [0u8; 12];
                let n = write_pli(&mut pli, SIP_SSRC, 0).unwrap();
                video_sock.send_to(&pli[..n], sip_video_side).unwrap();
            }
            if asked && !s.sip_requests.is_empty() && s.keyframe_requests > s.before_sip_pli {
                break;
            }
        }
        s
    });
    assert!(seen.connected, "ICE + DTLS within {BUDGET:?}");
    assert!(seen.sip_video.len() >= 20, "SIP peer got {} video packets", seen.sip_video.len());
    let ssrc = seen.sip_video[0].1;
    assert!(seen.sip_video.iter().all(|p| p.0 == 100 && p.1 == ssrc), "pt 100, one SSRC");
    for w in seen.sip_video.windows(2) {
        assert_eq!(w[1].2, w[0].2.wrapping_add(1), "consecutive sequence numbers");
    }
    assert!(seen.browser_video.len() >= 10, "browser got {} video packets", seen.browser_video.len());
    assert!(seen.browser_video.iter().all(|(_, p)| p[0] == 0x50));
    assert!(seen.before_sip_pli >= 2, "start + periodic keyframe requests: {}", seen.before_sip_pli);
    assert!(seen.sip_requests.contains(&SIP_SSRC), "the browser's PLI about the SIP SSRC: {:?}", seen.sip_requests);
    assert!(seen.keyframe_requests > seen.before_sip_pli, "the SIP peer's PLI reached the browser");

    let q = client.request(shard, &Stats { call: call.clone() }).await.expect("stats");
    let video = q.video.expect("video counters");
    assert!(video.packets_to_sip >= 20 && video.packets_to_browser >= 10, "{video:?}");
    assert!(video.periodic_keyframe_requests >= 1 && video.keyframe_requests_from_sip == 1, "{video:?}");
    assert!(video.keyframe_requests_to_sip >= 1, "{video:?}");
    client.request(shard, &Delete { call }).await.expect("delete");
    drop(mp);
}
