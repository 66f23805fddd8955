//! The SIP side of the `call` scenario's SIP targets: a SIPp UAS that answers every INVITE with
//! a PCMU-only SDP and echoes RTP back to its source (`-rtp_echo`), optionally behind Kamailio
//! as proxy and registrar, and for incoming calls a SIPp UAC that calls registered sessions
//! through the same Kamailio. Scenario and config files live in `loadtest/peers/`.
//!
//! Invariants: every process is started in its own process group and killed (SIGKILL to the
//! group) when its owner is dropped, so nothing outlives the run even on an error path; every
//! wait here (a port to become bound, a process to end) is bounded in time; SIPp is always
//! started with a call limit (`-m`), a concurrency limit (`-l` for the UAC) and a `-timeout`, so
//! it ends by itself too. Ports are given by the caller (checked free here) or taken from 0.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's sip-tester puts SIPp.
pub const SIPP: &str = "/usr/bin/sipp";
/// Where Debian's kamailio puts Kamailio.
pub const KAMAILIO: &str = "/usr/sbin/kamailio";
/// The user part routed by Kamailio to the SIPp UAS.
pub const UAS_USER: &str = "sipp";
/// How long a started process may take to bind its port.
const BIND_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a SIP peer could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SipTargetError {
    /// A binary is not installed.
    #[error("{0} is missing: run `scripts/deps.sh test` (installs sip-tester and kamailio)")]
    Missing(String),
    /// A scenario or config file is not where it should be.
    #[error("{0} is missing (loadtest/peers/ in the source tree; give --peers-dir)")]
    NoFile(PathBuf),
    /// A port asked for is in use.
    #[error("port {0} on 127.0.0.1 is in use")]
    PortInUse(u16),
    /// The process exited or never bound its port.
    #[error("{what} did not start: {detail}")]
    Start {
        /// Which process.
        what: &'static str,
        /// What was seen (exit status, log tail).
        detail: String,
    },
    /// Files, processes.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// How to start the SIP target.
#[derive(Debug, Clone)]
pub struct SipTargetOpts {
    /// `loadtest/peers` (holds `sipp/` and `kamailio/`).
    pub peers_dir: PathBuf,
    /// Put Kamailio in front of the UAS (and run it as registrar).
    pub kamailio: bool,
    /// Kamailio's UDP/TCP port (0: a free one).
    pub kamailio_port: u16,
    /// Kamailio's UDP worker processes.
    pub kamailio_children: u32,
    /// The SIPp UAS's SIP port (0: a free one).
    pub uas_port: u16,
    /// The SIPp UAS's RTP echo port (0: a free one; RTCP echo uses the next port).
    pub uas_media_port: u16,
    /// Calls the UAS takes before it exits by itself (its `-m`).
    pub max_calls: u32,
    /// Seconds SIPp runs at most (its `-timeout`).
    pub max_seconds: u32,
    /// Directory for logs and the copied config (created; kept for inspection).
    pub work_dir: PathBuf,
}

impl SipTargetOpts {
    /// Defaults: Kamailio in front, free ports, two workers, logs under the temp dir.
    pub fn new(peers_dir: PathBuf, max_calls: u32, max_seconds: u32) -> SipTargetOpts {
        SipTargetOpts {
            peers_dir,
            kamailio: true,
            kamailio_port: 0,
            kamailio_children: 2,
            uas_port: 0,
            uas_media_port: 0,
            max_calls,
            max_seconds,
            work_dir: std::env::temp_dir()
                .join(format!("wavegate-loadtest-sip-{}", std::process::id())),
        }
    }
}

/// A process in its own group, SIGKILLed with its group on drop.
#[derive(Debug)]
pub struct Peer {
    child: Child,
    what: &'static str,
    log: PathBuf,
}

impl Peer {
    fn spawn(what: &'static str, mut cmd: Command, log: PathBuf) -> Result<Peer, SipTargetError> {
        let out = std::fs::File::create(&log)?;
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd.spawn()?;
        Ok(Peer { child, what, log })
    }

    /// Its pid (for CPU and RSS from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last 2 KiB of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let cut = text.len().saturating_sub(2048);
        let cut = (cut..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[cut..].to_owned()
    }

    /// Its exit status if it has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `limit` for it to end by itself; its exit status, or None (still running).
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Waits (bounded) until something listens on UDP `port`; fails if the process exits.
    fn wait_bound(&mut self, port: u16) -> Result<(), SipTargetError> {
        let until = Instant::now() + BIND_TIMEOUT;
        while Instant::now() < until {
            if let Some(status) = self.exited() {
                return Err(SipTargetError::Start {
                    what: self.what,
                    detail: format!("exited ({status}):\n{}", self.log_tail()),
                });
            }
            if UdpSocket::bind(("127.0.0.1", port)).is_err() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(SipTargetError::Start {
            what: self.what,
            detail: format!(
                "port {port} not bound after {BIND_TIMEOUT:?}:\n{}",
                self.log_tail()
            ),
        })
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group of our own child (it leads it: process_group(0)).
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// A UDP port free right now on loopback, or `want` checked free (UDP and TCP).
pub fn free_port(want: u16) -> Result<u16, SipTargetError> {
    if want != 0 {
        let udp = UdpSocket::bind(("127.0.0.1", want)).is_ok();
        let tcp = std::net::TcpListener::bind(("127.0.0.1", want)).is_ok();
        return if udp && tcp {
            Ok(want)
        } else {
            Err(SipTargetError::PortInUse(want))
        };
    }
    // Bounded: a few tries for a port free on both UDP and TCP (Kamailio listens on both).
    for _ in 0..32 {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        let port = s.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(SipTargetError::Start {
        what: "port search",
        detail: "no port free on both UDP and TCP".into(),
    })
}

/// UDP ports `p` to `p + 3` free right now, `p` even, or `want` checked: SIPp's audio RTP
/// and RTCP, and its video echo on `p + 2` (and `p + 3`), which a `vp8` call's answer uses.
fn free_pair(want: u16) -> Result<u16, SipTargetError> {
    let all_free = |p: u16| {
        (0..4u16).all(|k| {
            p.checked_add(k)
                .is_some_and(|q| UdpSocket::bind(("127.0.0.1", q)).is_ok())
        })
    };
    if want != 0 {
        return if all_free(want) {
            Ok(want)
        } else {
            Err(SipTargetError::PortInUse(want))
        };
    }
    for _ in 0..64 {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        let p = s.local_addr()?.port() & !1;
        drop(s);
        if p > 1024 && all_free(p) {
            return Ok(p);
        }
    }
    Err(SipTargetError::Start {
        what: "port search",
        detail: "no four free UDP ports in a row".into(),
    })
}

fn need(path: &Path) -> Result<(), SipTargetError> {
    if path.exists() {
        Ok(())
    } else {
        Err(SipTargetError::Missing(path.display().to_string()))
    }
}

fn file(dir: &Path, rel: &str) -> Result<PathBuf, SipTargetError> {
    let p = dir.join(rel);
    if p.exists() {
        Ok(p)
    } else {
        Err(SipTargetError::NoFile(p))
    }
}

/// Kamailio as proxy and registrar (`peers/kamailio/loadtest.cfg`).
#[derive(Debug)]
pub struct Kamailio {
    /// The process (its main process; the workers are in its group).
    pub peer: Peer,
    /// Its UDP/TCP port on 127.0.0.1.
    pub port: u16,
}

impl Kamailio {
    /// Starts it routing `UAS_USER` to `uas_port` (0: no UAS, registrar and proxy only).
    pub fn start(opts: &SipTargetOpts, uas_port: u16) -> Result<Kamailio, SipTargetError> {
        need(Path::new(KAMAILIO))?;
        let template = file(&opts.peers_dir, "kamailio/loadtest.cfg")?;
        let port = free_port(opts.kamailio_port)?;
        std::fs::create_dir_all(&opts.work_dir)?;
        let cfg = std::fs::read_to_string(&template)?
            .replace("@PORT@", &port.to_string())
            .replace("@UAS_USER@", UAS_USER)
            .replace("@UAS_PORT@", &uas_port.to_string())
            .replace("@WORKDIR@", &opts.work_dir.display().to_string())
            .replace(
                "@CHILDREN@",
                &opts.kamailio_children.clamp(1, 16).to_string(),
            );
        let cfg_path = opts.work_dir.join("kamailio.cfg");
        std::fs::write(&cfg_path, cfg)?;
        let mut cmd = Command::new(KAMAILIO);
        cmd.arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-m", "256", "-M", "16", "-w"])
            .arg(&opts.work_dir)
            .arg("-P")
            .arg(opts.work_dir.join("kamailio.pid"));
        let mut peer = Peer::spawn("kamailio", cmd, opts.work_dir.join("kamailio.log"))?;
        peer.wait_bound(port)?;
        // Bound on UDP; TCP too before the first REGISTER may go over it (bounded).
        let until = Instant::now() + BIND_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Kamailio { peer, port })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

/// The running callee: SIPp UAS with RTP echo, maybe behind Kamailio.
#[derive(Debug)]
pub struct SipTarget {
    /// The UAS.
    pub uas: Peer,
    /// The UAS's SIP port.
    pub uas_port: u16,
    /// The UAS's RTP echo port.
    pub uas_media_port: u16,
    /// The proxy/registrar, when asked for.
    pub kamailio: Option<Kamailio>,
}

impl SipTarget {
    /// Starts the UAS (and Kamailio in front when `opts.kamailio`); both are bound when this
    /// returns. Dropping the target kills them.
    pub fn start(opts: &SipTargetOpts) -> Result<SipTarget, SipTargetError> {
        need(Path::new(SIPP))?;
        let scenario = file(&opts.peers_dir, "sipp/uas_echo.xml")?;
        std::fs::create_dir_all(&opts.work_dir)?;
        let uas_port = free_port(opts.uas_port)?;
        let media = free_pair(opts.uas_media_port)?;
        let mut cmd = Command::new(SIPP);
        cmd.arg("-sf").arg(&scenario);
        cmd.args([
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-nostdin",
            "-rtp_echo",
        ]);
        cmd.arg("-p").arg(uas_port.to_string());
        cmd.arg("-mp").arg(media.to_string());
        cmd.arg("-m").arg(opts.max_calls.max(1).to_string());
        cmd.arg("-timeout")
            .arg(format!("{}s", opts.max_seconds.max(1)));
        // No per-message traces (load), errors only; the screen file is SIPp's own summary.
        cmd.args(["-trace_err", "-trace_screen"]);
        cmd.current_dir(&opts.work_dir);
        let mut uas = Peer::spawn("sipp uas", cmd, opts.work_dir.join("sipp-uas.log"))?;
        uas.wait_bound(uas_port)?;
        let kamailio = if opts.kamailio {
            Some(Kamailio::start(opts, uas_port)?)
        } else {
            None
        };
        Ok(SipTarget {
            uas,
            uas_port,
            uas_media_port: media,
            kamailio,
        })
    }

    /// The SIP URI browsers call: the UAS's user at Kamailio, or at the UAS directly.
    pub fn uri(&self) -> String {
        let port = self.kamailio.as_ref().map_or(self.uas_port, |k| k.port);
        format!("sip:{UAS_USER}@127.0.0.1:{port}")
    }

    /// Where sessions REGISTER and send requests (Kamailio), if it runs.
    pub fn registrar(&self) -> Option<SocketAddr> {
        self.kamailio.as_ref().map(Kamailio::addr)
    }

    /// Pids of the peer processes with their names (for CPU and RSS). Kamailio's workers are
    /// children of its main process: [`group_pids`] finds them.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        let mut v = vec![("sipp", self.uas.pid())];
        if let Some(k) = &self.kamailio {
            v.push(("kamailio", k.peer.pid()));
        }
        v
    }
}

/// How to start the calling SIPp (incoming calls to registered sessions).
#[derive(Debug, Clone)]
pub struct UacOpts {
    /// `loadtest/peers`.
    pub peers_dir: PathBuf,
    /// Where the INVITEs go (Kamailio).
    pub proxy: SocketAddr,
    /// One call each, in order: `login;pt;encoding` (the registered login, the one payload
    /// type SIPp offers and its rtpmap encoding, e.g. `in7;0;PCMU/8000`).
    pub callees: Vec<String>,
    /// Calls per second.
    pub cps: f64,
    /// Concurrent calls at most (`-l`).
    pub limit: u32,
    /// How long each call is held after the ACK, ms (`-d`).
    pub hold_ms: u64,
    /// Seconds SIPp runs at most (`-timeout`).
    pub max_seconds: u32,
    /// Logs, the injection file, SIPp's statistics.
    pub work_dir: PathBuf,
}

/// The calling SIPp: one call per callee, through the proxy, with RTP echo.
#[derive(Debug)]
pub struct SipCaller {
    /// The UAC.
    pub uac: Peer,
    /// Its RTP echo port.
    pub media_port: u16,
    work_dir: PathBuf,
}

impl SipCaller {
    /// Writes the injection CSV and starts SIPp; returns once its SIP port is bound.
    pub fn start(opts: &UacOpts) -> Result<SipCaller, SipTargetError> {
        need(Path::new(SIPP))?;
        let scenario = file(&opts.peers_dir, "sipp/uac_echo.xml")?;
        std::fs::create_dir_all(&opts.work_dir)?;
        let csv = opts.work_dir.join("callees.csv");
        let mut text = String::from("SEQUENTIAL\n");
        for c in &opts.callees {
            text.push_str(c);
            text.push_str(";\n");
        }
        std::fs::write(&csv, text)?;
        let port = free_port(0)?;
        let media = free_pair(0)?;
        let mut cmd = Command::new(SIPP);
        cmd.arg(opts.proxy.to_string()).arg("-sf").arg(&scenario);
        cmd.arg("-inf").arg(&csv);
        cmd.args([
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-nostdin",
            "-rtp_echo",
        ]);
        cmd.arg("-p").arg(port.to_string());
        cmd.arg("-mp").arg(media.to_string());
        cmd.arg("-m").arg(opts.callees.len().max(1).to_string());
        cmd.arg("-l").arg(opts.limit.max(1).to_string());
        // Fractional rates: n calls per 100 s (SIPp paces them evenly over the period).
        cmd.arg("-r")
            .arg(format!("{}", (opts.cps * 100.0).round().max(1.0) as u64));
        cmd.args(["-rp", "100000"]);
        cmd.arg("-d").arg(opts.hold_ms.to_string());
        cmd.arg("-timeout")
            .arg(format!("{}s", opts.max_seconds.max(1)));
        // Per-call response times (INVITE -> 200, the scenario's rtd "1") and errors.
        cmd.args([
            "-trace_err",
            "-trace_rtt",
            "-rtt_freq",
            "1",
            "-trace_screen",
        ]);
        cmd.current_dir(&opts.work_dir);
        let mut uac = Peer::spawn("sipp uac", cmd, opts.work_dir.join("sipp-uac.log"))?;
        uac.wait_bound(port)?;
        Ok(SipCaller {
            uac,
            media_port: media,
            work_dir: opts.work_dir.clone(),
        })
    }

    /// The setup times SIPp measured (INVITE sent -> 200 received), ms, from its `_rtt.csv`.
    pub fn setup_ms(&self) -> Vec<f64> {
        let Ok(entries) = std::fs::read_dir(&self.work_dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().ends_with("_rtt.csv") {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                out.extend(parse_rtt_csv(&text));
            }
        }
        out
    }

    /// SIPp's count of successful and failed calls from its `-trace_screen` summary, if written.
    pub fn outcome(&self) -> Option<(u64, u64)> {
        let entries = std::fs::read_dir(&self.work_dir).ok()?;
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().ends_with("_screen.log") {
                return parse_screen(&std::fs::read_to_string(e.path()).ok()?);
            }
        }
        None
    }
}

/// Response times from SIPp's `-trace_rtt` CSV (`Date_ms;response_time_ms;rtd_no`), ms.
pub fn parse_rtt_csv(text: &str) -> Vec<f64> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split(';').nth(1)?.trim().parse::<f64>().ok())
        .collect()
}

/// `Successful call` and `Failed call` cumulative counts from a SIPp screen dump.
pub fn parse_screen(text: &str) -> Option<(u64, u64)> {
    let count = |name: &str| -> Option<u64> {
        let line = text
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with(name))?;
        // "  Successful call        |   0  |   20" : the last column is cumulative.
        line.rsplit('|').next()?.trim().parse().ok()
    };
    Some((count("Successful call")?, count("Failed call")?))
}

/// The pids in process group `pgid` (a peer and its workers), from /proc; bounded by /proc's size.
pub fn group_pids(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the ")" ending the command name: state ppid pgrp ...
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if rest
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse::<u32>().ok())
            == Some(pgid)
        {
            out.push(pid);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_csv_rows_are_read_and_the_header_skipped() {
        let csv =
            "Date_ms;response_time_ms;rtd_no\n1700000000123.4;12.5;1\n1700000000223.4;7.25;1\n";
        assert_eq!(parse_rtt_csv(csv), vec![12.5, 7.25]);
        assert!(parse_rtt_csv("").is_empty());
    }

    #[test]
    fn screen_counts_take_the_cumulative_column() {
        let screen = "  Successful call        |        0                |       19\n  Failed call            |        0                |        1\n";
        assert_eq!(parse_screen(screen), Some((19, 1)));
        assert_eq!(parse_screen("nothing"), None);
    }

    #[test]
    fn a_busy_port_is_refused() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        assert!(matches!(free_port(port), Err(SipTargetError::PortInUse(p)) if p == port));
    }

    fn peers_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
    }

    /// The real peers end to end, without the gateway: the calling SIPp calls the UAS's user
    /// through Kamailio; every call must succeed and have a measured setup time.
    #[test]
    fn sipp_uac_calls_the_sipp_uas_through_kamailio() {
        let work =
            std::env::temp_dir().join(format!("wavegate-sip-target-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        let mut opts = SipTargetOpts::new(peers_dir(), 3, 30);
        opts.work_dir = work.join("uas");
        let mut target = SipTarget::start(&opts).unwrap();
        assert!(target.uri().starts_with("sip:sipp@127.0.0.1:"));
        let proxy = target.registrar().unwrap();
        // Kamailio forks its workers after it binds the port: give them a bounded moment, so
        // that the CPU figures count the workers too.
        let kamailio_pid = target.kamailio.as_ref().unwrap().peer.pid();
        let deadline = Instant::now() + Duration::from_secs(5);
        while group_pids(kamailio_pid).len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(group_pids(kamailio_pid).len() > 1, "Kamailio's workers are in its group");
        let mut caller = SipCaller::start(&UacOpts {
            peers_dir: peers_dir(),
            proxy,
            callees: vec![format!("{UAS_USER};0;PCMU/8000"); 3],
            cps: 10.0,
            limit: 3,
            hold_ms: 200,
            max_seconds: 20,
            work_dir: work.join("uac"),
        })
        .unwrap();
        let status = caller.uac.wait_for_exit(Duration::from_secs(20));
        assert!(
            status.is_some_and(|s| s.success()),
            "uac {status:?}:\n{}\nuas:\n{}",
            caller.uac.log_tail(),
            target.uas.log_tail()
        );
        assert_eq!(caller.outcome(), Some((3, 0)));
        let setup = caller.setup_ms();
        assert_eq!(setup.len(), 3, "{setup:?}");
        // SIPp measures whole milliseconds: 0 is a loopback answer under 1 ms.
        assert!(
            setup.iter().all(|&ms| (0.0..5000.0).contains(&ms)),
            "{setup:?}"
        );
        // The UAS took its -m calls and ends by itself.
        assert!(target.uas.wait_for_exit(Duration::from_secs(10)).is_some());
    }

    #[test]
    fn own_group_is_found() {
        // SAFETY: getpgrp has no preconditions.
        let pgid = unsafe { libc::getpgrp() } as u32;
        assert!(group_pids(pgid).contains(&std::process::id()));
    }
}
