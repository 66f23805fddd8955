//! Shared helpers of the SIP call tests: a SIPp instance running one scenario from
//! `tests/peers/sipp/` (killed on drop; a missing `sipp` fails the test with the install hint),
//! a media plane under a `Server`, RTP endpoints, free ports and bounded event waits.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wavegate_signalling::Server;
use wavegate_signalling::call::{CallState, StateChange};
use wavegate_signalling::config::{Config, PortRange};
use wavegate_signalling::sip::SipAccount;
use wavegate_signalling::sip::call::{CallEvent, CallHandle, CallOptions};
use wavegate_signalling::sip::client::SipUserAgent;
use wavegate_signalling::supervisor::PlaneState;

pub const SIPP: &str = "/usr/bin/sipp";
/// Bound on every wait for one event.
pub const EVENT_WAIT: Duration = Duration::from_secs(8);

/// A UDP port free right now (bound and released).
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

/// One SIPp process running a scenario file for one call.
pub struct Sipp {
    child: Child,
    pub port: u16,
    pub media_port: u16,
    dir: PathBuf,
}

impl Sipp {
    /// Starts `scenario` (a file under tests/peers/sipp) as UAS on a free port.
    pub fn uas(scenario: &str, rtp_echo: bool) -> Sipp {
        Self::spawn(scenario, rtp_echo, None, &[], 1)
    }

    /// Starts `scenario` as UAS with extra arguments (e.g. `-key name value`).
    pub fn uas_with(scenario: &str, extra: &[&str]) -> Sipp {
        Self::spawn(scenario, false, None, extra, 1)
    }

    /// Starts `scenario` as UAS for `calls` calls, without message tracing (load runs).
    pub fn uas_calls(scenario: &str, calls: u32) -> Sipp {
        Self::spawn(scenario, false, None, &[], calls)
    }

    /// Starts `scenario` as UAC towards `target`, with extra arguments.
    pub fn uac(scenario: &str, target: SocketAddr, extra: &[&str]) -> Sipp {
        Self::spawn(scenario, false, Some(target), extra, 1)
    }

    fn spawn(
        scenario: &str,
        rtp_echo: bool,
        target: Option<SocketAddr>,
        extra: &[&str],
        calls: u32,
    ) -> Sipp {
        assert!(
            Path::new(SIPP).exists(),
            "{SIPP} is missing: run `scripts/deps.sh test` (installs Debian's sip-tester)"
        );
        let scen = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/peers/sipp")
            .join(scenario);
        assert!(scen.exists(), "{} missing", scen.display());
        let port = free_udp_port();
        let media_port = free_udp_port();
        let dir = std::env::temp_dir().join(format!("wavegate-sipp-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("sipp.out")).unwrap();
        let mut cmd = Command::new(SIPP);
        if let Some(t) = target {
            cmd.arg(t.to_string());
        }
        cmd.arg("-sf").arg(&scen).args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-mi",
            "127.0.0.1",
        ]);
        cmd.args([
            "-mp",
            &media_port.to_string(),
            "-m",
            &calls.to_string(),
            "-nostdin",
            "-timeout",
            "60s",
            "-trace_err",
        ]);
        if calls == 1 {
            cmd.arg("-trace_msg");
        }
        if rtp_echo {
            cmd.arg("-rtp_echo");
        }
        cmd.args(extra);
        use std::os::unix::process::CommandExt;
        cmd.current_dir(&dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().unwrap();
        // SIPp needs a moment to bind before the first INVITE arrives.
        let until = Instant::now() + Duration::from_secs(3);
        let tcp = extra.contains(&"t1");
        while Instant::now() < until
            && if tcp {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            } else {
                UdpSocket::bind(("127.0.0.1", port)).is_ok()
            }
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        Sipp {
            child,
            port,
            media_port,
            dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Waits (bounded) for SIPp to end; asserts it counted the call successful (exit 0).
    pub async fn expect_success(mut self) {
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "SIPp failed ({status}); logs in {}:\n{}",
                    self.dir.display(),
                    self.logs()
                );
                return;
            }
            assert!(
                Instant::now() < until,
                "SIPp still running; logs in {}:\n{}",
                self.dir.display(),
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with("errors.log") || name == "sipp.out" {
                    out.push_str(&format!(
                        "--- {name}\n{}\n",
                        std::fs::read_to_string(e.path()).unwrap_or_default()
                    ));
                }
            }
        }
        out
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        // SAFETY: signalling our own child's process group.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

fn mediaplane_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("wavegate-mediaplane");
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// A server with one media-plane shard on `first_port..first_port+99`, running.
pub async fn media_server(first_port: u16) -> Server {
    media_server_with(first_port, |_| {}).await
}

/// As [`media_server`], with the configuration adjusted by `tune` first.
pub async fn media_server_with(first_port: u16, tune: impl FnOnce(&mut Config)) -> Server {
    let mut c = Config::default();
    c.media.binary = Some(mediaplane_binary());
    c.media.shards = 1;
    c.media.pin = false;
    c.media.rtp_ports = PortRange {
        first: first_port,
        last: first_port + 99,
    };
    c.http.listen = "127.0.0.1:0".parse().unwrap();
    // Tests run in parallel: each server gets its own WebRTC port, never the default 8443.
    c.media.webrtc_port_base = free_udp_port();
    tune(&mut c);
    let server = Server::start(&c);
    let mut rx = server.supervisor.watch_state();
    tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|s| *s == PlaneState::Running),
    )
    .await
    .expect("media plane not running within 10 s")
    .unwrap();
    server
}

/// A plain RTP endpoint's SDP (the browser-facing leg in tests).
pub fn rtp_sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
}

pub fn media_port(sdp: &str) -> u16 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio port in {sdp:?}"))
}

pub fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(&[0xff; 160]);
    p
}

/// A state and its cause, as the tests compare them.
pub fn s(state: CallState, cause: &str) -> (CallState, String) {
    (state, cause.to_string())
}

/// A SIP user agent on an ephemeral loopback port.
pub async fn start_ua() -> SipUserAgent {
    SipUserAgent::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// `sip:bob@<addr>`, the callee of the SIPp scenarios.
pub fn bob_at(addr: SocketAddr) -> String {
    format!("sip:bob@{addr}")
}

/// A plain RTP offer for the endpoint `rtp` (the "browser" side of a test call).
pub fn sdp_for(rtp: &tokio::net::UdpSocket) -> String {
    rtp_sdp(rtp.local_addr().unwrap().port())
}

/// `account` calls `uri` offering `sdp`; the call's media is programmed by `server`'s media
/// plane when one is given (the SDP then goes through it), else the SDP is sent as is.
pub async fn place(
    ua: &SipUserAgent,
    account: &SipAccount,
    uri: &str,
    sdp: String,
    server: Option<&Server>,
    options: CallOptions,
) -> CallHandle {
    ua.call(account, uri, sdp, server.map(|s| s.media.clone()), options)
        .await
        .unwrap()
}

/// An outgoing test call and what it runs on.
pub struct OutgoingCall {
    pub server: Server,
    pub ua: SipUserAgent,
    pub sipp: Sipp,
    /// The plain RTP endpoint playing the browser side.
    pub rtp: tokio::net::UdpSocket,
    pub call: CallHandle,
}

/// `account` calls bob, a SIPp UAS running `scenario` (`echo`: SIPp echoes RTP), through a
/// media server on `first_port..`, offering a fresh plain RTP endpoint; default options.
pub async fn call_sipp(
    first_port: u16,
    scenario: &str,
    echo: bool,
    account: &SipAccount,
) -> OutgoingCall {
    let server = media_server(first_port).await;
    let ua = start_ua().await;
    let sipp = Sipp::uas(scenario, echo);
    let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let call = place(
        &ua,
        account,
        &bob_at(sipp.addr()),
        sdp_for(&rtp),
        Some(&server),
        CallOptions::default(),
    )
    .await;
    OutgoingCall {
        server,
        ua,
        sipp,
        rtp,
        call,
    }
}

/// Waits (bounded, 2 s) until the media plane holds no call.
pub async fn wait_media_released(server: &Server) {
    for _ in 0..100 {
        if server.media.calls().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "media of the call not released: {} calls left",
        server.media.calls().len()
    );
}

/// Waits (bounded, 2 s) until the call's task has ended after its final state.
pub async fn wait_finished(call: &CallHandle) {
    for _ in 0..100 {
        if call.is_finished() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("call task still running after its final state");
}

/// Next event within [`EVENT_WAIT`].
pub async fn next(call: &mut CallHandle) -> CallEvent {
    tokio::time::timeout(EVENT_WAIT, call.next_event())
        .await
        .expect("no call event in time")
        .expect("call task ended without a final state")
}

/// Skips SDP/INFO events and returns the next state change.
pub async fn next_state(call: &mut CallHandle) -> (CallState, String) {
    loop {
        if let CallEvent::State(StateChange { state, cause }) = next(call).await {
            return (state, cause.to_string());
        }
    }
}

/// States until (and including) the first final one.
pub async fn states_until_final(call: &mut CallHandle) -> Vec<(CallState, String)> {
    let mut out = Vec::new();
    for _ in 0..20 {
        let s = next_state(call).await;
        let fin = s.0.is_final();
        out.push(s);
        if fin {
            return out;
        }
    }
    panic!("no final state in {out:?}");
}

pub const KAMAILIO: &str = "/usr/sbin/kamailio";
pub const KAMCMD: &str = "/usr/sbin/kamcmd";
pub const BARESIP: &str = "/usr/bin/baresip";

/// A port free for both UDP and TCP on 127.0.0.1.
pub fn free_udp_tcp_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP in 50 tries");
}

fn kill_group(child: &mut Child) {
    let pgid = child.id() as i32;
    // SAFETY: signalling our own child's process group.
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
}

/// Kamailio running `tests/peers/kamailio/<cfg>` in the foreground; killed on drop.
pub struct Kamailio {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    cfg: String,
}

impl Kamailio {
    pub fn start(cfg: &str) -> Kamailio {
        assert!(
            Path::new(KAMAILIO).exists(),
            "{KAMAILIO} is missing: run `scripts/deps.sh test` (installs Debian's kamailio)"
        );
        let port = free_udp_tcp_port();
        let dir =
            std::env::temp_dir().join(format!("wavegate-kamailio-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Self::spawn(cfg, port, &dir);
        let k = Kamailio {
            child,
            port,
            dir,
            cfg: cfg.to_string(),
        };
        k.wait_ready();
        k
    }

    /// Stops it and starts a fresh instance (empty location table) on the same port.
    pub fn restart(&mut self) {
        kill_group(&mut self.child);
        self.child = Self::spawn(&self.cfg, self.port, &self.dir);
        self.wait_ready();
    }

    fn spawn(cfg: &str, port: u16, dir: &Path) -> Child {
        let template = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/peers/kamailio")
            .join(cfg);
        let text = std::fs::read_to_string(&template)
            .unwrap()
            .replace("@PORT@", &port.to_string())
            .replace("@WORKDIR@", dir.to_str().unwrap());
        let cfg_path = dir.join("kamailio.cfg");
        std::fs::write(&cfg_path, text).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("kamailio.log"))
            .unwrap();
        let mut cmd = Command::new(KAMAILIO);
        cmd.arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-w"])
            .arg(dir)
            .arg("-P")
            .arg(dir.join("kamailio.pid"));
        use std::os::unix::process::CommandExt;
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        cmd.spawn().unwrap()
    }

    fn wait_ready(&self) {
        let until = Instant::now() + Duration::from_secs(8);
        while Instant::now() < until {
            if std::net::TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200))
                .is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "kamailio did not listen on {} within 8 s; log:\n{}",
            self.addr(),
            self.log()
        );
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }

    /// `kamcmd ul.dump`.
    pub fn location_table(&self) -> String {
        let out = Command::new(KAMCMD)
            .arg("-s")
            .arg(format!("unix:{}/kamailio_ctl", self.dir.display()))
            .arg("ul.dump")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (bounded) until `user` has a binding.
    pub async fn wait_registered(&self, user: &str) {
        for _ in 0..100 {
            if self.location_table().contains(&format!("AoR: {user}")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{user} not registered within 10 s:\n{}\nkamailio log:\n{}",
            self.location_table(),
            self.log()
        );
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        kill_group(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A headless baresip (config from tests/peers/baresip), driven over ctrl_tcp; its events are
/// collected by a reader thread. Killed on drop.
pub struct Baresip {
    child: Child,
    pub dir: PathBuf,
    pub ctrl_port: u16,
    events: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    /// The one ctrl_tcp connection (baresip sends events to its latest connection only, so
    /// commands go on the same one).
    ctrl: std::sync::Mutex<std::net::TcpStream>,
    next_token: std::sync::atomic::AtomicU32,
}

/// A mono 16-bit PCM WAV of a sine at `freq` Hz, `secs` long.
pub fn sine_wav(freq: f64, rate: u32, secs: u32) -> Vec<u8> {
    let samples = rate * secs;
    let data_len = samples * 2;
    let mut w = Vec::with_capacity(44 + data_len as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 2).to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let v = (f64::from(i) * freq * 2.0 * std::f64::consts::PI / f64::from(rate)).sin() * 8000.0;
        w.extend_from_slice(&(v as i16).to_le_bytes());
    }
    w
}

fn netstring(v: &serde_json::Value) -> Vec<u8> {
    let body = v.to_string();
    format!("{}:{body},", body.len()).into_bytes()
}

/// Reads netstrings from `s` into `out` until the stream ends.
fn read_netstrings(
    mut s: std::net::TcpStream,
    out: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = s.read(&mut chunk) {
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(colon) = buf.iter().position(|b| *b == b':') {
            let Some(len) = std::str::from_utf8(&buf[..colon])
                .ok()
                .and_then(|t| t.parse::<usize>().ok())
            else {
                return;
            };
            if buf.len() < colon + 1 + len + 1 {
                break;
            }
            if let Ok(v) = serde_json::from_slice(&buf[colon + 1..colon + 1 + len]) {
                out.lock().unwrap().push(v);
            }
            buf.drain(..colon + 1 + len + 1);
        }
    }
}

impl Baresip {
    /// Starts baresip as carol, registering at `kamailio_port`, RTP on `rtp_first..rtp_first+99`.
    pub fn start(kamailio_port: u16, rtp_first: u16) -> Baresip {
        assert!(
            Path::new(BARESIP).exists(),
            "{BARESIP} is missing: run `scripts/deps.sh test` (installs Debian's baresip-core)"
        );
        let sip_port = free_udp_tcp_port();
        let ctrl_port = free_udp_tcp_port();
        let dir = std::env::temp_dir().join(format!(
            "wavegate-baresip-{}-{sip_port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/baresip");
        let fill = |t: String| {
            t.replace("@SIPPORT@", &sip_port.to_string())
                .replace("@RTPFIRST@", &rtp_first.to_string())
                .replace("@RTPLAST@", &(rtp_first + 99).to_string())
                .replace("@CTRLPORT@", &ctrl_port.to_string())
                .replace("@KPORT@", &kamailio_port.to_string())
                .replace("@DIR@", dir.to_str().unwrap_or_default())
        };
        std::fs::write(dir.join("sine440_8000.wav"), sine_wav(440.0, 8000, 30)).unwrap();
        for f in ["config", "accounts"] {
            std::fs::write(
                dir.join(f),
                fill(std::fs::read_to_string(src.join(f)).unwrap()),
            )
            .unwrap();
        }
        let log = std::fs::File::create(dir.join("baresip.log")).unwrap();
        let mut cmd = Command::new(BARESIP);
        cmd.arg("-f").arg(&dir);
        use std::os::unix::process::CommandExt;
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().unwrap();
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let until = Instant::now() + Duration::from_secs(8);
        let stream = loop {
            if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", ctrl_port)) {
                break s;
            }
            assert!(
                Instant::now() < until,
                "baresip ctrl_tcp not listening within 8 s:\n{}",
                std::fs::read_to_string(dir.join("baresip.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let ev = events.clone();
        let ctrl = std::sync::Mutex::new(stream.try_clone().unwrap());
        std::thread::spawn(move || read_netstrings(stream, ev));
        Baresip {
            ctrl,
            next_token: std::sync::atomic::AtomicU32::new(1),
            child,
            dir,
            ctrl_port,
            events,
        }
    }

    /// Sends a ctrl_tcp command on its own connection; returns the response (bounded wait).
    pub fn command(&self, cmd: &str, params: &str) -> serde_json::Value {
        use std::io::Write;
        let token = format!(
            "t{}",
            self.next_token
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let msg = serde_json::json!({"command": cmd, "params": params, "token": token});
        self.ctrl
            .lock()
            .unwrap()
            .write_all(&netstring(&msg))
            .unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self
                .events
                .lock()
                .unwrap()
                .iter()
                .find(|v| {
                    v.get("response").is_some()
                        && v.get("token").and_then(|t| t.as_str()) == Some(&token)
                })
                .cloned();
            if let Some(r) = found {
                return r;
            }
            assert!(Instant::now() < until, "no ctrl_tcp response to {cmd}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Event types seen so far (`CALL_ESTABLISHED`, ...).
    pub fn event_types(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
            .collect()
    }

    /// Waits (bounded) until `count` events of `kind` were seen.
    pub async fn wait_event(&self, kind: &str, count: usize) {
        for _ in 0..200 {
            if self.event_types().iter().filter(|t| *t == kind).count() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "baresip never reported {count} x {kind}: {:?}\nlog:\n{}",
            self.event_types(),
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}
