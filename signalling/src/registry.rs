//! The registry of live sessions and calls, shared by the WebSocket API and the REST API.
//!
//! A WebSocket session registers itself when it opens and reports what it tells its page
//! (session and call statuses); server-side calls started through REST register themselves the
//! same way. REST reads the registry to answer `find` requests and routes control requests
//! through it: a page's call is controlled through its session's task (which owns the call),
//! a server-side call through its own task's command channel. The registry owns no call.
//!
//! Invariants: a call is listed from its creation until its final state (BUSY, FINISH, FAILED)
//! or the end of its session, then it is gone; call ids are unique among server-side calls,
//! and a page's call id is unique within its session (two pages may both use `call1`; REST then
//! needs the session id to tell them apart). Status changes are counted in [`Metrics`] and
//! published on a broadcast channel (the REST hooks' `call_status` feed); a slow subscriber
//! loses events, never blocks a call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::metrics::Metrics;

/// What REST asks of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallCmd {
    /// CANCEL or BYE.
    Hangup,
    /// Hold (true) or resume (false).
    Hold(bool),
    /// DTMF digits, as RFC 4733 events (`info: false`) or SIP INFO.
    Dtmf {
        /// 1-32 of `0-9 * # A-D`.
        digits: String,
        /// INFO rather than RFC 4733.
        info: bool,
    },
    /// Blind transfer (REFER) of the far end to this target.
    Transfer(String),
}

/// What REST asks of a WebSocket session.
#[derive(Debug)]
pub enum SessionCtl {
    /// Close the session (its calls are ended) with this cause.
    Terminate(String),
    /// Ask the page to place a call to `callee` with this call id (REST `call/startup`); the
    /// reply says whether the session took it (it must be connected).
    Startup {
        /// The call id the page is to use.
        call_id: String,
        /// Who to call.
        callee: String,
        /// Taken, or why not.
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    /// Apply a command to one of its calls.
    Call {
        /// The page's call id.
        call_id: String,
        /// The command.
        cmd: CallCmd,
    },
}

/// Which way a call goes, seen from Wavegate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallDirection {
    /// We sent the INVITE.
    Outgoing,
    /// We received it.
    Incoming,
}

/// Who owns the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallKind {
    /// A WebSocket session's call (media to its page).
    Page,
    /// Started through REST from an account in the request, no page.
    Server,
}

/// A call as `find` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallInfo {
    /// The call id (chosen by the page or the REST client, or by the server).
    pub call_id: String,
    /// The session owning the call (page calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Page or server-side.
    pub kind: CallKind,
    /// Outgoing or incoming.
    pub direction: CallDirection,
    /// The calling party (login or From).
    pub caller: String,
    /// The called party.
    pub callee: String,
    /// The latest status (PENDING, RING, ESTABLISHED, HOLD, …).
    pub status: String,
    /// Its cause.
    pub cause: String,
    /// Server-side click-to-call: the second callee bridged to the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridged_to: Option<String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created: u64,
}

/// A session as `session/find_all` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// The session id.
    pub session_id: String,
    /// The SIP login, once connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// NEW, ESTABLISHED, REGISTERED, UNREGISTERED, FAILED.
    pub status: String,
    /// Its cause.
    pub cause: String,
    /// Live calls of the session.
    pub calls: usize,
    /// Creation time, milliseconds since the Unix epoch.
    pub created: u64,
}

/// A status change, as the hooks see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallEvent {
    /// The call after the change.
    #[serde(flatten)]
    pub call: CallInfo,
    /// Whether this was its final status.
    pub terminal: bool,
    /// Whether the call was just created (its first event).
    pub first: bool,
}

/// How a call is reached.
#[derive(Debug, Clone)]
pub enum CallRoute {
    /// Through its session's task.
    Session(mpsc::UnboundedSender<SessionCtl>),
    /// Through its own task.
    Direct(mpsc::UnboundedSender<CallCmd>),
}

/// Why a lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No live call or session with this id.
    #[error("no live {what} {id:?}")]
    Unknown {
        /// "call" or "session".
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// Several sessions have a call with this id.
    #[error("call id {0:?} is used by several sessions: give sessionId")]
    Ambiguous(String),
    /// A server-side call with this id exists.
    #[error("call id {0:?} is already in use")]
    Duplicate(String),
}

struct CallEntry {
    info: CallInfo,
    route: CallRoute,
}

struct SessionEntry {
    info: SessionInfo,
    ctl: mpsc::UnboundedSender<SessionCtl>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, SessionEntry>,
    /// Keyed by (session id or "", call id).
    calls: HashMap<(String, String), CallEntry>,
}

/// The shared registry; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<CallEvent>,
    metrics: Metrics,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn is_final(status: &str) -> bool {
    matches!(status, "BUSY" | "FINISH" | "FAILED")
}

/// A call-finding filter (each given field must match).
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    /// Exact call id.
    pub call_id: Option<String>,
    /// Exact session id.
    pub session_id: Option<String>,
    /// Substring of the caller.
    pub caller: Option<String>,
    /// Substring of the callee.
    pub callee: Option<String>,
    /// Exact status (case-insensitive).
    pub status: Option<String>,
}

impl CallFilter {
    fn matches(&self, c: &CallInfo) -> bool {
        self.call_id.as_ref().is_none_or(|id| *id == c.call_id)
            && self
                .session_id
                .as_ref()
                .is_none_or(|s| Some(s) == c.session_id.as_ref())
            && self
                .caller
                .as_ref()
                .is_none_or(|s| c.caller.contains(s.as_str()))
            && self
                .callee
                .as_ref()
                .is_none_or(|s| c.callee.contains(s.as_str()))
            && self
                .status
                .as_ref()
                .is_none_or(|s| s.eq_ignore_ascii_case(&c.status))
    }
}

impl Registry {
    /// An empty registry counting into `metrics`.
    pub fn new(metrics: Metrics) -> Registry {
        Registry {
            inner: Arc::new(Mutex::new(Inner::default())),
            events: broadcast::channel(1024).0,
            metrics,
        }
    }

    /// The metrics this registry counts into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Status changes of every call (for the hooks).
    pub fn subscribe(&self) -> broadcast::Receiver<CallEvent> {
        self.events.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- sessions ----

    /// A WebSocket session opened; REST reaches it through the returned receiver.
    pub fn open_session(&self, id: &str) -> mpsc::UnboundedReceiver<SessionCtl> {
        let (ctl, rx) = mpsc::unbounded_channel();
        let info = SessionInfo {
            session_id: id.to_string(),
            login: None,
            status: "NEW".into(),
            cause: "Opened".into(),
            calls: 0,
            created: now_ms(),
        };
        self.lock()
            .sessions
            .insert(id.to_string(), SessionEntry { info, ctl });
        self.metrics.sessions_opened();
        rx
    }

    /// The session connected with this SIP login.
    pub fn session_login(&self, id: &str, login: &str) {
        if let Some(s) = self.lock().sessions.get_mut(id) {
            s.info.login = Some(login.to_string());
        }
    }

    /// The session told its page this status.
    pub fn session_status(&self, id: &str, status: &str, cause: &str) {
        let old = {
            let mut inner = self.lock();
            let Some(s) = inner.sessions.get_mut(id) else {
                return;
            };
            let old = std::mem::replace(&mut s.info.status, status.to_string());
            s.info.cause = cause.to_string();
            old
        };
        self.metrics.session_status(&old, status);
    }

    /// The session closed: it and its calls are gone.
    pub fn close_session(&self, id: &str) {
        let (session, calls) = {
            let mut inner = self.lock();
            let session = inner.sessions.remove(id);
            let keys: Vec<_> = inner
                .calls
                .keys()
                .filter(|(s, _)| s == id)
                .cloned()
                .collect();
            let calls: Vec<CallEntry> = keys.iter().filter_map(|k| inner.calls.remove(k)).collect();
            (session, calls)
        };
        if let Some(s) = session {
            self.metrics.session_status(&s.info.status, "CLOSED");
            self.metrics.sessions_closed();
        }
        for mut c in calls {
            let old = std::mem::replace(&mut c.info.status, "FINISH".into());
            c.info.cause = "Session closed".into();
            self.metrics
                .call_status(&old, &c.info.status, &c.info.cause);
            let _ = self.events.send(CallEvent {
                call: c.info,
                terminal: true,
                first: false,
            });
        }
    }

    /// The live sessions.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let inner = self.lock();
        let mut out: Vec<SessionInfo> = inner
            .sessions
            .values()
            .map(|s| {
                let mut info = s.info.clone();
                info.calls = inner
                    .calls
                    .keys()
                    .filter(|(sid, _)| *sid == s.info.session_id)
                    .count();
                info
            })
            .collect();
        out.sort_by(|a, b| (a.created, &a.session_id).cmp(&(b.created, &b.session_id)));
        out
    }

    /// The control channel of a live session.
    pub fn session_ctl(&self, id: &str) -> Result<mpsc::UnboundedSender<SessionCtl>, LookupError> {
        self.lock()
            .sessions
            .get(id)
            .map(|s| s.ctl.clone())
            .ok_or_else(|| LookupError::Unknown {
                what: "session",
                id: id.to_string(),
            })
    }

    // ---- calls ----

    /// A page's call was created (before its first status).
    pub fn page_call(
        &self,
        session: &str,
        call_id: &str,
        direction: CallDirection,
        caller: &str,
        callee: &str,
    ) {
        let info = CallInfo {
            call_id: call_id.to_string(),
            session_id: Some(session.to_string()),
            kind: CallKind::Page,
            direction,
            caller: caller.to_string(),
            callee: callee.to_string(),
            status: "NEW".into(),
            cause: "New call".into(),
            bridged_to: None,
            created: now_ms(),
        };
        let mut inner = self.lock();
        let Some(ctl) = inner.sessions.get(session).map(|s| s.ctl.clone()) else {
            return;
        };
        let key = (session.to_string(), call_id.to_string());
        if inner.calls.contains_key(&key) {
            return;
        }
        inner.calls.insert(
            key,
            CallEntry {
                info: info.clone(),
                route: CallRoute::Session(ctl),
            },
        );
        drop(inner);
        self.metrics.call_created(direction);
        let _ = self.events.send(CallEvent {
            call: info,
            terminal: false,
            first: true,
        });
    }

    /// A server-side call; refused if its id is taken by another server-side call.
    pub fn server_call(
        &self,
        info: CallInfo,
        commands: mpsc::UnboundedSender<CallCmd>,
    ) -> Result<(), LookupError> {
        let key = (String::new(), info.call_id.clone());
        let direction = info.direction;
        {
            let mut inner = self.lock();
            if inner.calls.contains_key(&key) {
                return Err(LookupError::Duplicate(info.call_id));
            }
            inner.calls.insert(
                key,
                CallEntry {
                    info: info.clone(),
                    route: CallRoute::Direct(commands),
                },
            );
        }
        self.metrics.call_created(direction);
        let _ = self.events.send(CallEvent {
            call: info,
            terminal: false,
            first: true,
        });
        Ok(())
    }

    /// Whether a server-side call has this id.
    pub fn server_call_exists(&self, call_id: &str) -> bool {
        self.lock()
            .calls
            .contains_key(&(String::new(), call_id.to_string()))
    }

    /// A call's new status (`session` None for server-side calls). A final status removes it.
    pub fn call_status(&self, session: Option<&str>, call_id: &str, status: &str, cause: &str) {
        let key = (session.unwrap_or("").to_string(), call_id.to_string());
        let terminal = is_final(status);
        let (old, info) = {
            let mut inner = self.lock();
            let Some(entry) = inner.calls.get_mut(&key) else {
                return;
            };
            let old = std::mem::replace(&mut entry.info.status, status.to_string());
            entry.info.cause = cause.to_string();
            let info = entry.info.clone();
            if terminal {
                inner.calls.remove(&key);
            }
            (old, info)
        };
        self.metrics.call_status(&old, status, cause);
        let _ = self.events.send(CallEvent {
            call: info,
            terminal,
            first: false,
        });
    }

    /// Live calls matching `filter`, oldest first.
    pub fn find(&self, filter: &CallFilter) -> Vec<CallInfo> {
        let mut out: Vec<CallInfo> = self
            .lock()
            .calls
            .values()
            .map(|c| c.info.clone())
            .filter(|c| filter.matches(c))
            .collect();
        out.sort_by(|a, b| (a.created, &a.call_id).cmp(&(b.created, &b.call_id)));
        out
    }

    /// The one live call with this id (in this session, if given) and how to reach it.
    pub fn route(
        &self,
        call_id: &str,
        session: Option<&str>,
    ) -> Result<(CallInfo, CallRoute), LookupError> {
        let inner = self.lock();
        let mut found = inner
            .calls
            .iter()
            .filter(|((s, c), _)| c == call_id && session.is_none_or(|want| want == s.as_str()));
        let Some((_, first)) = found.next() else {
            return Err(LookupError::Unknown {
                what: "call",
                id: call_id.to_string(),
            });
        };
        if found.next().is_some() {
            return Err(LookupError::Ambiguous(call_id.to_string()));
        }
        Ok((first.info.clone(), first.route.clone()))
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
