//! Request bodies of the REST API, parsed at the boundary into checked values. Field names are
//! camelCase like the WebSocket API; unknown fields are refused (a misspelt `calee` must not
//! silently place a call to nobody).

use serde::{Deserialize, Serialize};

use crate::registry::{CallCmd, CallFilter};
use crate::sip::RawSipAccount;
use crate::ws::messages::DtmfType;

/// Longest call id a REST client may choose (the WebSocket API's bound).
pub const MAX_CALL_ID: usize = 64;

/// Why a body was refused (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Parses a request body: a JSON object (an empty or blank body is `{}`). Arrays are refused
/// even where serde would read a struct from a sequence.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Invalid> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Invalid(format!("invalid JSON body: {e}")))?;
    if !value.is_object() {
        return Err(Invalid("invalid JSON body: expected a JSON object".into()));
    }
    serde_json::from_value(value).map_err(|e| Invalid(format!("invalid JSON body: {e}")))
}

/// Parses and checks `body` as the named endpoint's request (`call/startup`, …); what the
/// handlers do before acting, for the fuzz target and property tests.
pub fn check_body(endpoint: &str, body: &[u8]) -> Result<(), Invalid> {
    match endpoint {
        "call/startup" => parse::<Startup>(body)?.check().map(drop),
        "call/terminate" | "call/hold" | "call/unhold" => parse::<CallRef>(body).map(drop),
        "call/transfer" => parse::<Transfer>(body).map(drop),
        "call/send_dtmf" => parse::<SendDtmf>(body)?.command().map(drop),
        "call/find" => parse::<Find>(body).map(drop),
        "session/terminate" => parse::<SessionRef>(body).map(drop),
        _ => parse::<Empty>(body).map(drop),
    }
}

/// Every endpoint [`check_body`] knows.
pub const ENDPOINTS: [&str; 10] = [
    "call/startup",
    "call/terminate",
    "call/hold",
    "call/unhold",
    "call/transfer",
    "call/send_dtmf",
    "call/find",
    "call/find_all",
    "session/find_all",
    "session/terminate",
];

/// A call id: 1-64 of `A-Z a-z 0-9 - _`.
pub fn check_call_id(field: &str, id: &str) -> Result<(), Invalid> {
    if id.is_empty()
        || id.len() > MAX_CALL_ID
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Invalid(format!(
            "{field}: must be 1-{MAX_CALL_ID} characters of A-Z a-z 0-9 - _"
        )));
    }
    Ok(())
}

/// The SIP account of a server-side call (the `connect` message's `sipOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Account {
    /// User part, e.g. `alice`.
    pub login: String,
    /// Digest user name (empty: the login).
    pub authentication_name: String,
    /// Digest password.
    pub password: String,
    /// SIP domain.
    pub domain: String,
    /// `host[:port]` to send requests to.
    pub outbound_proxy: String,
    /// Port of the domain's server (empty: 5060).
    pub port: String,
    /// `udp` or `tcp`.
    pub transport: String,
    /// Display name.
    pub visible_name: String,
}

impl Account {
    /// The account as the SIP layer takes it (checked there by `SipAccount::parse`).
    pub fn to_raw(&self) -> RawSipAccount {
        RawSipAccount {
            login: self.login.clone(),
            auth_name: self.authentication_name.clone(),
            password: self.password.clone(),
            domain: self.domain.clone(),
            outbound_proxy: self.outbound_proxy.clone(),
            port: self.port.clone(),
            transport: self.transport.clone(),
            register_required: false,
            visible_name: self.visible_name.clone(),
            extra_headers: Vec::new(),
        }
    }
}

/// `call/startup`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Startup {
    /// The call id (generated when absent).
    #[serde(default)]
    pub call_id: Option<String>,
    /// Call from this connected session's account, with media to its page.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Call server-side from this account (no page).
    #[serde(default)]
    pub account: Option<Account>,
    /// Who to call: a user at the account's domain, `user@host[:port]` or a `sip:` URI.
    pub callee: String,
    /// Server-side only: once the callee answers, call this second callee and bridge the two.
    #[serde(default)]
    pub bridge_to: Option<String>,
}

/// What `call/startup` asks for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupKind {
    /// From a session's account, media to its page.
    Session(String),
    /// Server-side from an account.
    Server(Account, Option<String>),
}

impl Startup {
    /// Checks the combination of fields.
    pub fn check(self) -> Result<(Option<String>, String, StartupKind), Invalid> {
        if let Some(id) = &self.call_id {
            check_call_id("callId", id)?;
        }
        check_target("callee", &self.callee)?;
        if let Some(b) = &self.bridge_to {
            check_target("bridgeTo", b)?;
        }
        let kind = match (self.session_id, self.account) {
            (Some(s), None) => {
                if self.bridge_to.is_some() {
                    return Err(Invalid(
                        "bridgeTo: only for server-side calls (with account, without sessionId)"
                            .into(),
                    ));
                }
                StartupKind::Session(s)
            }
            (None, Some(a)) => StartupKind::Server(a, self.bridge_to),
            (Some(_), Some(_)) => {
                return Err(Invalid(
                    "give either sessionId (call from a session) or account (server-side call), not both".into(),
                ));
            }
            (None, None) => {
                return Err(Invalid(
                    "missing sessionId or account: whose call is it?".into(),
                ));
            }
        };
        Ok((self.call_id, self.callee, kind))
    }
}

fn check_target(field: &str, t: &str) -> Result<(), Invalid> {
    if t.is_empty() || t.len() > 256 || t.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Invalid(format!(
            "{field}: must be 1-256 characters without spaces (a user, user@host[:port] or a sip: URI)"
        )));
    }
    Ok(())
}

/// A body naming one call (`terminate`, `hold`, `unhold`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallRef {
    /// The call.
    pub call_id: String,
    /// Its session, when several sessions use the same call id.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// `call/transfer`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Transfer {
    /// The call.
    pub call_id: String,
    /// Its session, if needed.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Where the far end goes (a `sip:` URI, `user@host` or a user at the account's domain).
    pub target: String,
}

/// `call/send_dtmf`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendDtmf {
    /// The call.
    pub call_id: String,
    /// Its session, if needed.
    #[serde(default)]
    pub session_id: Option<String>,
    /// 1-32 of `0-9 * # A-D`.
    pub dtmf: String,
    /// RFC2833 (default) or INFO.
    #[serde(default, rename = "type")]
    pub kind: DtmfType,
}

impl SendDtmf {
    /// The command, digits checked.
    pub fn command(&self) -> Result<CallCmd, Invalid> {
        if self.dtmf.is_empty() || self.dtmf.len() > 32 {
            return Err(Invalid("dtmf: must be 1-32 digits".into()));
        }
        if let Some(bad) = self
            .dtmf
            .chars()
            .find(|c| !matches!(c, '0'..='9' | '*' | '#' | 'A'..='D'))
        {
            return Err(Invalid(format!(
                "dtmf: {bad:?} is not a DTMF digit (0-9 * # A-D)"
            )));
        }
        Ok(CallCmd::Dtmf {
            digits: self.dtmf.clone(),
            info: self.kind == DtmfType::Info,
        })
    }
}

/// `call/find`: every given field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Find {
    /// Exact call id.
    pub call_id: Option<String>,
    /// Exact session id.
    pub session_id: Option<String>,
    /// Substring of the caller.
    pub caller: Option<String>,
    /// Substring of the callee.
    pub callee: Option<String>,
    /// Status (PENDING, RING, ESTABLISHED, HOLD, …), case-insensitive.
    pub status: Option<String>,
}

impl From<Find> for CallFilter {
    fn from(f: Find) -> CallFilter {
        CallFilter {
            call_id: f.call_id,
            session_id: f.session_id,
            caller: f.caller,
            callee: f.callee,
            status: f.status,
        }
    }
}

/// `session/terminate`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionRef {
    /// The session.
    pub session_id: String,
}

/// Bodies with no fields (`find_all`); an empty body is accepted too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(json: &str) -> Result<(Option<String>, String, StartupKind), String> {
        let s: Startup = serde_json::from_str(json).map_err(|e| e.to_string())?;
        s.check().map_err(|e| e.0)
    }

    #[test]
    fn startup_combinations() {
        assert!(matches!(
            startup(r#"{"callee":"bob","account":{"login":"a","domain":"x"}}"#),
            Ok((None, _, StartupKind::Server(_, None)))
        ));
        assert!(matches!(
            startup(r#"{"callee":"bob","sessionId":"3","callId":"c-1"}"#),
            Ok((Some(_), _, StartupKind::Session(_)))
        ));
        assert!(
            startup(r#"{"callee":"bob"}"#)
                .unwrap_err()
                .contains("sessionId or account")
        );
        assert!(startup(r#"{"callee":"bob","sessionId":"1","account":{}}"#).is_err());
        assert!(
            startup(r#"{"callee":"b o b","sessionId":"1"}"#)
                .unwrap_err()
                .contains("callee")
        );
        assert!(
            startup(r#"{"callee":"bob","sessionId":"1","callId":"a b"}"#)
                .unwrap_err()
                .contains("callId")
        );
        assert!(startup(r#"{"callee":"bob","sessionId":"1","bridgeTo":"c"}"#).is_err());
        assert!(
            startup(r#"{"calee":"bob"}"#)
                .unwrap_err()
                .contains("unknown field")
        );
    }

    #[test]
    fn bodies_must_be_objects() {
        assert!(parse::<Empty>(b"").is_ok());
        assert!(parse::<Empty>(b"  \n").is_ok());
        assert!(parse::<Empty>(b"[]").unwrap_err().0.contains("object"));
        assert!(parse::<Find>(br#"{"callId":null}"#).is_ok());
        assert!(
            parse::<CallRef>(br#"{"callId":5}"#)
                .unwrap_err()
                .0
                .contains("invalid type")
        );
        assert!(check_body("call/send_dtmf", br#"{"callId":"c","dtmf":"1","type":"X"}"#).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_any_endpoint_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256), which in 0usize..10) {
            let _ = check_body(ENDPOINTS[which], &body);
        }

        #[test]
        fn json_shaped_bodies_never_panic(
            id in "[ -~]{0,80}",
            callee in "[ -~]{0,80}",
            digits in "[ -~]{0,40}",
            which in 0usize..10,
        ) {
            let body = serde_json::json!({"callId": id, "callee": callee, "dtmf": digits,
                                          "account": {"login": callee}}).to_string();
            let _ = check_body(ENDPOINTS[which], body.as_bytes());
            let startup = serde_json::json!({"callId": id, "callee": callee, "sessionId": digits}).to_string();
            if let Ok(()) = check_body("call/startup", startup.as_bytes()) {
                proptest::prop_assert!(id.len() <= MAX_CALL_ID && !callee.contains(' '));
            }
        }
    }

    #[test]
    fn dtmf_digits_checked() {
        let d = |s: &str| SendDtmf {
            call_id: "c".into(),
            session_id: None,
            dtmf: s.into(),
            kind: DtmfType::Info,
        };
        assert_eq!(
            d("12#").command(),
            Ok(CallCmd::Dtmf {
                digits: "12#".into(),
                info: true
            })
        );
        assert!(d("").command().is_err());
        assert!(d("1x").command().unwrap_err().0.contains("'x'"));
        assert!(d(&"1".repeat(33)).command().is_err());
    }
}
