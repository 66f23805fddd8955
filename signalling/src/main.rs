//! `wavegate`: the signalling process. Reads the configuration, starts the supervised media
//! plane and serves HTTP until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use wavegate_signalling::Server;
use wavegate_signalling::config::{Config, LogFormat};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Wavegate Web Call Server: browser WebRTC calls to SIP devices.
///
/// Starts the signalling process, which spawns and supervises the media plane
/// (`wavegate-mediaplane`, looked up next to this binary unless `media.binary` says otherwise).
/// With no configuration it listens on http://127.0.0.1:8080 and relays media on
/// 127.0.0.1 ports 20000-39999.
///
/// Configuration is layered: embedded defaults, then the TOML file given with --config, then
/// environment variables WAVEGATE_<SECTION>__<KEY> (for example WAVEGATE_HTTP__LISTEN=0.0.0.0:8080,
/// WAVEGATE_MEDIA__SHARDS=2). See docs/configuration.md.
#[derive(Debug, Parser)]
#[command(name = "wavegate", version, about, long_about)]
struct Cli {
    /// TOML configuration file.
    #[arg(short, long, env = "WAVEGATE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration (defaults + file + environment) as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wavegate: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("wavegate")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wavegate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "wavegate stopped");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn serve(config: Config) -> std::io::Result<()> {
    let mut server = Server::start(&config);
    let counter = wavegate_signalling::metrics::SipCounter(server.registry.metrics().clone());
    match wavegate_signalling::sip::client::SipUserAgent::start_observed(
        config.sip.listen,
        Some(Box::new(counter)),
    )
    .await
    {
        Ok(ua) => {
            tracing::info!(sip = %ua.local_addr(), "SIP user agent listening");
            server.sip = Some(std::sync::Arc::new(ua));
        }
        Err(e) => {
            tracing::error!(error = %e, "SIP user agent not started: pages can call only echo")
        }
    }
    let listener = tokio::net::TcpListener::bind(config.http.listen).await?;
    tracing::info!(
        url = %format!("http://{}/", listener.local_addr()?),
        shards = config.media.effective_shards(),
        rtp_ports = %config.media.rtp_ports,
        "wavegate listening"
    );
    let supervisor = server.supervisor.clone();
    axum::serve(listener, server.router())
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            supervisor.shutdown();
        })
        .await?;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), server.supervision).await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
