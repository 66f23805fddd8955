//! The SIP driver: one rsipstack endpoint (UDP on a local address, TCP dialled on demand) and,
//! per account, a registration task that turns [`RegisterCore`] steps into REGISTER transactions
//! and reports [`RegEvent`]s on a channel. All decisions live in the sans-IO core; this file only
//! builds requests, waits for final responses (bounded by a timeout), reads the clock and sleeps
//! until the core's deadline. Invariant: accounts reach this module only as parsed
//! [`SipAccount`]s, so an illegal login can never put a packet on the wire.

use std::net::SocketAddr;
use std::time::Duration;

use rsipstack::EndpointBuilder;
use rsipstack::sip::{self as rsip, Header, HeadersExt as _, Method, SipMessage};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::random_text;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::tcp_listener::TcpListenerConnection;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, TransportLayer};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::account::{AccountError, RawSipAccount, SipAccount, Transport};
use super::dispatch::{self, InboundTx, Routes};
use super::register::{FinalResponse, RegEvent, RegisterCore, RegisterRequest, Step};
use super::wire;

/// How long one REGISTER transaction may take (RFC 3261 Timer F is 64*T1 = 32 s).
pub const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(32);

/// Why the SIP driver could not do what was asked.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The account failed validation; nothing was sent.
    #[error("invalid SIP account: {0}")]
    Account(#[from] AccountError),
    /// rsipstack could not bind or start.
    #[error("SIP endpoint: {0}")]
    Endpoint(String),
    /// Not a DTMF digit (`0-9 * # A-D`).
    #[error("not a DTMF digit: {0:?}")]
    Dtmf(char),
    /// The registration task is gone.
    #[error("registration task ended")]
    Gone,
    /// rsipstack's parser refused a URI we rendered (a bug on one side; nothing was sent).
    #[error("SIP stack cannot parse URI {uri:?}: {why}")]
    Uri {
        /// The URI text.
        uri: String,
        /// rsipstack's complaint.
        why: String,
    },
}

/// Registration settings beyond the account.
#[derive(Debug, Clone)]
pub struct RegisterOptions {
    /// Requested binding lifetime in seconds.
    pub expires: u32,
    /// Bound on each REGISTER transaction.
    pub transaction_timeout: Duration,
}

impl Default for RegisterOptions {
    fn default() -> Self {
        RegisterOptions {
            expires: 3600,
            transaction_timeout: DEFAULT_TRANSACTION_TIMEOUT,
        }
    }
}

/// A running SIP endpoint.
pub struct SipUserAgent {
    pub(crate) inner: EndpointInnerRef,
    cancel: CancellationToken,
    local: SocketAddr,
    serve: tokio::task::JoinHandle<()>,
    dispatcher: tokio::task::JoinHandle<()>,
    pub(crate) routes: Routes,
}

impl SipUserAgent {
    /// Binds UDP on `bind` (use port 0) and TCP on the same port, starts rsipstack's endpoint
    /// loop and the incoming-request dispatcher.
    pub async fn start(bind: SocketAddr) -> Result<SipUserAgent, ClientError> {
        Self::start_observed(bind, None).await
    }

    /// As [`start`](Self::start), with an inspector seeing every message sent and received
    /// (the metrics' SIP counters).
    pub async fn start_observed(
        bind: SocketAddr,
        inspector: Option<Box<dyn rsipstack::transaction::endpoint::MessageInspector>>,
    ) -> Result<SipUserAgent, ClientError> {
        let cancel = CancellationToken::new();
        let transport_layer = TransportLayer::new(cancel.clone());
        // rsipstack binds its TCP listener later and only logs a failure, so find a port where
        // both UDP and TCP are free first (port 0: a few attempts).
        let mut attempt = 0;
        let (udp, local) = loop {
            attempt += 1;
            let udp = UdpConnection::create_connection(bind, None, Some(cancel.child_token()))
                .await
                .map_err(|e| ClientError::Endpoint(e.to_string()))?;
            let local = udp
                .get_addr()
                .get_socketaddr()
                .map_err(|e| ClientError::Endpoint(e.to_string()))?;
            match std::net::TcpListener::bind(local) {
                Ok(probe) => {
                    drop(probe);
                    break (udp, local);
                }
                Err(e) if bind.port() != 0 || attempt >= 8 => {
                    return Err(ClientError::Endpoint(format!(
                        "TCP port {local} not free: {e}"
                    )));
                }
                Err(_) => continue,
            }
        };
        transport_layer.add_transport(udp.into());
        let tcp = TcpListenerConnection::new(local, None)
            .await
            .map_err(|e| ClientError::Endpoint(e.to_string()))?;
        transport_layer.add_transport(tcp.into());
        let mut builder = EndpointBuilder::new();
        builder
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transport_layer)
            .with_user_agent("wavegate");
        if let Some(i) = inspector {
            builder.with_inspector(i);
        }
        let endpoint = builder.build();
        let inner = endpoint.inner.clone();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| ClientError::Endpoint(e.to_string()))?;
        let routes = Routes::default();
        let dispatcher = tokio::spawn(dispatch::run(incoming, routes.clone()));
        let serve = tokio::spawn(async move { endpoint.serve().await });
        // The listener is bound inside `serve`; wait (bounded) until it accepts, so a Contact
        // advertised right after `start` is reachable over TCP too.
        let mut listening = false;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(local).await.is_ok() {
                listening = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if !listening {
            cancel.cancel();
            return Err(ClientError::Endpoint(format!(
                "TCP listener on {local} did not start"
            )));
        }
        Ok(SipUserAgent {
            inner,
            cancel,
            local,
            serve,
            dispatcher,
            routes,
        })
    }

    /// Receives new INVITE/MESSAGE requests for `login` without registering (direct calls to
    /// our address, or accounts with `register_required = false`). Replaces an earlier owner.
    pub fn listen(&self, login: &str) -> mpsc::UnboundedReceiver<InboundTx> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes.add_user(login, tx);
        rx
    }

    /// Live dialogs known to the dispatcher (tests check nothing leaks).
    pub fn dialog_count(&self) -> usize {
        self.routes.dialog_count()
    }

    /// The local UDP address (TCP listens on the same port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Validates a raw account (refusing it before any packet is sent) and registers it.
    pub fn register_raw(
        &self,
        raw: &RawSipAccount,
        options: RegisterOptions,
    ) -> Result<Registration, ClientError> {
        let account = SipAccount::parse(raw)?;
        self.register(account, options)
    }

    /// Starts registering `account`; events arrive on the returned handle.
    pub fn register(
        &self,
        account: SipAccount,
        options: RegisterOptions,
    ) -> Result<Registration, ClientError> {
        // Unbounded so a session that reads events late never stalls refreshes; at most one
        // event per REGISTER exchange, and exchanges are spaced by refresh/back-off intervals.
        let (events_tx, events) = mpsc::unbounded_channel();
        let (stop, stop_rx) = oneshot::channel();
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let login = account.login.as_str().to_string();
        self.routes.add_user(&login, incoming_tx);
        let task = RegistrationTask::new(self.inner.clone(), account, options, events_tx)?;
        let routes = self.routes.clone();
        let cancel = self.cancel.child_token();
        let task = tokio::spawn(async move {
            task.run(stop_rx, cancel).await;
            routes.remove_user(&login);
        });
        Ok(Registration {
            events,
            stop: Some(stop),
            task,
            incoming,
        })
    }

    /// Stops the endpoint (sockets close; registration tasks end at their next send).
    pub fn shutdown(self) {
        self.cancel.cancel();
        self.serve.abort();
        self.dispatcher.abort();
    }
}

/// Handle of one account's registration. Dropping it un-REGISTERs in the background (the task
/// sees its stop channel close).
pub struct Registration {
    events: mpsc::UnboundedReceiver<RegEvent>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    /// New INVITE/MESSAGE requests for this account's login.
    incoming: mpsc::UnboundedReceiver<InboundTx>,
}

impl Registration {
    /// The next event; `None` when the task has ended.
    pub async fn next_event(&mut self) -> Option<RegEvent> {
        self.events.recv().await
    }

    /// Un-REGISTERs and waits for the outcome (`Unregistered`, or `Failed`).
    pub async fn unregister(mut self) -> Result<RegEvent, ClientError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let mut last = None;
        while let Some(ev) = self.events.recv().await {
            last = Some(ev);
        }
        last.ok_or(ClientError::Gone)
    }
}

impl Registration {
    /// The next new INVITE or MESSAGE addressed to this account (`None`: the endpoint ended).
    pub async fn next_incoming(&mut self) -> Option<InboundTx> {
        self.incoming.recv().await
    }

    /// Whether the registration task has ended (unregistered, or stopped on the endpoint's end).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

struct RegistrationTask {
    inner: EndpointInnerRef,
    /// `host:port` of the Contact in the last REGISTER (UDP socket or TCP connection).
    contact_host: String,
    account: SipAccount,
    options: RegisterOptions,
    events: mpsc::UnboundedSender<RegEvent>,
    core: RegisterCore,
    call_id: rsip::headers::CallId,
    from_tag: String,
    cseq: u32,
    request_uri: rsip::Uri,
}

impl RegistrationTask {
    fn new(
        inner: EndpointInnerRef,
        account: SipAccount,
        options: RegisterOptions,
        events: mpsc::UnboundedSender<RegEvent>,
    ) -> Result<RegistrationTask, ClientError> {
        let registrar = account.registrar().to_string();
        let core = RegisterCore::new(
            account.auth_name.as_str(),
            account.password.expose(),
            &registrar,
            options.expires,
        );
        let call_id = rsip::headers::CallId::new(format!("{}@wavegate", random_text(24)));
        let request_uri =
            rsip::Uri::try_from(registrar.as_str()).map_err(|e| ClientError::Uri {
                uri: registrar.clone(),
                why: e.to_string(),
            })?;
        Ok(RegistrationTask {
            inner,
            contact_host: String::new(),
            account,
            options,
            events,
            core,
            call_id,
            from_tag: random_text(10),
            cseq: 0,
            request_uri,
        })
    }

    async fn run(mut self, mut stop: oneshot::Receiver<()>, cancel: CancellationToken) {
        let mut step = self.core.register(&cnonce());
        loop {
            match step {
                Step::Send(req) => {
                    step = self.exchange(&req).await;
                    continue;
                }
                Step::Report(ev) => {
                    let _ = self.events.send(ev);
                }
                Step::Idle => {}
            }
            if self.core.is_done() {
                return;
            }
            let deadline = self.core.deadline();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stop => {
                    step = self.core.unregister(&cnonce());
                    // Later iterations must not select on a finished receiver.
                    if let Step::Report(ev) = step {
                        let _ = self.events.send(ev);
                        return;
                    }
                    let Step::Send(req) = step else { return };
                    let mut s = self.exchange(&req).await;
                    // Finish the un-REGISTER exchange (challenges) without listening for stop again.
                    loop {
                        match s {
                            Step::Send(r) => s = self.exchange(&r).await,
                            Step::Report(ev) => {
                                let _ = self.events.send(ev);
                                return;
                            }
                            Step::Idle => return,
                        }
                    }
                }
                // The endpoint is gone: nothing can be sent any more.
                _ = cancel.cancelled() => return,
                _ = sleep => {
                    step = self.core.on_deadline(Instant::now().into_std(), &cnonce());
                }
            }
        }
    }

    /// Sends one REGISTER and feeds its final response (or failure) to the core.
    async fn exchange(&mut self, req: &RegisterRequest) -> Step {
        self.cseq += 1;
        let mut tx = match self.build(req).await {
            Ok((tx, contact_host)) => {
                self.contact_host = contact_host;
                tx
            }
            Err(e) => return self.core.on_send_error(Instant::now().into_std(), e),
        };
        if let Err(e) = tx.send().await {
            return self
                .core
                .on_send_error(Instant::now().into_std(), e.to_string());
        }
        let final_resp = tokio::time::timeout(self.options.transaction_timeout, async {
            while let Some(msg) = tx.receive().await {
                if let SipMessage::Response(resp) = msg
                    && resp.status_code.code() >= 200
                {
                    return Some(resp);
                }
            }
            None
        })
        .await;
        let now = Instant::now().into_std();
        match final_resp {
            Ok(Some(resp)) => {
                let reason = resp
                    .wire_reason
                    .clone()
                    .unwrap_or_else(|| resp.status_code.text().to_string());
                let www: Vec<String> = header_values(&resp, |h| match h {
                    Header::WwwAuthenticate(v) => Some(v.value().to_owned()),
                    _ => None,
                });
                let proxy: Vec<String> = header_values(&resp, |h| match h {
                    Header::ProxyAuthenticate(v) => Some(v.value().to_owned()),
                    _ => None,
                });
                let min_expires = header_values(&resp, |h| match h {
                    Header::MinExpires(v) => v.value().trim().parse::<u32>().ok(),
                    _ => None,
                })
                .into_iter()
                .next();
                let info = FinalResponse {
                    status: resp.status_code.code(),
                    reason: &reason,
                    www_authenticate: www.iter().map(String::as_str).collect(),
                    proxy_authenticate: proxy.iter().map(String::as_str).collect(),
                    granted: granted_expires(&resp, &self.contact_host),
                    min_expires,
                };
                self.core.on_response(now, &info, &cnonce())
            }
            Ok(None) | Err(_) => self.core.on_timeout(now),
        }
    }

    /// The REGISTER transaction for `req`, and the `host:port` our Contact names.
    async fn build(&self, req: &RegisterRequest) -> Result<(Transaction, String), String> {
        let a = &self.account;
        let proxy = a
            .outbound_proxy
            .as_ref()
            .map(|(host, port)| format!("{host}:{}", port.unwrap_or(5060)));
        let target = match &proxy {
            Some(p) => {
                let mut addr = SipAddr::try_from(
                    &rsip::Uri::try_from(format!("sip:{p}").as_str()).map_err(|e| e.to_string())?,
                )
                .map_err(|e| e.to_string())?;
                if a.transport == Transport::Tcp {
                    addr.r#type = Some(rsip::Transport::Tcp);
                }
                Some(addr)
            }
            None => None,
        };
        let lookup_target = match &target {
            Some(t) => t.clone(),
            None => SipAddr::try_from(&self.request_uri).map_err(|e| e.to_string())?,
        };
        let (connection, _) = self
            .inner
            .transport_layer
            .lookup(&lookup_target, None)
            .await
            .map_err(|e| e.to_string())?;
        let via = self
            .inner
            .get_via(Some(connection.get_addr().clone()), None)
            .map_err(|e| e.to_string())?;
        let contact_host = connection.get_addr().addr.to_string();
        let transport_param = if a.transport == Transport::Tcp {
            ";transport=tcp"
        } else {
            ""
        };
        let aor = a.aor().to_string();
        let mut headers: Vec<Header> = vec![
            Header::Via(via.into()),
            Header::CallId(self.call_id.clone()),
            Header::From(rsip::headers::From::new(format!(
                "{};tag={}",
                a.from_header(),
                self.from_tag
            ))),
            Header::To(rsip::headers::To::new(format!("<{aor}>"))),
            Header::CSeq(
                rsip::typed::CSeq {
                    seq: self.cseq,
                    method: Method::Register,
                }
                .into(),
            ),
            Header::MaxForwards(70.into()),
            Header::Contact(rsip::headers::Contact::new(format!(
                "<sip:{}@{contact_host}{transport_param}>",
                a.login
            ))),
            Header::Expires(req.expires.into()),
            Header::UserAgent(rsip::headers::UserAgent::new("wavegate")),
        ];
        if let Some((kind, value)) = &req.authorization {
            headers.push(wire::auth_header(*kind, value.clone()));
        }
        for h in &a.extra_headers {
            headers.push(Header::Other(h.name.clone(), h.value.clone()));
        }
        let request = rsip::Request {
            method: Method::Register,
            uri: self.request_uri.clone(),
            headers: headers.into(),
            body: vec![],
            version: rsip::Version::V2,
        };
        let key = TransactionKey::from_request(&request, TransactionRole::Client)
            .map_err(|e| e.to_string())?;
        let mut tx = Transaction::new_client(key, request, self.inner.clone(), None);
        if target.is_some() {
            tx.destination = target;
        }
        Ok((tx, contact_host))
    }
}

fn cnonce() -> String {
    random_text(16)
}

fn header_values<T>(resp: &rsip::Response, f: impl Fn(&Header) -> Option<T>) -> Vec<T> {
    resp.headers.iter().filter_map(f).collect()
}

/// The lifetime granted to our binding: the `expires` parameter of the response Contact that
/// points at us, else the `Expires` header (RFC 3261 §10.2.4).
fn granted_expires(resp: &rsip::Response, contact_host: &str) -> Option<u32> {
    let ours = format!("@{contact_host}");
    for h in resp.headers.iter() {
        if let Header::Contact(c) = h {
            for binding in c.value().split(',') {
                if binding.contains(&ours)
                    && let Some(v) = param_value(binding, "expires")
                {
                    return Some(v);
                }
            }
        }
    }
    resp.expires_header()
        .and_then(|e| e.value().trim().parse().ok())
}

fn param_value(binding: &str, name: &str) -> Option<u32> {
    let after_uri = binding.rsplit_once('>').map_or(binding, |(_, rest)| rest);
    after_uri.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if k.trim().eq_ignore_ascii_case(name) {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}
