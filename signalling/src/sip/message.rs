//! Out-of-dialog MESSAGE (RFC 3428) from an account: one non-INVITE transaction, a 401/407
//! answered once with our digest code, the final status returned. Receiving is in
//! `incoming.rs` (`Incoming::Message`).

use rsipstack::sip::{self as rsip, Header, Method};
use rsipstack::transaction::random_text;

use super::account::SipAccount;
use super::call::{CallOptions, callee_uri, first_hop};
use super::client::{ClientError, SipUserAgent};
use super::digest::{Challenge, DigestSession};
use super::wire;

impl SipUserAgent {
    /// Sends `text` (`text/plain`) to `to` from `account`; returns the final status and reason
    /// (`408 "Request Timeout"` when nothing answered within the transaction timeout).
    pub async fn send_message(
        &self,
        account: &SipAccount,
        to: &str,
        text: &str,
        options: &CallOptions,
    ) -> Result<(u16, String), ClientError> {
        let uri = callee_uri(account, to)?;
        let uri_text = uri.to_string();
        let request_uri = rsip::Uri::try_from(uri_text.as_str()).map_err(|e| ClientError::Uri {
            uri: uri_text.clone(),
            why: e.to_string(),
        })?;
        let dest = first_hop(account, &uri).map_err(ClientError::Endpoint)?;
        let call_id = format!("{}@wavegate", random_text(24));
        let from_tag = random_text(10);
        let mut digest: Option<DigestSession> = None;
        for cseq in 1..=2u32 {
            let mut headers: Vec<Header> = vec![
                Header::MaxForwards(70.into()),
                Header::From(rsip::headers::From::new(format!(
                    "{};tag={from_tag}",
                    account.from_header()
                ))),
                Header::To(rsip::headers::To::new(format!("<{uri_text}>"))),
                Header::CallId(rsip::headers::CallId::new(call_id.clone())),
                Header::CSeq(
                    rsip::typed::CSeq {
                        seq: cseq,
                        method: Method::Message,
                    }
                    .into(),
                ),
                Header::UserAgent(rsip::headers::UserAgent::new("wavegate")),
                Header::ContentType(rsip::headers::ContentType::new("text/plain")),
            ];
            if let Some(session) = &mut digest {
                let value = session.authorize(
                    "MESSAGE",
                    &uri_text,
                    account.auth_name.as_str(),
                    account.password.expose(),
                    &random_text(16),
                );
                headers.push(wire::auth_header(session.header, value));
            }
            for h in &account.extra_headers {
                headers.push(Header::Other(h.name.clone(), h.value.clone()));
            }
            let req = rsip::Request {
                method: Method::Message,
                uri: request_uri.clone(),
                headers: headers.into(),
                body: text.as_bytes().to_vec(),
                version: rsip::Version::V2,
            };
            let (tx, _) = wire::start_client(&self.inner, req, &dest)
                .await
                .map_err(ClientError::Endpoint)?;
            let mut rx = wire::pump(tx);
            let resp = tokio::time::timeout(options.transaction_timeout, async {
                while let Some(resp) = rx.recv().await {
                    if resp.status_code.code() >= 200 {
                        return Some(resp);
                    }
                }
                None
            })
            .await
            .ok()
            .flatten();
            let Some(resp) = resp else {
                return Ok((408, "Request Timeout".into()));
            };
            let status = resp.status_code.code();
            if matches!(status, 401 | 407) && digest.is_none() {
                let (values, header) = wire::challenges(&resp, status);
                if let Ok(challenge) = Challenge::choose(values.iter().map(String::as_str)) {
                    digest = Some(DigestSession::new(challenge, header));
                    continue;
                }
            }
            return Ok((status, wire::reason(&resp)));
        }
        Ok((403, "Forbidden".into()))
    }
}
