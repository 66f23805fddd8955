//! The outgoing call driver: `SipUserAgent::call` runs one task per call that feeds SIP
//! responses, in-dialog requests, session commands and the clock into the sans-IO
//! [`OutgoingCall`] core and executes its actions on rsipstack's transaction layer. SDP never
//! passes through untouched: the browser leg's SDP goes to the media plane as `Offer`, the
//! media plane's reply goes in the INVITE, the far end's SDP (18x or 2xx) goes as `Answer` and
//! its reply is the browser leg's remote SDP. Built on transactions rather than rsipstack's
//! `DialogLayer` (see docs/sip.md): our digest code answers 401/407, the core owns the state,
//! and the CANCEL/200 race is decided in one place. Invariant: the task ends only when the core
//! is done; a dropped [`CallHandle`] hangs up.

use std::time::Duration;

use rsipstack::sip::{self as rsip, Header, HeadersExt as _, Method};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::random_text;
use rsipstack::transport::SipAddr;
use tokio::sync::mpsc;
use tokio::time::Instant;
use wavegate_shared::protocol::OfferFlags;
use wavegate_shared::{CallId, LegTag};

use super::account::{SipAccount, Transport};
use super::client::{ClientError, SipUserAgent};
use super::dialog::Dialog;
use super::digest::{AuthHeader, Challenge, DigestSession};
use super::dispatch::{InboundTx, Routes};
pub(crate) use super::in_dialog::{InDialog, notify_refer, refer_request, serve_in_dialog};
pub use super::in_dialog::{dtmf_digit, dtmf_relay_body};
use super::uri::SipUri;
use super::wire::{self, sdp_with_direction};
use crate::call::outgoing::OutgoingCall;
pub use crate::call::transfer::TransferProgress;
use crate::call::{Action, Cause, StateChange};
use crate::media::MediaService;

/// Call settings.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// Ringing time before the call is cancelled with "Timeout".
    pub no_answer: Duration,
    /// Bound on each non-INVITE transaction and on the wait for a first response.
    pub transaction_timeout: Duration,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            no_answer: Duration::from_secs(60),
            transaction_timeout: Duration::from_secs(32),
        }
    }
}

/// What a call tells its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// A state change with its cause.
    State(StateChange),
    /// SDP for the browser leg (the media plane's rewrite of the far end's SDP); `early` for 18x.
    RemoteSdp {
        /// The SDP.
        sdp: String,
        /// From a provisional response (early media).
        early: bool,
    },
    /// The far end transferred the call (REFER, answered 202): place a new call to `target`;
    /// this one ends with FINISH "Transferred to …".
    Transfer {
        /// The Refer-To URI.
        target: String,
    },
    /// How our own transfer ([`CallHandle::transfer`]) goes: REFER accepted or refused, then
    /// the NOTIFYed status of the far end's call to the target. On `Succeeded` the call ends
    /// FINISH "Transferred to …"; after `Rejected` or `Failed` it goes on.
    TransferProgress(TransferProgress),
    /// A DTMF digit from an in-dialog INFO (`application/dtmf-relay` or `application/dtmf`).
    Dtmf(char),
    /// Any other in-dialog INFO or MESSAGE body from the far end.
    Info {
        /// INFO or MESSAGE.
        method: String,
        /// Its Content-Type.
        content_type: String,
        /// Its body as text.
        body: String,
    },
}

pub(crate) enum Command {
    Hangup,
    Hold(bool),
    /// Incoming calls: answer with the browser leg's SDP.
    Answer(String),
    /// Incoming calls: reject with this status.
    Reject(u16),
    /// Send an in-dialog INFO or MESSAGE with this content type and body.
    Send(Method, String, String),
    /// Blind transfer of the far end to this target (REFER).
    Transfer(String),
}

/// The final response of an in-dialog request whose outcome the core waits for.
pub(crate) enum Done {
    Reinvite(u16, String),
    Refer(u16, String),
}

/// A call in progress; events arrive on [`next_event`](Self::next_event). Dropping it hangs up.
pub struct CallHandle {
    sip_call_id: String,
    media_id: String,
    events: mpsc::UnboundedReceiver<CallEvent>,
    commands: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl CallHandle {
    pub(crate) fn new(
        sip_call_id: String,
        media_id: String,
        events: mpsc::UnboundedReceiver<CallEvent>,
        commands: mpsc::UnboundedSender<Command>,
        task: tokio::task::JoinHandle<()>,
    ) -> CallHandle {
        CallHandle {
            sip_call_id,
            media_id,
            events,
            commands,
            task,
        }
    }

    pub(crate) fn command(&self, c: Command) {
        let _ = self.commands.send(c);
    }

    /// The SIP Call-ID.
    pub fn sip_call_id(&self) -> &str {
        &self.sip_call_id
    }

    /// The call's id on the media plane (for `Query`).
    pub fn media_id(&self) -> &str {
        &self.media_id
    }

    /// The next event; `None` once the call's task has ended.
    pub async fn next_event(&mut self) -> Option<CallEvent> {
        self.events.recv().await
    }

    /// Cancels (before answer) or hangs up (after).
    pub fn hangup(&self) {
        let _ = self.commands.send(Command::Hangup);
    }

    /// Sends a DTMF digit as in-dialog INFO (`application/dtmf-relay`, 160 ms); once the call
    /// is established. Refuses characters other than `0-9 * # A-D`.
    pub fn send_dtmf(&self, digit: char) -> Result<(), ClientError> {
        let body = dtmf_relay_body(digit).ok_or(ClientError::Dtmf(digit))?;
        let _ = self.commands.send(Command::Send(
            Method::Info,
            "application/dtmf-relay".into(),
            body,
        ));
        Ok(())
    }

    /// Sends an in-dialog MESSAGE (`text/plain`); once the call is established.
    pub fn send_message(&self, text: &str) {
        let _ = self.commands.send(Command::Send(
            Method::Message,
            "text/plain".into(),
            text.to_string(),
        ));
    }

    /// Holds (re-INVITE sendonly) or resumes (sendrecv).
    pub fn hold(&self, on: bool) {
        let _ = self.commands.send(Command::Hold(on));
    }

    /// Blind transfer (REFER) of the far end to `target` (a `sip:` URI); once established.
    /// Progress arrives as [`CallEvent::TransferProgress`].
    pub fn transfer(&self, target: &str) {
        let _ = self.commands.send(Command::Transfer(target.to_string()));
    }

    /// Whether the call's task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// The media of one call on the media plane: the browser leg offers, the SIP leg answers.
pub(crate) struct MediaLeg {
    pub service: MediaService,
    pub call: CallId,
    pub offerer: LegTag,
    pub answerer: LegTag,
}

impl MediaLeg {
    pub fn new(
        service: MediaService,
        id: &str,
        offerer: &str,
        answerer: &str,
    ) -> Result<MediaLeg, String> {
        Ok(MediaLeg {
            service,
            call: CallId::new(id).map_err(|e| e.to_string())?,
            offerer: LegTag::new(offerer).map_err(|e| e.to_string())?,
            answerer: LegTag::new(answerer).map_err(|e| e.to_string())?,
        })
    }

    pub async fn offer(&self, sdp: String) -> Result<String, String> {
        self.service
            .offer(
                self.call.clone(),
                self.offerer.clone(),
                sdp,
                OfferFlags::default(),
            )
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn answer(&self, sdp: String) -> Result<String, String> {
        self.service
            .answer(
                self.call.clone(),
                self.offerer.clone(),
                self.answerer.clone(),
                sdp,
            )
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn release(&self) {
        let _ = self.service.delete(self.call.clone()).await;
    }
}

/// The Request-URI for `callee`: a full `sip:` URI, `user@host[:port]`, or a bare user at the
/// account's domain.
pub fn callee_uri(account: &SipAccount, callee: &str) -> Result<SipUri, ClientError> {
    let text = if callee.starts_with("sip:") || callee.starts_with("sips:") {
        callee.to_string()
    } else if callee.contains('@') {
        format!("sip:{callee}")
    } else {
        format!("sip:{callee}@{}", account.domain)
    };
    SipUri::parse(&text).map_err(|e| ClientError::Uri {
        uri: text,
        why: e.to_string(),
    })
}

/// Where out-of-dialog requests of `account` to `uri` go: the outbound proxy; else, for a URI
/// in the account's domain, the domain's server at the account's port (where we register);
/// else the URI itself.
pub fn first_hop(account: &SipAccount, uri: &SipUri) -> Result<SipAddr, String> {
    let tcp = account.transport == Transport::Tcp;
    match &account.outbound_proxy {
        Some((host, port)) => wire::sip_addr(&format!("sip:{host}:{}", port.unwrap_or(5060)), tcp),
        None if uri.host == account.domain && uri.port.is_none() => wire::sip_addr(
            &format!("sip:{}:{}", account.domain, account.port.unwrap_or(5060)),
            tcp,
        ),
        None => wire::sip_addr(&uri.to_string(), tcp),
    }
}

impl SipUserAgent {
    /// Calls `callee` from `account`. `browser_sdp` is the browser-facing leg's offer; with
    /// `media` it is programmed on the media plane (otherwise it goes into the INVITE as is,
    /// for signalling-only use such as benchmarks).
    pub async fn call(
        &self,
        account: &SipAccount,
        callee: &str,
        browser_sdp: String,
        media: Option<MediaService>,
        options: CallOptions,
    ) -> Result<CallHandle, ClientError> {
        let uri = callee_uri(account, callee)?;
        let uri_text = uri.to_string();
        let request_uri = rsip::Uri::try_from(uri_text.as_str()).map_err(|e| ClientError::Uri {
            uri: uri_text.clone(),
            why: e.to_string(),
        })?;
        let dest = first_hop(account, &uri).map_err(ClientError::Endpoint)?;
        let id = random_text(24);
        let media = match media {
            Some(service) => {
                Some(MediaLeg::new(service, &id, "browser", "sip").map_err(ClientError::Endpoint)?)
            }
            None => None,
        };
        let (events_tx, events) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (dialog_tx, dialog_rx) = mpsc::unbounded_channel();
        let sip_call_id = format!("{id}@wavegate");
        let task = OutgoingTask {
            inner: self.inner.clone(),
            routes: self.routes.clone(),
            account: account.clone(),
            options: options.clone(),
            media,
            events: events_tx,
            core: OutgoingCall::new(options.no_answer),
            call_id: sip_call_id.clone(),
            from_tag: random_text(10),
            cseq: 0,
            request_uri,
            dest,
            contact: String::new(),
            digest: None,
            auth_attempts: 0,
            invite: None,
            dialog: None,
            dialog_tx,
            sip_sdp: String::new(),
        };
        let task = tokio::spawn(task.run(browser_sdp, commands_rx, dialog_rx));
        Ok(CallHandle::new(sip_call_id, id, events, commands, task))
    }
}

/// The core's actions with the session reports first: a final state must not wait for the
/// cleanup that follows it (the media plane's Delete is bounded by its request timeout, 2 s, and
/// longer while the plane restarts after a missed heartbeat under load; a CANCEL or BYE waits
/// for its transport). Seen once in CI: FINISH "Request Terminated" after a hangup while ringing
/// came later than the test's 8 s wait.
pub(crate) fn reports_first(actions: Vec<Action>) -> impl Iterator<Item = Action> {
    let (reports, rest): (Vec<Action>, Vec<Action>) = actions
        .into_iter()
        .partition(|a| matches!(a, Action::Report(_) | Action::Transfer(_)));
    reports.into_iter().chain(rest)
}

/// Sends a REFER (or reports 481 when there is no dialog to send it in) and hands its final
/// response to the call task.
pub(crate) fn spawn_refer(
    inner: &EndpointInnerRef,
    sent: Option<(rsip::Request, SipAddr)>,
    timeout: Duration,
    done: &mpsc::UnboundedSender<Done>,
) {
    let Some((req, dest)) = sent else {
        let _ = done.send(Done::Refer(481, "No dialog".into()));
        return;
    };
    let inner = inner.clone();
    let done = done.clone();
    tokio::spawn(async move {
        let (s, r) = wire::request_final(&inner, req, &dest, timeout)
            .await
            .unwrap_or((408, "Request Timeout".into()));
        let _ = done.send(Done::Refer(s, r));
    });
}

struct OutgoingTask {
    inner: EndpointInnerRef,
    routes: Routes,
    account: SipAccount,
    options: CallOptions,
    media: Option<MediaLeg>,
    events: mpsc::UnboundedSender<CallEvent>,
    core: OutgoingCall,
    call_id: String,
    from_tag: String,
    cseq: u32,
    request_uri: rsip::Uri,
    dest: SipAddr,
    contact: String,
    digest: Option<DigestSession>,
    auth_attempts: u32,
    /// The INVITE as sent (with our Via), for CANCEL and the dialog.
    invite: Option<rsip::Request>,
    dialog: Option<Dialog>,
    dialog_tx: mpsc::UnboundedSender<InboundTx>,
    /// The SDP our INVITE carried (the media plane's, or the browser's without media).
    sip_sdp: String,
}

impl OutgoingTask {
    async fn run(
        mut self,
        browser_sdp: String,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut dialog_rx: mpsc::UnboundedReceiver<InboundTx>,
    ) {
        let actions = self.core.start(Instant::now().into_std());
        self.execute(actions).await;
        self.sip_sdp = match &self.media {
            Some(m) => match m.offer(browser_sdp).await {
                Ok(sdp) => sdp,
                Err(e) => {
                    let actions = self.core.on_media_failure(Instant::now().into_std(), &e);
                    self.execute(actions).await;
                    return;
                }
            },
            None => browser_sdp,
        };
        let mut responses = match self.send_invite().await {
            Ok(rx) => rx,
            Err(e) => {
                let actions = self.core.on_no_response(Cause::Transport(e));
                self.execute(actions).await;
                return;
            }
        };
        let (reinvite_tx, mut reinvite_rx) = mpsc::unbounded_channel::<Done>();
        let mut responses_open = true;
        let mut commands_open = true;
        let mut got_final = false;
        let mut first_response_by = Some(Instant::now() + self.options.transaction_timeout);
        while !self.core.is_done() {
            let deadline = [
                self.core.deadline().map(Instant::from_std),
                first_response_by,
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let actions = tokio::select! {
                r = responses.recv(), if responses_open => match r {
                    Some(resp) => {
                        first_response_by = None;
                        if resp.status_code.code() >= 200 && !matches!(resp.status_code.code(), 401 | 407) {
                            got_final = true;
                        }
                        match self.on_response(resp).await {
                            Ok(actions) => actions,
                            Err(new_rx) => {
                                responses = new_rx;
                                first_response_by = Some(Instant::now() + self.options.transaction_timeout);
                                Vec::new()
                            }
                        }
                    }
                    None => {
                        responses_open = false;
                        if got_final { Vec::new() } else { self.core.on_no_response(Cause::Timeout) }
                    }
                },
                c = commands.recv(), if commands_open => match c {
                    Some(Command::Hangup) => self.core.hangup(Instant::now().into_std()),
                    Some(Command::Hold(on)) => self.core.hold(on),
                    Some(Command::Transfer(target)) => self.core.transfer(&target),
                    Some(Command::Answer(_) | Command::Reject(_)) => Vec::new(),
                    Some(Command::Send(method, content_type, body)) => {
                        if self.core.is_confirmed() {
                            self.send_in_dialog(method, &content_type, body);
                        }
                        Vec::new()
                    }
                    // The handle was dropped: the session is gone, end the call.
                    None => {
                        commands_open = false;
                        self.core.hangup(Instant::now().into_std())
                    }
                },
                Some(req) = dialog_rx.recv() => self.on_in_dialog(req).await,
                Some(done) = reinvite_rx.recv() => match done {
                    Done::Reinvite(status, reason) => self.core.on_reinvite_final(status, &reason),
                    Done::Refer(status, reason) => self.core.on_refer_final(status, &reason),
                },
                _ = sleep => {
                    if first_response_by.is_some_and(|t| t <= Instant::now()) {
                        first_response_by = None;
                        self.core.on_no_response(Cause::Timeout)
                    } else {
                        self.core.on_deadline(Instant::now().into_std())
                    }
                }
            };
            self.execute_with(actions, &reinvite_tx).await;
        }
        if let Some(d) = &self.dialog {
            self.routes.remove_dialog(&d.key());
        }
    }

    async fn send_invite(&mut self) -> Result<mpsc::UnboundedReceiver<rsip::Response>, String> {
        self.cseq += 1;
        let a = &self.account;
        let host = wire::local_host_for(&self.inner, &self.dest).await?;
        let transport_param = if a.transport == Transport::Tcp {
            ";transport=tcp"
        } else {
            ""
        };
        self.contact = format!("<sip:{}@{host}{transport_param}>", a.login);
        let mut headers: Vec<Header> = vec![
            Header::MaxForwards(70.into()),
            Header::From(rsip::headers::From::new(format!(
                "{};tag={}",
                a.from_header(),
                self.from_tag
            ))),
            Header::To(rsip::headers::To::new(format!("<{}>", self.request_uri))),
            Header::CallId(rsip::headers::CallId::new(self.call_id.clone())),
            Header::CSeq(
                rsip::typed::CSeq {
                    seq: self.cseq,
                    method: Method::Invite,
                }
                .into(),
            ),
            Header::Contact(rsip::headers::Contact::new(self.contact.clone())),
            Header::Allow(super::inbound::allow_value().into()),
            Header::UserAgent(rsip::headers::UserAgent::new("wavegate")),
            Header::ContentType(rsip::headers::ContentType::new("application/sdp")),
        ];
        if let Some(session) = &mut self.digest {
            let value = session.authorize(
                "INVITE",
                &self.request_uri.to_string(),
                a.auth_name.as_str(),
                a.password.expose(),
                &random_text(16),
            );
            headers.push(match session.header {
                AuthHeader::Authorization => {
                    Header::Authorization(rsip::headers::Authorization::new(value))
                }
                AuthHeader::ProxyAuthorization => {
                    Header::ProxyAuthorization(rsip::headers::ProxyAuthorization::new(value))
                }
            });
        }
        for h in &a.extra_headers {
            headers.push(Header::Other(h.name.clone(), h.value.clone()));
        }
        let req = rsip::Request {
            method: Method::Invite,
            uri: self.request_uri.clone(),
            headers: headers.into(),
            body: self.sip_sdp.clone().into_bytes(),
            version: rsip::Version::V2,
        };
        let (tx, _) = wire::start_client(&self.inner, req, &self.dest).await?;
        self.invite = Some(tx.original.clone());
        Ok(wire::pump(tx))
    }

    /// A response to our INVITE. `Err` carries the responses of a re-sent (authenticated) INVITE.
    async fn on_response(
        &mut self,
        resp: rsip::Response,
    ) -> Result<Vec<Action>, mpsc::UnboundedReceiver<rsip::Response>> {
        let status = resp.status_code.code();
        let reason = wire::reason(&resp);
        if status < 200 {
            let has_sdp = !resp.body.is_empty();
            let mut actions = Vec::new();
            if has_sdp && status > 100 && !self.core.state().is_final() {
                actions.extend(self.remote_sdp(&resp.body, true).await);
            }
            actions.extend(self.core.on_provisional(status, &reason, has_sdp));
            return Ok(actions);
        }
        if matches!(status, 401 | 407) && !self.core.state().is_final() && self.auth_attempts < 2 {
            self.auth_attempts += 1;
            let values: Vec<String> = resp
                .headers
                .iter()
                .filter_map(|h| match (h, status) {
                    (Header::WwwAuthenticate(v), 401) => Some(v.value().to_string()),
                    (Header::ProxyAuthenticate(v), 407) => Some(v.value().to_string()),
                    _ => None,
                })
                .collect();
            let stale_retry = self.digest.is_some()
                && values
                    .iter()
                    .any(|v| v.to_ascii_lowercase().contains("stale=true"));
            if (self.digest.is_none() || stale_retry)
                && let Ok(challenge) = Challenge::choose(values.iter().map(String::as_str))
            {
                let header = if status == 401 {
                    AuthHeader::Authorization
                } else {
                    AuthHeader::ProxyAuthorization
                };
                self.digest = Some(DigestSession::new(challenge, header));
                return match self.send_invite().await {
                    Ok(rx) => Err(rx),
                    Err(e) => Ok(self.core.on_no_response(Cause::Transport(e))),
                };
            }
        }
        if (200..300).contains(&status) && self.dialog.is_none() {
            if let Some(invite) = &self.invite {
                match Dialog::from_uac(invite, &resp, &self.contact) {
                    Ok(d) => {
                        self.routes.add_dialog(d.key(), self.dialog_tx.clone());
                        self.dialog = Some(d);
                    }
                    Err(e) => tracing::warn!(error = %e, "2xx does not form a dialog"),
                }
            }
            let mut actions = Vec::new();
            if !self.core.state().is_final() {
                actions.extend(self.remote_sdp(&resp.body, false).await);
            }
            if self.dialog.is_none() {
                // Without a dialog we cannot BYE: treat as a failure of the far end.
                actions.extend(self.core.on_no_response(Cause::Sip {
                    status,
                    reason: "2xx without Contact/To tag".into(),
                }));
                return Ok(actions);
            }
            actions.extend(self.core.on_final(status, &reason));
            return Ok(actions);
        }
        Ok(self.core.on_final(status, &reason))
    }

    /// The far end's SDP to the media plane; the browser leg's SDP to the session.
    async fn remote_sdp(&mut self, body: &[u8], early: bool) -> Vec<Action> {
        let sdp = String::from_utf8_lossy(body).into_owned();
        if sdp.trim().is_empty() {
            return Vec::new();
        }
        let for_browser = match &self.media {
            Some(m) => match m.answer(sdp).await {
                Ok(s) => s,
                Err(e) => return self.core.on_media_failure(Instant::now().into_std(), &e),
            },
            None => sdp,
        };
        let _ = self.events.send(CallEvent::RemoteSdp {
            sdp: for_browser,
            early,
        });
        Vec::new()
    }

    async fn on_in_dialog(&mut self, req: InboundTx) -> Vec<Action> {
        match serve_in_dialog(
            req,
            &mut self.sip_sdp,
            &self.contact,
            self.core.reinvite_pending(),
            &self.events,
            &self.options,
        )
        .await
        {
            InDialog::Bye => self.core.on_bye(),
            InDialog::Direction(d) => self.core.on_remote_direction(d),
            InDialog::Refer(target) => {
                let _ = self.events.send(CallEvent::Transfer {
                    target: target.clone(),
                });
                self.notify_refer("SIP/2.0 100 Trying").await;
                self.core.on_refer(&target)
            }
            InDialog::Notify(status, reason) => self.core.on_transfer_notify(status, &reason),
            InDialog::Other => Vec::new(),
        }
    }

    async fn notify_refer(&mut self, status_line: &str) {
        let tcp = self.account.transport == Transport::Tcp;
        if let Some(d) = self.dialog.as_mut() {
            let timeout = self.options.transaction_timeout;
            notify_refer(&self.inner, d, tcp, timeout, status_line).await;
        }
    }

    async fn execute(&mut self, actions: Vec<Action>) {
        let (tx, _rx) = mpsc::unbounded_channel();
        self.execute_with(actions, &tx).await;
    }

    async fn execute_with(
        &mut self,
        actions: Vec<Action>,
        reinvite_done: &mpsc::UnboundedSender<Done>,
    ) {
        for action in reports_first(actions) {
            match action {
                Action::Report(change) => {
                    let _ = self.events.send(CallEvent::State(change));
                }
                Action::ReleaseMedia => {
                    if let Some(m) = &self.media {
                        m.release().await;
                    }
                }
                Action::SendCancel => self.send_cancel().await,
                Action::SendBye => {
                    if let Some((req, dest)) = self.in_dialog(Method::Bye, None) {
                        let inner = self.inner.clone();
                        let timeout = self.options.transaction_timeout;
                        tokio::spawn(async move {
                            wire::request_final(&inner, req, &dest, timeout).await
                        });
                    }
                }
                Action::SendReinvite(dir) => {
                    let sdp = sdp_with_direction(&self.sip_sdp, dir);
                    self.sip_sdp = sdp.clone();
                    match self
                        .in_dialog(Method::Invite, Some(("application/sdp", sdp.into_bytes())))
                    {
                        Some((req, dest)) => {
                            let inner = self.inner.clone();
                            let timeout = self.options.transaction_timeout;
                            let done = reinvite_done.clone();
                            tokio::spawn(async move {
                                let (s, r) = wire::request_final(&inner, req, &dest, timeout)
                                    .await
                                    .unwrap_or((408, "Request Timeout".into()));
                                let _ = done.send(Done::Reinvite(s, r));
                            });
                        }
                        None => {
                            let _ = reinvite_done.send(Done::Reinvite(481, "No dialog".into()));
                        }
                    }
                }
                Action::SendRefer(target) => {
                    let tcp = self.account.transport == Transport::Tcp;
                    let timeout = self.options.transaction_timeout;
                    let sent = self.dialog.as_mut().and_then(|d| {
                        let req = refer_request(d, &target)?;
                        let dest = wire::sip_addr(&d.next_hop(), tcp).ok()?;
                        Some((req, dest))
                    });
                    spawn_refer(&self.inner, sent, timeout, reinvite_done);
                }
                Action::Transfer(p) => {
                    let _ = self.events.send(CallEvent::TransferProgress(p));
                }
                Action::Respond(_) => {}
            }
        }
    }

    fn send_in_dialog(&mut self, method: Method, content_type: &str, body: String) {
        if let Some((req, dest)) = self.in_dialog(method, Some((content_type, body.into_bytes()))) {
            let inner = self.inner.clone();
            let timeout = self.options.transaction_timeout;
            tokio::spawn(async move { wire::request_final(&inner, req, &dest, timeout).await });
        }
    }

    fn in_dialog(
        &mut self,
        method: Method,
        body: Option<(&str, Vec<u8>)>,
    ) -> Option<(rsip::Request, SipAddr)> {
        let tcp = self.account.transport == Transport::Tcp;
        let d = self.dialog.as_mut()?;
        let req = d.request(method, body).ok()?;
        let dest = wire::sip_addr(&d.next_hop(), tcp).ok()?;
        Some((req, dest))
    }

    /// CANCEL for the current INVITE (same Request-URI, top Via, Call-ID, From, To, CSeq number).
    async fn send_cancel(&mut self) {
        let Some(invite) = &self.invite else { return };
        let mut headers: Vec<Header> = Vec::new();
        if let Ok(via) = invite.via_header() {
            headers.push(Header::Via(via.clone()));
        }
        for h in invite.headers.iter() {
            match h {
                Header::From(_) | Header::To(_) | Header::CallId(_) | Header::Route(_) => {
                    headers.push(h.clone())
                }
                _ => {}
            }
        }
        headers.push(Header::CSeq(
            rsip::typed::CSeq {
                seq: self.cseq,
                method: Method::Cancel,
            }
            .into(),
        ));
        headers.push(Header::MaxForwards(70.into()));
        headers.push(Header::ContentLength(0u32.into()));
        let cancel = rsip::Request {
            method: Method::Cancel,
            uri: invite.uri.clone(),
            headers: headers.into(),
            body: vec![],
            version: rsip::Version::V2,
        };
        let Ok(key) = rsipstack::transaction::key::TransactionKey::from_request(
            &cancel,
            rsipstack::transaction::key::TransactionRole::Client,
        ) else {
            return;
        };
        let mut tx = rsipstack::transaction::transaction::Transaction::new_client(
            key,
            cancel,
            self.inner.clone(),
            None,
        );
        tx.destination = Some(self.dest.clone());
        if tx.send().await.is_ok() {
            let timeout = self.options.transaction_timeout;
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(timeout, async { while tx.receive().await.is_some() {} })
                        .await;
            });
        }
    }
}
