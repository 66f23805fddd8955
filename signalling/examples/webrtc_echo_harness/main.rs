//! The server side of the headless-Chromium test (`tests/browser/`): starts the real
//! `wavegate-mediaplane` binary with WebRTC enabled, serves the raw RTCPeerConnection page over
//! HTTP on 127.0.0.1, turns the page's `POST /offer` into a `WebRtcOffer`, and plays the SIP
//! side itself: an RTP echo peer (one UDP socket) that answers the media plane's RTP/AVP offer
//! with one codec (Opus or PCMU) plus telephone-event/8000 when offered, and sends every RTP
//! packet it receives back to its source. It decodes the RFC 4733 events it sees (digits, once
//! per event) and records the media plane's `DtmfReceived` events, so DTMF sent by the browser
//! can be checked on the SIP side and again after the echo.
//!
//! Invariants: it talks to the media plane only through the `shared` crate's host API
//! (`spawn_media_plane`, `ControlClient`), binds loopback only, serves one call, and lives at most
//! `--max-secs` (it exits non-zero when that deadline passes). The first line on stdout is
//! `LISTEN <url>` once everything is up; `GET /stats` returns the echo peer's and the media
//! plane's counters as JSON; `POST /shutdown` deletes the call, prints a summary and exits 0.
//! With `--incoming` the call goes the other way: the echo peer is a SIP caller whose offer
//! (`POST /incoming` → `OfferToBrowser`) yields the media plane's offer for the page, and the
//! page's answer (`POST /answer` → `BrowserAnswer`) yields the SIP answer.
//! With `--video vp8|h264` the echo peer also answers the SIP offer's video m-line with that
//! codec (H.264: packetization-mode=1, constrained baseline preferred), `a=rtcp-mux`, on a
//! second echo socket that echoes RTP and RTCP (a PLI about the browser's own stream comes back
//! to it as a keyframe request); its counters are `video_echo` in the JSON.
//! Start-up failures (missing binary, media plane not answering) exit non-zero with a message.

mod sdp;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::{Parser, ValueEnum};
use serde_json::json;
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use wavegate_shared::client::{ClientError, ControlClient};
use wavegate_shared::protocol::{
    Answer, BrowserAnswer, Delete, MediaEvent, OfferFlags, OfferToBrowser, Ping, Query, Stats,
    WebRtcOffer,
};
use wavegate_shared::region::Geometry;
use wavegate_shared::spawn::{MediaPlaneCommand, SpawnError, spawn_media_plane};
use wavegate_shared::{CallId, LegTag};

use sdp::{audio_codecs, echo_answer, echo_offer, echo_video_answer, offered_direction};

/// The codec the echo peer puts in its SIP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SipCodec {
    /// opus/48000/2 (passthrough of the browser's preferred codec).
    Opus,
    /// PCMU/8000 only.
    Pcmu,
}

/// The video codec the echo peer answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum VideoCodec {
    /// VP8/90000.
    Vp8,
    /// H264/90000, packetization-mode=1.
    H264,
}

/// Server side of the headless-Chromium WebRTC echo test.
#[derive(Debug, Parser)]
struct Args {
    /// Path of the `wavegate-mediaplane` binary.
    #[arg(long)]
    mediaplane: PathBuf,
    /// Directory holding `echo.html`.
    #[arg(long)]
    www: PathBuf,
    /// Codec of the echo peer's SIP answer.
    #[arg(long, value_enum, default_value_t = SipCodec::Opus)]
    sip_codec: SipCodec,
    /// The SIP side calls the browser (OfferToBrowser/BrowserAnswer) instead of the browser
    /// offering (WebRtcOffer/Answer).
    #[arg(long)]
    incoming: bool,
    /// Also answer (and echo) the video m-line with this codec.
    #[arg(long, value_enum)]
    video: Option<VideoCodec>,
    /// Hard lifetime; the harness exits with code 3 when it passes.
    #[arg(long, default_value_t = 50)]
    max_secs: u64,
}

/// Why the harness stopped.
#[derive(Debug, thiserror::Error)]
enum HarnessError {
    #[error("{0} not found (build it first: cargo build --workspace --all-targets)")]
    Missing(String),
    #[error("cannot start the media plane: {0}")]
    Spawn(#[from] SpawnError),
    #[error("media plane request failed: {0}")]
    Client(#[from] ClientError),
    #[error("media plane did not answer Ping within 5 s")]
    NotUp,
    #[error("no run of 20 free UDP ports for --rtp-ports on 127.0.0.1")]
    NoPorts,
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// What the echo peer saw.
#[derive(Debug, Default)]
struct EchoStats {
    rtp_packets: u64,
    rtp_bytes: u64,
    rtcp_packets: u64,
    echo_errors: u64,
    payload_types: Vec<u8>,
    ssrcs: Vec<u32>,
    source: Option<SocketAddr>,
    /// The telephone-event payload type of the answer.
    te_pt: Option<u8>,
    dtmf_packets: u64,
    /// Digits seen, one per event (the end packets of one event share its timestamp).
    dtmf_digits: String,
    /// Each event's duration from its end packet (telephone-event/8000: 8 units per ms).
    dtmf_durations_ms: Vec<u32>,
    last_end_ts: Option<u32>,
}

/// The RFC 4733 event code as a digit.
fn dtmf_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// The one call this harness serves.
#[derive(Debug, Clone)]
struct CallInfo {
    call: CallId,
    sip_pt: u8,
    te_pt: Option<u8>,
    sip_offer: String,
    sip_answer: String,
    /// What the browser was given: our answer, or (incoming) our offer.
    browser_sdp: String,
}

struct App {
    client: ControlClient,
    sip_codec: SipCodec,
    incoming: bool,
    page: PathBuf,
    echo_port: u16,
    echo: Arc<Mutex<EchoStats>>,
    video: Option<VideoCodec>,
    video_echo_port: u16,
    video_echo: Arc<Mutex<EchoStats>>,
    /// The payload type the echo peer answered for video.
    video_pt: Mutex<Option<u8>>,
    call: Mutex<Option<CallInfo>>,
    events: Arc<Mutex<Vec<String>>>,
    /// Re-offers from the browser: `(SIP re-offer direction, echo peer's answer direction)`.
    reoffers: Mutex<Vec<(String, String)>>,
    dtmf_events: Arc<Mutex<Vec<serde_json::Value>>>,
    shutdown: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The first `base` in 40000..60000 (step 20) whose 20 UDP ports all bind on 127.0.0.1 now.
fn free_port_run() -> Option<u16> {
    (40_000u16..60_000).step_by(20).find(|&base| {
        let held: Vec<_> = (base..base + 20)
            .map_while(|p| StdUdpSocket::bind((Ipv4Addr::LOCALHOST, p)).ok())
            .collect();
        held.len() == 20
    })
}

fn free_udp_port() -> Result<u16, HarnessError> {
    Ok(StdUdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Sends every datagram back to its source; counts RTP (and RTCP, which it also echoes).
async fn run_echo(sock: UdpSocket, stats: Arc<Mutex<EchoStats>>) {
    let mut buf = [0u8; 2048];
    loop {
        let Ok((n, src)) = sock.recv_from(&mut buf).await else {
            lock(&stats).echo_errors += 1;
            continue;
        };
        let data = &buf[..n];
        {
            let mut s = lock(&stats);
            s.source = Some(src);
            // RTCP packet types 192..=223 occupy the whole second byte (RFC 5761).
            if n >= 2 && (192..=223).contains(&data[1]) {
                s.rtcp_packets += 1;
            } else if n >= 12 && data[0] >> 6 == 2 {
                s.rtp_packets += 1;
                s.rtp_bytes += n as u64;
                let pt = data[1] & 0x7f;
                let cc = usize::from(data[0] & 0x0f);
                let payload = data.get(12 + 4 * cc..).unwrap_or_default();
                if Some(pt) == s.te_pt {
                    s.dtmf_packets += 1;
                    let ts = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
                    // The E bit ends the event; its (up to three) end packets share the timestamp.
                    if payload.len() >= 4 && payload[1] & 0x80 != 0 && s.last_end_ts != Some(ts) {
                        s.last_end_ts = Some(ts);
                        if let Some(d) = dtmf_digit(payload[0]) {
                            s.dtmf_digits.push(d);
                            let units = u16::from_be_bytes([payload[2], payload[3]]);
                            s.dtmf_durations_ms.push(u32::from(units) / 8);
                        }
                    }
                } else if !s.payload_types.contains(&pt) {
                    s.payload_types.push(pt);
                }
                let ssrc = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
                if !s.ssrcs.contains(&ssrc) {
                    s.ssrcs.push(ssrc);
                }
            }
        }
        if sock.send_to(data, src).await.is_err() {
            lock(&stats).echo_errors += 1;
        }
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

async fn serve_page(State(app): State<Arc<App>>) -> Response {
    match tokio::fs::read(&app.page).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], bytes).into_response(),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {e}", app.page.display()),
        ),
    }
}

/// The call id and the browser's and the echo peer's leg tags.
fn ids() -> Option<(CallId, LegTag, LegTag)> {
    Some((
        CallId::new("chromium-echo@wavegate.test").ok()?,
        LegTag::new("browser").ok()?,
        LegTag::new("echo").ok()?,
    ))
}

/// Incoming call: the echo peer's offer in, the media plane's offer for the browser out.
async fn incoming(State(app): State<Arc<App>>) -> Response {
    if !app.incoming || lock(&app.call).is_some() {
        return text(
            StatusCode::CONFLICT,
            "not an incoming-call harness, or the call exists",
        );
    }
    let Some((call, _, sip)) = ids() else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "ids rejected");
    };
    let (sip_pt, sip_offer) = echo_offer(app.sip_codec, app.echo_port);
    let req = OfferToBrowser {
        call: call.clone(),
        from_tag: sip,
        sip_sdp: Some(sip_offer.clone()),
        flags: OfferFlags::default(),
    };
    let reply = match app.client.request(app.client.shard_for(&call), &req).await {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_GATEWAY, format!("OfferToBrowser: {e}")),
    };
    *lock(&app.call) = Some(CallInfo {
        call,
        sip_pt,
        te_pt: None,
        sip_offer,
        sip_answer: String::new(),
        browser_sdp: reply.browser_offer.clone(),
    });
    (
        [(header::CONTENT_TYPE, "application/sdp")],
        reply.browser_offer,
    )
        .into_response()
}

/// Incoming call: the browser's answer in; the media plane's SIP answer is kept (and its
/// telephone-event type given to the echo peer).
async fn answer(State(app): State<Arc<App>>, body: String) -> Response {
    let Some(mut info) = lock(&app.call).clone() else {
        return text(StatusCode::CONFLICT, "no incoming call offered yet");
    };
    let Some((_, browser, _)) = ids() else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "ids rejected");
    };
    let req = BrowserAnswer {
        call: info.call.clone(),
        to_tag: browser,
        sdp: body,
    };
    let reply = match app
        .client
        .request(app.client.shard_for(&info.call), &req)
        .await
    {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_GATEWAY, format!("BrowserAnswer: {e}")),
    };
    let codecs = audio_codecs(&reply.sdp).map(|(_, c)| c).unwrap_or_default();
    if !codecs.iter().any(|(pt, _)| *pt == info.sip_pt) {
        return text(
            StatusCode::BAD_GATEWAY,
            format!("the SIP answer lacks pt {}:\n{}", info.sip_pt, reply.sdp),
        );
    }
    info.te_pt = codecs
        .iter()
        .find(|(_, enc)| enc.eq_ignore_ascii_case("telephone-event/8000"))
        .map(|(pt, _)| *pt);
    info.sip_answer = reply.sdp;
    lock(&app.echo).te_pt = info.te_pt;
    eprintln!(
        "harness: incoming call {} answered by the browser; SIP side pt {}, telephone-event {:?}",
        info.call, info.sip_pt, info.te_pt
    );
    *lock(&app.call) = Some(info);
    StatusCode::NO_CONTENT.into_response()
}

/// Browser offer in, browser answer out; the echo peer answers the SIP offer in between. A
/// second offer on the call is a re-offer (hold/resume): the echo peer answers the SIP re-offer
/// with the mirrored direction.
async fn offer(State(app): State<Arc<App>>, body: String) -> Response {
    if app.incoming {
        return text(StatusCode::CONFLICT, "an incoming-call harness");
    }
    let reoffer = lock(&app.call).is_some();
    let Some((call, browser, sip)) = ids() else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "ids rejected");
    };
    let shard = app.client.shard_for(&call);
    let req = WebRtcOffer {
        call: call.clone(),
        from_tag: browser.clone(),
        sdp: body,
        flags: OfferFlags::default(),
    };
    let reply = match app.client.request(shard, &req).await {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_GATEWAY, format!("WebRtcOffer: {e}")),
    };
    let Some((sip_pt, te_pt, mut sip_answer)) =
        echo_answer(&reply.sip_offer, app.sip_codec, app.echo_port)
    else {
        return text(
            StatusCode::BAD_GATEWAY,
            format!(
                "the SIP offer has no {:?}:\n{}",
                app.sip_codec, reply.sip_offer
            ),
        );
    };
    if let Some(codec) = app.video {
        let dir = offered_direction(&sip_answer);
        match echo_video_answer(&reply.sip_offer, codec, app.video_echo_port, dir) {
            Some((pt, line)) => {
                sip_answer.push_str(&line);
                *lock(&app.video_pt) = Some(pt);
            }
            None => {
                return text(
                    StatusCode::BAD_GATEWAY,
                    format!("the SIP offer has no {codec:?} video:\n{}", reply.sip_offer),
                );
            }
        }
    }
    let ans = Answer {
        call: call.clone(),
        from_tag: browser,
        to_tag: sip,
        sdp: sip_answer.clone(),
    };
    if let Err(e) = app.client.request(shard, &ans).await {
        return text(StatusCode::BAD_GATEWAY, format!("Answer: {e}"));
    }
    if reoffer {
        let dirs = (
            offered_direction(&reply.sip_offer).to_string(),
            offered_direction(&sip_answer).to_string(),
        );
        eprintln!("harness: re-offer {} answered {}", dirs.0, dirs.1);
        lock(&app.reoffers).push(dirs);
        return (
            [(header::CONTENT_TYPE, "application/sdp")],
            reply.browser_answer,
        )
            .into_response();
    }
    lock(&app.echo).te_pt = te_pt;
    eprintln!(
        "harness: call {call} on {shard}; echo peer answers pt {sip_pt} ({:?}), telephone-event {te_pt:?}",
        app.sip_codec
    );
    *lock(&app.call) = Some(CallInfo {
        call,
        sip_pt,
        te_pt,
        sip_offer: reply.sip_offer,
        sip_answer,
        browser_sdp: reply.browser_answer.clone(),
    });
    (
        [(header::CONTENT_TYPE, "application/sdp")],
        reply.browser_answer,
    )
        .into_response()
}

async fn stats_json(app: &App, delete: bool) -> serde_json::Value {
    let info = lock(&app.call).clone();
    // The media plane's quality view (loss, jitter, RTT from RTCP), read before any Delete.
    let quality = match &info {
        Some(i) => {
            let req = Stats {
                call: i.call.clone(),
            };
            match app
                .client
                .request(app.client.shard_for(&i.call), &req)
                .await
            {
                Ok(q) => {
                    serde_json::to_value(q).unwrap_or_else(|e| json!({ "error": e.to_string() }))
                }
                Err(e) => json!({ "error": e.to_string() }),
            }
        }
        None => serde_json::Value::Null,
    };
    let call_stats = match &info {
        Some(i) => {
            let shard = app.client.shard_for(&i.call);
            let r = if delete {
                app.client
                    .request(
                        shard,
                        &Delete {
                            call: i.call.clone(),
                        },
                    )
                    .await
            } else {
                app.client
                    .request(
                        shard,
                        &Query {
                            call: i.call.clone(),
                        },
                    )
                    .await
            };
            match r {
                Ok(s) => {
                    serde_json::to_value(s).unwrap_or_else(|e| json!({ "error": e.to_string() }))
                }
                Err(e) => json!({ "error": e.to_string() }),
            }
        }
        None => serde_json::Value::Null,
    };
    let echo = {
        let s = lock(&app.echo);
        json!({
            "rtp_packets": s.rtp_packets, "rtp_bytes": s.rtp_bytes, "rtcp_packets": s.rtcp_packets,
            "echo_errors": s.echo_errors, "payload_types": s.payload_types, "ssrcs": s.ssrcs,
            "source": s.source.map(|a| a.to_string()),
            "dtmf_packets": s.dtmf_packets, "dtmf_digits": s.dtmf_digits,
            "dtmf_durations_ms": s.dtmf_durations_ms,
        })
    };
    let video_echo = {
        let s = lock(&app.video_echo);
        json!({
            "rtp_packets": s.rtp_packets, "rtp_bytes": s.rtp_bytes, "rtcp_packets": s.rtcp_packets,
            "payload_types": s.payload_types, "ssrcs": s.ssrcs,
        })
    };
    json!({
        "video_pt": *lock(&app.video_pt),
        "video_echo": video_echo,
        "sip_codec": format!("{:?}", app.sip_codec).to_lowercase(),
        "sip_pt": info.as_ref().map(|i| i.sip_pt),
        "te_pt": info.as_ref().and_then(|i| i.te_pt),
        "sip_offer": info.as_ref().map(|i| i.sip_offer.clone()),
        "sip_answer": info.as_ref().map(|i| i.sip_answer.clone()),
        "browser_sdp": info.as_ref().map(|i| i.browser_sdp.clone()),
        "incoming": app.incoming,
        "echo": echo,
        "media_plane": call_stats,
        "quality": quality,
        "events": lock(&app.events).clone(),
        "dtmf_events": lock(&app.dtmf_events).clone(),
        "reoffers": lock(&app.reoffers).clone(),
    })
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    axum::Json(stats_json(&app, false).await).into_response()
}

async fn shutdown(State(app): State<Arc<App>>) -> Response {
    let body = stats_json(&app, true).await;
    app.shutdown.notify_one();
    axum::Json(body).into_response()
}

async fn run(args: Args) -> Result<(), HarnessError> {
    if !args.mediaplane.is_file() {
        return Err(HarnessError::Missing(args.mediaplane.display().to_string()));
    }
    let page = args.www.join("echo.html");
    if !page.is_file() {
        return Err(HarnessError::Missing(page.display().to_string()));
    }
    let webrtc_port = free_udp_port()?;
    let rtp_base = free_port_run().ok_or(HarnessError::NoPorts)?;
    let rtp_ports = format!("{rtp_base}-{}", rtp_base + 19);
    let mp_args = [
        "--rtp-ports",
        &rtp_ports,
        "--no-pin",
        "--bind-ip",
        "127.0.0.1",
        "--webrtc-port-base",
        &webrtc_port.to_string(),
    ];
    let mut mp = spawn_media_plane(&MediaPlaneCommand {
        program: args.mediaplane.clone(),
        args: mp_args.iter().map(Into::into).collect(),
        geometry: Geometry::with_shards(1),
        request_timeout: Duration::from_secs(5),
    })?;
    let client = mp.client.clone();
    let mut up = false;
    for _ in 0..50 {
        if client
            .request(wavegate_shared::ShardId(0), &Ping)
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !up {
        return Err(HarnessError::NotUp);
    }
    let events = Arc::new(Mutex::new(Vec::new()));
    let dtmf_events = Arc::new(Mutex::new(Vec::new()));
    let (sink, dtmf_sink) = (events.clone(), dtmf_events.clone());
    let mut rx = std::mem::replace(&mut mp.events, tokio::sync::mpsc::unbounded_channel().1);
    tokio::spawn(async move {
        while let Some((shard, ev)) = rx.recv().await {
            if let MediaEvent::DtmfReceived {
                tag,
                digit,
                duration_ms,
                ..
            } = &ev
            {
                let tag = tag.as_ref().map(|t| t.to_string());
                lock(&dtmf_sink).push(
                    json!({ "tag": tag, "digit": digit.to_string(), "duration_ms": duration_ms }),
                );
            } else {
                eprintln!("harness: event from {shard}: {ev:?}");
                lock(&sink).push(format!("{ev:?}"));
            }
        }
    });

    let echo_sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let echo_port = echo_sock.local_addr()?.port();
    let echo = Arc::new(Mutex::new(EchoStats::default()));
    tokio::spawn(run_echo(echo_sock, echo.clone()));
    let video_sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let video_echo_port = video_sock.local_addr()?.port();
    let video_echo = Arc::new(Mutex::new(EchoStats::default()));
    tokio::spawn(run_echo(video_sock, video_echo.clone()));

    let app = Arc::new(App {
        client: client.clone(),
        sip_codec: args.sip_codec,
        incoming: args.incoming,
        page,
        echo_port,
        echo,
        video: args.video,
        video_echo_port,
        video_echo,
        video_pt: Mutex::new(None),
        call: Mutex::new(None),
        events,
        reoffers: Mutex::new(Vec::new()),
        dtmf_events,
        shutdown: Notify::new(),
    });
    let router = Router::new()
        .route("/", get(serve_page))
        .route("/echo.html", get(serve_page))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/offer", post(offer))
        .route("/incoming", post(incoming))
        .route("/answer", post(answer))
        .route("/stats", get(stats))
        .route("/shutdown", post(shutdown))
        .with_state(app.clone());
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)).await?;
    let url = format!("http://{}/", listener.local_addr()?);
    eprintln!(
        "harness: media plane pid {} (WebRTC 127.0.0.1:{webrtc_port}, RTP {rtp_ports}); echo peer 127.0.0.1:{echo_port}",
        mp.pid
    );
    println!("LISTEN {url}");
    let app_done = app.clone();
    let serve = axum::serve(listener, router)
        .with_graceful_shutdown(async move { app_done.shutdown.notified().await });
    let outcome = tokio::time::timeout(Duration::from_secs(args.max_secs), serve).await;
    client.close();
    let _ = mp.child.kill().await;
    match outcome {
        Ok(r) => Ok(r?),
        Err(_) => {
            eprintln!(
                "harness: FAILED: no POST /shutdown within {} s",
                args.max_secs
            );
            std::process::exit(3)
        }
    }
}

fn main() {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("harness: FAILED: tokio runtime: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("harness: FAILED: {e}");
        std::process::exit(2);
    }
}
