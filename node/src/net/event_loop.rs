//! The task that owns the swarm. It reacts to commands from [`super::Client`] and to swarm
//! events, keeps in-flight operations in `pending_*` maps keyed by query or request id, and
//! fails each pending entry when its operation fails. It never awaits an engine, the store or
//! a peer's reply inline.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::kad::{self, QueryId};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::OutboundRequestId;
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, identify, mdns, Multiaddr, PeerId, Swarm};
use mesh_protocol::wire::Response;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

mod alone;
mod dht;
mod rpc;
mod trim;

use super::behaviour::{self, Behaviour, BehaviourEvent, GOSSIP_TOPIC};
use super::{Channel, Command, Event, FoundRecord, NetConfig, Verdict, BLOCK_FOR};

pub(super) type Reply<T> = oneshot::Sender<T>;

/// Providers found so far, how many peers answered with some, and who waits for them.
type PendingProviders = (HashSet<PeerId>, usize, Reply<HashSet<PeerId>>);

/// Copies of a record (or answers listing providers) after which a lookup stops.
pub(super) const ENOUGH_COPIES: usize = 2;

/// Above this many connected peers, the least recently used are closed...
pub const CONNECTIONS_HIGH_WATER: usize = 32;
/// ... down to this many.
pub const CONNECTIONS_LOW_WATER: usize = 24;
/// How often a node checks that it is still connected to someone.
const REJOIN_CHECK: Duration = Duration::from_secs(30);
/// How often connections are counted, and how long a used peer is protected from trimming.
const TRIM_PERIOD: Duration = Duration::from_secs(10);
/// How long the closest peers found for a record key are reused for its renewals before they
/// are looked up again. A failed replication forgets them at once.
pub const CLOSEST_PEERS_REUSE: Duration = Duration::from_secs(5 * 60);

/// A record waiting for its key's closest peers, and who waits for its replication.
type PendingPut = (kad::Record, Option<Reply<Result<(), String>>>);

/// Owns the swarm; run it with [`EventLoop::run`].
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    shutdown: CancellationToken,
    bootstrap: Vec<Multiaddr>,
    bootstrap_interval: Duration,
    topic: gossipsub::IdentTopic,
    /// Requests in flight, by protocol and id: each request-response behaviour numbers its
    /// requests from the same start, so an id alone names two requests at once.
    pending_requests:
        HashMap<(Channel, OutboundRequestId), Reply<Result<Response, super::RequestError>>>,
    pending_get_records: HashMap<QueryId, (Vec<FoundRecord>, Reply<Vec<FoundRecord>>)>,
    /// Providers found so far and how many peers answered with some.
    pending_get_providers: HashMap<QueryId, PendingProviders>,
    pending_puts: HashMap<QueryId, Reply<Result<(), String>>>,
    pending_provides: HashMap<QueryId, Reply<Result<(), String>>>,
    /// Record puts waiting for a closest-peers lookup.
    pending_closest: HashMap<QueryId, PendingPut>,
    /// The closest peers found for each record key this node puts, and when.
    closest: HashMap<kad::RecordKey, (Instant, Vec<PeerId>)>,
    /// Connections unused this long are closed (gossipsub's streams keep them open otherwise).
    idle_timeout: Duration,
    /// Authorises workload records peers put here (see [`crate::trust`]).
    trust: Option<crate::trust::Trust>,
    /// When each connected peer was last used by a request or record put (either way), or
    /// connected.
    last_used: HashMap<PeerId, Instant>,
    /// Peers blocked for the gossip they sent, and until when.
    blocked_until: HashMap<PeerId, Instant>,
    /// Peers whose links are cut ([`super::Client::cut`]).
    cut: HashSet<PeerId>,
    /// Inbound requests per peer (see [`super::rate`]).
    rate: super::rate::RateLimits,
    /// Requests in flight with each peer, either way: their connections are not trimmed.
    in_flight: rpc::InFlight,
    /// Connections this node is closing, by the [`mesh_protocol::wire::Request::Closing`] that announced it.
    closing: HashMap<OutboundRequestId, PeerId>,
    /// Peers that announced they close their connection with this node, and when.
    closing_announced: HashMap<PeerId, Instant>,
    /// When a new connection last made the node trim (see `trim_if_crowded`).
    trimmed_at: Option<Instant>,
    /// Established connections at most (`--max-connections`).
    max_connections: u32,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("peer", self.swarm.local_peer_id())
            .finish()
    }
}

/// The peer id a multiaddr ends with, if any.
fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

impl EventLoop {
    pub(crate) fn new(
        config: NetConfig,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
        shutdown: CancellationToken,
    ) -> Result<Self, String> {
        let mut swarm = behaviour::build(&config)?;
        for addr in &config.listen {
            if config.mesh_key.is_some() && behaviour::is_quic(addr) {
                tracing::warn!(%addr, "not listening on QUIC: a private mesh (--mesh-key) runs over TCP only");
                continue;
            }
            swarm
                .listen_on(addr.clone())
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        }
        let topic = gossipsub::IdentTopic::new(GOSSIP_TOPIC);
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .map_err(|e| format!("gossipsub subscribe: {e}"))?;
        Ok(Self {
            swarm,
            commands,
            events,
            shutdown,
            bootstrap: config.bootstrap,
            bootstrap_interval: config.bootstrap_interval,
            topic,
            pending_requests: HashMap::new(),
            pending_get_records: HashMap::new(),
            pending_get_providers: HashMap::new(),
            pending_puts: HashMap::new(),
            pending_provides: HashMap::new(),
            pending_closest: HashMap::new(),
            closest: HashMap::new(),
            idle_timeout: config.idle_timeout,
            trust: config.trust.clone(),
            last_used: HashMap::new(),
            blocked_until: HashMap::new(),
            rate: super::rate::RateLimits::new(config.peer_request_rate),
            in_flight: rpc::InFlight::default(),
            closing: HashMap::new(),
            closing_announced: HashMap::new(),
            trimmed_at: None,
            max_connections: config.max_connections,
            metrics: config.metrics.clone(),
            cut: HashSet::new(),
        })
    }

    /// Runs until the shutdown token is cancelled.
    pub async fn run(mut self) {
        self.dial_bootstrap();
        let mut rejoin = tokio::time::interval(self.bootstrap_interval.min(REJOIN_CHECK));
        rejoin.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rejoin.tick().await;
        let mut trim = tokio::time::interval(self.trim_period());
        trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(Command::Pause { duration }) => {
                        tracing::warn!(?duration, "network task paused (test)");
                        tokio::time::sleep(duration).await;
                    }
                    Some(c) => self.on_command(c),
                    None => return,
                },
                _ = rejoin.tick() => self.rejoin_if_alone(),
                _ = trim.tick() => self.trim_connections(),
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    fn dial_bootstrap(&mut self) {
        for addr in self.bootstrap.clone() {
            if let Some(peer) = peer_of(&addr) {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, addr.clone());
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::warn!(%addr, error = %e, "cannot dial bootstrap peer");
            }
        }
    }

    /// A node left without any connection (its peers restarted, the network was cut) dials
    /// its bootstrap peers again and refreshes its routing table. A connected node's routing
    /// table is refreshed by Kademlia itself every bootstrap interval.
    fn rejoin_if_alone(&mut self) {
        if self.swarm.connected_peers().next().is_some() {
            return;
        }
        self.dial_bootstrap();
        // NoKnownPeers is expected on a lone node.
        let _ = self.swarm.behaviour_mut().kad.bootstrap();
    }

    fn on_command(&mut self, command: Command) {
        let lookup = matches!(
            command,
            Command::GetRecords { .. }
                | Command::StartProviding { .. }
                | Command::GetProviders { .. }
        );
        let alone = lookup && self.alone();
        let behaviour = self.swarm.behaviour_mut();
        match command {
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            // Handled by `run`, which owns the waiting.
            Command::Pause { .. } => {}
            Command::Close {
                peer,
                announce: true,
            } => self.close(peer),
            Command::Close { peer, .. } => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Cut { peers, cut } => {
                for peer in peers {
                    if cut {
                        self.cut.insert(peer);
                        behaviour.blocked.block_peer(peer);
                    } else {
                        self.cut.remove(&peer);
                        if !self.blocked_until.contains_key(&peer) {
                            behaviour.blocked.unblock_peer(peer);
                        }
                    }
                }
            }
            Command::Dial { addr } => {
                if let Some(peer) = peer_of(&addr) {
                    behaviour.kad.add_address(&peer, addr.clone());
                }
                if let Err(e) = self.swarm.dial(addr.clone()) {
                    tracing::warn!(%addr, error = %e, "dial failed");
                }
            }
            Command::PutRecord {
                key,
                value,
                expires,
                replicated,
                reply,
            } => {
                let mut record = kad::Record::new(key, value);
                record.expires = Some(expires);
                record.publisher = Some(*self.swarm.local_peer_id());
                // Stored locally at once (readable here); replication goes on in the background
                // unless the caller waits for it.
                let store = self.swarm.behaviour_mut().kad.store_mut();
                if let Err(e) = kad::store::RecordStore::put(store, record.clone()) {
                    let _ = reply.send(Err(format!("cannot store record: {e:?}")));
                    return;
                }
                let reply = if replicated {
                    Some(reply)
                } else {
                    let _ = reply.send(Ok(()));
                    None
                };
                self.replicate(record, reply);
            }
            // Alone, the store is the answer: see `alone`.
            Command::GetRecords { key, reply } if alone => {
                let _ = reply.send(self.local_records(&key));
            }
            Command::GetRecords { key, reply } => {
                let kad = &mut self.swarm.behaviour_mut().kad;
                let id = kad.get_record(kad::RecordKey::new(&key));
                self.pending_get_records.insert(id, (Vec::new(), reply));
            }
            Command::StartProviding { key, reply, .. } if alone => {
                let _ = reply.send(self.provide_locally(&key));
            }
            Command::StartProviding {
                key,
                replicated,
                reply,
            } => {
                match (self.swarm.behaviour_mut().kad).start_providing(kad::RecordKey::new(&key)) {
                    Ok(id) if replicated => {
                        self.pending_provides.insert(id, reply);
                    }
                    Ok(_) => {
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(format!("cannot provide: {e:?}")));
                    }
                }
            }
            Command::StopProviding { key } => {
                behaviour.kad.stop_providing(&kad::RecordKey::new(&key))
            }
            Command::GetProviders { key, reply } if alone => {
                let _ = reply.send(self.local_providers(&key));
            }
            Command::GetProviders { key, reply } => {
                let kad = &mut self.swarm.behaviour_mut().kad;
                let id = kad.get_providers(kad::RecordKey::new(&key));
                self.pending_get_providers
                    .insert(id, (HashSet::new(), 0, reply));
            }
            Command::Request {
                peer,
                addrs,
                request,
                reply,
            } => {
                self.make_room_for(&peer);
                self.last_used.insert(peer, Instant::now());
                self.in_flight.start(peer);
                let channel = Channel::of(&request);
                let behaviour = self.swarm.behaviour_mut();
                let rr = match channel {
                    Channel::Deploy => &mut behaviour.deploy,
                    Channel::Rpc => &mut behaviour.rpc,
                };
                let id = rr.send_request_with_addresses(&peer, request, addrs);
                self.pending_requests.insert((channel, id), reply);
            }
            Command::Respond { channel, response } => {
                // The channel carries its own connection, whichever protocol it came on; the
                // requester may have gone, and then there is nothing to do.
                let _ = behaviour.rpc.send_response(channel, response);
            }
            Command::Report { id, from, verdict } => {
                let acceptance = match verdict {
                    Verdict::Accept => gossipsub::MessageAcceptance::Accept,
                    Verdict::Ignore => gossipsub::MessageAcceptance::Ignore,
                    Verdict::Reject => gossipsub::MessageAcceptance::Reject,
                };
                behaviour
                    .gossipsub
                    .report_message_validation_result(&id, &from, acceptance);
                // The score is read only after a rejection: accepted messages, nearly all of
                // them, cost no score computation.
                let score = (verdict == Verdict::Reject)
                    .then(|| behaviour.gossipsub.peer_score(&from))
                    .flatten();
                if score.is_some_and(|s| s <= behaviour::DISCONNECT_SCORE) {
                    tracing::warn!(peer = %from, ?score, "peer sent gossip that does not verify: disconnected and blocked for {:?}", BLOCK_FOR);
                    behaviour.blocked.block_peer(from);
                    self.blocked_until.insert(from, Instant::now() + BLOCK_FOR);
                }
            }
            Command::Publish { data } => {
                // Publishing before anyone subscribed fails with InsufficientPeers: expected on
                // a lone node, the next heartbeat will go out.
                if let Err(e) = behaviour.gossipsub.publish(self.topic.clone(), data) {
                    tracing::trace!(error = %e, "gossip message not published");
                }
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::GossipMeshPeers { reply } => {
                let peers = self.swarm.behaviour().gossipsub.all_mesh_peers();
                let _ = reply.send(peers.copied().collect());
            }
            Command::StoredRecord { key, reply } => {
                let store = self.swarm.behaviour_mut().kad.store_mut();
                let record = kad::store::RecordStore::get(store, &kad::RecordKey::new(&key));
                let _ = reply.send(record.map(|r| r.value.clone()));
            }
            Command::StoredRecords { reply } => {
                let store = self.swarm.behaviour_mut().kad.store_mut();
                let records = kad::store::RecordStore::records(store)
                    .map(|r| (r.key.to_vec(), r.value.clone()))
                    .collect();
                let _ = reply.send(records);
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.on_kad(e),
            SwarmEvent::Behaviour(BehaviourEvent::Rpc(e)) => self.on_rpc(Channel::Rpc, e),
            SwarmEvent::Behaviour(BehaviourEvent::Deploy(e)) => self.on_rpc(Channel::Deploy, e),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let event = Event::Gossip {
                    from: propagation_source,
                    id: message_id,
                    data: message.data,
                };
                if self.events.try_send(event).is_err() {
                    self.metrics.gossip_dropped();
                    tracing::debug!("node service busy: gossip message dropped");
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                // Peers that dialled us are only routable once their listen addresses are known.
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    let _ = self.swarm.dial(addr);
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } if endpoint.is_dialer() => {
                self.last_used.insert(peer_id, Instant::now());
                self.trim_if_crowded();
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer_id, endpoint.get_remote_address().clone());
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                self.last_used.insert(peer_id, Instant::now());
                self.trim_if_crowded();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                let announced = self.closing_announced(&peer_id);
                if cause.is_some() {
                    self.metrics.peer_closed(announced);
                }
                if self.cut.contains(&peer_id) || (cause.is_some() && !announced) {
                    tracing::debug!(peer = %peer_id, ?cause, "last connection to a peer lost");
                    let _ = self.events.try_send(Event::PeerGone { peer: peer_id });
                } else if announced {
                    tracing::debug!(peer = %peer_id, "a peer closed its connection, as it announced");
                }
            }
            SwarmEvent::IncomingConnectionError {
                error: libp2p::swarm::ListenError::Denied { .. },
                ..
            } => self
                .metrics
                .refused(crate::metrics::Reason::ConnectionDenied),
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::debug!(%address, "listening");
            }
            _ => {}
        }
    }
}
