//! A confirmed SIP dialog's state (RFC 3261 §12): identifiers, local/remote URIs, remote target,
//! route set and local CSeq, and the building of in-dialog requests (BYE, re-INVITE, INFO,
//! MESSAGE) from it. No I/O: the driver sends what this builds. Invariants: the route set is
//! fixed when the dialog is created (Record-Route of the 2xx reversed for us as caller, in order
//! for us as callee), the local CSeq only grows, and every request carries our tag in From and
//! the remote tag in To.

use rsipstack::sip::{self as rsip, Header, HeadersExt as _, Method};

use super::inbound::DialogKey;

/// Why a dialog could not be formed from a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header the dialog needs is missing or malformed.
    #[error("dialog needs {0}")]
    Missing(&'static str),
}

/// A dialog, from our side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// Their tag.
    pub remote_tag: String,
    /// Our From/To value without tag (name-addr).
    pub local_uri: String,
    /// Their From/To value without tag.
    pub remote_uri: String,
    /// Their Contact URI: the Request-URI of our requests.
    pub remote_target: String,
    /// Route headers for our requests, in order (each `<uri>`).
    pub route_set: Vec<String>,
    /// The CSeq of our last request.
    pub local_cseq: u32,
    /// Our Contact (name-addr).
    pub local_contact: String,
}

fn strip_tag(value: &str) -> String {
    // The tag parameter follows the name-addr; drop it (and only it).
    value
        .split(';')
        .filter(|p| !p.trim_start().to_ascii_lowercase().starts_with("tag="))
        .collect::<Vec<_>>()
        .join(";")
}

fn contact_uri(h: &rsip::headers::Contact) -> Result<String, DialogError> {
    let v = h.value();
    let v = v.split(',').next().unwrap_or("").trim();
    let uri = match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v.split(';').next().unwrap_or(""),
    };
    if uri.is_empty() {
        Err(DialogError::Missing("Contact"))
    } else {
        Ok(uri.to_string())
    }
}

fn record_routes(headers: &rsip::Headers) -> Vec<String> {
    let mut out = Vec::new();
    for h in headers.iter() {
        if let Header::RecordRoute(rr) = h {
            for part in rr.value().split(',') {
                let part = part.trim();
                if !part.is_empty() {
                    out.push(part.to_string());
                }
            }
        }
    }
    out
}

impl Dialog {
    /// The dialog our INVITE created, from its 2xx (we are the caller).
    pub fn from_uac(
        invite: &rsip::Request,
        resp: &rsip::Response,
        local_contact: &str,
    ) -> Result<Dialog, DialogError> {
        let from = invite
            .from_header()
            .map_err(|_| DialogError::Missing("From"))?;
        let local_tag = from
            .tag()
            .ok()
            .flatten()
            .ok_or(DialogError::Missing("From tag"))?
            .value()
            .to_string();
        let to = resp.to_header().map_err(|_| DialogError::Missing("To"))?;
        let remote_tag = to
            .tag()
            .ok()
            .flatten()
            .ok_or(DialogError::Missing("To tag"))?
            .value()
            .to_string();
        let call_id = resp
            .call_id_header()
            .map_err(|_| DialogError::Missing("Call-ID"))?
            .value()
            .trim()
            .to_string();
        let remote_target = contact_uri(
            resp.contact_header()
                .map_err(|_| DialogError::Missing("Contact"))?,
        )?;
        let mut route_set = record_routes(&resp.headers);
        route_set.reverse();
        let local_cseq = invite
            .cseq_header()
            .ok()
            .and_then(|c| c.seq().ok())
            .unwrap_or(1);
        Ok(Dialog {
            call_id,
            local_tag,
            remote_tag,
            local_uri: strip_tag(from.value()),
            remote_uri: strip_tag(to.value()),
            remote_target,
            route_set,
            local_cseq,
            local_contact: local_contact.to_string(),
        })
    }

    /// The dialog we create by answering `invite` with `local_tag` (we are the callee).
    pub fn from_uas(
        invite: &rsip::Request,
        local_tag: &str,
        local_contact: &str,
    ) -> Result<Dialog, DialogError> {
        let from = invite
            .from_header()
            .map_err(|_| DialogError::Missing("From"))?;
        let remote_tag = from
            .tag()
            .ok()
            .flatten()
            .ok_or(DialogError::Missing("From tag"))?
            .value()
            .to_string();
        let to = invite.to_header().map_err(|_| DialogError::Missing("To"))?;
        let call_id = invite
            .call_id_header()
            .map_err(|_| DialogError::Missing("Call-ID"))?
            .value()
            .trim()
            .to_string();
        let remote_target = contact_uri(
            invite
                .contact_header()
                .map_err(|_| DialogError::Missing("Contact"))?,
        )?;
        Ok(Dialog {
            call_id,
            local_tag: local_tag.to_string(),
            remote_tag,
            local_uri: strip_tag(to.value()),
            remote_uri: strip_tag(from.value()),
            remote_target,
            route_set: record_routes(&invite.headers),
            local_cseq: 0,
            local_contact: local_contact.to_string(),
        })
    }

    /// The key the dispatcher routes this dialog's requests by.
    pub fn key(&self) -> DialogKey {
        DialogKey {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone(),
        }
    }

    /// Where our requests go first: the first route (loose routing), else the remote target.
    pub fn next_hop(&self) -> String {
        match self.route_set.first() {
            Some(r) => {
                let r = r.trim();
                match (r.find('<'), r.find('>')) {
                    (Some(a), Some(b)) if a < b => r[a + 1..b].to_string(),
                    _ => r.to_string(),
                }
            }
            None => self.remote_target.clone(),
        }
    }

    /// A new in-dialog request (without Via: the driver adds it for the chosen connection).
    /// `body` comes with its content type.
    pub fn request(
        &mut self,
        method: Method,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<rsip::Request, DialogError> {
        self.local_cseq += 1;
        let uri = rsip::Uri::try_from(self.remote_target.as_str())
            .map_err(|_| DialogError::Missing("remote target URI"))?;
        let mut headers: Vec<Header> = vec![
            Header::From(rsip::headers::From::new(format!(
                "{};tag={}",
                self.local_uri, self.local_tag
            ))),
            Header::To(rsip::headers::To::new(format!(
                "{};tag={}",
                self.remote_uri, self.remote_tag
            ))),
            Header::CallId(rsip::headers::CallId::new(self.call_id.clone())),
            Header::CSeq(
                rsip::typed::CSeq {
                    seq: self.local_cseq,
                    method,
                }
                .into(),
            ),
            Header::MaxForwards(70.into()),
        ];
        for r in &self.route_set {
            headers.push(Header::Route(rsip::headers::Route::new(r.clone())));
        }
        if matches!(method, Method::Invite | Method::Refer) {
            headers.push(Header::Contact(rsip::headers::Contact::new(
                self.local_contact.clone(),
            )));
        }
        headers.push(Header::UserAgent(rsip::headers::UserAgent::new("wavegate")));
        let body = match body {
            Some((content_type, bytes)) => {
                headers.push(Header::ContentType(rsip::headers::ContentType::new(
                    content_type.to_string(),
                )));
                bytes
            }
            None => Vec::new(),
        };
        Ok(rsip::Request {
            method,
            uri,
            headers: headers.into(),
            body,
            version: rsip::Version::V2,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
        From: \"Al\" <sip:alice@example.com>;tag=ours\r\nTo: <sip:bob@example.com>\r\nCall-ID: cid1\r\n\
        CSeq: 2 INVITE\r\nContact: <sip:alice@127.0.0.1:5060>\r\nContent-Length: 0\r\n\r\n";
    const OK: &str = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
        Record-Route: <sip:10.0.0.1;lr>\r\nRecord-Route: <sip:10.0.0.2;lr>, <sip:10.0.0.3;lr>\r\n\
        From: \"Al\" <sip:alice@example.com>;tag=ours\r\nTo: <sip:bob@example.com>;tag=theirs\r\nCall-ID: cid1\r\n\
        CSeq: 2 INVITE\r\nContact: <sip:bob@127.0.0.1:5090;transport=udp>;expires=60\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn uac_dialog_from_2xx_reverses_record_route_and_builds_bye() {
        let rsip::SipMessage::Request(inv) = rsip::SipMessage::try_from(INVITE).unwrap() else {
            panic!()
        };
        let rsip::SipMessage::Response(ok) = rsip::SipMessage::try_from(OK).unwrap() else {
            panic!()
        };
        let mut d = Dialog::from_uac(&inv, &ok, "<sip:alice@127.0.0.1:5060>").unwrap();
        assert_eq!(
            d.key(),
            DialogKey {
                call_id: "cid1".into(),
                local_tag: "ours".into(),
                remote_tag: "theirs".into()
            }
        );
        assert_eq!(d.remote_target, "sip:bob@127.0.0.1:5090;transport=udp");
        assert_eq!(
            d.route_set,
            vec![
                "<sip:10.0.0.3;lr>",
                "<sip:10.0.0.2;lr>",
                "<sip:10.0.0.1;lr>"
            ]
        );
        assert_eq!(d.next_hop(), "sip:10.0.0.3;lr");
        let bye = d.request(Method::Bye, None).unwrap().to_string();
        assert!(
            bye.to_ascii_lowercase()
                .starts_with("bye sip:bob@127.0.0.1:5090;transport=udp sip/2.0\r\n"),
            "{bye}"
        );
        assert!(bye.contains("CSeq: 3 BYE"), "{bye}");
        assert!(
            bye.contains("From: \"Al\" <sip:alice@example.com>;tag=ours"),
            "{bye}"
        );
        assert!(
            bye.contains("To: <sip:bob@example.com>;tag=theirs"),
            "{bye}"
        );
        assert!(
            bye.find("Route: <sip:10.0.0.3;lr>").unwrap()
                < bye.find("Route: <sip:10.0.0.1;lr>").unwrap(),
            "{bye}"
        );
        let info = d
            .request(
                Method::Info,
                Some((
                    "application/dtmf-relay",
                    b"Signal=5\r\nDuration=160\r\n".to_vec(),
                )),
            )
            .unwrap();
        assert!(info.to_string().contains("CSeq: 4 INFO"));
    }

    #[test]
    fn uas_dialog_swaps_sides() {
        let rsip::SipMessage::Request(inv) =
            rsip::SipMessage::try_from(INVITE.replace("tag=ours", "tag=caller")).unwrap()
        else {
            panic!()
        };
        let mut d = Dialog::from_uas(&inv, "callee", "<sip:bob@127.0.0.1:5090>").unwrap();
        assert_eq!(d.remote_target, "sip:alice@127.0.0.1:5060");
        let bye = d.request(Method::Bye, None).unwrap().to_string();
        assert!(
            bye.contains("From: <sip:bob@example.com>;tag=callee"),
            "{bye}"
        );
        assert!(
            bye.contains("To: \"Al\" <sip:alice@example.com>;tag=caller"),
            "{bye}"
        );
        assert!(bye.contains("CSeq: 1 BYE"), "{bye}");
    }
}
