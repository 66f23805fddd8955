//! The media plane's re-offers for a session's browsers: a `BrowserReoffer` for one of the
//! session's calls goes to the page as `reoffer {callId, sdp}`; the page's `answer` for that
//! call goes back as a `BrowserAnswer` (reply SDP empty: the SIP side is not renegotiated).
//! Used for capping the browser's Opus at a transcoded SIP codec's rate (docs/transcoding.md).
//!
//! Invariants: a refused re-answer (bad SDP, too late: the media plane withdraws a re-offer
//! not answered within 10 s) is answered with `error` and never ends the call: the call goes
//! on as negotiated. A re-offer for another session's call is ignored here.

use wavegate_shared::protocol::{BrowserAnswer, OfferFlags};

use super::messages::ServerMsg;
use super::{Session, error};
use crate::media::BrowserReoffer;

impl Session {
    /// The flags of a page's SIP call: re-offers are asked for when the server allows them
    /// (the page's SDK answers them by itself).
    pub(super) fn sip_call_flags(&self) -> OfferFlags {
        OfferFlags {
            browser_reoffer: self.media.browser_reoffer(),
            ..Default::default()
        }
    }

    /// A re-offer from the media plane: to the page, if the call is one of this session's.
    pub(super) fn on_reoffer(&mut self, ev: BrowserReoffer) -> Vec<ServerMsg> {
        let Some(call_id) = self.by_media.get(&ev.call).cloned() else {
            return Vec::new();
        };
        tracing::debug!(session = self.id, call = %ev.call, "re-offer sent to the page");
        self.reoffers.insert(call_id.clone());
        vec![ServerMsg::Reoffer {
            call_id,
            sdp: ev.sdp,
        }]
    }

    /// The page's answer to our re-offer.
    /// Stays pending until one is accepted (a page may retry after a bad one); a stale entry
    /// only means the media plane is asked and says nothing is waiting.
    pub(super) async fn reanswer(&mut self, call_id: &str, sdp: String) -> Vec<ServerMsg> {
        let Some(media_id) = self.calls.get(call_id).map(|c| c.media_id().clone()) else {
            return vec![error(format!("answer: no call {call_id:?}"))];
        };
        let browser = match wavegate_shared::LegTag::new("browser") {
            Ok(t) => t,
            Err(e) => return vec![error(format!("answer: {e}"))],
        };
        let req = BrowserAnswer {
            call: media_id.clone(),
            to_tag: browser,
            sdp,
        };
        match self.media.request(&media_id, &req).await {
            Ok(_) => {
                self.reoffers.remove(call_id);
                tracing::debug!(session = self.id, call = %media_id, "re-offer answered");
                Vec::new()
            }
            Err(e) => {
                tracing::info!(session = self.id, call = %media_id, error = %e, "re-answer refused");
                vec![error(format!(
                    "answer to the re-offer on {call_id:?} refused (the call goes on as it was): {e}"
                ))]
            }
        }
    }
}
