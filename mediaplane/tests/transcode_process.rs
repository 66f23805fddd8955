//! A transcoded WebRTC <-> RTP call through the real `wavegate-mediaplane` binary on loopback: a
//! str0m `Rtc` plays a browser that offers Opus only (full ICE, DTLS client), a plain UDP socket
//! plays a SIP peer that answers PCMU only. A 1 kHz tone goes each way (Opus from the browser,
//! PCMU from the SIP peer); what each side receives is decoded with the project's own decoders
//! and must be a 1 kHz tone (±1 %) at a sane level. A second media plane runs with
//! `--transcoding false`: the same answer fails with "Transcoding required but disabled".
//! Ports: RTP 28200-28399 (this file only); WebRTC on a free ephemeral port. Every wait is
//! bounded (the media loop by a 20 s wall-clock budget).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::Browser;
use str0m::format::Codec;
use str0m::rtp::RtpWrite;
use str0m::{Event, RtcConfig};
use wavegate_mediaplane::rtp::{RtpPacket, write_rtp};
use wavegate_mediaplane::sdp::Sdp;
use wavegate_mediaplane::transcode::Codec as Tc;
use wavegate_mediaplane::transcode::codec::{self as tcodec, OpusSettings};
use wavegate_shared::client::ClientError;
use wavegate_shared::protocol::{Delete, ErrorCode, ShardStats};
use wavegate_shared::spawn::MediaPlane;
use wavegate_shared::ShardId;

const BIN: &str = env!("CARGO_BIN_EXE_wavegate-mediaplane");

/// The media plane binary: this build's, or `WAVEGATE_TRANSCODE_BIN` (to measure a release
/// build's CPU per call with the same test).
fn bin() -> String {
    std::env::var("WAVEGATE_TRANSCODE_BIN").unwrap_or_else(|_| BIN.to_owned())
}
const BUDGET: Duration = Duration::from_secs(20);
/// 20 ms packets each way once connected (3 s of tone).
const FRAMES: u32 = 150;
const TONE_HZ: f64 = 1000.0;

async fn start(rtp_ports: &str, transcoding: bool) -> (MediaPlane, u16) {
    common::start_media_plane(&bin(), rtp_ports, &["--transcoding", if transcoding { "true" } else { "false" }]).await
}

fn tone(rate: u32, start: usize, n: usize) -> Vec<i16> {
    (start..start + n)
        .map(|i| (8200.0 * (2.0 * std::f64::consts::PI * TONE_HZ * i as f64 / f64::from(rate)).sin()) as i16)
        .collect()
}

/// Goertzel power of `s` at `f` Hz.
fn power_at(s: &[i16], rate: u32, f: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in s {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The dominant frequency between 500 and 1500 Hz: a 1 Hz grid search of the spectrum's peak
/// refined by parabolic interpolation. Robust to the odd concealed frame in a real-time stream
/// (a zero-crossing count is not: a concealed frame's phase jump adds or drops crossings).
fn frequency(s: &[i16], rate: u32) -> f64 {
    let p = |f: f64| power_at(s, rate, f);
    let mut best = (500.0, p(500.0));
    let mut f = 500.0;
    while f <= 1500.0 {
        let v = p(f);
        if v > best.1 {
            best = (f, v);
        }
        f += 1.0;
    }
    let (a, b, c) = (p(best.0 - 1.0), best.1, p(best.0 + 1.0));
    let denom = a - 2.0 * b + c;
    if denom.abs() < f64::EPSILON { best.0 } else { best.0 + 0.5 * (a - c) / denom }
}

fn dbfs(s: &[i16]) -> f64 {
    let p = s.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / s.len().max(1) as f64;
    10.0 * (p.max(1e-9) / (32768.0 * 32768.0)).log10()
}

fn decode(codec: Tc, rate: u32, payloads: &[Vec<u8>]) -> Vec<i16> {
    let mut dec = tcodec::new_decoder(codec, rate).unwrap();
    let mut buf = vec![0i16; tcodec::MAX_FRAME_SAMPLES];
    let mut out = Vec::new();
    for p in payloads {
        let n = dec.decode(p, &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// The tone in the last second of `pcm`: 1 kHz ±1 %, RMS within 2 dB of the −15 dBFS sent.
fn check_tone(pcm: &[i16], rate: u32, what: &str) -> (f64, f64) {
    // The last second (after the jitter buffer and the codecs settled).
    let tail = &pcm[pcm.len().saturating_sub(rate as usize)..];
    let (f, level) = (frequency(tail, rate), dbfs(tail));
    assert!((f - TONE_HZ).abs() <= TONE_HZ * 0.01, "{what}: {f:.2} Hz");
    assert!((-17.0..=-13.0).contains(&level), "{what}: {level:.1} dBFS");
    (f, level)
}

/// User + system CPU time of a process, from /proc (clock ticks of 10 ms).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" of the command name: state is 3rd; utime 14th, stime 15th overall.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// An Opus-only str0m browser and its offer.
fn opus_browser(now: Instant) -> (Browser, str0m::media::Mid, String, str0m::change::SdpPendingOffer) {
    let mut browser = Browser::new(RtcConfig::new().clear_codecs().enable_opus(true, false), now);
    let (offer, mid, _, pending) = browser.offer(false);
    (browser, mid, offer, pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_browser_and_pcmu_sip_peer_hear_each_others_tone() {
    let (mut mp, webrtc_port) = start("28200-28219", true).await;
    let (client, shard) = (mp.client.clone(), ShardId(0));
    let t0 = Instant::now();
    let (mut browser, mid, offer, pending) = opus_browser(t0);
    let request = common::webrtc_offer("tc-1@test", offer);
    let call = request.call.clone();
    let reply = client.request(shard, &request).await.expect("webrtc offer");
    assert!(reply.browser_answer.contains(&format!("127.0.0.1 {webrtc_port} typ host")));
    browser.accept_answer(pending, &reply.browser_answer);
    let opus_pt = browser.pt(Codec::Opus);

    // Our SIP offer: Opus first (the browser's), then what we transcode to.
    let sip_offer = Sdp::parse(&reply.sip_offer).expect("SIP offer parses");
    let m = &sip_offer.media[0];
    let pts: Vec<u8> = m.payload_types().collect();
    assert_eq!(pts[0], opus_pt, "{}", reply.sip_offer);
    assert!(pts.contains(&0) && pts.contains(&8) && pts.contains(&18), "{}", reply.sip_offer);
    let sip_side: SocketAddr = (sip_offer.media_address(0).unwrap(), m.desc.port).into();
    let sip_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let answer = common::sip_answer(&call, common::sip_answer_pcmu(sip_sock.local_addr().unwrap().port()));
    client.request(shard, &answer).await.expect("a PCMU-only answer is transcoded, not refused");
    assert_eq!(client.request(shard, &ShardStats).await.expect("stats").transcoding_legs, 1);

    let cpu_before = cpu_ticks(mp.pid);
    let (browser_got, sip_got, connected, media_wall) = tokio::task::block_in_place(|| {
        browser.sock.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        sip_sock.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let mut opus = tcodec::new_encoder(Tc::Opus, 48_000, OpusSettings::default()).unwrap();
        let mut ulaw = tcodec::new_encoder(Tc::Pcmu, 8_000, OpusSettings::default()).unwrap();
        let mut browser_got: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut browser_seqs: Vec<(u64, u32)> = Vec::new();
        let mut sip_got: Vec<Vec<u8>> = Vec::new();
        let (mut connected, mut sent) = (false, 0u32);
        let mut next_send: Option<Instant> = None;
        let mut media_start = None;
        let mut buf = [0u8; 2048];
        let mut enc = [0u8; 1500];
        while t0.elapsed() < BUDGET {
            browser.step(&mut buf, |e| match e {
                Event::Connected => connected = true,
                Event::RtpPacket(p) => {
                    browser_seqs.push((*p.seq_no, p.header.timestamp));
                    browser_got.push((*p.header.payload_type, p.payload.to_vec()))
                }
                _ => {}
            });
            while let Ok((n, src)) = sip_sock.recv_from(&mut buf) {
                assert_eq!(src, sip_side, "symmetric RTP");
                sip_got.push(buf[..n].to_vec());
            }
            if !connected {
                continue;
            }
            // Both senders paced on a 20 ms grid (not drifting with the loop's timing).
            let due = *next_send.get_or_insert_with(Instant::now);
            if sent < FRAMES && Instant::now() >= due {
                next_send = Some(due + Duration::from_millis(20));
                media_start.get_or_insert_with(Instant::now);
                let n = opus.encode(&tone(48_000, sent as usize * 960, 960), &mut enc).unwrap();
                let seq = 7_000 + u64::from(sent);
                let tx = browser.rtc.direct_api().stream_tx_by_mid(mid, None).map(|tx| {
                    tx.write_rtp(
                        RtpWrite::new(opus_pt.into(), seq.into(), 960 * sent, Instant::now(), enc[..n].to_vec())
                            .marker(sent == 0),
                    )
                });
                assert!(tx.is_some(), "the browser's audio stream");
                let n = ulaw.encode(&tone(8_000, sent as usize * 160, 160), &mut enc).unwrap();
                let mut pkt = [0u8; 256];
                let len = write_rtp(&mut pkt, 0, 300 + sent as u16, 160 * sent, 0xfeed, &enc[..n]).unwrap();
                sip_sock.send_to(&pkt[..len], sip_side).unwrap();
                sent += 1;
            }
            if sent >= FRAMES && next_send.is_some_and(|d| Instant::now() >= d + Duration::from_millis(200)) {
                break;
            }
        }
        let wall = media_start.map_or(Duration::ZERO, |s| s.elapsed());
        for w in browser_seqs.windows(2) {
            assert_eq!(w[1].0, w[0].0 + 1, "the browser got every packet, in order");
            assert_eq!(w[1].1.wrapping_sub(w[0].1), 960, "isochronous Opus timestamps");
        }
        (browser_got, sip_got, connected, wall)
    });
    let cpu_ticks_used = cpu_ticks(mp.pid).saturating_sub(cpu_before);
    assert!(connected, "ICE + DTLS connected within {BUDGET:?}");
    assert!(browser_got.len() >= (FRAMES * 3 / 4) as usize, "browser got {}", browser_got.len());
    assert!(sip_got.len() >= (FRAMES * 3 / 4) as usize, "SIP peer got {}", sip_got.len());

    // Browser -> SIP: PCMU 0, 160 bytes, one SSRC, consecutive numbers, 160-tick steps.
    let mut pcmu = Vec::new();
    let mut last: Option<(u16, u32, u32)> = None;
    for raw in &sip_got {
        let mut raw = raw.clone();
        let p = RtpPacket::parse(&mut raw).expect("plain RTP to the SIP side");
        assert_eq!((p.payload_type(), p.payload().len()), (0, 160), "PCMU, 20 ms");
        if let Some((seq, ts, ssrc)) = last {
            assert_eq!((p.sequence(), p.timestamp(), p.ssrc()), (seq.wrapping_add(1), ts.wrapping_add(160), ssrc));
        }
        last = Some((p.sequence(), p.timestamp(), p.ssrc()));
        pcmu.push(p.payload().to_vec());
    }
    let (f_sip, l_sip) = check_tone(&decode(Tc::Pcmu, 8000, &pcmu), 8000, "Opus -> PCMU at the SIP peer");
    // SIP -> browser: Opus with the browser's number.
    assert!(browser_got.iter().all(|(pt, _)| *pt == opus_pt));
    let opus: Vec<Vec<u8>> = browser_got.into_iter().map(|(_, p)| p).collect();
    let (f_b, l_b) = check_tone(&decode(Tc::Opus, 48_000, &opus), 48_000, "PCMU -> Opus at the browser");
    // The media plane's CPU over the tone phase (one call, debug build unless built --release).
    let cpu_ms = cpu_ticks_used * 10;
    eprintln!(
        "transcode_process: SIP peer heard {f_sip:.2} Hz at {l_sip:.1} dBFS, browser {f_b:.2} Hz at {l_b:.1} dBFS; \
         media plane CPU {cpu_ms} ms over {:.2} s of one Opus<->PCMU call ({:.1} % of a core)",
        media_wall.as_secs_f64(),
        cpu_ms as f64 / (media_wall.as_secs_f64() * 10.0).max(1e-9)
    );

    client.request(shard, &Delete { call }).await.expect("delete");
    assert_eq!(client.request(shard, &ShardStats).await.expect("stats").transcoding_legs, 0);
    let _ = mp.child.start_kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_transcoding_disabled_the_call_fails_with_the_cause() {
    let (mut mp, _) = start("28220-28239", false).await;
    let (client, shard) = (mp.client.clone(), ShardId(0));
    let (_browser, _mid, offer, _pending) = opus_browser(Instant::now());
    let request = common::webrtc_offer("tc-off@test", offer);
    let call = request.call.clone();
    let reply = client
        .request(shard, &request)
        .await
        .expect("webrtc offer");
    let m = Sdp::parse(&reply.sip_offer).unwrap().media.remove(0);
    assert_eq!(m.payload_types().count(), 1, "only the browser's Opus: {}", reply.sip_offer);
    let refused = client.request(shard, &common::sip_answer(&call, common::sip_answer_pcmu(6000))).await;
    match refused {
        Err(ClientError::Remote(e)) => {
            assert_eq!(
                (e.code, e.message.as_str()),
                (ErrorCode::TranscodingDisabled, "Transcoding required but disabled")
            )
        }
        other => panic!("expected the transcoding cause, got {other:?}"),
    }
    assert_eq!(client.request(shard, &ShardStats).await.expect("stats").transcoding_legs, 0);
    client.request(shard, &Delete { call }).await.expect("delete");
    let _ = mp.child.start_kill();
}
