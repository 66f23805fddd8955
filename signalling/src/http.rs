//! The HTTP surface: `/health` now; the WebSocket API, REST API, SDK and pages join it later.
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

/// The router with every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .with_state(state)
}
