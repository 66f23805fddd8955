use super::*;
use proptest::prelude::*;

fn raw(login: &str, auth: &str, domain: &str) -> RawSipAccount {
    RawSipAccount {
        login: login.into(),
        auth_name: auth.into(),
        password: "demo".into(),
        domain: domain.into(),
        ..RawSipAccount::default()
    }
}

/// The seed's known problem 1, right form: legal login and auth name, visible name with a space.
#[test]
fn seed_right_example_is_accepted_and_quoted() {
    let mut r = raw("Ralf_C12441", "Ralf_C", "host.com");
    r.visible_name = "Ralf C".into();
    let a = SipAccount::parse(&r).unwrap();
    assert_eq!(a.login.as_str(), "Ralf_C12441");
    assert_eq!(a.auth_name.as_str(), "Ralf_C");
    assert_eq!(a.password.expose(), "demo");
    assert_eq!(a.from_header(), "\"Ralf C\" <sip:Ralf_C12441@host.com>");
    assert_eq!(a.aor().to_string(), "sip:Ralf_C12441@host.com");
    assert!(
        !format!("{a:?}").contains("demo"),
        "password leaked into Debug"
    );
}

/// The seed's known problem 1, wrong forms: each refused at once, naming the field.
#[test]
fn seed_wrong_examples_are_refused_naming_the_field() {
    let e = SipAccount::parse(&raw("Ralf C12441@host.com", "", "host.com")).unwrap_err();
    assert!(
        matches!(
            e,
            AccountError::HasDomain {
                field: Field::Login,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("login:"), "{e}");

    let e = SipAccount::parse(&raw("Ralf C12441", "", "host.com")).unwrap_err();
    assert!(
        matches!(
            e,
            AccountError::Char {
                field: Field::Login,
                ch: ' ',
                at: 4,
                ..
            }
        ),
        "{e:?}"
    );

    let e = SipAccount::parse(&raw("Ralf_C12441", "Ralf C", "host.com")).unwrap_err();
    assert!(
        matches!(
            e,
            AccountError::Char {
                field: Field::AuthName,
                ch: ' ',
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("authentication name:"), "{e}");

    for (field, r) in [
        (Field::Login, raw("<Ralf_C12441>", "", "host.com")),
        (Field::AuthName, raw("Ralf_C12441", "<Ralf_C>", "host.com")),
        (Field::Domain, raw("Ralf_C12441", "", "<host.com>")),
        (
            Field::Password,
            RawSipAccount {
                password: "<demo>".into(),
                ..raw("a", "", "host.com")
            },
        ),
        (
            Field::VisibleName,
            RawSipAccount {
                visible_name: "<Ralf C>".into(),
                ..raw("a", "", "host.com")
            },
        ),
        (
            Field::OutboundProxy,
            RawSipAccount {
                outbound_proxy: "<sip:127.0.0.1>".into(),
                ..raw("a", "", "host.com")
            },
        ),
        (
            Field::Port,
            RawSipAccount {
                port: "<5060>".into(),
                ..raw("a", "", "host.com")
            },
        ),
    ] {
        let e = SipAccount::parse(&r).unwrap_err();
        assert_eq!(
            e,
            AccountError::AngleBrackets {
                field,
                value: e_value(&e)
            },
            "{e}"
        );
        assert!(e.to_string().starts_with(&format!("{field}:")), "{e}");
    }
}

fn e_value(e: &AccountError) -> String {
    match e {
        AccountError::AngleBrackets { value, .. } => value.clone(),
        other => panic!("not AngleBrackets: {other:?}"),
    }
}

#[test]
fn rfc3261_user_parts() {
    // Users from RFC 3261 examples, including user-unreserved and escaped characters.
    for user in [
        "alice",
        "+1-212-555-1212",
        "1212",
        "alice;day=tuesday",
        "project%20x",
        "a&b=c+d$e,f?g/h",
        "~*'()!._-",
    ] {
        let a = SipAccount::parse(&raw(user, "", "atlanta.com"))
            .unwrap_or_else(|e| panic!("{user}: {e}"));
        assert_eq!(a.login.as_str(), user);
    }
    for bad in [
        "",
        "al ice",
        "al\"ice",
        "al<ice",
        "%2",
        "al:ice",
        "ali[ce]",
        "алиса",
    ] {
        let e = SipAccount::parse(&raw(bad, "", "atlanta.com")).unwrap_err();
        assert!(e.to_string().starts_with("login:"), "{bad}: {e}");
    }
}

#[test]
fn domains_ports_transport_proxy() {
    let mut r = raw("alice", "", "[2001:db8::1]");
    r.port = "5070".into();
    r.transport = "TCP".into();
    r.outbound_proxy = "127.0.0.1:5080".into();
    let a = SipAccount::parse(&r).unwrap();
    assert_eq!(
        a.registrar().to_string(),
        "sip:[2001:db8::1]:5070;transport=tcp"
    );
    assert_eq!(
        a.outbound_proxy,
        Some((Host::V4([127, 0, 0, 1].into()), Some(5080)))
    );
    for (field, r) in [
        (Field::Domain, raw("alice", "", "atlanta.com:5060")),
        (Field::Domain, raw("alice", "", "exa mple.com")),
        (Field::Domain, raw("alice", "", "")),
        (
            Field::Port,
            RawSipAccount {
                port: "0".into(),
                ..raw("a", "", "a.com")
            },
        ),
        (
            Field::Port,
            RawSipAccount {
                port: "65536".into(),
                ..raw("a", "", "a.com")
            },
        ),
        (
            Field::OutboundProxy,
            RawSipAccount {
                outbound_proxy: "proxy:x".into(),
                ..raw("a", "", "a.com")
            },
        ),
    ] {
        let e = SipAccount::parse(&r).unwrap_err();
        assert!(e.to_string().starts_with(&format!("{field}:")), "{e}");
    }
    let e = SipAccount::parse(&RawSipAccount {
        transport: "tls".into(),
        ..raw("a", "", "a.com")
    })
    .unwrap_err();
    assert!(e.to_string().starts_with("transport:"), "{e}");
}

#[test]
fn display_names() {
    for (input, text, rendered) in [
        ("Ralf C", "Ralf C", "\"Ralf C\""),
        ("\"Ralf C\"", "Ralf C", "\"Ralf C\""),
        ("Bob", "Bob", "\"Bob\""),
        ("\"say \\\"hi\\\"\"", "say \"hi\"", "\"say \\\"hi\\\"\""),
        ("Zoë, Ltd.", "Zoë, Ltd.", "\"Zoë, Ltd.\""),
        ("back\\slash", "back\\slash", "\"back\\\\slash\""),
    ] {
        let d = DisplayName::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(d.as_str(), text);
        assert_eq!(d.to_string(), rendered);
        assert_eq!(
            DisplayName::parse(&d.to_string()).unwrap(),
            d,
            "round trip of {input}"
        );
    }
    for bad in ["a\"b", "\"open", "line\r\nbreak", "<Ralf>"] {
        let e = DisplayName::parse(bad).unwrap_err();
        assert!(e.to_string().starts_with("visible name:"), "{bad}: {e}");
    }
}

#[test]
fn extra_headers() {
    let h = ExtraHeader::parse("X-Tenant: acme 42").unwrap();
    assert_eq!(h.to_string(), "X-Tenant: acme 42");
    for bad in [
        "NoColon",
        ": v",
        "X Bad: v",
        "X-A: a\r\nVia: evil",
        "Contact: <sip:x@y>",
        "call-id: 1",
    ] {
        let e = ExtraHeader::parse(bad).unwrap_err();
        assert!(e.to_string().starts_with("extra header:"), "{bad}: {e}");
    }
    let mut r = raw("a", "", "a.com");
    r.extra_headers = vec!["X-A: 1".into(); MAX_EXTRA_HEADERS + 1];
    assert_eq!(
        SipAccount::parse(&r).unwrap_err(),
        AccountError::TooManyHeaders
    );
}

#[test]
fn deserializes_from_session_json() {
    let r: RawSipAccount = serde_json::from_str(
        r#"{"login":"Ralf_C12441","auth_name":"Ralf_C","password":"demo","domain":"127.0.0.1","visible_name":"Ralf C","register_required":true}"#,
    )
    .unwrap();
    let a = SipAccount::parse(&r).unwrap();
    assert!(a.register_required);
    assert_eq!(a.transport, Transport::Udp);
}

fn user_strategy() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            "[A-Za-z0-9]",
            Just("-".to_string()),
            Just("_".to_string()),
            Just(".".to_string()),
            Just("!".to_string()),
            Just("~".to_string()),
            Just("*".to_string()),
            Just("'".to_string()),
            Just("(".to_string()),
            Just(")".to_string()),
            Just("&".to_string()),
            Just("=".to_string()),
            Just("+".to_string()),
            Just("$".to_string()),
            Just(",".to_string()),
            Just(";".to_string()),
            Just("?".to_string()),
            Just("/".to_string()),
            "%[0-9A-Fa-f]{2}",
        ],
        1..20,
    )
    .prop_map(|v| v.concat())
}

fn hostname_strategy() -> impl Strategy<Value = String> {
    (
        "([a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?\\.){0,3}",
        "[a-z]([a-z0-9-]{0,8}[a-z0-9])?",
    )
        .prop_map(|(a, b)| a + &b)
}

proptest! {
    /// Valid accounts are accepted and their parts render back to the input.
    #[test]
    fn valid_accounts_round_trip(login in user_strategy(), auth in user_strategy(), domain in hostname_strategy(),
                                 name in "[A-Za-z0-9 .,é\"\\\\]{1,20}", port in 1u16..) {
        let r = RawSipAccount {
            login: login.clone(), auth_name: auth.clone(), password: "pw".into(), domain: domain.clone(),
            port: port.to_string(), visible_name: name.replace('"', ""), ..RawSipAccount::default()
        };
        prop_assume!(!r.visible_name.trim().is_empty() && !r.visible_name.trim().starts_with('<'));
        let a = SipAccount::parse(&r).unwrap();
        prop_assert_eq!(a.login.as_str(), login.as_str());
        prop_assert_eq!(a.auth_name.as_str(), auth.as_str());
        prop_assert_eq!(a.domain.to_string(), domain);
        prop_assert_eq!(a.port, Some(port));
        let vn = a.visible_name.clone().unwrap();
        prop_assert_eq!(DisplayName::parse(&vn.to_string()).unwrap(), vn);
        let from = a.from_header();
        let uri = from.rsplit_once('<').unwrap().1.trim_end_matches('>');
        prop_assert_eq!(SipUri::parse(uri).unwrap(), a.aor());
    }

    /// Arbitrary strings in any field never panic; an accepted login never holds a space or '@'.
    #[test]
    fn arbitrary_fields_never_panic(login in ".{0,40}", auth in ".{0,40}", domain in ".{0,40}", name in ".{0,40}",
                                    port in ".{0,8}", proxy in ".{0,30}", hdr in ".{0,40}") {
        let r = RawSipAccount {
            login, auth_name: auth, password: "x".into(), domain, port, outbound_proxy: proxy,
            visible_name: name, extra_headers: vec![hdr], ..RawSipAccount::default()
        };
        if let Ok(a) = SipAccount::parse(&r) {
            prop_assert!(!a.login.as_str().contains([' ', '@']));
            prop_assert!(!a.auth_name.as_str().contains([' ', '@']));
            let from = a.from_header();
            prop_assert!(!from.contains(['\r', '\n']));
        }
    }

    /// Any URI that parses renders to text that parses to the same URI.
    #[test]
    fn uri_round_trip(user in proptest::option::of(user_strategy()), host in hostname_strategy(),
                      port in proptest::option::of(1u16..), params in proptest::collection::vec(("[a-z]{1,5}", proptest::option::of("[a-z0-9]{1,5}")), 0..3)) {
        let mut text = String::from("sip:");
        if let Some(u) = &user { text += u; text += "@"; }
        text += &host;
        if let Some(p) = port { text += &format!(":{p}"); }
        for (n, v) in &params { text += ";"; text += n; if let Some(v) = v { text += "="; text += v; } }
        let uri = SipUri::parse(&text).unwrap();
        prop_assert_eq!(uri.to_string(), text.clone());
        prop_assert_eq!(SipUri::parse(&uri.to_string()).unwrap(), uri);
    }

    /// Arbitrary text never panics the URI parser, and accepted URIs round-trip.
    #[test]
    fn uri_arbitrary(s in ".{0,60}") {
        if let Ok(uri) = SipUri::parse(&s) {
            prop_assert_eq!(SipUri::parse(&uri.to_string()).unwrap(), uri);
        }
    }

    /// The fuzz entry point on arbitrary and on nearly-valid field lists.
    #[test]
    fn exercise_arbitrary(text in ".{0,200}") {
        exercise(&text);
    }

    #[test]
    fn exercise_nearly_valid(login in user_strategy(), domain in hostname_strategy(), name in "[ -~]{0,20}",
                             hdr in "[ -~]{0,20}", noise in ".{0,3}") {
        exercise(&format!("{login}{noise}\n\npw\n{domain}\n\n5060\nudp\n{name}\n{hdr}"));
    }
}
