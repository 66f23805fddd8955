//! The WebSocket API's messages (docs/websocket-api.md): JSON objects with a `type` field.
//! Client messages are parsed here, once, into [`ClientMsg`]; a text that is not JSON, has no
//! string `type`, names an unknown type or lacks a field becomes a [`ParseError`] whose message
//! names the problem (the session answers it with an `error` message and carries on).

use serde::{Deserialize, Serialize};

use crate::sip::RawSipAccount;

/// Why a client message was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON at all.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// JSON, but not an object with a string `type`.
    #[error("a message must be a JSON object with a string \"type\"")]
    NoType,
    /// A `type` this server does not know.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A known type with a missing or wrong field.
    #[error("bad {kind:?} message: {why}")]
    Fields {
        /// The message type.
        kind: String,
        /// What serde said.
        why: String,
    },
}

/// A port given as a number or a string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PortValue {
    /// `5060`
    Number(u32),
    /// `"5060"` (or `""` for the default)
    Text(String),
}

/// The SIP account options of `connect` (the seed's `sipOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SipOptions {
    /// User part, e.g. `Ralf_C12441`.
    pub login: String,
    /// Digest user name (empty: the login).
    pub authentication_name: String,
    /// Digest password.
    pub password: String,
    /// SIP domain.
    pub domain: String,
    /// `host[:port]` to send requests to.
    pub outbound_proxy: String,
    /// Registrar port.
    pub port: Option<PortValue>,
    /// `udp` or `tcp`.
    pub transport: String,
    /// REGISTER before calling.
    pub register_required: bool,
    /// Display name.
    pub visible_name: String,
}

impl SipOptions {
    /// The account as the SIP layer takes it (checked there by `SipAccount::parse`).
    pub fn to_raw(&self) -> RawSipAccount {
        RawSipAccount {
            login: self.login.clone(),
            auth_name: self.authentication_name.clone(),
            password: self.password.clone(),
            domain: self.domain.clone(),
            outbound_proxy: self.outbound_proxy.clone(),
            port: match &self.port {
                None => String::new(),
                Some(PortValue::Number(n)) => n.to_string(),
                Some(PortValue::Text(s)) => s.clone(),
            },
            transport: self.transport.clone(),
            register_required: self.register_required,
            visible_name: self.visible_name.clone(),
            extra_headers: Vec::new(),
        }
    }
}

/// How DTMF digits are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum DtmfType {
    /// RFC 4733 (formerly 2833) telephone-events in the RTP stream.
    #[default]
    #[serde(rename = "RFC2833")]
    Rfc2833,
    /// SIP INFO requests (`application/dtmf-relay`).
    #[serde(rename = "INFO")]
    Info,
}

/// A message from the page.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum ClientMsg {
    /// Open the session with a SIP account.
    #[serde(rename = "connect")]
    Connect {
        /// The account.
        #[serde(default)]
        sip_options: SipOptions,
        /// The application key or auth token (config `ws.app_keys`); `authToken` also accepted.
        #[serde(default, alias = "authToken")]
        app_key: String,
    },
    /// Place a call with the browser's SDP offer.
    #[serde(rename = "call")]
    Call {
        /// Chosen by the page, unique within the session.
        call_id: String,
        /// `echo`, a user at the account's domain, `user@host` or a `sip:` URI.
        callee: String,
        /// Display name for this call.
        #[serde(default)]
        visible_name: String,
        /// The browser's offer.
        sdp: String,
    },
    /// Answer an incoming call, or a `reoffer`, with the browser's SDP answer.
    #[serde(rename = "answer")]
    Answer {
        /// The call.
        call_id: String,
        /// The browser's answer.
        sdp: String,
    },
    /// End a call.
    #[serde(rename = "hangup")]
    Hangup {
        /// The call.
        call_id: String,
    },
    /// Put a call on hold.
    #[serde(rename = "hold")]
    Hold {
        /// The call.
        call_id: String,
    },
    /// Resume a held call.
    #[serde(rename = "unhold")]
    Unhold {
        /// The call.
        call_id: String,
    },
    /// Send DTMF digits.
    #[serde(rename = "sendDTMF")]
    SendDtmf {
        /// The call.
        call_id: String,
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        digits: String,
        /// RFC2833 (default) or INFO.
        #[serde(default)]
        dtmf_type: DtmfType,
    },
    /// Blind transfer: REFER the far end to `target`.
    #[serde(rename = "transfer")]
    Transfer {
        /// The call.
        call_id: String,
        /// A user at the account's domain, `user@host[:port]` or a `sip:` URI.
        target: String,
    },
    /// An in-dialog SIP MESSAGE (text/plain) to the far end.
    #[serde(rename = "sendMessage")]
    SendMessage {
        /// The call.
        call_id: String,
        /// The text.
        text: String,
    },
    /// Keepalive; answered with `pong`.
    #[serde(rename = "ping")]
    Ping {},
}

const TYPES: [&str; 10] = [
    "connect",
    "call",
    "answer",
    "hangup",
    "hold",
    "unhold",
    "sendDTMF",
    "transfer",
    "sendMessage",
    "ping",
];

/// Parses one text frame.
pub fn parse(text: &str) -> Result<ClientMsg, ParseError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))?;
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or(ParseError::NoType)?
        .to_string();
    if !TYPES.contains(&kind.as_str()) {
        return Err(ParseError::UnknownType(kind));
    }
    serde_json::from_value(value).map_err(|e| ParseError::Fields {
        kind,
        why: e.to_string(),
    })
}

/// Session states sent in `session` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionStatus {
    /// Connected (account accepted).
    Established,
    /// Registered with the registrar.
    Registered,
    /// Registration ended.
    Unregistered,
    /// The session ended.
    Disconnected,
    /// The session could not be opened; see the cause.
    Failed,
}

/// A message to the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum ServerMsg {
    /// Session status change.
    #[serde(rename = "session")]
    Session {
        /// The new status.
        status: SessionStatus,
        /// Why (human-readable).
        cause: String,
    },
    /// Call status change (the SIP layer's states: PENDING, ESTABLISHED, HOLD, FINISH, FAILED…).
    #[serde(rename = "call")]
    Call {
        /// The call.
        call_id: String,
        /// The state.
        status: &'static str,
        /// Why.
        cause: String,
    },
    /// SDP for the browser's peer connection (the answer to its offer).
    #[serde(rename = "sdp")]
    Sdp {
        /// The call.
        call_id: String,
        /// The SDP.
        sdp: String,
    },
    /// A new offer for the browser's peer connection on a call in progress (the server
    /// renegotiates: same media, ICE and DTLS; e.g. Opus capped at the SIP side's rate). The page
    /// answers with `answer` (same `callId`); a page that does not answer within 10 s leaves the
    /// call as it was.
    #[serde(rename = "reoffer")]
    Reoffer {
        /// The call.
        call_id: String,
        /// The offer.
        sdp: String,
    },
    /// An incoming call with the offer for the browser.
    #[serde(rename = "incoming")]
    Incoming {
        /// The call.
        call_id: String,
        /// Who calls.
        caller: String,
        /// The offer.
        sdp: String,
    },
    /// A DTMF digit received on the far side of a call.
    #[serde(rename = "dtmf")]
    Dtmf {
        /// The call.
        call_id: String,
        /// The digit.
        digit: String,
        /// How it came (RFC2833 or INFO).
        dtmf_type: DtmfType,
    },
    /// A text message from the far end of a call (in-dialog SIP MESSAGE).
    #[serde(rename = "message")]
    Message {
        /// The call.
        call_id: String,
        /// Its content type.
        content_type: String,
        /// The text.
        text: String,
    },
    /// Progress of a blind transfer (`transfer accepted: 202 Accepted`, `… succeeded: 200 OK`).
    #[serde(rename = "transfer")]
    Transfer {
        /// The call.
        call_id: String,
        /// `accepted`, `rejected`, `progress`, `succeeded` or `failed`.
        status: &'static str,
        /// SIP status code of the REFER's response or of the NOTIFY's sipfrag.
        code: u16,
        /// Human-readable.
        cause: String,
    },
    /// A request was refused; the session stays.
    #[serde(rename = "error")]
    Error {
        /// What was wrong.
        reason: String,
    },
    /// Reply to `ping`.
    #[serde(rename = "pong")]
    Pong,
    /// The REST API asks the page to place a call (`call/startup` with this session's id): the
    /// page calls `callee` with this `callId` as if its user had (a `call` message follows).
    #[serde(rename = "startCall")]
    StartCall {
        /// The call id to use in the `call` message.
        call_id: String,
        /// Who to call.
        callee: String,
    },
}

impl ServerMsg {
    /// The JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"type\":\"error\",\"reason\":\"cannot encode a message: {e}\"}}")
        })
    }
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
