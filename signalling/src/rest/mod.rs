//! The REST API under `/rest-api/` (docs/rest-api.md, OpenAPI in docs/openapi.json): call
//! control and listing of live sessions and calls, JSON in and out, every endpoint a POST like
//! the seed's. Calls of pages are controlled through their session's task and server-side calls
//! through their own task (`server_call`); both are found in the shared [`Registry`].
//!
//! Invariants: a request is parsed completely before anything happens; every refusal is a JSON
//! body `{"status": <code>, "reason": "…"}` with 400 (invalid body), 401 (missing or wrong API
//! key), 404 (unknown call or session), 409 (call id taken, or ambiguous without a session id)
//! or 503 (the SIP user agent or media plane is not running); nothing here answers 500.
//! The API key is compared in constant time.

pub mod server_call;
pub mod types;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::http::AppState;
use crate::registry::{
    CallCmd, CallDirection, CallInfo, CallKind, CallRoute, LookupError, SessionCtl, now_ms,
};
use crate::sip::SipAccount;
use server_call::ServerCall;
use types::{CallRef, Empty, Find, Invalid, SendDtmf, SessionRef, Startup, StartupKind, Transfer};

/// The OpenAPI document, kept in docs/ and compiled in.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// A refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// 400: the body is not what the endpoint takes.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no key, or the wrong one.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: no such call or session.
    #[error("{0}")]
    NotFound(String),
    /// 409: the call id is in use, or names calls of several sessions.
    #[error("{0}")]
    Conflict(String),
    /// 503: a service the request needs is not running.
    #[error("{0}")]
    Unavailable(String),
}

impl RestError {
    fn status(&self) -> StatusCode {
        match self {
            RestError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RestError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            RestError::NotFound(_) => StatusCode::NOT_FOUND,
            RestError::Conflict(_) => StatusCode::CONFLICT,
            RestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody {
    status: u16,
    reason: String,
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            status: status.as_u16(),
            reason: self.to_string(),
        };
        (status, axum::Json(body)).into_response()
    }
}

impl From<Invalid> for RestError {
    fn from(e: Invalid) -> Self {
        RestError::BadRequest(e.0)
    }
}

impl From<LookupError> for RestError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::Unknown { .. } => RestError::NotFound(e.to_string()),
            LookupError::Ambiguous(_) | LookupError::Duplicate(_) => {
                RestError::Conflict(e.to_string())
            }
        }
    }
}

/// What the REST handlers need beyond the HTTP state.
#[derive(Clone)]
pub struct RestAuth {
    /// The key, when required.
    pub key: Option<Arc<str>>,
}

/// Parses a JSON body (see [`types::parse`]).
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, RestError> {
    Ok(types::parse(body)?)
}

type Reply<T> = Result<axum::Json<T>, RestError>;

/// A control request's answer: the call as it stands (the change follows asynchronously).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    result: &'static str,
    call: CallInfo,
}

fn generated_call_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("rest-{}-{}", now_ms(), NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn startup(State(state): State<AppState>, body: Bytes) -> Reply<CallInfo> {
    let req: Startup = parse(&body)?;
    let (call_id, callee, kind) = req.check()?;
    match kind {
        StartupKind::Session(session) => {
            let call_id = call_id.unwrap_or_else(generated_call_id);
            let ctl = state.registry.session_ctl(&session)?;
            if state.registry.route(&call_id, Some(&session)).is_ok() {
                return Err(RestError::Conflict(format!(
                    "call id {call_id:?} is already in use in session {session}"
                )));
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _ = ctl.send(SessionCtl::Startup {
                call_id: call_id.clone(),
                callee,
                reply: tx,
            });
            match tokio::time::timeout(std::time::Duration::from_secs(5), rx).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(why))) => return Err(RestError::Conflict(why)),
                _ => {
                    return Err(RestError::NotFound(format!(
                        "session {session} did not take the call (closed?)"
                    )));
                }
            }
            let (info, _) = state.registry.route(&call_id, Some(&session))?;
            Ok(axum::Json(info))
        }
        StartupKind::Server(account, bridge_to) => {
            let call_id = call_id.unwrap_or_else(generated_call_id);
            if state.registry.server_call_exists(&call_id) {
                return Err(LookupError::Duplicate(call_id).into());
            }
            let account = SipAccount::parse(&account.to_raw())
                .map_err(|e| RestError::BadRequest(format!("account.{e}")))?;
            let Some(ua) = state.sip.clone() else {
                return Err(RestError::Unavailable(
                    "the SIP user agent is not running".into(),
                ));
            };
            let info = CallInfo {
                call_id: call_id.clone(),
                session_id: None,
                kind: CallKind::Server,
                direction: CallDirection::Outgoing,
                caller: account.login.as_str().to_string(),
                callee: callee.clone(),
                status: "PENDING".into(),
                cause: "Calling".into(),
                bridged_to: bridge_to.clone(),
                created: now_ms(),
            };
            let (tx, rx) = mpsc::unbounded_channel();
            state.registry.server_call(info.clone(), tx)?;
            let call = ServerCall {
                call_id: call_id.clone(),
                account,
                callee,
                bridge_to,
                ua,
                media: state.media.clone(),
                registry: state.registry.clone(),
                media_ip: state.media_ip,
            };
            if let Err(e) = call.start(rx).await {
                let (status, err) = match &e {
                    server_call::StartError::Callee(_) => {
                        ("FAILED", RestError::BadRequest(e.to_string()))
                    }
                    server_call::StartError::Media(_) => {
                        ("FAILED", RestError::Unavailable(e.to_string()))
                    }
                };
                state
                    .registry
                    .call_status(None, &call_id, status, &e.to_string());
                return Err(err);
            }
            Ok(axum::Json(info))
        }
    }
}

/// Routes a command to a call.
fn control(
    state: &AppState,
    call_id: &str,
    session: Option<&str>,
    cmd: CallCmd,
) -> Reply<Accepted> {
    let (info, route) = state.registry.route(call_id, session)?;
    if let (CallCmd::Dtmf { info: false, .. }, CallKind::Server) = (&cmd, info.kind) {
        return Err(RestError::Conflict(
            "RFC2833 DTMF needs a call with a WebRTC leg (a page's call): the relay of a \
             server-side call does not generate telephone-events; use type INFO"
                .into(),
        ));
    }
    let sent = match route {
        CallRoute::Direct(tx) => tx.send(cmd).is_ok(),
        CallRoute::Session(tx) => tx
            .send(SessionCtl::Call {
                call_id: call_id.to_string(),
                cmd,
            })
            .is_ok(),
    };
    if !sent {
        return Err(RestError::NotFound(format!(
            "call {call_id:?} has just ended"
        )));
    }
    Ok(axum::Json(Accepted {
        result: "accepted",
        call: info,
    }))
}

async fn terminate(State(state): State<AppState>, body: Bytes) -> Reply<Accepted> {
    let r: CallRef = parse(&body)?;
    control(&state, &r.call_id, r.session_id.as_deref(), CallCmd::Hangup)
}

async fn hold(State(state): State<AppState>, body: Bytes) -> Reply<Accepted> {
    let r: CallRef = parse(&body)?;
    control(
        &state,
        &r.call_id,
        r.session_id.as_deref(),
        CallCmd::Hold(true),
    )
}

async fn unhold(State(state): State<AppState>, body: Bytes) -> Reply<Accepted> {
    let r: CallRef = parse(&body)?;
    control(
        &state,
        &r.call_id,
        r.session_id.as_deref(),
        CallCmd::Hold(false),
    )
}

async fn transfer(State(state): State<AppState>, body: Bytes) -> Reply<Accepted> {
    let r: Transfer = parse(&body)?;
    if r.target.is_empty() || r.target.len() > 256 || r.target.contains(char::is_whitespace) {
        return Err(RestError::BadRequest(
            "target: must be 1-256 characters without spaces (a sip: URI, user@host or user)"
                .into(),
        ));
    }
    let target = if r.target.starts_with("sip:") || r.target.starts_with("sips:") {
        r.target.clone()
    } else {
        format!("sip:{}", r.target)
    };
    control(
        &state,
        &r.call_id,
        r.session_id.as_deref(),
        CallCmd::Transfer(target),
    )
}

async fn send_dtmf(State(state): State<AppState>, body: Bytes) -> Reply<Accepted> {
    let r: SendDtmf = parse(&body)?;
    let cmd = r.command()?;
    control(&state, &r.call_id, r.session_id.as_deref(), cmd)
}

async fn find(State(state): State<AppState>, body: Bytes) -> Reply<Vec<CallInfo>> {
    let f: Find = parse(&body)?;
    let calls = state.registry.find(&f.clone().into());
    if calls.is_empty()
        && let Some(id) = f.call_id
    {
        return Err(RestError::NotFound(format!("no live call {id:?}")));
    }
    Ok(axum::Json(calls))
}

async fn find_all(State(state): State<AppState>, body: Bytes) -> Reply<Vec<CallInfo>> {
    let _: Empty = parse(&body)?;
    Ok(axum::Json(state.registry.find(&Default::default())))
}

async fn session_find_all(
    State(state): State<AppState>,
    body: Bytes,
) -> Reply<Vec<crate::registry::SessionInfo>> {
    let _: Empty = parse(&body)?;
    Ok(axum::Json(state.registry.sessions()))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionAccepted {
    result: &'static str,
    session_id: String,
}

async fn session_terminate(State(state): State<AppState>, body: Bytes) -> Reply<SessionAccepted> {
    let r: SessionRef = parse(&body)?;
    let ctl = state.registry.session_ctl(&r.session_id)?;
    if ctl
        .send(SessionCtl::Terminate("Terminated by REST request".into()))
        .is_err()
    {
        return Err(RestError::NotFound(format!(
            "session {:?} has just closed",
            r.session_id
        )));
    }
    Ok(axum::Json(SessionAccepted {
        result: "accepted",
        session_id: r.session_id,
    }))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    crate::http::refresh_shard_metrics(&state).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.registry.metrics().render(),
    )
}

/// Whether `headers` carry `key` (`X-Api-Key` or `Authorization: Bearer`).
pub fn key_matches(headers: &HeaderMap, key: &str) -> bool {
    let given = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        });
    given.is_some_and(|g| constant_time_eq(g.as_bytes(), key.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(auth): State<RestAuth>, req: Request, next: Next) -> Response {
    if let Some(key) = &auth.key
        && !key_matches(req.headers(), key)
    {
        let why = if req.headers().contains_key("x-api-key")
            || req.headers().contains_key(header::AUTHORIZATION)
        {
            "wrong API key"
        } else {
            "missing API key: send it as X-Api-Key or Authorization: Bearer"
        };
        return RestError::Unauthorized(why.into()).into_response();
    }
    next.run(req).await
}

async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let endpoint = req
        .uri()
        .path()
        .trim_start_matches("/rest-api/")
        .to_string();
    let resp = next.run(req).await;
    let endpoint = if ROUTES.contains(&endpoint.as_str()) {
        endpoint.as_str()
    } else {
        "other"
    };
    state
        .registry
        .metrics()
        .rest(endpoint, resp.status().as_u16());
    resp
}

const ROUTES: &[&str] = &types::ENDPOINTS;

/// The REST routes (and `/metrics`), behind the API key when `key` is set.
pub fn router(state: AppState, key: Option<String>) -> Router {
    let auth_state = RestAuth {
        key: key.map(Into::into),
    };
    let api = Router::new()
        .route("/rest-api/call/startup", post(startup))
        .route("/rest-api/call/terminate", post(terminate))
        .route("/rest-api/call/hold", post(hold))
        .route("/rest-api/call/unhold", post(unhold))
        .route("/rest-api/call/transfer", post(transfer))
        .route("/rest-api/call/send_dtmf", post(send_dtmf))
        .route("/rest-api/call/find", post(find))
        .route("/rest-api/call/find_all", post(find_all))
        .route("/rest-api/session/find_all", post(session_find_all))
        .route("/rest-api/session/terminate", post(session_terminate))
        .route_layer(middleware::from_fn_with_state(state.clone(), count))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(auth_state, auth))
        .with_state(state);
    Router::new()
        .route("/rest-api/openapi.json", get(openapi))
        .merge(api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_compare() {
        let mut h = HeaderMap::new();
        assert!(!key_matches(&h, "k1"));
        h.insert("x-api-key", "k1".parse().unwrap());
        assert!(key_matches(&h, "k1"));
        assert!(!key_matches(&h, "k2"));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(key_matches(&h, "s3cret"));
        assert!(!key_matches(&h, "s3cre"));
    }

    #[test]
    fn openapi_names_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        for r in ROUTES {
            assert!(
                doc["paths"][format!("/rest-api/{r}")]["post"].is_object(),
                "{r} missing from docs/openapi.json"
            );
        }
    }

    #[test]
    fn errors_carry_status_and_reason() {
        let r = RestError::Conflict("x".into()).into_response();
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let r = RestError::from(LookupError::Unknown {
            what: "call",
            id: "c".into(),
        })
        .into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
