//! The WebSocket API at `/ws` (docs/websocket-api.md): one task per connection drives one
//! session. The task owns the session's calls; it selects over the socket, the echo peers'
//! events and the media plane's call-ended broadcasts, so a session's state is never shared.
//!
//! Invariants: a malformed or unknown message is answered with `error` and the session stays;
//! an illegal SIP account is answered `session FAILED` at once with `SipAccount::parse`'s
//! field-naming cause (no SIP packet is sent, nothing is left PENDING); when the socket closes,
//! every call of the session is ended (its media deleted) before the task returns.
//! Callee `echo` is the built-in extension (`crate::echo`); any other callee is a SIP call
//! (`sip_call`) from the session's account. `registerRequired` registers through the SIP user
//! agent; a registered session receives the login's incoming calls (`incoming` / `answer`).
//! The media plane's re-offers for a session's browsers (`reoffer`, see `reoffer`) are
//! answered with `answer` too: an `answer` goes to the call's pending re-offer if it has one,
//! else to its unanswered incoming offer, else it is an error and the call is untouched.

pub mod codecs;
mod in_call;
pub mod messages;
mod reoffer;
mod rest_hooks;
pub mod sip_call;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use tokio::sync::{broadcast, mpsc};
use wavegate_shared::CallId;

use crate::echo::{self, EchoCall, EchoEvent};
use crate::http::AppState;
use crate::media::{CallEnded, EndCause, MediaService};
use crate::sip::SipAccount;
use crate::sip::call::CallOptions;
use crate::sip::client::{RegisterOptions, SipUserAgent};
use crate::sip::dispatch::InboundTx;
use crate::sip::incoming::Incoming;
use crate::sip::register::RegEvent;
use messages::{ClientMsg, DtmfType, ServerMsg, SessionStatus};
use sip_call::{SipCmd, SipNote};
use wavegate_shared::protocol::{BrowserAnswer, OfferToBrowser};

/// Longest call id a page may choose.
const MAX_CALL_ID: usize = 64;
/// Largest text frame accepted (an SDP offer with video is ~10 KiB).
const MAX_MESSAGE: usize = 256 * 1024;
/// Bound on each REGISTER transaction: a dead registrar is reported FAILED within this.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(8);
/// Tone length and gap of injected RFC 4733 digits.
const DTMF_MS: u32 = 120;
const DTMF_GAP_MS: u64 = 80;

/// `GET /ws`: upgrades and runs the session.
pub async fn handler(
    ws: WebSocketUpgrade,
    headers: axum::http::HeaderMap,
    State(state): State<AppState>,
) -> Response {
    // The browser family picks the codec policy (config `ws.codecs`).
    let family = codecs::Family::from_user_agent(
        headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    ws.max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| Session::new(state, family).run(socket))
}

/// Events reaching the session task from its calls.
enum Internal {
    Echo(String, EchoEvent),
    DtmfRefused(String, String),
    Sip(String, SipNote),
    Reg(RegEvent),
    Inbound(InboundTx),
}

/// A call of the session.
enum Call {
    /// Answered by the built-in echo extension.
    Echo(EchoCall),
    /// A SIP call; its task owns the `CallHandle`.
    Sip {
        media_id: CallId,
        commands: mpsc::UnboundedSender<SipCmd>,
    },
}

impl Call {
    fn media_id(&self) -> &CallId {
        match self {
            Call::Echo(e) => e.id(),
            Call::Sip { media_id, .. } => media_id,
        }
    }
}

struct Session {
    media: MediaService,
    /// Live sessions and calls, shared with REST (see `rest_hooks`).
    registry: crate::registry::Registry,
    /// The REST hooks (connect, incoming call), when configured.
    hooks: Option<crate::hooks::Hooks>,
    sip: Option<Arc<SipUserAgent>>,
    bind: IpAddr,
    /// Session id: prefixes the media-plane call ids of this session.
    id: u64,
    account: Option<SipAccount>,
    calls: HashMap<String, Call>,
    /// Media-plane call id -> page call id.
    by_media: HashMap<CallId, String>,
    /// Page calls with a re-offer sent to the page and not answered yet.
    reoffers: std::collections::HashSet<String>,
    /// Incoming calls offered to the page and not answered yet.
    unanswered: std::collections::HashSet<String>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    /// Dropping it stops the registration task (which un-REGISTERs in the background).
    registration: Option<tokio::sync::oneshot::Sender<()>>,
    /// App keys and the codec policy.
    ws: Arc<crate::config::WsConfig>,
    /// The page's browser family (from its User-Agent).
    family: codecs::Family,
}

fn next_session_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn call_msg(call_id: &str, status: &'static str, cause: impl Into<String>) -> ServerMsg {
    ServerMsg::Call {
        call_id: call_id.to_string(),
        status,
        cause: cause.into(),
    }
}

fn error(reason: impl Into<String>) -> ServerMsg {
    ServerMsg::Error {
        reason: reason.into(),
    }
}

impl Session {
    fn new(state: AppState, family: codecs::Family) -> Session {
        Session {
            media: state.media,
            registry: state.registry,
            hooks: state.hooks,
            sip: state.sip,
            bind: state.media_ip,
            id: next_session_id(),
            account: None,
            calls: HashMap::new(),
            by_media: HashMap::new(),
            reoffers: Default::default(),
            unanswered: Default::default(),
            internal_tx: mpsc::unbounded_channel().0,
            registration: None,
            ws: state.ws,
            family,
        }
    }

    /// The session's browser family's codec policy applied to an SDP for or from the page
    /// (`reorder`: an offer, whose preferred codecs go first).
    fn policy(&self, sdp: String, reorder: bool) -> Result<String, codecs::PolicyError> {
        match self.ws.codecs.get(self.family.name()) {
            Some(rule) if !codecs::is_noop(rule) => codecs::apply(&sdp, rule, self.family, reorder),
            _ => Ok(sdp),
        }
    }

    /// Whether `key` is one of the configured app keys (any key when none are configured).
    fn key_ok(&self, key: &str) -> bool {
        // Compared in full, not stopping at the first differing byte.
        self.ws.app_keys.is_empty()
            || self.ws.app_keys.iter().any(|k| {
                k.len() == key.len()
                    && k.bytes()
                        .zip(key.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            })
    }

    async fn run(mut self, mut socket: WebSocket) {
        let (tx, mut internal) = mpsc::unbounded_channel();
        self.internal_tx = tx;
        let mut ended = self.media.calls().subscribe();
        let mut reoffers = self.media.calls().subscribe_reoffers();
        let mut rest = self.registry.open_session(&self.id.to_string());
        tracing::info!(
            session = self.id,
            family = self.family.name(),
            "websocket session opened"
        );
        loop {
            let out: Vec<ServerMsg> = tokio::select! {
                frame = socket.recv() => match frame {
                    Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
                    Some(Ok(Message::Binary(_))) => vec![error("binary frames are not part of the API; send JSON text")],
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Vec::new(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                },
                Some(ev) = internal.recv() => self.on_internal(ev).await,
                ev = ended.recv() => match ev {
                    Ok(ev) => self.on_ended(ev),
                    Err(broadcast::error::RecvError::Lagged(_)) => Vec::new(),
                    Err(broadcast::error::RecvError::Closed) => Vec::new(),
                },
                ev = reoffers.recv() => match ev {
                    Ok(ev) => self.on_reoffer(ev),
                    // A missed re-offer is withdrawn by the media plane after its timeout.
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(session = self.id, missed = n, "re-offers missed (lagging)");
                        Vec::new()
                    }
                    Err(broadcast::error::RecvError::Closed) => Vec::new(),
                },
                Some(ctl) = rest.recv() => match self.on_rest(ctl).await {
                    Ok(out) => out,
                    Err(last) => {
                        let _ = socket.send(Message::text(last.to_json())).await;
                        break;
                    }
                },
            };
            let mut closed = false;
            for msg in out {
                self.observe(&msg);
                if socket.send(Message::text(msg.to_json())).await.is_err() {
                    closed = true;
                    break;
                }
            }
            if closed {
                break;
            }
        }
        self.registry.close_session(&self.id.to_string());
        let n = self.calls.len();
        for (_, call) in self.calls.drain() {
            match call {
                Call::Echo(e) => e.end().await,
                // Dropping the command sender makes the call's task hang up and delete media.
                Call::Sip { .. } => {}
            }
        }
        tracing::info!(
            session = self.id,
            calls_ended = n,
            "websocket session closed"
        );
    }

    async fn on_text(&mut self, text: &str) -> Vec<ServerMsg> {
        let msg = match messages::parse(text) {
            Ok(m) => m,
            Err(e) => return vec![error(e.to_string())],
        };
        match msg {
            ClientMsg::Ping {} => vec![ServerMsg::Pong],
            ClientMsg::Connect {
                sip_options,
                app_key,
            } => {
                if self.key_ok(&app_key) {
                    self.connect_hooked(sip_options).await
                } else {
                    let why = if app_key.is_empty() {
                        "missing"
                    } else {
                        "not accepted"
                    };
                    vec![ServerMsg::Session {
                        status: SessionStatus::Failed,
                        cause: format!(
                            "appKey: {why} (this server needs an application key, config ws.app_keys)"
                        ),
                    }]
                }
            }
            _ if self.account.is_none() => {
                vec![error("not connected: send \"connect\" first")]
            }
            ClientMsg::Call {
                call_id,
                callee,
                sdp,
                ..
            } => self.call(call_id, &callee, sdp).await,
            ClientMsg::Answer { call_id, sdp } => self.answer(&call_id, sdp).await,
            ClientMsg::Hangup { call_id } => match self.calls.remove(&call_id) {
                Some(Call::Echo(call)) => {
                    self.by_media.remove(call.id());
                    call.end().await;
                    vec![call_msg(&call_id, "FINISH", "Normal call clearing")]
                }
                Some(Call::Sip { media_id, commands }) => {
                    // The SIP layer reports the final state (FINISH, or FAILED/"Request
                    // Terminated" for a CANCEL); keep the call until then.
                    let _ = commands.send(SipCmd::Hangup);
                    self.calls.insert(call_id, Call::Sip { media_id, commands });
                    Vec::new()
                }
                None => vec![error(format!("hangup: no call {call_id:?}"))],
            },
            ClientMsg::Hold { call_id } => self.hold(&call_id, true),
            ClientMsg::Unhold { call_id } => self.hold(&call_id, false),
            ClientMsg::SendDtmf {
                call_id,
                digits,
                dtmf_type,
            } => self.dtmf(&call_id, &digits, dtmf_type),
            ClientMsg::Transfer { call_id, target } => self.transfer(&call_id, &target),
            ClientMsg::SendMessage { call_id, text } => {
                self.sip_command(&call_id, "sendMessage", SipCmd::Message(text))
            }
        }
    }

    fn connect(&mut self, options: &messages::SipOptions) -> Vec<ServerMsg> {
        if self.account.is_some() {
            return vec![error("connect: this session is already connected")];
        }
        let account = match SipAccount::parse(&options.to_raw()) {
            Ok(a) => a,
            Err(e) => {
                return vec![ServerMsg::Session {
                    status: SessionStatus::Failed,
                    cause: e.to_string(),
                }];
            }
        };
        if options.register_required {
            let Some(ua) = self.sip.clone() else {
                return vec![ServerMsg::Session {
                    status: SessionStatus::Failed,
                    cause: "registerRequired: the SIP user agent is not running".into(),
                }];
            };
            let options = RegisterOptions {
                transaction_timeout: REGISTER_TIMEOUT,
                ..RegisterOptions::default()
            };
            let mut reg = match ua.register(account.clone(), options) {
                Ok(r) => r,
                Err(e) => {
                    return vec![ServerMsg::Session {
                        status: SessionStatus::Failed,
                        cause: format!("Registration failed: {e}"),
                    }];
                }
            };
            // New INVITEs for the login come to this session (replacing the registration's own
            // route; `Registration::next_incoming` would need a second borrow of `reg`).
            let mut inbound_rx = ua.listen(account.login.as_str());
            let (stop, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
            let fwd = self.internal_tx.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        ev = reg.next_event() => match ev {
                            Some(ev) => if fwd.send(Internal::Reg(ev)).is_err() { break },
                            None => break,
                        },
                        inbound = inbound_rx.recv() => match inbound {
                            Some(tx) => if fwd.send(Internal::Inbound(tx)).is_err() { break },
                            None => break,
                        },
                        _ = &mut stop_rx => break,
                    }
                }
                drop(reg); // un-REGISTERs in the background
            });
            self.registration = Some(stop);
        }
        self.account = Some(account);
        vec![ServerMsg::Session {
            status: SessionStatus::Established,
            cause: "Connected".into(),
        }]
    }

    async fn call(&mut self, call_id: String, callee: &str, sdp: String) -> Vec<ServerMsg> {
        if call_id.is_empty()
            || call_id.len() > MAX_CALL_ID
            || !call_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return vec![error(format!(
                "call: callId must be 1-{MAX_CALL_ID} characters of A-Z a-z 0-9 - _"
            ))];
        }
        if self.calls.contains_key(&call_id) {
            return vec![error(format!("call: call {call_id:?} exists"))];
        }
        self.rest_call_created(&call_id, callee);
        let media_id = match CallId::new(&format!("ws{}-{call_id}", self.id)) {
            Ok(id) => id,
            Err(e) => return vec![error(format!("call: {e}"))],
        };
        let sdp = match self.policy(sdp, true) {
            Ok(s) => s,
            Err(e) => return vec![call_msg(&call_id, "FAILED", e.to_string())],
        };
        if callee != echo::CALLEE {
            return self.sip_call(call_id, callee, sdp, media_id).await;
        }
        let (etx, mut erx) = mpsc::unbounded_channel();
        let fwd = self.internal_tx.clone();
        let page_id = call_id.clone();
        tokio::spawn(async move {
            while let Some(ev) = erx.recv().await {
                if fwd.send(Internal::Echo(page_id.clone(), ev)).is_err() {
                    break;
                }
            }
        });
        let mut out = vec![call_msg(&call_id, "PENDING", "Calling")];
        match EchoCall::start(&self.media, media_id.clone(), sdp, self.bind, etx).await {
            Ok(call) => {
                let sdp = self
                    .policy(call.browser_answer.clone(), false)
                    .unwrap_or_else(|_| call.browser_answer.clone());
                out.push(ServerMsg::Sdp {
                    call_id: call_id.clone(),
                    sdp,
                });
                out.push(call_msg(&call_id, "ESTABLISHED", "Answered"));
                self.by_media.insert(media_id, call_id.clone());
                self.calls.insert(call_id, Call::Echo(call));
            }
            Err(e) => out.push(call_msg(&call_id, "FAILED", e.to_string())),
        }
        out
    }

    /// A call to a SIP callee: WebRtcOffer, INVITE with its `sip_offer`, the browser's answer
    /// at once (ICE and DTLS complete while the far end rings).
    async fn sip_call(
        &mut self,
        call_id: String,
        callee: &str,
        sdp: String,
        media_id: CallId,
    ) -> Vec<ServerMsg> {
        let (Some(ua), Some(account)) = (self.sip.clone(), self.account.clone()) else {
            return vec![call_msg(
                &call_id,
                "FAILED",
                "the SIP user agent is not running",
            )];
        };
        let browser = match wavegate_shared::LegTag::new("browser") {
            Ok(t) => t,
            Err(e) => return vec![error(format!("call: {e}"))],
        };
        let reply = match self
            .media
            .webrtc_offer(media_id.clone(), browser, sdp, self.sip_call_flags())
            .await
        {
            Ok(r) => r,
            Err(e) => return vec![call_msg(&call_id, "FAILED", e.to_string())],
        };
        let handle = match ua
            .call(
                &account,
                callee,
                reply.sip_offer,
                None,
                CallOptions::default(),
            )
            .await
        {
            Ok(h) => h,
            Err(e) => {
                let _ = self.media.delete(media_id).await;
                return vec![call_msg(&call_id, "FAILED", e.to_string())];
            }
        };
        self.follow_sip_call(&call_id, media_id, handle);
        // The answer answers a filtered offer; filtering it again only guards the invariant.
        let sdp = self
            .policy(reply.browser_answer.clone(), false)
            .unwrap_or(reply.browser_answer);
        vec![ServerMsg::Sdp { call_id, sdp }]
    }

    /// Runs the page's SIP call `handle` in its own task, its notes coming back as
    /// [`Internal::Sip`], and files it under both ids.
    fn follow_sip_call(
        &mut self,
        call_id: &str,
        media_id: CallId,
        handle: crate::sip::call::CallHandle,
    ) {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let fwd = self.internal_tx.clone();
        let page_id = call_id.to_string();
        tokio::spawn(sip_call::run(
            handle,
            self.media.clone(),
            media_id.clone(),
            commands_rx,
            move |note| {
                let _ = fwd.send(Internal::Sip(page_id.clone(), note));
            },
        ));
        self.by_media.insert(media_id.clone(), call_id.to_string());
        self.calls
            .insert(call_id.to_string(), Call::Sip { media_id, commands });
    }

    /// A new INVITE (or MESSAGE) for the registered login: the caller's SDP goes to the media
    /// plane as `OfferToBrowser`, whose offer the page gets in `incoming`.
    async fn incoming(&mut self, tx: InboundTx) -> Vec<ServerMsg> {
        let Some(ua) = self.sip.clone() else {
            return Vec::new();
        };
        let incoming = ua.accept(tx, None, CallOptions::default()).await;
        let Incoming::Call(incoming) = incoming else {
            return Vec::new(); // MESSAGE: answered 200 by the SIP layer; not forwarded yet
        };
        let Some(offer) = incoming.offer.clone() else {
            // Delayed offer (INVITE without SDP) is not supported for pages yet.
            incoming.reject(488);
            return Vec::new();
        };
        let call_id = format!("in{}", next_session_id());
        let media_id = match CallId::new(&format!("ws{}-{call_id}", self.id)) {
            Ok(id) => id,
            Err(_) => return Vec::new(),
        };
        let sip_tag = match wavegate_shared::LegTag::new("sip") {
            Ok(t) => t,
            Err(_) => return Vec::new(),
        };
        let req = OfferToBrowser {
            call: media_id.clone(),
            from_tag: sip_tag,
            sip_sdp: Some(offer),
            flags: Default::default(),
        };
        let browser_offer = match self
            .media
            .request(&media_id, &req)
            .await
            .map(|r| self.policy(r.browser_offer, true))
        {
            Ok(Ok(offer)) => offer,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "incoming call: codec policy");
                let _ = self.media.delete(media_id).await;
                incoming.reject(488);
                return Vec::new();
            }
            Err(e) => {
                tracing::warn!(error = %e, "incoming call: OfferToBrowser");
                incoming.reject(488);
                return Vec::new();
            }
        };
        let caller = incoming.from.clone();
        self.follow_sip_call(&call_id, media_id, incoming.call);
        self.unanswered.insert(call_id.clone());
        vec![ServerMsg::Incoming {
            call_id,
            caller,
            sdp: browser_offer,
        }]
    }

    /// The page's answer to an incoming call: `BrowserAnswer`, its reply SDP in our 200. An
    /// answer to a pending re-offer goes to `reanswer`.
    async fn answer(&mut self, call_id: &str, sdp: String) -> Vec<ServerMsg> {
        if self.reoffers.contains(call_id) {
            return self.reanswer(call_id, sdp).await;
        }
        let Some(Call::Sip { media_id, commands }) = self.calls.get(call_id) else {
            return vec![error(format!("answer: no incoming call {call_id:?}"))];
        };
        if !self.unanswered.remove(call_id) {
            return vec![error(format!(
                "answer: call {call_id:?} has no offer waiting for an answer (answered already, \
                 or a re-offer that was not answered in time); the call goes on as it was"
            ))];
        }
        let (media_id, commands) = (media_id.clone(), commands.clone());
        let browser = match wavegate_shared::LegTag::new("browser") {
            Ok(t) => t,
            Err(e) => return vec![error(format!("answer: {e}"))],
        };
        let req = BrowserAnswer {
            call: media_id.clone(),
            to_tag: browser,
            sdp,
        };
        match self.media.request(&media_id, &req).await {
            Ok(reply) => {
                let _ = commands.send(SipCmd::Answer(reply.sdp));
                Vec::new()
            }
            Err(e) => {
                let _ = commands.send(SipCmd::Hangup);
                vec![error(format!(
                    "answer: the media plane refused the browser's answer: {e}"
                ))]
            }
        }
    }

    async fn on_internal(&mut self, ev: Internal) -> Vec<ServerMsg> {
        match ev {
            Internal::Inbound(tx) => self.incoming_hooked(tx).await,
            Internal::DtmfRefused(call_id, why) => {
                vec![error(format!("sendDTMF on {call_id:?}: {why}"))]
            }
            Internal::Echo(call_id, EchoEvent::Dtmf(d)) if self.calls.contains_key(&call_id) => {
                vec![ServerMsg::Dtmf {
                    call_id,
                    digit: d.to_string(),
                    dtmf_type: DtmfType::Rfc2833,
                }]
            }
            Internal::Echo(..) => Vec::new(),
            Internal::Sip(call_id, SipNote::State(status, cause, fin)) => {
                if fin && let Some(call) = self.calls.remove(&call_id) {
                    self.by_media.remove(call.media_id());
                    self.reoffers.remove(&call_id);
                    self.unanswered.remove(&call_id);
                }
                vec![call_msg(&call_id, status, cause)]
            }
            Internal::Sip(call_id, SipNote::Dtmf(d)) => vec![ServerMsg::Dtmf {
                call_id,
                digit: d.to_string(),
                dtmf_type: DtmfType::Info,
            }],
            Internal::Reg(RegEvent::Registered { expires, .. }) => vec![ServerMsg::Session {
                status: SessionStatus::Registered,
                cause: format!("Registered for {} s", expires.as_secs()),
            }],
            Internal::Reg(RegEvent::Unregistered) => vec![ServerMsg::Session {
                status: SessionStatus::Unregistered,
                cause: "Unregistered".into(),
            }],
            Internal::Reg(RegEvent::Failed { error, .. }) => {
                // Reported once and final: the session is no longer connected (no silent
                // retries leaving the page PENDING); the page may connect again.
                self.registration = None;
                self.account = None;
                vec![ServerMsg::Session {
                    status: SessionStatus::Failed,
                    cause: format!("Registration failed: {error}"),
                }]
            }
            Internal::Sip(call_id, SipNote::Message(content_type, text)) => {
                vec![ServerMsg::Message {
                    call_id,
                    content_type,
                    text,
                }]
            }
            Internal::Sip(call_id, SipNote::Transfer(p)) => {
                use crate::sip::call::TransferProgress as T;
                let (status, code) = match &p {
                    T::Accepted { status, .. } => ("accepted", *status),
                    T::Rejected { status, .. } => ("rejected", *status),
                    T::Progress { status, .. } => ("progress", *status),
                    T::Succeeded { status, .. } => ("succeeded", *status),
                    T::Failed { status, .. } => ("failed", *status),
                };
                vec![ServerMsg::Transfer {
                    call_id,
                    status,
                    code,
                    cause: p.to_string(),
                }]
            }
            Internal::Sip(call_id, SipNote::Problem(why)) => {
                vec![error(format!("call {call_id:?}: {why}"))]
            }
        }
    }

    /// The media side ended a call of this session (media timeout, media plane lost).
    fn on_ended(&mut self, ev: CallEnded) -> Vec<ServerMsg> {
        // Deleted is only ever our own request (hangup, a SIP call's final state).
        if ev.cause == EndCause::Deleted {
            return Vec::new();
        }
        let Some(call_id) = self.by_media.remove(&ev.call) else {
            return Vec::new();
        };
        self.reoffers.remove(&call_id);
        self.unanswered.remove(&call_id);
        // Our own Delete is reported too; the call was removed from `calls` before it.
        match self.calls.remove(&call_id) {
            None => Vec::new(),
            Some(Call::Echo(call)) => {
                drop(call);
                vec![call_msg(&call_id, "FAILED", ev.cause.to_string())]
            }
            // The SIP call ends itself (BYE) and reports its state; hang it up.
            Some(Call::Sip { commands, .. }) => {
                let _ = commands.send(SipCmd::Hangup);
                vec![error(format!("call {call_id:?}: {}", ev.cause))]
            }
        }
    }
}
