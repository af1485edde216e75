//! The composed libp2p behaviour and the swarm built from it.

use std::num::NonZeroUsize;
use std::time::Duration;

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, Transport as _};
use libp2p::core::upgrade;
use libp2p::identity::Keypair;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig};
use libp2p::multiaddr::Protocol;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    allow_block_list, connection_limits, gossipsub, identify, kad, mdns, memory_connection_limits,
    noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder,
};
use mesh_protocol::wire::{Request, Response};

use super::{
    NetConfig, MAX_DEPLOY_REQUEST_BYTES, MAX_GOSSIP_BYTES, MAX_KAD_PACKET_BYTES, MAX_REQUEST_BYTES,
    MAX_RESPONSE_BYTES,
};

/// Kademlia under the project's own protocol name: nodes of other DHTs never mix with ours.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/mesh/kad/1.0.0");
/// Quick requests (get, logs, delete, discover, nodes).
pub const RPC_PROTOCOL: StreamProtocol = StreamProtocol::new("/mesh/rpc/1");
/// Applies, which answer only once the workload settled.
pub const DEPLOY_PROTOCOL: StreamProtocol = StreamProtocol::new("/mesh/deploy/1");
/// Gossip topic of signed node heartbeats, provider records and withdrawals.
pub const GOSSIP_TOPIC: &str = "/mesh/1/announce";
/// identify's protocol version string.
pub const IDENTIFY_VERSION: &str = "/mesh/1";

/// Kademlia replication factor: copies of each record and provider entry.
pub const REPLICATION_FACTOR: usize = 8;
/// How long a node keeps a provider entry stored for another node. Provider entries only
/// point at a node; whether it is current is read from its signed records, so a stale entry
/// costs a lookup, never a wrong answer.
pub const PROVIDER_ENTRY_TTL: Duration = Duration::from_secs(15 * 60);
/// How often a node announces again the provider entries it keeps: well within
/// [`PROVIDER_ENTRY_TTL`], and often enough for nodes that joined closer to a key to learn
/// its providers.
pub const REPROVIDE_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Records a node stores for others.
pub const MAX_STORED_RECORDS: usize = 65_536;

pub type Rpc = request_response::cbor::Behaviour<Request, Response>;

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// First, so that a connection over a limit is refused before any other behaviour sees it.
    pub limits: connection_limits::Behaviour,
    pub memory: memory_connection_limits::Behaviour,
    pub allowed: Toggle<allow_block_list::Behaviour<allow_block_list::AllowedPeers>>,
    /// Peers kept out for a while (senders of gossip that does not verify).
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub kad: kad::Behaviour<MemoryStore>,
    pub gossipsub: gossipsub::Behaviour,
    pub rpc: Rpc,
    pub deploy: Rpc,
    pub identify: identify::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

fn rpc(protocol: StreamProtocol, timeout: Duration, max_request: u64) -> Rpc {
    let codec = request_response::cbor::codec::Codec::default()
        .set_request_size_maximum(max_request)
        .set_response_size_maximum(MAX_RESPONSE_BYTES);
    request_response::Behaviour::with_codec(
        codec,
        [(protocol, ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(timeout)
            .with_max_concurrent_streams(super::MAX_INBOUND_STREAMS),
    )
}

/// The gossip settings every node uses (and a test peer that speaks to nodes must use).
///
/// Every message on the topic is a record in a signed envelope, checked by each receiver
/// (heartbeats, provider records, workload records). Gossipsub's own per-message signature
/// (`MessageAuthenticity::Signed`, `ValidationMode::Strict`) would prove the same author a
/// second time, and gossipsub verifies it on every copy it receives, before it drops
/// duplicates: at 50 nodes a profile of the mesh bench showed ed25519 verification as the
/// largest cost of every heartbeat round. So messages are anonymous (no source, sequence
/// number or signature: gossipsub refuses any that carry one), and identified by the SHA-256
/// of their bytes, so that copies are dropped by content.
pub fn gossip_config() -> gossipsub::ConfigBuilder {
    let mut config = gossipsub::ConfigBuilder::default();
    config
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .message_id_fn(|m: &gossipsub::Message| {
            use sha2::{Digest as _, Sha256};
            gossipsub::MessageId::from(Sha256::digest(&m.data).to_vec())
        })
        .max_transmit_size(MAX_GOSSIP_BYTES)
        .duplicate_cache_time(DUPLICATE_CACHE_TIME);
    config
}

/// How long gossipsub remembers a message id to drop copies. Ids are content hashes, so a
/// holder's republish of an unchanged workload record *is* a copy: with gossipsub's default
/// (60 s) a republish within a minute of the last one never left the node, and nodes that
/// missed the record (joined since, or on the other side of a healed partition) waited up to
/// a minute instead of a renewal round. 10 s is far above the time a message takes to cross
/// the mesh and the window in which gossip (IHAVE/IWANT) offers it again (3 heartbeats).
pub const DUPLICATE_CACHE_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Below this gossip score a peer is disconnected and blocked for `net::BLOCK_FOR`: one
/// message that does not verify puts a peer there. Honest peers forward only what they
/// validated, so an invalid message comes from its sender, not from a relay.
pub const DISCONNECT_SCORE: f64 = -100.0;

/// Gossipsub's peer scoring: invalid messages on the topic weigh heavily (P4, −100 each,
/// squared for several); the IP colocation penalty is off, as every node of a testnet shares
/// 127.0.0.1. Other weights are gossipsub's defaults.
fn peer_score_params() -> gossipsub::PeerScoreParams {
    let mut topic = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        ..Default::default()
    };
    topic.invalid_message_deliveries_weight = -100.0;
    topic.invalid_message_deliveries_decay = 0.9;
    // Not counted: delivery rates vary with the workload, not with honesty.
    topic.first_message_deliveries_weight = 0.0;
    topic.mesh_message_deliveries_weight = 0.0;
    topic.mesh_failure_penalty_weight = 0.0;
    let mut params = gossipsub::PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    };
    params
        .topics
        .insert(gossipsub::IdentTopic::new(GOSSIP_TOPIC).hash(), topic);
    params
}

fn peer_score_thresholds() -> gossipsub::PeerScoreThresholds {
    gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        ..Default::default()
    }
}

fn behaviour(key: &Keypair, config: &NetConfig) -> Result<Behaviour, String> {
    let peer = key.public().to_peer_id();
    let store = MemoryStore::with_config(
        peer,
        MemoryStoreConfig {
            max_records: MAX_STORED_RECORDS,
            max_value_bytes: mesh_provider::MAX_RECORD_BYTES
                .max(mesh_provider::workload::MAX_WORKLOAD_RECORD_BYTES),
            max_providers_per_key: 256,
            max_provided_keys: MAX_STORED_RECORDS,
        },
    );
    let mut kad_config = kad::Config::new(KAD_PROTOCOL);
    kad_config
        .set_query_timeout(config.query_timeout)
        .set_max_packet_size(MAX_KAD_PACKET_BYTES)
        .set_replication_factor(NonZeroUsize::new(REPLICATION_FACTOR).expect("non-zero"))
        // Only signed records newer than the stored copy are kept (see the event loop).
        .set_record_filtering(kad::StoreInserts::FilterBoth)
        // Records carry their own signed expiry and are renewed by their signer.
        .set_publication_interval(None)
        .set_provider_publication_interval(None)
        .set_provider_record_ttl(Some(PROVIDER_ENTRY_TTL))
        .set_periodic_bootstrap_interval(Some(config.bootstrap_interval));
    let mut kad = kad::Behaviour::with_config(peer, store, kad_config);
    // Loopback testnets never see a confirmed external address: serve from the start.
    kad.set_mode(Some(kad::Mode::Server));

    let mut gossipsub = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Anonymous,
        gossip_config()
            // Nothing is forwarded before the node checked it (see `net::Verdict`).
            .validate_messages()
            .build()
            .map_err(|e| format!("gossipsub config: {e}"))?,
    )?;
    gossipsub.with_peer_score(peer_score_params(), peer_score_thresholds())?;

    let identify = identify::Behaviour::new(
        identify::Config::new(IDENTIFY_VERSION.to_string(), key.public())
            .with_agent_version(format!("meshd/{}", env!("CARGO_PKG_VERSION"))),
    );
    let mdns = if config.mdns {
        Some(
            mdns::tokio::Behaviour::new(mdns::Config::default(), peer)
                .map_err(|e| format!("mdns: {e}"))?,
        )
    } else {
        None
    };
    let limits = connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(config.max_connections_per_peer))
            .with_max_pending_incoming(Some(MAX_PENDING_INCOMING)),
    );
    let memory =
        memory_connection_limits::Behaviour::with_max_percentage(config.max_memory_fraction);
    let allowed = config.allowed_peers.as_ref().map(|peers| {
        let mut list = allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
        for peer in peers {
            list.allow_peer(*peer);
        }
        list
    });
    Ok(Behaviour {
        limits,
        memory,
        allowed: Toggle::from(allowed),
        blocked: Default::default(),
        kad,
        gossipsub,
        rpc: rpc(RPC_PROTOCOL, config.rpc_timeout, MAX_REQUEST_BYTES),
        deploy: rpc(
            DEPLOY_PROTOCOL,
            config.deploy_timeout,
            MAX_DEPLOY_REQUEST_BYTES,
        ),
        identify,
        mdns: Toggle::from(mdns),
    })
}

/// Incoming connections in their handshake at once, at most.
pub const MAX_PENDING_INCOMING: u32 = 64;

/// Whether `addr` is a QUIC address (not usable in a private mesh).
pub fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter()
        .any(|p| matches!(p, Protocol::QuicV1 | Protocol::Quic))
}

/// TCP, then the pre-shared key's handshake (`libp2p-pnet`: the stream is encrypted with the
/// key before anything else is said, so a peer without it fails there), then Noise and Yamux.
pub fn private_tcp(
    key: &Keypair,
    psk: PreSharedKey,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    let noise = noise::Config::new(key)?;
    Ok(
        tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
            .upgrade(upgrade::Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
    )
}

/// Builds the swarm: TCP (Noise, Yamux) and QUIC, or in a private mesh (`mesh_key`) TCP
/// through [`private_tcp`] alone; the behaviour; and the configured idle
/// timeout (30 s by default instead of libp2p's 10 s: a peer asked once is often asked again
/// soon). Gossipsub's streams keep connections open regardless; the event loop's connection
/// manager bounds their number.
pub fn build(config: &NetConfig) -> Result<Swarm<Behaviour>, String> {
    let make = |key: &Keypair| {
        behaviour(key, config).map_err(Box::<dyn std::error::Error + Send + Sync>::from)
    };
    let idle = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(config.idle_timeout);
    let builder = SwarmBuilder::with_existing_identity(config.keypair.clone()).with_tokio();
    let swarm = match config.mesh_key {
        None => builder
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| format!("tcp transport: {e}"))?
            .with_quic()
            .with_behaviour(make)
            .map_err(|e| format!("behaviour: {e}"))?
            .with_swarm_config(idle)
            .build(),
        Some(psk) => builder
            .with_other_transport(|key| private_tcp(key, psk))
            .map_err(|e| format!("private tcp transport: {e}"))?
            .with_behaviour(make)
            .map_err(|e| format!("behaviour: {e}"))?
            .with_swarm_config(idle)
            .build(),
    };
    Ok(swarm)
}
