//! The incoming-request dispatcher: the one task that takes rsipstack's new server
//! transactions, checks each request ([`inbound::check_request`]), and acts on the sans-IO
//! routing decision ([`inbound::route`]): 400 for malformed requests, 200 to OPTIONS, 405/404/481
//! refusals, in-dialog requests to the dialog's channel, new INVITE/MESSAGE to the account's
//! owner. Invariant: a transaction is answered (or handed over) before the next one is read for
//! stateless answers, and a handed-over transaction is the receiver's to answer; if the receiver
//! is gone the dispatcher answers for it, so no request is left unanswered by a dropped channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rsipstack::sip::{self as rsip, Header, StatusCode};
use rsipstack::transaction::TransactionReceiver;
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::mpsc;
use tracing::debug;

use super::inbound::{self, ACCEPT, DialogKey, Inbound, Route};

/// A request handed to a dialog or account owner, with its checked summary.
pub struct InboundTx {
    /// The server transaction (answer it with `reply_with`).
    pub tx: Transaction,
    /// The checked request summary.
    pub inbound: Inbound,
}

/// Where requests go: registered users and live dialogs. Cheap to clone.
#[derive(Clone, Default)]
pub struct Routes {
    inner: Arc<Mutex<RoutesInner>>,
}

#[derive(Default)]
struct RoutesInner {
    users: HashMap<String, mpsc::UnboundedSender<InboundTx>>,
    dialogs: HashMap<DialogKey, mpsc::UnboundedSender<InboundTx>>,
}

impl Routes {
    fn lock(&self) -> std::sync::MutexGuard<'_, RoutesInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Routes new INVITE/MESSAGE for `user` to `to` (replacing an earlier owner).
    pub fn add_user(&self, user: &str, to: mpsc::UnboundedSender<InboundTx>) {
        self.lock().users.insert(user.to_string(), to);
    }

    /// Stops routing to `user`.
    pub fn remove_user(&self, user: &str) {
        self.lock().users.remove(user);
    }

    /// Routes in-dialog requests of `key` to `to`.
    pub fn add_dialog(&self, key: DialogKey, to: mpsc::UnboundedSender<InboundTx>) {
        self.lock().dialogs.insert(key, to);
    }

    /// Forgets a dialog.
    pub fn remove_dialog(&self, key: &DialogKey) {
        self.lock().dialogs.remove(key);
    }

    /// Number of live dialogs (tests check nothing leaks).
    pub fn dialog_count(&self) -> usize {
        self.lock().dialogs.len()
    }

    fn target(&self, route: &Route) -> Option<mpsc::UnboundedSender<InboundTx>> {
        let inner = self.lock();
        match route {
            Route::Dialog(key) => inner.dialogs.get(key).cloned(),
            Route::NewInvite { user } | Route::NewMessage { user } => {
                inner.users.get(user).cloned()
            }
            _ => None,
        }
    }
}

/// Runs until the endpoint's transaction channel closes.
pub async fn run(mut incoming: TransactionReceiver, routes: Routes) {
    while let Some(tx) = incoming.recv().await {
        dispatch(tx, &routes).await;
    }
}

async fn dispatch(mut tx: Transaction, routes: &Routes) {
    let inbound = match inbound::check_request(&tx.original) {
        Ok(i) => i,
        Err(e) => {
            debug!(error = %e, "malformed request answered 400");
            let _ = reply(&mut tx, 400, &e.to_string(), vec![]).await;
            return;
        }
    };
    let decision = {
        let r = routes.lock();
        inbound::route(
            &inbound,
            |u| r.users.contains_key(u),
            |k| r.dialogs.contains_key(k),
        )
    };
    match decision {
        Route::Options => {
            let headers = vec![
                Header::Allow(inbound::allow_value().into()),
                Header::Accept(ACCEPT.into()),
                Header::Other("Supported".into(), "replaces".into()),
            ];
            let _ = reply(&mut tx, 200, "OK", headers).await;
        }
        Route::Reply(405, reason) => {
            let _ = reply(
                &mut tx,
                405,
                reason,
                vec![Header::Allow(inbound::allow_value().into())],
            )
            .await;
        }
        Route::Reply(status, reason) => {
            let _ = reply(&mut tx, status, reason, vec![]).await;
        }
        Route::Absorb => {}
        route @ (Route::Dialog(_) | Route::NewInvite { .. } | Route::NewMessage { .. }) => {
            let gone = match routes.target(&route) {
                Some(to) => to.send(InboundTx { tx, inbound }).err().map(|e| e.0.tx),
                None => Some(tx),
            };
            // The owner went away between routing and sending: answer for it.
            if let Some(mut tx) = gone {
                let (status, reason) = match route {
                    Route::Dialog(_) => (481, "Call/Transaction Does Not Exist"),
                    _ => (480, "Temporarily Unavailable"),
                };
                let _ = reply(&mut tx, status, reason, vec![]).await;
            }
        }
    }
}

/// Answers a server transaction with a status, reason phrase and extra headers.
pub async fn reply(
    tx: &mut Transaction,
    status: u16,
    reason: &str,
    headers: Vec<Header>,
) -> Result<(), String> {
    reply_body(tx, status, reason, headers, None).await
}

/// Answers with a body (its Content-Type among `headers`). `reason` is informative: rsipstack
/// writes the standard phrase; for 400 the reason travels in a `Warning` header.
pub async fn reply_body(
    tx: &mut Transaction,
    status: u16,
    reason: &str,
    headers: Vec<Header>,
    body: Option<Vec<u8>>,
) -> Result<(), String> {
    let code = StatusCode::from(status);
    let mut headers = headers;
    if status == 400 {
        // rsipstack always writes the standard reason phrase, so the specific complaint goes in
        // a Warning (RFC 3261 §20.43, code 399: miscellaneous), stripped to printable text.
        let text: String = reason
            .chars()
            .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
            .take(200)
            .collect();
        headers.push(Header::Warning(format!("399 wavegate \"{text}\"").into()));
    }
    let resp = build_response(tx, code, headers, body);
    tx.respond(resp).await.map_err(|e| e.to_string())
}

fn build_response(
    tx: &mut Transaction,
    code: StatusCode,
    headers: Vec<Header>,
    body: Option<Vec<u8>>,
) -> rsip::Response {
    use rsipstack::sip::HeadersExt as _;
    if code.code() > 100
        && let Ok(to) = tx.original.to_header()
        && matches!(to.tag(), Ok(None))
    {
        let tagged = to.clone().with_tag(rsipstack::transaction::make_tag());
        tx.original.headers.unique_push(tagged.into());
    }
    let mut resp = tx.endpoint_inner.make_response(&tx.original, code, body);
    resp.headers.extend(headers);
    resp
}
