//! Typed SIP URIs (RFC 3261 §19.1, grammar §25.1): `sip:`/`sips:` with an optional user part
//! (and the deprecated password), a host (hostname, IPv4 or bracketed IPv6), an optional port,
//! URI parameters and URI headers. Parsing validates every component against the grammar and
//! keeps its text as written (escapes included), so `parse(display(u)) == u` for every parsed
//! URI. The same component types back the SIP account fields, which is why `UserPart` and `Host`
//! live here.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use thiserror::Error;

use super::grammar::{
    char_at, first_bad_escaped, is_hnv_char, is_hostname, is_param_char, is_password_char,
    is_unreserved, is_user_unreserved,
};

/// Longest user part, host or URI we accept: bounds memory for hostile input; real ones are short.
pub const MAX_URI_LEN: usize = 1024;

/// Why a SIP URI or one of its components was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UriError {
    /// The text is empty.
    #[error("is empty")]
    Empty,
    /// The text is longer than [`MAX_URI_LEN`].
    #[error("is longer than {MAX_URI_LEN} bytes")]
    TooLong,
    /// The URI does not start with `sip:` or `sips:`.
    #[error("does not start with sip: or sips:")]
    Scheme,
    /// A byte outside the component's grammar.
    #[error("{component} has {ch:?} at byte {at}, not allowed by RFC 3261 ({grammar})")]
    Char {
        /// Which component (user, host, parameter, ...).
        component: &'static str,
        /// The offending character.
        ch: char,
        /// Its byte offset in the component.
        at: usize,
        /// The grammar rule, for the reader.
        grammar: &'static str,
    },
    /// The host is neither a hostname, an IPv4 address nor a bracketed IPv6 address.
    #[error("host {0:?} is not a hostname, IPv4 address or [IPv6] reference")]
    Host(String),
    /// The port is not a number in 1..=65535.
    #[error("port {0:?} is not a number in 1..=65535")]
    Port(String),
    /// A URI header lacks its `=`.
    #[error("URI header {0:?} has no '='")]
    Header(String),
}

/// `user` of RFC 3261: `1*( unreserved / escaped / user-unreserved )`, kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserPart(String);

impl UserPart {
    /// Validates a user part.
    pub fn parse(s: &str) -> Result<UserPart, UriError> {
        if s.is_empty() {
            return Err(UriError::Empty);
        }
        if s.len() > MAX_URI_LEN {
            return Err(UriError::TooLong);
        }
        if let Some(at) = first_bad_escaped(s, |b| is_unreserved(b) || is_user_unreserved(b)) {
            return Err(UriError::Char {
                component: "user part",
                ch: char_at(s, at),
                at,
                grammar: "user = 1*( unreserved / escaped / user-unreserved )",
            });
        }
        Ok(UserPart(s.to_owned()))
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `host = hostname / IPv4address / IPv6reference`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, as written.
    Name(String),
    /// A dotted-quad IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (written in brackets).
    V6(Ipv6Addr),
}

impl Host {
    /// Parses a host: `[v6]`, dotted-quad IPv4, or an RFC 3261 hostname.
    pub fn parse(s: &str) -> Result<Host, UriError> {
        if s.is_empty() {
            return Err(UriError::Empty);
        }
        if s.len() > MAX_URI_LEN {
            return Err(UriError::TooLong);
        }
        if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            return inner
                .parse()
                .map(Host::V6)
                .map_err(|_| UriError::Host(s.to_owned()));
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return s
                .parse()
                .map(Host::V4)
                .map_err(|_| UriError::Host(s.to_owned()));
        }
        if is_hostname(s) {
            Ok(Host::Name(s.to_owned()))
        } else {
            Err(UriError::Host(s.to_owned()))
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Parses `host [ ":" port ]`, the port in 1..=65535.
pub fn parse_host_port(s: &str) -> Result<(Host, Option<u16>), UriError> {
    // A colon after the closing bracket (IPv6) or any colon (otherwise) starts the port.
    let split = if s.starts_with('[') {
        s.find("]:").map(|i| i + 1)
    } else {
        s.rfind(':')
    };
    match split {
        Some(i) => {
            let port = &s[i + 1..];
            Ok((Host::parse(&s[..i])?, Some(parse_port(port)?)))
        }
        None => Ok((Host::parse(s)?, None)),
    }
}

/// A port number in 1..=65535, digits only.
pub fn parse_port(s: &str) -> Result<u16, UriError> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UriError::Port(s.to_owned()));
    }
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(UriError::Port(s.to_owned())),
    }
}

/// `sip` or `sips`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:` (TLS to every hop)
    Sips,
}

/// A parsed SIP URI; every text component is validated and kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SipUri {
    /// `sip` or `sips`.
    pub scheme: Scheme,
    /// The user part, if any.
    pub user: Option<UserPart>,
    /// The deprecated `user:password` form (RFC 3261 §19.1.1: NOT RECOMMENDED); kept for round trips.
    pub password: Option<String>,
    /// The host.
    pub host: Host,
    /// The port, if written.
    pub port: Option<u16>,
    /// `;name[=value]` parameters in order.
    pub params: Vec<(String, Option<String>)>,
    /// `?name=value&...` headers in order.
    pub headers: Vec<(String, String)>,
}

impl SipUri {
    /// A `sip:user@host[:port]` URI built from already-validated parts.
    pub fn new(user: Option<UserPart>, host: Host, port: Option<u16>) -> SipUri {
        SipUri {
            scheme: Scheme::Sip,
            user,
            password: None,
            host,
            port,
            params: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Parses a SIP or SIPS URI.
    pub fn parse(s: &str) -> Result<SipUri, UriError> {
        if s.is_empty() {
            return Err(UriError::Empty);
        }
        if s.len() > MAX_URI_LEN {
            return Err(UriError::TooLong);
        }
        let (scheme, rest) = if let Some(r) = strip_prefix_ci(s, "sips:") {
            (Scheme::Sips, r)
        } else if let Some(r) = strip_prefix_ci(s, "sip:") {
            (Scheme::Sip, r)
        } else {
            return Err(UriError::Scheme);
        };
        // No production after the userinfo may contain an unescaped '@', so the first one ends it.
        let (userinfo, rest) = match rest.find('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.find(':') {
                    Some(i) => (&ui[..i], Some(&ui[i + 1..])),
                    None => (ui, None),
                };
                let user = UserPart::parse(u)?;
                if let Some(p) = p
                    && let Some(at) = first_bad_escaped(p, is_password_char)
                {
                    return Err(UriError::Char {
                        component: "password",
                        ch: char_at(p, at),
                        at,
                        grammar: "password = *( unreserved / escaped / \"&\" / \"=\" / \"+\" / \"$\" / \",\" )",
                    });
                }
                (Some(user), p.map(str::to_owned))
            }
        };
        let (before_headers, headers_text) = match rest.find('?') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let mut parts = before_headers.split(';');
        let hostport = parts.next().unwrap_or("");
        let (host, port) = parse_host_port(hostport)?;
        let mut params = Vec::new();
        for p in parts {
            let (name, value) = match p.find('=') {
                Some(i) => (&p[..i], Some(&p[i + 1..])),
                None => (p, None),
            };
            check_component(name, "parameter name", is_param_char, "pname = 1*paramchar")?;
            if let Some(v) = value {
                check_component(v, "parameter value", is_param_char, "pvalue = 1*paramchar")?;
            }
            params.push((name.to_owned(), value.map(str::to_owned)));
        }
        let mut headers = Vec::new();
        if let Some(h) = headers_text {
            for pair in h.split('&') {
                let Some(i) = pair.find('=') else {
                    return Err(UriError::Header(pair.to_owned()));
                };
                let (name, value) = (&pair[..i], &pair[i + 1..]);
                check_component(
                    name,
                    "header name",
                    is_hnv_char,
                    "hname = 1*( hnv-unreserved / unreserved / escaped )",
                )?;
                if !value.is_empty() {
                    check_component(
                        value,
                        "header value",
                        is_hnv_char,
                        "hvalue = *( hnv-unreserved / unreserved / escaped )",
                    )?;
                }
                headers.push((name.to_owned(), value.to_owned()));
            }
        }
        Ok(SipUri {
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

fn check_component(
    s: &str,
    component: &'static str,
    allowed: fn(u8) -> bool,
    grammar: &'static str,
) -> Result<(), UriError> {
    if s.is_empty() {
        return Err(UriError::Char {
            component,
            ch: '\u{0}',
            at: 0,
            grammar,
        });
    }
    match first_bad_escaped(s, allowed) {
        None => Ok(()),
        Some(at) => Err(UriError::Char {
            component,
            ch: char_at(s, at),
            at,
            grammar,
        }),
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.scheme {
            Scheme::Sip => "sip:",
            Scheme::Sips => "sips:",
        })?;
        if let Some(u) = &self.user {
            write!(f, "{u}")?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        for (name, value) in &self.params {
            write!(f, ";{name}")?;
            if let Some(v) = value {
                write!(f, "={v}")?;
            }
        }
        for (i, (name, value)) in self.headers.iter().enumerate() {
            write!(f, "{}{name}={value}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SIP URI examples of RFC 3261 §19.1.3.
    const RFC_EXAMPLES: &[&str] = &[
        "sip:alice@atlanta.com",
        "sip:alice:secretword@atlanta.com;transport=tcp",
        "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sips:1212@gateway.com",
        "sip:alice@192.0.2.4",
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip:alice;day=tuesday@atlanta.com",
    ];

    #[test]
    fn rfc3261_examples_parse_and_round_trip() {
        for ex in RFC_EXAMPLES {
            let uri = SipUri::parse(ex).unwrap_or_else(|e| panic!("{ex}: {e}"));
            assert_eq!(uri.to_string(), *ex);
        }
    }

    #[test]
    fn rfc3261_example_components() {
        let u = SipUri::parse("sip:alice;day=tuesday@atlanta.com").unwrap();
        assert_eq!(u.user.unwrap().as_str(), "alice;day=tuesday");
        assert_eq!(u.host, Host::Name("atlanta.com".into()));
        let u = SipUri::parse("sip:alice:secretword@atlanta.com;transport=tcp").unwrap();
        assert_eq!(u.password.as_deref(), Some("secretword"));
        assert_eq!(u.params, vec![("transport".into(), Some("tcp".into()))]);
        let u =
            SipUri::parse("sips:alice@atlanta.com?subject=project%20x&priority=urgent").unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.headers.len(), 2);
        let u = SipUri::parse("sip:alice@192.0.2.4").unwrap();
        assert_eq!(u.host, Host::V4(Ipv4Addr::new(192, 0, 2, 4)));
        let u = SipUri::parse("sip:bob@[2001:db8::10]:5070").unwrap();
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.to_string(), "sip:bob@[2001:db8::10]:5070");
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "tel:+1234",
            "sip:",
            "sip:Ralf C12441@host.com",
            "sip:a@b@host.com",
            "sip:alice@atlanta.com:0",
            "sip:alice@atlanta.com:99999",
            "sip:alice@[::1",
            "sip:alice@exa mple.com",
            "sip:al%2ice@atlanta.com",
            "sip:alice@atlanta.com;=x",
            "sip:alice@atlanta.com?novalue",
            "<sip:alice@atlanta.com>",
        ] {
            assert!(SipUri::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
