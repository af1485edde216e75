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
//! - [`ops`]: the mesh-wide operations;
//! - [`serve`]: answering peers' requests.

pub mod announce;
pub mod cache;
pub mod modules;
pub mod ops;
pub mod peers;
pub mod serve;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::identity::Keypair;
use mesh_protocol::WorkloadId;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::net;
use crate::service::Node;
use cache::ProviderCache;
use peers::PeerTable;

/// Peer requests served at once; more wait for a slot.
pub const MAX_INBOUND_IN_FLIGHT: usize = 64;
/// Workload changes queued for the announcer (it also sweeps periodically).
pub const CHANGE_CHANNEL: usize = 1024;

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

impl MeshConfig {
    /// How long a heartbeat stays valid, and a peer fresh: three periods plus slack.
    pub fn heartbeat_validity(&self) -> Duration {
        self.heartbeat_interval * 3 + HEARTBEAT_SLACK
    }
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

#[derive(Debug)]
struct Inner {
    node: Node,
    net: net::Client,
    keypair: Keypair,
    config: MeshConfig,
    peers: PeerTable,
    /// Provider records heard on gossip.
    providers: ProviderCache,
    /// Nodes applies named as holding a module, by digest.
    module_hints: modules::Hints,
    /// When this node started: its gossip cache is complete once it has heard a full round
    /// of renewals (a third of the provider TTL).
    started: std::time::Instant,
    /// Workloads this node announced, with the version announced and when.
    announced: Mutex<HashMap<WorkloadId, (String, std::time::Instant)>>,
    /// Keys this node provides (see [`Mesh::provide`]), and when it last announced each.
    provided: Mutex<HashMap<Vec<u8>, std::time::Instant>>,
    inbound: Arc<Semaphore>,
}

impl Mesh {
    /// Wires the node to the network and starts the mesh tasks on `tasks`.
    pub fn start(
        node: Node,
        net: net::Client,
        events: mpsc::Receiver<net::Event>,
        keypair: Keypair,
        config: MeshConfig,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let mesh = Mesh {
            inner: Arc::new(Inner {
                peers: PeerTable::new(config.heartbeat_validity()),
                providers: ProviderCache::new(),
                started: std::time::Instant::now(),
                module_hints: Default::default(),
                node,
                net,
                keypair,
                config,
                announced: Mutex::new(HashMap::new()),
                provided: Mutex::new(HashMap::new()),
                inbound: Arc::new(Semaphore::new(MAX_INBOUND_IN_FLIGHT)),
            }),
        };
        let (changes_tx, changes_rx) = mpsc::channel(CHANGE_CHANNEL);
        mesh.inner.node.watch_changes(changes_tx);
        tasks.spawn(
            mesh.clone()
                .run_events(events, tasks.clone(), shutdown.clone()),
        );
        tasks.spawn(mesh.clone().run_announcer(changes_rx, shutdown.clone()));
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
                    tasks.spawn(async move {
                        let Ok(_slot) = slots.acquire_owned().await else {
                            return;
                        };
                        let response = mesh.serve(peer, request).await;
                        mesh.inner.net.respond(channel, response).await;
                    });
                }
                net::Event::Gossip { source, data } => self.on_gossip(source, &data),
            }
        }
    }
}
