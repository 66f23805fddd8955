//! `wavegate-mediaplane`: reads its arguments and inherited control region, then runs one
//! pinned io_uring shard thread per region shard until the parent goes away.
//!
//! Exit codes: 0 never in normal operation (the parent kills us), 1 a shard failed (corrupt
//! ring, executor error), 2 bad start-up (arguments, inherited fds, region version), 3 the
//! parent died.

use std::net::IpAddr;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use wavegate_mediaplane::io::{ShardSetup, WebRtcSetup, spawn_shard};
use wavegate_mediaplane::ports::PortRange;
use wavegate_mediaplane::relay::RelayConfig;
use wavegate_shared::ShardId;
use wavegate_shared::region::Region;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Wavegate media plane: relays RTP between call legs; started by the signalling process,
/// which passes the control region in WAVEGATE_CONTROL_FD and doorbells in
/// WAVEGATE_DOORBELL_FDS.
#[derive(Debug, Parser)]
#[command(name = "wavegate-mediaplane", version, about)]
struct Args {
    /// RTP port range, split evenly among shards (even RTP port, RTCP = RTP + 1).
    #[arg(long, default_value = "20000-39999")]
    rtp_ports: PortRange,
    /// Address RTP sockets bind to.
    #[arg(long, default_value = "127.0.0.1")]
    bind_ip: IpAddr,
    /// Address written into SDP (defaults to --bind-ip).
    #[arg(long)]
    announce_ip: Option<IpAddr>,
    /// CPUs to pin shards to, comma-separated; shard k uses entry k modulo the list.
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
    /// Do not pin shards to CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Seconds without media before a call reports MediaTimeout (0 disables).
    #[arg(long, default_value_t = 60)]
    media_timeout_secs: u32,
    /// First WebRTC UDP port: shard k terminates browsers on port base + k (one socket per
    /// shard, demultiplexed by ICE ufrag and 5-tuple). 0 disables WebRTC.
    #[arg(long, default_value_t = 0)]
    webrtc_port_base: u16,
    /// Milliseconds between keyframe requests toward a browser whose video goes to a SIP peer
    /// that has sent no PLI/FIR on the call (SIP video phones without RTCP feedback); 0 = never.
    #[arg(long, default_value_t = wavegate_mediaplane::webrtc::bridge::DEFAULT_KEYFRAME_INTERVAL_MS)]
    video_keyframe_interval_ms: u32,
    /// Transcode calls whose two sides share no audio codec (`false`: such calls fail with
    /// "Transcoding required but disabled").
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    transcoding: bool,
    /// Opus encoder complexity on transcoded calls, 0-10 (0: the cheapest, see
    /// docs/transcoding.md for the cost of each).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=10))]
    opus_complexity: u8,
    /// Opus inband FEC on transcoded calls (coded only when the bitrate affords it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    opus_fec: bool,
    /// Opus DTX on transcoded calls (silence sent as rare tiny frames).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    opus_dtx: bool,
    /// Opus encoder bitrate on transcoded calls, bit/s (6000-128000); 0: 20000 toward an 8 kHz
    /// SIP codec, 24000 toward a 16 kHz one.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=128_000))]
    opus_bitrate: u32,
    /// Packet loss the Opus encoder expects (percent): how much inband FEC it spends.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=100))]
    opus_expected_loss_pct: u8,
    /// Smallest playout margin of the transcoding jitter buffer, ms.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(10..=200))]
    jitter_min_ms: u32,
    /// Largest playout margin of the transcoding jitter buffer, ms (>= --jitter-min-ms).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(10..=200))]
    jitter_max_ms: u32,
    /// Send to each port's peer (the latched one, or the one its SDP gave until then) from a
    /// second socket on the same port `connect()`ed to it, sparing the kernel a route lookup
    /// per datagram (`false`: every send from the port's unconnected socket, with an address).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    connect_latched: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "cannot raise RLIMIT_NOFILE");
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing(args.log_format);
    raise_nofile();
    let parent_pid = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32);

    let (region_fd, bells) = match wavegate_shared::inherit::inherited_fds() {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "no control region inherited; this binary is started by wavegate-signalling");
            return ExitCode::from(2);
        }
    };
    let region = match Region::attach(region_fd) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot attach the control region");
            return ExitCode::from(2);
        }
    };
    if (1..6_000).contains(&args.opus_bitrate) {
        tracing::error!(bitrate = args.opus_bitrate, "--opus-bitrate must be 0 (automatic) or 6000-128000");
        return ExitCode::from(2);
    }
    if args.jitter_min_ms > args.jitter_max_ms {
        tracing::error!(min = args.jitter_min_ms, max = args.jitter_max_ms, "--jitter-min-ms exceeds --jitter-max-ms");
        return ExitCode::from(2);
    }
    let transcode = wavegate_mediaplane::transcode::call::CallSettings {
        opus: wavegate_mediaplane::transcode::codec::OpusSettings {
            complexity: args.opus_complexity,
            fec: args.opus_fec,
            dtx: args.opus_dtx,
            bitrate: args.opus_bitrate,
            expected_loss_pct: args.opus_expected_loss_pct,
        },
        jitter: wavegate_mediaplane::transcode::jitter::JitterConfig { min_ms: args.jitter_min_ms, max_ms: args.jitter_max_ms },
    };
    let shards = region.geometry().shards;
    if bells.len() != usize::from(shards) {
        tracing::error!(shards, doorbells = bells.len(), "doorbell count does not match the shard count");
        return ExitCode::from(2);
    }
    let channels = match region.take_guest_channels() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot take the shard ends of the control rings");
            return ExitCode::from(2);
        }
    };
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut handles = Vec::new();
    for ((k, channel), doorbell) in (0..shards).zip(channels).zip(bells) {
        let shard = ShardId(k);
        let ports = match args.rtp_ports.shard_slice(k, shards) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "bad --rtp-ports");
                return ExitCode::from(2);
            }
        };
        let cpu = if args.no_pin {
            None
        } else if args.cpus.is_empty() {
            Some(usize::from(k) % online)
        } else {
            Some(args.cpus[usize::from(k) % args.cpus.len()])
        };
        let webrtc = if args.webrtc_port_base == 0 {
            None
        } else {
            let Some(port) = args.webrtc_port_base.checked_add(k) else {
                tracing::error!(base = args.webrtc_port_base, shards, "--webrtc-port-base + shard count exceeds 65535");
                return ExitCode::from(2);
            };
            Some(WebRtcSetup {
                bind: std::net::SocketAddr::new(args.bind_ip, port),
                announce_ip: args.announce_ip.unwrap_or(args.bind_ip),
                keyframe_interval_ms: args.video_keyframe_interval_ms,
                transcoding: args.transcoding,
                transcode,
            })
        };
        let setup = ShardSetup {
            webrtc,
            relay: RelayConfig {
                shard,
                ports,
                announce_ip: args.announce_ip.unwrap_or(args.bind_ip),
                media_timeout_secs: args.media_timeout_secs,
            },
            bind_ip: args.bind_ip,
            cpu,
            parent_pid,
            region: region.clone(),
            channel,
            doorbell,
            connect_latched: args.connect_latched,
        };
        match spawn_shard(setup) {
            Ok(h) => handles.push((shard, h)),
            Err(e) => {
                tracing::error!(error = %e, "cannot start shard");
                return ExitCode::from(1);
            }
        }
    }
    tracing::info!(shards, ports = %args.rtp_ports, "media plane started");
    // Shards run until the process ends (a failing shard exits the process itself), so
    // reaching the end of any join is already abnormal.
    for (shard, h) in handles {
        match h.join() {
            Ok(Ok(())) => tracing::error!(%shard, "shard stopped"),
            Ok(Err(e)) => tracing::error!(%shard, error = %e, "shard failed"),
            Err(_) => tracing::error!(%shard, "shard thread panicked"),
        }
    }
    ExitCode::from(1)
}
