//! The Janus side of the `versus-janus` scenario, sans-IO: the JSON requests one simulated
//! browser sends to Janus (core API over the WebSocket transport, with the SIP plugin's
//! `register`, `call` and `hangup` bodies) and the parsing of everything Janus sends back into
//! [`Reply`].
//!
//! Invariants: requests are built only here, each with the transaction id the caller gives, so
//! replies can be matched; [`parse`] never panics on any input (proptest below) and keeps only
//! the fields the driver acts on; anything it does not know becomes [`Reply::Other`] rather
//! than an error, because Janus adds informative events (`media`, `slowlink`) freely.

use serde_json::{Value, json};

/// Why a message from Janus could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JanusApiError {
    /// Not JSON at all.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// JSON without a `janus` field naming the message kind.
    #[error("no \"janus\" field")]
    NoKind,
}

/// What a SIP plugin event reports (`plugindata.data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipEvent {
    /// `result.event` (`registered`, `calling`, `progress`, `ringing`, `accepted`, `hangup`,
    /// `registration_failed`, ...), with `result.code` and `result.reason` when present.
    Result {
        /// The event name.
        event: String,
        /// SIP status code (hangup, registration_failed).
        code: Option<u16>,
        /// Reason phrase.
        reason: Option<String>,
    },
    /// The plugin refused a request: `error_code` and `error`.
    Error {
        /// The plugin's error code.
        code: i64,
        /// Its text.
        reason: String,
    },
}

/// One message from Janus, reduced to what the driver needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `success` to `create` or `attach` (`data.id`), or to `keepalive`/`destroy` (no id).
    Success {
        /// The request's transaction.
        transaction: String,
        /// The new session or handle id.
        id: Option<u64>,
    },
    /// `ack`: a plugin request or keepalive was taken; its outcome comes as an event.
    Ack {
        /// The request's transaction.
        transaction: String,
    },
    /// `error` from the core (bad request, no such session, ...).
    Error {
        /// The request's transaction, if any.
        transaction: Option<String>,
        /// Janus' error code.
        code: i64,
        /// Its text.
        reason: String,
    },
    /// A plugin `event`, with the JSEP answer's SDP when it carries one.
    Event {
        /// The request's transaction (absent for asynchronous events).
        transaction: Option<String>,
        /// What the SIP plugin said.
        sip: SipEvent,
        /// `jsep.sdp` when `jsep.type` is `answer`.
        answer: Option<String>,
    },
    /// `webrtcup`: ICE and DTLS completed on Janus' side.
    WebrtcUp,
    /// `hangup`: the core closed the PeerConnection (with `reason`).
    PeerHangup {
        /// Why.
        reason: String,
    },
    /// `timeout`: the session expired (no keepalive in time).
    Timeout,
    /// `detached`, `media`, `slowlink`, `trickle` and anything else.
    Other(String),
}

/// `create`: a new session.
pub fn create(transaction: &str) -> String {
    json!({"janus": "create", "transaction": transaction}).to_string()
}

/// `attach` the SIP plugin to `session`.
pub fn attach(session: u64, transaction: &str) -> String {
    json!({"janus": "attach", "session_id": session, "plugin": "janus.plugin.sip",
           "transaction": transaction})
    .to_string()
}

/// A plugin `message` with `body` and an optional `jsep`.
fn message(
    session: u64,
    handle: u64,
    transaction: &str,
    body: Value,
    jsep: Option<Value>,
) -> String {
    let mut m = json!({"janus": "message", "session_id": session, "handle_id": handle,
                       "transaction": transaction, "body": body});
    if let Some(j) = jsep {
        m["jsep"] = j;
    }
    m.to_string()
}

/// `register` the handle as `username` (a SIP URI) with `type: guest`: no REGISTER is sent and
/// calls go straight to the callee's URI, as Wavegate's sessions without `registerRequired` do.
pub fn register_guest(session: u64, handle: u64, transaction: &str, username: &str) -> String {
    let body = json!({"request": "register", "type": "guest", "username": username});
    message(session, handle, transaction, body, None)
}

/// `call` `uri` with the browser's offer. `trickle: false` tells Janus the offer already holds
/// all our candidates, so it answers with its own gathered ones in the SDP.
pub fn call(session: u64, handle: u64, transaction: &str, uri: &str, offer: &str) -> String {
    message(
        session,
        handle,
        transaction,
        json!({"request": "call", "uri": uri}),
        Some(json!({"type": "offer", "sdp": offer, "trickle": false})),
    )
}

/// `hangup` the handle's call.
pub fn hangup(session: u64, handle: u64, transaction: &str) -> String {
    message(
        session,
        handle,
        transaction,
        json!({"request": "hangup"}),
        None,
    )
}

/// `keepalive` for `session`.
pub fn keepalive(session: u64, transaction: &str) -> String {
    json!({"janus": "keepalive", "session_id": session, "transaction": transaction}).to_string()
}

/// `destroy` `session` (and its handles).
pub fn destroy(session: u64, transaction: &str) -> String {
    json!({"janus": "destroy", "session_id": session, "transaction": transaction}).to_string()
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Reads one text frame from Janus.
pub fn parse(frame: &str) -> Result<Reply, JanusApiError> {
    let v: Value =
        serde_json::from_str(frame).map_err(|e| JanusApiError::NotJson(e.to_string()))?;
    let kind = v
        .get("janus")
        .and_then(Value::as_str)
        .ok_or(JanusApiError::NoKind)?;
    let transaction = text(&v, "transaction");
    Ok(match kind {
        "success" => Reply::Success {
            transaction: transaction.unwrap_or_default(),
            id: v.pointer("/data/id").and_then(Value::as_u64),
        },
        "ack" => Reply::Ack {
            transaction: transaction.unwrap_or_default(),
        },
        "error" => Reply::Error {
            transaction,
            code: v
                .pointer("/error/code")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            reason: v
                .pointer("/error/reason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        },
        "event" => {
            let data = v
                .pointer("/plugindata/data")
                .cloned()
                .unwrap_or(Value::Null);
            let sip = if let Some(code) = data.get("error_code").and_then(Value::as_i64) {
                SipEvent::Error {
                    code,
                    reason: text(&data, "error").unwrap_or_default(),
                }
            } else {
                let result = data.get("result").cloned().unwrap_or(Value::Null);
                SipEvent::Result {
                    event: text(&result, "event").unwrap_or_default(),
                    code: result
                        .get("code")
                        .and_then(Value::as_u64)
                        .and_then(|c| u16::try_from(c).ok()),
                    reason: text(&result, "reason"),
                }
            };
            let answer = v
                .get("jsep")
                .filter(|j| j.get("type").and_then(Value::as_str) == Some("answer"))
                .and_then(|j| text(j, "sdp"));
            Reply::Event {
                transaction,
                sip,
                answer,
            }
        }
        "webrtcup" => Reply::WebrtcUp,
        "hangup" => Reply::PeerHangup {
            reason: text(&v, "reason").unwrap_or_default(),
        },
        "timeout" => Reply::Timeout,
        other => Reply::Other(other.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field(s: &str, pointer: &str) -> Value {
        let v: Value = serde_json::from_str(s).unwrap();
        v.pointer(pointer).cloned().unwrap_or(Value::Null)
    }

    #[test]
    fn requests_carry_ids_and_bodies() {
        let c = create("t1");
        assert_eq!(field(&c, "/janus"), "create");
        assert_eq!(field(&c, "/transaction"), "t1");
        let a = attach(7, "t2");
        assert_eq!(field(&a, "/session_id"), 7);
        assert_eq!(field(&a, "/plugin"), "janus.plugin.sip");
        let r = register_guest(7, 9, "t3", "sip:load1@127.0.0.1");
        assert_eq!(field(&r, "/handle_id"), 9);
        assert_eq!(field(&r, "/body/request"), "register");
        assert_eq!(field(&r, "/body/type"), "guest");
        assert_eq!(field(&r, "/body/username"), "sip:load1@127.0.0.1");
        let k = call(7, 9, "t4", "sip:sipp@127.0.0.1:5501", "v=0\r\n");
        assert_eq!(field(&k, "/body/request"), "call");
        assert_eq!(field(&k, "/body/uri"), "sip:sipp@127.0.0.1:5501");
        assert_eq!(field(&k, "/jsep/type"), "offer");
        assert_eq!(field(&k, "/jsep/sdp"), "v=0\r\n");
        assert_eq!(field(&k, "/jsep/trickle"), false);
        assert_eq!(field(&hangup(7, 9, "t5"), "/body/request"), "hangup");
        assert_eq!(field(&keepalive(7, "t6"), "/janus"), "keepalive");
        assert_eq!(field(&destroy(7, "t7"), "/janus"), "destroy");
    }

    #[test]
    fn replies_of_the_core() {
        assert_eq!(
            parse(r#"{"janus":"success","transaction":"t1","data":{"id":4242}}"#),
            Ok(Reply::Success {
                transaction: "t1".into(),
                id: Some(4242)
            })
        );
        assert_eq!(
            parse(r#"{"janus":"success","transaction":"k","session_id":1}"#),
            Ok(Reply::Success {
                transaction: "k".into(),
                id: None
            })
        );
        assert_eq!(
            parse(r#"{"janus":"ack","session_id":1,"transaction":"t3"}"#),
            Ok(Reply::Ack {
                transaction: "t3".into()
            })
        );
        assert_eq!(
            parse(
                r#"{"janus":"error","transaction":"t9","error":{"code":458,"reason":"No such session 5"}}"#
            ),
            Ok(Reply::Error {
                transaction: Some("t9".into()),
                code: 458,
                reason: "No such session 5".into()
            })
        );
        assert_eq!(
            parse(r#"{"janus":"webrtcup","session_id":1,"sender":2}"#),
            Ok(Reply::WebrtcUp)
        );
        assert_eq!(
            parse(r#"{"janus":"hangup","session_id":1,"sender":2,"reason":"DTLS alert"}"#),
            Ok(Reply::PeerHangup {
                reason: "DTLS alert".into()
            })
        );
        assert_eq!(
            parse(r#"{"janus":"timeout","session_id":1}"#),
            Ok(Reply::Timeout)
        );
        assert_eq!(
            parse(r#"{"janus":"media","type":"audio","receiving":true}"#),
            Ok(Reply::Other("media".into()))
        );
    }

    #[test]
    fn sip_plugin_events() {
        let accepted = r#"{"janus":"event","session_id":1,"sender":2,"plugindata":{"plugin":"janus.plugin.sip","data":{"sip":"event","call_id":"abc","result":{"event":"accepted","username":"sip:sipp@127.0.0.1"}}},"jsep":{"type":"answer","sdp":"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"}}"#;
        assert_eq!(
            parse(accepted),
            Ok(Reply::Event {
                transaction: None,
                sip: SipEvent::Result {
                    event: "accepted".into(),
                    code: None,
                    reason: None
                },
                answer: Some("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n".into()),
            })
        );
        let hung = r#"{"janus":"event","plugindata":{"data":{"sip":"event","result":{"event":"hangup","code":486,"reason":"Busy Here"}}}}"#;
        assert_eq!(
            parse(hung),
            Ok(Reply::Event {
                transaction: None,
                sip: SipEvent::Result {
                    event: "hangup".into(),
                    code: Some(486),
                    reason: Some("Busy Here".into())
                },
                answer: None,
            })
        );
        let refused = r#"{"janus":"event","transaction":"t4","plugindata":{"data":{"sip":"event","error_code":447,"error":"Invalid user address"}}}"#;
        assert_eq!(
            parse(refused),
            Ok(Reply::Event {
                transaction: Some("t4".into()),
                sip: SipEvent::Error {
                    code: 447,
                    reason: "Invalid user address".into()
                },
                answer: None,
            })
        );
        // An offer in jsep is not an answer.
        let offer = r#"{"janus":"event","plugindata":{"data":{"result":{"event":"incomingcall"}}},"jsep":{"type":"offer","sdp":"v=0"}}"#;
        assert!(matches!(
            parse(offer),
            Ok(Reply::Event { answer: None, .. })
        ));
    }

    #[test]
    fn junk_is_an_error() {
        assert!(matches!(parse("nope"), Err(JanusApiError::NotJson(_))));
        assert_eq!(parse(r#"{"x":1}"#), Err(JanusApiError::NoKind));
        assert_eq!(parse(r#"{"janus":5}"#), Err(JanusApiError::NoKind));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn parse_never_panics_on_janus_shaped_json(
            kind in "(success|ack|error|event|webrtcup|hangup|timeout|x)",
            id in proptest::option::of(any::<i64>()),
            code in proptest::option::of(any::<i64>()),
            sdp in proptest::option::of(".{0,20}"),
        ) {
            let frame = json!({"janus": kind, "data": {"id": id}, "error": {"code": code},
                "plugindata": {"data": {"error_code": code, "result": {"event": "x", "code": code}}},
                "jsep": {"type": "answer", "sdp": sdp}}).to_string();
            prop_assert!(parse(&frame).is_ok());
        }
    }
}
