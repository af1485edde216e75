//! `meshd`'s command line: every setting as a flag (most also as a key of the config file,
//! see [`super::config_file`]) and how they become a [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;

use super::{default_data_dir, Config, AUTO_ENGINES, KNOWN_ENGINES};

fn parse_duration(s: &str) -> Result<Duration, String> {
    mesh_protocol::duration::parse(s).map_err(|e| e.to_string())
}

/// Runs a mesh node: accepts workloads over the local API, runs them on its engines, and
/// remembers them across restarts.
#[derive(Debug, Parser)]
#[command(
    name = "meshd",
    version = crate::version::LONG,
    after_help = "\
Examples:
  meshd                                     detect Podman and Docker, listen on every interface
  meshd --engines mock                      a node with the scriptable mock engine
  meshd --engines auto,process              detected engines plus native processes
  meshd --data-dir /tmp/n2 --listen /ip4/127.0.0.1/tcp/0 \
        --bootstrap /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW…   join a mesh through a known peer

Its peer id and addresses are printed at start and written to DATA_DIR/node.json.

Settings come from the flags, then their environment variables, then the --config file
(TOML; a key per long flag: data-dir = \"/var/lib/mesh\", see contrib/meshd.toml), then the
defaults.

Talk to it with meshctl (--node DATA_DIR/meshd.sock, or MESH_NODE)."
)]
pub struct Args {
    /// Read settings from this TOML file: each key is a long flag without `--`
    /// (`data-dir = "/var/lib/mesh"`, `engines = ["podman"]`, `mdns = true`). Flags and
    /// environment variables win over it. No file is read unless named.
    #[arg(long, value_name = "FILE", env = "MESH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the node keeps its state (store, engine state, API socket).
    #[arg(long, value_name = "DIR", env = "MESH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Path of the local API socket [default: DIR/meshd.sock].
    #[arg(long, value_name = "PATH")]
    pub api_socket: Option<PathBuf>,
    /// Let the members of this group use the API socket too (mode 0660 instead of 0600).
    #[arg(long, value_name = "GROUP")]
    pub api_group: Option<String>,
    /// Also serve the local API over HTTP (e.g. 127.0.0.1:7070). Loopback only, unless
    /// --http-token is given.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Require `Authorization: Bearer TOKEN` on every HTTP request, TOKEN being this file's
    /// content (at least 16 bytes, e.g. `openssl rand -hex 32`); allows a non-loopback --http.
    #[arg(long, value_name = "FILE")]
    pub http_token: Option<PathBuf>,
    /// Make this a private mesh: peers without this key file cannot complete a handshake
    /// (libp2p pnet; TCP only, QUIC listen addresses are skipped). Every node, and
    /// `meshctl --peer`, needs the same file.
    #[arg(long, value_name = "FILE", env = "MESH_MESH_KEY")]
    pub mesh_key: Option<PathBuf>,
    /// Whose signed workloads this node runs, in which namespaces, with what host access: a
    /// YAML trust file (see docs/security.md), reloaded on SIGHUP and when it changes.
    /// Without it (and without --trust-any) the node trusts only its owner's key.
    #[arg(
        long,
        value_name = "FILE",
        env = "MESH_TRUST_FILE",
        conflicts_with = "trust_any"
    )]
    pub trust_file: Option<PathBuf>,
    /// Run workloads signed by ANY key, with all host access. For development and testnets
    /// only; logged at start and shown by `meshctl nodes`.
    #[arg(long)]
    pub trust_any: bool,
    /// The owner's key, trusted when there is no trust file: the key meshctl signs with
    /// (created on first use) [default: $MESH_KEY, else ~/.config/mesh/user.key of the user
    /// running meshd].
    #[arg(long, value_name = "FILE", env = "MESH_KEY")]
    pub owner_key: Option<PathBuf>,
    /// Only these peers may connect: a file with one peer id per line (# comments).
    #[arg(long, value_name = "FILE")]
    pub allow_peers: Option<PathBuf>,
    /// Established libp2p connections at most (all peers together).
    #[arg(long, value_name = "N", default_value_t = crate::net::MAX_CONNECTIONS)]
    pub max_connections: u32,
    /// Requests per second each peer may send, in bursts of up to twice that; more are
    /// answered "429 rate limited" at once. 0 turns the limit off.
    #[arg(long, value_name = "N", default_value_t = crate::net::DEFAULT_PEER_REQUEST_RATE)]
    pub peer_request_rate: u32,
    /// Engines to enable, comma-separated: podman, docker, wasm, process, mock; `auto` for the
    /// detected ones (Podman and Docker by their sockets, wasm by its runner); or `none`.
    /// The process engine runs native commands unsandboxed, so it is only on when named
    /// (e.g. `--engines auto,process`) [default: auto].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub engines: Option<Vec<String>>,
    /// How long a started workload may take to become healthy.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub health_timeout: Duration,
    /// Grace period between stop and kill.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub stop_grace: Duration,
    /// Pause before a failed job attempt is retried; doubles per further failure, at most 6m.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub job_backoff: Duration,
    /// Pause before a replica that stopped twice in a row is restarted again (the first
    /// restart is immediate); doubles per further failure, at most 5m. Meanwhile the replica
    /// shows CrashLoopBackOff.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub restart_backoff: Duration,
    /// On SIGTERM or Ctrl-C, stop and remove the workloads' instances too (by default they
    /// keep running and are re-adopted at the next start). What the node was asked to run is
    /// kept: the next start installs them again.
    #[arg(long)]
    pub stop_workloads_on_exit: bool,
    /// How often engines are probed for health.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub fingerprint_interval: Duration,
    /// How often running instances are checked for exits.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub monitor_interval: Duration,
    /// libp2p listen address, repeatable (port 0 picks a free port).
    #[arg(long, value_name = "MULTIADDR", default_values_t = ["/ip4/0.0.0.0/tcp/0".to_string(), "/ip4/0.0.0.0/udp/0/quic-v1".to_string()])]
    pub listen: Vec<String>,
    /// Peer to join the mesh through, repeatable (e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo…).
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<String>,
    /// Find peers on the local network with mDNS.
    #[arg(long)]
    pub mdns: bool,
    /// Lifetime of this node's provider and capability records; renewed at a third of it.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub provider_ttl: Duration,
    /// Period of gossip heartbeats in a mesh of up to 50 nodes. Every node receives every
    /// node's heartbeat, so in a larger mesh the period grows with it (100 nodes: twice this):
    /// each node receives no more heartbeats per second than with 50. A peer unheard for
    /// three of its periods plus 2 s is no longer used for placement.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// How often the routing table is refreshed (a DHT walk that reaches many peers). A node
    /// left without connections re-dials its bootstrap peers every 30s (or this, if shorter).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub bootstrap_interval: Duration,
    /// Close connections unused for this long. Gossip keeps its mesh peers connected; other
    /// peers are dialled again when needed, so a large mesh does not hold a connection to
    /// every node.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Podman API socket [default: $CONTAINER_HOST, /run/podman/podman.sock, $XDG_RUNTIME_DIR/podman/podman.sock].
    #[arg(long, value_name = "PATH")]
    pub podman_socket: Option<PathBuf>,
    /// Docker API socket [default: $DOCKER_HOST, /var/run/docker.sock].
    #[arg(long, value_name = "PATH")]
    pub docker_socket: Option<PathBuf>,
    /// The wasm engine's runner [default: mesh-wasm-runner next to meshd, or on PATH].
    #[arg(long, value_name = "PATH")]
    pub wasm_runner: Option<PathBuf>,
    /// Log filter, e.g. info, debug, mesh_node=debug,libp2p_kad=warn; RUST_LOG, when set,
    /// wins over it.
    #[arg(long, default_value = "info")]
    pub log: String,
    /// Log format on stderr: `text` (coloured only when stderr is a terminal) or `json` (one
    /// object per line, with the spans, e.g. an apply's correlation id).
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = super::LogFormat::Text)]
    pub log_format: super::LogFormat,
}

impl Args {
    /// The node's configuration from these settings (reads the owner's key, the peer list).
    pub fn to_config(self) -> anyhow::Result<Config> {
        config(self)
    }
}

fn config(args: Args) -> anyhow::Result<Config> {
    let engines = match args.engines {
        // A node with no engine still places, discovers and answers for the mesh.
        Some(names) if names == ["none"] => Some(Vec::new()),
        Some(names) => {
            for n in &names {
                if !KNOWN_ENGINES.contains(&n.as_str()) && n != AUTO_ENGINES {
                    bail!(
                        "--engines: unknown engine {n:?} (known: {}; `auto` for the detected ones, or none)",
                        KNOWN_ENGINES.join(", ")
                    );
                }
            }
            Some(names)
        }
        None => None,
    };
    let parse_addrs = |flag: &str, list: &[String]| -> anyhow::Result<Vec<libp2p::Multiaddr>> {
        list.iter()
            .map(|a| {
                a.parse().with_context(|| {
                    format!("{flag} {a:?} is not a multiaddr (e.g. /ip4/127.0.0.1/tcp/4001)")
                })
            })
            .collect()
    };
    let mut config = Config::new(args.data_dir.unwrap_or_else(default_data_dir));
    config.listen = parse_addrs("--listen", &args.listen)?;
    config.bootstrap = parse_addrs("--bootstrap", &args.bootstrap)?;
    config.mdns = args.mdns;
    config.mesh.provider_ttl = args.provider_ttl;
    config.mesh.heartbeat_interval = args.heartbeat_interval;
    config.bootstrap_interval = args.bootstrap_interval;
    config.idle_timeout = args.idle_timeout;
    config.wasm_runner = args.wasm_runner;
    config.podman_socket = args.podman_socket;
    config.docker_socket = args.docker_socket;
    config.api_socket = args.api_socket;
    config.http = args.http;
    config.http_token = args.http_token;
    config.mesh_key = args.mesh_key;
    config.trust = if args.trust_any {
        crate::trust::Source::Fixed(crate::trust::Policy::any())
    } else if let Some(file) = args.trust_file {
        crate::trust::Source::File(file)
    } else {
        let path = args.owner_key.unwrap_or_else(crate::cli::key::default_path);
        let key = crate::cli::key::load(&path)?;
        crate::trust::Source::Fixed(crate::trust::Policy::owner(key.public().to_peer_id()))
    };
    config.max_connections = args.max_connections;
    config.peer_request_rate = args.peer_request_rate;
    if let Some(path) = &args.allow_peers {
        config.allowed_peers = Some(read_peer_list(path)?);
    }
    config.api_group = args.api_group;
    config.engines = engines;
    config.controller.health_timeout = args.health_timeout;
    config.controller.stop_grace = args.stop_grace;
    config.controller.job_backoff_base = args.job_backoff;
    config.controller.restart_backoff_base = args.restart_backoff;
    config.stop_workloads_on_exit = args.stop_workloads_on_exit;
    config.fingerprint_period = args.fingerprint_interval;
    config.monitor_period = args.monitor_interval;
    Ok(config)
}

/// Peer ids, one per line; blank lines and `#` comments skipped.
fn read_peer_list(path: &std::path::Path) -> anyhow::Result<Vec<libp2p::PeerId>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut peers = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let peer = line
            .parse()
            .with_context(|| format!("{}:{}: {line:?} is not a peer id", path.display(), n + 1))?;
        peers.push(peer);
    }
    Ok(peers)
}
