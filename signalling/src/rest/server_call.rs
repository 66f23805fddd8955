//! Server-side calls started through REST: from an account given in the request to a callee,
//! with no page. The media goes through the media plane's plain RTP relay: one leg faces the
//! callee (offered in our INVITE), the other faces either nothing (a placeholder address, so
//! the callee's media is received, counted and discarded) or, for click-to-call, a second
//! callee called once the first has answered, whose answer re-offers that leg with its real
//! address (the relay's offerer update). The two SIP legs are then joined by the relay alone;
//! no transcoding exists, so the second callee is offered only the codec the first chose.
//!
//! Invariants: one task owns both `CallHandle`s; it ends only after the first leg's final
//! state (the call's) and hangs up the second leg then; it always deletes the media. The
//! registry sees the first leg's states; the second leg's end ends the call.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use wavegate_shared::protocol::OfferFlags;
use wavegate_shared::{CallId, LegTag};

use crate::media::MediaService;
use crate::registry::{CallCmd, Registry};
use crate::sip::SipAccount;
use crate::sip::call::{CallEvent, CallHandle, CallOptions};
use crate::sip::client::SipUserAgent;

/// How long the second leg may take to end after the first ended.
const LEG_B_WAIT: Duration = Duration::from_secs(5);
/// The discard port: where the far end's media goes when nothing is bridged.
const DISCARD_PORT: u16 = 9;

/// The placeholder offer of the leg that faces no one (yet): PCMU, PCMA and telephone-event.
pub fn placeholder_sdp(ip: IpAddr) -> String {
    let (fam, ip) = match ip {
        IpAddr::V4(v4) => ("IP4", v4.to_string()),
        IpAddr::V6(v6) => ("IP6", v6.to_string()),
    };
    format!(
        "v=0\r\no=wavegate 1 1 IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\n\
         m=audio {DISCARD_PORT} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
    )
}

fn tags() -> (LegTag, LegTag) {
    match (LegTag::new("peer"), LegTag::new("callee")) {
        (Ok(p), Ok(c)) => (p, c),
        _ => unreachable!("constant leg tags are valid"),
    }
}

/// Everything a server-side call needs.
pub struct ServerCall {
    /// The REST call id.
    pub call_id: String,
    /// The account calls are made from.
    pub account: SipAccount,
    /// First callee.
    pub callee: String,
    /// Second callee (click-to-call).
    pub bridge_to: Option<String>,
    /// The SIP user agent.
    pub ua: Arc<SipUserAgent>,
    /// The media plane.
    pub media: MediaService,
    /// The registry the call reports to.
    pub registry: Registry,
    /// Address for the placeholder leg.
    pub media_ip: IpAddr,
}

/// Why a server-side call could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The callee could not be used (bad URI).
    #[error("{0}")]
    Callee(String),
    /// The media plane refused or is down.
    #[error("media plane: {0}")]
    Media(String),
}

impl ServerCall {
    /// Programs the media, sends the INVITE and spawns the call's task.
    pub async fn start(self, commands: mpsc::UnboundedReceiver<CallCmd>) -> Result<(), StartError> {
        let media_id = CallId::new(&format!("rest-{}", self.call_id))
            .map_err(|e| StartError::Callee(e.to_string()))?;
        let (peer, callee) = tags();
        let sdp_a = self
            .media
            .offer(
                media_id.clone(),
                peer.clone(),
                placeholder_sdp(self.media_ip),
                OfferFlags::default(),
            )
            .await
            .map_err(|e| StartError::Media(e.to_string()))?;
        let a = match self
            .ua
            .call(
                &self.account,
                &self.callee,
                sdp_a,
                None,
                CallOptions::default(),
            )
            .await
        {
            Ok(h) => h,
            Err(e) => {
                let _ = self.media.delete(media_id).await;
                return Err(StartError::Callee(e.to_string()));
            }
        };
        tokio::spawn(self.run(a, media_id, peer, callee, commands));
        Ok(())
    }

    async fn run(
        self,
        mut a: CallHandle,
        media_id: CallId,
        peer: LegTag,
        callee: LegTag,
        mut commands: mpsc::UnboundedReceiver<CallCmd>,
    ) {
        let mut b: Option<CallHandle> = None;
        let mut commands_open = true;
        // The media plane's cause for a call it could not carry (transcoding disabled).
        let mut media_cause: Option<String> = None;
        loop {
            tokio::select! {
                ev = a.next_event() => match ev {
                    None => break,
                    Some(CallEvent::State(sc)) => {
                        let cause = match (&media_cause, sc.state.is_final()) {
                            (Some(c), true) => c.clone(),
                            _ => sc.cause.to_string(),
                        };
                        self.registry.call_status(None, &self.call_id, sc.state.name(), &cause);
                        if sc.state.is_final() {
                            break;
                        }
                    }
                    Some(CallEvent::RemoteSdp { sdp, early }) => {
                        match self.media.answer(media_id.clone(), peer.clone(), callee.clone(), sdp).await {
                            Ok(sdp_b) => {
                                if !early && b.is_none() && let Some(to) = &self.bridge_to {
                                    b = self.call_b(to, sdp_b).await;
                                    if b.is_none() {
                                        a.hangup();
                                    }
                                }
                            }
                            Err(e) => {
                                tracing::warn!(call = %self.call_id, error = %e, "REST call: the media plane refused the callee's SDP");
                                media_cause = e.call_cause().map(str::to_owned);
                                a.hangup();
                            }
                        }
                    }
                    Some(other) => tracing::debug!(call = %self.call_id, ?other, "REST call event"),
                },
                ev = async { match b.as_mut() { Some(h) => h.next_event().await, None => std::future::pending().await } } => match ev {
                    None => { b = None; a.hangup(); }
                    Some(CallEvent::State(sc)) => {
                        tracing::info!(call = %self.call_id, state = sc.state.name(), cause = %sc.cause, "REST call: bridged leg");
                        if sc.state.is_final() {
                            b = None;
                            a.hangup();
                        }
                    }
                    Some(CallEvent::RemoteSdp { sdp, .. }) => {
                        // The second callee's address and codec: update the placeholder leg.
                        if let Err(e) = self.media.offer(media_id.clone(), peer.clone(), sdp, OfferFlags::default()).await {
                            tracing::warn!(call = %self.call_id, error = %e, "REST call: the media plane refused the bridged callee's SDP");
                            a.hangup();
                        }
                    }
                    Some(_) => {}
                },
                cmd = commands.recv(), if commands_open => match cmd {
                    None => commands_open = false,
                    Some(CallCmd::Hangup) => {
                        a.hangup();
                        if let Some(b) = &b { b.hangup(); }
                    }
                    Some(CallCmd::Hold(on)) => a.hold(on),
                    Some(CallCmd::Transfer(to)) => a.transfer(&to),
                    Some(CallCmd::Dtmf { digits, .. }) => {
                        // RFC 4733 is refused before it gets here (the relay does not generate
                        // events); INFO goes in the dialog.
                        for d in digits.chars() {
                            if let Err(e) = a.send_dtmf(d) {
                                tracing::warn!(call = %self.call_id, error = %e, "REST call: DTMF");
                            }
                        }
                    }
                },
            }
        }
        if let Some(mut b) = b {
            b.hangup();
            let _ = tokio::time::timeout(LEG_B_WAIT, async {
                while let Some(ev) = b.next_event().await {
                    if let CallEvent::State(sc) = ev
                        && sc.state.is_final()
                    {
                        break;
                    }
                }
            })
            .await;
        }
        // The registry has the final state already unless the task ended without one.
        self.registry.call_status(
            None,
            &self.call_id,
            "FAILED",
            "The call's SIP task ended without a final state",
        );
        if let Err(e) = self.media.delete(media_id).await {
            tracing::debug!(call = %self.call_id, error = %e, "REST call: delete media");
        }
    }

    async fn call_b(&self, to: &str, sdp: String) -> Option<CallHandle> {
        match self
            .ua
            .call(&self.account, to, sdp, None, CallOptions::default())
            .await
        {
            Ok(h) => {
                tracing::info!(call = %self.call_id, bridge_to = to, "REST call: calling the second callee");
                Some(h)
            }
            Err(e) => {
                tracing::warn!(call = %self.call_id, error = %e, "REST call: second callee");
                None
            }
        }
    }
}
