//! Janus as the gateway under test in `versus-janus`: its configuration (templates kept in
//! `loadtest/peers/janus/`, compiled in so a clean clone needs no extra files), started as a
//! child in a work directory, and stopped.
//!
//! Invariants: Janus reads only the files written here (`-C` and `-F` point at the work
//! directory, never `/etc/janus`); it listens on 127.0.0.1 only, its ICE and SIP-RTP ports come
//! from the caller's range; readiness (its WebSocket port accepting) is awaited with a bound;
//! the child is killed when [`Janus`] is dropped, so an error path leaves nothing behind.

use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Debian's Janus binary.
pub const JANUS: &str = "/usr/bin/janus";
/// The SIP plugin Debian's `janus` package ships.
pub const SIP_PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/janus/plugins/libjanus_sip.so";

const CORE: &str = include_str!("../peers/janus/janus.jcfg");
const WEBSOCKETS: &str = include_str!("../peers/janus/janus.transport.websockets.jcfg");
const SIP: &str = include_str!("../peers/janus/janus.plugin.sip.jcfg");

/// Why Janus could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum JanusServerError {
    /// Not installed.
    #[error("{0} is missing: run `scripts/deps.sh test` (installs Debian's janus)")]
    Missing(&'static str),
    /// The port range cannot be split in two.
    #[error("port range {0:?}: expected LOW-HIGH with at least 4 ports")]
    Range(String),
    /// The WebSocket port is taken.
    #[error("TCP port {0} on 127.0.0.1 is in use")]
    PortInUse(u16),
    /// Janus exited or never listened.
    #[error("janus did not start: {0}")]
    Start(String),
    /// Files and processes.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// How to configure Janus.
#[derive(Debug, Clone)]
pub struct JanusConfig {
    /// Work directory (config files and janus.log go here).
    pub dir: PathBuf,
    /// WebSocket transport port on 127.0.0.1.
    pub ws_port: u16,
    /// UDP ports: the lower half for the core's ICE, the upper half for the SIP plugin's RTP.
    pub ports: (u16, u16),
    /// Janus debug level (0 none .. 7 all; 2 = errors only).
    pub log_level: u8,
    /// The one address Janus gathers ICE candidates on (not on a loopback interface: Janus
    /// skips those; see [`crate::janus_versus`] for the namespace that provides it).
    pub ice_ip: String,
}

/// Splits `LOW-HIGH` into the ICE half and the SIP-RTP half.
pub fn split_range(range: &str) -> Result<((u16, u16), (u16, u16)), JanusServerError> {
    let bad = || JanusServerError::Range(range.to_owned());
    let (a, b) = range.split_once('-').ok_or_else(bad)?;
    let lo: u16 = a.trim().parse().map_err(|_| bad())?;
    let hi: u16 = b.trim().parse().map_err(|_| bad())?;
    if hi < lo || hi - lo < 3 {
        return Err(bad());
    }
    let mid = lo + (hi - lo) / 2;
    Ok(((lo, mid), (mid + 1, hi)))
}

/// The three files (name, contents) for `config`.
pub fn render(config: &JanusConfig) -> Result<Vec<(&'static str, String)>, JanusServerError> {
    let ((ice_lo, ice_hi), (rtp_lo, rtp_hi)) =
        split_range(&format!("{}-{}", config.ports.0, config.ports.1))?;
    let dir = config.dir.display().to_string();
    let fill = |t: &str| {
        t.replace("@DIR@", &dir)
            .replace("@LOG_LEVEL@", &config.log_level.min(7).to_string())
            .replace("@ICE_PORTS@", &format!("{ice_lo}-{ice_hi}"))
            .replace("@ICE_IP@", &config.ice_ip)
            .replace("@WS_PORT@", &config.ws_port.to_string())
            .replace("@SIP_RTP_PORTS@", &format!("{rtp_lo}-{rtp_hi}"))
    };
    Ok(vec![
        ("janus.jcfg", fill(CORE)),
        ("janus.transport.websockets.jcfg", fill(WEBSOCKETS)),
        ("janus.plugin.sip.jcfg", fill(SIP)),
    ])
}

/// A running Janus (killed on drop).
pub struct Janus {
    child: tokio::process::Child,
    pid: u32,
    log: PathBuf,
}

fn listening(port: u16) -> bool {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into();
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

impl Janus {
    /// Writes the configuration and starts Janus; returns once its WebSocket port accepts.
    pub async fn start(config: &JanusConfig, limit: Duration) -> Result<Janus, JanusServerError> {
        for must in [JANUS, SIP_PLUGIN] {
            if !Path::new(must).exists() {
                return Err(JanusServerError::Missing(must));
            }
        }
        if listening(config.ws_port) {
            return Err(JanusServerError::PortInUse(config.ws_port));
        }
        std::fs::create_dir_all(&config.dir)?;
        for (name, text) in render(config)? {
            std::fs::write(config.dir.join(name), text)?;
        }
        let log = config.dir.join("janus.log");
        let _ = std::fs::remove_file(&log);
        // Anything Janus' libraries print (libnice, GLib) goes to janus.out beside its log.
        let out = std::fs::File::create(config.dir.join("janus.out"))?;
        let child = tokio::process::Command::new(JANUS)
            .arg("-C")
            .arg(config.dir.join("janus.jcfg"))
            .arg("-F")
            .arg(&config.dir)
            .arg("-o")
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| JanusServerError::Start(format!("{JANUS}: {e}")))?;
        let pid = child
            .id()
            .ok_or_else(|| JanusServerError::Start("exited at once".into()))?;
        let mut janus = Janus { child, pid, log };
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Some(status) = janus.child.try_wait()? {
                return Err(JanusServerError::Start(format!(
                    "exited ({status}); log: {}",
                    janus.log_tail()
                )));
            }
            let port = config.ws_port;
            if tokio::task::spawn_blocking(move || listening(port))
                .await
                .unwrap_or(false)
            {
                return Ok(janus);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(JanusServerError::Start(format!(
            "port {} not listening after {limit:?}; log: {}",
            config.ws_port,
            janus.log_tail()
        )))
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of its log (for error messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join(" | ")
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!("janus ignored SIGTERM; killing it");
            let _ = self.child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_splits_in_two_halves() {
        assert_eq!(
            split_range("60000-61999").unwrap(),
            ((60000, 60999), (61000, 61999))
        );
        assert_eq!(split_range("10-13").unwrap(), ((10, 11), (12, 13)));
        assert!(split_range("10-12").is_err());
        assert!(split_range("20-10").is_err());
        assert!(split_range("x-10").is_err());
        assert!(split_range("10").is_err());
    }

    #[test]
    fn rendered_config_has_no_placeholder_left() {
        let config = JanusConfig {
            dir: PathBuf::from("/tmp/j"),
            ws_port: 8300,
            ports: (60000, 61999),
            log_level: 2,
            ice_ip: "127.0.0.2".into(),
        };
        let files = render(&config).unwrap();
        assert_eq!(files.len(), 3);
        for (name, text) in &files {
            assert!(!text.contains('@'), "{name} keeps a placeholder");
        }
        let core = &files[0].1;
        assert!(core.contains("rtp_port_range = \"60000-60999\""));
        assert!(core.contains("debug_level = 2"));
        assert!(core.contains("configs_folder = \"/tmp/j\""));
        assert!(core.contains("ice_enforce_list = \"127.0.0.2\""));
        assert!(files[1].1.contains("ws_port = 8300"));
        assert!(files[2].1.contains("rtp_port_range = \"61000-61999\""));
        // Only the SIP plugin: every other plugin Debian ships is disabled.
        assert!(!core.contains("libjanus_sip.so"));
        assert!(core.contains("libjanus_echotest.so"));
    }
}
