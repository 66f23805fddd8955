//! The built-in `echo` extension: a call to callee `echo` is answered by the server itself, so the
//! demo works with no PBX. The browser's WebRTC offer goes to the media plane as a `WebRtcOffer`;
//! its plain RTP/AVP `sip_offer` is answered here by an RTP echo peer (one UDP socket that sends
//! every datagram back to its source) with the offer's first codec (the browser's preference,
//! after the codec policy) plus telephone-event when offered.
//!
//! Demo-grade by design: one UDP socket per call on the media bind address, echo in a tokio task
//! (not on the media plane's hot path), no jitter buffer, no SIP dialog. Hold pauses the echo (as
//! a SIP peer answering `recvonly` would stop sending); RFC 4733 digits the echo peer receives
//! are reported back so a page can see its DTMF arrive on the "SIP side".
//! Video: when the media plane's offer has a video m-line (the page sent a camera), the echo
//! peer answers it too — VP8, else H.264 packetization-mode=1 (constrained baseline first) —
//! with `a=rtcp-mux` on a second socket that echoes video RTP and RTCP alike, so the page sees
//! its own camera come back and a keyframe request about that stream (a PLI the media plane
//! translated) returns to the browser that encodes it.
//! Invariants: dropping an [`EchoCall`] stops its echo tasks; the media session is deleted by
//! [`EchoCall::end`] (the session layer calls it on hangup and when the WebSocket closes).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use wavegate_shared::protocol::OfferFlags;
use wavegate_shared::{CallId, LegTag};

use crate::media::{MediaError, MediaService};

/// The callee name served by this extension.
pub const CALLEE: &str = "echo";

/// Why an echo call could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    /// The media plane refused or is not running.
    #[error("{0}")]
    Media(#[from] MediaError),
    /// The media plane's SIP-side offer had no audio codec to echo.
    #[error("echo: the media plane's offer has no audio m-line with a codec")]
    NoCodec,
    /// The echo socket could not be opened.
    #[error("echo: socket: {0}")]
    Io(#[from] std::io::Error),
    /// An id was refused.
    #[error("echo: {0}")]
    Id(String),
}

/// What the echo peer reports to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EchoEvent {
    /// An RFC 4733 event ended (one report per event).
    Dtmf(char),
}

/// Counters of the echo peer.
#[derive(Debug, Default)]
pub struct EchoCounters {
    /// RTP packets received (and echoed unless on hold).
    pub rtp_in: AtomicU64,
    /// Datagrams sent back.
    pub echoed: AtomicU64,
}

/// One call answered by the echo extension.
pub struct EchoCall {
    media: MediaService,
    call: CallId,
    /// The SDP answer for the browser.
    pub browser_answer: String,
    hold: Arc<AtomicBool>,
    /// The echo peer's counters.
    pub counters: Arc<EchoCounters>,
    /// The video echo's counters, when video was answered.
    pub video_counters: Option<Arc<EchoCounters>>,
    task: tokio::task::JoinHandle<()>,
    video_task: Option<tokio::task::JoinHandle<()>>,
}

/// `(pt, encoding)` of the first audio m-line, with its port.
fn audio_codecs(sdp: &str) -> Option<Vec<(u8, String)>> {
    let mut codecs: Option<Vec<(u8, String)>> = None;
    for line in sdp.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("m=") {
            if codecs.is_some() {
                break;
            }
            if let Some(rest) = rest.strip_prefix("audio ") {
                codecs = Some(
                    rest.split_whitespace()
                        .skip(2)
                        .filter_map(|pt| pt.parse().ok())
                        .map(|pt| (pt, String::new()))
                        .collect(),
                );
            }
        } else if let Some(list) = codecs.as_mut()
            && let Some(rest) = line.strip_prefix("a=rtpmap:")
            && let Some((pt, enc)) = rest.split_once(' ')
            && let Ok(pt) = pt.parse::<u8>()
            && let Some(c) = list.iter_mut().find(|c| c.0 == pt)
        {
            c.1 = enc.to_string();
        }
    }
    codecs
}

/// The echo peer's SDP answer to the media plane's offer: `(telephone-event pt, sdp)`.
pub fn answer_sdp(offer: &str, ip: IpAddr, port: u16) -> Option<(Option<u8>, String)> {
    let codecs = audio_codecs(offer)?;
    let is = |enc: &str, name: &str| enc.to_ascii_lowercase().starts_with(name);
    let te = codecs
        .iter()
        .find(|(_, e)| is(e, "telephone-event/8000"))
        .map(|c| c.0);
    let media: Vec<&(u8, String)> = codecs
        .iter()
        .filter(|(_, e)| !is(e, "telephone-event"))
        .collect();
    // The offerer's first codec (RFC 3264 answerer etiquette): the media plane's offer keeps
    // the browser's order, which is what the browser was answered with and sends, so any other
    // choice would echo nothing (no transcoding) — and a codec policy's `prefer` holds.
    let (pt, enc) = media.first()?;
    let enc = match (enc.is_empty(), *pt) {
        (false, _) => enc.clone(),
        (true, 0) => "PCMU/8000".into(),
        (true, 8) => "PCMA/8000".into(),
        (true, 9) => "G722/8000".into(),
        (true, _) => return None,
    };
    let ipv = if ip.is_ipv6() { "IP6" } else { "IP4" };
    let (te_fmt, te_lines) = match te {
        Some(te) => (
            format!(" {te}"),
            format!("a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\n"),
        ),
        None => (String::new(), String::new()),
    };
    Some((
        te,
        format!(
            "v=0\r\no=echo 1 1 IN {ipv} {ip}\r\ns=echo\r\nc=IN {ipv} {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP {pt}{te_fmt}\r\na=rtpmap:{pt} {enc}\r\n{te_lines}a=sendrecv\r\n"
        ),
    ))
}

/// The echo peer's video m-line for the first `m=video` section of the media plane's offer:
/// `(payload type, m-line)`; VP8, else H.264 with packetization-mode=1 (profile-level-id
/// 42e01f preferred), RTCP multiplexed. `None` without a video section or such a codec.
pub fn video_answer(offer: &str, port: u16) -> Option<(u8, String)> {
    let mut lines = offer
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("m=video "));
    let m = lines.next()?;
    if m.split_whitespace().nth(1) == Some("0") {
        return None;
    }
    let attrs: Vec<&str> = lines.take_while(|l| !l.starts_with("m=")).collect();
    let fmtp = |pt: &str| {
        attrs
            .iter()
            .find_map(|l| {
                l.strip_prefix("a=fmtp:")?
                    .strip_prefix(pt)?
                    .strip_prefix(' ')
            })
            .unwrap_or_default()
    };
    let maps: Vec<(&str, &str)> = attrs
        .iter()
        .filter_map(|l| l.strip_prefix("a=rtpmap:")?.split_once(' '))
        .collect();
    let vp8 = maps
        .iter()
        .find(|(_, enc)| enc.eq_ignore_ascii_case("VP8/90000"));
    let h264 = || {
        let mode1: Vec<&(&str, &str)> = maps
            .iter()
            .filter(|(pt, enc)| {
                enc.eq_ignore_ascii_case("H264/90000") && fmtp(pt).contains("packetization-mode=1")
            })
            .collect();
        mode1
            .iter()
            .find(|(pt, _)| fmtp(pt).contains("42e01f"))
            .or_else(|| mode1.first())
            .copied()
    };
    let (pt, enc) = vp8.or_else(h264)?;
    let f = fmtp(pt);
    let fmtp_line = if f.is_empty() {
        String::new()
    } else {
        format!("a=fmtp:{pt} {f}\r\n")
    };
    Some((
        pt.parse().ok()?,
        format!(
            "m=video {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {enc}\r\n{fmtp_line}\
             a=rtcp-fb:{pt} nack pli\r\na=rtcp-mux\r\na=sendrecv\r\n"
        ),
    ))
}

/// The digit of an RFC 4733 event code.
fn dtmf_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// Recognises the end of an RFC 4733 event in an RTP packet (`te` is the negotiated payload type).
/// The (up to three) end packets of one event share its timestamp; `last_end` dedups them.
pub fn dtmf_end(data: &[u8], te: Option<u8>, last_end: &mut Option<u32>) -> Option<char> {
    let te = te?;
    if data.len() < 16 || data[0] >> 6 != 2 || data[1] & 0x7f != te {
        return None;
    }
    let cc = usize::from(data[0] & 0x0f);
    let payload = data.get(12 + 4 * cc..)?;
    let ts = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    if payload.len() < 4 || payload[1] & 0x80 == 0 || *last_end == Some(ts) {
        return None;
    }
    *last_end = Some(ts);
    dtmf_digit(payload[0])
}

async fn run_echo(
    sock: UdpSocket,
    te: Option<u8>,
    hold: Arc<AtomicBool>,
    counters: Arc<EchoCounters>,
    events: mpsc::UnboundedSender<EchoEvent>,
) {
    let mut buf = [0u8; 2048];
    let mut last_end = None;
    loop {
        let Ok((n, src)) = sock.recv_from(&mut buf).await else {
            // ICMP errors surface as recv errors on Linux; the peer may come back.
            continue;
        };
        let data = &buf[..n];
        let rtcp = n >= 2 && (192..=223).contains(&data[1]);
        if !rtcp {
            counters.rtp_in.fetch_add(1, Ordering::Relaxed);
            if let Some(d) = dtmf_end(data, te, &mut last_end) {
                let _ = events.send(EchoEvent::Dtmf(d));
            }
        }
        if hold.load(Ordering::Relaxed) {
            continue;
        }
        if sock.send_to(data, src).await.is_ok() {
            counters.echoed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl EchoCall {
    /// Answers a browser's offer: WebRtcOffer, the echo peer's answer, Answer. `bind` is the
    /// media bind address (the echo socket must be reachable from the media plane).
    pub async fn start(
        media: &MediaService,
        call: CallId,
        browser_sdp: String,
        bind: IpAddr,
        events: mpsc::UnboundedSender<EchoEvent>,
    ) -> Result<EchoCall, EchoError> {
        let browser = LegTag::new("browser").map_err(|e| EchoError::Id(e.to_string()))?;
        let sip = LegTag::new("echo").map_err(|e| EchoError::Id(e.to_string()))?;
        let sock = UdpSocket::bind(SocketAddr::new(bind, 0)).await?;
        let port = sock.local_addr()?.port();
        let reply = media
            .webrtc_offer(
                call.clone(),
                browser.clone(),
                browser_sdp,
                OfferFlags::default(),
            )
            .await?;
        let Some((te, mut sdp)) = answer_sdp(&reply.sip_offer, bind, port) else {
            let _ = media.delete(call).await;
            return Err(EchoError::NoCodec);
        };
        // Video, when the page sent a camera: a second echo socket.
        let video_sock = if reply.sip_offer.contains("m=video ") {
            Some(UdpSocket::bind(SocketAddr::new(bind, 0)).await?)
        } else {
            None
        };
        let video_sock = match video_sock {
            Some(v) => match video_answer(&reply.sip_offer, v.local_addr()?.port()) {
                Some((_, line)) => {
                    sdp.push_str(&line);
                    Some(v)
                }
                None => None,
            },
            None => None,
        };
        if let Err(e) = media.answer(call.clone(), browser, sip, sdp).await {
            let _ = media.delete(call).await;
            return Err(e.into());
        }
        let hold = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(EchoCounters::default());
        let (video_counters, video_task) = match video_sock {
            Some(v) => {
                let c = Arc::new(EchoCounters::default());
                let t = tokio::spawn(run_echo(v, None, hold.clone(), c.clone(), events.clone()));
                (Some(c), Some(t))
            }
            None => (None, None),
        };
        let task = tokio::spawn(run_echo(sock, te, hold.clone(), counters.clone(), events));
        Ok(EchoCall {
            media: media.clone(),
            call,
            browser_answer: reply.browser_answer,
            hold,
            counters,
            video_counters,
            task,
            video_task,
        })
    }

    /// The media session's id.
    pub fn id(&self) -> &CallId {
        &self.call
    }

    /// Pauses (true) or resumes (false) the echo.
    pub fn set_hold(&self, on: bool) {
        self.hold.store(on, Ordering::Relaxed);
    }

    /// Stops the echo and deletes the media session.
    pub async fn end(self) {
        self.task.abort();
        if let Some(t) = &self.video_task {
            t.abort();
        }
        if let Err(e) = self.media.delete(self.call.clone()).await {
            tracing::debug!(call = %self.call, error = %e, "echo: delete");
        }
    }
}

impl Drop for EchoCall {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(t) = &self.video_task {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 40000 RTP/AVP 111 0 101\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n";

    #[test]
    fn answers_opus_and_telephone_event() {
        let (te, sdp) = answer_sdp(OFFER, "127.0.0.1".parse().unwrap(), 5004).unwrap();
        assert_eq!(te, Some(101));
        assert!(sdp.contains("m=audio 5004 RTP/AVP 111 101\r\n"), "{sdp}");
        assert!(sdp.contains("a=rtpmap:111 opus/48000/2\r\n"));
        assert!(sdp.contains("c=IN IP4 127.0.0.1\r\n"));
    }

    #[test]
    fn answers_the_offerers_first_codec() {
        let offer = "v=0\r\nm=audio 4000 RTP/AVP 0 111 101\r\na=rtpmap:111 opus/48000/2\r\n\
            a=rtpmap:101 telephone-event/8000\r\n";
        let (_, sdp) = answer_sdp(offer, "127.0.0.1".parse().unwrap(), 5004).unwrap();
        assert!(sdp.contains("m=audio 5004 RTP/AVP 0 101\r\n"), "{sdp}");
    }

    #[test]
    fn falls_back_to_static_pcmu_and_refuses_no_audio() {
        let offer = "v=0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let (te, sdp) = answer_sdp(offer, "::1".parse().unwrap(), 6000).unwrap();
        assert_eq!(te, None);
        assert!(
            sdp.contains("m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"),
            "{sdp}"
        );
        assert!(sdp.contains("c=IN IP6 ::1"));
        assert!(
            answer_sdp(
                "v=0\r\nm=video 4000 RTP/AVP 96\r\n",
                "::1".parse().unwrap(),
                1
            )
            .is_none()
        );
        assert!(
            answer_sdp(
                "v=0\r\nm=audio 4000 RTP/AVP 96\r\n",
                "::1".parse().unwrap(),
                1
            )
            .is_none()
        );
    }

    #[test]
    fn answers_video_vp8_first_then_h264_mode_1() {
        let offer = "v=0\r\nm=audio 4000 RTP/AVP 0\r\nm=video 4002 RTP/AVP 102 108 96\r\n\
            a=rtpmap:102 H264/90000\r\na=fmtp:102 profile-level-id=42001f;packetization-mode=0\r\n\
            a=rtpmap:108 H264/90000\r\na=fmtp:108 profile-level-id=42e01f;packetization-mode=1\r\n\
            a=rtpmap:96 VP8/90000\r\n";
        let (pt, line) = video_answer(offer, 7000).unwrap();
        assert_eq!(pt, 96);
        assert!(
            line.starts_with("m=video 7000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n"),
            "{line}"
        );
        assert!(line.contains("a=rtcp-mux\r\n"));
        let no_vp8 = offer.replace("a=rtpmap:96 VP8/90000\r\n", "");
        let (pt, line) = video_answer(&no_vp8, 7000).unwrap();
        assert_eq!(pt, 108, "mode 1 only: {line}");
        assert!(line.contains("a=fmtp:108 profile-level-id=42e01f;packetization-mode=1\r\n"));
        assert!(video_answer(OFFER, 7000).is_none(), "no video m-line");
        assert!(
            video_answer(
                "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n",
                1
            )
            .is_none()
        );
    }

    fn te_packet(ts: u32, event: u8, end: bool) -> Vec<u8> {
        let mut p = vec![0x80, 101, 0, 1];
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 7, event, if end { 0x80 } else { 0 }, 3, 32]);
        p
    }

    #[test]
    fn dtmf_end_reports_each_event_once() {
        let mut last = None;
        assert_eq!(
            dtmf_end(&te_packet(160, 5, false), Some(101), &mut last),
            None
        );
        assert_eq!(
            dtmf_end(&te_packet(160, 5, true), Some(101), &mut last),
            Some('5')
        );
        assert_eq!(
            dtmf_end(&te_packet(160, 5, true), Some(101), &mut last),
            None
        );
        assert_eq!(
            dtmf_end(&te_packet(960, 11, true), Some(101), &mut last),
            Some('#')
        );
        assert_eq!(dtmf_end(&te_packet(1960, 11, true), None, &mut last), None);
        assert_eq!(
            dtmf_end(&te_packet(1960, 11, true), Some(96), &mut last),
            None
        );
        assert_eq!(dtmf_end(&[0x80, 101], Some(101), &mut last), None);
    }
}
