//! `meshctl events -w`: follows the durable event logs of every node of the mesh through the
//! node meshctl talks to, in order per node, each event once.
//!
//! A cursor holds, per node, the sequence number of the last event delivered. Each round the
//! follower asks every node it knows (the mesh's nodes, and every node of its cursor) for
//! the events after its cursor; a node that cannot be reached (cut off, restarting) is asked
//! again next round, so what it recorded meanwhile arrives once it is back. Nodes known when
//! the follow starts are followed from their newest event (unless `--from-start` or a
//! cursor file says otherwise); nodes that appear later, from their first. With
//! `--cursor FILE` the cursor is read at start and written after every round, so a follow
//! resumes where the last one stopped. Events a node dropped before they were read (its log
//! is bounded) are reported as a count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use mesh_protocol::Event;
use serde::Serialize;

use super::backend::Backend;
use super::output::{self, Format};

/// Events asked of one node per round.
const PAGE: usize = 500;
/// Pause between rounds that brought nothing new.
const ROUND: Duration = Duration::from_millis(500);

/// One delivered event, or a gap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Followed {
    pub node: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
    /// Events of the node dropped from its log before they were read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
}

/// Per-node cursors.
#[derive(Debug, Default)]
pub struct Follower {
    pub cursor: BTreeMap<String, u64>,
    started: bool,
    from_start: bool,
}

impl Follower {
    pub fn new(cursor: BTreeMap<String, u64>, from_start: bool) -> Self {
        let started = !cursor.is_empty();
        Self {
            cursor,
            started,
            from_start,
        }
    }

    /// One round: the new events of every node that answers.
    pub async fn poll(&mut self, backend: &Backend) -> anyhow::Result<Vec<Followed>> {
        let mut nodes: Vec<String> = backend
            .nodes(None)
            .await?
            .into_iter()
            .map(|n| n.peer_id)
            .collect();
        for known in self.cursor.keys() {
            if !nodes.contains(known) {
                nodes.push(known.clone());
            }
        }
        let first_round = !self.started;
        self.started = true;
        let mut out = Vec::new();
        for node in nodes {
            let known = self.cursor.get(&node).copied();
            let after = known.unwrap_or(0);
            let Ok(page) = backend.event_page(&node, after, PAGE).await else {
                continue; // unreachable now: asked again next round
            };
            if known.is_none() && first_round && !self.from_start {
                // Followed from now on.
                self.cursor.insert(node, page.last);
                continue;
            }
            let missed = page.missed_after(after);
            if missed > 0 {
                out.push(Followed {
                    node: node.clone(),
                    event: None,
                    missed: Some(missed),
                });
            }
            for e in page.events {
                if e.seq <= after {
                    continue; // never twice
                }
                self.cursor.insert(node.clone(), e.seq);
                out.push(Followed {
                    node: node.clone(),
                    event: Some(e),
                    missed: None,
                });
            }
            self.cursor.entry(node).or_insert(after);
        }
        Ok(out)
    }
}

fn read_cursor(path: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a cursor file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_cursor(path: &Path, cursor: &BTreeMap<String, u64>) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(cursor)?)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

fn print(fmt: Format, f: &Followed) -> anyhow::Result<()> {
    if !fmt.is_table() {
        // One JSON object per line, for scripts.
        println!("{}", serde_json::to_string(f)?);
        return Ok(());
    }
    let node = output::short_peer(&f.node);
    match (&f.event, f.missed) {
        (Some(e), _) => {
            let workload = if e.workload.is_empty() {
                "-"
            } else {
                &e.workload
            };
            let outcome = match e.outcome {
                mesh_protocol::Outcome::Ok => "ok",
                mesh_protocol::Outcome::Failed => "FAILED",
            };
            println!(
                "{} {node} #{} {workload} {} {outcome} {}",
                output::clock(e.at),
                e.seq,
                e.step,
                e.message
            );
        }
        (None, Some(n)) => {
            println!("{node}: {n} older event(s) were dropped before they were read")
        }
        (None, None) => {}
    }
    Ok(())
}

/// Follows until interrupted (Ctrl-C).
pub(super) async fn follow(
    backend: &Backend,
    fmt: Format,
    cursor_file: Option<PathBuf>,
    from_start: bool,
    workload: Option<String>,
) -> anyhow::Result<()> {
    let cursor = match &cursor_file {
        Some(path) => read_cursor(path)?,
        None => BTreeMap::new(),
    };
    let mut follower = Follower::new(cursor, from_start);
    loop {
        let batch = tokio::select! {
            b = follower.poll(backend) => b?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        for f in &batch {
            let wanted = match (&workload, &f.event) {
                (Some(w), Some(e)) => e.workload == *w,
                _ => true,
            };
            if wanted {
                print(fmt, f)?;
            }
        }
        if let Some(path) = &cursor_file {
            write_cursor(path, &follower.cursor)?;
        }
        if batch.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(ROUND) => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    }
}
