//! `meshctl`: the command-line client. Commands talk to a node's local API (`--node`, env
//! `MESH_NODE`, default the local node's socket) and print tables for people or JSON/YAML
//! (`-o json|yaml`) for scripts. Failures print one line on stderr and exit non-zero.
//!
//! # Layout
//!
//! - this file: the command-line grammar and dispatch;
//! - [`output`]: tables, JSON and YAML rendering.

pub mod output;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use mesh_protocol::api::{ApplyAction, ApplyRequest, ApplyResponse, Deployment, EngineInfo, Logs};
use mesh_protocol::Event;

use crate::client::{encode, Client, Target};
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

The node is found at --node, else $MESH_NODE, else the default socket of a local meshd.";

#[derive(Debug, Parser)]
#[command(name = "meshctl", version, about = "Control a mesh of meshd nodes: apply, inspect and delete workloads", after_help = AFTER_HELP)]
pub struct Cli {
    /// Node to talk to: the path of its API socket, or http://127.0.0.1:PORT.
    #[arg(long, global = true, env = "MESH_NODE", value_name = "SOCKET_OR_URL")]
    pub node: Option<String>,

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
    /// Show recent lifecycle events (all workloads, or one).
    Events(EventsArgs),
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

fn path_of(name: &str, namespace: &str, suffix: &str) -> String {
    format!(
        "/deployments/{}{suffix}?namespace={}",
        encode(name),
        encode(namespace)
    )
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
    let target = match &cli.node {
        Some(node) => Target::parse(node)?,
        None => default_target(),
    };
    let client = Client::new(target);
    let fmt = cli.output;
    match cli.command {
        Command::Apply(args) => return apply(&client, fmt, args).await,
        Command::Get(NameOpt {
            name: Some(name),
            namespace,
        }) => {
            let d: Deployment = client.get(&path_of(&name, &namespace, "")).await?;
            output::print_deployments(fmt, std::slice::from_ref(&d), true)?;
        }
        Command::Get(NameOpt { name: None, .. }) => {
            let list: Vec<Deployment> = client.get("/deployments").await?;
            output::print_deployments(fmt, &list, false)?;
        }
        Command::Describe(Name { name, namespace }) => {
            let path = format!("{}&events=true", path_of(&name, &namespace, ""));
            let d: Deployment = client.get(&path).await?;
            output::print_describe(fmt, &d)?;
        }
        Command::Delete(Name { name, namespace }) => {
            let d: Deployment = client.delete(&path_of(&name, &namespace, "")).await?;
            match fmt {
                Format::Table => println!("{}/{} deleted", d.namespace, d.name),
                _ => output::print_value(fmt, &d)?,
            }
        }
        Command::Logs(LogsArgs {
            name,
            namespace,
            tail,
        }) => {
            let mut path = path_of(&name, &namespace, "/logs");
            if let Some(n) = tail {
                path.push_str(&format!("&tail={n}"));
            }
            let logs: Logs = client.get(&path).await?;
            output::print_logs(fmt, &logs)?;
        }
        Command::Engines => {
            let engines: Vec<EngineInfo> = client.get("/plugins").await?;
            output::print_engines(fmt, &engines)?;
        }
        Command::Events(EventsArgs {
            name,
            namespace,
            limit,
        }) => {
            let mut path = format!("/events?limit={limit}");
            if let Some(name) = name {
                path.push_str(&format!(
                    "&name={}&namespace={}",
                    encode(&name),
                    encode(&namespace)
                ));
            }
            let events: Vec<Event> = client.get(&path).await?;
            output::print_events(fmt, &events)?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn apply(
    client: &Client,
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
    mesh_manifests::parse(manifest.as_bytes(), &opts)
        .map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
    let req = ApplyRequest {
        manifest,
        name: args.name,
        default_name: stem,
        replicas: args.replicas,
        env,
        signature: None,
    };
    let answer = client.post("/deployments", &req).await?;
    if !(answer.status.is_success() || answer.status == hyper::StatusCode::UNPROCESSABLE_ENTITY) {
        bail!("{label}: {}", answer.error_message());
    }
    let resp: ApplyResponse = serde_json::from_slice(&answer.body)
        .context("the node answered with an unexpected body")?;
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
