//! rtpengine (Sipwise's media relay, Debian `rtpengine-daemon`, userspace only) as a second
//! server under the same load as our media plane: starting it pinned to one CPU, speaking its
//! ng control protocol (a cookie, a space, a bencoded dictionary, over UDP), and the two
//! scenario drivers that program it where our media plane is programmed through its control
//! rings, then hand the packet work to the very same [`relay::drive`] and [`webrtc::drive`].
//!
//! Invariants: rtpengine runs with the kernel forwarding table off (`--table=-1`), so every
//! packet goes through its userspace worker; it is a child of this process (killed on drop,
//! SIGTERM at the end); every ng request has a deadline and a bounded number of retransmits
//! with the same cookie (rtpengine answers a repeated cookie from its cache, so a retransmit
//! never creates a second call). Nothing here copies rtpengine code or text: the protocol is
//! spoken from its public description (bencode per BEP 3, keys as documented for `offer`,
//! `answer`, `delete`, `ping`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinSet;

use crate::relay::{self, Endpoints, RelayPlan, RunError, ServerSide};
use crate::report::Report;
use crate::rtpengine_bencode::{BencodeError, Value};
use crate::sysinfo;
use crate::webrtc::{self, WebRtcPlan};
use crate::webrtc_report::WebRtcReport;
use crate::wire;

/// How to start rtpengine.
#[derive(Debug, Clone)]
pub struct RtpengineConfig {
    /// The `rtpengine` binary.
    pub program: PathBuf,
    /// UDP port of its ng control socket on 127.0.0.1.
    pub ng_port: u16,
    /// Its media port range (inclusive).
    pub ports: (u16, u16),
    /// CPU every one of its threads is pinned to (`None`: not pinned).
    pub cpu: Option<usize>,
    /// Worker threads (`--num-threads`).
    pub threads: u32,
    /// Where its log goes.
    pub log: PathBuf,
}

impl RtpengineConfig {
    /// Its command line: userspace only, loopback, no config file, foreground, quiet.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--config-file=none".into(),
            "--table=-1".into(),
            "--interface=127.0.0.1".into(),
            format!("--listen-ng=127.0.0.1:{}", self.ng_port),
            format!("--port-min={}", self.ports.0),
            format!("--port-max={}", self.ports.1),
            format!("--num-threads={}", self.threads),
            "--foreground".into(),
            "--log-stderr".into(),
            // Warnings and worse: per-call info lines would bill logging to the relay.
            "--log-level=4".into(),
            // No media timeout during a run (a stalled load generator must not end calls).
            "--timeout=600".into(),
            "--delete-delay=0".into(),
        ]
    }

    /// What `rtpengine --version` prints (first line), or why not.
    pub fn version(&self) -> String {
        match std::process::Command::new(&self.program)
            .arg("--version")
            .output()
        {
            Ok(out) => {
                let text = [out.stdout, out.stderr].concat();
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            }
            Err(e) => format!("unknown ({e})"),
        }
    }
}

/// Why an ng request failed.
#[derive(Debug, thiserror::Error)]
pub enum NgError {
    /// Socket trouble.
    #[error("ng socket: {0}")]
    Io(#[from] std::io::Error),
    /// No reply after every retransmit.
    #[error("no ng reply to {command} after {attempts} attempts")]
    Timeout { command: String, attempts: u32 },
    /// A reply that is not `<cookie> <bencoded dictionary>`.
    #[error("malformed ng reply: {0}")]
    Malformed(String),
    /// A reply body that is not bencode.
    #[error("ng reply: {0}")]
    Bencode(#[from] BencodeError),
    /// rtpengine answered with `result` other than `ok`/`pong`.
    #[error("rtpengine refused {command}: {result} {reason}")]
    Refused {
        command: String,
        result: String,
        reason: String,
    },
}

impl From<NgError> for RunError {
    fn from(e: NgError) -> Self {
        RunError::Io(std::io::Error::other(e.to_string()))
    }
}

/// Splits a datagram into cookie and bencoded body.
pub fn split_reply(datagram: &[u8]) -> Result<(&[u8], Value), NgError> {
    let space = datagram
        .iter()
        .position(|&b| b == b' ')
        .ok_or_else(|| NgError::Malformed("no space after the cookie".into()))?;
    let body = Value::decode(&datagram[space + 1..])?;
    if !matches!(body, Value::Dict(_)) {
        return Err(NgError::Malformed("the body is not a dictionary".into()));
    }
    Ok((&datagram[..space], body))
}

/// A dictionary from `(key, value)` pairs.
pub fn dict(pairs: Vec<(&str, Value)>) -> Value {
    Value::Dict(
        pairs
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// The ng client: cheap to clone; each request uses its own ephemeral socket so many can be
/// in flight at once without a demultiplexer.
#[derive(Debug, Clone)]
pub struct NgClient {
    server: SocketAddr,
    timeout: Duration,
    attempts: u32,
}

/// Cookies of this process's ng requests: unique across every client, because rtpengine
/// answers a cookie it has seen from its reply cache whatever the request says.
static NEXT_COOKIE: AtomicU64 = AtomicU64::new(1);

impl NgClient {
    /// A client of the ng socket at `server`; each attempt waits `timeout`.
    pub fn new(server: SocketAddr, timeout: Duration, attempts: u32) -> NgClient {
        NgClient {
            server,
            timeout,
            attempts: attempts.max(1),
        }
    }

    /// Sends `message` (a dictionary with `command`) and returns the reply dictionary, whose
    /// `result` was `ok` or `pong`.
    pub async fn request(&self, message: &Value) -> Result<Value, NgError> {
        let command = message
            .get("command")
            .and_then(Value::as_text)
            .unwrap_or_default();
        let cookie = format!(
            "{:x}_{:x}",
            std::process::id(),
            NEXT_COOKIE.fetch_add(1, Ordering::Relaxed)
        );
        let mut datagram = format!("{cookie} ").into_bytes();
        message.encode(&mut datagram);
        let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).await?;
        let mut buf = vec![0u8; 65536];
        for _ in 0..self.attempts {
            sock.send_to(&datagram, self.server).await?;
            let deadline = tokio::time::Instant::now() + self.timeout;
            // Skip stray datagrams (a late reply to nothing of ours) until the deadline.
            while let Ok(got) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
                let (n, _) = got?;
                let (their_cookie, body) = split_reply(&buf[..n])?;
                if their_cookie != cookie.as_bytes() {
                    continue;
                }
                let result = body.get("result").and_then(Value::as_text);
                return match result.as_deref() {
                    Some("ok") | Some("pong") => Ok(body),
                    other => Err(NgError::Refused {
                        command,
                        result: other.unwrap_or("(none)").to_owned(),
                        reason: body
                            .get("error-reason")
                            .and_then(Value::as_text)
                            .unwrap_or_default(),
                    }),
                };
            }
        }
        Err(NgError::Timeout {
            command,
            attempts: self.attempts,
        })
    }

    /// The `sdp` of a reply.
    fn sdp(reply: &Value) -> Result<String, NgError> {
        reply
            .get("sdp")
            .and_then(Value::as_text)
            .ok_or_else(|| NgError::Malformed("no sdp in the reply".into()))
    }
}

/// A running rtpengine.
pub struct Rtpengine {
    /// The process.
    pub child: tokio::process::Child,
    /// Its pid (for /proc).
    pub pid: u32,
    /// Its control socket.
    pub ng: NgClient,
}

/// Allows the calling thread every CPU again (a previous run pinned it), so a child we start
/// does not inherit the load generator's pinning.
fn allow_all_cpus() {
    // SAFETY: the set is zeroed then filled by the libc macros; sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..sysinfo::nproc() {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Starts rtpengine and waits (bounded) until it answers a ping.
pub async fn start(
    cfg: &RtpengineConfig,
    request_timeout: Duration,
) -> Result<Rtpengine, RunError> {
    // A busy control port would make rtpengine exit; say so plainly instead.
    drop(
        std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, cfg.ng_port)).map_err(|e| {
            RunError::Io(std::io::Error::other(format!(
                "ng port 127.0.0.1:{} is not free: {e}",
                cfg.ng_port
            )))
        })?,
    );
    allow_all_cpus();
    let log = std::fs::File::create(&cfg.log)?;
    let mut cmd = tokio::process::Command::new(&cfg.program);
    cmd.args(cfg.args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    if let Some(cpu) = cfg.cpu {
        // SAFETY: only sched_setaffinity (async-signal-safe) runs between fork and exec; the
        // set is built before the fork.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            cmd.pre_exec(move || {
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| RunError::Io(std::io::Error::other("rtpengine exited at once")))?;
    let ng = NgClient::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, cfg.ng_port)),
        request_timeout,
        3,
    );
    let quick = NgClient::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, cfg.ng_port)),
        Duration::from_millis(250),
        1,
    );
    let ping = dict(vec![("command", Value::str("ping"))]);
    let mut last = None;
    for _ in 0..40 {
        relay::gone(&mut child)?;
        match quick.request(&ping).await {
            Ok(_) => {
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    if let Some(e) = last {
        return Err(RunError::Io(std::io::Error::other(format!(
            "rtpengine never answered a ping ({e}); its log: {}",
            cfg.log.display()
        ))));
    }
    Ok(Rtpengine { child, pid, ng })
}

impl Rtpengine {
    /// SIGTERM, then SIGKILL after 5 s.
    pub async fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(Ok(status)) => tracing::info!(%status, "rtpengine stopped"),
            _ => {
                tracing::warn!("rtpengine ignored SIGTERM for 5 s; killing it");
                let _ = self.child.kill().await;
            }
        }
    }

    /// Deletes `calls` calls (64 in flight, within 20 s overall); returns the failures.
    pub async fn delete_all(&self, calls: impl Iterator<Item = String>) -> u64 {
        let mut failures = 0u64;
        let work = async {
            let mut calls = calls.peekable();
            let mut tasks = JoinSet::new();
            while calls.peek().is_some() || !tasks.is_empty() {
                while tasks.len() < 64
                    && let Some(call) = calls.next()
                {
                    let ng = self.ng.clone();
                    tasks.spawn(async move {
                        let msg = dict(vec![
                            ("command", Value::str("delete")),
                            ("call-id", Value::str(&call)),
                        ]);
                        ng.request(&msg).await
                    });
                }
                match tasks.join_next().await {
                    Some(Ok(Ok(_))) | None => {}
                    Some(Ok(Err(e))) => {
                        failures += 1;
                        tracing::warn!(error = %e, "rtpengine delete failed");
                    }
                    Some(Err(_)) => failures += 1,
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(20), work)
            .await
            .is_err()
        {
            tracing::warn!("gave up deleting rtpengine calls after 20 s");
            failures = failures.max(1);
        }
        failures
    }
}

fn relay_call_id(run: u32, stream: u32) -> String {
    format!("wgre{run}-{stream}")
}

fn webrtc_call_id(run: u32, call: u32) -> String {
    format!("wgrw{run}-{call}")
}

/// `offer` from A, `answer` from B, both plain RTP/AVP. Returns (where A sends, where B sends).
async fn program_relay(
    ng: NgClient,
    run: u32,
    stream: u32,
    a: SocketAddrV4,
    b: SocketAddrV4,
) -> Result<(SocketAddr, SocketAddr), RunError> {
    let call = relay_call_id(run, stream);
    let offer = dict(vec![
        ("command", Value::str("offer")),
        ("call-id", Value::str(&call)),
        ("from-tag", Value::str(&format!("a{stream}"))),
        (
            "sdp",
            Value::str(&wire::endpoint_sdp(u64::from(stream), *a.ip(), a.port())),
        ),
    ]);
    // The offer's reply goes to the answerer: it says where B sends.
    let to_b = NgClient::sdp(&ng.request(&offer).await?)?;
    let answer = dict(vec![
        ("command", Value::str("answer")),
        ("call-id", Value::str(&call)),
        ("from-tag", Value::str(&format!("a{stream}"))),
        ("to-tag", Value::str(&format!("b{stream}"))),
        (
            "sdp",
            Value::str(&wire::endpoint_sdp(u64::from(stream), *b.ip(), b.port())),
        ),
    ]);
    let to_a = NgClient::sdp(&ng.request(&answer).await?)?;
    let addr = |sdp: &str| {
        wire::audio_address(sdp)
            .map(|(ip, port)| SocketAddr::from((ip, port)))
            .map_err(|source| RunError::Sdp { stream, source })
    };
    Ok((addr(&to_a)?, addr(&to_b)?))
}

/// The `relay` scenario through rtpengine: plain RTP <-> RTP, the same streams, schedule and
/// measurement as [`relay::run`]. `plan.mediaplane_args` should hold rtpengine's arguments
/// (they go into the report).
pub async fn run_relay(plan: &RelayPlan, cfg: &RtpengineConfig) -> Result<Report, RunError> {
    let started_unix = sysinfo::unix_now();
    let loadavg_before = sysinfo::loadavg();
    let mut re = start(cfg, plan.request_timeout).await?;
    pin_generator(plan.pin_cpu);
    let rss_idle = relay::mp_rss(&mut re.child, re.pid)?;
    let ends = Endpoints::new(plan.rcvbuf)?;
    let (addr_a, addr_b) = (ends.addr_a, ends.addr_b);
    let run_id = std::process::id();

    let ng = re.ng.clone();
    let (targets, setup_ms) = relay::program_streams(plan.streams, 32, |s| {
        program_relay(ng.clone(), run_id, s, addr_a, addr_b)
    })
    .await?;
    tracing::info!(streams = plan.streams, setup_ms, "rtpengine calls set up");

    let traffic = relay::drive(plan, &mut re.child, re.pid, ends, targets).await?;
    let delete_failures = re
        .delete_all((0..plan.streams).map(|s| relay_call_id(run_id, s)))
        .await;
    re.stop().await;
    traffic.into_report(
        plan,
        ServerSide {
            started_unix,
            loadavg_before,
            setup_ms,
            rss_idle,
            delete_failures,
            rtp_in: 0,
            rtp_out: 0,
            dropped: 0,
        },
    )
}

fn pin_generator(cpu: Option<usize>) {
    if let Some(cpu) = cpu
        && let Err(e) = sysinfo::pin_current_thread(cpu)
    {
        tracing::warn!(error = %e, cpu, "cannot pin the load generator");
    }
}

/// A browser's offer in, rtpengine's answer for the browser out: `offer` with the browser's
/// SDP (ICE, DTLS, SAVPF) turned into plain RTP/AVP without ICE toward the SIP side, then
/// `answer` with the SIP echo's plain SDP, which rtpengine turns back into ICE + DTLS-SRTP.
async fn program_webrtc(
    ng: NgClient,
    run: u32,
    index: u32,
    browser_offer: String,
    echo: SocketAddrV4,
) -> Result<String, RunError> {
    let call = webrtc_call_id(run, index);
    let offer = dict(vec![
        ("command", Value::str("offer")),
        ("call-id", Value::str(&call)),
        ("from-tag", Value::str(&format!("browser{index}"))),
        ("sdp", Value::str(&browser_offer)),
        ("transport-protocol", Value::str("RTP/AVP")),
        ("ICE", Value::str("remove")),
        ("rtcp-mux", Value::strs(&["demux"])),
    ]);
    NgClient::sdp(&ng.request(&offer).await?)?;
    // The echo answers with an SSRC of its own (see `webrtc::echo_ssrc`); the SIP side's SDP
    // announces it, which rtpengine passes on to the browser (str0m only accepts RTP on an
    // SSRC announced in the SDP or tagged with a mid header extension; our media plane
    // announces the SSRC it rewrites to).
    let mut sip_sdp = wire::endpoint_sdp(u64::from(index), *echo.ip(), echo.port());
    if let Some(ssrc) = offered_ssrc(&browser_offer) {
        sip_sdp += &format!("a=ssrc:{} cname:sip{index}\r\n", webrtc::echo_ssrc(ssrc));
    }
    let answer = dict(vec![
        ("command", Value::str("answer")),
        ("call-id", Value::str(&call)),
        ("from-tag", Value::str(&format!("browser{index}"))),
        ("to-tag", Value::str(&format!("sip{index}"))),
        ("sdp", Value::str(&sip_sdp)),
    ]);
    let sdp = NgClient::sdp(&ng.request(&answer).await?)?;
    tracing::debug!(call = index, %browser_offer, answer = %sdp, "rtpengine answered a browser");
    Ok(with_bundle_group(&sdp))
}

/// The first `a=ssrc:<n>` of an SDP.
pub fn offered_ssrc(sdp: &str) -> Option<u32> {
    sdp.lines().find_map(|l| {
        l.strip_prefix("a=ssrc:")?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
}

/// Adds a session-level `a=group:BUNDLE` naming every `a=mid` when an answer has none.
///
/// rtpengine builds the browser's answer from the SIP side's SDP, which has no BUNDLE group
/// (SIP peers rarely bundle); browsers take that, str0m refuses it ("a=group missing"). With
/// one media line, bundling changes nothing on the wire, so the harness adds the line.
pub fn with_bundle_group(sdp: &str) -> String {
    if sdp.lines().any(|l| l.starts_with("a=group:BUNDLE")) {
        return sdp.to_owned();
    }
    let mids: Vec<&str> = sdp
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=mid:"))
        .collect();
    let Some(first_media) = sdp.find("\r\nm=") else {
        return sdp.to_owned();
    };
    if mids.is_empty() {
        return sdp.to_owned();
    }
    let at = first_media + 2;
    format!(
        "{}a=group:BUNDLE {}\r\n{}",
        &sdp[..at],
        mids.join(" "),
        &sdp[at..]
    )
}

/// The `webrtc` scenario through rtpengine: str0m browsers (ICE, DTLS-SRTP) <-> a plain RTP
/// echo, the same calls, schedule and measurement as [`webrtc::run`].
pub async fn run_webrtc(
    plan: &WebRtcPlan,
    cfg: &RtpengineConfig,
) -> Result<WebRtcReport, RunError> {
    let started_unix = sysinfo::unix_now();
    crate::browser::raise_nofile();
    let loadavg_before = sysinfo::loadavg();
    let mut re = start(cfg, plan.request_timeout).await?;
    pin_generator(plan.pin_cpu);
    let rss_idle = relay::mp_rss(&mut re.child, re.pid)?;
    let (echo, echo_addr) = webrtc::echo_socket()?;
    let run_id = std::process::id();
    let ng = re.ng.clone();
    let (browsers, setup_ms) = webrtc::set_up_browsers(plan.calls, |i, offer| {
        program_webrtc(ng.clone(), run_id, i, offer, echo_addr)
    })
    .await?;
    let traffic = webrtc::drive(plan, &mut re.child, re.pid, browsers, echo).await?;
    let delete_failures = re
        .delete_all((0..plan.calls).map(|c| webrtc_call_id(run_id, c)))
        .await;
    re.stop().await;
    traffic.into_report(
        plan,
        ServerSide {
            started_unix,
            loadavg_before,
            setup_ms,
            rss_idle,
            delete_failures,
            rtp_in: 0,
            rtp_out: 0,
            dropped: 0,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_is_split_at_the_first_space() {
        let (cookie, body) = split_reply(b"5323_1 d6:result4:ponge").unwrap();
        assert_eq!(cookie, b"5323_1");
        assert_eq!(
            body.get("result").and_then(Value::as_text).as_deref(),
            Some("pong")
        );
        assert!(matches!(
            split_reply(b"nospace"),
            Err(NgError::Malformed(_))
        ));
        assert!(matches!(split_reply(b"c i1e"), Err(NgError::Malformed(_))));
        assert!(matches!(
            split_reply(b"c d6:result"),
            Err(NgError::Bencode(_))
        ));
    }

    #[test]
    fn bundle_group_is_added_before_the_first_media_line() {
        let sdp = "v=0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:Ab\r\n";
        assert_eq!(
            with_bundle_group(sdp),
            "v=0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE Ab\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:Ab\r\n"
        );
        let bundled = with_bundle_group(sdp);
        assert_eq!(with_bundle_group(&bundled), bundled, "never twice");
        let no_mid = "v=0\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n";
        assert_eq!(with_bundle_group(no_mid), no_mid);
    }

    #[test]
    fn offered_ssrc_is_the_first_ssrc_line() {
        let sdp =
            "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=ssrc:722310928 cname:x\r\na=ssrc:5 msid:y\r\n";
        assert_eq!(offered_ssrc(sdp), Some(722_310_928));
        assert_eq!(offered_ssrc("a=ssrc:x\r\n"), None);
        assert_eq!(offered_ssrc("v=0\r\n"), None);
    }

    #[test]
    fn args_keep_rtpengine_in_userspace_on_loopback() {
        let cfg = RtpengineConfig {
            program: "rtpengine".into(),
            ng_port: 22300,
            ports: (57000, 57999),
            cpu: Some(0),
            threads: 1,
            log: "/dev/null".into(),
        };
        let args = cfg.args();
        for want in [
            "--table=-1",
            "--interface=127.0.0.1",
            "--listen-ng=127.0.0.1:22300",
            "--port-min=57000",
            "--port-max=57999",
            "--num-threads=1",
            "--foreground",
        ] {
            assert!(
                args.iter().any(|a| a == want),
                "{want} missing from {args:?}"
            );
        }
    }

    #[test]
    fn a_request_encodes_as_ng_expects() {
        let msg = dict(vec![
            ("command", Value::str("offer")),
            ("call-id", Value::str("c1")),
            ("rtcp-mux", Value::strs(&["demux"])),
        ]);
        let mut out = Vec::new();
        msg.encode(&mut out);
        assert_eq!(
            out,
            b"d7:call-id2:c17:command5:offer8:rtcp-muxl5:demuxee".to_vec()
        );
    }
}
