//! `meshctl`: the command-line client. Commands talk to a node's local API (`--node`, env
//! `MESH_NODE`, default the local node's socket) and print tables for people or JSON/YAML
//! (`-o json|yaml`) for scripts. Failures print one line on stderr and exit non-zero.
//!
//! # Layout
//!
//! - this file: the command-line grammar and dispatch;
//! - `apply`: `apply` and `delete`: read, bundle, sign, send;
//! - [`backend`]: the local API or a remote peer over libp2p (`--peer`);
//! - [`key`]: the user's signing key (`meshctl key show|generate`);
//! - [`output`]: tables, JSON and YAML rendering;
//! - [`testnet`]: `meshctl testnet up|status|down`;
//! - [`completion`], `version`: `meshctl completion SHELL`, `meshctl version`.

mod apply;
pub mod backend;
pub mod completion;
mod drain;
pub mod follow;
pub mod key;
mod logs;
pub mod output;
mod outputs;
mod progress;
mod rollback;
pub mod testnet;
mod version;
mod watch;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::client::{Client, Target};
use backend::{Backend, PeerClient};
use mesh_protocol::WorkloadId;
use mesh_provider::NodeAction;
use output::Format;

const AFTER_HELP: &str = "\
Examples:
  meshctl apply -f pod.yaml                 deploy (or update) the workloads of a file
  meshctl apply -f compose.yaml --name shop  a Compose project named 'shop'
  cat job.yaml | meshctl apply -f -         read the manifest from stdin
  meshctl get                               list workloads
  meshctl get web -o json                   one workload, for scripts
  meshctl describe web                      engine choice and why, replicas, events
  meshctl logs web --tail 20
  meshctl delete web
  meshctl engines                           engines of the node and their health
  meshctl discover web --engine podman      who runs web with podman, from signed DHT records
  meshctl nodes --engine docker             nodes of the mesh with a healthy docker
  meshctl --peer /ip4/10.0.0.7/tcp/4001/p2p/12D3KooW… get    ask any node, no local daemon
  meshctl testnet up --nodes 3              a local mesh of 3 meshd processes
  meshctl key show                          the key id meshctl signs with, and its path
  meshctl completion bash                   shell completion (see meshctl completion --help)

The node is found at --node, else $MESH_NODE, else the default socket of a local meshd;
--peer talks to any node over libp2p instead.

Exit status: 0 done; 1 failed (a workload failed or was rolled back, bad input, other
errors); 2 wrong command line; 3 no node reachable; 4 not found; 5 refused (key not
trusted or not allowed, wrong token).";

#[derive(Debug, Parser)]
#[command(name = "meshctl", version = crate::version::LONG, about = "Control a mesh of meshd nodes: apply, inspect and delete workloads", after_help = AFTER_HELP)]
pub struct Cli {
    /// Node to talk to: the path of its API socket, or http://127.0.0.1:PORT.
    #[arg(long, global = true, env = "MESH_NODE", value_name = "SOCKET_OR_URL")]
    pub node: Option<String>,

    /// Talk to this node over libp2p instead (no local daemon needed; wins over --node):
    /// /ip4/HOST/tcp/PORT/p2p/PEER_ID.
    #[arg(long, global = true, value_name = "MULTIADDR")]
    pub peer: Option<String>,

    /// The private mesh's key file, for --peer (see `meshd --mesh-key`).
    #[arg(long, global = true, env = "MESH_MESH_KEY", value_name = "FILE")]
    pub mesh_key: Option<PathBuf>,

    /// The bearer token of a node whose HTTP API was started with `meshd --http-token FILE`.
    #[arg(long, global = true, env = "MESH_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// The signing key (created on first use): applies, deletes, rollbacks and operator
    /// commands (drain, uncordon) are signed with it.
    #[arg(long, global = true, env = "MESH_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deploy or update the workloads of a manifest (Kubernetes YAML/JSON, Compose, beemesh.io/v1).
    ///
    /// Waits until every workload is Running (or has failed) and prints the outcome. Applying
    /// the same content again changes nothing; new content is rolled out as an update and
    /// rolled back if the new version fails its health check.
    ///
    /// A Function whose `spec.module` is a path (`./hello.wasm`, relative to the manifest)
    /// has the module bundled into the apply (at most 8 MiB); the nodes that run it fetch
    /// it from the node that took the apply and verify its digest. A run-to-completion
    /// workload (Job, Function) answers once started; `meshctl get NAME` shows its attempts
    /// and exit code, `meshctl logs NAME` its output.
    Apply(ApplyArgs),
    /// List workloads, or show one.
    Get(NameOpt),
    /// Show a workload in detail: engine and why it was chosen, replicas, history, events.
    Describe(Name),
    /// Stop and remove a workload.
    Delete(Name),
    /// The revisions of a workload this node kept: who signed each, when, with what content.
    History(Name),
    /// Bring back an earlier revision of a workload: a new revision, signed by your key, with
    /// that revision's content and replicas (the newest earlier one that differs, unless
    /// --to-revision).
    Rollback(RollbackArgs),
    /// Print a workload's logs (of every replica); -f follows them.
    Logs(LogsArgs),
    /// Download the collected output files of a Job or Function (declared with the
    /// beemesh.io/outputs annotation) from the node that ran it; each is checked against its
    /// sha256 digest before it is kept.
    Outputs(OutputsArgs),
    /// List the node's engines, their health and what they can run.
    Engines,
    /// Show recent lifecycle events of the node (all workloads, or one); with -w, follow the
    /// whole mesh's.
    Events(EventsArgs),
    /// Who provides a workload: signature-checked, unexpired records from the DHT.
    Discover(DiscoverArgs),
    /// Nodes of the mesh with their engines and free capacity.
    Nodes(NodesArgs),
    /// Move every replica off a node (each new one Running before the old one goes) and stop
    /// placing new ones on it; for maintenance. NODE is a node id (meshctl nodes); without it,
    /// the node meshctl talks to. Signed with your key, which must be an admin in the node's
    /// trust file. Workloads on every node and jobs stay.
    Drain(NodeArg),
    /// Let a drained node take new replicas again (NODE as for drain).
    Uncordon(NodeArg),
    /// Run a local mesh of meshd processes on loopback.
    #[command(subcommand)]
    Testnet(testnet::TestnetCommand),
    /// The signing key meshctl signs workload records and deletes with.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Print a shell completion script for meshctl (bash, zsh, fish, elvish, powershell).
    Completion(completion::CompletionArgs),
    /// Print meshctl's version and git revision, and the node's if one answers.
    Version,
}

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    pub name: String,
    #[arg(short = 'n', long, default_value = mesh_protocol::spec::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Only providers running it with this engine.
    #[arg(long)]
    pub engine: Option<String>,
}

#[derive(Debug, Args)]
pub struct NodesArgs {
    /// Only nodes with this engine, healthy.
    #[arg(long)]
    pub engine: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Manifest file, or - for standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: String,
    /// Name of the workload (Compose files without `name:`; renames a single Kubernetes workload).
    #[arg(long)]
    pub name: Option<String>,
    /// Number of replicas, overriding the manifest.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub replicas: Option<u32>,
    /// Return as soon as the node has verified and kept the records (action `accepted`):
    /// replicas are placed and started after; follow them with `meshctl get NAME -w`.
    #[arg(long)]
    pub no_wait: bool,
    /// Wait until every replica is Running, or has failed (the default). A terminal shows
    /// the replicas' progress meanwhile.
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct NameOpt {
    /// Workload name; all workloads when omitted.
    pub name: Option<String>,
    #[arg(short = 'n', long, default_value = mesh_protocol::spec::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Watch: print the list (or the workload), then a line each time a workload changes
    /// (phase, replicas ready, version, nodes) or is deleted; with -o json one
    /// {"type":"ADDED|MODIFIED|DELETED","object":…} per line. Ctrl-C stops.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct Name {
    pub name: String,
    #[arg(short = 'n', long, default_value = mesh_protocol::spec::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The workload to roll back.
    pub name: String,
    #[arg(short = 'n', long, default_value = mesh_protocol::spec::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// The revision to bring back (meshctl history lists them).
    #[arg(long, value_name = "N")]
    pub to_revision: Option<u64>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    pub name: String,
    #[arg(short = 'n', long, default_value = mesh_protocol::spec::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<usize>,
    /// Follow: keep printing new lines of every replica, wherever it runs (each prefixed by
    /// its node when there are several), until Ctrl-C.
    #[arg(short = 'f', long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct OutputsArgs {
    /// The run-to-completion workload (Job, Function) whose outputs to fetch.
    pub name: String,
    #[arg(short = 'n', long, default_value = mesh_protocol::spec::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Directory to write them to (created; files keep their relative paths).
    #[arg(short = 'd', long = "dir", value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct NodeArg {
    // Not `node`: the global --node (the node meshctl talks to) has that id.
    /// The node: its id (12D3KooW…), or the end of it as `meshctl nodes` shows it (…x7Qa);
    /// default: the node meshctl talks to.
    #[arg(value_name = "NODE")]
    pub target: Option<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    pub name: Option<String>,
    #[arg(short = 'n', long, default_value = mesh_protocol::spec::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// At most N events (newest).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Follow the events of every node of the mesh as they happen, in order per node, each
    /// once; a node cut off delivers what it recorded meanwhile when it is back. Ctrl-C stops.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// With --watch: keep the position per node in FILE, and resume from it.
    #[arg(long, value_name = "FILE", requires = "watch")]
    pub cursor: Option<PathBuf>,
    /// With --watch: begin with each node's oldest kept event rather than with new ones.
    #[arg(long, requires = "watch")]
    pub from_start: bool,
}

/// `meshctl`'s exit statuses; stable, documented in `docs/operations.md` and `--help`.
pub mod exit {
    /// Done; for apply, every workload Running (or accepted, with --no-wait).
    pub const OK: u8 = 0;
    /// Failed: a workload failed or was rolled back, bad input, or any other error.
    pub const FAILED: u8 = 1;
    /// The command line is wrong (clap's own status).
    pub const USAGE: u8 = 2;
    /// No node could be reached (no meshd at --node, or the peer does not answer).
    pub const UNREACHABLE: u8 = 3;
    /// What was named does not exist (workload, node, output).
    pub const NOT_FOUND: u8 = 4;
    /// The node refused: the key is not trusted or not allowed this, or the token is wrong.
    pub const REFUSED: u8 = 5;
}

/// The exit status for an error `run` returned (see [`exit`]).
pub fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.downcast_ref::<crate::client::Unreachable>().is_some() {
            return exit::UNREACHABLE;
        }
        if let Some(r) = cause.downcast_ref::<crate::client::Refused>() {
            return match r.status {
                404 => exit::NOT_FOUND,
                401 | 403 => exit::REFUSED,
                _ => exit::FAILED,
            };
        }
    }
    exit::FAILED
}

/// The node to talk to when `--node` and `MESH_NODE` are not set.
pub fn default_target() -> Target {
    Target::Unix(crate::daemon::default_data_dir().join("meshd.sock"))
}

/// Runs one command; `Err` is printed as one line by the binary.
pub async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let fmt = cli.output;
    let key_path = cli.key.clone().unwrap_or_else(key::default_path);
    let command = match cli.command {
        Command::Testnet(cmd) => return testnet::run(cmd, fmt, &key_path).await,
        Command::Key(cmd) => {
            key::run(cmd, &key_path, fmt)?;
            return Ok(std::process::ExitCode::SUCCESS);
        }
        Command::Completion(args) => {
            completion::run(&args);
            return Ok(std::process::ExitCode::SUCCESS);
        }
        Command::Version => {
            version::run(cli.node.as_deref(), cli.token_file.as_deref(), fmt).await?;
            return Ok(std::process::ExitCode::SUCCESS);
        }
        other => other,
    };
    let backend = match (&cli.peer, &cli.node) {
        (Some(peer), _) => {
            let mesh_key = cli
                .mesh_key
                .as_deref()
                .map(crate::daemon::load_mesh_key)
                .transpose()?;
            Backend::Peer(PeerClient::connect(peer, mesh_key).await?)
        }
        (None, node) => {
            let target = node
                .as_deref()
                .map(Target::parse)
                .transpose()?
                .unwrap_or_else(default_target);
            let mut client = Client::new(target);
            if let Some(path) = &cli.token_file {
                client = client.with_token(&crate::local_api::Token::load(path)?);
            }
            Backend::Local(client)
        }
    };
    let id = |name: &str, ns: &str| WorkloadId::new(ns, name);
    match command {
        Command::Apply(args) => return apply::apply(&backend, fmt, args, &key_path).await,
        Command::Get(NameOpt {
            name,
            namespace,
            watch: true,
        }) => {
            watch::watch(&backend, fmt, name.map(|n| id(&n, &namespace))).await?;
        }
        Command::Get(NameOpt {
            name: Some(name),
            namespace,
            ..
        }) => {
            let d = backend.get(&id(&name, &namespace), false).await?;
            output::print_deployments(fmt, std::slice::from_ref(&d), true)?;
        }
        Command::Get(NameOpt { name: None, .. }) => {
            output::print_deployments(fmt, &backend.list().await?, false)?;
        }
        Command::Describe(Name { name, namespace }) => {
            output::print_describe(fmt, &backend.get(&id(&name, &namespace), true).await?)?;
        }
        Command::Delete(Name { name, namespace }) => {
            let d = apply::delete(&backend, &id(&name, &namespace), &key_path).await?;
            match fmt {
                Format::Table | Format::Wide => println!(
                    "{}/{} deleted ({} replica{})",
                    d.namespace,
                    d.name,
                    d.replicas.len(),
                    if d.replicas.len() == 1 { "" } else { "s" }
                ),
                _ => output::print_value(fmt, &d)?,
            }
        }
        Command::History(Name { name, namespace }) => {
            rollback::history(&backend, fmt, &id(&name, &namespace)).await?;
        }
        Command::Rollback(RollbackArgs {
            name,
            namespace,
            to_revision,
        }) => {
            let wid = id(&name, &namespace);
            return rollback::rollback(&backend, fmt, &wid, to_revision, &key_path).await;
        }
        Command::Logs(LogsArgs {
            name,
            namespace,
            tail,
            follow: true,
        }) => {
            logs::follow(&backend, fmt, &id(&name, &namespace), tail).await?;
        }
        Command::Logs(LogsArgs {
            name,
            namespace,
            tail,
            ..
        }) => {
            output::print_logs(fmt, &backend.logs(&id(&name, &namespace), tail).await?)?;
        }
        Command::Outputs(OutputsArgs {
            name,
            namespace,
            dir,
        }) => {
            outputs::download(&backend, fmt, &id(&name, &namespace), &dir).await?;
        }
        Command::Engines => output::print_engines(fmt, &backend.engines().await?)?,
        Command::Events(EventsArgs {
            name,
            namespace,
            watch: true,
            cursor,
            from_start,
            ..
        }) => {
            let workload = name.map(|n| id(&n, &namespace).to_string());
            follow::follow(&backend, fmt, cursor, from_start, workload).await?;
        }
        Command::Events(EventsArgs {
            name,
            namespace,
            limit,
            ..
        }) => {
            let wid = name.map(|n| id(&n, &namespace));
            output::print_events(fmt, &backend.events(wid.as_ref(), limit).await?)?;
        }
        Command::Discover(DiscoverArgs {
            name,
            namespace,
            engine,
        }) => {
            let providers = backend
                .discover(&id(&name, &namespace), engine.as_deref())
                .await?;
            output::print_providers(fmt, &providers)?;
        }
        Command::Nodes(NodesArgs { engine }) => {
            output::print_nodes(fmt, &backend.nodes(engine.as_deref()).await?)?;
        }
        Command::Drain(NodeArg { target }) => {
            drain::run(
                &backend,
                fmt,
                target.as_deref(),
                NodeAction::Drain,
                &key_path,
            )
            .await?;
        }
        Command::Uncordon(NodeArg { target }) => {
            drain::run(
                &backend,
                fmt,
                target.as_deref(),
                NodeAction::Uncordon,
                &key_path,
            )
            .await?;
        }
        Command::Testnet(_) | Command::Key(_) | Command::Completion(_) | Command::Version => {
            unreachable!("these commands return before a node is chosen")
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
