//! The WebSocket session's hooks into the shared registry (`crate::registry`), kept apart from
//! the session's own logic: what the session tells its page (session and call statuses,
//! incoming calls) is mirrored into the registry, and REST requests reach the session as
//! [`SessionCtl`]s. A REST call command is applied as the equivalent page message (`hangup`,
//! `hold`, `sendDTMF`, …), so REST and the page take exactly the same paths and refusals.
//!
//! The REST hooks (`crate::hooks`) decide here too: a `connect` may be refused (session FAILED
//! with the back end's reason) or completed with the back end's SIP account (so the page needs
//! no password), and an incoming INVITE may be refused (403) before the page hears of it.
//!
//! Invariant: the registry is told only what the page is told, after the fact; nothing here
//! changes a call except a hook's refusal.

use rsipstack::sip::Header;
use serde_json::{Value, json};

use super::Session;
use super::messages::{PortValue, ServerMsg, SessionStatus, SipOptions};
use crate::hooks::Verdict;
use crate::registry::{CallCmd, CallDirection, SessionCtl};
use crate::sip::dispatch::{self, InboundTx};

/// The page's `sipOptions` as JSON (what the connect hook sees, and what its answer overlays).
fn options_json(o: &SipOptions) -> Value {
    let port = match &o.port {
        None => Value::Null,
        Some(PortValue::Number(n)) => json!(n),
        Some(PortValue::Text(t)) => json!(t),
    };
    json!({
        "login": o.login, "authenticationName": o.authentication_name, "password": o.password,
        "domain": o.domain, "outboundProxy": o.outbound_proxy, "port": port,
        "transport": o.transport, "registerRequired": o.register_required,
        "visibleName": o.visible_name,
    })
}

fn status_name(s: SessionStatus) -> &'static str {
    match s {
        SessionStatus::Established => "ESTABLISHED",
        SessionStatus::Registered => "REGISTERED",
        SessionStatus::Unregistered => "UNREGISTERED",
        SessionStatus::Disconnected => "DISCONNECTED",
        SessionStatus::Failed => "FAILED",
    }
}

impl Session {
    /// Mirrors a message to the page into the registry.
    pub(super) fn observe(&self, msg: &ServerMsg) {
        let id = self.id.to_string();
        match msg {
            ServerMsg::Session { status, cause } => {
                if *status == SessionStatus::Established
                    && let Some(a) = &self.account
                {
                    self.registry.session_login(&id, a.login.as_str());
                }
                self.registry
                    .session_status(&id, status_name(*status), cause);
            }
            ServerMsg::Call {
                call_id,
                status,
                cause,
            } => self.registry.call_status(Some(&id), call_id, status, cause),
            ServerMsg::Incoming {
                call_id, caller, ..
            } => {
                let login = self
                    .account
                    .as_ref()
                    .map(|a| a.login.as_str().to_string())
                    .unwrap_or_default();
                self.registry
                    .page_call(&id, call_id, CallDirection::Incoming, caller, &login);
                self.registry
                    .call_status(Some(&id), call_id, "RING", "Incoming call");
            }
            _ => {}
        }
    }

    /// `connect`, through the connect hook when one is configured.
    pub(super) async fn connect_hooked(&mut self, options: SipOptions) -> Vec<ServerMsg> {
        let Some(hooks) = self.hooks.clone() else {
            return self.connect(&options);
        };
        if self.account.is_some() {
            return self.connect(&options); // refused there: already connected
        }
        let mut page = options_json(&options);
        match hooks.on_connect(&self.id.to_string(), &page).await {
            Verdict::Reject(reason) => {
                tracing::info!(session = self.id, %reason, "connect refused by the hook");
                vec![ServerMsg::Session {
                    status: SessionStatus::Failed,
                    cause: reason,
                }]
            }
            Verdict::Allow(None) => self.connect(&options),
            Verdict::Allow(Some(supplied)) => {
                if let Some(o) = page.as_object_mut() {
                    for (k, v) in supplied {
                        o.insert(k, v);
                    }
                }
                match serde_json::from_value::<SipOptions>(page) {
                    Ok(merged) => self.connect(&merged),
                    Err(e) => vec![ServerMsg::Session {
                        status: SessionStatus::Failed,
                        cause: format!("the connect hook's sipOptions are invalid: {e}"),
                    }],
                }
            }
        }
    }

    /// An incoming INVITE or MESSAGE, through the incoming-call hook when one is configured.
    pub(super) async fn incoming_hooked(&mut self, mut tx: InboundTx) -> Vec<ServerMsg> {
        if let Some(hooks) = self.hooks.clone()
            && tx.inbound.method == rsipstack::sip::Method::Invite
        {
            let caller = tx
                .tx
                .original
                .headers
                .iter()
                .find_map(|h| match h {
                    Header::From(f) => Some(f.value().to_string()),
                    _ => None,
                })
                .unwrap_or_default();
            let callee = tx.inbound.user.clone().unwrap_or_default();
            if let Err(reason) = hooks
                .on_incoming(&self.id.to_string(), &caller, &callee)
                .await
            {
                tracing::info!(session = self.id, %reason, "incoming call refused by the hook");
                let _ = dispatch::reply(&mut tx.tx, 403, &reason, vec![]).await;
                return Vec::new();
            }
        }
        self.incoming(tx).await
    }

    /// The page placed a call (its id checked and new in the session).
    pub(super) fn rest_call_created(&self, call_id: &str, callee: &str) {
        let login = self
            .account
            .as_ref()
            .map(|a| a.login.as_str().to_string())
            .unwrap_or_default();
        self.registry.page_call(
            &self.id.to_string(),
            call_id,
            CallDirection::Outgoing,
            &login,
            callee,
        );
    }

    /// A REST request for this session. `Err` carries the last message before the session
    /// closes.
    pub(super) async fn on_rest(&mut self, ctl: SessionCtl) -> Result<Vec<ServerMsg>, ServerMsg> {
        match ctl {
            SessionCtl::Terminate(why) => Err(ServerMsg::Session {
                status: SessionStatus::Disconnected,
                cause: why,
            }),
            SessionCtl::Startup {
                call_id,
                callee,
                reply,
            } => {
                if self.account.is_none() {
                    let _ = reply.send(Err(format!("session {} is not connected", self.id)));
                    return Ok(Vec::new());
                }
                if self.calls.contains_key(&call_id) {
                    let _ = reply.send(Err(format!("call id {call_id:?} is in use")));
                    return Ok(Vec::new());
                }
                self.rest_call_created(&call_id, &callee);
                let _ = reply.send(Ok(()));
                Ok(vec![ServerMsg::StartCall { call_id, callee }])
            }
            SessionCtl::Call { call_id, cmd } => {
                let msg = match cmd {
                    CallCmd::Hangup => serde_json::json!({"type": "hangup", "callId": call_id}),
                    CallCmd::Hold(true) => serde_json::json!({"type": "hold", "callId": call_id}),
                    CallCmd::Hold(false) => {
                        serde_json::json!({"type": "unhold", "callId": call_id})
                    }
                    CallCmd::Dtmf { digits, info } => serde_json::json!({
                        "type": "sendDTMF", "callId": call_id, "digits": digits,
                        "dtmfType": if info { "INFO" } else { "RFC2833" },
                    }),
                    CallCmd::Transfer(target) => {
                        serde_json::json!({"type": "transfer", "callId": call_id, "target": target})
                    }
                };
                Ok(self.on_text(&msg.to_string()).await)
            }
        }
    }
}
