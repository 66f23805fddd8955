//! Incoming calls and messages for an account: `SipUserAgent::accept` turns a new INVITE or
//! MESSAGE (delivered by the dispatcher to the account's owner) into an [`Incoming`]. An INVITE
//! is answered 180 at once and becomes an [`IncomingCall`] handle; its task feeds the sans-IO
//! [`crate::call::incoming::IncomingCall`] core with the owner's answer/reject, the caller's
//! CANCEL and ACK, in-dialog requests and the clock. SDP goes through the media plane: the
//! caller's offer is `Offer`ed (the reply is the browser leg's offer) and the browser's answer
//! is `Answer`ed (the reply goes in our 200). Without SDP in the INVITE (delayed offer) the
//! browser's SDP is the offer in our 200 and the ACK's SDP is the answer. Invariant: the
//! INVITE's server transaction is driven by its own pump task, and we answer it only through
//! its event channel, so no response is lost to a cancelled future.

use std::time::Duration;

use rsipstack::sip::{self as rsip, Header, HeadersExt as _, Method};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::random_text;
use rsipstack::transaction::transaction::{Transaction, TransactionEvent, TransactionEventSender};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::call::{
    CallEvent, CallHandle, CallOptions, Command, Done, InDialog, MediaLeg, notify_refer,
    refer_request, reports_first, serve_in_dialog, spawn_in_dialog,
};
use super::client::SipUserAgent;
use super::dialog::Dialog;
use super::dispatch::{InboundTx, Routes};
use super::wire;
use crate::call::incoming::IncomingCall as Core;
use crate::call::transfer::TransferParty as _;
use crate::call::{Action, Cause};
use crate::media::MediaService;

/// A new request for an account.
pub enum Incoming {
    /// An INVITE, ringing (180 sent).
    Call(IncomingCall),
    /// An out-of-dialog MESSAGE (answered 200).
    Message {
        /// The sender (From header value).
        from: String,
        /// Content-Type.
        content_type: String,
        /// The body as text.
        body: String,
    },
}

/// A ringing incoming call.
pub struct IncomingCall {
    /// Events and hangup/hold, as for outgoing calls.
    pub call: CallHandle,
    /// The caller (From header value).
    pub from: String,
    /// The SDP offer for the browser leg (the media plane's rewrite of the caller's offer);
    /// `None` for a delayed offer: then [`answer`](Self::answer) takes the browser's *offer*
    /// and the browser leg's answer arrives as a [`CallEvent::RemoteSdp`] after the ACK.
    pub offer: Option<String>,
}

impl IncomingCall {
    /// Answers with the browser leg's SDP (answer, or offer for a delayed-offer INVITE).
    pub fn answer(&self, browser_sdp: String) {
        self.call.command(Command::Answer(browser_sdp));
    }

    /// Rejects (486 Busy Here, 603 Decline, ...).
    pub fn reject(&self, status: u16) {
        self.call.command(Command::Reject(status));
    }
}

fn header_text(req: &rsip::Request, pick: impl Fn(&Header) -> Option<String>) -> String {
    req.headers.iter().find_map(pick).unwrap_or_default()
}

fn reason_for(status: u16) -> String {
    rsip::StatusCode::from(status).text().to_string()
}

impl SipUserAgent {
    /// Takes over a new request delivered for an account (see `Registration::next_incoming`).
    pub async fn accept(
        &self,
        req: InboundTx,
        media: Option<MediaService>,
        options: CallOptions,
    ) -> Incoming {
        let InboundTx { mut tx, inbound } = req;
        let from = header_text(&tx.original, |h| match h {
            Header::From(f) => Some(f.value().to_string()),
            _ => None,
        });
        if inbound.method == Method::Message {
            let content_type = header_text(&tx.original, |h| match h {
                Header::ContentType(c) => Some(c.value().to_string()),
                _ => None,
            });
            let body = String::from_utf8_lossy(&tx.original.body).into_owned();
            let _ = super::dispatch::reply(&mut tx, 200, "OK", vec![]).await;
            return Incoming::Message {
                from,
                content_type,
                body,
            };
        }
        let id = random_text(24);
        let sip_call_id = inbound.call_id.clone();
        let caller_sdp = String::from_utf8_lossy(&tx.original.body).into_owned();
        let delayed = caller_sdp.trim().is_empty();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let media = media.and_then(|service| {
            let (offerer, answerer) = if delayed {
                ("browser", "sip")
            } else {
                ("sip", "browser")
            };
            MediaLeg::new(service, &id, offerer, answerer).ok()
        });
        let mut task = IncomingTask::new(
            self.inner.clone(),
            self.routes.clone(),
            tx,
            media,
            events_tx,
            options,
            self.local_addr(),
        );
        // The caller's offer through the media plane before the session sees the call.
        let offer = if delayed {
            None
        } else {
            match &task.media {
                Some(m) => match m.offer(caller_sdp).await {
                    Ok(sdp) => Some(sdp),
                    Err(e) => {
                        task.fail_media(&e).await;
                        None
                    }
                },
                None => Some(caller_sdp),
            }
        };
        let handle = tokio::spawn(task.run(commands_rx, delayed));
        Incoming::Call(IncomingCall {
            call: CallHandle::new(sip_call_id, id, events, commands, handle),
            from,
            offer,
        })
    }
}

struct IncomingTask {
    inner: EndpointInnerRef,
    routes: Routes,
    media: Option<MediaLeg>,
    events: mpsc::UnboundedSender<CallEvent>,
    options: CallOptions,
    core: Option<Core>,
    /// The INVITE with our To tag.
    invite: rsip::Request,
    respond: TransactionEventSender,
    requests: mpsc::UnboundedReceiver<rsip::Request>,
    contact: String,
    dialog: Option<Dialog>,
    dialog_tx: mpsc::UnboundedSender<InboundTx>,
    dialog_rx: mpsc::UnboundedReceiver<InboundTx>,
    /// The SDP in our 200.
    sip_sdp: String,
    failed: bool,
}

/// Drives a server INVITE transaction in its own task (bounded by `for_at_most`): CANCEL and
/// ACK come out on the channel; responses go in through the returned sender.
fn serve_pump(
    mut tx: Transaction,
    for_at_most: Duration,
) -> (
    TransactionEventSender,
    mpsc::UnboundedReceiver<rsip::Request>,
) {
    let sender = tx.tu_sender.clone();
    let (to, from) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(for_at_most, async {
            while let Some(msg) = tx.receive().await {
                if let rsip::SipMessage::Request(r) = msg {
                    let _ = to.send(r);
                }
            }
        })
        .await;
    });
    (sender, from)
}

impl IncomingTask {
    fn new(
        inner: EndpointInnerRef,
        routes: Routes,
        tx: Transaction,
        media: Option<MediaLeg>,
        events: mpsc::UnboundedSender<CallEvent>,
        options: CallOptions,
        local: std::net::SocketAddr,
    ) -> IncomingTask {
        let mut invite = tx.original.clone();
        if let Ok(to) = invite.to_header()
            && matches!(to.tag(), Ok(None))
        {
            let tagged = to.clone().with_tag(rsipstack::transaction::make_tag());
            invite.headers.unique_push(tagged.into());
        }
        let user = invite
            .uri
            .auth
            .as_ref()
            .map(|a| a.user.clone())
            .unwrap_or_default();
        let host = tx
            .connection
            .as_ref()
            .map(|c| c.get_addr().addr.to_string())
            .unwrap_or_else(|| local.to_string());
        let tcp = tx.connection.as_ref().is_some_and(|c| c.is_reliable());
        let contact = format!(
            "<sip:{user}@{host}{}>",
            if tcp { ";transport=tcp" } else { "" }
        );
        // Ringing for the owner, plus the ACK/2xx window, bounds the transaction's pump.
        let (respond, requests) = serve_pump(tx, options.no_answer + Duration::from_secs(64));
        let (dialog_tx, dialog_rx) = mpsc::unbounded_channel();
        IncomingTask {
            inner,
            routes,
            media,
            events,
            options,
            core: None,
            invite,
            respond,
            requests,
            contact,
            dialog: None,
            dialog_tx,
            dialog_rx,
            sip_sdp: String::new(),
            failed: false,
        }
    }

    fn send_response(&self, status: u16, body: Option<Vec<u8>>) {
        let mut resp =
            self.inner
                .make_response(&self.invite, rsip::StatusCode::from(status), body.clone());
        if (101..300).contains(&status) {
            resp.headers
                .push(Header::Contact(rsip::headers::Contact::new(
                    self.contact.clone(),
                )));
        }
        if body.is_some() {
            resp.headers
                .push(Header::ContentType(rsip::headers::ContentType::new(
                    "application/sdp",
                )));
        }
        if (200..300).contains(&status) {
            resp.headers
                .push(Header::Allow(super::inbound::allow_value().into()));
            // Record-Route of the INVITE comes back in the 2xx (RFC 3261 §12.1.1).
            for h in self.invite.headers.iter() {
                if let Header::RecordRoute(_) = h {
                    resp.headers.push(h.clone());
                }
            }
        }
        let _ = self.respond.send(TransactionEvent::Respond(resp));
    }

    /// The media plane refused the caller's offer: 488, FAILED.
    async fn fail_media(&mut self, why: &str) {
        self.failed = true;
        self.send_response(488, None);
        let _ = self.events.send(CallEvent::State(crate::call::StateChange {
            state: crate::call::CallState::Failed,
            cause: Cause::MediaFailure(why.to_string()),
        }));
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>, delayed: bool) {
        if self.failed {
            return;
        }
        self.send_response(180, None);
        let (core, actions) = Core::new(Instant::now().into_std(), self.options.no_answer);
        self.core = Some(core);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        self.execute(actions, &done_tx).await;
        let mut commands_open = true;
        while !self.core.as_ref().is_none_or(Core::is_done) {
            let deadline = self
                .core
                .as_ref()
                .and_then(Core::deadline)
                .map(Instant::from_std);
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let actions = tokio::select! {
                Some(req) = self.requests.recv() => match req.method {
                    Method::Cancel => self.core_mut().on_cancel(),
                    Method::Ack => {
                        let mut actions = Vec::new();
                        if delayed && !req.body.is_empty() {
                            actions.extend(self.remote_answer(&req.body).await);
                        }
                        actions.extend(self.core_mut().on_ack());
                        actions
                    }
                    _ => Vec::new(),
                },
                c = commands.recv(), if commands_open => match c {
                    Some(Command::Answer(sdp)) => self.answer(sdp, delayed).await,
                    Some(Command::Reject(status)) => self.core_mut().reject(status, &reason_for(status)),
                    Some(Command::Hangup) => self.core_mut().hangup(),
                    Some(Command::Hold(on)) => self.core_mut().hold(on),
                    Some(Command::Transfer(target)) => self.core_mut().transfer(&target),
                    Some(Command::Send(method, content_type, body)) => {
                        self.send_in_dialog(method, &content_type, body);
                        Vec::new()
                    }
                    None => {
                        commands_open = false;
                        self.core_mut().hangup()
                    }
                },
                Some(req) = self.dialog_rx.recv() => {
                    let pending = self.core.as_ref().is_some_and(Core::reinvite_pending);
                    match serve_in_dialog(req, &mut self.sip_sdp, &self.contact, pending, &self.events, &self.options).await {
                        InDialog::Bye => self.core_mut().on_bye(),
                        InDialog::Direction(d) => self.core_mut().on_remote_direction(d),
                        // The caller transfers us: as on outgoing calls, reported, NOTIFYed
                        // (100 Trying; the new call is the session's) and ended with BYE.
                        InDialog::Refer(target) => {
                            let _ = self.events.send(CallEvent::Transfer { target: target.clone() });
                            if self.core.as_ref().is_some_and(Core::is_confirmed) {
                                let tcp = self.contact.contains("transport=tcp");
                                let timeout = self.options.transaction_timeout;
                                if let Some(d) = self.dialog.as_mut() {
                                    notify_refer(&self.inner, d, tcp, timeout, "SIP/2.0 100 Trying").await;
                                }
                            }
                            self.core_mut().on_refer(&target)
                        }
                        InDialog::Notify(status, reason) => self.core_mut().on_transfer_notify(status, &reason),
                        InDialog::Other => Vec::new(),
                    }
                }
                Some(done) = done_rx.recv() => match done {
                    Done::Reinvite(status, reason) => self.core_mut().on_reinvite_final(status, &reason),
                    Done::Refer(status, reason) => self.core_mut().on_refer_final(status, &reason),
                },
                _ = sleep => self.core_mut().on_deadline(Instant::now().into_std()),
            };
            self.execute(actions, &done_tx).await;
        }
        if let Some(d) = &self.dialog {
            self.routes.remove_dialog(&d.key());
        }
    }

    fn send_in_dialog(&mut self, method: Method, content_type: &str, body: String) {
        if !self.core.as_ref().is_some_and(Core::is_confirmed) {
            return;
        }
        let tcp = self.contact.contains("transport=tcp");
        if let Some(d) = self.dialog.as_mut()
            && let Ok(req) = d.request(method, Some((content_type, body.into_bytes())))
            && let Ok(dest) = wire::sip_addr(&d.next_hop(), tcp)
        {
            let inner = self.inner.clone();
            let timeout = self.options.transaction_timeout;
            tokio::spawn(async move { wire::request_final(&inner, req, &dest, timeout).await });
        }
    }

    fn core_mut(&mut self) -> &mut Core {
        // `run` sets the core before its loop; this is only called inside that loop.
        match &mut self.core {
            Some(c) => c,
            None => unreachable!("incoming call core used before run() created it"),
        }
    }

    /// The owner's SDP through the media plane, then the core's answer (our 200).
    async fn answer(&mut self, browser_sdp: String, delayed: bool) -> Vec<Action> {
        if self.core.as_ref().is_none_or(|c| c.state().is_final()) {
            return Vec::new();
        }
        let sdp = match &self.media {
            Some(m) if delayed => m.offer(browser_sdp).await,
            Some(m) => m.answer(browser_sdp).await,
            None => Ok(browser_sdp),
        };
        match sdp {
            Ok(sdp) => {
                self.sip_sdp = sdp;
                self.core_mut().answer(Instant::now().into_std())
            }
            Err(e) => {
                let mut actions = self.core_mut().reject(500, "Server Internal Error");
                for a in &mut actions {
                    if let Action::Report(change) = a {
                        change.state = crate::call::CallState::Failed;
                        change.cause = Cause::MediaFailure(e.clone());
                    }
                }
                actions
            }
        }
    }

    /// The ACK's SDP answers our delayed-offer 200: through the media plane to the browser leg.
    async fn remote_answer(&mut self, body: &[u8]) -> Vec<Action> {
        let sdp = String::from_utf8_lossy(body).into_owned();
        let for_browser = match &self.media {
            Some(m) => match m.answer(sdp).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = self.events.send(CallEvent::State(crate::call::StateChange {
                        state: crate::call::CallState::Failed,
                        cause: Cause::MediaFailure(e),
                    }));
                    return self
                        .core_mut()
                        .hangup()
                        .into_iter()
                        .filter(|a| !matches!(a, Action::Report(_)))
                        .collect();
                }
            },
            None => sdp,
        };
        let _ = self.events.send(CallEvent::RemoteSdp {
            sdp: for_browser,
            early: false,
        });
        Vec::new()
    }

    async fn execute(&mut self, actions: Vec<Action>, done_tx: &mpsc::UnboundedSender<Done>) {
        for action in reports_first(actions) {
            match action {
                Action::Report(change) => {
                    let _ = self.events.send(CallEvent::State(change));
                }
                Action::Respond(status) => {
                    if (200..300).contains(&status) {
                        self.send_response(status, Some(self.sip_sdp.clone().into_bytes()));
                        if self.dialog.is_none()
                            && let Some(tag) = self
                                .invite
                                .to_header()
                                .ok()
                                .and_then(|t| t.tag().ok().flatten())
                        {
                            match Dialog::from_uas(&self.invite, tag.value(), &self.contact) {
                                Ok(d) => {
                                    self.routes.add_dialog(d.key(), self.dialog_tx.clone());
                                    self.dialog = Some(d);
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "incoming INVITE does not form a dialog")
                                }
                            }
                        }
                    } else {
                        self.send_response(status, None);
                    }
                }
                Action::ReleaseMedia => {
                    if let Some(m) = &self.media {
                        m.release().await;
                    }
                }
                Action::SendBye => {
                    if let Some(d) = self.dialog.as_mut()
                        && let Ok(req) = d.request(Method::Bye, None)
                        && let Ok(dest) =
                            wire::sip_addr(&d.next_hop(), self.contact.contains("transport=tcp"))
                    {
                        let inner = self.inner.clone();
                        let timeout = self.options.transaction_timeout;
                        tokio::spawn(async move {
                            wire::request_final(&inner, req, &dest, timeout).await
                        });
                    }
                }
                Action::SendReinvite(dir) => {
                    // Hold edits the direction of the SDP in our 200 (as on outgoing calls).
                    let sdp = wire::sdp_with_direction(&self.sip_sdp, dir);
                    self.sip_sdp = sdp.clone();
                    let tcp = self.contact.contains("transport=tcp");
                    let sent = self.dialog.as_mut().and_then(|d| {
                        let req = d
                            .request(Method::Invite, Some(("application/sdp", sdp.into_bytes())))
                            .ok()?;
                        let dest = wire::sip_addr(&d.next_hop(), tcp).ok()?;
                        Some((req, dest))
                    });
                    spawn_in_dialog(
                        &self.inner,
                        sent,
                        self.options.transaction_timeout,
                        done_tx,
                        Done::Reinvite,
                    );
                }
                Action::SendRefer(target) => {
                    let tcp = self.contact.contains("transport=tcp");
                    let sent = self.dialog.as_mut().and_then(|d| {
                        let req = refer_request(d, &target)?;
                        let dest = wire::sip_addr(&d.next_hop(), tcp).ok()?;
                        Some((req, dest))
                    });
                    spawn_in_dialog(
                        &self.inner,
                        sent,
                        self.options.transaction_timeout,
                        done_tx,
                        Done::Refer,
                    );
                }
                Action::Transfer(p) => {
                    let _ = self.events.send(CallEvent::TransferProgress(p));
                }
                Action::SendCancel => {}
            }
        }
    }
}
