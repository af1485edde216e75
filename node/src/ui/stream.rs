//! What `GET /ui/stream` sends, as server-sent events:
//!
//! - `snapshot`: `{"node", "at", "nodes": [NodeInfo], "deployments": [Deployment]}`, what
//!   `GET /nodes` and `GET /deployments` answer (`node` is this node's id);
//! - `events`: `{"node", "events": [Event], "missed"}`, new events of one node's durable
//!   event log, oldest first (`missed`: events the node dropped before they were read);
//! - `problem`: `{"error"}`, a snapshot that could not be read (the stream goes on).
//!
//! This node's events are sent as soon as they are logged (the store's watch wakes the
//! stream); other nodes' logs are read with each snapshot, each ask bounded by
//! [`REMOTE_TIMEOUT`] so that an unreachable node delays nothing for long. Every node is
//! followed from its [`BACKLOG`] newest events on.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::Event as Sse;
use futures::Stream;
use mesh_protocol::api::{Deployment, EventPage};
use mesh_protocol::wire::NodeInfo;
use mesh_protocol::Event;
use serde::Serialize;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::mesh::Mesh;

/// Period of snapshots of nodes and workloads (and of reads of other nodes' event logs).
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);
/// Events of each node sent when the stream opens.
pub const BACKLOG: u64 = 50;
/// A snapshot follows a local event this soon (the other events of its step have been
/// logged by then), rather than one per event.
const SETTLE: Duration = Duration::from_millis(200);
/// How long one other node may take to answer for its event log.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(1);
/// Events read of one node per read.
const PAGE: usize = crate::mesh::event_log::MAX_EVENT_PAGE;

#[derive(Serialize)]
struct Snapshot<'a> {
    node: &'a str,
    at: u64,
    nodes: &'a [NodeInfo],
    deployments: &'a [Deployment],
}

#[derive(Serialize)]
struct Events<'a> {
    node: &'a str,
    events: &'a [Event],
    missed: u64,
}

/// One open stream: its cursors and what is ready to send.
pub(super) struct Follow {
    mesh: Mesh,
    shutdown: CancellationToken,
    newest: watch::Receiver<u64>,
    me: String,
    /// Per node, the sequence number of the last event sent.
    cursors: BTreeMap<String, u64>,
    ready: VecDeque<Sse>,
    next_snapshot: Instant,
    /// Held while the stream is open (the bound on open streams).
    _permit: OwnedSemaphorePermit,
}

impl Follow {
    pub(super) fn new(
        mesh: Mesh,
        shutdown: CancellationToken,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        let newest = mesh.node().store().watch_events();
        let me = mesh.node().id().to_string();
        Self {
            mesh,
            shutdown,
            newest,
            me,
            cursors: BTreeMap::new(),
            ready: VecDeque::new(),
            next_snapshot: Instant::now(),
            _permit: permit,
        }
    }

    pub(super) fn into_stream(self) -> impl Stream<Item = Result<Sse, Infallible>> {
        futures::stream::unfold(self, |mut follow| async move {
            let event = follow.next().await?;
            Some((Ok(event), follow))
        })
    }

    /// The next message, waiting for one; `None` once the node stops.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                changed = self.newest.changed() => {
                    changed.ok()?;
                    let cursor = self.cursors.get(&self.me).copied();
                    match read_log(&self.mesh, &self.me, cursor).await {
                        Ok((after, page)) => self.push_page(after, page),
                        Err(e) => self.push_problem(&format!("cannot read the event log: {e}")),
                    }
                    self.next_snapshot = self.next_snapshot.min(Instant::now() + SETTLE);
                }
                _ = tokio::time::sleep_until(self.next_snapshot) => {
                    self.snapshot().await;
                    self.next_snapshot = Instant::now() + SNAPSHOT_EVERY;
                }
            }
        }
    }

    async fn snapshot(&mut self) {
        let nodes = self.mesh.nodes(None).await;
        let deployments = match self.mesh.list().await {
            Ok(d) => d,
            Err(e) => {
                self.push_problem(&format!("cannot list the workloads: {e}"));
                Vec::new()
            }
        };
        let me = self.me.clone();
        let snapshot = Snapshot {
            node: &me,
            at: mesh_runtime::now_millis(),
            nodes: &nodes,
            deployments: &deployments,
        };
        self.push_json("snapshot", &snapshot);
        self.read_logs(&nodes).await;
    }

    /// Reads every node's event log after its cursor, all at once.
    async fn read_logs(&mut self, nodes: &[NodeInfo]) {
        let asks = nodes.iter().map(|n| {
            let cursor = self.cursors.get(&n.peer_id).copied();
            let read = read_log(&self.mesh, &n.peer_id, cursor);
            tokio::time::timeout(REMOTE_TIMEOUT, read)
        });
        for answer in futures::future::join_all(asks).await {
            // Unreachable or slow: asked again with the next snapshot.
            if let Ok(Ok((after, page))) = answer {
                self.push_page(after, page);
            }
        }
    }

    /// Queues the events of `page` (read after `after`) not sent yet.
    fn push_page(&mut self, after: u64, page: EventPage) {
        let after = after.max(self.cursors.get(&page.node).copied().unwrap_or(0));
        let missed = page.missed_after(after);
        let events: Vec<Event> = page.events.into_iter().filter(|e| e.seq > after).collect();
        let last = events.last().map_or(after, |e| e.seq);
        self.cursors.insert(page.node.clone(), last);
        if events.is_empty() && missed == 0 {
            return;
        }
        let message = Events {
            node: &page.node,
            events: &events,
            missed,
        };
        self.push_json("events", &message);
    }

    fn push_problem(&mut self, error: &str) {
        self.push_json("problem", &serde_json::json!({ "error": error }));
    }

    fn push_json(&mut self, kind: &str, data: &impl Serialize) {
        match Sse::default().event(kind).json_data(data) {
            Ok(event) => self.ready.push_back(event),
            Err(e) => tracing::warn!(error = %e, kind, "dashboard message not serialised"),
        }
    }
}

/// `node`'s log after `cursor`, or, for a node not followed yet (`None`), from its
/// [`BACKLOG`] newest events on; with the sequence number it was read after.
async fn read_log(
    mesh: &Mesh,
    node: &str,
    cursor: Option<u64>,
) -> Result<(u64, EventPage), crate::mesh::Error> {
    let after = match cursor {
        Some(after) => after,
        None => {
            let newest = mesh.event_page(Some(node), u64::MAX, 1).await?.last;
            newest.saturating_sub(BACKLOG)
        }
    };
    Ok((after, mesh.event_page(Some(node), after, PAGE).await?))
}
