//! Requests inside an established dialog that every call answers the same way, whichever side
//! called: BYE (200), re-INVITE (491 while our own re-INVITE is pending, else 200 with our SDP
//! in the answering direction), INFO (DTMF recognised in `application/dtmf-relay` and
//! `application/dtmf` bodies) and MESSAGE (200, reported). The call cores decide what the
//! request means for the call state from the returned [`InDialog`].

use rsipstack::sip::{self as rsip, Header, Method};
use tokio::sync::mpsc;

use super::call::{CallEvent, CallOptions};
use super::dialog::Dialog;
use super::dispatch::{self, InboundTx};
use super::wire::{self, answer_direction, sdp_with_direction};
use crate::call::Direction;
use crate::call::transfer::sipfrag_status;
use rsipstack::transaction::endpoint::EndpointInnerRef;

/// The REFER for a blind transfer of this dialog's far end to `target` (RFC 3515): Refer-To
/// the target, Referred-By our URI. Sent by the driver; its final response goes to the core.
pub(crate) fn refer_request(d: &mut Dialog, target: &str) -> Option<rsip::Request> {
    let mut req = d.request(Method::Refer, None).ok()?;
    let ours = d.local_uri.clone();
    req.headers
        .push(Header::Other("Refer-To".into(), format!("<{target}>")));
    req.headers.push(Header::Other("Referred-By".into(), ours));
    Some(req)
}

/// NOTIFY of the implicit subscription of a REFER we accepted (RFC 3515) with a sipfrag
/// status line; the subscription ends with it (the call is BYEd right after). Awaited (bounded
/// by `timeout`) so the NOTIFY is answered before our BYE goes out.
pub(crate) async fn notify_refer(
    inner: &EndpointInnerRef,
    d: &mut Dialog,
    tcp: bool,
    timeout: std::time::Duration,
    status_line: &str,
) {
    let Ok(mut req) = d.request(
        Method::Notify,
        Some((
            "message/sipfrag;version=2.0",
            status_line.as_bytes().to_vec(),
        )),
    ) else {
        return;
    };
    req.headers
        .push(Header::Other("Event".into(), "refer".into()));
    req.headers.push(Header::Other(
        "Subscription-State".into(),
        "terminated;reason=noresource".into(),
    ));
    if let Ok(dest) = wire::sip_addr(&d.next_hop(), tcp) {
        let _ = wire::request_final(inner, req, &dest, timeout).await;
    }
}

/// What an in-dialog request meant for the call core.
pub(crate) enum InDialog {
    /// BYE (answered 200).
    Bye,
    /// A re-INVITE offering this direction (answered 200 with our SDP).
    Direction(Direction),
    /// REFER to this target (answered 202 Accepted).
    Refer(String),
    /// NOTIFY of a REFER subscription (answered 200) with the sipfrag's status and reason.
    Notify(u16, String),
    /// Anything else (answered; INFO/MESSAGE reported as [`CallEvent::Info`]).
    Other,
}

/// Answers an in-dialog request: BYE 200; re-INVITE 491 while ours is pending, else 200 with
/// our SDP in the answering direction (`sip_sdp` is updated); INFO/MESSAGE 200 and reported.
pub(crate) async fn serve_in_dialog(
    mut req: InboundTx,
    sip_sdp: &mut String,
    contact: &str,
    reinvite_pending: bool,
    events: &mpsc::UnboundedSender<CallEvent>,
    options: &CallOptions,
) -> InDialog {
    let method = req.inbound.method;
    match method {
        Method::Bye => {
            let _ = dispatch::reply(&mut req.tx, 200, "OK", vec![]).await;
            InDialog::Bye
        }
        Method::Invite => {
            if reinvite_pending {
                let _ = dispatch::reply(&mut req.tx, 491, "Request Pending", vec![]).await;
                return InDialog::Other;
            }
            let offer = String::from_utf8_lossy(&req.tx.original.body).into_owned();
            let theirs = Direction::of_sdp(&offer);
            let ours = sdp_with_direction(sip_sdp, answer_direction(theirs));
            *sip_sdp = ours.clone();
            let headers = vec![
                Header::Contact(rsip::headers::Contact::new(contact.to_string())),
                Header::ContentType(rsip::headers::ContentType::new("application/sdp")),
            ];
            let _ = dispatch::reply_body(&mut req.tx, 200, "OK", headers, Some(ours.into_bytes()))
                .await;
            wire::linger(req.tx, options.transaction_timeout);
            InDialog::Direction(theirs)
        }
        Method::Refer => {
            let target = req.tx.original.headers.iter().find_map(|h| match h {
                Header::ReferTo(r) => Some(refer_target(r.value())),
                _ => None,
            });
            match target {
                Some(t) if !t.is_empty() => {
                    let _ = dispatch::reply(&mut req.tx, 202, "Accepted", vec![]).await;
                    InDialog::Refer(t)
                }
                _ => {
                    let _ = dispatch::reply(&mut req.tx, 400, "Refer-To missing", vec![]).await;
                    InDialog::Other
                }
            }
        }
        Method::Notify => {
            let refer_event = req.tx.original.headers.iter().any(|h| match h {
                Header::Event(e) => e.value().trim().to_ascii_lowercase().starts_with("refer"),
                _ => false,
            });
            let body = String::from_utf8_lossy(&req.tx.original.body).into_owned();
            let _ = dispatch::reply(&mut req.tx, 200, "OK", vec![]).await;
            match sipfrag_status(&body) {
                Some((status, reason)) if refer_event => InDialog::Notify(status, reason),
                _ => InDialog::Other,
            }
        }
        Method::Info | Method::Message => {
            let content_type = req
                .tx
                .original
                .headers
                .iter()
                .find_map(|h| match h {
                    Header::ContentType(c) => Some(c.value().to_string()),
                    _ => None,
                })
                .unwrap_or_default();
            let body = String::from_utf8_lossy(&req.tx.original.body).into_owned();
            let _ = dispatch::reply(&mut req.tx, 200, "OK", vec![]).await;
            let event = match dtmf_digit(&content_type, &body) {
                Some(d) if method == Method::Info => CallEvent::Dtmf(d),
                _ => CallEvent::Info {
                    method: method.to_string(),
                    content_type,
                    body,
                },
            };
            let _ = events.send(event);
            InDialog::Other
        }
        _ => {
            let _ = dispatch::reply(&mut req.tx, 200, "OK", vec![]).await;
            InDialog::Other
        }
    }
}

/// The `application/dtmf-relay` body for `digit` (the SIP INFO DTMF de facto format).
pub fn dtmf_relay_body(digit: char) -> Option<String> {
    let d = digit.to_ascii_uppercase();
    matches!(d, '0'..='9' | '*' | '#' | 'A'..='D')
        .then(|| format!("Signal={d}\r\nDuration=160\r\n"))
}

/// The digit in an INFO body: `application/dtmf-relay` (`Signal=5`) or `application/dtmf`
/// (the bare digit, RFC 2976 style).
pub fn dtmf_digit(content_type: &str, body: &str) -> Option<char> {
    let ct = content_type.trim().to_ascii_lowercase();
    let digit = if ct.starts_with("application/dtmf-relay") {
        body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| v.trim().chars().next())
                .flatten()
        })?
    } else if ct.starts_with("application/dtmf") {
        body.trim().chars().next()?
    } else {
        return None;
    };
    let d = digit.to_ascii_uppercase();
    matches!(d, '0'..='9' | '*' | '#' | 'A'..='D').then_some(d)
}

/// The URI of a Refer-To value (`<sip:x@h?Replaces=...>;p` → `sip:x@h`); headers in the URI
/// (attended transfer) are dropped: only blind transfer is supported.
pub fn refer_target(value: &str) -> String {
    let v = value.trim();
    let uri = match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v.split(';').next().unwrap_or(""),
    };
    uri.split('?').next().unwrap_or("").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refer_targets() {
        assert_eq!(
            refer_target("<sip:carol@127.0.0.1:5090>"),
            "sip:carol@127.0.0.1:5090"
        );
        assert_eq!(
            refer_target("<sip:carol@h?Replaces=abc%40x>;x=1"),
            "sip:carol@h"
        );
        assert_eq!(refer_target("sip:dave@h;transport=udp"), "sip:dave@h");
    }

    #[test]
    fn dtmf_bodies() {
        assert_eq!(
            dtmf_relay_body('5').as_deref(),
            Some("Signal=5\r\nDuration=160\r\n")
        );
        assert_eq!(dtmf_relay_body('x'), None);
        assert_eq!(
            dtmf_digit("application/dtmf-relay", "Signal= #\r\nDuration=100\r\n"),
            Some('#')
        );
        assert_eq!(dtmf_digit("Application/DTMF", "7\r\n"), Some('7'));
        assert_eq!(dtmf_digit("application/dtmf", "Z"), None);
        assert_eq!(dtmf_digit("text/plain", "5"), None);
        assert_eq!(dtmf_digit("application/dtmf-relay", "Duration=100"), None);
    }
}
