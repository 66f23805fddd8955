//! The signalling side's view of media sessions, and the facade that programs them.
//!
//! [`MediaService`] routes each request to the shard that owns the call
//! ([`wavegate_shared::ShardId::for_call`]) on the current media-plane generation, and records
//! the call in the [`CallRegistry`] with that generation. When a generation is lost, or a shard
//! reports a media timeout, the registry ends the affected calls and broadcasts a [`CallEnded`]
//! with its cause, which the call layer (SIP, WebSocket) turns into BYE / FAILED.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use wavegate_shared::client::ClientError;
use wavegate_shared::protocol::{
    Answer, CallStats, Delete, Offer, OfferFlags, Query, Request, WebRtcOffer, WebRtcOfferReply,
};
use wavegate_shared::{CallId, LegTag, ShardId};

use crate::supervisor::Supervisor;

/// Why a call ended from the media side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndCause {
    /// The media plane process died or hung.
    MediaPlaneLost(String),
    /// No RTP for the configured time.
    MediaTimeout {
        /// Seconds without media.
        idle_secs: u32,
    },
    /// A leg's socket failed.
    LegFailed(String),
    /// Deleted on request.
    Deleted,
}

impl std::fmt::Display for EndCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndCause::MediaPlaneLost(why) => write!(f, "Media plane failure: {why}"),
            EndCause::MediaTimeout { .. } => f.write_str("Failed by RTP activity"),
            EndCause::LegFailed(why) => write!(f, "Media leg failed: {why}"),
            EndCause::Deleted => f.write_str("Normal call clearing"),
        }
    }
}

/// A call ended by the media side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEnded {
    /// The call.
    pub call: CallId,
    /// Why.
    pub cause: EndCause,
}

/// A new offer of the media plane for a call's browser (`MediaEvent::BrowserReoffer`): the
/// session that owns the call forwards it to its page as `reoffer`, and the page's answer comes
/// back as a `BrowserAnswer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserReoffer {
    /// The call.
    pub call: CallId,
    /// The offer for the browser.
    pub sdp: String,
}

#[derive(Debug, Clone)]
struct Entry {
    generation: u64,
}

/// Calls with media on the media plane, by id; cheap to clone.
#[derive(Clone)]
pub struct CallRegistry {
    calls: Arc<Mutex<HashMap<CallId, Entry>>>,
    ended: broadcast::Sender<CallEnded>,
    reoffers: broadcast::Sender<BrowserReoffer>,
}

impl Default for CallRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl CallRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            calls: Arc::default(),
            ended: broadcast::channel(1024).0,
            reoffers: broadcast::channel(256).0,
        }
    }

    /// Follows calls ended by the media side.
    pub fn subscribe(&self) -> broadcast::Receiver<CallEnded> {
        self.ended.subscribe()
    }

    /// Follows the media plane's re-offers for browsers.
    pub fn subscribe_reoffers(&self) -> broadcast::Receiver<BrowserReoffer> {
        self.reoffers.subscribe()
    }

    /// Hands a re-offer to the sessions; `false` when the call is not known (ended) or no
    /// session listens (the media plane then withdraws it after its timeout).
    pub fn reoffer(&self, call: CallId, sdp: String) -> bool {
        if !self.lock().contains_key(&call) {
            return false;
        }
        self.reoffers.send(BrowserReoffer { call, sdp }).is_ok()
    }

    /// Number of calls held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no calls are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&self, call: CallId, generation: u64) {
        self.lock().insert(call, Entry { generation });
    }

    /// Ends one call; returns the cause if the call was known.
    pub fn end(&self, call: &CallId, cause: EndCause) -> Option<EndCause> {
        self.lock().remove(call)?;
        let _ = self.ended.send(CallEnded {
            call: call.clone(),
            cause: cause.clone(),
        });
        Some(cause)
    }

    /// Ends every call of a lost generation; returns how many.
    pub fn end_generation(&self, generation: u64, why: &str) -> usize {
        let lost: Vec<CallId> = {
            let mut calls = self.lock();
            let ids: Vec<CallId> = calls
                .iter()
                .filter(|(_, e)| e.generation == generation)
                .map(|(id, _)| id.clone())
                .collect();
            for id in &ids {
                calls.remove(id);
            }
            ids
        };
        for call in &lost {
            let _ = self.ended.send(CallEnded {
                call: call.clone(),
                cause: EndCause::MediaPlaneLost(why.into()),
            });
        }
        lost.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CallId, Entry>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a media request failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// No media plane is running (starting or restarting).
    #[error("media plane unavailable")]
    Unavailable,
    /// The request failed on the way or was refused.
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl MediaError {
    /// The call's cause when the media plane refused for a reason the user sees as it is:
    /// "Transcoding required but disabled" (no codec shared and `media.transcoding = false`).
    pub fn call_cause(&self) -> Option<&str> {
        match self {
            MediaError::Client(ClientError::Remote(e))
                if e.code == wavegate_shared::protocol::ErrorCode::TranscodingDisabled =>
            {
                Some(&e.message)
            }
            _ => None,
        }
    }
}

/// Programs media sessions on the supervised media plane.
#[derive(Clone)]
pub struct MediaService {
    supervisor: Supervisor,
    calls: CallRegistry,
    /// Request round trips and the final counters of deleted calls are counted here.
    metrics: Option<crate::metrics::Metrics>,
}

impl MediaService {
    /// Wraps a supervisor and the registry it reports losses to.
    pub fn new(supervisor: Supervisor, calls: CallRegistry) -> Self {
        Self {
            supervisor,
            calls,
            metrics: None,
        }
    }

    /// Counts request round trips and deleted calls' packets into `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn observe(&self, start: std::time::Instant) {
        if let Some(m) = &self.metrics {
            m.media_request(start.elapsed());
        }
    }

    /// Whether browser-offered calls ask the media plane to re-offer the browser Opus capped
    /// at a transcoded SIP codec's rate (config `media.browser_reoffer`).
    pub fn browser_reoffer(&self) -> bool {
        self.supervisor.media_config().browser_reoffer
    }

    /// The registry of calls.
    pub fn calls(&self) -> &CallRegistry {
        &self.calls
    }

    fn route(
        &self,
        call: &CallId,
    ) -> Result<(wavegate_shared::client::ControlClient, u64, ShardId), MediaError> {
        let (client, generation) = self.supervisor.client().ok_or(MediaError::Unavailable)?;
        let shard = client.shard_for(call);
        Ok((client, generation, shard))
    }

    /// Hands the offerer's SDP to the media plane; returns the SDP for the answerer.
    pub async fn offer(
        &self,
        call: CallId,
        from_tag: LegTag,
        sdp: String,
        flags: OfferFlags,
    ) -> Result<String, MediaError> {
        let (client, generation, shard) = self.route(&call)?;
        let start = std::time::Instant::now();
        let reply = client
            .request(
                shard,
                &Offer {
                    call: call.clone(),
                    from_tag,
                    sdp,
                    flags,
                },
            )
            .await?;
        self.observe(start);
        self.calls.insert(call, generation);
        Ok(reply.sdp)
    }

    /// Hands the answerer's SDP to the media plane; returns the SDP for the offerer.
    pub async fn answer(
        &self,
        call: CallId,
        from_tag: LegTag,
        to_tag: LegTag,
        sdp: String,
    ) -> Result<String, MediaError> {
        let (client, _, shard) = self.route(&call)?;
        Ok(client
            .request(
                shard,
                &Answer {
                    call,
                    from_tag,
                    to_tag,
                    sdp,
                },
            )
            .await?
            .sdp)
    }

    /// Hands a browser's WebRTC offer to the media plane; returns the browser's answer and the
    /// plain RTP/AVP offer for the SIP side (complete the call with [`MediaService::answer`]).
    pub async fn webrtc_offer(
        &self,
        call: CallId,
        from_tag: LegTag,
        sdp: String,
        flags: OfferFlags,
    ) -> Result<WebRtcOfferReply, MediaError> {
        let (client, generation, shard) = self.route(&call)?;
        let reply = client
            .request(
                shard,
                &WebRtcOffer {
                    call: call.clone(),
                    from_tag,
                    sdp,
                    flags,
                },
            )
            .await?;
        self.calls.insert(call, generation);
        Ok(reply)
    }

    /// Sends any other per-call request (`Stats`, `InjectDtmf`, …) to the call's shard.
    pub async fn request<R: Request>(
        &self,
        call: &CallId,
        req: &R,
    ) -> Result<R::Reply, MediaError> {
        let (client, _, shard) = self.route(call)?;
        Ok(client.request(shard, req).await?)
    }

    /// Reads a call's counters.
    pub async fn query(&self, call: CallId) -> Result<CallStats, MediaError> {
        let (client, _, shard) = self.route(&call)?;
        Ok(client.request(shard, &Query { call }).await?)
    }

    /// Ends a call's media; returns its final counters.
    pub async fn delete(&self, call: CallId) -> Result<CallStats, MediaError> {
        let (client, _, shard) = self.route(&call)?;
        let start = std::time::Instant::now();
        let stats = client.request(shard, &Delete { call: call.clone() }).await;
        self.observe(start);
        if let (Some(m), Ok(s)) = (&self.metrics, &stats) {
            m.media_call_ended(shard.0, s);
        }
        self.calls.end(&call, EndCause::Deleted);
        Ok(stats?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_loss_ends_only_its_calls() {
        let reg = CallRegistry::new();
        let mut rx = reg.subscribe();
        reg.insert(CallId::new("a").unwrap(), 1);
        reg.insert(CallId::new("b").unwrap(), 2);
        assert_eq!(reg.end_generation(1, "killed"), 1);
        let ev = rx.try_recv().unwrap();
        assert_eq!(ev.call.as_str(), "a");
        assert_eq!(ev.cause.to_string(), "Media plane failure: killed");
        assert_eq!(reg.len(), 1);
        assert!(
            reg.end(&CallId::new("a").unwrap(), EndCause::Deleted)
                .is_none()
        );
        assert_eq!(
            reg.end(
                &CallId::new("b").unwrap(),
                EndCause::MediaTimeout { idle_secs: 3 }
            )
            .map(|c| c.to_string()),
            Some("Failed by RTP activity".to_string())
        );
        assert!(reg.is_empty());
    }

    #[test]
    fn reoffers_reach_subscribers_only_for_known_calls() {
        let reg = CallRegistry::new();
        let call = CallId::new("r").unwrap();
        assert!(!reg.reoffer(call.clone(), "v=0".into()), "unknown call");
        reg.insert(call.clone(), 1);
        assert!(!reg.reoffer(call.clone(), "v=0".into()), "nobody listens");
        let mut rx = reg.subscribe_reoffers();
        assert!(reg.reoffer(call.clone(), "v=0\r\n".into()));
        assert_eq!(
            rx.try_recv().unwrap(),
            BrowserReoffer {
                call,
                sdp: "v=0\r\n".into()
            }
        );
    }

    #[test]
    fn only_the_transcoding_refusal_is_a_call_cause_as_it_is() {
        use wavegate_shared::protocol::{ControlError, ErrorCode};
        let remote =
            |code, msg: &str| MediaError::Client(ClientError::Remote(ControlError::new(code, msg)));
        let off = remote(
            ErrorCode::TranscodingDisabled,
            "Transcoding required but disabled",
        );
        assert_eq!(off.call_cause(), Some("Transcoding required but disabled"));
        assert_eq!(remote(ErrorCode::BadSdp, "no audio").call_cause(), None);
        assert_eq!(MediaError::Unavailable.call_cause(), None);
    }
}
