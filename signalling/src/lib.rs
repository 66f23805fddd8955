//! Wavegate's signalling process as a library: configuration, media-plane supervision, the
//! media session facade and the HTTP surface. `main.rs` only reads the configuration and
//! wires these together; tests drive the same pieces in-process.

pub mod call;
pub mod config;
pub mod echo;
pub mod http;
pub mod media;
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
    /// The SIP user agent pages' SIP calls go through; set by `main` once started.
    pub sip: Option<std::sync::Arc<sip::client::SipUserAgent>>,
}

impl Server {
    /// Starts the media plane supervision (inside a tokio runtime).
    pub fn start(config: &Config) -> Server {
        let calls = CallRegistry::new();
        let (supervisor, supervision) =
            Supervisor::start(config.media.clone(), config.log.format, calls.clone());
        let media = MediaService::new(supervisor.clone(), calls);
        Server {
            supervisor,
            media,
            supervision,
            media_ip: config.media.bind_ip,
            sip: None,
        }
    }

    /// The HTTP router for this server.
    pub fn router(&self) -> axum::Router {
        http::router(http::AppState {
            supervisor: self.supervisor.clone(),
            media: self.media.clone(),
            media_ip: self.media_ip,
            sip: self.sip.clone(),
        })
    }
}
