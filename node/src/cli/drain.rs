//! `meshctl drain [NODE]` and `meshctl uncordon [NODE]`: an operator's command to one node,
//! signed with the user's key (an admin in the node's trust file), sent through the node
//! meshctl talks to, which forwards it when NODE is another node.

use std::path::Path;

use anyhow::{anyhow, Context};
use libp2p::PeerId;
use mesh_protocol::api::DrainReport;
use mesh_provider::NodeAction;
use mesh_runtime::now_millis;

use super::backend::Backend;
use super::key;
use super::output::{self, Format};
use crate::mesh::Mesh;

/// The node a command is for: `node`, or the node meshctl talks to.
async fn target(backend: &Backend, node: Option<&str>) -> anyhow::Result<PeerId> {
    if let Some(Ok(id)) = node.map(str::parse) {
        return Ok(id);
    }
    let nodes = backend.nodes(None).await?;
    if let Some(node) = node {
        // The end of an id, as `meshctl nodes` shows it (`…x7Qa`).
        let end = node.trim_start_matches('…');
        let matching: Vec<&str> = nodes
            .iter()
            .map(|n| n.peer_id.as_str())
            .filter(|id| !end.is_empty() && id.ends_with(end))
            .collect();
        return match matching.as_slice() {
            [one] => one.parse().context("the node answered with a bad node id"),
            [] => Err(anyhow!(
                "no node of the mesh has an id ending in {end:?} (meshctl nodes)"
            )),
            more => Err(anyhow!(
                "{} nodes have ids ending in {end:?}: give more of it",
                more.len()
            )),
        };
    }
    let local = nodes
        .iter()
        .find(|n| n.local)
        .ok_or_else(|| anyhow!("the node did not say which node it is"))?;
    local
        .peer_id
        .parse()
        .context("the node answered with a bad node id")
}

pub(super) async fn run(
    backend: &Backend,
    fmt: Format,
    node: Option<&str>,
    action: NodeAction,
    key_path: &Path,
) -> anyhow::Result<()> {
    let node = target(backend, node).await?;
    let key = key::load(key_path)?;
    let command =
        Mesh::sign_command(&key, node, action, now_millis()).map_err(|e| anyhow!("{e}"))?;
    let report = backend.command(command).await?;
    if !fmt.is_table() {
        return output::print_value(fmt, &report);
    }
    print_report(&report, action);
    Ok(())
}

fn print_report(r: &DrainReport, action: NodeAction) {
    match action {
        NodeAction::Uncordon => println!("node {} uncordoned: it takes new replicas", r.node),
        NodeAction::Drain => {
            println!(
                "node {} drained: {} replica(s) moved, {} left; it takes no new replicas until \
                 meshctl uncordon",
                r.node,
                r.moved.len(),
                r.left.len()
            );
            for m in &r.moved {
                println!("  moved  {} slot {} → {}", m.workload, m.slot, m.to);
            }
            for l in &r.left {
                println!("  left   {}: {}", l.workload, l.why);
            }
        }
    }
}
