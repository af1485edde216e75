//! `meshd`: the node daemon. See `meshd --help`.

use anyhow::Context;
use mesh_node::daemon::Config;
use tokio_util::sync::CancellationToken;

async fn serve(config: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let stop_workloads = config.stop_workloads_on_exit;
    let daemon = mesh_node::start(config, shutdown.clone()).await?;
    println!(
        "meshd {} peer {}",
        mesh_node::version::LONG,
        daemon.node.id()
    );
    println!("api socket {}", daemon.socket.display());
    let trust = daemon.node.trust();
    match trust.file() {
        _ if trust.is_any() => println!(
            "trust      ANY KEY (--trust-any): workloads signed by anyone run here, with host access"
        ),
        Some(file) => println!("trust      {}", file.display()),
        None => {
            let keys: Vec<String> = trust.policy().keys.keys().map(|k| k.to_string()).collect();
            println!("trust      only the owner's key {}", keys.join(", "));
        }
    }
    if let Some(http) = daemon.http {
        println!("api http   http://{http}");
    }
    for addr in &daemon.addresses {
        println!("listening  {addr}");
    }
    tokio::spawn(mesh_node::daemon::release_freed_memory(
        mesh_node::daemon::MEMORY_RELEASE_PERIOD,
        shutdown.clone(),
    ));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    daemon.mesh.leave().await;
    if stop_workloads {
        let n = daemon.node.stop_all().await;
        tracing::info!(
            instances = n,
            "stopped the workloads (--stop-workloads-on-exit)"
        );
    }
    shutdown.cancel();
    daemon.wait().await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    // Flags > environment > --config file > defaults (see mesh_node::daemon::config_file).
    let args = match mesh_node::daemon::config_file::parse(std::env::args_os()) {
        Ok(args) => args,
        Err(e) => match e.downcast::<clap::Error>() {
            Ok(clap) => clap.exit(),
            Err(e) => {
                eprintln!("error: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        },
    };
    mesh_node::daemon::init_logging(&args.log, args.log_format);
    match mesh_node::daemon::limits::raise_open_files() {
        // A connection is one descriptor; the store, listeners and engines need a few hundred.
        Ok(limit) if limit < u64::from(args.max_connections) + 256 => tracing::warn!(
            limit,
            max_connections = args.max_connections,
            "the open-file limit is low for --max-connections: raise the hard limit (ulimit -Hn, LimitNOFILE=)"
        ),
        Ok(limit) => tracing::debug!(limit, "open files"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let result = args.to_config().and_then(|config| {
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
