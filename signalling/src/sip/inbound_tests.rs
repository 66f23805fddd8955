use proptest::prelude::*;

use super::*;

fn req(start: &str, extra: &str, body: &str, cl: Option<&str>) -> Vec<u8> {
    let cl = cl
        .map(str::to_string)
        .unwrap_or_else(|| body.len().to_string());
    format!(
        "{start}\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\nFrom: <sip:bob@127.0.0.1>;tag=ft\r\n\
         To: <sip:alice@127.0.0.1>{extra}\r\nCall-ID: c1@x\r\nCSeq: 7 {method}\r\nMax-Forwards: 70\r\n\
         Content-Length: {cl}\r\n\r\n{body}",
        method = start.split(' ').next().unwrap_or("")
    )
    .into_bytes()
}

#[test]
fn options_out_of_dialog_is_answered() {
    let (_, inb) = parse_request(&req("OPTIONS sip:127.0.0.1 SIP/2.0", "", "", None)).unwrap();
    assert_eq!(inb.method, Method::Options);
    assert_eq!(inb.cseq, 7);
    assert_eq!(inb.user, None);
    assert_eq!(route(&inb, |_| false, |_| false), Route::Options);
}

#[test]
fn invite_for_unknown_user_is_404_known_user_is_delivered() {
    let (_, inb) = parse_request(&req("INVITE sip:carol@127.0.0.1 SIP/2.0", "", "", None)).unwrap();
    assert_eq!(
        route(&inb, |u| u == "alice", |_| false),
        Route::Reply(404, "Not Found")
    );
    let (_, inb) = parse_request(&req("INVITE sip:alice@127.0.0.1 SIP/2.0", "", "", None)).unwrap();
    assert_eq!(
        route(&inb, |u| u == "alice", |_| false),
        Route::NewInvite {
            user: "alice".into()
        }
    );
    let (_, inb) =
        parse_request(&req("MESSAGE sip:alice@127.0.0.1 SIP/2.0", "", "hi", None)).unwrap();
    assert_eq!(
        route(&inb, |u| u == "alice", |_| false),
        Route::NewMessage {
            user: "alice".into()
        }
    );
}

#[test]
fn unsupported_methods_are_405() {
    for m in [
        "SUBSCRIBE",
        "PUBLISH",
        "REGISTER",
        "UPDATE",
        "PRACK",
    ] {
        let (_, inb) = parse_request(&req(
            &format!("{m} sip:alice@127.0.0.1 SIP/2.0"),
            "",
            "",
            None,
        ))
        .unwrap();
        assert_eq!(
            route(&inb, |_| true, |_| true),
            Route::Reply(405, "Method Not Allowed"),
            "{m}"
        );
    }
    assert!(!allow_value().contains("SUBSCRIBE"));
    // REFER and NOTIFY are allowed, but only inside a dialog.
    let (_, inb) = parse_request(&req("REFER sip:alice@127.0.0.1 SIP/2.0", "", "", None)).unwrap();
    assert_eq!(route(&inb, |_| true, |_| true), Route::Reply(481, "Call/Transaction Does Not Exist"));
    assert!(allow_value().starts_with("INVITE, ACK, BYE, CANCEL, OPTIONS"));
}

#[test]
fn in_dialog_requests_go_to_their_dialog_or_481() {
    let (_, inb) = parse_request(&req(
        "BYE sip:alice@127.0.0.1 SIP/2.0",
        ";tag=ours",
        "",
        None,
    ))
    .unwrap();
    let key = DialogKey {
        call_id: "c1@x".into(),
        local_tag: "ours".into(),
        remote_tag: "ft".into(),
    };
    assert_eq!(inb.dialog_key(), Some(key.clone()));
    assert_eq!(route(&inb, |_| false, |k| *k == key), Route::Dialog(key));
    assert_eq!(
        route(&inb, |_| true, |_| false),
        Route::Reply(481, "Call/Transaction Does Not Exist")
    );
    let (_, inb) = parse_request(&req("BYE sip:alice@127.0.0.1 SIP/2.0", "", "", None)).unwrap();
    assert_eq!(
        route(&inb, |_| true, |_| true),
        Route::Reply(481, "Call/Transaction Does Not Exist")
    );
    let (_, inb) = parse_request(&req(
        "ACK sip:alice@127.0.0.1 SIP/2.0",
        ";tag=gone",
        "",
        None,
    ))
    .unwrap();
    assert_eq!(route(&inb, |_| true, |_| false), Route::Absorb);
}

#[test]
fn malformed_requests_are_refused_with_a_reason() {
    // Truncated body: Content-Length larger than what arrived.
    let e = parse_request(&req(
        "INVITE sip:alice@127.0.0.1 SIP/2.0",
        "",
        "v=0\r\n",
        Some("300"),
    ))
    .unwrap_err();
    assert_eq!(
        e,
        InboundError::ContentLength {
            declared: "300".into(),
            actual: 5
        }
    );
    let e = parse_request(&req(
        "INVITE sip:alice@127.0.0.1 SIP/2.0",
        "",
        "",
        Some("abc"),
    ))
    .unwrap_err();
    assert!(matches!(e, InboundError::ContentLength { .. }), "{e:?}");
    // CSeq method mismatch.
    let bad = String::from_utf8(req("INFO sip:alice@127.0.0.1 SIP/2.0", "", "", None))
        .unwrap()
        .replace("7 INFO", "7 BYE");
    assert!(matches!(
        parse_request(bad.as_bytes()),
        Err(InboundError::CseqMethod { .. })
    ));
    // No From tag.
    let bad = String::from_utf8(req("OPTIONS sip:127.0.0.1 SIP/2.0", "", "", None))
        .unwrap()
        .replace(";tag=ft", "");
    assert_eq!(
        parse_request(bad.as_bytes()).unwrap_err(),
        InboundError::NoFromTag
    );
    // No Call-ID.
    let bad = String::from_utf8(req("OPTIONS sip:127.0.0.1 SIP/2.0", "", "", None))
        .unwrap()
        .replace("Call-ID: c1@x\r\n", "");
    assert_eq!(
        parse_request(bad.as_bytes()).unwrap_err(),
        InboundError::Header("Call-ID")
    );
    // Garbage start line, no header/body separator, a response.
    assert!(matches!(
        parse_request(b"HELLO WORLD\r\n\r\n"),
        Err(InboundError::Parse(_))
    ));
    assert!(matches!(
        parse_request(b"OPTIONS sip:a SIP/2.0\r\nVia: x"),
        Err(InboundError::Parse(_))
    ));
    assert!(matches!(
        parse_request(b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\n\r\n"),
        Err(InboundError::NotARequest | InboundError::Parse(_))
    ));
}

#[test]
fn compact_headers_are_accepted() {
    let msg = "OPTIONS sip:alice@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-2\r\n\
               f: <sip:bob@h>;tag=a\r\nt: <sip:alice@h>\r\ni: cid\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n";
    let (_, inb) = parse_request(msg.as_bytes()).unwrap();
    assert_eq!(
        (
            inb.call_id.as_str(),
            inb.from_tag.as_str(),
            inb.user.as_deref()
        ),
        ("cid", "a", Some("alice"))
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        exercise(&bytes);
    }

    #[test]
    fn mutated_requests_never_panic(cut in 0usize..400, pos in 0usize..400, byte in any::<u8>()) {
        let mut msg = req("INVITE sip:alice@127.0.0.1 SIP/2.0", ";tag=x", "v=0\r\n", None);
        if pos < msg.len() { msg[pos] = byte; }
        msg.truncate(cut.min(msg.len()));
        exercise(&msg);
    }
}
