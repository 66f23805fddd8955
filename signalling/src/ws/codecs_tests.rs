use super::*;
use proptest::prelude::*;

/// Chromium 156's audio offer (trimmed to the lines that matter) plus a VP8 video section.
const CHROME: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 98\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\n\
a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:98 H264/90000\r\n\
a=fmtp:98 profile-level-id=42e01f\r\n";

fn rule(strip: &[&str], prefer: &[&str]) -> CodecRule {
    CodecRule {
        strip: strip.iter().map(|s| s.to_string()).collect(),
        prefer: prefer.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn families_from_user_agents() {
    let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
    let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91";
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let safari = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15";
    assert_eq!(Family::from_user_agent(chrome), Family::Chrome);
    assert_eq!(Family::from_user_agent(edge), Family::Edge);
    assert_eq!(Family::from_user_agent(firefox), Family::Firefox);
    assert_eq!(Family::from_user_agent(safari), Family::Safari);
    assert_eq!(Family::from_user_agent(""), Family::Other);
    assert_eq!(Family::from_user_agent("curl/8"), Family::Other);
}

#[test]
fn the_seeds_edge_policy_strips_silk_and_g722() {
    let out = apply(CHROME, &rule(&["SILK", "G722"], &[]), Family::Edge, true).unwrap();
    assert!(
        out.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111 63 0 8 13 110 126\r\n"),
        "{out}"
    );
    assert!(!out.contains("G722"), "{out}");
    // Everything else is untouched, line endings included.
    assert_eq!(
        out.len(),
        CHROME.len() - " 9".len() - "a=rtpmap:9 G722/8000\r\n".len()
    );
    assert!(out.ends_with("a=fmtp:98 profile-level-id=42e01f\r\n"));
}

#[test]
fn strip_removes_every_line_of_the_codec_and_its_rtx() {
    let out = apply(CHROME, &rule(&["vp8"], &[]), Family::Chrome, true).unwrap();
    assert!(out.contains("m=video 9 UDP/TLS/RTP/SAVPF 98\r\n"), "{out}");
    for gone in ["a=rtpmap:96", "a=rtcp-fb:96", "a=rtpmap:97", "a=fmtp:97"] {
        assert!(!out.contains(gone), "{gone} left in {out}");
    }
    let out = apply(CHROME, &rule(&["opus"], &[]), Family::Chrome, true).unwrap();
    assert!(
        out.contains("m=audio 9 UDP/TLS/RTP/SAVPF 63 9 0 8 13 110 126\r\n"),
        "{out}"
    );
    assert!(
        !out.contains("a=rtcp-fb:111") && !out.contains("a=fmtp:111"),
        "{out}"
    );
}

#[test]
fn prefer_reorders_offers_only() {
    let r = rule(&[], &["PCMU", "G722"]);
    let out = apply(CHROME, &r, Family::Firefox, true).unwrap();
    assert!(
        out.contains("m=audio 9 UDP/TLS/RTP/SAVPF 0 9 111 63 8 13 110 126\r\n"),
        "{out}"
    );
    assert_eq!(apply(CHROME, &r, Family::Firefox, false).unwrap(), CHROME);
}

#[test]
fn static_payload_types_without_rtpmap_are_named() {
    let sdp = "v=0\nm=audio 4000 RTP/AVP 0 8 9 101\na=rtpmap:101 telephone-event/8000\n";
    let out = apply(sdp, &rule(&["G722", "pcma"], &[]), Family::Other, true).unwrap();
    assert_eq!(
        out,
        "v=0\nm=audio 4000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\n"
    );
}

#[test]
fn a_section_left_without_codecs_is_refused() {
    let sdp = "v=0\r\nm=audio 4000 RTP/AVP 9 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    assert_eq!(
        apply(sdp, &rule(&["G722"], &[]), Family::Edge, true),
        Err(PolicyError::NothingLeft {
            family: "edge",
            media: "audio".into()
        })
    );
    // A rejected section (port 0) is not judged.
    let sdp = "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n";
    assert_eq!(
        apply(sdp, &rule(&["VP8"], &[]), Family::Edge, true).unwrap(),
        sdp
    );
}

#[test]
fn an_empty_policy_changes_nothing() {
    assert_eq!(
        apply(CHROME, &rule(&[], &[]), Family::Chrome, true).unwrap(),
        CHROME
    );
    assert_eq!(
        apply("garbage", &rule(&["opus"], &[]), Family::Chrome, true).unwrap(),
        "garbage"
    );
}

proptest! {
    #[test]
    fn never_panics_and_is_idempotent(
        sdp in "(v=0|m=audio [0-9]{1,5} RTP/AVP( [0-9]{1,3}){0,5}|a=rtpmap:[0-9]{1,3} (opus|PCMU|G722|rtx|telephone-event)/8000|a=fmtp:[0-9]{1,3} apt=[0-9]{1,3}|a=rtcp-fb:[0-9]{1,3} nack|x)(\r\n(v=0|m=audio [0-9]{1,5} RTP/AVP( [0-9]{1,3}){0,5}|a=rtpmap:[0-9]{1,3} (opus|PCMU|G722|rtx)/8000|a=fmtp:[0-9]{1,3} apt=[0-9]{1,3}|x)){0,8}",
        strip in proptest::collection::vec("(opus|PCMU|G722|rtx)", 0..3),
        prefer in proptest::collection::vec("(opus|PCMU|G722)", 0..3),
    ) {
        let r = CodecRule { strip, prefer };
        if let Ok(once) = apply(&sdp, &r, Family::Chrome, true) {
            prop_assert_eq!(apply(&once, &r, Family::Chrome, true), Ok(once.clone()));
        }
    }

    #[test]
    fn arbitrary_text_never_panics(s in ".{0,300}") {
        let _ = apply(&s, &rule(&["opus", "G722"], &["PCMU"]), Family::Edge, true);
    }
}
