//! Configuration: embedded defaults, then an optional TOML file, then `WAVEGATE_*` environment
//! variables (`WAVEGATE_HTTP__LISTEN=0.0.0.0:8080` sets `http.listen`).
//!
//! Everything is parsed into typed values here, once; the rest of the process never sees a
//! configuration string. Every field has a default, so an empty file is a valid config.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
pub use wavegate_shared::ports::PortRange;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, the environment or a value was wrong.
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value parsed but is not usable.
    #[error("configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP / WebSocket listener.
    pub http: HttpConfig,
    /// The media plane child process.
    pub media: MediaConfig,
    /// Logging.
    pub log: LogConfig,
    /// The SIP user agent (pages' calls to SIP callees).
    pub sip: SipConfig,
    /// The REST API under `/rest-api/` and `/metrics`.
    pub rest: RestConfig,
    /// REST hooks: the back end called on connect, calls and call status events.
    pub hooks: HooksConfig,
    /// The WebSocket API (`/ws`): application keys, per-browser codec policy.
    pub ws: WsConfig,
}

/// When the REST API (and `/metrics`) asks for the API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RestAuth {
    /// On when `http.listen` is not a loopback address, off on loopback.
    #[default]
    Auto,
    /// Always ask for the key.
    On,
    /// Never ask (only behind a trusted proxy).
    Off,
}

/// REST API settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RestConfig {
    /// Whether requests must carry the key (`X-Api-Key: <key>` or `Authorization: Bearer <key>`).
    pub auth: RestAuth,
    /// The API key; required when auth is in force.
    pub api_key: String,
}

impl RestConfig {
    /// Whether the key is asked for, given where HTTP listens.
    pub fn auth_required(&self, listen: SocketAddr) -> bool {
        match self.auth {
            RestAuth::On => true,
            RestAuth::Off => false,
            RestAuth::Auto => !listen.ip().is_loopback(),
        }
    }
}

/// REST hook settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConfig {
    /// Base URL of the back end (`http://host:port/path`); empty turns hooks off. Each hook is
    /// a POST to `<url>/<hook>` (`connect`, `outgoing_call`, `incoming_call`, `call_status`).
    pub url: String,
    /// Deadline of one attempt.
    pub timeout_ms: u64,
    /// Further attempts after a failed one (transport error, timeout or 5xx).
    pub retries: u32,
    /// What a `connect` hook that cannot be reached means: false lets the session in
    /// (fail open), true refuses it (fail closed).
    pub connect_fail_closed: bool,
}

impl Default for HooksConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout_ms: 2000,
            retries: 1,
            connect_fail_closed: false,
        }
    }
}

/// WebSocket API settings (docs/configuration.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsConfig {
    /// Keys (or auth tokens) a page must give in `connect` (`appKey`); empty: none needed.
    pub app_keys: Vec<String>,
    /// Codec policy per browser family (`chrome`, `edge`, `firefox`, `safari`, `other`).
    pub codecs: std::collections::BTreeMap<String, CodecRule>,
}

/// What one browser family must not use and should prefer (codec names as in `a=rtpmap`,
/// case-insensitive: `opus`, `G722`, `PCMU`, `VP8`, `H264`, `SILK`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CodecRule {
    /// Removed from the SDP the page and the media plane exchange.
    pub strip: Vec<String>,
    /// Moved to the front of offers, in this order.
    pub prefer: Vec<String>,
}

/// Browser families `ws.codecs` may name.
pub const BROWSER_FAMILIES: [&str; 5] = ["chrome", "edge", "firefox", "safari", "other"];

impl Default for WsConfig {
    fn default() -> Self {
        // The seed's known problem 2: Edge failed calls until SILK and G.722 were disabled.
        let edge = CodecRule {
            strip: vec!["SILK".into(), "G722".into()],
            prefer: Vec::new(),
        };
        Self {
            app_keys: Vec::new(),
            codecs: [("edge".to_string(), edge)].into_iter().collect(),
        }
    }
}

/// SIP user agent settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// UDP (and TCP, same port) address of the user agent; port 0 picks a free one.
    pub listen: SocketAddr,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        }
    }
}

/// HTTP listener settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
        }
    }
}

/// Media plane settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Path of `wavegate-mediaplane`; empty means "next to this executable".
    pub binary: Option<PathBuf>,
    /// Number of shards (one pinned core each); 0 means one per available core.
    pub shards: u16,
    /// UDP ports for RTP/RTCP, split evenly among the shards.
    pub rtp_ports: PortRange,
    /// Address the media sockets bind to.
    pub bind_ip: IpAddr,
    /// Address written into SDP (for 1:1 NAT hosts); defaults to `bind_ip`.
    pub announce_ip: Option<IpAddr>,
    /// First UDP port for browsers' WebRTC media: shard k uses base + k (one socket per shard,
    /// demultiplexed by ICE ufrag). 0 disables WebRTC (SIP-to-RTP relaying only).
    pub webrtc_port_base: u16,
    /// CPUs to pin shards to, in shard order; empty means shard k on core k.
    pub cpus: Vec<usize>,
    /// Pin shards to CPUs at all.
    pub pin: bool,
    /// Seconds without media before a call fails with "Failed by RTP activity"; 0 disables.
    pub media_timeout_secs: u32,
    /// Milliseconds between keyframe requests toward a browser whose video goes to a SIP peer
    /// that sent no PLI/FIR on the call (the media plane's `--video-keyframe-interval-ms`); 0 = off.
    pub video_keyframe_interval_ms: u32,
    /// Transcode audio when the browser and the SIP peer share no codec (the media plane's
    /// `--transcoding`); `false` makes such calls fail with "Transcoding required but disabled".
    pub transcoding: bool,
    /// On calls the browser offers, re-offer to the browser once the SIP answer is in: when it
    /// makes the media plane transcode the browser's Opus to an 8 or 16 kHz codec, Opus capped
    /// at that rate (`maxplaybackrate`: narrowband/wideband Opus, ~3x cheaper to decode,
    /// docs/transcoding.md); when it took another video format than the browser sends, the
    /// video narrowed to the SIP side's (docs/webrtc.md). Pages get the offer as a WebSocket
    /// `reoffer` message (the SDK answers it by itself); `false`: no re-offer (the browser keeps
    /// sending fullband Opus, and its video to a SIP side that took another format is dropped).
    pub browser_reoffer: bool,
    /// Send to each RTP/RTCP port's peer from a second socket `connect()`ed to it (the media
    /// plane's `--connect-latched`; docs/webrtc.md): no route lookup per datagram.
    pub connect_latched: bool,
    /// Opus encoder complexity on transcoded calls, 0-10 (the media plane's `--opus-complexity`).
    pub opus_complexity: u8,
    /// Opus inband FEC on transcoded calls (`--opus-fec`).
    pub opus_fec: bool,
    /// Opus DTX on transcoded calls (`--opus-dtx`).
    pub opus_dtx: bool,
    /// Opus encoder bitrate on transcoded calls, bit/s, 6000-128000 (`--opus-bitrate`); 0 (the
    /// default): 20000 toward a narrowband (8 kHz) SIP codec, 24000 toward a wideband one.
    pub opus_bitrate: u32,
    /// Packet loss the Opus encoder expects, percent 0-100 (`--opus-expected-loss-pct`): how
    /// much inband FEC it spends (FEC is coded only when the bitrate affords it).
    pub opus_expected_loss_pct: u8,
    /// Transcoding jitter buffer's playout-margin range, ms (`--jitter-min-ms`, `--jitter-max-ms`).
    pub jitter_min_ms: u32,
    pub jitter_max_ms: u32,
    /// Deadline for one control request to the media plane.
    pub request_timeout_ms: u64,
    /// A shard whose heartbeat is older than this is considered hung; the media plane restarts.
    pub heartbeat_timeout_ms: u64,
    /// Time allowed for a new media plane to attach and start beating.
    pub startup_timeout_ms: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            binary: None,
            shards: 0,
            rtp_ports: PortRange {
                first: 20000,
                last: 39999,
            },
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            announce_ip: None,
            webrtc_port_base: 8443,
            cpus: Vec::new(),
            pin: true,
            media_timeout_secs: 60,
            video_keyframe_interval_ms: 5000,
            transcoding: true,
            browser_reoffer: true,
            connect_latched: true,
            opus_complexity: 0,
            opus_fec: true,
            opus_dtx: false,
            opus_bitrate: 0,
            opus_expected_loss_pct: 10,
            jitter_min_ms: 20,
            jitter_max_ms: 60,
            request_timeout_ms: 2000,
            heartbeat_timeout_ms: 1000,
            startup_timeout_ms: 5000,
        }
    }
}

impl MediaConfig {
    /// The shard count to run with.
    pub fn effective_shards(&self) -> u16 {
        if self.shards > 0 {
            return self.shards;
        }
        std::thread::available_parallelism()
            .map(|n| n.get().min(256) as u16)
            .unwrap_or(1)
    }

    /// The media plane binary to start.
    pub fn binary_path(&self) -> PathBuf {
        if let Some(path) = &self.binary {
            return path.clone();
        }
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("wavegate-mediaplane")))
            .unwrap_or_else(|| PathBuf::from("wavegate-mediaplane"))
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// Filter in `tracing` syntax (`info`, `wavegate=debug,info`); `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (if any), then the `WAVEGATE_*` environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(file, Env::prefixed("WAVEGATE_").split("__"))
    }

    fn load_with_env(file: Option<&Path>, env: Env) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        // Variables the spawner sets for the media plane child are not configuration.
        let env = env.ignore(&["CONFIG", "CONTROL_FD", "DOORBELL_FDS"]);
        let config: Config = figment.merge(env).extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_rtp_ports(self.media.rtp_ports).map_err(ConfigError::Invalid)?;
        let shards = u32::from(self.media.effective_shards());
        let ports = u32::from(self.media.rtp_ports.last - self.media.rtp_ports.first) + 1;
        if ports / shards < 4 {
            return Err(ConfigError::Invalid(format!(
                "media.rtp_ports {} gives fewer than 4 ports to each of {shards} shards",
                self.media.rtp_ports
            )));
        }
        let m = &self.media;
        if m.opus_complexity > 10 {
            return Err(ConfigError::Invalid(format!("media.opus_complexity {} is above 10", m.opus_complexity)));
        }
        if m.opus_bitrate != 0 && !(6_000..=128_000).contains(&m.opus_bitrate) {
            return Err(ConfigError::Invalid(format!(
                "media.opus_bitrate {} must be 0 (automatic) or 6000..=128000 bit/s",
                m.opus_bitrate
            )));
        }
        if m.opus_expected_loss_pct > 100 {
            return Err(ConfigError::Invalid(format!(
                "media.opus_expected_loss_pct {} is above 100",
                m.opus_expected_loss_pct
            )));
        }
        if !(10..=200).contains(&m.jitter_min_ms) || !(m.jitter_min_ms..=200).contains(&m.jitter_max_ms) {
            return Err(ConfigError::Invalid(format!(
                "media.jitter_min_ms {} and media.jitter_max_ms {} must satisfy 10 <= min <= max <= 200",
                m.jitter_min_ms, m.jitter_max_ms
            )));
        }
        let base = self.media.webrtc_port_base;
        if base != 0 && (base < 1024 || u32::from(base) + shards > 65536) {
            return Err(ConfigError::Invalid(format!(
                "media.webrtc_port_base {base} must be 0 (off) or >= 1024 with room for {shards} shards"
            )));
        }
        let webrtc = u32::from(base)..u32::from(base) + shards;
        let rtp = u32::from(self.media.rtp_ports.first)..=u32::from(self.media.rtp_ports.last);
        if base != 0 && webrtc.clone().any(|p| rtp.contains(&p)) {
            return Err(ConfigError::Invalid(format!(
                "media.webrtc_port_base {base} overlaps media.rtp_ports {}",
                self.media.rtp_ports
            )));
        }
        if self.rest.auth_required(self.http.listen) && self.rest.api_key.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "rest.api_key must be set: the REST API asks for it because {} (set rest.auth = \"off\" only behind a trusted proxy)",
                if self.rest.auth == RestAuth::On {
                    "rest.auth = \"on\"".to_string()
                } else {
                    format!("http.listen {} is not a loopback address", self.http.listen)
                }
            )));
        }
        if !self.hooks.url.is_empty() && !self.hooks.url.starts_with("http://") {
            return Err(ConfigError::Invalid(format!(
                "hooks.url {:?} must start with http:// (https is not supported yet)",
                self.hooks.url
            )));
        }
        if self.hooks.timeout_ms == 0 || self.hooks.retries > 5 {
            return Err(ConfigError::Invalid(
                "hooks.timeout_ms must be > 0 and hooks.retries at most 5".into(),
            ));
        }
        for (family, rule) in &self.ws.codecs {
            if !BROWSER_FAMILIES.contains(&family.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "ws.codecs.{family}: unknown browser family (one of {})",
                    BROWSER_FAMILIES.join(", ")
                )));
            }
            let names = rule.strip.iter().chain(&rule.prefer);
            if let Some(bad) = names.into_iter().find(|n| {
                n.is_empty()
                    || !n
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            }) {
                return Err(ConfigError::Invalid(format!(
                    "ws.codecs.{family}: {bad:?} is not a codec name (as in a=rtpmap: opus, G722, VP8)"
                )));
            }
        }
        if self.ws.app_keys.iter().any(|k| k.is_empty()) {
            return Err(ConfigError::Invalid(
                "ws.app_keys: an empty key would let anyone in; remove it".into(),
            ));
        }
        if self.media.heartbeat_timeout_ms < 750 {
            return Err(ConfigError::Invalid(
                "media.heartbeat_timeout_ms must be at least 750 (shards beat every 250 ms)".into(),
            ));
        }
        Ok(())
    }

    /// The effective configuration as TOML (for `--print-config`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// Media ports must stay out of the privileged range and hold at least two pairs.
fn check_rtp_ports(r: PortRange) -> Result<(), String> {
    if r.first < 1024 || r.last - r.first < 3 {
        return Err(format!(
            "media.rtp_ports {r} must be at least 4 ports, all >= 1024"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_roundtrip() {
        let c = Config::load_with_env(None, Env::prefixed("WAVEGATE_TEST_NONE_")).unwrap();
        assert_eq!(c, Config::default());
        let back: Config = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn file_then_env_override() {
        let dir = std::env::temp_dir().join(format!("wg-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "[http]\nlisten = \"127.0.0.1:9001\"\n[media]\nrtp_ports = \"30000-30099\"\nshards = 2\n").unwrap();
        // SAFETY: the variable name is unique to this test.
        unsafe { std::env::set_var("WGT1_MEDIA__SHARDS", "1") };
        let c = Config::load_with_env(Some(&path), Env::prefixed("WGT1_").split("__")).unwrap();
        assert_eq!(c.http.listen.port(), 9001);
        assert_eq!(
            c.media.rtp_ports,
            PortRange {
                first: 30000,
                last: 30099
            }
        );
        assert_eq!(c.media.shards, 1);
    }

    #[test]
    fn transcoding_settings_from_file_and_env_and_their_bounds() {
        let dir = std::env::temp_dir().join(format!("wg-config-tc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tc.toml");
        std::fs::write(&path, "[media]\nopus_complexity = 3\nopus_dtx = true\njitter_max_ms = 80\nopus_bitrate = 16000\n").unwrap();
        // SAFETY: the variable name is unique to this test.
        unsafe { std::env::set_var("WGT5_MEDIA__BROWSER_REOFFER", "false") };
        // SAFETY: the variable name is unique to this test.
        unsafe { std::env::set_var("WGT5_MEDIA__OPUS_FEC", "false") };
        // SAFETY: the variable name is unique to this test.
        unsafe { std::env::set_var("WGT5_MEDIA__OPUS_EXPECTED_LOSS_PCT", "3") };
        let c = Config::load_with_env(Some(&path), Env::prefixed("WGT5_").split("__")).unwrap();
        let m = &c.media;
        assert!(m.connect_latched, "on by default");
        assert_eq!((m.opus_complexity, m.opus_fec, m.opus_dtx), (3, false, true));
        assert_eq!((m.jitter_min_ms, m.jitter_max_ms), (20, 80));
        assert_eq!((m.opus_bitrate, m.opus_expected_loss_pct), (16_000, 3));
        assert!(!m.browser_reoffer, "env override");
        assert!(MediaConfig::default().browser_reoffer, "on by default");
        assert_eq!(MediaConfig::default().opus_bitrate, 0, "automatic by default");
        for bad in ["opus_complexity = 11", "jitter_min_ms = 70", "jitter_min_ms = 5", "jitter_max_ms = 500", "opus_bitrate = 5000", "opus_bitrate = 200000", "opus_expected_loss_pct = 101"] {
            std::fs::write(&path, format!("[media]\n{bad}\n")).unwrap();
            let err = Config::load_with_env(Some(&path), Env::prefixed("WGT6_")).unwrap_err().to_string();
            assert!(err.contains("media."), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("wg-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "[media]\nrtp_ports = \"9-5\"\n").unwrap();
        let err = Config::load_with_env(Some(&path), Env::prefixed("WGT2_"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("port"), "{err}");
        std::fs::write(&path, "[media]\nno_such_key = 1\n").unwrap();
        assert!(Config::load_with_env(Some(&path), Env::prefixed("WGT2_")).is_err());
        assert!(
            Config::load_with_env(Some(&dir.join("missing.toml")), Env::prefixed("WGT2_")).is_err()
        );
    }

    #[test]
    fn ws_app_keys_and_codec_policy() {
        assert_eq!(
            Config::default().ws.codecs["edge"].strip,
            vec!["SILK".to_string(), "G722".to_string()]
        );
        let dir = std::env::temp_dir().join(format!("wg-config-ws-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ws.toml");
        std::fs::write(
            &path,
            "[ws]\napp_keys = [\"k1\"]\n[ws.codecs.firefox]\nprefer = [\"PCMU\"]\n",
        )
        .unwrap();
        let c = Config::load_with_env(Some(&path), Env::prefixed("WGT4_")).unwrap();
        assert_eq!(c.ws.app_keys, vec!["k1".to_string()]);
        assert_eq!(c.ws.codecs["firefox"].prefer, vec!["PCMU".to_string()]);
        // The file adds to the defaults: Edge's rule stays unless overridden.
        assert_eq!(c.ws.codecs["edge"].strip.len(), 2);
        for (text, want) in [
            (
                "[ws.codecs.opera]\nstrip = [\"G722\"]\n",
                "unknown browser family",
            ),
            (
                "[ws.codecs.chrome]\nstrip = [\"G 722\"]\n",
                "not a codec name",
            ),
            ("[ws]\napp_keys = [\"\"]\n", "empty key"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Config::load_with_env(Some(&path), Env::prefixed("WGT4_"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn webrtc_port_base_checks() {
        let mut c = Config::default();
        assert_eq!(c.media.webrtc_port_base, 8443);
        assert!(c.validate().is_ok());
        c.media.webrtc_port_base = 0;
        assert!(c.validate().is_ok(), "0 turns WebRTC off");
        c.media.webrtc_port_base = 80;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("webrtc_port_base")
        );
        c.media.webrtc_port_base = 20010;
        assert!(c.validate().unwrap_err().to_string().contains("overlaps"));
        c.media.shards = 2;
        c.media.webrtc_port_base = 65535;
        assert!(c.validate().is_err(), "no room for the second shard");
    }

    #[test]
    fn rest_key_required_off_loopback() {
        let mut c = Config::default();
        assert!(!c.rest.auth_required(c.http.listen));
        c.http.listen = "0.0.0.0:8080".parse().unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("rest.api_key")
        );
        c.rest.api_key = "k".into();
        assert!(c.validate().is_ok());
        c.rest.auth = RestAuth::Off;
        c.rest.api_key.clear();
        assert!(c.validate().is_ok());
        c.http.listen = "127.0.0.1:8080".parse().unwrap();
        c.rest.auth = RestAuth::On;
        assert!(c.validate().is_err());
        c.rest.auth = RestAuth::Auto;
        c.hooks.url = "https://x".into();
        assert!(c.validate().unwrap_err().to_string().contains("hooks.url"));
    }

    #[test]
    fn port_range_checks() {
        let range = |s: &str| s.parse::<PortRange>().unwrap();
        assert!(check_rtp_ports(range("20000-20003")).is_ok());
        assert!(check_rtp_ports(range("20000-20002")).is_err());
        assert!(check_rtp_ports(range("80-90")).is_err());
        assert!("x".parse::<PortRange>().is_err());
    }
}
