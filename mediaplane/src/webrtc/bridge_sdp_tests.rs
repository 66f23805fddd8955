use super::*;

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 126\r\nc=IN IP4 0.0.0.0\r\n\
a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:126 telephone-event/8000\r\na=fmtp:126 0-16\r\n";

#[test]
fn narrowband_caps_extend_the_opus_fmtp_only() {
    let s = cap_opus_rate(OFFER, 8000);
    assert!(
        s.contains("a=fmtp:111 minptime=10;useinbandfec=1;maxplaybackrate=8000;sprop-maxcapturerate=8000\r\n"),
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
        s.contains("a=rtpmap:111 opus/48000/2\r\na=fmtp:111 maxplaybackrate=16000;sprop-maxcapturerate=16000\r\n"),
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
