//! The task behind one outgoing call: it owns the sans-IO [`OutgoingCall`] core and turns its
//! actions into INVITE/ACK/CANCEL/BYE transactions, media-plane requests and session events.
//! Split from `call.rs` (the public handle and `SipUserAgent::call`) by concern; it sees the
//! parent's private items through `super::*`.

use super::*;
use crate::call::transfer::TransferParty as _;

pub(super) struct OutgoingTask {
    pub(super) inner: EndpointInnerRef,
    pub(super) routes: Routes,
    pub(super) account: SipAccount,
    pub(super) options: CallOptions,
    pub(super) media: Option<MediaLeg>,
    pub(super) events: mpsc::UnboundedSender<CallEvent>,
    pub(super) core: OutgoingCall,
    pub(super) call_id: String,
    pub(super) from_tag: String,
    pub(super) cseq: u32,
    pub(super) request_uri: rsip::Uri,
    pub(super) dest: SipAddr,
    pub(super) contact: String,
    pub(super) digest: Option<DigestSession>,
    pub(super) auth_attempts: u32,
    /// The INVITE as sent (with our Via), for CANCEL and the dialog.
    pub(super) invite: Option<rsip::Request>,
    pub(super) dialog: Option<Dialog>,
    pub(super) dialog_tx: mpsc::UnboundedSender<InboundTx>,
    /// The SDP our INVITE carried (the media plane's, or the browser's without media).
    pub(super) sip_sdp: String,
}

impl OutgoingTask {
    pub(super) async fn run(
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
            Header::Allow(crate::sip::inbound::allow_value().into()),
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
            headers.push(wire::auth_header(session.header, value));
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
            let (values, header) = wire::challenges(&resp, status);
            let stale_retry = self.digest.is_some()
                && values
                    .iter()
                    .any(|v| v.to_ascii_lowercase().contains("stale=true"));
            if (self.digest.is_none() || stale_retry)
                && let Ok(challenge) = Challenge::choose(values.iter().map(String::as_str))
            {
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
                    let sent =
                        self.in_dialog(Method::Invite, Some(("application/sdp", sdp.into_bytes())));
                    let timeout = self.options.transaction_timeout;
                    spawn_in_dialog(&self.inner, sent, timeout, reinvite_done, Done::Reinvite);
                }
                Action::SendRefer(target) => {
                    let tcp = self.account.transport == Transport::Tcp;
                    let timeout = self.options.transaction_timeout;
                    let sent = self.dialog.as_mut().and_then(|d| {
                        let req = refer_request(d, &target)?;
                        let dest = wire::sip_addr(&d.next_hop(), tcp).ok()?;
                        Some((req, dest))
                    });
                    spawn_in_dialog(&self.inner, sent, timeout, reinvite_done, Done::Refer);
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
