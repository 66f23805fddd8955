//! A session's commands on a call in progress (hold/unhold, DTMF, transfer, sendMessage), split
//! from `mod.rs` by concern. Invariants as there: a command for an unknown call, or one the call
//! cannot take (the `echo` has no SIP dialog), is answered with an `error` and changes nothing;
//! SIP calls get the command on their task's channel and report the outcome as call states.

use std::time::Duration;

use wavegate_shared::protocol::{DtmfToward, InjectDtmf};

use super::messages::{DtmfType, ServerMsg};
use super::sip_call::SipCmd;
use super::{Call, DTMF_GAP_MS, DTMF_MS, Internal, Session, call_msg, error};

impl Session {
    /// Blind transfer: a bare user means one at the account's domain, as for callees, so the
    /// REFER carries a full URI (`Refer-To: <sip:carol@domain>`).
    pub(super) fn transfer(&mut self, call_id: &str, target: &str) -> Vec<ServerMsg> {
        let uri = self
            .account
            .as_ref()
            .map(|a| crate::sip::call::callee_uri(a, target.trim()));
        match uri {
            Some(Ok(uri)) => {
                self.sip_command(call_id, "transfer", SipCmd::Transfer(uri.to_string()))
            }
            Some(Err(e)) => vec![error(format!("transfer: {e}"))],
            None => vec![error("not connected: send \"connect\" first")],
        }
    }

    /// A command only SIP calls take (transfer, sendMessage); the echo has no SIP dialog.
    pub(super) fn sip_command(&mut self, call_id: &str, what: &str, cmd: SipCmd) -> Vec<ServerMsg> {
        match self.calls.get(call_id) {
            Some(Call::Sip { commands, .. }) => {
                let _ = commands.send(cmd);
                Vec::new()
            }
            Some(Call::Echo(_)) => vec![error(format!(
                "{what}: the echo extension has no SIP dialog ({what} needs a SIP call)"
            ))],
            None => vec![error(format!("{what}: no call {call_id:?}"))],
        }
    }

    pub(super) fn hold(&mut self, call_id: &str, on: bool) -> Vec<ServerMsg> {
        let Some(call) = self.calls.get(call_id) else {
            return vec![error(format!(
                "{}: no call {call_id:?}",
                if on { "hold" } else { "unhold" }
            ))];
        };
        let Call::Echo(call) = call else {
            if let Call::Sip { commands, .. } = call {
                let _ = commands.send(SipCmd::Hold(on));
            }
            return Vec::new(); // the SIP layer reports HOLD / ESTABLISHED "Resumed"
        };
        call.set_hold(on);
        if on {
            vec![call_msg(call_id, "HOLD", "Hold")]
        } else {
            vec![call_msg(call_id, "ESTABLISHED", "Resumed")]
        }
    }

    pub(super) fn dtmf(&mut self, call_id: &str, digits: &str, kind: DtmfType) -> Vec<ServerMsg> {
        let Some(call) = self.calls.get(call_id) else {
            return vec![error(format!("sendDTMF: no call {call_id:?}"))];
        };
        if digits.is_empty() || digits.len() > 32 {
            return vec![error("sendDTMF: digits must be 1-32 characters")];
        }
        if let Some(bad) = digits
            .chars()
            .find(|c| !matches!(c, '0'..='9' | '*' | '#' | 'A'..='D'))
        {
            return vec![error(format!(
                "sendDTMF: {bad:?} is not a DTMF digit (0-9 * # A-D)"
            ))];
        }
        match (kind, call) {
            (DtmfType::Info, Call::Sip { commands, .. }) => {
                for d in digits.chars() {
                    let _ = commands.send(SipCmd::Info(d));
                }
                Vec::new()
            }
            // The echo extension has no SIP dialog to carry INFO: it takes the digits itself.
            (DtmfType::Info, Call::Echo(_)) => digits
                .chars()
                .map(|d| ServerMsg::Dtmf {
                    call_id: call_id.to_string(),
                    digit: d.to_string(),
                    dtmf_type: DtmfType::Info,
                })
                .collect(),
            (DtmfType::Rfc2833, call) => {
                let media = self.media.clone();
                let id = call.media_id().clone();
                let digits: Vec<char> = digits.chars().collect();
                let fwd = self.internal_tx.clone();
                let page_id = call_id.to_string();
                // Digits play one after another (the media plane sends one event at a time).
                tokio::spawn(async move {
                    for digit in digits {
                        let req = InjectDtmf {
                            call: id.clone(),
                            toward: DtmfToward::Sip,
                            digit,
                            duration_ms: DTMF_MS,
                        };
                        if let Err(e) = media.request(&id, &req).await {
                            tracing::warn!(call = %id, error = %e, "InjectDtmf");
                            let _ = fwd.send(Internal::DtmfRefused(page_id, e.to_string()));
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(u64::from(DTMF_MS) + DTMF_GAP_MS))
                            .await;
                    }
                });
                Vec::new()
            }
        }
    }
}
