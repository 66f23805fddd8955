//! Registration state machine (RFC 3261 §10), sans-IO: it decides what REGISTER to send next
//! (expiry, credentials) from the final responses and the clock it is given, and reports typed
//! [`RegEvent`]s. Invariants: at most one REGISTER exchange is outstanding (the driver feeds each
//! final response back before asking for the next); credentials are answered at most
//! [`MAX_CHALLENGES`] times per exchange; a challenge that follows an answer computed from a
//! fresh challenge and is not `stale=true` means the credentials are wrong, which is reported and
//! never retried (retrying would only lock the account); transient failures (timeouts, 5xx)
//! retry after a growing back-off. Refreshes answer pre-emptively with the last challenge and
//! the next nonce count, so a steady state costs one round trip.

use std::time::{Duration, Instant};

use thiserror::Error;

use super::digest::{AuthHeader, Challenge, DigestError, DigestSession};

/// Challenge answers per REGISTER exchange before giving up.
pub const MAX_CHALLENGES: u8 = 3;
/// Largest back-off between failed attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// First back-off after a transient failure.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(5);

/// Why registration failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegisterError {
    /// The registrar refused our answer to its challenge: wrong authentication name or password.
    #[error(
        "registrar rejected the credentials ({status}): check authentication name and password"
    )]
    WrongCredentials {
        /// 401 or 407.
        status: u16,
    },
    /// The challenge cannot be answered.
    #[error("cannot answer the registrar's challenge: {0}")]
    Challenge(#[from] DigestError),
    /// Too many challenges in one exchange.
    #[error("registrar kept challenging ({MAX_CHALLENGES} answers sent)")]
    TooManyChallenges,
    /// 423 without a usable Min-Expires.
    #[error("registrar says the interval is too brief (423) but gives no larger Min-Expires")]
    IntervalTooBrief,
    /// A final failure response.
    #[error("registrar answered {status} {reason}")]
    Rejected {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
    /// No final response in time.
    #[error("no final response from the registrar (timeout)")]
    Timeout,
    /// The request could not be sent.
    #[error("transport: {0}")]
    Transport(String),
}

impl RegisterError {
    /// Whether retrying later may help (network, overload), as opposed to a configuration error.
    pub fn is_transient(&self) -> bool {
        match self {
            RegisterError::Timeout | RegisterError::Transport(_) => true,
            RegisterError::Rejected { status, .. } => {
                *status >= 500 || *status == 408 || *status == 480
            }
            _ => false,
        }
    }
}

/// What registration reports to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegEvent {
    /// 200 OK: registered for `expires`; the refresh goes out after `refresh_in`.
    Registered {
        /// Lifetime granted by the registrar.
        expires: Duration,
        /// When the refresh is scheduled, from the response.
        refresh_in: Duration,
    },
    /// The un-REGISTER (expires 0) was accepted.
    Unregistered,
    /// Registration failed; `retry_in` is set when a retry is scheduled.
    Failed {
        /// What went wrong.
        error: RegisterError,
        /// Delay before the automatic retry, if any.
        retry_in: Option<Duration>,
    },
}

/// A final response, reduced to what registration needs (parsed by the driver).
#[derive(Debug, Clone, Default)]
pub struct FinalResponse<'a> {
    /// Status code (>= 200).
    pub status: u16,
    /// Reason phrase.
    pub reason: &'a str,
    /// `WWW-Authenticate` values.
    pub www_authenticate: Vec<&'a str>,
    /// `Proxy-Authenticate` values.
    pub proxy_authenticate: Vec<&'a str>,
    /// Lifetime granted for our binding (Contact `expires` or `Expires`), if stated.
    pub granted: Option<u32>,
    /// `Min-Expires`, on a 423.
    pub min_expires: Option<u32>,
}

/// The REGISTER to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    /// Requested lifetime in seconds (0: un-REGISTER).
    pub expires: u32,
    /// The credentials header, if any.
    pub authorization: Option<(AuthHeader, String)>,
}

/// The core's answer to an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this REGISTER (a new transaction, next CSeq).
    Send(RegisterRequest),
    /// Report this; nothing to send until [`RegisterCore::deadline`].
    Report(RegEvent),
    /// Nothing to do.
    Idle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing outstanding, nothing scheduled.
    Idle,
    /// A REGISTER exchange is outstanding.
    Registering { unregister: bool },
    /// Registered; refresh at the instant.
    Registered { refresh_at: Instant },
    /// Failed; retry at the instant, if any.
    Failed { retry_at: Option<Instant> },
    /// Unregistered; the machine is finished.
    Done,
}

/// The registration state machine of one account.
#[derive(Debug)]
pub struct RegisterCore {
    username: String,
    password: String,
    request_uri: String,
    requested: u32,
    auth: Option<DigestSession>,
    phase: Phase,
    /// Whether the registrar may hold a binding of ours (a 200 to a REGISTER, no 200 to an
    /// un-REGISTER since): then ending the session must un-REGISTER even after a failed refresh.
    bound: bool,
    /// Challenges answered in the current exchange.
    answers: u8,
    /// Whether the credentials just sent came from a challenge of this exchange.
    answered_fresh: bool,
    backoff: Duration,
}

impl RegisterCore {
    /// A machine for `username`/`password` (digest), REGISTER Request-URI `request_uri`,
    /// asking for `expires` seconds.
    pub fn new(username: &str, password: &str, request_uri: &str, expires: u32) -> RegisterCore {
        RegisterCore {
            username: username.to_owned(),
            password: password.to_owned(),
            request_uri: request_uri.to_owned(),
            requested: expires.max(1),
            auth: None,
            phase: Phase::Idle,
            bound: false,
            answers: 0,
            answered_fresh: false,
            backoff: FIRST_BACKOFF,
        }
    }

    /// Whether the machine is registered now.
    pub fn is_registered(&self) -> bool {
        matches!(self.phase, Phase::Registered { .. })
    }

    /// Whether the machine has finished (unregistered).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The lifetime currently requested (raised by 423 Min-Expires).
    pub fn requested_expires(&self) -> u32 {
        self.requested
    }

    /// Starts (or restarts) registering.
    pub fn register(&mut self, cnonce: &str) -> Step {
        self.begin(false, cnonce)
    }

    /// Starts the un-REGISTER (expires 0), unless nothing is registered.
    pub fn unregister(&mut self, cnonce: &str) -> Step {
        match self.phase {
            Phase::Done | Phase::Registering { unregister: true } => {
                self.phase = Phase::Done;
                Step::Report(RegEvent::Unregistered)
            }
            _ if self.bound => self.begin(true, cnonce),
            _ => {
                self.phase = Phase::Done;
                Step::Report(RegEvent::Unregistered)
            }
        }
    }

    /// When [`RegisterCore::on_deadline`] should be called next, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Registered { refresh_at } => Some(refresh_at),
            Phase::Failed { retry_at } => retry_at,
            _ => None,
        }
    }

    /// Time has reached the deadline: refresh or retry.
    pub fn on_deadline(&mut self, now: Instant, cnonce: &str) -> Step {
        match self.deadline() {
            Some(at) if now >= at => self.begin(false, cnonce),
            _ => Step::Idle,
        }
    }

    fn begin(&mut self, unregister: bool, cnonce: &str) -> Step {
        self.phase = Phase::Registering { unregister };
        self.answers = 0;
        self.answered_fresh = false;
        let authorization = self.auth.as_mut().map(|a| {
            let value = a.authorize(
                "REGISTER",
                &self.request_uri,
                &self.username,
                &self.password,
                cnonce,
            );
            (a.header, value)
        });
        Step::Send(RegisterRequest {
            expires: if unregister { 0 } else { self.requested },
            authorization,
        })
    }

    fn unregistering(&self) -> bool {
        matches!(self.phase, Phase::Registering { unregister: true })
    }

    /// A final response to the outstanding REGISTER.
    pub fn on_response(&mut self, now: Instant, resp: &FinalResponse<'_>, cnonce: &str) -> Step {
        let Phase::Registering { unregister } = self.phase else {
            return Step::Idle;
        };
        match resp.status {
            200..=299 if unregister => {
                self.bound = false;
                self.phase = Phase::Done;
                Step::Report(RegEvent::Unregistered)
            }
            200..=299 => {
                let granted = resp.granted.unwrap_or(self.requested);
                if granted == 0 {
                    return self.fail(
                        now,
                        RegisterError::Rejected {
                            status: resp.status,
                            reason: "binding granted for 0 s".into(),
                        },
                    );
                }
                let expires = Duration::from_secs(u64::from(granted));
                // Refresh with a margin: a minute for long bindings, half the time for short ones.
                let refresh_in = expires.saturating_sub(Duration::from_secs(60).min(expires / 2));
                self.phase = Phase::Registered {
                    refresh_at: now + refresh_in,
                };
                self.bound = true;
                self.backoff = FIRST_BACKOFF;
                Step::Report(RegEvent::Registered {
                    expires,
                    refresh_in,
                })
            }
            401 | 407 => self.on_challenge(now, resp, cnonce),
            423 => match resp.min_expires {
                Some(min) if min > self.requested && !unregister => {
                    self.requested = min;
                    self.resend(cnonce)
                }
                _ => self.fail(now, RegisterError::IntervalTooBrief),
            },
            status => self.fail(
                now,
                RegisterError::Rejected {
                    status,
                    reason: resp.reason.to_owned(),
                },
            ),
        }
    }

    fn on_challenge(&mut self, now: Instant, resp: &FinalResponse<'_>, cnonce: &str) -> Step {
        let (values, header) = if resp.status == 407 {
            (&resp.proxy_authenticate, AuthHeader::ProxyAuthorization)
        } else {
            (&resp.www_authenticate, AuthHeader::Authorization)
        };
        let challenge = match Challenge::choose(values.iter().copied()) {
            Ok(c) => c,
            Err(e) => return self.fail(now, e.into()),
        };
        if self.answered_fresh && !challenge.stale {
            self.auth = None;
            return self.fail(
                now,
                RegisterError::WrongCredentials {
                    status: resp.status,
                },
            );
        }
        if self.answers >= MAX_CHALLENGES {
            return self.fail(now, RegisterError::TooManyChallenges);
        }
        self.answers += 1;
        self.answered_fresh = true;
        self.auth = Some(DigestSession::new(challenge, header));
        self.resend(cnonce)
    }

    /// Sends the exchange's next REGISTER with the current credentials.
    fn resend(&mut self, cnonce: &str) -> Step {
        let expires = if self.unregistering() {
            0
        } else {
            self.requested
        };
        let authorization = self.auth.as_mut().map(|a| {
            (
                a.header,
                a.authorize(
                    "REGISTER",
                    &self.request_uri,
                    &self.username,
                    &self.password,
                    cnonce,
                ),
            )
        });
        Step::Send(RegisterRequest {
            expires,
            authorization,
        })
    }

    /// The outstanding REGISTER got no final response in time.
    pub fn on_timeout(&mut self, now: Instant) -> Step {
        match self.phase {
            Phase::Registering { .. } => self.fail(now, RegisterError::Timeout),
            _ => Step::Idle,
        }
    }

    /// The outstanding REGISTER could not be sent.
    pub fn on_send_error(&mut self, now: Instant, why: String) -> Step {
        match self.phase {
            Phase::Registering { .. } => self.fail(now, RegisterError::Transport(why)),
            _ => Step::Idle,
        }
    }

    fn fail(&mut self, now: Instant, error: RegisterError) -> Step {
        if self.unregistering() {
            // The session is ending: report once and stop; the binding expires on its own.
            self.phase = Phase::Done;
            return Step::Report(RegEvent::Failed {
                error,
                retry_in: None,
            });
        }
        let retry_in = error.is_transient().then_some(self.backoff);
        if retry_in.is_some() {
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
        self.phase = Phase::Failed {
            retry_at: retry_in.map(|d| now + d),
        };
        Step::Report(RegEvent::Failed { error, retry_in })
    }

    /// Whether the current phase is a pending failure with no retry (the machine is stuck).
    pub fn is_failed(&self) -> bool {
        matches!(self.phase, Phase::Failed { retry_at: None })
    }

    /// Back to idle without a network exchange (used when the driver stops).
    pub fn reset(&mut self) {
        self.phase = Phase::Idle;
    }
}

#[cfg(test)]
#[path = "register_tests.rs"]
mod tests;
