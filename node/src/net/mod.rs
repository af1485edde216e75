//! The node's libp2p swarm: one task owns it ([`EventLoop`]); everything else holds a
//! cloneable [`Client`] whose methods send a [`Command`] with a `oneshot` reply. The loop
//! translates swarm events into the small [`Event`] enum for the node service and never
//! awaits anything but the swarm and its command channel.
//!
//! Behaviours: Kademlia (server mode, protocol `/mesh/kad/1.0.0`, records filtered: only
//! signed, newer records are stored), gossipsub (heartbeats), two request-response protocols
//! with a CBOR codec (`/mesh/rpc/1` for quick requests, `/mesh/deploy/1` for applies, each with
//! its own size limits and timeout), identify (feeds listen addresses to Kademlia), and mDNS
//! when enabled.

mod behaviour;
mod event_loop;
mod failure;
mod rate;

pub use rate::DEFAULT_RATE as DEFAULT_PEER_REQUEST_RATE;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use mesh_protocol::wire::{Request, Response};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

pub use behaviour::{
    gossip_config, private_tcp, DEPLOY_PROTOCOL, GOSSIP_TOPIC, KAD_PROTOCOL, PROVIDER_ENTRY_TTL,
    REPROVIDE_INTERVAL, RPC_PROTOCOL,
};
pub use event_loop::EventLoop;
pub use failure::RequestError;

/// Commands queued for the network task.
pub const COMMAND_CHANNEL: usize = 1024;
/// Events queued for the node service; inbound requests beyond it are answered "busy".
pub const EVENT_CHANNEL: usize = 1024;
/// Largest request body (an apply carries a manifest of at most 1 MiB).
pub const MAX_REQUEST_BYTES: u64 = 2 * 1024 * 1024 + 64 * 1024;
/// Largest request on the deploy protocol: an apply may bundle WASM modules (base64).
pub const MAX_DEPLOY_REQUEST_BYTES: u64 =
    MAX_REQUEST_BYTES + (mesh_protocol::api::MAX_MODULE_BYTES as u64).div_ceil(3) * 4;
/// Largest response body (logs, deployment lists).
pub const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// Largest gossip message (heartbeat, provider record or workload record).
pub const MAX_GOSSIP_BYTES: usize = mesh_provider::workload::MAX_WORKLOAD_RECORD_BYTES + 4 * 1024;
/// Largest Kademlia message: a workload record with the framing around it.
pub const MAX_KAD_PACKET_BYTES: usize = 2 * mesh_provider::workload::MAX_WORKLOAD_RECORD_BYTES;

/// What a node made of a gossip message, reported back to gossipsub before it forwards
/// anything (messages are validated first: `validate_messages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid and new: forwarded to the node's mesh peers.
    Accept,
    /// Valid but not worth forwarding (a copy, an older record, a late one): dropped.
    Ignore,
    /// Does not verify: dropped and counted against the peer that sent it; a peer whose
    /// gossip score falls below [`behaviour::DISCONNECT_SCORE`] is disconnected and kept out
    /// for [`BLOCK_FOR`].
    Reject,
}

/// How long a peer that sent forged or malformed gossip stays blocked.
pub const BLOCK_FOR: Duration = Duration::from_secs(10 * 60);

/// Network settings of a node.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub keypair: Keypair,
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub mdns: bool,
    /// Timeout of quick requests (get, logs, delete, discover).
    pub rpc_timeout: Duration,
    /// Timeout of applies (they answer once the workload settled).
    pub deploy_timeout: Duration,
    /// How often Kademlia refreshes the routing table (a walk towards the node's own id and a
    /// random key per bucket). A node without connections re-dials its bootstrap peers every
    /// 30 s (or this, if shorter).
    pub bootstrap_interval: Duration,
    /// Kademlia query timeout.
    pub query_timeout: Duration,
    /// Connections without traffic stay open this long.
    pub idle_timeout: Duration,
    /// The private mesh's pre-shared key: without it a peer cannot complete a handshake
    /// (`libp2p-pnet`, over TCP only: a node with a key does not listen or dial on QUIC).
    pub mesh_key: Option<libp2p::pnet::PreSharedKey>,
    /// Established connections at most, all peers together, and per peer.
    pub max_connections: u32,
    pub max_connections_per_peer: u32,
    /// New connections are refused while the process uses more than this fraction of the
    /// machine's memory.
    pub max_memory_fraction: f64,
    /// When set, only these peers may connect (`libp2p-allow-block-list`).
    pub allowed_peers: Option<Vec<PeerId>>,
    /// The node's trust policy: a workload record a peer puts in this node's DHT store is
    /// kept only when it accepts the signer. `None`: any valid signature.
    pub trust: Option<crate::trust::Trust>,
    /// Requests per second each peer may send (bursts of twice that); beyond, 429. 0: no
    /// limit.
    pub peer_request_rate: u32,
    /// Where the network task counts DHT query times and refusals (the daemon shares the
    /// node's; [`NetConfig::new`] makes one of its own).
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Default bound on established connections of a node (its own connection manager trims
/// idle ones well below this; this is the hard stop).
pub const MAX_CONNECTIONS: u32 = 512;
/// Default bound per peer (a TCP and a QUIC connection, and simultaneous dials, fit).
pub const MAX_CONNECTIONS_PER_PEER: u32 = 4;
/// Default memory bound for new connections: 90 % of the machine's memory.
pub const MAX_MEMORY_FRACTION: f64 = 0.9;

impl NetConfig {
    pub fn new(keypair: Keypair) -> Self {
        Self {
            keypair,
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")],
            bootstrap: Vec::new(),
            mdns: false,
            rpc_timeout: Duration::from_secs(30),
            deploy_timeout: Duration::from_secs(600),
            bootstrap_interval: Duration::from_secs(5 * 60),
            query_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            mesh_key: None,
            max_connections: MAX_CONNECTIONS,
            max_connections_per_peer: MAX_CONNECTIONS_PER_PEER,
            max_memory_fraction: MAX_MEMORY_FRACTION,
            allowed_peers: None,
            trust: None,
            peer_request_rate: DEFAULT_PEER_REQUEST_RATE,
            metrics: Arc::default(),
        }
    }
}

/// What the network tells the node service.
#[derive(Debug)]
pub enum Event {
    /// A peer asks something; answer with [`Client::respond`].
    Inbound {
        peer: PeerId,
        request: Request,
        channel: ResponseChannel<Response>,
    },
    /// A message arrived on the gossip topic (not yet verified): a heartbeat, a provider
    /// record or withdrawal, or a workload record. Gossip messages are anonymous (see
    /// [`behaviour`]): `from` is the peer that forwarded it, not necessarily its author; the
    /// signature inside says who wrote it.
    /// Gossipsub forwards it only once the node reports its [`Verdict`] ([`Client::report`]).
    Gossip {
        from: PeerId,
        id: libp2p::gossipsub::MessageId,
        data: Vec<u8>,
    },
    /// The last connection to a peer closed on an error (it reset, its process died) or
    /// because its link was cut, not because this node trimmed it: liveness suspects it.
    PeerGone { peer: PeerId },
}

/// Records found by a lookup: the record and the peer its key names.
pub type FoundRecord = Vec<u8>;

#[derive(Debug)]
pub(crate) enum Command {
    Report {
        id: libp2p::gossipsub::MessageId,
        from: PeerId,
        verdict: Verdict,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Dial {
        addr: Multiaddr,
    },
    PutRecord {
        key: Vec<u8>,
        value: Vec<u8>,
        expires: Instant,
        /// Answer once the closest peers were asked to store it, not just the local store.
        replicated: bool,
        reply: oneshot::Sender<Result<(), String>>,
    },
    GetRecords {
        key: Vec<u8>,
        reply: oneshot::Sender<Vec<FoundRecord>>,
    },
    StartProviding {
        key: Vec<u8>,
        replicated: bool,
        reply: oneshot::Sender<Result<(), String>>,
    },
    StopProviding {
        key: Vec<u8>,
    },
    GetProviders {
        key: Vec<u8>,
        reply: oneshot::Sender<HashSet<PeerId>>,
    },
    Request {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: Request,
        reply: oneshot::Sender<Result<Response, RequestError>>,
    },
    Respond {
        channel: ResponseChannel<Response>,
        response: Response,
    },
    Publish {
        data: Vec<u8>,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    GossipMeshPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    StoredRecord {
        key: Vec<u8>,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    StoredRecords {
        reply: oneshot::Sender<Vec<(Vec<u8>, Vec<u8>)>>,
    },
    /// Cut (or restore) the links to these peers: connections closed and refused while cut.
    Cut {
        peers: Vec<PeerId>,
        cut: bool,
    },
    /// Close the connections to a peer, announced as the connection manager does, or not.
    Close {
        peer: PeerId,
        announce: bool,
    },
    /// Stop polling the swarm for a while (tests of a node that is slow, not dead).
    Pause {
        duration: std::time::Duration,
    },
}

/// Handle on the network task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    local: PeerId,
    /// Requests in flight per protocol, bounded: each takes a stream of the connection, and
    /// a peer refuses streams beyond its limit. Further requests wait for a slot.
    rpc_slots: Arc<Semaphore>,
    deploy_slots: Arc<Semaphore>,
}

/// Requests in flight at once on each request-response protocol, from one node.
pub const MAX_OUTBOUND_REQUESTS: usize = 64;
/// Streams a node accepts at once per connection and protocol (above what one peer sends).
pub const MAX_INBOUND_STREAMS: usize = 2 * MAX_OUTBOUND_REQUESTS;

/// The request-response protocol a request travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Channel {
    /// Quick requests ([`RPC_PROTOCOL`]).
    Rpc,
    /// Applies, which answer once the workload settled ([`DEPLOY_PROTOCOL`]).
    Deploy,
}

impl Channel {
    pub(crate) fn of(request: &Request) -> Self {
        match request {
            // Deletes wait for the workload's lock, which a deploy may hold for long.
            Request::Apply(_)
            | Request::ApplyReplica(_)
            | Request::Delete { .. }
            | Request::ReplicaDelete { .. }
            | Request::Command { .. } => Channel::Deploy,
            _ => Channel::Rpc,
        }
    }
}

fn gone<T>(_: T) -> String {
    "the network task has stopped".to_string()
}

impl Client {
    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    async fn send(&self, cmd: Command) -> Result<(), String> {
        self.commands.send(cmd).await.map_err(gone)
    }

    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        let (reply, rx) = oneshot::channel();
        if self.send(Command::ListenAddrs { reply }).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    pub async fn dial(&self, addr: Multiaddr) -> Result<(), String> {
        self.send(Command::Dial { addr }).await
    }

    /// Stores a record locally and in the DHT. With `replicated`, answers once the lookup of
    /// the closest peers finished and they were asked to store it; otherwise at once.
    pub async fn put_record(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        expires: Instant,
        replicated: bool,
    ) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::PutRecord {
            key,
            value,
            expires,
            replicated,
            reply,
        })
        .await?;
        rx.await.map_err(gone)?
    }

    /// The copy of a record this node's own store holds (no lookup).
    pub async fn stored_record(&self, key: Vec<u8>) -> Option<Vec<u8>> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::StoredRecord { key, reply }).await.ok()?;
        rx.await.ok().flatten()
    }

    /// Every record this node's own store holds, as (key, value): what a test reads to see
    /// all that the DHT keeps on this node.
    pub async fn stored_records(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let (reply, rx) = oneshot::channel();
        if self.send(Command::StoredRecords { reply }).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Cuts the links to `peers`: their connections are closed, and new ones refused either
    /// way, until [`Client::restore`] (`libp2p-allow-block-list`). What a network partition
    /// does to this node; tests partition a mesh with it.
    pub async fn cut(&self, peers: Vec<PeerId>) {
        let _ = self.send(Command::Cut { peers, cut: true }).await;
    }

    /// Restores the links [`Client::cut`] cut (a peer blocked for its gossip stays blocked
    /// until its time is up). Connections come back as either side dials again.
    pub async fn restore(&self, peers: Vec<PeerId>) {
        let _ = self.send(Command::Cut { peers, cut: false }).await;
    }

    /// Stops this node's network task for `duration`: nothing is sent, received or answered,
    /// while its connections stay open, as on a machine that stalls. For tests of liveness.
    pub async fn pause(&self, duration: std::time::Duration) {
        let _ = self.send(Command::Pause { duration }).await;
    }

    /// Closes the connections to `peer`: announced first, as the connection manager closes
    /// them, or without notice, as a node that dies does. For tests of liveness.
    pub async fn close(&self, peer: PeerId, announce: bool) {
        let _ = self.send(Command::Close { peer, announce }).await;
    }

    /// Every copy of the record the lookup found (the local one included).
    pub async fn get_records(&self, key: Vec<u8>) -> Vec<FoundRecord> {
        let (reply, rx) = oneshot::channel();
        if self.send(Command::GetRecords { key, reply }).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Provides a key; `replicated` as for [`Client::put_record`].
    pub async fn start_providing(&self, key: Vec<u8>, replicated: bool) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::StartProviding {
            key,
            replicated,
            reply,
        })
        .await?;
        rx.await.map_err(gone)?
    }

    pub async fn stop_providing(&self, key: Vec<u8>) {
        let _ = self.send(Command::StopProviding { key }).await;
    }

    pub async fn get_providers(&self, key: Vec<u8>) -> HashSet<PeerId> {
        let (reply, rx) = oneshot::channel();
        if self
            .send(Command::GetProviders { key, reply })
            .await
            .is_err()
        {
            return HashSet::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Sends a request and waits for the answer (bounded by the protocol's timeout).
    pub async fn request(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: Request,
    ) -> Result<Response, String> {
        self.send_request(peer, addrs, request)
            .await
            .map_err(String::from)
    }

    /// [`Client::request`], telling a peer that could not be reached from one that did not
    /// answer.
    pub async fn send_request(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: Request,
    ) -> Result<Response, RequestError> {
        let no_answer = |e: String| RequestError::NoAnswer(e);
        let slots = match Channel::of(&request) {
            Channel::Rpc => &self.rpc_slots,
            Channel::Deploy => &self.deploy_slots,
        };
        let _slot = slots.acquire().await.map_err(gone).map_err(no_answer)?;
        let name = request.name();
        let (reply, rx) = oneshot::channel();
        self.send(Command::Request {
            peer,
            addrs,
            request,
            reply,
        })
        .await
        .map_err(no_answer)?;
        rx.await.map_err(|_| {
            no_answer(format!(
                "the network task dropped the {name} request to {peer}"
            ))
        })?
    }

    pub async fn respond(&self, channel: ResponseChannel<Response>, response: Response) {
        let _ = self.send(Command::Respond { channel, response }).await;
    }

    pub async fn publish(&self, data: Vec<u8>) {
        let _ = self.send(Command::Publish { data }).await;
    }

    /// Tells gossipsub what the node made of a message: forward it, drop it, or drop it and
    /// count it against the peer that sent it (see [`Verdict`]).
    pub async fn report(&self, id: libp2p::gossipsub::MessageId, from: PeerId, verdict: Verdict) {
        let _ = self.send(Command::Report { id, from, verdict }).await;
    }

    pub async fn connected_peers(&self) -> Vec<PeerId> {
        let (reply, rx) = oneshot::channel();
        if self.send(Command::ConnectedPeers { reply }).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The peers in this node's gossipsub mesh (those it forwards every message to): a node
    /// with none hears gossip only from the lazy IHAVE announcements of its other peers.
    pub async fn gossip_mesh_peers(&self) -> Vec<PeerId> {
        let (reply, rx) = oneshot::channel();
        if self.send(Command::GossipMeshPeers { reply }).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

/// Builds the swarm, starts listening, and returns the client, the event receiver and the
/// loop to spawn.
pub fn new(
    config: NetConfig,
    shutdown: CancellationToken,
) -> Result<(Client, mpsc::Receiver<Event>, EventLoop), String> {
    let local = config.keypair.public().to_peer_id();
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_CHANNEL);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_CHANNEL);
    let event_loop = EventLoop::new(config, cmd_rx, ev_tx, shutdown)?;
    Ok((
        Client {
            commands: cmd_tx,
            local,
            rpc_slots: Arc::new(Semaphore::new(MAX_OUTBOUND_REQUESTS)),
            deploy_slots: Arc::new(Semaphore::new(MAX_OUTBOUND_REQUESTS)),
        },
        ev_rx,
        event_loop,
    ))
}
