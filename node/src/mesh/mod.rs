//! The mesh layer of a node: everything that involves other nodes. It holds the local
//! [`Node`] service and a [`net::Client`], and provides the mesh-wide operations the local
//! API and `meshctl --peer` use: apply with placement, get, list, delete, logs, discover and
//! nodes. Background tasks announce this node's providers and capabilities into the DHT,
//! renew and withdraw them, publish heartbeats, and serve peers' requests.
//!
//! # Layout
//!
//! - this file: [`Mesh`], its configuration and its tasks;
//! - [`peers`]: the table of peers heard from by heartbeat;
//! - [`cache`]: provider records heard on gossip;
//! - [`modules`]: WASM modules: bundling at the entry node, providing, serving, fetching;
//! - [`announce`]: provider and node records (announce, renew, withdraw) and heartbeats;
//! - [`records`]: workload records: adopt, publish (gossip and DHT), look up, tombstones;
//! - [`view`]: the nodes of the mesh as `nodes` and placement both see them;
//! - [`apply`], [`delete`], [`read`]: the mesh-wide operations;
//! - [`merge`]: one deployment view from a record and its replicas' reports;
//! - [`serve`]: answering peers' requests;
//! - [`owned`]: work that outlives the request that started it.

pub mod announce;
pub mod apply;
pub mod cache;
pub mod delete;
pub mod drain;
pub mod error;
pub mod event_log;
pub mod heal;
pub mod health;
pub mod leave;
pub mod liveness;
pub mod merge;
pub mod modules;
pub mod outputs;
pub mod owned;
pub mod peers;
pub mod probe;
pub mod read;
pub mod records;
pub mod serve;
pub mod view;

pub use error::Error;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::identity::Keypair;
use mesh_protocol::WorkloadId;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::net;
use crate::records::book::RecordBook;
use crate::service::Node;
use cache::ProviderCache;
use peers::PeerTable;

/// Peer requests served at once; more wait for a slot.
pub const MAX_INBOUND_IN_FLIGHT: usize = 64;
/// Applies and deletes (from the local API or peers) running at once; beyond it a request
/// is answered "busy" (503) at once rather than queued without bound.
pub const MAX_OWNED_OPERATIONS: usize = 64;

/// Mesh settings.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Lifetime of provider and node records; renewed at a third of it.
    pub provider_ttl: Duration,
    /// Period of gossip heartbeats; peers unheard for three periods are stale.
    pub heartbeat_interval: Duration,
}

/// Slack added to three heartbeat periods before a peer counts as gone: a loaded machine
/// delays heartbeats, and a peer must not flap in and out of placement because of it.
pub const HEARTBEAT_SLACK: Duration = Duration::from_secs(2);

/// Mesh size up to which a node heartbeats at the configured period.
pub const HEARTBEAT_NODES: usize = 50;

impl MeshConfig {
    /// How long a heartbeat at the configured period stays valid, and a peer fresh: three
    /// periods plus slack.
    pub fn heartbeat_validity(&self) -> Duration {
        heartbeat_validity(self.heartbeat_interval)
    }

    /// The heartbeat period of a node that knows of `nodes` nodes (itself included): the
    /// configured one up to [`HEARTBEAT_NODES`], then in proportion to the mesh, so that each
    /// node receives no more heartbeats per second than in a mesh of 50. Every node receives
    /// every node's heartbeat: at a fixed period the mesh's gossip grows with the square of
    /// its size, and 100 in-process nodes on 2 cores spent their time verifying and relaying
    /// heartbeats, which then arrived too late and made peers suspect (65 000 suspicions of
    /// silence in 8 minutes). Each heartbeat says how long it is valid, so receivers judge a
    /// peer's silence by its own period.
    pub fn heartbeat_period(&self, nodes: usize) -> Duration {
        let scale = nodes.max(HEARTBEAT_NODES) as f64 / HEARTBEAT_NODES as f64;
        self.heartbeat_interval.mul_f64(scale)
    }
}

/// How long a heartbeat sent every `period` stays valid: three periods plus slack.
pub fn heartbeat_validity(period: Duration) -> Duration {
    period * 3 + HEARTBEAT_SLACK
}

/// The period a heartbeat valid for `validity` was sent at (the inverse of
/// [`heartbeat_validity`]).
pub fn heartbeat_period_of(validity: Duration) -> Duration {
    validity.saturating_sub(HEARTBEAT_SLACK) / 3
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            provider_ttl: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(5),
        }
    }
}

/// The mesh side of a node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Mesh {
    inner: Arc<Inner>,
}

/// Per workload: when a peer placed a replica here, which peer, and the slots that were
/// empty then (see `heal`'s `placed_here`).
type PlacedHere = HashMap<WorkloadId, (std::time::Instant, libp2p::PeerId, Vec<u32>)>;

#[derive(Debug)]
struct Inner {
    node: Node,
    net: net::Client,
    keypair: Keypair,
    config: MeshConfig,
    peers: Arc<PeerTable>,
    /// Provider records heard on gossip.
    providers: ProviderCache,
    /// The newest workload record of every workload heard of.
    records: Arc<RecordBook>,
    /// Owner of applies and deletes: they run here, not in the task of the request that
    /// asked, so a client that hangs up cancels nothing.
    owned: owned::Owner,
    /// Nodes applies named as holding a module, by digest.
    module_hints: Arc<modules::Hints>,
    /// When this node started: its gossip cache is complete once it has heard a full round
    /// of renewals (a third of the provider TTL).
    started: std::time::Instant,
    /// Workloads this node announced, with the version and slot announced and when.
    announced: Mutex<HashMap<WorkloadId, (String, u32, std::time::Instant)>>,
    /// Workloads a peer placed a replica of here, by whom, when, and the slots empty then
    /// (see [`Mesh::heal`]).
    placed_here: Mutex<PlacedHere>,
    /// Announcements made but not spread yet, by their bytes (see [`Mesh::spread_later`]).
    unspread: Mutex<HashMap<Vec<u8>, WorkloadId>>,
    /// One apply or delete of a workload at a time through this node (see
    /// [`Mesh::workload_lock`]).
    workload_locks: Mutex<HashMap<WorkloadId, Arc<tokio::sync::Mutex<()>>>>,
    /// When this node last re-published each workload record to a peer that sent an older
    /// revision (see [`Mesh::on_gossip_record`]).
    repeated: Mutex<HashMap<WorkloadId, std::time::Instant>>,
    /// Keys this node provides (see [`Mesh::provide`]), and when it last announced each.
    provided: Mutex<HashMap<Vec<u8>, std::time::Instant>>,
    inbound: Arc<Semaphore>,
    /// What this node believes of its peers' liveness.
    liveness: liveness::Liveness,
    /// How far this node trusts its own sense of silence (see [`health`]).
    health: health::Health,
    /// Wakes the liveness task: a connection was lost.
    probe_now: tokio::sync::Notify,
    /// Wakes the healer: a peer died or came back.
    heal_now: tokio::sync::Notify,
    /// Sealed workloads (and revisions) the healer said it cannot place for want of a key.
    heal_waiting: Mutex<std::collections::HashSet<(WorkloadId, u64)>>,
    /// Where the next choice of indirect probers starts.
    probe_rotation: std::sync::atomic::AtomicUsize,
}

/// What the mesh side of a node is made of.
#[derive(Debug)]
pub struct Parts {
    pub node: Node,
    pub net: net::Client,
    pub events: mpsc::Receiver<net::Event>,
    /// Workloads whose local state changed (the node service sends them).
    pub changes: mpsc::Receiver<WorkloadId>,
    pub records: Arc<RecordBook>,
    pub keypair: Keypair,
    pub config: MeshConfig,
    /// Shared with the wasm engine's [`modules::MeshFetcher`] (made before the mesh).
    pub peers: Arc<PeerTable>,
    pub module_hints: Arc<modules::Hints>,
}

impl Mesh {
    /// Wires the node to the network and starts the mesh tasks on `tasks`.
    pub fn start(parts: Parts, tasks: &TaskTracker, shutdown: CancellationToken) -> Self {
        let Parts {
            node,
            net,
            events,
            changes,
            records,
            keypair,
            config,
            peers,
            module_hints,
        } = parts;
        // A false alarm weighs for a heartbeat period: up to eight of them after a storm.
        let health = health::Health::new(config.heartbeat_interval);
        let mesh = Mesh {
            inner: Arc::new(Inner {
                peers,
                providers: ProviderCache::new(),
                records,
                owned: owned::Owner::new(tasks.clone(), MAX_OWNED_OPERATIONS),
                started: std::time::Instant::now(),
                module_hints,
                node,
                net,
                keypair,
                config,
                announced: Mutex::new(HashMap::new()),
                placed_here: Mutex::new(HashMap::new()),
                unspread: Mutex::new(HashMap::new()),
                repeated: Mutex::new(HashMap::new()),
                workload_locks: Mutex::new(HashMap::new()),
                provided: Mutex::new(HashMap::new()),
                inbound: Arc::new(Semaphore::new(MAX_INBOUND_IN_FLIGHT)),
                liveness: liveness::Liveness::default(),
                health,
                heal_now: tokio::sync::Notify::new(),
                probe_now: tokio::sync::Notify::new(),
                probe_rotation: std::sync::atomic::AtomicUsize::new(0),
                heal_waiting: Mutex::new(std::collections::HashSet::new()),
            }),
        };
        tasks.spawn(
            mesh.clone()
                .run_events(events, tasks.clone(), shutdown.clone()),
        );
        tasks.spawn(mesh.clone().run_announcer(changes, shutdown.clone()));
        mesh.retire_deleted();
        tasks.spawn(mesh.clone().run_liveness(shutdown.clone()));
        tasks.spawn(mesh.clone().run_healer(shutdown.clone()));
        tasks.spawn(mesh.clone().run_heartbeats(shutdown));
        mesh
    }

    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    pub fn net(&self) -> &net::Client {
        &self.inner.net
    }

    pub fn config(&self) -> &MeshConfig {
        &self.inner.config
    }

    pub fn peers(&self) -> &PeerTable {
        &self.inner.peers
    }

    pub fn records(&self) -> &RecordBook {
        &self.inner.records
    }

    pub fn liveness(&self) -> &liveness::Liveness {
        &self.inner.liveness
    }

    /// How far this node trusts its own sense of its peers' silence.
    pub fn health(&self) -> &health::Health {
        &self.inner.health
    }

    /// The lock that makes applies and deletes of one workload through this node take turns,
    /// so that two of them never both read the same held record and act on it. Locks nobody
    /// holds are dropped as new ones are made.
    pub(crate) fn workload_lock(&self, id: &WorkloadId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .inner
            .workload_locks
            .lock()
            .expect("workload locks are never poisoned");
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(id.clone()).or_default().clone()
    }

    /// Handles network events until shutdown: peers' requests (each in its own task, bounded)
    /// and heartbeats.
    async fn run_events(
        self,
        mut events: mpsc::Receiver<net::Event>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) {
        loop {
            let event = tokio::select! {
                e = events.recv() => match e { Some(e) => e, None => return },
                _ = shutdown.cancelled() => return,
            };
            match event {
                net::Event::Inbound {
                    peer,
                    request,
                    channel,
                } => {
                    let mesh = self.clone();
                    let slots = self.inner.inbound.clone();
                    // Applies and deletes are bounded by the owner (a permit, else 503 at
                    // once); holding an inbound slot for their whole run would let two busy
                    // nodes wait on each other and starve quick requests.
                    let owned = serve::is_owned(&request);
                    tasks.spawn(async move {
                        let _slot = if owned {
                            None
                        } else {
                            match slots.acquire_owned().await {
                                Ok(slot) => Some(slot),
                                Err(_) => return,
                            }
                        };
                        let response = mesh.serve(peer, request).await;
                        mesh.answer(channel, response).await;
                    });
                }
                net::Event::PeerGone { peer } => self.on_peer_gone(peer),
                net::Event::Gossip { from, id, data } => {
                    let verdict = self.on_gossip(None, &data);
                    if verdict == net::Verdict::Reject {
                        self.node()
                            .metrics()
                            .refused(crate::metrics::Reason::BadGossip);
                    }
                    tracing::trace!(%from, bytes = data.len(), ?verdict, "gossip message");
                    self.inner.net.report(id, from, verdict).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_period_grows_with_the_mesh_beyond_50_nodes() {
        let config = MeshConfig::default();
        let s = Duration::from_secs;
        assert_eq!(config.heartbeat_period(1), s(5));
        assert_eq!(config.heartbeat_period(HEARTBEAT_NODES), s(5));
        assert_eq!(config.heartbeat_period(100), s(10));
        assert_eq!(config.heartbeat_period(200), s(20));
        // Each node then receives at most 10 heartbeats a second, as at 50 nodes.
        for n in [50, 100, 200, 1000] {
            let per_second = n as f64 / config.heartbeat_period(n).as_secs_f64();
            assert!(per_second <= 10.0 + 1e-9, "{n} nodes: {per_second}");
        }
        for period in [s(5), s(20), Duration::from_millis(500)] {
            assert_eq!(heartbeat_period_of(heartbeat_validity(period)), period);
        }
        assert_eq!(config.heartbeat_validity(), s(17));
    }
}
