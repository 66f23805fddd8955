//! One simulated browser's call through Janus' SIP plugin, over Janus' WebSocket transport:
//! create a session, attach `janus.plugin.sip`, register as a guest (no REGISTER sent),
//! `call` the target with the str0m browser's offer, apply Janus' answer from the `accepted`
//! event, hold while the browser thread sends probes, hang up and destroy the session.
//!
//! The same shape as the `call` scenario's WebSocket-API call (setup time is `call` sent ->
//! answer with the callee's acceptance; media is measured by the shared browser threads), so
//! the two gateways are compared on the same work. Every wait has a deadline; the session is
//! kept alive with a `keepalive` every [`KEEPALIVE`] while a call holds.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use str0m::config::DtlsCert;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wavegate_shared::clock::monotonic_ns;

use crate::browser::{AudioCodec, Browser};
use crate::call::{CallOutcome, Cmd, Counters, DRAIN};
use crate::janus_api::{self, Reply, SipEvent};

/// Interval of session keepalives (Janus' session timeout is set to 60 s in our config).
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// What every call of a run shares.
#[derive(Debug, Clone)]
pub struct JanusCallPlan {
    /// Janus' WebSocket port on 127.0.0.1.
    pub ws_port: u16,
    /// Request URI of every call (the SIP target).
    pub uri: String,
    /// Domain of each browser's SIP identity (`sip:load<i>@<domain>`).
    pub domain: String,
    /// Address of the browsers' sockets (beside Janus' ICE address).
    pub browser_ip: std::net::Ipv4Addr,
    /// Seconds each call sends media once accepted.
    pub hold_secs: u32,
    /// Deadline of each answer from Janus.
    pub step_timeout: Duration,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A Janus session on one WebSocket.
struct Conn {
    ws: Ws,
    session: u64,
    handle: u64,
    tx: u32,
    /// Events that arrived while [`Conn::request`] waited for its own reply: Janus' plugin
    /// thread can push an event (e.g. `hangup` after the BYE's 200) before the core sends the
    /// request's `ack`, so they are kept for the next [`Conn::event`] rather than dropped.
    held: VecDeque<Reply>,
}

/// Bound on [`Conn::held`]; Janus sends a handful of events per request.
const HELD_MAX: usize = 64;

impl Conn {
    fn next_tx(&mut self) -> String {
        self.tx += 1;
        format!("t{}", self.tx)
    }

    async fn send(&mut self, text: String) -> Result<(), String> {
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| format!("WebSocket send: {e}"))
    }

    /// The next message from Janus before `until`.
    async fn next(&mut self, until: tokio::time::Instant) -> Result<Reply, String> {
        // Bounded by the deadline and by a frame count (pings and binary frames are skipped).
        for _ in 0..1000 {
            let msg = match tokio::time::timeout_at(until, self.ws.next()).await {
                Err(_) => return Err("timeout".into()),
                Ok(None) => return Err("WebSocket closed".into()),
                Ok(Some(Err(e))) => return Err(format!("WebSocket: {e}")),
                Ok(Some(Ok(m))) => m,
            };
            let Message::Text(text) = msg else { continue };
            return janus_api::parse(&text).map_err(|e| format!("from Janus: {e}"));
        }
        Err("too many frames".into())
    }

    /// Sends `request` (built with transaction `tx`) and waits for its `success` or `ack`;
    /// an `error`, or a plugin error event for it, fails. Returns the `success` id.
    async fn request(
        &mut self,
        request: String,
        tx: &str,
        limit: Duration,
    ) -> Result<Option<u64>, String> {
        self.send(request).await?;
        let until = tokio::time::Instant::now() + limit;
        for _ in 0..100 {
            match self.next(until).await? {
                Reply::Success { transaction, id } if transaction == tx => return Ok(id),
                Reply::Ack { transaction } if transaction == tx => return Ok(None),
                Reply::Error { code, reason, .. } => return Err(format!("error {code}: {reason}")),
                Reply::Event {
                    sip: SipEvent::Error { code, reason },
                    ..
                } => return Err(format!("SIP plugin error {code}: {reason}")),
                r @ (Reply::Event { .. } | Reply::PeerHangup { .. } | Reply::Timeout) => {
                    if self.held.len() < HELD_MAX {
                        self.held.push_back(r);
                    }
                }
                _ => {}
            }
        }
        Err("too many messages".into())
    }

    /// Waits for a SIP plugin result event for which `want` returns Some; a plugin error, a
    /// core error, a closed PeerConnection or a session timeout fails.
    async fn event<T>(
        &mut self,
        limit: Duration,
        mut want: impl FnMut(
            &str,
            Option<u16>,
            Option<&str>,
            Option<String>,
        ) -> Option<Result<T, String>>,
    ) -> Result<T, String> {
        let until = tokio::time::Instant::now() + limit;
        for _ in 0..200 {
            let reply = match self.held.pop_front() {
                Some(r) => r,
                None => self.next(until).await?,
            };
            match reply {
                Reply::Event {
                    sip:
                        SipEvent::Result {
                            event,
                            code,
                            reason,
                        },
                    answer,
                    ..
                } => {
                    if let Some(r) = want(&event, code, reason.as_deref(), answer) {
                        return r;
                    }
                }
                Reply::Event {
                    sip: SipEvent::Error { code, reason },
                    ..
                } => return Err(format!("SIP plugin error {code}: {reason}")),
                Reply::Error { code, reason, .. } => return Err(format!("error {code}: {reason}")),
                Reply::PeerHangup { reason } => {
                    return Err(format!("PeerConnection closed: {reason}"));
                }
                Reply::Timeout => return Err("session timed out".into()),
                _ => {}
            }
        }
        Err("too many messages".into())
    }
}

fn sip_hangup(code: Option<u16>, reason: Option<&str>) -> String {
    format!(
        "SIP hangup {} {}",
        code.map(|c| c.to_string()).unwrap_or_default(),
        reason.unwrap_or("")
    )
}

async fn open(plan: &JanusCallPlan) -> Result<Conn, String> {
    let url = format!("ws://127.0.0.1:{}/", plan.ws_port);
    let mut req = url
        .into_client_request()
        .map_err(|e| format!("request: {e}"))?;
    // Janus' WebSocket transport speaks only its own subprotocol.
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("janus-protocol"),
    );
    let ws = match tokio::time::timeout(plan.step_timeout, tokio_tungstenite::connect_async(req))
        .await
    {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return Err(format!("WebSocket connect: {e}")),
        Err(_) => return Err("WebSocket connect: timeout".into()),
    };
    let mut c = Conn {
        ws,
        session: 0,
        handle: 0,
        tx: 0,
        held: VecDeque::new(),
    };
    let tx = c.next_tx();
    c.session = c
        .request(janus_api::create(&tx), &tx, plan.step_timeout)
        .await
        .map_err(|e| format!("create: {e}"))?
        .ok_or("create: no session id")?;
    let tx = c.next_tx();
    c.handle = c
        .request(janus_api::attach(c.session, &tx), &tx, plan.step_timeout)
        .await
        .map_err(|e| format!("attach: {e}"))?
        .ok_or("attach: no handle id")?;
    Ok(c)
}

/// One call, start to end. Media figures come from the browser thread.
#[allow(clippy::too_many_arguments)]
pub async fn one_call(
    index: u32,
    codec: AudioCodec,
    plan: Arc<JanusCallPlan>,
    cert: DtlsCert,
    start: Instant,
    tx: mpsc::Sender<Cmd>,
    counters: Arc<Counters>,
) -> CallOutcome {
    let mut out = CallOutcome::default();
    let mut c = match open(&plan).await {
        Ok(c) => c,
        Err(e) => {
            out.failure = Some(e);
            return out;
        }
    };
    if let Err(e) = call_on(
        &mut c, index, codec, &plan, cert, start, &tx, &counters, &mut out,
    )
    .await
    {
        out.failure = Some(e);
    }
    // Destroy the session whatever happened (Janus frees the handle and any call with it).
    let t = c.next_tx();
    let _ = c
        .request(janus_api::destroy(c.session, &t), &t, plan.step_timeout)
        .await;
    let _ = c.ws.close(None).await;
    out
}

#[allow(clippy::too_many_arguments)]
async fn call_on(
    c: &mut Conn,
    index: u32,
    codec: AudioCodec,
    plan: &JanusCallPlan,
    cert: DtlsCert,
    start: Instant,
    tx: &mpsc::Sender<Cmd>,
    counters: &Counters,
    out: &mut CallOutcome,
) -> Result<(), String> {
    let user = format!("sip:load{index}@{}", plan.domain);
    let t = c.next_tx();
    let reg = janus_api::register_guest(c.session, c.handle, &t, &user);
    c.request(reg, &t, plan.step_timeout)
        .await
        .map_err(|e| format!("register: {e}"))?;
    c.event(plan.step_timeout, |event, code, reason, _| match event {
        "registered" => Some(Ok(())),
        "registration_failed" => Some(Err(format!(
            "registration failed: {} {}",
            code.unwrap_or(0),
            reason.unwrap_or("")
        ))),
        _ => None,
    })
    .await
    .map_err(|e| format!("register: {e}"))?;

    let (mut browser, offer, pending) =
        Browser::new_on(plan.browser_ip, index, &cert, start, codec)
            .map_err(|e| format!("browser: {e}"))?;
    let t = c.next_tx();
    let call = janus_api::call(c.session, c.handle, &t, &plan.uri, &offer);
    let call_sent = monotonic_ns();
    counters.placed.fetch_add(1, Ordering::Relaxed);
    c.request(call, &t, plan.step_timeout)
        .await
        .map_err(|e| format!("call: {e}"))?;
    let answer = c
        .event(
            plan.step_timeout,
            |event, code, reason, answer| match event {
                "accepted" => {
                    Some(answer.ok_or_else(|| "accepted without an answer SDP".to_owned()))
                }
                "hangup" => Some(Err(sip_hangup(code, reason))),
                _ => None,
            },
        )
        .await
        .map_err(|e| {
            if e == "timeout" {
                "timeout waiting for accepted".to_owned()
            } else {
                format!("call: {e}")
            }
        })?;
    browser
        .accept_answer(pending, &answer)
        .map_err(|e| format!("answer refused by the browser: {e}"))?;
    tx.send(Cmd::Add(Box::new(browser), codec, call_sent))
        .map_err(|_| "browser thread gone".to_owned())?;
    out.setup_us = Some(monotonic_ns().saturating_sub(call_sent) / 1000);
    counters.established.fetch_add(1, Ordering::Relaxed);
    counters.active.fetch_add(1, Ordering::Relaxed);
    let _ = tx.send(Cmd::Start(index));

    // Hold, with keepalives; Janus or the callee may end the call early.
    let hold_end = tokio::time::Instant::now() + Duration::from_secs(u64::from(plan.hold_secs));
    let mut early = None;
    // Bounded: one turn per keepalive interval.
    for _ in 0..=(plan.hold_secs as u64 / KEEPALIVE.as_secs().max(1) + 1) {
        let now = tokio::time::Instant::now();
        if now >= hold_end {
            break;
        }
        let slice = (hold_end - now).min(KEEPALIVE);
        let got = c
            .event(slice, |event, code, reason, _| {
                (event == "hangup").then(|| Err::<(), _>(sip_hangup(code, reason)))
            })
            .await;
        match got {
            Err(e) if e == "timeout" => {}
            Err(e) => {
                early = Some(e);
                break;
            }
            Ok(()) => {}
        }
        if tokio::time::Instant::now() < hold_end {
            let t = c.next_tx();
            c.send(janus_api::keepalive(c.session, &t)).await?;
        }
    }
    let _ = tx.send(Cmd::Stop(index));
    tokio::time::sleep(DRAIN).await;
    let _ = tx.send(Cmd::Remove(index));
    counters.active.fetch_sub(1, Ordering::Relaxed);
    if let Some(e) = early {
        return Err(format!("ended during the hold: {e}"));
    }
    let t = c.next_tx();
    c.request(
        janus_api::hangup(c.session, c.handle, &t),
        &t,
        plan.step_timeout,
    )
    .await
    .map_err(|e| format!("hangup request: {e}"))?;
    c.event(plan.step_timeout, |event, _, _, _| {
        (event == "hangup").then_some(Ok(()))
    })
    .await
    .map_err(|e| format!("hangup event: {e}"))?;
    out.finished = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Janus' plugin thread may push the SIP `hangup` event before the core acks the `hangup`
    /// request: the event must still end the wait that follows the request.
    #[tokio::test]
    async fn an_event_before_the_requests_ack_is_not_lost() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(MaybeTlsStream::Plain(tcp))
                .await
                .unwrap();
            let _request = ws.next().await.unwrap().unwrap();
            let event = r#"{"janus":"event","session_id":1,"sender":2,"plugindata":{"plugin":"janus.plugin.sip","data":{"sip":"event","result":{"event":"hangup","code":200,"reason":"Session Terminated"}}}}"#;
            ws.send(Message::text(event)).await.unwrap();
            ws.send(Message::text(
                r#"{"janus":"ack","session_id":1,"transaction":"t1"}"#,
            ))
            .await
            .unwrap();
            // Keep the socket open until the client is done.
            let _ = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        });
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap();
        let mut c = Conn {
            ws,
            session: 1,
            handle: 2,
            tx: 0,
            held: VecDeque::new(),
        };
        let t = c.next_tx();
        let limit = Duration::from_secs(2);
        c.request(janus_api::hangup(1, 2, &t), &t, limit)
            .await
            .unwrap();
        let got = c
            .event(limit, |event, code, _, _| {
                (event == "hangup").then_some(Ok::<_, String>(code))
            })
            .await;
        assert_eq!(got, Ok(Some(200)));
        drop(c);
        server.await.unwrap();
    }
}
