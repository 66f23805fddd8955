//! A page's call to a SIP callee: the browser's offer goes to the media plane as `WebRtcOffer`,
//! its plain RTP `sip_offer` goes in the INVITE (`SipUserAgent::call` with `media: None`, so the
//! SIP layer carries our SDP as is), and the far end's SDP (18x or 2xx) completes the media with
//! `Answer`. One task per call owns the `CallHandle`: it forwards the call's events to the
//! session and applies the session's commands.
//!
//! Invariants: the task ends only after the call reached a final state (or, once the session is
//! gone, after a bounded wait for it), and it always deletes the call's media before ending.
//! Dropping the command sender (the session closed) hangs the call up.

use std::time::Duration;

use tokio::sync::mpsc;
use wavegate_shared::{CallId, LegTag};

use crate::media::MediaService;
use crate::sip::call::{CallEvent, CallHandle, Command, TransferProgress};

/// What the session asks of a SIP call.
#[derive(Debug)]
pub enum SipCmd {
    /// CANCEL or BYE.
    Hangup,
    /// re-INVITE sendonly (true) or sendrecv (false).
    Hold(bool),
    /// In-dialog INFO.
    Info(char),
    /// Incoming calls: answer with this SDP for the SIP side.
    Answer(String),
    /// Blind transfer (REFER) to this target.
    Transfer(String),
    /// In-dialog MESSAGE (text/plain).
    Message(String),
}

/// What a SIP call tells the session.
#[derive(Debug)]
pub enum SipNote {
    /// A state and its cause; `final_` when nothing follows.
    State(&'static str, String, bool),
    /// A digit from the far end's INFO.
    Dtmf(char),
    /// Something went wrong that is not a state (the media plane refused the far end's SDP).
    Problem(String),
    /// An in-dialog MESSAGE from the far end: content type, body.
    Message(String, String),
    /// Progress of our blind transfer.
    Transfer(TransferProgress),
}

/// How long a call whose session is gone may take to reach its final state after hangup.
const ORPHAN_WAIT: Duration = Duration::from_secs(5);

/// Runs one SIP call until its final state; `notify` reaches the session.
pub async fn run(
    mut handle: CallHandle,
    media: MediaService,
    media_id: CallId,
    mut commands: mpsc::UnboundedReceiver<SipCmd>,
    notify: impl Fn(SipNote) + Send + 'static,
) {
    let (browser, sip) = match (LegTag::new("browser"), LegTag::new("sip")) {
        (Ok(b), Ok(s)) => (b, s),
        _ => unreachable!("constant leg tags are valid"),
    };
    let mut orphan_deadline: Option<tokio::time::Instant> = None;
    // The media plane's cause for a call it could not carry (transcoding disabled): the final
    // state reports it instead of the hangup's own cause.
    let mut media_cause: Option<String> = None;
    loop {
        let deadline = orphan_deadline;
        tokio::select! {
            ev = handle.next_event() => match ev {
                None => break,
                Some(CallEvent::State(sc)) => {
                    let fin = sc.state.is_final();
                    let cause = match (&media_cause, fin) {
                        (Some(c), true) => c.clone(),
                        _ => sc.cause.to_string(),
                    };
                    notify(SipNote::State(sc.state.name(), cause, fin));
                    if fin {
                        break;
                    }
                }
                Some(CallEvent::RemoteSdp { sdp, early }) => {
                    if let Err(e) = media.answer(media_id.clone(), browser.clone(), sip.clone(), sdp).await {
                        media_cause = e.call_cause().map(str::to_owned);
                        notify(SipNote::Problem(format!(
                            "the media plane refused the far end's {} SDP: {e}",
                            if early { "early" } else { "answer" }
                        )));
                        handle.hangup();
                    }
                }
                Some(CallEvent::Dtmf(d)) => notify(SipNote::Dtmf(d)),
                Some(CallEvent::Info { method, content_type, body }) if method == "MESSAGE" => {
                    notify(SipNote::Message(content_type, body));
                }
                Some(CallEvent::TransferProgress(p)) => notify(SipNote::Transfer(p)),
                Some(other) => tracing::debug!(call = %media_id, ?other, "SIP call event not forwarded"),
            },
            cmd = commands.recv(), if orphan_deadline.is_none() => match cmd {
                Some(SipCmd::Hangup) => handle.hangup(),
                Some(SipCmd::Hold(on)) => handle.hold(on),
                Some(SipCmd::Answer(sdp)) => handle.command(Command::Answer(sdp)),
                Some(SipCmd::Transfer(target)) => handle.transfer(&target),
                Some(SipCmd::Message(text)) => handle.send_message(&text),
                Some(SipCmd::Info(d)) => {
                    if let Err(e) = handle.send_dtmf(d) {
                        notify(SipNote::Problem(e.to_string()));
                    }
                }
                None => {
                    handle.hangup();
                    orphan_deadline = Some(tokio::time::Instant::now() + ORPHAN_WAIT);
                }
            },
            _ = async { if let Some(d) = deadline { tokio::time::sleep_until(d).await } else { std::future::pending::<()>().await } } => break,
        }
    }
    if let Err(e) = media.delete(media_id.clone()).await {
        tracing::debug!(call = %media_id, error = %e, "SIP call: delete media");
    }
}
