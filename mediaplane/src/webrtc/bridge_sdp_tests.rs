use super::*;

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 126\r\nc=IN IP4 0.0.0.0\r\n\
a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:126 telephone-event/8000\r\na=fmtp:126 0-16\r\n";

#[test]
fn narrowband_caps_extend_the_opus_fmtp_only() {
    let s = cap_opus_rate(OFFER, 8000);
    assert!(
        s.contains("a=fmtp:111 minptime=10;useinbandfec=1;maxplaybackrate=8000;sprop-maxcapturerate=8000;maxaveragebitrate=16000\r\n"),
        "{s}"
    );
    assert!(s.contains("a=fmtp:126 0-16\r\n"), "telephone-event untouched: {s}");
    assert_eq!(s.lines().count(), OFFER.lines().count(), "no line added or lost");
    let m = Sdp::parse(&s).unwrap().media.remove(0);
    assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![111, 0, 126]);
}

#[test]
fn wideband_caps_and_a_missing_fmtp_line_is_added() {
    let offer = OFFER.replace("a=fmtp:111 minptime=10;useinbandfec=1\r\n", "");
    let s = cap_opus_rate(&offer, 16_000);
    assert!(
        s.contains("a=rtpmap:111 opus/48000/2\r\na=fmtp:111 maxplaybackrate=16000;sprop-maxcapturerate=16000;maxaveragebitrate=24000\r\n"),
        "{s}"
    );
    // An Opus line without the channel count is Opus too.
    let s = cap_opus_rate(&OFFER.replace("opus/48000/2", "OPUS/48000"), 8000);
    assert!(s.contains(";maxplaybackrate=8000;"), "{s}");
}

#[test]
fn other_rates_leave_the_sdp_alone() {
    assert_eq!(cap_opus_rate(OFFER, 48_000), OFFER);
    let no_opus = OFFER.replace("opus/48000/2", "G722/8000");
    assert_eq!(cap_opus_rate(&no_opus, 8000), no_opus);
}

fn audio_line(attrs: &str) -> Media {
    let text = format!("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 18\r\n{attrs}");
    Sdp::parse(&text).unwrap().media.remove(0)
}

#[test]
fn the_sip_sides_ptime_is_read_and_bounded() {
    assert_eq!(ptime_of(&audio_line("a=ptime:30\r\n")), 30);
    assert_eq!(ptime_of(&audio_line("a=ptime:10\r\na=sendrecv\r\n")), 10);
    assert_eq!(ptime_of(&audio_line("")), 20, "the RTP/AVP default");
    assert_eq!(ptime_of(&audio_line("a=ptime:25\r\n")), 20, "not a packet time we send");
    assert_eq!(ptime_of(&audio_line("a=ptime:x\r\n")), 20);
}

/// Drives a transcoder built for the SIP side's ptime with 20 ms Opus from the browser and
/// returns the sizes and timestamp steps of what reaches the SIP side.
fn sip_packets(sip: Format, ptime: u32) -> (Vec<usize>, Vec<u32>) {
    use crate::transcode::call::Side;
    use crate::transcode::codec::{self, OpusSettings};
    let browser = Format { pt: 111, codec: TcCodec::Opus };
    let mut call = new_transcoder(sip, browser, 0x1234, ptime, CallSettings::default()).unwrap();
    let mut enc = codec::new_encoder(TcCodec::Opus, 48_000, OpusSettings::default()).unwrap();
    let tone: Vec<i16> = (0..960).map(|i| (5000.0 * (i as f64 * 0.131).sin()) as i16).collect();
    let (mut p, mut out) = ([0u8; 1500], [0u8; 1500]);
    let (mut sizes, mut stamps) = (Vec::new(), Vec::new());
    for k in 0..40u32 {
        let now = k as u64 * 20_000_000;
        let n = enc.encode(&tone, &mut p).unwrap();
        call.on_audio(Side::Browser, now, 111, k as u16, k * 960, &p[..n]);
        for _ in 0..8 {
            let Some((side, n)) = call.poll(now, &mut out).unwrap() else { break };
            if side == Side::Sip {
                sizes.push(n - 12);
                stamps.push(u32::from_be_bytes([out[4], out[5], out[6], out[7]]));
            }
        }
    }
    (sizes, stamps.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect())
}

#[test]
fn the_transcoder_sends_the_sip_side_its_ptime() {
    let (sizes, steps) = sip_packets(Format { pt: 0, codec: TcCodec::Pcmu }, 30);
    assert!(sizes.len() > 10 && sizes.iter().all(|n| *n == 240), "30 ms of PCMU: {sizes:?}");
    assert!(steps.iter().all(|s| *s == 240), "{steps:?}");
    // Speex carries only whole 20 ms frames: 30 ms falls back to 20 ms instead of failing.
    let (sizes, steps) = sip_packets(Format { pt: 98, codec: TcCodec::SpeexNb }, 30);
    assert!(!sizes.is_empty() && steps.iter().all(|s| *s == 160), "{steps:?}");
}

#[test]
fn opus_without_the_channel_count_is_opus() {
    let text = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 96 97\r\na=rtpmap:96 opus/48000\r\na=rtpmap:97 opus/48000/1\r\n";
    let m = Sdp::parse(text).unwrap().media.remove(0);
    for pt in [96, 97] {
        let c = leg_codec(&m, pt).unwrap();
        assert_eq!((c.codec, c.channels), (Codec::Opus, Some(2)), "pt {pt}");
    }
    // What we write for it back to the SIP side is the RFC's form.
    assert_eq!(rtpmap_value(&leg_codec(&m, 96).unwrap()), "opus/48000/2");
}

/// A str0m-like offer with audio and a video m-line of VP8, its RTX, and two H.264 formats.
const AV_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 104\r\na=mid:1\r\n\
a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\na=rtcp-fb:96 ccm fir\r\n\
a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 profile-level-id=42e01f;packetization-mode=1\r\na=rtcp-fb:102 nack pli\r\n\
a=rtpmap:104 H264/90000\r\na=fmtp:104 profile-level-id=4d001f;packetization-mode=1\r\n\
a=rtcp-fb:* transport-cc\r\na=sendrecv\r\n";

#[test]
fn narrowing_the_video_keeps_one_format_and_the_rest_of_the_offer() {
    let s = narrow_video(AV_OFFER, 102);
    let sdp = Sdp::parse(&s).unwrap();
    assert_eq!(sdp.media[1].payload_types().collect::<Vec<_>>(), vec![102], "{s}");
    assert_eq!(sdp.media[0].payload_types().collect::<Vec<_>>(), vec![111], "audio untouched");
    for gone in ["a=rtpmap:96 ", "a=rtcp-fb:96 ", "a=rtpmap:97 ", "a=fmtp:97 ", "a=rtpmap:104 ", "a=fmtp:104 "] {
        assert!(!s.contains(gone), "{gone} dropped: {s}");
    }
    for kept in ["a=fmtp:102 profile-level-id=42e01f;packetization-mode=1\r\n", "a=rtcp-fb:102 nack pli\r\n",
        "a=rtcp-fb:* transport-cc\r\n", "a=mid:1\r\n", "a=sendrecv\r\n", "a=rtpmap:111 opus/48000/2\r\n"] {
        assert!(s.contains(kept), "{kept} kept: {s}");
    }
    // VP8 keeps its RTX format (apt=96) and drops both H.264.
    let s = narrow_video(AV_OFFER, 96);
    assert_eq!(Sdp::parse(&s).unwrap().media[1].payload_types().collect::<Vec<_>>(), vec![96, 97], "{s}");
    assert!(s.contains("a=fmtp:97 apt=96\r\n") && !s.contains("H264"), "{s}");
}

#[test]
fn narrowing_to_a_format_not_offered_or_without_video_changes_nothing() {
    assert_eq!(narrow_video(AV_OFFER, 100), AV_OFFER);
    assert_eq!(narrow_video(OFFER, 0), OFFER, "no video m-line");
    // Combined with the Opus cap, in either order, both apply.
    let both = narrow_video(&cap_opus_rate(AV_OFFER, 8000), 104);
    assert!(both.contains("a=fmtp:111 maxplaybackrate=8000;sprop-maxcapturerate=8000;maxaveragebitrate=16000\r\n"), "{both}");
    assert_eq!(Sdp::parse(&both).unwrap().media[1].payload_types().collect::<Vec<_>>(), vec![104]);
}

mod narrow_props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever format of the video m-line is kept, the result parses, lists it (and only
        /// its RTX besides), keeps the audio m-line and drops no line of another m-line.
        #[test]
        fn narrowing_keeps_one_format_and_parses(keep in prop::sample::select(vec![96u8, 97, 102, 104]), other in 0u8..128) {
            let s = narrow_video(AV_OFFER, keep);
            let sdp = Sdp::parse(&s).unwrap();
            let pts: Vec<u8> = sdp.media[1].payload_types().collect();
            let expect = if keep == 96 { vec![96, 97] } else { vec![keep] };
            prop_assert_eq!(pts, expect);
            prop_assert_eq!(sdp.media[0].payload_types().collect::<Vec<_>>(), vec![111]);
            prop_assert!(s.contains("a=rtcp-fb:* transport-cc\r\n"));
            // A payload type the m-line does not list changes nothing.
            if ![96u8, 97, 102, 104].contains(&other) {
                prop_assert_eq!(narrow_video(AV_OFFER, other), AV_OFFER);
            }
        }

        /// Arbitrary text never panics (it is only ever our own SDP, but cheaply sure).
        #[test]
        fn narrowing_arbitrary_text_never_panics(text in "(m=video 9 X( [0-9]{1,3}){0,4}|a=(rtpmap|fmtp|rtcp-fb):[0-9*]{0,3}( [a-z=0-9;/]{0,12})?|m=audio 9 X 0|[ -~]{0,20})(\r?\n(m=video 9 X( [0-9]{1,3}){0,4}|a=(rtpmap|fmtp|rtcp-fb):[0-9*]{0,3}( [a-z=0-9;/]{0,12})?|[ -~]{0,20})){0,12}", keep in 0u8..128) {
            let _ = narrow_video(&text, keep);
        }
    }
}
