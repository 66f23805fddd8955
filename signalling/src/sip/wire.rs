//! Small helpers the call drivers share for putting requests on rsipstack's transaction layer:
//! resolving a destination, adding our Via, starting a client transaction, pumping its
//! responses into a channel (the pump keeps driving the transaction so rsipstack re-ACKs 2xx
//! retransmissions until Timer M), answering server transactions, and SDP direction edits.
//! Invariant: every wait here is bounded by a timeout given by the caller.

use std::time::Duration;

use rsipstack::sip::{self as rsip, Header, SipMessage};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipAddr;
use tokio::sync::mpsc;

use super::digest::AuthHeader;
use crate::call::Direction;

/// The address requests for `uri` go to (`tcp`: force TCP).
pub fn sip_addr(uri: &str, tcp: bool) -> Result<SipAddr, String> {
    let uri = rsip::Uri::try_from(uri).map_err(|e| format!("bad URI {uri:?}: {e}"))?;
    let mut addr = SipAddr::try_from(&uri).map_err(|e| e.to_string())?;
    if tcp {
        addr.r#type = Some(rsip::Transport::Tcp);
    }
    Ok(addr)
}

/// Adds our Via for the connection towards `dest` and starts a client transaction; returns it
/// (already sent) and the `host:port` our Contact should name.
pub async fn start_client(
    inner: &EndpointInnerRef,
    mut req: rsip::Request,
    dest: &SipAddr,
) -> Result<(Transaction, String), String> {
    let (connection, _) = inner
        .transport_layer
        .lookup(dest, None)
        .await
        .map_err(|e| e.to_string())?;
    let via = inner
        .get_via(Some(connection.get_addr().clone()), None)
        .map_err(|e| e.to_string())?;
    let contact_host = connection.get_addr().addr.to_string();
    req.headers.push_front(Header::Via(via.into()));
    let has_length = req
        .headers
        .iter()
        .any(|h| matches!(h, Header::ContentLength(_)));
    if !has_length {
        req.headers
            .push(Header::ContentLength((req.body.len() as u32).into()));
    }
    let key =
        TransactionKey::from_request(&req, TransactionRole::Client).map_err(|e| e.to_string())?;
    let mut tx = Transaction::new_client(key, req, inner.clone(), None);
    tx.destination = Some(dest.clone());
    tx.send().await.map_err(|e| e.to_string())?;
    Ok((tx, contact_host))
}

/// The local `host:port` a request to `dest` would leave from (for a Contact before sending).
pub async fn local_host_for(inner: &EndpointInnerRef, dest: &SipAddr) -> Result<String, String> {
    let (connection, _) = inner
        .transport_layer
        .lookup(dest, None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(connection.get_addr().addr.to_string())
}

/// Drives `tx` to its end in its own task, forwarding every response. The task outlives the
/// receiver so 2xx retransmissions keep being ACKed by the transaction.
pub fn pump(mut tx: Transaction) -> mpsc::UnboundedReceiver<rsip::Response> {
    let (to, from) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(msg) = tx.receive().await {
            if let SipMessage::Response(resp) = msg {
                let _ = to.send(resp);
            }
        }
    });
    from
}

/// Sends a request and waits (bounded) for its final response: `Some((status, reason))`.
pub async fn request_final(
    inner: &EndpointInnerRef,
    req: rsip::Request,
    dest: &SipAddr,
    timeout: Duration,
) -> Option<(u16, String)> {
    let (tx, _) = start_client(inner, req, dest).await.ok()?;
    let mut rx = pump(tx);
    tokio::time::timeout(timeout, async {
        while let Some(resp) = rx.recv().await {
            if resp.status_code.code() >= 200 {
                return Some((resp.status_code.code(), reason(&resp)));
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// The reason phrase as received, else the standard text.
pub fn reason(resp: &rsip::Response) -> String {
    resp.wire_reason
        .clone()
        .unwrap_or_else(|| resp.status_code.text().to_string())
}

/// Keeps a server INVITE transaction alive after its final response (2xx retransmissions, the
/// ACK) for at most `for_at_most`.
pub fn linger(mut tx: Transaction, for_at_most: Duration) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(for_at_most, async { while tx.receive().await.is_some() {} })
            .await;
    });
}

/// `sdp` with its direction attributes replaced by `dir` (added when absent) and the `o=`
/// session version raised by one (RFC 3264 §8: a changed offer carries a higher version).
pub fn sdp_with_direction(sdp: &str, dir: Direction) -> String {
    let mut out = String::with_capacity(sdp.len() + 16);
    let mut seen_dir = false;
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if matches!(
            line,
            "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive"
        ) {
            out.push_str(dir.attribute());
            seen_dir = true;
        } else if let Some(rest) = line.strip_prefix("o=") {
            let mut fields: Vec<String> = rest.split(' ').map(str::to_string).collect();
            if let Some(v) = fields
                .get_mut(2)
                .and_then(|v| v.parse::<u64>().ok().map(|n| (v, n)))
            {
                *v.0 = (v.1 + 1).to_string();
            }
            out.push_str("o=");
            out.push_str(&fields.join(" "));
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    if !seen_dir {
        out.push_str(dir.attribute());
        out.push_str("\r\n");
    }
    out
}

/// The direction we answer with when the far end offers `theirs`.
pub fn answer_direction(theirs: Direction) -> Direction {
    match theirs {
        Direction::SendOnly => Direction::RecvOnly,
        Direction::RecvOnly => Direction::SendOnly,
        d => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_edit_bumps_version() {
        let sdp = "v=0\r\no=- 10 4 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n";
        let held = sdp_with_direction(sdp, Direction::SendOnly);
        assert!(held.contains("o=- 10 5 IN IP4 127.0.0.1\r\n"), "{held}");
        assert!(
            held.contains("a=sendonly\r\n") && !held.contains("a=sendrecv"),
            "{held}"
        );
        let no_attr = sdp_with_direction("v=0\r\nm=audio 1 RTP/AVP 0\r\n", Direction::Inactive);
        assert!(no_attr.ends_with("a=inactive\r\n"));
        assert_eq!(answer_direction(Direction::SendOnly), Direction::RecvOnly);
        assert_eq!(answer_direction(Direction::Inactive), Direction::Inactive);
    }
}

/// The Authorization or Proxy-Authorization header (as `kind` says) carrying `value`.
pub fn auth_header(kind: AuthHeader, value: String) -> Header {
    match kind {
        AuthHeader::Authorization => {
            Header::Authorization(rsip::headers::Authorization::new(value))
        }
        AuthHeader::ProxyAuthorization => {
            Header::ProxyAuthorization(rsip::headers::ProxyAuthorization::new(value))
        }
    }
}

/// A 401's WWW-Authenticate or a 407's Proxy-Authenticate challenges, and the header kind that
/// answers them.
pub fn challenges(resp: &rsip::Response, status: u16) -> (Vec<String>, AuthHeader) {
    let values = resp
        .headers
        .iter()
        .filter_map(|h| match (h, status) {
            (Header::WwwAuthenticate(v), 401) => Some(v.value().to_string()),
            (Header::ProxyAuthenticate(v), 407) => Some(v.value().to_string()),
            _ => None,
        })
        .collect();
    let kind = if status == 401 {
        AuthHeader::Authorization
    } else {
        AuthHeader::ProxyAuthorization
    };
    (values, kind)
}
