//! The entry path for requests that reach the user agent: rsipstack has already framed and
//! parsed the bytes into its `Request`; here that request is checked against what RFC 3261
//! §8.2 and §20 require of every request we act on (Via, From with a tag, To, Call-ID, a CSeq
//! whose method matches the start line, a Content-Length that matches the body) and turned into
//! a typed [`Inbound`]. [`route`] then decides, without I/O, what the dispatcher does with it:
//! answer OPTIONS, refuse a method (405), a user we do not register (404), an unknown dialog
//! (481), or hand it to a dialog or to the account owner. Invariant: the dispatcher only acts on
//! an `Inbound`; anything that fails [`check_request`] is answered 400 (or dropped when it
//! cannot be answered at all), so no partially valid request reaches call logic.

use rsipstack::sip::{self as rsip, Header, HeadersExt as _, Method, SipMessage};
use thiserror::Error;

/// Methods the user agent implements (the `Allow` header of OPTIONS and 405 answers).
pub const ALLOWED: &[Method] = &[
    Method::Invite,
    Method::Ack,
    Method::Bye,
    Method::Cancel,
    Method::Options,
    Method::Info,
    Method::Message,
    Method::Refer,
    Method::Notify,
];

/// Bodies we accept in requests (`Accept` of OPTIONS).
pub const ACCEPT: &str = "application/sdp, application/dtmf-relay, application/dtmf, text/plain";

/// The `Allow` header value.
pub fn allow_value() -> String {
    ALLOWED
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a request is refused with 400 (or dropped when it is not even a request).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InboundError {
    /// The bytes are not a SIP message (rsipstack's parser refused them).
    #[error("not a SIP message: {0}")]
    Parse(String),
    /// A response where a request was expected.
    #[error("not a request")]
    NotARequest,
    /// A mandatory header is absent or unparsable.
    #[error("missing or malformed {0} header")]
    Header(&'static str),
    /// From carries no tag (RFC 3261 §8.1.1.3 requires one).
    #[error("From header has no tag")]
    NoFromTag,
    /// The CSeq method differs from the start line's method.
    #[error("CSeq method {cseq} does not match request method {method}")]
    CseqMethod {
        /// Start line method.
        method: String,
        /// CSeq method.
        cseq: String,
    },
    /// Content-Length disagrees with the body received (truncated datagram or lying header).
    #[error("Content-Length {declared} but {actual} body bytes")]
    ContentLength {
        /// The header's value (`None`: not a number).
        declared: String,
        /// Bytes received.
        actual: usize,
    },
}

/// Identifies a dialog from our side: Call-ID, our tag, the remote tag (RFC 3261 §12).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogKey {
    /// Call-ID.
    pub call_id: String,
    /// Our tag (From of our requests, To of theirs).
    pub local_tag: String,
    /// The remote tag.
    pub remote_tag: String,
}

/// A request that passed [`check_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The method.
    pub method: Method,
    /// Call-ID.
    pub call_id: String,
    /// From tag.
    pub from_tag: String,
    /// To tag (present: in-dialog request).
    pub to_tag: Option<String>,
    /// CSeq number.
    pub cseq: u32,
    /// The Request-URI's user part, if any.
    pub user: Option<String>,
    /// Body length.
    pub body_len: usize,
}

impl Inbound {
    /// The dialog this request belongs to, when it carries a To tag.
    pub fn dialog_key(&self) -> Option<DialogKey> {
        self.to_tag.as_ref().map(|to| DialogKey {
            call_id: self.call_id.clone(),
            local_tag: to.clone(),
            remote_tag: self.from_tag.clone(),
        })
    }
}

/// Checks a parsed request (the dispatcher's entry point).
pub fn check_request(req: &rsip::Request) -> Result<Inbound, InboundError> {
    req.via_header().map_err(|_| InboundError::Header("Via"))?;
    let from = req
        .from_header()
        .map_err(|_| InboundError::Header("From"))?;
    let from_tag = from
        .tag()
        .map_err(|_| InboundError::Header("From"))?
        .ok_or(InboundError::NoFromTag)?;
    let to = req.to_header().map_err(|_| InboundError::Header("To"))?;
    let to_tag = to
        .tag()
        .map_err(|_| InboundError::Header("To"))?
        .map(|t| t.value().to_string());
    let call_id = req
        .call_id_header()
        .map_err(|_| InboundError::Header("Call-ID"))?
        .value()
        .trim()
        .to_string();
    if call_id.is_empty() {
        return Err(InboundError::Header("Call-ID"));
    }
    let cseq = req
        .cseq_header()
        .map_err(|_| InboundError::Header("CSeq"))?;
    let seq = cseq.seq().map_err(|_| InboundError::Header("CSeq"))?;
    let cseq_method = cseq.method().map_err(|_| InboundError::Header("CSeq"))?;
    if cseq_method != req.method {
        return Err(InboundError::CseqMethod {
            method: req.method.to_string(),
            cseq: cseq_method.to_string(),
        });
    }
    for h in req.headers.iter() {
        if let Header::ContentLength(cl) = h {
            let declared = cl.value().trim();
            if declared.parse::<usize>().ok() != Some(req.body.len()) {
                return Err(InboundError::ContentLength {
                    declared: declared.to_string(),
                    actual: req.body.len(),
                });
            }
        }
    }
    Ok(Inbound {
        method: req.method,
        call_id,
        from_tag: from_tag.value().to_string(),
        to_tag,
        cseq: seq,
        user: req
            .uri
            .auth
            .as_ref()
            .map(|a| a.user.clone())
            .filter(|u| !u.is_empty()),
        body_len: req.body.len(),
    })
}

/// The whole entry path from bytes (what the fuzz target drives): rsipstack's parser, then
/// [`check_request`].
pub fn parse_request(bytes: &[u8]) -> Result<(rsip::Request, Inbound), InboundError> {
    match SipMessage::try_from(bytes) {
        Ok(SipMessage::Request(req)) => {
            let inbound = check_request(&req)?;
            Ok((req, inbound))
        }
        Ok(SipMessage::Response(_)) => Err(InboundError::NotARequest),
        Err(e) => Err(InboundError::Parse(e.to_string())),
    }
}

/// What the dispatcher does with a checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Answer with this status and reason (plus `Allow` for 405).
    Reply(u16, &'static str),
    /// Answer OPTIONS with 200, `Allow` and `Accept`.
    Options,
    /// Hand it to the dialog.
    Dialog(DialogKey),
    /// A new INVITE for a registered user.
    NewInvite {
        /// The user part.
        user: String,
    },
    /// An out-of-dialog MESSAGE for a registered user.
    NewMessage {
        /// The user part.
        user: String,
    },
    /// Nothing to answer (ACK outside any transaction we know).
    Absorb,
}

/// Decides what to do with a request. `known_user` says whether a login is registered here;
/// `has_dialog` whether a dialog exists.
pub fn route(
    inb: &Inbound,
    known_user: impl Fn(&str) -> bool,
    has_dialog: impl Fn(&DialogKey) -> bool,
) -> Route {
    if !ALLOWED.contains(&inb.method) {
        return Route::Reply(405, "Method Not Allowed");
    }
    if let Some(key) = inb.dialog_key() {
        if has_dialog(&key) {
            return Route::Dialog(key);
        }
        return match inb.method {
            Method::Ack => Route::Absorb,
            // OPTIONS inside a dialog we forgot still tells the peer we are alive.
            Method::Options => Route::Options,
            _ => Route::Reply(481, "Call/Transaction Does Not Exist"),
        };
    }
    match inb.method {
        Method::Options => Route::Options,
        Method::Ack => Route::Absorb,
        Method::Invite | Method::Message => {
            let Some(user) = inb.user.as_deref().filter(|u| known_user(u)) else {
                return Route::Reply(404, "Not Found");
            };
            if inb.method == Method::Invite {
                Route::NewInvite {
                    user: user.to_string(),
                }
            } else {
                Route::NewMessage {
                    user: user.to_string(),
                }
            }
        }
        // BYE, INFO, CANCEL outside a dialog (CANCEL without its INVITE is answered by rsipstack).
        _ => Route::Reply(481, "Call/Transaction Does Not Exist"),
    }
}

/// Fuzz entry: the whole path from bytes to a routing decision; must never panic.
pub fn exercise(bytes: &[u8]) {
    if let Ok((_, inb)) = parse_request(bytes) {
        let _ = route(&inb, |u| u == "alice", |k| k.call_id.len() % 2 == 0);
    }
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;
