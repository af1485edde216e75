//! Starting and stopping a node: open the store, build the engines, recover, serve the local
//! API, run the background loops; everything owned by one cancellation token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mesh_runtime::{Controller, ControllerConfig, Engine, Policy, Registry};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::identity::{self, NodeFile};
use crate::local_api;
use crate::mesh::modules::{Hints, MeshFetcher};
use crate::mesh::peers::PeerTable;
use crate::mesh::{Mesh, MeshConfig};
use crate::net::{self, NetConfig};
use crate::records::book::RecordBook;
use crate::service::{Node, Parts};
use crate::store::Store;

pub mod args;
pub mod config_file;
mod engines;
pub mod limits;
pub use args::Args;
pub use engines::{build_engines, AUTO_ENGINES, KNOWN_ENGINES};

/// Everything a node needs to start. `Config::new(dir)` gives the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Default: `DATA_DIR/meshd.sock`.
    pub api_socket: Option<PathBuf>,
    /// HTTP listener (off by default): loopback only, unless `http_token` is set.
    pub http: Option<SocketAddr>,
    /// File holding the bearer token every HTTP request must carry.
    pub http_token: Option<PathBuf>,
    /// Group that may use the API socket (mode 0660 instead of 0600).
    pub api_group: Option<String>,
    /// The private mesh's key file (see [`load_mesh_key`]); TCP only when set.
    pub mesh_key: Option<PathBuf>,
    /// Established libp2p connections at most.
    pub max_connections: u32,
    /// Requests per second each peer may send (bursts of twice that); 0: no limit.
    pub peer_request_rate: u32,
    /// When set, only these peers may connect.
    pub allowed_peers: Option<Vec<libp2p::PeerId>>,
    /// Engines to enable by name; `None` detects every real engine.
    pub engines: Option<Vec<String>>,
    /// Engines handed in ready-made (tests inject instrumented engines this way).
    pub extra_engines: Vec<Arc<dyn Engine>>,
    pub controller: ControllerConfig,
    pub fingerprint_period: Duration,
    pub monitor_period: Duration,
    /// Stop the workloads' instances when `meshd` exits (`--stop-workloads-on-exit`).
    pub stop_workloads_on_exit: bool,
    pub policy: Policy,
    /// Whose signatures the node accepts (see [`crate::trust`]). Default: any valid
    /// signature, as tests want; `meshd` always sets it (its owner's key by default).
    pub trust: crate::trust::Source,
    /// libp2p listen addresses (port 0 picks a free port).
    pub listen: Vec<libp2p::Multiaddr>,
    /// Peers to join through.
    pub bootstrap: Vec<libp2p::Multiaddr>,
    /// Find peers on the LAN with mDNS (it ignores loopback: testnets bootstrap explicitly).
    pub mdns: bool,
    pub mesh: MeshConfig,
    /// How often the node re-bootstraps.
    pub bootstrap_interval: Duration,
    /// Connections unused for this long close (gossip mesh peers stay connected).
    pub idle_timeout: Duration,
    /// The wasm engine's runner binary (default: `mesh-wasm-runner` next to meshd, or on PATH).
    pub wasm_runner: Option<PathBuf>,
    /// Podman API socket (default: `CONTAINER_HOST`, /run/podman/podman.sock, $XDG_RUNTIME_DIR/podman/podman.sock).
    pub podman_socket: Option<PathBuf>,
    /// Docker API socket (default: `DOCKER_HOST`, /var/run/docker.sock).
    pub docker_socket: Option<PathBuf>,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            api_socket: None,
            http: None,
            http_token: None,
            api_group: None,
            mesh_key: None,
            max_connections: net::MAX_CONNECTIONS,
            peer_request_rate: net::DEFAULT_PEER_REQUEST_RATE,
            allowed_peers: None,
            engines: None,
            extra_engines: Vec::new(),
            controller: ControllerConfig::default(),
            fingerprint_period: Duration::from_secs(5),
            monitor_period: Duration::from_secs(1),
            stop_workloads_on_exit: false,
            policy: Policy::default(),
            trust: crate::trust::Source::Fixed(crate::trust::Policy::any()),
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")],
            bootstrap: Vec::new(),
            mdns: false,
            mesh: MeshConfig::default(),
            bootstrap_interval: Duration::from_secs(5 * 60),
            idle_timeout: Duration::from_secs(30),
            wasm_runner: None,
            podman_socket: None,
            docker_socket: None,
        }
    }

    pub fn socket_path(&self) -> PathBuf {
        self.api_socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("meshd.sock"))
    }
}

/// The log filter `meshd` runs with: `spec` (`--log`, or `RUST_LOG` when set), with sled
/// capped at info whatever it asks. sled's debug and trace lines print the pages it writes,
/// stored values included, so a replica's spec with its Secret values, or a data key, would
/// reach the log. The cap is a directive of the filter itself rather than a layer over it: a
/// layer that lets everything else through raises the subscriber's maximum level to trace, and
/// every disabled `debug!`/`trace!` in the process (libp2p's, sled's through `log`) is then
/// checked at run time instead of skipped (remote applies were ~40 % slower).
pub fn log_filter(spec: &str) -> tracing_subscriber::EnvFilter {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => match tracing_subscriber::EnvFilter::try_new(&v) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("warning: RUST_LOG={v:?} is not a log filter ({e}); using {spec:?}");
                tracing_subscriber::EnvFilter::new(spec)
            }
        },
        _ => tracing_subscriber::EnvFilter::new(spec),
    };
    cap_filter(filter)
}

/// How `meshd` writes its log to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when stderr is a terminal.
    Text,
    /// One JSON object per line: time, level, target, fields, and the enclosing spans.
    Json,
}

/// Installs the global subscriber: `spec` (or RUST_LOG) filters, `format` shapes, stderr
/// receives. Colour codes only reach a terminal, never a file or a pipe.
pub fn init_logging(spec: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter(spec))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

/// `filter` with sled capped at info (see [`log_filter`]).
pub fn cap_filter(filter: tracing_subscriber::EnvFilter) -> tracing_subscriber::EnvFilter {
    filter.add_directive("sled=info".parse().expect("a valid directive"))
}

/// Default data directory: `$XDG_DATA_HOME/mesh` (or `~/.local/share/mesh`).
pub fn default_data_dir() -> PathBuf {
    dirs::data_local_dir()
        .unwrap_or_else(|| PathBuf::from("/var/lib"))
        .join("mesh")
}

/// A started node. Stop it by cancelling the token given to [`start`], then [`Daemon::wait`].
#[derive(Debug)]
pub struct Daemon {
    pub node: Node,
    pub mesh: Mesh,
    pub socket: PathBuf,
    pub http: Option<SocketAddr>,
    /// libp2p listen addresses, each ending in `/p2p/<peer id>`.
    pub addresses: Vec<String>,
    tasks: TaskTracker,
}

impl Daemon {
    /// Waits until every task of the node has stopped.
    pub async fn wait(self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Reads a private mesh's key: the swarm key format of libp2p and IPFS
/// (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits, one per line). Make one with
/// `printf '/key/swarm/psk/1.0.0/\n/base16/\n%s\n' "$(openssl rand -hex 32)" > mesh.key`.
pub fn load_mesh_key(path: &std::path::Path) -> anyhow::Result<libp2p::pnet::PreSharedKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the mesh key {}", path.display()))?;
    // libp2p-pnet slices the key line by bytes: a character of several bytes in it panics.
    if !text.is_ascii() {
        anyhow::bail!(
            "{} is not a mesh key (it has characters other than ASCII): expected three lines, /key/swarm/psk/1.0.0/, /base16/ and 64 hex digits",
            path.display()
        );
    }
    text.parse().map_err(|e| {
        anyhow::anyhow!(
            "{} is not a mesh key ({e}): expected three lines, /key/swarm/psk/1.0.0/, /base16/ and 64 hex digits",
            path.display()
        )
    })
}

/// Starts a node and returns once its API is being served.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Daemon> {
    // The API's access settings first: a bad one must stop the node before it does anything.
    if let Some(addr) = config.http {
        local_api::check_http(addr, config.http_token.as_deref())?;
    }
    let http_token = config
        .http_token
        .as_deref()
        .map(local_api::Token::load)
        .transpose()?;
    let mesh_key = config.mesh_key.as_deref().map(load_mesh_key).transpose()?;
    if let Some(key) = &mesh_key {
        tracing::info!(fingerprint = %key.fingerprint(), "private mesh: peers without its key cannot connect (TCP only)");
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let db_dir = config.data_dir.join("db");
    let store = Store::open(&db_dir).with_context(|| {
        format!(
            "cannot open the store in {} (is another meshd using this --data-dir?)",
            db_dir.display()
        )
    })?;
    let keypair = identity::load_or_create(&config.data_dir)?;
    let node_id = keypair.public().to_peer_id().to_string();
    let trust = crate::trust::Trust::new(config.trust.clone(), keypair.public().to_peer_id())?;
    if trust.is_any() {
        tracing::warn!(
            "TRUST-ANY: this node runs workloads signed by ANY key, with all host access; \
             for development and testnets only"
        );
    }

    let metrics = Arc::new(crate::metrics::Metrics::new());
    let mut registry = Registry::new();
    // The network first: the wasm engine fetches modules through it, and the mesh shares
    // its peer table and module hints with that fetcher.
    let mut net_config = NetConfig::new(keypair.clone());
    net_config.listen = config.listen.clone();
    net_config.bootstrap = config.bootstrap.clone();
    net_config.mdns = config.mdns;
    net_config.bootstrap_interval = config.bootstrap_interval;
    net_config.idle_timeout = config.idle_timeout;
    net_config.mesh_key = mesh_key;
    net_config.max_connections = config.max_connections;
    net_config.peer_request_rate = config.peer_request_rate;
    net_config.allowed_peers = config.allowed_peers.clone();
    net_config.trust = Some(trust.clone());
    net_config.metrics = metrics.clone();
    net_config.deploy_timeout = config.controller.health_timeout * 2 + Duration::from_secs(60);
    let (client, events, event_loop) =
        net::new(net_config, shutdown.clone()).map_err(|e| anyhow::anyhow!("network: {e}"))?;
    let peers = Arc::new(PeerTable::new(config.mesh.heartbeat_validity()));
    let module_hints = Arc::new(Hints::default());
    let fetcher = MeshFetcher::new(client.clone(), peers.clone(), module_hints.clone());
    let auto = vec![AUTO_ENGINES.to_string()];
    let engines = build_engines(config.engines.as_ref().unwrap_or(&auto), &config, &fetcher)?;
    for engine in engines
        .into_iter()
        .chain(config.extra_engines.iter().cloned())
    {
        registry.register(engine);
    }
    let registry = Arc::new(registry);
    registry.refresh().await;

    let controller = Controller::new(registry.clone(), config.controller.clone());
    // Modules bundled into applies are kept even on a node without the wasm engine: it
    // serves them to the nodes that run them.
    let modules = mesh_engine_wasm::ModuleStore::open(config.data_dir.join("wasm"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let records = Arc::new(
        RecordBook::load(store.clone(), trust.clone())
            .context("cannot load the workload records")?,
    );
    let (changes_tx, changes_rx) = mpsc::channel(crate::service::CHANGE_CHANNEL);
    let node = Node::new(Parts {
        id: node_id,
        store,
        controller,
        policy: config.policy.clone(),
        trust: trust.clone(),
        changes: changes_tx,
        modules: Some(modules),
        metrics: metrics.clone(),
    });
    let summary = node
        .recover_all()
        .await
        .map_err(|e| anyhow::anyhow!("recovery failed: {e}"))?;
    if summary != Default::default() {
        tracing::info!(?summary, "recovered workloads");
    }

    let tasks = TaskTracker::new();
    tasks.spawn(event_loop.run());
    tasks.spawn(crate::trust::watch::run(trust, shutdown.clone()));
    let mesh = Mesh::start(
        crate::mesh::Parts {
            node: node.clone(),
            net: client.clone(),
            events,
            changes: changes_rx,
            records,
            keypair,
            config: config.mesh.clone(),
            peers,
            module_hints,
        },
        &tasks,
        shutdown.clone(),
    );
    let addresses = wait_for_listeners(&mesh, config.listen.len()).await;

    let socket = config.socket_path();
    let listener = local_api::bind_socket(&socket, config.api_group.as_deref()).await?;
    let router = crate::api::router(mesh.clone(), shutdown.clone()).layer(
        axum::middleware::from_fn_with_state(metrics, crate::metrics::refused::count_refusals),
    );
    {
        let stop = shutdown.clone();
        let router = router.clone();
        let path = socket.clone();
        tasks.spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "local API stopped");
            }
            let _ = std::fs::remove_file(&path);
        });
    }
    let http = match config.http {
        Some(addr) => {
            let router = match http_token {
                Some(token) => router.layer(axum::middleware::from_fn_with_state(
                    token,
                    local_api::require_token,
                )),
                None => router,
            };
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let local = listener.local_addr()?;
            let stop = shutdown.clone();
            tasks.spawn(async move {
                if let Err(e) = axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                {
                    tracing::error!(error = %e, "HTTP API stopped");
                }
            });
            Some(local)
        }
        None => None,
    };
    tasks.spawn(
        registry
            .clone()
            .run_fingerprints(config.fingerprint_period, shutdown.clone()),
    );
    tasks.spawn(
        node.clone()
            .run_monitor(config.monitor_period, shutdown.clone()),
    );
    tasks.spawn(node.clone().run_engine_events(shutdown.clone()));
    identity::write_node_file(
        &config.data_dir,
        &NodeFile {
            peer_id: node.id().to_string(),
            addresses: addresses.clone(),
            api_socket: socket.display().to_string(),
            http: http.map(|h| format!("http://{h}")),
            pid: std::process::id(),
        },
    )?;
    tracing::info!(node = %node.id(), socket = %socket.display(), http = ?http, engines = ?registry.names().collect::<Vec<_>>(), "meshd ready");
    Ok(Daemon {
        node,
        mesh,
        socket,
        http,
        addresses,
        tasks,
    })
}

/// Bound on waiting for the listeners to report their addresses at start.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until every listener reported an address (ports 0 are resolved then).
async fn wait_for_listeners(mesh: &Mesh, wanted: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        let addrs = mesh.addresses().await;
        if addrs.len() >= wanted.max(1) || tokio::time::Instant::now() >= deadline {
            if addrs.is_empty() {
                tracing::warn!("no listen address reported within {LISTEN_TIMEOUT:?}");
            }
            return addrs;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// How often a daemon hands freed heap memory back to the system.
pub const MEMORY_RELEASE_PERIOD: Duration = Duration::from_secs(10);

/// Hands the heap's free pages back to the system every `period` until `shutdown`.
///
/// A node's allocations come and go with its connections (buffers of streams, Noise and
/// Yamux): the connection manager closes connections that Kademlia lookups opened, and the
/// allocator keeps the freed pages resident unless asked to return them. glibc only returns
/// the top of each arena on its own; `malloc_trim` also releases whole free pages inside
/// them. One daemon per process calls this (not the in-process test harness, whose nodes
/// share one heap).
pub async fn release_freed_memory(period: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => release_free_pages(),
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Returns the heap's whole free pages to the system (glibc); a no-op with other allocators.
#[allow(unsafe_code)] // one FFI call into the C allocator
pub fn release_free_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; any thread may
    // call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Starts a node and serves until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config, shutdown).await?.wait().await;
    Ok(())
}
