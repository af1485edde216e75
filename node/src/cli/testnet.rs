//! `meshctl testnet up|status|down`: a local mesh of `meshd` processes on loopback.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{self, Format, Table};
use crate::client::{Client, Target};
use crate::testnet;

#[derive(Debug, Subcommand)]
pub enum TestnetCommand {
    /// Start N meshd processes on 127.0.0.1, bootstrapped to each other.
    Up(UpArgs),
    /// Show the testnet's nodes and whether they answer.
    Status(DirArgs),
    /// Stop every node of the testnet.
    Down(DirArgs),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Directory of the testnet (one data dir per node inside) [default: $TMPDIR/mesh-testnet].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Engines of every node, e.g. mock or podman,docker [default: detect].
    #[arg(long)]
    pub engines: Option<String>,
    /// The meshd binary [default: next to meshctl, else on PATH].
    #[arg(long)]
    pub meshd: Option<PathBuf>,
    /// Extra meshd argument for every node, repeatable (e.g. --meshd-arg=--provider-ttl=10s).
    #[arg(long = "meshd-arg", allow_hyphen_values = true)]
    pub meshd_args: Vec<String>,
    /// Let the nodes run what any key signs (development only). By default they trust your
    /// key (--key / MESH_KEY / ~/.config/mesh/user.key) and nothing else, through a trust
    /// file written to DIR/trust.yaml.
    #[arg(long)]
    pub trust_any: bool,
}

#[derive(Debug, Args)]
pub struct DirArgs {
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct NodeStatus {
    #[serde(flatten)]
    node: testnet::TestnetNode,
    running: bool,
    answers: bool,
}

pub async fn run(
    cmd: TestnetCommand,
    fmt: Format,
    key_path: &std::path::Path,
) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        TestnetCommand::Up(mut args) => {
            let custom = args
                .meshd_args
                .iter()
                .any(|a| a.starts_with("--trust-any") || a.starts_with("--trust-file"));
            let trust_key = if args.trust_any || custom {
                None
            } else {
                Some(super::key::load(key_path)?.public().to_peer_id())
            };
            if args.trust_any && !custom {
                args.meshd_args.push("--trust-any".into());
            }
            let opts = testnet::Options {
                dir: args.dir.unwrap_or_else(testnet::default_dir),
                nodes: args.nodes,
                engines: args.engines,
                meshd: args.meshd.unwrap_or_else(testnet::default_meshd),
                extra_args: args.meshd_args,
                first_engines: None,
                trust_key,
            };
            if fmt.is_table() {
                eprintln!("starting {} nodes in {} …", opts.nodes, opts.dir.display());
            }
            let net = tokio::task::spawn_blocking(move || testnet::up(&opts)).await??;
            print_nodes(fmt, &net, None)?;
            if fmt.is_table() {
                if let Some(k) = &trust_key {
                    println!(
                        "\nthe nodes run what your key {k} signs, and nothing else ({})",
                        net.dir.join(testnet::TRUST_FILE).display()
                    );
                }
                println!(
                    "\nuse a node:  export MESH_NODE={}\nstop:        meshctl testnet down --dir {}",
                    net.nodes[0].api_socket.display(),
                    net.dir.display()
                );
            }
        }
        TestnetCommand::Status(args) => {
            let dir = args.dir.unwrap_or_else(testnet::default_dir);
            let net = testnet::read(&dir)?;
            let mut answers = Vec::new();
            for n in &net.nodes {
                let client = Client::new(Target::Unix(n.api_socket.clone()));
                answers.push(client.get::<serde_json::Value>("/health").await.is_ok());
            }
            print_nodes(fmt, &net, Some(&answers))?;
        }
        TestnetCommand::Down(args) => {
            let dir = args.dir.unwrap_or_else(testnet::default_dir);
            let stopped = tokio::task::spawn_blocking(move || testnet::down(&dir)).await??;
            println!(
                "stopped {stopped} node{}",
                if stopped == 1 { "" } else { "s" }
            );
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn print_nodes(
    fmt: Format,
    net: &testnet::Testnet,
    answers: Option<&[bool]>,
) -> anyhow::Result<()> {
    let statuses: Vec<NodeStatus> = net
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeStatus {
            node: n.clone(),
            running: testnet::alive(n.pid),
            answers: answers.is_none_or(|a| a[i]),
        })
        .collect();
    if !fmt.is_table() {
        return output::print_value(fmt, &statuses);
    }
    let mut t = Table::new(&["NODE", "PID", "STATE", "PEER ID", "API SOCKET"]);
    for s in &statuses {
        let state = match (s.running, s.answers) {
            (true, true) => "running",
            (true, false) => "not answering",
            (false, _) => "stopped",
        };
        t.row(vec![
            s.node.index.to_string(),
            s.node.pid.to_string(),
            state.to_string(),
            s.node.peer_id.clone(),
            s.node.api_socket.display().to_string(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}
