//! The WebSocket session's hooks into the shared registry (`crate::registry`), kept apart from
//! the session's own logic: what the session tells its page (session and call statuses,
//! incoming calls) is mirrored into the registry, and REST requests reach the session as
//! [`SessionCtl`]s. A REST call command is applied as the equivalent page message (`hangup`,
//! `hold`, `sendDTMF`, …), so REST and the page take exactly the same paths and refusals.
//!
//! Invariant: the registry is told only what the page is told, after the fact; nothing here
//! changes a call.

use super::Session;
use super::messages::{ServerMsg, SessionStatus};
use crate::registry::{CallCmd, CallDirection, SessionCtl};

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
