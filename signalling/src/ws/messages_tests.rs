use super::*;
use proptest::prelude::*;

#[test]
fn parses_every_client_message() {
    let m = parse(
        r#"{"type":"connect","sipOptions":{"login":"Ralf_C12441","authenticationName":"Ralf_C",
        "password":"demo","domain":"host.com","port":5060,"registerRequired":true,"visibleName":"Ralf C"}}"#,
    )
    .unwrap();
    let ClientMsg::Connect {
        sip_options,
        app_key,
    } = m
    else {
        panic!("{m:?}")
    };
    let raw = sip_options.to_raw();
    assert_eq!(raw.login, "Ralf_C12441");
    assert_eq!(raw.auth_name, "Ralf_C");
    assert_eq!(raw.port, "5060");
    assert!(raw.register_required);
    assert_eq!(raw.visible_name, "Ralf C");
    assert_eq!(app_key, "");
    for text in [
        r#"{"type":"connect","appKey":"k1"}"#,
        r#"{"type":"connect","authToken":"k1"}"#,
    ] {
        assert!(
            matches!(parse(text), Ok(ClientMsg::Connect { app_key, .. }) if app_key == "k1"),
            "{text}"
        );
    }
    assert_eq!(
        parse(r#"{"type":"call","callId":"c1","callee":"echo","sdp":"v=0"}"#).unwrap(),
        ClientMsg::Call {
            call_id: "c1".into(),
            callee: "echo".into(),
            visible_name: String::new(),
            sdp: "v=0".into()
        }
    );
    assert_eq!(
        parse(r#"{"type":"sendDTMF","callId":"c1","digits":"12#","dtmfType":"INFO"}"#).unwrap(),
        ClientMsg::SendDtmf {
            call_id: "c1".into(),
            digits: "12#".into(),
            dtmf_type: DtmfType::Info
        }
    );
    assert_eq!(
        parse(r#"{"type":"sendDTMF","callId":"c1","digits":"1"}"#).unwrap(),
        ClientMsg::SendDtmf {
            call_id: "c1".into(),
            digits: "1".into(),
            dtmf_type: DtmfType::Rfc2833
        }
    );
    assert_eq!(parse(r#"{"type":"ping"}"#).unwrap(), ClientMsg::Ping {});
    assert_eq!(
        parse(r#"{"type":"transfer","callId":"c1","target":"carol"}"#).unwrap(),
        ClientMsg::Transfer {
            call_id: "c1".into(),
            target: "carol".into()
        }
    );
    assert_eq!(
        parse(r#"{"type":"sendMessage","callId":"c1","text":"hi"}"#).unwrap(),
        ClientMsg::SendMessage {
            call_id: "c1".into(),
            text: "hi".into()
        }
    );
    assert_eq!(
        parse(r#"{"type":"hold","callId":"x"}"#).unwrap(),
        ClientMsg::Hold {
            call_id: "x".into()
        }
    );
    assert_eq!(
        parse(r#"{"type":"connect","sipOptions":{"port":"5070"}}"#)
            .map(|m| match m {
                ClientMsg::Connect { sip_options, .. } => sip_options.to_raw().port,
                _ => String::new(),
            })
            .unwrap(),
        "5070"
    );
}

#[test]
fn refusals_name_the_problem() {
    assert!(matches!(parse("{not json"), Err(ParseError::Json(_))));
    assert_eq!(parse("[1,2]"), Err(ParseError::NoType));
    assert_eq!(parse(r#"{"type":7}"#), Err(ParseError::NoType));
    assert_eq!(
        parse(r#"{"type":"dance"}"#),
        Err(ParseError::UnknownType("dance".into()))
    );
    let e = parse(r#"{"type":"call","callId":"c1","callee":"echo"}"#).unwrap_err();
    assert!(e.to_string().contains("sdp"), "{e}");
    assert!(e.to_string().starts_with("bad \"call\" message"), "{e}");
    let e = parse(r#"{"type":"transfer","callId":"c1"}"#).unwrap_err();
    assert!(e.to_string().contains("target"), "{e}");
    let e = parse(r#"{"type":"sendDTMF","callId":"c","digits":"1","dtmfType":"SMS"}"#).unwrap_err();
    assert!(e.to_string().contains("SMS"), "{e}");
}

#[test]
fn server_messages_are_camel_case_json() {
    let m = ServerMsg::Call {
        call_id: "c1".into(),
        status: "ESTABLISHED",
        cause: "Answered".into(),
    };
    assert_eq!(
        m.to_json(),
        r#"{"type":"call","callId":"c1","status":"ESTABLISHED","cause":"Answered"}"#
    );
    let m = ServerMsg::Session {
        status: SessionStatus::Failed,
        cause: "login: x".into(),
    };
    assert_eq!(
        m.to_json(),
        r#"{"type":"session","status":"FAILED","cause":"login: x"}"#
    );
    assert_eq!(ServerMsg::Pong.to_json(), r#"{"type":"pong"}"#);
    let m = ServerMsg::Dtmf {
        call_id: "c".into(),
        digit: "#".into(),
        dtmf_type: DtmfType::Rfc2833,
    };
    assert_eq!(
        m.to_json(),
        r##"{"type":"dtmf","callId":"c","digit":"#","dtmfType":"RFC2833"}"##
    );
    let m = ServerMsg::Message {
        call_id: "c".into(),
        content_type: "text/plain".into(),
        text: "hi".into(),
    };
    assert_eq!(
        m.to_json(),
        r#"{"type":"message","callId":"c","contentType":"text/plain","text":"hi"}"#
    );
    let m = ServerMsg::Transfer {
        call_id: "c".into(),
        status: "succeeded",
        code: 200,
        cause: "transfer succeeded: 200 OK".into(),
    };
    assert_eq!(
        m.to_json(),
        r#"{"type":"transfer","callId":"c","status":"succeeded","code":200,"cause":"transfer succeeded: 200 OK"}"#
    );
    let m = ServerMsg::Reoffer {
        call_id: "c".into(),
        sdp: "v=0\r\n".into(),
    };
    assert_eq!(
        m.to_json(),
        r#"{"type":"reoffer","callId":"c","sdp":"v=0\r\n"}"#
    );
}

proptest! {
    #[test]
    fn parse_never_panics(s in ".{0,200}") {
        let _ = parse(&s);
    }

    #[test]
    fn parse_never_panics_on_typed_objects(t in "(connect|call|hangup|hold|sendDTMF|transfer|sendMessage|ping|x)", body in ".{0,80}") {
        let _ = parse(&format!("{{\"type\":\"{t}\",{body}}}"));
        let _ = parse(&format!("{{\"type\":\"{t}\",\"callId\":{body}}}"));
    }
}
