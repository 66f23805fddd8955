//! The HTTP surface: `/health`, the WebSocket API at `/ws` (docs/websocket-api.md), the JS SDK
//! under `/sdk/` and the example pages (Phone at `/phone.html`, Phone Video at `/phone-video.html`,
//! linked from `/`). Static files are
//! compiled in (`include_str!`), so the binary serves them with no files beside it.
//!
//! `/health` answers 200 with the media plane's state when every shard is running and 503
//! otherwise, so a load balancer can take a host out while its media plane restarts.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;

use crate::media::MediaService;
use crate::supervisor::{PlaneState, PlaneStatus, Supervisor};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The supervised media plane.
    pub supervisor: Supervisor,
    /// Media session control.
    pub media: MediaService,
    /// The SIP user agent for pages' SIP calls (None when it could not start).
    pub sip: Option<std::sync::Arc<crate::sip::client::SipUserAgent>>,
    /// The media bind address (built-in extensions such as `echo` open their sockets there).
    pub media_ip: std::net::IpAddr,
    /// Live sessions and calls, shared by the WebSocket and REST APIs; it owns the metrics.
    pub registry: crate::registry::Registry,
    /// The REST hooks' client (None when no hook URL is configured).
    pub hooks: Option<crate::hooks::Hooks>,
    /// The WebSocket API's settings (app keys, codec policy).
    pub ws: std::sync::Arc<crate::config::WsConfig>,
}

/// Reads each shard's figures into the metrics (`ShardStats`, one request per shard with the
/// control client's deadline; a shard that does not answer keeps its last figures).
pub async fn refresh_shard_metrics(state: &AppState) {
    let Some((client, _)) = state.supervisor.client() else {
        return;
    };
    let metrics = state.registry.metrics();
    for k in 0..client.shard_count() {
        let shard = wavegate_shared::ShardId(k);
        let age = client.heartbeat_age(shard);
        let calls = client.region().shard(shard).map_or(0, |s| s.calls());
        if let Some(depths) = client.region().ring_depths(shard) {
            metrics.shard_rings(k, depths);
        }
        let start = std::time::Instant::now();
        match client
            .request(shard, &wavegate_shared::protocol::ShardStats)
            .await
        {
            Ok(c) => {
                metrics.media_request(start.elapsed());
                metrics.shard(k, c.calls, age, Some(&c.webrtc));
                metrics.shard_traffic(k, &c.traffic);
                metrics.shard_transcoding(k, c.transcoding_legs);
            }
            Err(e) => {
                tracing::debug!(shard = k, error = %e, "metrics: ShardStats");
                metrics.shard(k, calls, age, None);
            }
        }
    }
}

#[derive(serde::Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    calls: usize,
    mediaplane: PlaneStatus,
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let mediaplane = state.supervisor.status();
    let (code, status) = match mediaplane.state {
        PlaneState::Running => (StatusCode::OK, "ok"),
        PlaneState::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting"),
        PlaneState::Restarting => (StatusCode::SERVICE_UNAVAILABLE, "degraded"),
        PlaneState::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "stopped"),
    };
    let body = Health {
        status,
        version: env!("CARGO_PKG_VERSION"),
        calls: state.media.calls().len(),
        mediaplane,
    };
    (code, [(header::CACHE_CONTROL, "no-store")], Json(body))
}

async fn index() -> Html<&'static str> {
    Html(include_str!("../static/index.html"))
}

/// A compiled-in static file with its content type.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse + Clone {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

const JS: &str = "text/javascript; charset=utf-8";
const TS: &str = "application/typescript; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// The router with every route; REST and `/metrics` ask for `rest_key` when it is set.
pub fn router(state: AppState, rest_key: Option<String>) -> Router {
    let rest = crate::rest::router(state.clone(), rest_key);
    let phone = asset(HTML, include_str!("../static/phone.html"));
    let phone_js = asset(JS, include_str!("../static/phone.js"));
    let phone_video = asset(HTML, include_str!("../static/phone-video.html"));
    let phone_video_js = asset(JS, include_str!("../static/phone-video.js"));
    let sdk = asset(JS, include_str!("../static/sdk/wavegate.js"));
    let sdk_ts = asset(TS, include_str!("../static/sdk/wavegate.d.ts"));
    Router::new()
        .route("/", get(index))
        .route("/phone.html", get(move || async move { phone }))
        .route("/phone.js", get(move || async move { phone_js }))
        .route("/phone-video.html", get(move || async move { phone_video }))
        .route(
            "/phone-video.js",
            get(move || async move { phone_video_js }),
        )
        .route("/sdk/wavegate.js", get(move || async move { sdk }))
        .route("/sdk/wavegate.d.ts", get(move || async move { sdk_ts }))
        .route("/ws", get(crate::ws::handler))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/health", get(health))
        .with_state(state)
        .merge(rest)
}
