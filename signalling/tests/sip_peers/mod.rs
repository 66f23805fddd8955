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
use wavegate_signalling::sip::call::{CallEvent, CallHandle};
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
        Self::spawn(scenario, rtp_echo, None, &[])
    }

    /// Starts `scenario` as UAC towards `target`, with extra arguments.
    pub fn uac(scenario: &str, target: SocketAddr, extra: &[&str]) -> Sipp {
        Self::spawn(scenario, false, Some(target), extra)
    }

    fn spawn(scenario: &str, rtp_echo: bool, target: Option<SocketAddr>, extra: &[&str]) -> Sipp {
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
            "1",
            "-nostdin",
            "-timeout",
            "20s",
            "-trace_err",
            "-trace_msg",
        ]);
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
        while Instant::now() < until && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
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
    let mut c = Config::default();
    c.media.binary = Some(mediaplane_binary());
    c.media.shards = 1;
    c.media.pin = false;
    c.media.rtp_ports = PortRange {
        first: first_port,
        last: first_port + 99,
    };
    c.http.listen = "127.0.0.1:0".parse().unwrap();
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
