//! The SIP account a browser session brings: login, authentication name, password, domain,
//! outbound proxy, port, transport, register-required, visible name and extra headers. Sessions
//! hand them in as raw strings ([`RawSipAccount`]); [`SipAccount::parse`] validates each one by
//! RFC 3261 grammar at once and names the field in its error, so a bad value (the seed's known
//! problem: a login like `Ralf C12441@host.com`, an authentication name `Ralf C`, values pasted
//! as `<...>`) is refused before any packet is sent instead of leaving a call stuck in PENDING.
//! Past this boundary nothing is a raw string: the fields are typed and renderable as they must
//! appear on the wire (the visible name always as a quoted-string).

use std::fmt;

use serde::Deserialize;
use thiserror::Error;

use super::grammar::{char_at, is_token_char};
use super::uri::{Host, SipUri, UriError, UserPart, parse_host_port, parse_port};

/// Longest password, visible name or extra header we accept (bounds hostile input).
pub const MAX_FIELD_LEN: usize = 1024;
/// Most extra headers per account.
pub const MAX_EXTRA_HEADERS: usize = 16;

/// An account field, named in errors as the session knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The user part of the address of record.
    Login,
    /// The digest authentication name.
    AuthName,
    /// The digest password.
    Password,
    /// The SIP domain (registrar host).
    Domain,
    /// Where requests are sent, if not to the domain.
    OutboundProxy,
    /// The registrar's port.
    Port,
    /// `udp` or `tcp`.
    Transport,
    /// The display name in From.
    VisibleName,
    /// One of the extra headers.
    ExtraHeader,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Login => "login",
            Field::AuthName => "authentication name",
            Field::Password => "password",
            Field::Domain => "domain",
            Field::OutboundProxy => "outbound proxy",
            Field::Port => "port",
            Field::Transport => "transport",
            Field::VisibleName => "visible name",
            Field::ExtraHeader => "extra header",
        })
    }
}

/// Why an account was refused; every variant names the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AccountError {
    /// A required field is empty.
    #[error("{field}: must not be empty")]
    Empty {
        /// The field.
        field: Field,
    },
    /// The value is wrapped in `<...>` (pasted from a header); the bare value is wanted.
    #[error("{field}: {value:?} is wrapped in <...>; give the bare value without angle brackets")]
    AngleBrackets {
        /// The field.
        field: Field,
        /// The value as given.
        value: String,
    },
    /// A login or authentication name with an `@`: a whole address where only the user part belongs.
    #[error(
        "{field}: {value:?} contains '@'; give only the user part (the domain is its own field)"
    )]
    HasDomain {
        /// The field.
        field: Field,
        /// The value as given.
        value: String,
    },
    /// A character the field's grammar does not allow.
    #[error("{field}: {value:?} has {ch:?} at byte {at}, not allowed in {rule}")]
    Char {
        /// The field.
        field: Field,
        /// The value as given.
        value: String,
        /// The offending character.
        ch: char,
        /// Its byte offset.
        at: usize,
        /// The grammar rule that was violated.
        rule: &'static str,
    },
    /// A host, port or URI component failed its grammar.
    #[error("{field}: {value:?} {source}")]
    Uri {
        /// The field.
        field: Field,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        source: UriError,
    },
    /// The value is longer than the field allows.
    #[error("{field}: longer than {max} bytes")]
    TooLong {
        /// The field.
        field: Field,
        /// The limit.
        max: usize,
    },
    /// A transport other than UDP or TCP.
    #[error("transport: {0:?} is not supported (udp or tcp)")]
    Transport(String),
    /// An extra header that the user agent writes itself.
    #[error("extra header: {0:?} is set by the user agent and cannot be overridden")]
    ReservedHeader(String),
    /// More extra headers than [`MAX_EXTRA_HEADERS`].
    #[error("extra header: more than {MAX_EXTRA_HEADERS}")]
    TooManyHeaders,
}

/// The account as a session sends it: plain strings, empty meaning "not given".
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RawSipAccount {
    /// User part of the address of record, e.g. `Ralf_C12441`.
    pub login: String,
    /// Digest user name; empty means the login.
    pub auth_name: String,
    /// Digest password.
    pub password: String,
    /// SIP domain, e.g. `example.com` or `127.0.0.1`.
    pub domain: String,
    /// `host[:port]` to send requests to instead of the domain; empty for none.
    pub outbound_proxy: String,
    /// Registrar port; empty for 5060.
    pub port: String,
    /// `udp` (default) or `tcp`.
    pub transport: String,
    /// Whether the session must REGISTER before calling.
    pub register_required: bool,
    /// Display name for From, e.g. `Ralf C`.
    pub visible_name: String,
    /// Extra headers `Name: value` added to requests.
    pub extra_headers: Vec<String>,
}

/// SIP transport of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// UDP (RFC 3261 default).
    #[default]
    Udp,
    /// TCP.
    Tcp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        })
    }
}

/// A display name (the decoded text; rendered as a quoted-string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Accepts `token *(LWS token)` or a `quoted-string` (whose quotes and escapes are removed).
    /// Either way the text must be free of control characters other than tab.
    pub fn parse(s: &str) -> Result<DisplayName, AccountError> {
        let field = Field::VisibleName;
        check_common(field, s)?;
        let text = if let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            unquote(inner).ok_or_else(|| AccountError::Char {
                field,
                value: s.to_owned(),
                ch: '"',
                at: 0,
                rule: "quoted-string = DQUOTE *(qdtext / quoted-pair) DQUOTE",
            })?
        } else {
            // Unquoted: a token list (`Ralf C`) or any other printable text; both are rendered
            // as a quoted-string, so only a stray '"' is ambiguous and refused.
            if let Some(at) = s.find('"') {
                return Err(AccountError::Char {
                    field,
                    value: s.to_owned(),
                    ch: '"',
                    at,
                    rule: "display-name",
                });
            }
            s.trim().to_owned()
        };
        if let Some((at, ch)) = text
            .char_indices()
            .find(|&(_, c)| (c.is_control() && c != '\t') || c == '\u{7f}')
        {
            return Err(AccountError::Char {
                field,
                value: s.to_owned(),
                ch,
                at,
                rule: "display-name (no control characters)",
            });
        }
        if text.trim().is_empty() {
            return Err(AccountError::Empty { field });
        }
        Ok(DisplayName(text))
    }

    /// The decoded text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Renders as an RFC 3261 quoted-string: `"Ralf C"`, with `"` and `\` escaped.
impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            if c == '"' || c == '\\' {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        f.write_str("\"")
    }
}

fn unquote(inner: &str) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// An extra header, `Name: value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHeader {
    /// A token.
    pub name: String,
    /// Free text without CR/LF.
    pub value: String,
}

/// Headers the user agent writes itself; letting a session override them would break dialogs or auth.
const RESERVED_HEADERS: &[&str] = &[
    "via",
    "v",
    "from",
    "f",
    "to",
    "t",
    "call-id",
    "i",
    "cseq",
    "contact",
    "m",
    "content-length",
    "l",
    "content-type",
    "c",
    "max-forwards",
    "authorization",
    "proxy-authorization",
    "route",
    "record-route",
    "expires",
];

impl ExtraHeader {
    /// Parses `Name: value`.
    pub fn parse(s: &str) -> Result<ExtraHeader, AccountError> {
        let field = Field::ExtraHeader;
        check_common(field, s)?;
        let Some(colon) = s.find(':') else {
            return Err(AccountError::Char {
                field,
                value: s.to_owned(),
                ch: '\u{0}',
                at: s.len(),
                rule: "header = name \":\" value",
            });
        };
        let name = s[..colon].trim_end();
        let value = s[colon + 1..].trim();
        if name.is_empty() {
            return Err(AccountError::Empty { field });
        }
        if let Some(at) = name.bytes().position(|b| !is_token_char(b)) {
            return Err(AccountError::Char {
                field,
                value: s.to_owned(),
                ch: char_at(name, at),
                at,
                rule: "header-name = token",
            });
        }
        if let Some((at, ch)) = value
            .char_indices()
            .find(|&(_, c)| c.is_control() && c != '\t')
        {
            return Err(AccountError::Char {
                field,
                value: s.to_owned(),
                ch,
                at: colon + 1 + at,
                rule: "header-value (no CR, LF or controls)",
            });
        }
        if RESERVED_HEADERS
            .iter()
            .any(|r| r.eq_ignore_ascii_case(name))
        {
            return Err(AccountError::ReservedHeader(name.to_owned()));
        }
        Ok(ExtraHeader {
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }
}

impl fmt::Display for ExtraHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.value)
    }
}

/// A digest password (any printable text; never shown in `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The secret, for the digest computation only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A validated SIP account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipAccount {
    /// User part of the address of record.
    pub login: UserPart,
    /// Digest user name (the login unless given).
    pub auth_name: UserPart,
    /// Digest password (may be empty when no registrar challenges).
    pub password: Password,
    /// SIP domain.
    pub domain: Host,
    /// Where requests go instead of the domain.
    pub outbound_proxy: Option<(Host, Option<u16>)>,
    /// Registrar port, when not the default.
    pub port: Option<u16>,
    /// UDP or TCP.
    pub transport: Transport,
    /// Whether the session must REGISTER.
    pub register_required: bool,
    /// The From display name.
    pub visible_name: Option<DisplayName>,
    /// Headers added to requests.
    pub extra_headers: Vec<ExtraHeader>,
}

impl SipAccount {
    /// Validates every field; the first bad one is reported by name.
    pub fn parse(raw: &RawSipAccount) -> Result<SipAccount, AccountError> {
        let login = parse_user(Field::Login, &raw.login)?;
        let auth_name = if raw.auth_name.is_empty() {
            login.clone()
        } else {
            parse_user(Field::AuthName, &raw.auth_name)?
        };
        check_common(Field::Password, &raw.password)?;
        if let Some((at, ch)) = raw.password.char_indices().find(|&(_, c)| c.is_control()) {
            // A control character cannot be typed; it is a paste accident and would never match.
            return Err(AccountError::Char {
                field: Field::Password,
                value: "***".into(),
                ch,
                at,
                rule: "password (printable text)",
            });
        }
        let domain = parse_host(Field::Domain, &raw.domain)?;
        let outbound_proxy = if raw.outbound_proxy.is_empty() {
            None
        } else {
            check_common(Field::OutboundProxy, &raw.outbound_proxy)?;
            let proxy = raw
                .outbound_proxy
                .strip_prefix("sip:")
                .unwrap_or(&raw.outbound_proxy);
            Some(parse_host_port(proxy).map_err(|source| AccountError::Uri {
                field: Field::OutboundProxy,
                value: raw.outbound_proxy.clone(),
                source,
            })?)
        };
        let port = if raw.port.is_empty() {
            None
        } else {
            check_common(Field::Port, &raw.port)?;
            Some(parse_port(&raw.port).map_err(|source| AccountError::Uri {
                field: Field::Port,
                value: raw.port.clone(),
                source,
            })?)
        };
        let transport = match raw.transport.to_ascii_lowercase().as_str() {
            "" | "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            _ => return Err(AccountError::Transport(raw.transport.clone())),
        };
        let visible_name = if raw.visible_name.trim().is_empty() {
            None
        } else {
            Some(DisplayName::parse(&raw.visible_name)?)
        };
        if raw.extra_headers.len() > MAX_EXTRA_HEADERS {
            return Err(AccountError::TooManyHeaders);
        }
        let extra_headers = raw
            .extra_headers
            .iter()
            .map(|h| ExtraHeader::parse(h))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SipAccount {
            login,
            auth_name,
            password: Password(raw.password.clone()),
            domain,
            outbound_proxy,
            port,
            transport,
            register_required: raw.register_required,
            visible_name,
            extra_headers,
        })
    }

    /// The address of record, `sip:login@domain[:port]`.
    pub fn aor(&self) -> SipUri {
        SipUri::new(Some(self.login.clone()), self.domain.clone(), None)
    }

    /// The registrar URI (Request-URI of REGISTER), `sip:domain[:port][;transport=tcp]`.
    pub fn registrar(&self) -> SipUri {
        let mut uri = SipUri::new(None, self.domain.clone(), self.port);
        if self.transport == Transport::Tcp {
            uri.params.push(("transport".into(), Some("tcp".into())));
        }
        uri
    }

    /// The From header value: `"Ralf C" <sip:Ralf_C12441@domain>` (no tag).
    pub fn from_header(&self) -> String {
        match &self.visible_name {
            Some(name) => format!("{name} <{}>", self.aor()),
            None => format!("<{}>", self.aor()),
        }
    }
}

/// Checks shared by every field: length, and the `<...>` wrapping the seed's users pasted.
fn check_common(field: Field, value: &str) -> Result<(), AccountError> {
    if value.len() > MAX_FIELD_LEN {
        return Err(AccountError::TooLong {
            field,
            max: MAX_FIELD_LEN,
        });
    }
    let t = value.trim();
    if t.starts_with('<') && t.ends_with('>') {
        return Err(AccountError::AngleBrackets {
            field,
            value: value.to_owned(),
        });
    }
    Ok(())
}

fn parse_user(field: Field, value: &str) -> Result<UserPart, AccountError> {
    if value.is_empty() {
        return Err(AccountError::Empty { field });
    }
    check_common(field, value)?;
    // Name the usual mistake (a whole address) before the generic character error.
    if value.contains('@') {
        return Err(AccountError::HasDomain {
            field,
            value: value.to_owned(),
        });
    }
    UserPart::parse(value).map_err(|e| match e {
        UriError::Char {
            ch, at, grammar, ..
        } => AccountError::Char {
            field,
            value: value.to_owned(),
            ch,
            at,
            rule: grammar,
        },
        UriError::TooLong => AccountError::TooLong {
            field,
            max: super::uri::MAX_URI_LEN,
        },
        source => AccountError::Uri {
            field,
            value: value.to_owned(),
            source,
        },
    })
}

fn parse_host(field: Field, value: &str) -> Result<Host, AccountError> {
    if value.is_empty() {
        return Err(AccountError::Empty { field });
    }
    check_common(field, value)?;
    Host::parse(value).map_err(|source| AccountError::Uri {
        field,
        value: value.to_owned(),
        source,
    })
}

/// Fuzz and property entry point (`fuzz/fuzz_targets/sip_account.rs` and the proptests): any
/// text, split by `\n` into the account fields (the rest are extra headers), is accepted or
/// refused without panicking; an accepted account renders a From header without line breaks
/// whose URI parses back to the address of record, and a visible name survives render/parse.
/// The URI and digest-challenge parsers run on the whole text as well. Panics on a violation.
pub fn exercise(text: &str) {
    let fields: Vec<&str> = text.split('\n').collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or("").to_owned();
    let raw = RawSipAccount {
        login: field(0),
        auth_name: field(1),
        password: field(2),
        domain: field(3),
        outbound_proxy: field(4),
        port: field(5),
        transport: field(6),
        register_required: text.ends_with('\n'),
        visible_name: field(7),
        extra_headers: fields.iter().skip(8).map(|s| (*s).to_owned()).collect(),
    };
    if let Ok(a) = SipAccount::parse(&raw) {
        let from = a.from_header();
        assert!(!from.contains(['\r', '\n']), "line break in From: {from:?}");
        let uri = from
            .rsplit_once('<')
            .map(|(_, u)| u.trim_end_matches('>'))
            .unwrap_or("");
        assert_eq!(
            SipUri::parse(uri).as_ref(),
            Ok(&a.aor()),
            "From URI of {raw:?}"
        );
        assert_eq!(
            SipUri::parse(&a.registrar().to_string()).as_ref(),
            Ok(&a.registrar())
        );
        if let Some(name) = &a.visible_name {
            assert_eq!(DisplayName::parse(&name.to_string()).as_ref(), Ok(name));
        }
        for h in &a.extra_headers {
            assert_eq!(ExtraHeader::parse(&h.to_string()).as_ref(), Ok(h));
        }
    }
    if let Ok(uri) = SipUri::parse(text) {
        assert_eq!(
            SipUri::parse(&uri.to_string()).as_ref(),
            Ok(&uri),
            "URI round trip of {text:?}"
        );
    }
    if let Ok(c) = super::digest::Challenge::parse(text) {
        let mut s = super::digest::DigestSession::new(c, super::digest::AuthHeader::Authorization);
        let h = s.authorize("REGISTER", "sip:example.com", "user", "pw", "cnonce");
        assert!(
            !h.contains(['\r', '\n']),
            "line break in Authorization: {h:?}"
        );
    }
}

#[cfg(test)]
#[path = "account_tests.rs"]
mod tests;
