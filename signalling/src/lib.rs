//! Wavegate's signalling process as a library: configuration, media-plane supervision, the
//! media session facade and the HTTP surface. `main.rs` only reads the configuration and
//! wires these together; tests drive the same pieces in-process.

pub mod call;
pub mod config;
pub mod echo;
pub mod hooks;
pub mod http;
pub mod media;
pub mod metrics;
pub mod registry;
pub mod rest;
pub mod shard_traffic;
pub mod sip;
pub mod supervisor;
pub mod ws;

use config::Config;
use media::{CallRegistry, MediaService};
use supervisor::Supervisor;

/// The running pieces of a server.
pub struct Server {
    /// The supervised media plane.
    pub supervisor: Supervisor,
    /// Media session control.
    pub media: MediaService,
    /// The supervision loop.
    pub supervision: tokio::task::JoinHandle<()>,
    media_ip: std::net::IpAddr,
    ws: std::sync::Arc<config::WsConfig>,
    /// The SIP user agent pages' SIP calls go through; set by `main` once started.
    pub sip: Option<std::sync::Arc<sip::client::SipUserAgent>>,
    /// Live sessions and calls (WebSocket and REST), with the metrics.
    pub registry: registry::Registry,
    /// The REST API key when the API asks for one (`rest.auth`, docs/configuration.md).
    pub rest_key: Option<String>,
    /// The REST hooks' client, when `hooks.url` is set.
    pub hooks: Option<hooks::Hooks>,
}

impl Server {
    /// Starts the media plane supervision (inside a tokio runtime).
    pub fn start(config: &Config) -> Server {
        let calls = CallRegistry::new();
        let (supervisor, supervision) =
            Supervisor::start(config.media.clone(), config.log.format, calls.clone());
        let metrics = metrics::Metrics::new();
        let media = MediaService::new(supervisor.clone(), calls).with_metrics(metrics.clone());
        let registry = registry::Registry::new(metrics);
        let hooks = hooks::Hooks::new(&config.hooks, registry.metrics().clone());
        if let Some(h) = &hooks {
            h.spawn_status_feed(registry.subscribe());
        }
        Server {
            registry,
            rest_key: config
                .rest
                .auth_required(config.http.listen)
                .then(|| config.rest.api_key.clone()),
            hooks,
            supervisor,
            media,
            supervision,
            media_ip: config.media.bind_ip,
            ws: std::sync::Arc::new(config.ws.clone()),
            sip: None,
        }
    }

    /// The HTTP router for this server.
    pub fn router(&self) -> axum::Router {
        http::router(
            http::AppState {
                supervisor: self.supervisor.clone(),
                media: self.media.clone(),
                media_ip: self.media_ip,
                sip: self.sip.clone(),
                registry: self.registry.clone(),
                hooks: self.hooks.clone(),
                ws: self.ws.clone(),
            },
            self.rest_key.clone(),
        )
    }
}
