//! REST hooks: the configured back end (`hooks.url`) is told about sessions and calls and may
//! decide some of them. Each hook is a JSON `POST <url>/<hook>`:
//!
//! - `connect` (a page's `connect`, before the account is checked): the back end may refuse
//!   the session (HTTP 403, or 2xx with `{"reject": "<reason>"}`; the page gets `session
//!   FAILED` with the reason) or supply the SIP account (`{"sipOptions": {…}}`, merged over the
//!   page's, so no password needs to live in the page);
//! - `incoming_call` (an INVITE for a registered session, before the page hears of it): may
//!   refuse it the same way (the caller gets 403);
//! - `outgoing_call` and `call_status` (every status of every call): notifications.
//!
//! Invariants: every attempt is bounded by `hooks.timeout_ms`, retried at most
//! `hooks.retries` times and only after transport errors, timeouts and 5xx; answers are read
//! up to 64 KiB. Every attempt is counted in `wavegate_hook_requests_total{hook,outcome}` and a
//! failure is logged with the hook, URL and reason. A `connect` hook that cannot be reached lets
//! the session in unless `hooks.connect_fail_closed`; an `incoming_call` hook that cannot be
//! reached lets the call ring. Status notifications are posted in order by one task; when it
//! falls behind by more than 1024 events the lost ones are counted as `lagged`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Request, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::config::HooksConfig;
use crate::metrics::Metrics;
use crate::registry::CallEvent;

/// Largest hook answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// Why a hook call failed (after its retries).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// No answer within the deadline.
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// Connection refused, reset, bad URL…
    #[error("transport: {0}")]
    Transport(String),
    /// The back end answered 5xx (or another status a hook does not take).
    #[error("HTTP {0}")]
    Status(u16),
}

/// What the `connect` hook decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Go on; with `Some`, these fields replace the page's (JSON object of `sipOptions`).
    Allow(Option<serde_json::Map<String, Value>>),
    /// Refuse, with this reason.
    Reject(String),
}

struct Inner {
    base: String,
    timeout: Duration,
    retries: u32,
    fail_closed: bool,
    client: Client<HttpConnector, Full<Bytes>>,
    metrics: Metrics,
}

/// The hooks' client; cheap to clone.
#[derive(Clone)]
pub struct Hooks {
    inner: Arc<Inner>,
}

/// A 2xx answer's verdict: `{"reject": "why"}` refuses, `{"sipOptions": {...}}` supplies the
/// account, anything else (including an empty body) allows.
pub fn verdict_of(status: u16, body: &[u8]) -> Verdict {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let reason = |default: &str| {
        json.get("reject")
            .or_else(|| json.get("reason"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                let text = String::from_utf8_lossy(body).trim().to_string();
                (!text.is_empty() && json.is_null()).then_some(text)
            })
            .unwrap_or_else(|| default.to_string())
    };
    if status == 403 {
        return Verdict::Reject(reason("Rejected by the back end"));
    }
    if let Some(r) = json.get("reject").and_then(Value::as_str) {
        return Verdict::Reject(r.to_string());
    }
    Verdict::Allow(json.get("sipOptions").and_then(Value::as_object).cloned())
}

impl Hooks {
    /// The client, or `None` when `hooks.url` is empty.
    pub fn new(config: &HooksConfig, metrics: Metrics) -> Option<Hooks> {
        if config.url.is_empty() {
            return None;
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_millis(config.timeout_ms)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Some(Hooks {
            inner: Arc::new(Inner {
                base: config.url.trim_end_matches('/').to_string(),
                timeout: Duration::from_millis(config.timeout_ms),
                retries: config.retries,
                fail_closed: config.connect_fail_closed,
                client,
                metrics,
            }),
        })
    }

    async fn attempt(&self, hook: &str, body: &Bytes) -> Result<(u16, Bytes), HookError> {
        let url = format!("{}/{hook}", self.inner.base);
        let req = Request::post(url.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .map_err(|e| HookError::Transport(e.to_string()))?;
        let timeout = self.inner.timeout;
        let work = async {
            let resp = self
                .inner
                .client
                .request(req)
                .await
                .map_err(|e| HookError::Transport(e.to_string()))?;
            let status = resp.status().as_u16();
            let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| HookError::Transport(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok((status, bytes))
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| HookError::Timeout(timeout.as_millis() as u64))?
    }

    /// Posts `body` to `<url>/<hook>` with the bounded retries; the final status and answer.
    pub async fn post(&self, hook: &str, body: &Value) -> Result<(u16, Bytes), HookError> {
        let body = Bytes::from(body.to_string());
        let mut last = HookError::Transport("not tried".into());
        for attempt in 0..=self.inner.retries {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            let start = Instant::now();
            let r = self.attempt(hook, &body).await;
            let outcome = match &r {
                Ok((s, _)) if *s < 300 => "ok",
                Ok((403, _)) => "rejected",
                Ok(_) => "http_error",
                Err(HookError::Timeout(_)) => "timeout",
                Err(_) => "transport_error",
            };
            self.inner.metrics.hook(hook, outcome, start.elapsed());
            match r {
                Ok((s, b)) if s < 500 => {
                    if s >= 300 && s != 403 {
                        tracing::warn!(hook, url = %self.inner.base, status = s, "REST hook answered an error status");
                    }
                    return Ok((s, b));
                }
                Ok((s, _)) => last = HookError::Status(s),
                Err(e) => last = e,
            }
            tracing::warn!(hook, url = %self.inner.base, attempt, error = %last, "REST hook failed");
        }
        self.inner.metrics.hook(hook, "gave_up", Duration::ZERO);
        Err(last)
    }

    /// The `connect` hook for `session` with the page's `sipOptions` (the password is left out).
    pub async fn on_connect(&self, session: &str, sip_options: &Value) -> Verdict {
        let mut options = sip_options.clone();
        if let Some(o) = options.as_object_mut() {
            o.remove("password");
        }
        let body = serde_json::json!({ "sessionId": session, "sipOptions": options });
        match self.post("connect", &body).await {
            Ok((s, b)) if s < 300 || s == 403 => verdict_of(s, &b),
            Ok((s, _)) => self.unreachable_verdict(HookError::Status(s)),
            Err(e) => self.unreachable_verdict(e),
        }
    }

    fn unreachable_verdict(&self, e: HookError) -> Verdict {
        if self.inner.fail_closed {
            Verdict::Reject(format!("connect hook unavailable: {e}"))
        } else {
            tracing::warn!(error = %e, "connect hook unavailable: letting the session in (hooks.connect_fail_closed = false)");
            Verdict::Allow(None)
        }
    }

    /// The `incoming_call` hook: `Err(reason)` when the back end refuses the call.
    pub async fn on_incoming(
        &self,
        session: &str,
        caller: &str,
        callee: &str,
    ) -> Result<(), String> {
        let body = serde_json::json!({ "sessionId": session, "caller": caller, "callee": callee });
        match self.post("incoming_call", &body).await {
            Ok((s, b)) if s < 300 || s == 403 => match verdict_of(s, &b) {
                Verdict::Reject(r) => Err(r),
                Verdict::Allow(_) => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Posts `outgoing_call` (the first status of an outgoing call) and `call_status` (every
    /// status) from the registry's feed, in order, from one task.
    pub fn spawn_status_feed(&self, mut rx: broadcast::Receiver<CallEvent>) {
        let hooks = self.clone();
        tokio::spawn(async move {
            loop {
                let ev = match rx.recv().await {
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(lost = n, "call_status hook fell behind");
                        for _ in 0..n.min(1_000_000) {
                            hooks
                                .inner
                                .metrics
                                .hook("call_status", "lagged", Duration::ZERO);
                        }
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let body = match serde_json::to_value(&ev) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                if ev.first && ev.call.direction == crate::registry::CallDirection::Outgoing {
                    let _ = hooks.post("outgoing_call", &body).await;
                }
                let _ = hooks.post("call_status", &body).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(verdict_of(200, b""), Verdict::Allow(None));
        assert_eq!(verdict_of(204, b"{}"), Verdict::Allow(None));
        assert_eq!(
            verdict_of(200, br#"{"reject":"Account suspended"}"#),
            Verdict::Reject("Account suspended".into())
        );
        assert_eq!(
            verdict_of(403, br#"{"reason":"Not allowed"}"#),
            Verdict::Reject("Not allowed".into())
        );
        assert_eq!(
            verdict_of(403, b"go away"),
            Verdict::Reject("go away".into())
        );
        assert_eq!(
            verdict_of(403, b""),
            Verdict::Reject("Rejected by the back end".into())
        );
        let Verdict::Allow(Some(o)) =
            verdict_of(200, br#"{"sipOptions":{"login":"a","password":"p"}}"#)
        else {
            panic!("no options")
        };
        assert_eq!(o["password"], "p");
    }
}
