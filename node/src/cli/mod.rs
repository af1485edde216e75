//! `meshctl`: the command-line client. Commands talk to a node's local API (`--node`, env
//! `MESH_NODE`, default the local node's socket) and print tables for people or JSON/YAML
//! (`-o json|yaml`) for scripts. Failures print one line on stderr and exit non-zero.
//!
//! # Layout
//!
//! - this file: the command-line grammar and dispatch;
//! - [`backend`]: the local API or a remote peer over libp2p (`--peer`);
//! - [`output`]: tables, JSON and YAML rendering;
//! - [`testnet`]: `meshctl testnet up|status|down`.

pub mod backend;
pub mod output;
pub mod testnet;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use mesh_protocol::api::{ApplyAction, ApplyRequest};

use crate::client::{Client, Target};
use backend::{Backend, PeerClient};
use mesh_protocol::WorkloadId;
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

The node is found at --node, else $MESH_NODE, else the default socket of a local meshd;
--peer talks to any node over libp2p instead.";

#[derive(Debug, Parser)]
#[command(name = "meshctl", version, about = "Control a mesh of meshd nodes: apply, inspect and delete workloads", after_help = AFTER_HELP)]
pub struct Cli {
    /// Node to talk to: the path of its API socket, or http://127.0.0.1:PORT.
    #[arg(long, global = true, env = "MESH_NODE", value_name = "SOCKET_OR_URL")]
    pub node: Option<String>,

    /// Talk to this node over libp2p instead (no local daemon needed; wins over --node):
    /// /ip4/HOST/tcp/PORT/p2p/PEER_ID.
    #[arg(long, global = true, value_name = "MULTIADDR")]
    pub peer: Option<String>,

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
    /// Print a workload's logs.
    Logs(LogsArgs),
    /// List the node's engines, their health and what they can run.
    Engines,
    /// Show recent lifecycle events of the node (all workloads, or one).
    Events(EventsArgs),
    /// Who provides a workload: signature-checked, unexpired records from the DHT.
    Discover(DiscoverArgs),
    /// Nodes of the mesh with their engines and free capacity.
    Nodes(NodesArgs),
    /// Run a local mesh of meshd processes on loopback.
    #[command(subcommand)]
    Testnet(testnet::TestnetCommand),
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
}

#[derive(Debug, Args)]
pub struct NameOpt {
    /// Workload name; all workloads when omitted.
    pub name: Option<String>,
    #[arg(short = 'n', long, default_value = mesh_protocol::spec::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

#[derive(Debug, Args)]
pub struct Name {
    pub name: String,
    #[arg(short = 'n', long, default_value = mesh_protocol::spec::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    pub name: String,
    #[arg(short = 'n', long, default_value = mesh_protocol::spec::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<usize>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    pub name: Option<String>,
    #[arg(short = 'n', long, default_value = mesh_protocol::spec::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// At most N events (newest).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// The node to talk to when `--node` and `MESH_NODE` are not set.
pub fn default_target() -> Target {
    Target::Unix(crate::daemon::default_data_dir().join("meshd.sock"))
}

/// Reads the manifest and the variables it references from the environment.
fn read_manifest(file: &str) -> anyhow::Result<(String, Option<String>)> {
    let (bytes, stem) = if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(mesh_manifests::MAX_MANIFEST_BYTES as u64 + 1)
            .read_to_end(&mut buf)
            .context("cannot read the manifest from stdin")?;
        (buf, None)
    } else {
        let path = PathBuf::from(file);
        let meta = std::fs::metadata(&path).with_context(|| format!("cannot read {file}"))?;
        if meta.len() > mesh_manifests::MAX_MANIFEST_BYTES as u64 {
            bail!(
                "{file}: {} bytes; manifests are limited to {} bytes",
                meta.len(),
                mesh_manifests::MAX_MANIFEST_BYTES
            );
        }
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {file}"))?;
        (
            bytes,
            file_stem(&path).map(|s| mesh_manifests::normalize_name(&s)),
        )
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{file}: not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok((text, stem))
}

fn file_stem(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_string_lossy().to_string();
    // `compose.yaml` and `docker-compose.yml` say nothing: use the directory's name, as Compose does.
    if matches!(stem.as_str(), "compose" | "docker-compose") {
        let dir = std::fs::canonicalize(path)
            .ok()?
            .parent()?
            .file_name()?
            .to_string_lossy()
            .to_string();
        return Some(dir);
    }
    Some(stem)
}

/// Runs one command; `Err` is printed as one line by the binary.
pub async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let fmt = cli.output;
    let command = match cli.command {
        Command::Testnet(cmd) => return testnet::run(cmd, fmt).await,
        other => other,
    };
    let backend = match (&cli.peer, &cli.node) {
        (Some(peer), _) => Backend::Peer(PeerClient::connect(peer).await?),
        (None, Some(node)) => Backend::Local(Client::new(Target::parse(node)?)),
        (None, None) => Backend::Local(Client::new(default_target())),
    };
    let id = |name: &str, ns: &str| WorkloadId::new(ns, name);
    match command {
        Command::Apply(args) => return apply(&backend, fmt, args).await,
        Command::Get(NameOpt {
            name: Some(name),
            namespace,
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
            let d = backend.delete(&id(&name, &namespace)).await?;
            match fmt {
                Format::Table => println!(
                    "{}/{} deleted ({} replica{})",
                    d.namespace,
                    d.name,
                    d.replicas.len(),
                    if d.replicas.len() == 1 { "" } else { "s" }
                ),
                _ => output::print_value(fmt, &d)?,
            }
        }
        Command::Logs(LogsArgs {
            name,
            namespace,
            tail,
        }) => {
            output::print_logs(fmt, &backend.logs(&id(&name, &namespace), tail).await?)?;
        }
        Command::Engines => output::print_engines(fmt, &backend.engines().await?)?,
        Command::Events(EventsArgs {
            name,
            namespace,
            limit,
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
        Command::Testnet(_) => unreachable!("testnet commands return before a node is chosen"),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The WASM modules the manifest names by path, read relative to the manifest's directory,
/// with their digests: the node runs the digest.
fn bundle_modules(
    specs: &[mesh_protocol::WorkloadSpec],
    base: &std::path::Path,
) -> anyhow::Result<Vec<mesh_protocol::api::BundledModule>> {
    use mesh_protocol::api::{BundledModule, MAX_MODULE_BYTES};
    use mesh_protocol::spec::ModuleSource;
    let mut out: Vec<BundledModule> = Vec::new();
    for spec in specs {
        let Some(ModuleSource::Path(path)) = spec.module.as_ref().map(|m| &m.source) else {
            continue;
        };
        if out.iter().any(|m| m.path == *path) {
            continue;
        }
        let file = base.join(path);
        let size = std::fs::metadata(&file)
            .with_context(|| format!("{}: spec.module {}", spec.name, file.display()))?
            .len();
        if size > MAX_MODULE_BYTES as u64 {
            bail!(
                "{}: module {} is {size} bytes; at most {MAX_MODULE_BYTES} can be bundled (store it on a node and write its sha256: digest)",
                spec.name,
                file.display()
            );
        }
        let bytes = std::fs::read(&file)
            .with_context(|| format!("{}: spec.module {}", spec.name, file.display()))?;
        if !bytes.starts_with(b"\0asm") {
            bail!(
                "{}: {} is not a WebAssembly module (no \\0asm header)",
                spec.name,
                file.display()
            );
        }
        out.push(BundledModule {
            path: path.clone(),
            digest: mesh_engine_wasm::Digest::of(&bytes).to_string(),
            bytes: Some(bytes),
            providers: Vec::new(),
        });
    }
    Ok(out)
}

async fn apply(
    backend: &Backend,
    fmt: Format,
    args: ApplyArgs,
) -> anyhow::Result<std::process::ExitCode> {
    let (manifest, stem) = read_manifest(&args.file)?;
    let name = args.name.clone().or(stem.clone());
    let env: BTreeMap<String, String> = mesh_manifests::referenced_env_vars(manifest.as_bytes())
        .into_iter()
        .filter_map(|k| std::env::var(&k).ok().map(|v| (k, v)))
        .collect();
    // Parse here first: a bad file fails fast, with its location, before any node is involved.
    let opts = mesh_manifests::ParseOptions {
        default_name: name.clone(),
        env: env.clone(),
        ..Default::default()
    };
    let label = if args.file == "-" {
        "<stdin>"
    } else {
        args.file.as_str()
    };
    let specs = mesh_manifests::parse(manifest.as_bytes(), &opts)
        .map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
    let base = if args.file == "-" {
        std::env::current_dir()?
    } else {
        std::path::Path::new(&args.file)
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default()
    };
    let modules = bundle_modules(&specs, &base).map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
    let req = ApplyRequest {
        manifest,
        name: args.name,
        default_name: stem,
        replicas: args.replicas,
        env,
        signature: None,
        modules,
    };
    let resp = backend
        .apply(req)
        .await
        .map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
    output::print_apply(fmt, &resp)?;
    let failed = resp
        .workloads
        .iter()
        .any(|w| matches!(w.action, ApplyAction::Failed | ApplyAction::RolledBack));
    Ok(if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}
