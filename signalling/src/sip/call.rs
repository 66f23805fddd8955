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
use super::digest::{Challenge, DigestSession};
use super::dispatch::{InboundTx, Routes};
pub(crate) use super::in_dialog::{InDialog, notify_refer, refer_request, serve_in_dialog};
pub use super::in_dialog::{dtmf_digit, dtmf_relay_body};
use super::uri::SipUri;
use super::wire::{self, sdp_with_direction};
use crate::call::outgoing::OutgoingCall;
pub use crate::call::transfer::TransferProgress;
use crate::call::{Action, Cause, StateChange};
use crate::media::MediaService;

mod task;
use task::OutgoingTask;

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

/// Sends an in-dialog request (or reports 481 when there is no dialog to send it in) and hands
/// its final response, made into a [`Done`] by `done_as`, to the call task.
pub(crate) fn spawn_in_dialog(
    inner: &EndpointInnerRef,
    sent: Option<(rsip::Request, SipAddr)>,
    timeout: Duration,
    done: &mpsc::UnboundedSender<Done>,
    done_as: fn(u16, String) -> Done,
) {
    let Some((req, dest)) = sent else {
        let _ = done.send(done_as(481, "No dialog".into()));
        return;
    };
    let inner = inner.clone();
    let done = done.clone();
    tokio::spawn(async move {
        let (s, r) = wire::request_final(&inner, req, &dest, timeout)
            .await
            .unwrap_or((408, "Request Timeout".into()));
        let _ = done.send(done_as(s, r));
    });
}
