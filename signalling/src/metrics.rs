//! Prometheus metrics (`GET /metrics`, text exposition format 0.0.4).
//!
//! Counters and gauges live in one `prometheus::Registry` per server (no process-global
//! default registry, so tests can run several servers in one process). The registry of
//! sessions and calls counts status changes here; the SIP user agent counts messages; the
//! REST hooks count their attempts. Per-shard figures of the media plane are read when
//! scraped (a `ShardStats` request per shard, bounded by the control client's deadline), so a
//! scrape never waits on a dead media plane for longer than that.
//!
//! Invariants: label values are bounded sets (statuses, SIP methods, status codes, normalised
//! causes cut at 48 characters with targets stripped), so a misbehaving peer cannot grow the
//! series without bound; nothing here panics (registration errors are logged, the metric is
//! then simply absent).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, TextEncoder,
};

use crate::registry::CallDirection;

/// Window over which the call-attempt rate gauge is computed.
const CPS_WINDOW: Duration = Duration::from_secs(10);
/// Bound on the remembered attempt instants (beyond it the rate is capped, memory is not).
const CPS_MAX: usize = 100_000;

struct Inner {
    registry: prometheus::Registry,
    sessions_total: IntCounter,
    sessions_active: IntGauge,
    sessions_by_status: IntGaugeVec,
    registrations_total: IntCounter,
    calls_total: IntCounterVec,
    calls_active: IntGauge,
    calls_by_status: IntGaugeVec,
    calls_ended: IntCounterVec,
    cps: IntGauge,
    attempts: Mutex<VecDeque<Instant>>,
    sip: IntCounterVec,
    hooks: IntCounterVec,
    hook_seconds: HistogramVec,
    rest: IntCounterVec,
    shard_calls: IntGaugeVec,
    shard_transcoding_legs: IntGaugeVec,
    shard_heartbeat_age: prometheus::GaugeVec,
    shard_webrtc_drops: IntGaugeVec,
    media_packets: IntCounterVec,
    media_request_seconds: Histogram,
    shard_ring_bytes: IntGaugeVec,
    shard_ring_capacity: IntGaugeVec,
    /// Per-shard packet counters and relay latency, rendered apart (see `shard_traffic`).
    traffic: Mutex<crate::shard_traffic::TrafficTotals>,
}

/// The server's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &prometheus::Registry, m: T) -> T {
    if let Err(e) = r.register(Box::new(m.clone())) {
        tracing::warn!(error = %e, "metric not registered");
    }
    m
}

// The constructors below only fail on invalid metric or label names, which are constants here.
fn counter(r: &prometheus::Registry, name: &str, help: &str) -> IntCounter {
    reg(
        r,
        IntCounter::new(name, help).unwrap_or_else(|_| unreachable!("valid name")),
    )
}

fn gauge(r: &prometheus::Registry, name: &str, help: &str) -> IntGauge {
    reg(
        r,
        IntGauge::new(name, help).unwrap_or_else(|_| unreachable!("valid name")),
    )
}

fn counter_vec(r: &prometheus::Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    reg(
        r,
        IntCounterVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|_| unreachable!("valid name")),
    )
}

fn gauge_vec(r: &prometheus::Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    reg(
        r,
        IntGaugeVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|_| unreachable!("valid name")),
    )
}

/// A cause as a label value: targets and details stripped, bounded length.
pub fn cause_label(cause: &str) -> String {
    let head = cause.split([':', '(', '<']).next().unwrap_or(cause).trim();
    let head = if head.starts_with("Transferred to") {
        "Transferred"
    } else {
        head
    };
    head.chars().take(48).collect()
}

impl Metrics {
    /// Fresh metrics in their own registry.
    pub fn new() -> Metrics {
        let r = prometheus::Registry::new();
        let hist = |name: &str, help: &str, buckets: Vec<f64>| {
            reg(
                &r,
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                    .unwrap_or_else(|_| unreachable!("valid name")),
            )
        };
        let media_request_seconds = hist(
            "wavegate_media_request_seconds",
            "Round trip of control requests to the media plane (signalling to shard and back).",
            vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0,
            ],
        );
        let hook_seconds = reg(
            &r,
            HistogramVec::new(
                HistogramOpts::new(
                    "wavegate_hook_request_seconds",
                    "Duration of REST hook requests to the back end (each attempt).",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
                &["hook"],
            )
            .unwrap_or_else(|_| unreachable!("valid name")),
        );
        let inner = Inner {
            sessions_total: counter(&r, "wavegate_sessions_total", "WebSocket sessions opened."),
            sessions_active: gauge(
                &r,
                "wavegate_sessions_active",
                "WebSocket sessions open now.",
            ),
            sessions_by_status: gauge_vec(
                &r,
                "wavegate_sessions",
                "Open sessions by status (NEW, ESTABLISHED, REGISTERED, UNREGISTERED, FAILED).",
                &["status"],
            ),
            registrations_total: counter(
                &r,
                "wavegate_registrations_total",
                "Sessions that became REGISTERED (refreshes not counted).",
            ),
            calls_total: counter_vec(
                &r,
                "wavegate_calls_total",
                "Calls created (page and server-side), by direction.",
                &["direction"],
            ),
            calls_active: gauge(
                &r,
                "wavegate_calls_active",
                "Calls not yet in a final state.",
            ),
            calls_by_status: gauge_vec(
                &r,
                "wavegate_calls",
                "Live calls by current status.",
                &["status"],
            ),
            calls_ended: counter_vec(
                &r,
                "wavegate_calls_ended_total",
                "Calls that reached a final state, by status (BUSY, FINISH, FAILED) and cause.",
                &["status", "cause"],
            ),
            cps: gauge(
                &r,
                "wavegate_call_attempts_per_second",
                "Calls created per second over the last 10 s (rounded down).",
            ),
            attempts: Mutex::new(VecDeque::new()),
            sip: counter_vec(
                &r,
                "wavegate_sip_messages_total",
                "SIP messages sent and received by the user agent: direction in/out, method, \
                 status code (empty for requests).",
                &["direction", "method", "code"],
            ),
            hooks: counter_vec(
                &r,
                "wavegate_hook_requests_total",
                "REST hook attempts by hook and outcome (ok, rejected, http_error, timeout, \
                 transport_error, gave_up).",
                &["hook", "outcome"],
            ),
            hook_seconds,
            rest: counter_vec(
                &r,
                "wavegate_rest_requests_total",
                "REST API requests by endpoint and HTTP status.",
                &["endpoint", "code"],
            ),
            shard_calls: gauge_vec(
                &r,
                "wavegate_shard_calls",
                "Calls held by each media-plane shard (relay and WebRTC).",
                &["shard"],
            ),
            shard_transcoding_legs: gauge_vec(
                &r,
                "wavegate_shard_transcoding_legs",
                "WebRTC calls each media-plane shard is transcoding (no codec shared by the two sides).",
                &["shard"],
            ),
            shard_heartbeat_age: reg(
                &r,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "wavegate_shard_heartbeat_age_seconds",
                        "Time since each shard's last heartbeat in shared memory.",
                    ),
                    &["shard"],
                )
                .unwrap_or_else(|_| unreachable!("valid name")),
            ),
            shard_webrtc_drops: gauge_vec(
                &r,
                "wavegate_shard_webrtc_drops",
                "Datagrams dropped at each shard's WebRTC socket since the shard started, by \
                 reason (a gauge: it restarts with the media plane).",
                &["shard", "reason"],
            ),
            media_packets: counter_vec(
                &r,
                "wavegate_media_packets_total",
                "RTP/RTCP packets of ended relay calls by shard and what happened (in, out, \
                 dropped), from the media plane's final call statistics.",
                &["shard", "what"],
            ),
            media_request_seconds,
            shard_ring_bytes: gauge_vec(
                &r,
                "wavegate_shard_ring_bytes",
                "Bytes queued now in each shard's control rings: commands (signalling to shard) \
                 and events (replies and events, shard to signalling).",
                &["shard", "ring"],
            ),
            shard_ring_capacity: gauge_vec(
                &r,
                "wavegate_shard_ring_capacity_bytes",
                "Data bytes of each shard's control rings.",
                &["shard", "ring"],
            ),
            traffic: Mutex::new(crate::shard_traffic::TrafficTotals::default()),
            registry: r,
        };
        Metrics {
            inner: Arc::new(inner),
        }
    }

    /// A session opened.
    pub fn sessions_opened(&self) {
        self.inner.sessions_total.inc();
        self.inner.sessions_active.inc();
        self.inner
            .sessions_by_status
            .with_label_values(&["NEW"])
            .inc();
    }

    /// A session closed.
    pub fn sessions_closed(&self) {
        self.inner.sessions_active.dec();
    }

    /// A session's status changed (`CLOSED` when it went away).
    pub fn session_status(&self, old: &str, new: &str) {
        if old == new {
            return;
        }
        self.inner
            .sessions_by_status
            .with_label_values(&[old])
            .dec();
        if new != "CLOSED" {
            self.inner
                .sessions_by_status
                .with_label_values(&[new])
                .inc();
        }
        if new == "REGISTERED" {
            self.inner.registrations_total.inc();
        }
    }

    /// A call was created.
    pub fn call_created(&self, direction: CallDirection) {
        let d = match direction {
            CallDirection::Outgoing => "outgoing",
            CallDirection::Incoming => "incoming",
        };
        self.inner.calls_total.with_label_values(&[d]).inc();
        self.inner.calls_active.inc();
        self.inner.calls_by_status.with_label_values(&["NEW"]).inc();
        if let Ok(mut a) = self.inner.attempts.lock()
            && a.len() < CPS_MAX
        {
            a.push_back(Instant::now());
        }
    }

    /// A call's status changed.
    pub fn call_status(&self, old: &str, new: &str, cause: &str) {
        if old != new {
            self.inner.calls_by_status.with_label_values(&[old]).dec();
        }
        if matches!(new, "BUSY" | "FINISH" | "FAILED") {
            self.inner.calls_active.dec();
            self.inner
                .calls_ended
                .with_label_values(&[new, &cause_label(cause)])
                .inc();
        } else if old != new {
            self.inner.calls_by_status.with_label_values(&[new]).inc();
        }
    }

    /// A SIP message went out or came in; `code` 0 for requests.
    pub fn sip_message(&self, outgoing: bool, method: &str, code: u16) {
        let code = if code == 0 {
            String::new()
        } else {
            code.to_string()
        };
        self.inner
            .sip
            .with_label_values(&[if outgoing { "out" } else { "in" }, method, &code])
            .inc();
    }

    /// One hook attempt and how long it took.
    pub fn hook(&self, hook: &str, outcome: &str, took: Duration) {
        self.inner.hooks.with_label_values(&[hook, outcome]).inc();
        self.inner
            .hook_seconds
            .with_label_values(&[hook])
            .observe(took.as_secs_f64());
    }

    /// A REST request was answered.
    pub fn rest(&self, endpoint: &str, code: u16) {
        self.inner
            .rest
            .with_label_values(&[endpoint, &code.to_string()])
            .inc();
    }

    /// One control request's round trip to the media plane.
    pub fn media_request(&self, took: Duration) {
        self.inner.media_request_seconds.observe(took.as_secs_f64());
    }

    /// The final statistics of a deleted call on `shard`.
    pub fn media_call_ended(&self, shard: u16, stats: &wavegate_shared::protocol::CallStats) {
        let s = shard.to_string();
        let add = |what: &str, n: u64| {
            self.inner
                .media_packets
                .with_label_values(&[&s, what])
                .inc_by(n)
        };
        for leg in [&stats.offerer, &stats.answerer] {
            add("in", leg.rtp_packets_in + leg.rtcp_packets_in);
            add("out", leg.rtp_packets_out + leg.rtcp_packets_out);
            add("dropped", leg.dropped);
        }
    }

    /// One shard's figures, read at scrape time.
    pub fn shard(
        &self,
        shard: u16,
        calls: u32,
        heartbeat_age: Option<Duration>,
        drops: Option<&wavegate_shared::protocol::WebRtcDrops>,
    ) {
        let s = shard.to_string();
        self.inner
            .shard_calls
            .with_label_values(&[&s])
            .set(i64::from(calls));
        if let Some(age) = heartbeat_age {
            self.inner
                .shard_heartbeat_age
                .with_label_values(&[&s])
                .set(age.as_secs_f64());
        }
        if let Some(d) = drops {
            let reasons = [
                ("strangers", d.strangers),
                ("malformed_stun", d.malformed_stun),
                ("stun_refused", d.stun_refused),
                ("srtp_refused", d.srtp_refused),
                ("srtp_replayed", d.srtp_replayed),
                ("other", d.other),
            ];
            for (reason, n) in reasons {
                self.inner
                    .shard_webrtc_drops
                    .with_label_values(&[&s, reason])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    /// Calls a shard is transcoding, as reported by its `ShardStats` reply.
    pub fn shard_transcoding(&self, shard: u16, legs: u32) {
        self.inner
            .shard_transcoding_legs
            .with_label_values(&[&shard.to_string()])
            .set(i64::from(legs));
    }

    /// One shard's cumulative traffic as reported by its `ShardStats` reply.
    pub fn shard_traffic(&self, shard: u16, traffic: &wavegate_shared::protocol::ShardTraffic) {
        if let Ok(mut t) = self.inner.traffic.lock() {
            t.absorb(shard, traffic);
        }
    }

    /// One shard's control-ring occupancy, read from shared memory.
    pub fn shard_rings(&self, shard: u16, depths: wavegate_shared::region::RingDepths) {
        let s = shard.to_string();
        let set = |v: &IntGaugeVec, ring: &str, n: u64| {
            v.with_label_values(&[&s, ring])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        set(&self.inner.shard_ring_bytes, "commands", depths.commands);
        set(&self.inner.shard_ring_bytes, "events", depths.events);
        let cap = &self.inner.shard_ring_capacity;
        set(cap, "commands", u64::from(depths.command_capacity));
        set(cap, "events", u64::from(depths.event_capacity));
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        if let Ok(mut a) = self.inner.attempts.lock() {
            let now = Instant::now();
            while a
                .front()
                .is_some_and(|t| now.duration_since(*t) > CPS_WINDOW)
            {
                a.pop_front();
            }
            self.inner
                .cps
                .set((a.len() as u64 / CPS_WINDOW.as_secs()) as i64);
        }
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.inner.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "metrics encoding");
        }
        let mut text = String::from_utf8_lossy(&buf).into_owned();
        if let Ok(t) = self.inner.traffic.lock() {
            text.push_str(&t.render());
        }
        text
    }
}

/// Counts every SIP message the user agent sends or receives (retransmissions included: they
/// are on the wire) by direction, method (a response's from its CSeq) and status code.
pub struct SipCounter(pub Metrics);

fn sip_labels(msg: &rsipstack::sip::SipMessage) -> (String, u16) {
    use rsipstack::sip::{HeadersExt as _, SipMessage};
    match msg {
        SipMessage::Request(r) => (r.method().to_string(), 0),
        SipMessage::Response(r) => {
            let method = r
                .cseq_header()
                .ok()
                .and_then(|c| c.method().ok())
                .map_or_else(|| "?".to_string(), |m| m.to_string());
            (method, r.status_code.code())
        }
    }
}

impl rsipstack::transaction::endpoint::MessageInspector for SipCounter {
    fn before_send(
        &self,
        msg: rsipstack::sip::SipMessage,
        _dest: Option<&rsipstack::transport::SipAddr>,
    ) -> rsipstack::sip::SipMessage {
        let (method, code) = sip_labels(&msg);
        self.0.sip_message(true, &method, code);
        msg
    }

    fn after_received(
        &self,
        msg: rsipstack::sip::SipMessage,
        _from: Option<&rsipstack::transport::SipAddr>,
    ) -> rsipstack::sip::SipMessage {
        let (method, code) = sip_labels(&msg);
        self.0.sip_message(false, &method, code);
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_bounded_labels() {
        assert_eq!(cause_label("Transferred to sip:carol@x"), "Transferred");
        assert_eq!(
            cause_label("Media plane failure: child exited"),
            "Media plane failure"
        );
        assert_eq!(cause_label(&"x".repeat(500)).len(), 48);
        assert_eq!(cause_label("Normal call clearing"), "Normal call clearing");
    }

    #[test]
    fn call_lifecycle_moves_counters() {
        let m = Metrics::new();
        m.call_created(CallDirection::Outgoing);
        m.call_status("NEW", "RING", "Ringing");
        m.call_status("RING", "ESTABLISHED", "Answered");
        let text = m.render();
        assert!(text.contains("wavegate_calls_active 1"), "{text}");
        assert!(
            text.contains("wavegate_calls{status=\"ESTABLISHED\"} 1"),
            "{text}"
        );
        m.call_status("ESTABLISHED", "FINISH", "Normal call clearing");
        let text = m.render();
        assert!(text.contains("wavegate_calls_active 0"), "{text}");
        assert!(text.contains(
            "wavegate_calls_ended_total{cause=\"Normal call clearing\",status=\"FINISH\"} 1"
        ));
        assert!(text.contains("wavegate_calls_total{direction=\"outgoing\"} 1"));
    }
}
