use super::*;
use proptest::prelude::*;

/// RFC 8866 §5 (and RFC 4566 §5) example session description.
const RFC4566: &str = "v=0\r\no=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\ns=SDP Seminar\r\n\
i=A Seminar on the session description protocol\r\nu=http://www.example.com/seminars/sdp.pdf\r\n\
e=j.doe@example.com (Jane Doe)\r\nc=IN IP4 224.2.17.12/127\r\nt=2873397496 2873404696\r\n\
a=recvonly\r\nm=audio 49170 RTP/AVP 0\r\nm=video 51372 RTP/AVP 99\r\na=rtpmap:99 h263-1998/90000\r\n";

/// RFC 3264 §10.1 offer (LF line ends on purpose: accepted on input).
const RFC3264_OFFER: &str = "v=0\no=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\ns=\n\
c=IN IP4 host.atlanta.example.com\nt=0 0\nm=audio 49170 RTP/AVP 0 8 97\na=rtpmap:0 PCMU/8000\n\
a=rtpmap:8 PCMA/8000\na=rtpmap:97 iLBC/8000\nm=video 51372 RTP/AVP 31 32\na=rtpmap:31 H261/90000\n\
a=rtpmap:32 MPV/90000\n";

/// A WebRTC-flavoured offer with ICE, rtcp-mux, fmtp and a=rtcp (RFC 3605).
const ICE_OFFER: &str = "v=0\r\no=- 42 2 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n\
m=audio 50000 RTP/AVP 111 0 101\r\nc=IN IP4 192.0.2.10\r\na=rtcp:50001 IN IP4 192.0.2.10\r\n\
a=candidate:1 1 UDP 2130706431 192.0.2.10 50000 typ host\r\na=ice-ufrag:abcd\r\n\
a=ice-pwd:0123456789abcdef01234567\r\na=end-of-candidates\r\na=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n\
a=sendonly\r\na=ptime:20\r\n";

#[test]
fn rfc4566_example_parses_and_roundtrips() {
    let sdp = Sdp::parse(RFC4566).unwrap();
    assert_eq!(sdp.media.len(), 2);
    assert_eq!(sdp.media[0].desc.port, 49170);
    assert_eq!(sdp.media[1].desc.formats, vec!["99"]);
    let c = sdp.session_connection().unwrap();
    assert_eq!(c.address, Host::Ip("224.2.17.12".parse().unwrap()));
    assert_eq!(c.suffix.as_deref(), Some("127"));
    let map = sdp.media[1].rtpmap(99).unwrap();
    assert_eq!((map.encoding.as_str(), map.clock_rate, map.channels), ("h263-1998", 90000, None));
    assert_eq!(sdp.write(), RFC4566, "written back byte for byte");
    assert_eq!(sdp.media_address(0), Some("224.2.17.12".parse().unwrap()));
}

#[test]
fn rfc3264_offer_with_host_names() {
    let mut sdp = Sdp::parse(RFC3264_OFFER).unwrap();
    assert_eq!(sdp.media_address(0), None, "a host name is not an address to send to");
    assert_eq!(sdp.media[0].payload_types().collect::<Vec<_>>(), vec![0, 8, 97]);
    assert_eq!(sdp.media[0].direction(), Direction::SendRecv);
    sdp.rewrite_for_relay("127.0.0.1".parse().unwrap(), &[20000, 20002]).unwrap();
    let text = sdp.write();
    assert!(text.contains("c=IN IP4 127.0.0.1\r\n"));
    assert!(text.contains("m=audio 20000 RTP/AVP 0 8 97\r\n"));
    assert!(text.contains("m=video 20002 RTP/AVP 31 32\r\n"));
    assert_eq!(text.matches("atlanta").count(), 1, "only o= keeps the offerer's name: {text}");
}

#[test]
fn rewrite_strips_ice_keeps_codecs_and_direction() {
    let mut sdp = Sdp::parse(ICE_OFFER).unwrap();
    assert_eq!(sdp.media[0].rtcp(), Some((50001, Some("192.0.2.10".parse().unwrap()))));
    sdp.rewrite_for_relay("10.0.0.1".parse().unwrap(), &[30000]).unwrap();
    let text = sdp.write();
    for gone in ["candidate", "ice-", "end-of-candidates", "192.0.2.10"] {
        assert!(!text.contains(gone), "{gone} left in {text}");
    }
    for kept in [
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=fmtp:101 0-16",
        "a=sendonly",
        "a=ptime:20",
        "a=rtcp:30001 IN IP4 10.0.0.1",
        "c=IN IP4 10.0.0.1",
        "m=audio 30000 RTP/AVP 111 0 101",
    ] {
        assert!(text.contains(kept), "{kept} missing in {text}");
    }
    // Session c= inserted before t= when the offer had only a media-level one.
    let c = text.find("c=IN IP4 10.0.0.1").unwrap();
    assert!(c < text.find("t=0 0").unwrap());
}

#[test]
fn rtcp_mux_announces_rtp_port() {
    let text = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0\r\na=rtcp:4000\r\na=rtcp-mux\r\nm=audio 0 RTP/AVP 0\r\n";
    let mut sdp = Sdp::parse(text).unwrap();
    sdp.rewrite_for_relay("127.0.0.1".parse().unwrap(), &[5000, 5002]).unwrap();
    assert_eq!(sdp.media[0].rtcp(), Some((5000, None)));
    assert_eq!(sdp.media[1].desc.port, 0, "rejected stream stays rejected");
    assert_eq!(
        sdp.rewrite_for_relay("127.0.0.1".parse().unwrap(), &[1]),
        Err(SdpError::PortCount { given: 1, media: 2 })
    );
}

#[test]
fn bad_bodies_are_clear_errors() {
    assert_eq!(Sdp::parse(""), Err(SdpError::NoVersion));
    assert_eq!(Sdp::parse("hello"), Err(SdpError::Syntax { line: 1 }));
    assert_eq!(Sdp::parse("v=1\r\n"), Err(SdpError::NoVersion));
    assert_eq!(Sdp::parse("v=0\r\ns=x\r\n"), Err(SdpError::Missing('o')));
    assert_eq!(Sdp::parse("v=0\r\no=a 1 1 IN IP4 h\r\n"), Err(SdpError::Missing('s')));
    let base = "v=0\r\no=a 1 1 IN IP4 h\r\ns=-\r\n";
    assert_eq!(
        Sdp::parse(&format!("{base}m=audio x RTP/AVP 0\r\n")),
        Err(SdpError::Field { line: 4, what: "media line" })
    );
    assert_eq!(
        Sdp::parse(&format!("{base}c=IN IP4 1.2.3.4.5/\r\n")),
        Err(SdpError::Field { line: 4, what: "connection" })
    );
    assert_eq!(
        Sdp::parse(&format!("{base}c=IN IP6 1.2.3.4\r\n")),
        Err(SdpError::Field { line: 4, what: "connection" })
    );
    assert_eq!(Sdp::parse(&format!("{base}m=audio 1 RTP/AVP\r\n")).unwrap_err(), SdpError::Field { line: 4, what: "media line" });
    assert_eq!(Sdp::parse(&format!("{base}X=1\r\n")), Err(SdpError::Syntax { line: 4 }));
}

#[test]
fn odd_known_attributes_stay_verbatim() {
    let text = "v=0\r\no=a 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\na=rtcp:x\r\n";
    let sdp = Sdp::parse(text).unwrap();
    assert!(sdp.media[0].rtpmap(0).is_none());
    assert_eq!(sdp.write(), text);
}

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._+-]{1,10}"
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![any::<[u8; 4]>().prop_map(IpAddr::from), any::<[u16; 8]>().prop_map(IpAddr::from)]
}

fn connection() -> impl Strategy<Value = Connection> {
    let host = prop_oneof![
        ip().prop_map(Host::Ip),
        ("[a-z][a-z0-9-]{0,8}\\.example", prop_oneof![Just("IP4"), Just("IP6")])
            .prop_map(|(name, at)| Host::Name { addr_type: at.into(), name })
    ];
    (host, proptest::option::of("[0-9]{1,3}(/[0-9])?")).prop_map(|(address, suffix)| Connection { address, suffix })
}

fn attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        (0u8..128, "[A-Za-z0-9-]{1,12}", 1u32..200_000, proptest::option::of(1u16..9))
            .prop_map(|(pt, encoding, clock_rate, channels)| Attribute::RtpMap(RtpMap { pt, encoding, clock_rate, channels })),
        (0u8..128, "[ -~]{0,30}").prop_map(|(pt, params)| Attribute::Fmtp { pt, params }),
        (any::<u16>(), proptest::option::of(ip())).prop_map(|(port, address)| Attribute::Rtcp { port, address }),
        Just(Attribute::RtcpMux),
        prop_oneof![
            Just(Direction::SendRecv),
            Just(Direction::SendOnly),
            Just(Direction::RecvOnly),
            Just(Direction::Inactive)
        ]
        .prop_map(Attribute::Direction),
        ("x-[a-z]{1,8}|ptime|candidate|ice-ufrag", proptest::option::of("[ -~]{0,20}"))
            .prop_map(|(name, value)| Attribute::Other { name, value }),
    ]
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        connection().prop_map(Line::Connection),
        attribute().prop_map(Line::Attribute),
        ("[ibtr]", "[ -~]{0,30}").prop_map(|(k, value)| Line::Other { kind: k.chars().next().unwrap_or('i'), value }),
    ]
}

fn media() -> impl Strategy<Value = Media> {
    (
        "audio|video|application",
        any::<u16>(),
        proptest::option::of(1u16..4),
        "RTP/AVP|RTP/SAVP|UDP/TLS/RTP/SAVPF",
        proptest::collection::vec("[0-9]{1,3}|[a-z]{1,5}", 1..5),
        proptest::collection::vec(line(), 0..8),
    )
        .prop_map(|(kind, port, port_count, proto, formats, lines)| Media {
            desc: MediaDesc { kind, port, port_count, proto, formats },
            lines,
        })
}

fn sdp() -> impl Strategy<Value = Sdp> {
    (token(), "[0-9]{1,12}", "[ -~]{0,20}", proptest::collection::vec(line(), 0..6), proptest::collection::vec(media(), 0..4))
        .prop_map(|(user, id, name, extra, media)| {
            let mut session = vec![
                Line::Version(0),
                Line::Origin(Origin {
                    username: user,
                    session_id: id.clone(),
                    session_version: id,
                    addr_type: "IP4".into(),
                    address: "192.0.2.1".into(),
                }),
                Line::SessionName(name),
            ];
            session.extend(extra);
            Sdp { session, media }
        })
}

proptest! {
    #[test]
    fn parse_write_roundtrip(x in sdp()) {
        prop_assert_eq!(Sdp::parse(&x.write()), Ok(x.clone()));
        exercise(&x.write());
    }

    #[test]
    fn arbitrary_text_never_panics(s in "(v=0\r\n)?([a-z]=[ -~]{0,40}\r?\n){0,12}") {
        exercise(&s);
    }

    #[test]
    fn arbitrary_unicode_never_panics(s in ".{0,300}") {
        exercise(&s);
    }

    #[test]
    fn rewrite_points_every_live_stream_at_us(x in sdp(), base in 1000u16..30000) {
        let mut x = x;
        let ports: Vec<u16> = (0..x.media.len() as u16).map(|i| base + 2 * i).collect();
        let was_live: Vec<bool> = x.media.iter().map(|m| m.desc.port != 0).collect();
        x.rewrite_for_relay("127.0.0.1".parse().unwrap(), &ports).unwrap();
        let text = x.write();
        prop_assert!(!text.contains("a=candidate") && !text.contains("a=ice-"));
        for (i, m) in x.media.iter().enumerate() {
            prop_assert_eq!(m.desc.port, if was_live[i] { ports[i] } else { 0 });
            prop_assert_eq!(x.media_address(i), Some("127.0.0.1".parse().unwrap()));
        }
    }
}
