//! Shared helpers of the REST tests: a server (media plane + SIP user agent + HTTP router)
//! on loopback, and a small JSON HTTP client (hyper-util, the hooks' own client stack).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use wavegate_signalling::Server;
use wavegate_signalling::sip::client::SipUserAgent;

#[path = "../sip_peers/mod.rs"]
pub mod sip_peers;

/// A running server and its HTTP address.
pub struct RestServer {
    pub server: Server,
    pub http: SocketAddr,
    pub key: Option<String>,
}

/// Starts a server with one shard on `first_port..+99`, a SIP user agent and HTTP on port 0.
pub async fn start(first_port: u16, key: Option<&str>) -> RestServer {
    start_with(first_port, key, |_| {}).await
}

/// As [`start`], with the configuration adjusted by `tune` first (hooks).
pub async fn start_with(
    first_port: u16,
    key: Option<&str>,
    tune: impl FnOnce(&mut wavegate_signalling::config::Config),
) -> RestServer {
    let mut server = sip_peers::media_server_with(first_port, tune).await;
    let counter = wavegate_signalling::metrics::SipCounter(server.registry.metrics().clone());
    let ua = SipUserAgent::start_observed("127.0.0.1:0".parse().unwrap(), Some(Box::new(counter)))
        .await
        .expect("SIP user agent");
    server.sip = Some(Arc::new(ua));
    server.rest_key = key.map(str::to_string);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    let router = server.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    RestServer {
        server,
        http,
        key: key.map(str::to_string),
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

impl RestServer {
    /// POSTs `body` to `/rest-api/<path>` with the server's key; the status and JSON answer.
    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.post_key(path, body, self.key.as_deref()).await
    }

    /// As [`post`](Self::post) with an explicit key (or none).
    pub async fn post_key(&self, path: &str, body: &str, key: Option<&str>) -> (u16, Value) {
        let mut req = axum::http::Request::post(format!("http://{}/rest-api/{path}", self.http))
            .header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(10), client().request(req))
            .await
            .expect("REST answer within 10 s")
            .expect("REST request");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json)
    }

    /// GETs a path; status and body text.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let mut req = axum::http::Request::get(format!("http://{}{path}", self.http));
        if let Some(k) = &self.key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let req = req.body(Full::new(Bytes::new())).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(10), client().request(req))
            .await
            .expect("answer within 10 s")
            .expect("GET");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The live call `call_id` as `call/find` shows it (None once it is gone).
    pub async fn find(&self, call_id: &str) -> Option<Value> {
        let (status, v) = self
            .post("call/find", &format!(r#"{{"callId":"{call_id}"}}"#))
            .await;
        match status {
            200 => v.as_array().and_then(|a| a.first()).cloned(),
            404 => None,
            s => panic!("call/find answered {s}: {v}"),
        }
    }

    /// Waits (at most 10 s) until the call's status is `status` (or, for "GONE", until it is
    /// no longer listed); returns the statuses seen.
    pub async fn wait_status(&self, call_id: &str, status: &str) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(10);
        let mut seen: Vec<String> = Vec::new();
        loop {
            let now = self.find(call_id).await;
            let s = now
                .as_ref()
                .map(|c| c["status"].as_str().unwrap_or("?").to_string())
                .unwrap_or_else(|| "GONE".into());
            if seen.last() != Some(&s) {
                seen.push(s.clone());
            }
            if s == status {
                return seen;
            }
            assert!(
                Instant::now() < until,
                "call {call_id} not {status} within 10 s; seen {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
