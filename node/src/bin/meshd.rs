//! `meshd`: the node daemon. See `meshd --help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use mesh_node::daemon::{default_data_dir, Config, KNOWN_ENGINES};
use tokio_util::sync::CancellationToken;

fn parse_duration(s: &str) -> Result<Duration, String> {
    mesh_protocol::duration::parse(s).map_err(|e| e.to_string())
}

/// Runs a mesh node: accepts workloads over the local API, runs them on its engines, and
/// remembers them across restarts.
#[derive(Debug, Parser)]
#[command(
    name = "meshd",
    version,
    after_help = "\
Examples:
  meshd --engines mock                      a node with the scriptable mock engine
  meshd --data-dir /tmp/n1 --http 127.0.0.1:7070 --engines mock

Talk to it with meshctl (--node DATA_DIR/meshd.sock, or MESH_NODE)."
)]
struct Args {
    /// Where the node keeps its state (store, engine state, API socket).
    #[arg(long, value_name = "DIR", env = "MESH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Path of the local API socket [default: DIR/meshd.sock].
    #[arg(long, value_name = "PATH")]
    api_socket: Option<PathBuf>,
    /// Also serve the local API over HTTP on this loopback address (e.g. 127.0.0.1:7070).
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Engines to enable, comma-separated [default: detect every real engine].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    engines: Option<Vec<String>>,
    /// How long a started workload may take to become healthy.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    health_timeout: Duration,
    /// Grace period between stop and kill.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    stop_grace: Duration,
    /// How often engines are probed for health.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    fingerprint_interval: Duration,
    /// How often running instances are checked for exits.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    monitor_interval: Duration,
    /// Log filter (also RUST_LOG), e.g. info, debug, mesh_node=debug.
    #[arg(long, default_value = "info")]
    log: String,
}

fn config(args: Args) -> anyhow::Result<Config> {
    if let Some(addr) = args.http {
        if !addr.ip().is_loopback() {
            bail!("--http {addr}: the local API has no authentication; bind it to a loopback address (127.0.0.1)");
        }
    }
    if let Some(names) = &args.engines {
        for n in names {
            if !KNOWN_ENGINES.contains(&n.as_str()) {
                bail!(
                    "--engines: unknown engine {n:?} (known: {})",
                    KNOWN_ENGINES.join(", ")
                );
            }
        }
    }
    let mut config = Config::new(args.data_dir.unwrap_or_else(default_data_dir));
    config.api_socket = args.api_socket;
    config.http = args.http;
    config.engines = args.engines;
    config.controller.health_timeout = args.health_timeout;
    config.controller.stop_grace = args.stop_grace;
    config.fingerprint_period = args.fingerprint_interval;
    config.monitor_period = args.monitor_interval;
    Ok(config)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let daemon = mesh_node::start(config, shutdown.clone()).await?;
    println!(
        "meshd {} node {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        daemon.node.id(),
        daemon.socket.display()
    );
    if let Some(http) = daemon.http {
        println!("meshd HTTP API on http://{http}");
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
    daemon.wait().await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&args.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = config(args).and_then(|config| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the runtime")?
            .block_on(serve(config))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
