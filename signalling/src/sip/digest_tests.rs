use super::*;
use proptest::prelude::*;

/// RFC 2617 §3.5: the Mufasa example (MD5, qop=auth).
#[test]
fn rfc2617_example() {
    let c = Challenge::parse(
        "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
    )
    .unwrap();
    assert!(c.qop_auth);
    assert_eq!(c.algorithm, Algorithm::Md5);
    let r = response(
        &c,
        1,
        "GET",
        "/dir/index.html",
        "Mufasa",
        "Circle Of Life",
        "0a4f113b",
    );
    assert_eq!(r, "6629fae49393a05397450978507c4ef1");
}

/// RFC 7616 §3.9.1: the same request answered with SHA-256 and with MD5.
#[test]
fn rfc7616_examples() {
    let base = "realm=\"http-auth@example.org\", qop=\"auth, auth-int\", nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
    let sha = format!("Digest {base}, algorithm=SHA-256");
    let md5 = format!("Digest {base}, algorithm=MD5");
    let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    let c = Challenge::choose([md5.as_str(), sha.as_str()]).unwrap();
    assert_eq!(c.algorithm, Algorithm::Sha256, "the stronger offer wins");
    assert_eq!(
        response(
            &c,
            1,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle of Life",
            cnonce
        ),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
    let c = Challenge::parse(&md5).unwrap();
    assert_eq!(
        response(
            &c,
            1,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle of Life",
            cnonce
        ),
        "8ca523f5e9506fed4657c9700eebdbec"
    );
}

/// A challenge as Kamailio sends it with both qop flags (`www_challenge(realm, "3")`): rsipstack's
/// typed header refuses it; we choose `auth`, count nonces, and echo opaque.
#[test]
fn qop_list_auth_auth_int_chooses_auth() {
    let captured = "Digest realm=\"127.0.0.1\", nonce=\"aGYvZWFhNWIxZmQ0NzFlZWRkY2RjMzg2YjQ2Yjk3NjY=\", qop=\"auth,auth-int\"";
    let c = Challenge::parse(captured).unwrap();
    assert!(c.qop_auth);
    let mut s = DigestSession::new(c.clone(), AuthHeader::Authorization);
    let first = s.authorize("REGISTER", "sip:127.0.0.1", "alice", "alicepw", "abc123");
    assert!(first.contains("qop=auth, nc=00000001"), "{first}");
    assert!(first.contains("cnonce=\"abc123\""), "{first}");
    assert!(!first.contains("auth-int"), "{first}");
    let expected = response(
        &c,
        1,
        "REGISTER",
        "sip:127.0.0.1",
        "alice",
        "alicepw",
        "abc123",
    );
    assert!(
        first.contains(&format!("response=\"{expected}\"")),
        "{first}"
    );
    let second = s.authorize("REGISTER", "sip:127.0.0.1", "alice", "alicepw", "abc124");
    assert!(second.contains("nc=00000002"), "{second}");
    // Independent check of the qop=auth formula for this capture (MD5 by hand).
    let ha1 = Algorithm::Md5.hash("alice:127.0.0.1:alicepw");
    let ha2 = Algorithm::Md5.hash("REGISTER:sip:127.0.0.1");
    let manual = Algorithm::Md5.hash(&format!("{ha1}:{}:00000001:abc123:auth:{ha2}", c.nonce));
    assert_eq!(expected, manual);
}

#[test]
fn no_qop_is_rfc2069() {
    let c = Challenge::parse("Digest realm=\"x\", nonce=\"n\"").unwrap();
    assert!(!c.qop_auth);
    let mut s = DigestSession::new(c, AuthHeader::ProxyAuthorization);
    let h = s.authorize("INVITE", "sip:bob@x", "alice", "pw", "cn");
    assert!(
        !h.contains("qop") && !h.contains("cnonce") && !h.contains("nc="),
        "{h}"
    );
}

#[test]
fn stale_and_sess() {
    let c =
        Challenge::parse("digest realm=\"x\",nonce=\"n2\",stale=TRUE,algorithm=MD5-sess,qop=auth")
            .unwrap();
    assert!(c.stale);
    assert_eq!(c.algorithm, Algorithm::Md5Sess);
    let ha1 = Algorithm::Md5.hash(&format!("{}:n2:cn", Algorithm::Md5.hash("u:x:p")));
    let ha2 = Algorithm::Md5.hash("REGISTER:sip:x");
    assert_eq!(
        response(&c, 1, "REGISTER", "sip:x", "u", "p", "cn"),
        Algorithm::Md5.hash(&format!("{ha1}:n2:00000001:cn:auth:{ha2}"))
    );
}

#[test]
fn refusals() {
    assert_eq!(
        Challenge::parse("Basic realm=\"x\""),
        Err(DigestError::NotDigest("Basic".into()))
    );
    assert_eq!(
        Challenge::parse("Digest nonce=\"n\""),
        Err(DigestError::Missing("realm"))
    );
    assert_eq!(
        Challenge::parse("Digest realm=\"x\""),
        Err(DigestError::Missing("nonce"))
    );
    assert!(matches!(
        Challenge::parse("Digest realm=\"x\", nonce=\"n\", qop=\"auth-int\""),
        Err(DigestError::Qop(_))
    ));
    assert!(matches!(
        Challenge::parse("Digest realm=\"x\", nonce=\"n\", algorithm=SHA-512-256"),
        Err(DigestError::Algorithm(_))
    ));
    assert!(matches!(
        Challenge::parse("Digest realm=\"x, nonce=\"n\""),
        Err(DigestError::Malformed(_))
    ));
    assert_eq!(
        Challenge::choose(std::iter::empty()),
        Err(DigestError::NoChallenge)
    );
}

proptest! {
    /// Arbitrary text never panics; parsed challenges answer with well-formed headers.
    #[test]
    fn arbitrary_challenges(s in ".{0,200}") {
        if let Ok(c) = Challenge::parse(&s) {
            let mut d = DigestSession::new(c, AuthHeader::Authorization);
            let h = d.authorize("REGISTER", "sip:x", "u", "p", "c");
            prop_assert!(h.starts_with("Digest username=\"u\""));
        }
    }

    /// Realm/nonce/opaque with quotes and backslashes survive quoting and parsing.
    #[test]
    fn quoted_values_round_trip(realm in "[ -~]{1,30}", nonce in "[ -~]{1,30}") {
        let text = format!("Digest realm=\"{}\", nonce=\"{}\", qop=\"auth\"", quote(&realm), quote(&nonce));
        let c = Challenge::parse(&text).unwrap();
        prop_assert_eq!(c.realm, realm);
        prop_assert_eq!(c.nonce, nonce);
    }
}
