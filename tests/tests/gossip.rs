//! A raw libp2p peer on the node's gossip topic (anonymous, content-addressed gossip, as the
//! nodes speak it): provider records it did not sign and garbage are refused; a record signed
//! by its author counts whoever relays it, but a replayed older copy never undoes a newer
//! withdrawal.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, Multiaddr};
use mesh_node::testing::{raw_peer, wait_until, TestNode};
use mesh_protocol::{Phase, WorkloadId};
use mesh_provider::record::{ProviderRecord, Record};
use mesh_provider::signed;

fn record(signer: &Keypair, claimed: &Keypair, workload: &str) -> Vec<u8> {
    signed_record(signer, claimed, workload, mesh_runtime::now_millis(), false)
}

fn signed_record(
    signer: &Keypair,
    claimed: &Keypair,
    workload: &str,
    now: u64,
    withdrawn: bool,
) -> Vec<u8> {
    let r = Record::Provider(ProviderRecord {
        workload: workload.to_string(),
        version: "sha256:00".into(),
        peer_id: claimed.public().to_peer_id().to_string(),
        engine: "mock".into(),
        capabilities: Vec::new(),
        resources: Default::default(),
        phase: Phase::Running,
        addresses: Vec::new(),
        issued_at: now,
        expires_at: now + 60_000,
        withdrawn,
        slot: None,
        revision: None,
    });
    let bytes = signed::encode(signer, &r).unwrap();
    if signer.public() == claimed.public() {
        return bytes;
    }
    // A forgery: the claimed peer's envelope with one byte of its signature changed, as an
    // attacker without the claimed peer's key would have to send.
    let mut forged = signed::encode(claimed, &r).unwrap();
    let key_len = u16::from_be_bytes([forged[4], forged[5]]) as usize;
    forged[4 + 2 + key_len + 2] ^= 1;
    forged
}

/// A raw peer on the node's gossip topic, speaking gossip as nodes do (anonymous,
/// content-addressed), once the node is known to be subscribed (publishing earlier fails).
async fn gossip_peer(key: &Keypair, addr: Multiaddr) -> libp2p::Swarm<gossipsub::Behaviour> {
    let config = mesh_node::net::gossip_config()
        .heartbeat_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let behaviour =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config).unwrap();
    let mut swarm = raw_peer(key.clone(), behaviour);
    swarm.behaviour_mut().subscribe(&topic()).unwrap();
    swarm.dial(addr).unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. }) =
                swarm.select_next_some().await
            {
                return;
            }
        }
    })
    .await
    .expect("the node subscribes to the gossip topic");
    swarm
}

fn topic() -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(mesh_node::net::GOSSIP_TOPIC)
}

fn publish(swarm: &mut libp2p::Swarm<gossipsub::Behaviour>, data: Vec<u8>) {
    swarm.behaviour_mut().publish(topic(), data).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_records_change_nothing_and_relayed_ones_count_as_their_signers() {
    let node = TestNode::start().await;
    let mesh = node.daemon().mesh.clone();
    let addr: Multiaddr = node.daemon().addresses[0].parse().unwrap();
    let relay = Keypair::generate_ed25519();
    let victim = Keypair::generate_ed25519();
    let mut swarm = gossip_peer(&relay, addr).await;

    // The victim's withdrawal, then (replayed) its older announcement, both genuine and
    // relayed: the newer withdrawal wins, nothing is discoverable.
    let now = mesh_runtime::now_millis();
    publish(
        &mut swarm,
        signed_record(&victim, &victim, "default/replayed", now, true),
    );
    publish(
        &mut swarm,
        signed_record(&victim, &victim, "default/replayed", now - 1_000, false),
    );
    // A genuine, current record of the victim, relayed: the victim's own words, counted as
    // the victim's (as a DHT copy would be).
    publish(&mut swarm, record(&victim, &victim, "default/relayed"));
    // The relay's own, validly signed record.
    publish(&mut swarm, record(&relay, &relay, "default/own"));

    let pump = tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    let own = wait_until(
        "the signed record to arrive",
        Duration::from_secs(20),
        || {
            let mesh = mesh.clone();
            async move {
                let found = mesh
                    .discover(&WorkloadId::new("default", "own"), None)
                    .await;
                (!found.is_empty()).then_some(found)
            }
        },
    )
    .await;
    assert_eq!(own[0].peer_id, relay.public().to_peer_id().to_string());
    // Messages from one publisher arrive in order: the others were handled before.
    let relayed = mesh
        .discover(&WorkloadId::new("default", "relayed"), None)
        .await;
    assert_eq!(relayed.len(), 1, "{relayed:?}");
    assert_eq!(relayed[0].peer_id, victim.public().to_peer_id().to_string());
    let replayed = mesh
        .discover(&WorkloadId::new("default", "replayed"), None)
        .await;
    assert!(replayed.is_empty(), "{replayed:?}");
    // An honest relay keeps its connection.
    let relay_id = relay.public().to_peer_id();
    assert!(mesh.net().connected_peers().await.contains(&relay_id));
    assert_eq!(node.daemon().node.health().unwrap().status, "ok");
    pump.abort();
    node.stop().await;
}

/// A peer that sends a forged record, or garbage, on gossip: the message goes nowhere (it is
/// neither kept nor forwarded), the peer's gossip score falls, and the node disconnects it
/// and keeps it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_sends_forged_or_malformed_gossip_is_scored_down_and_disconnected() {
    let node = TestNode::start().await;
    let mesh = node.daemon().mesh.clone();
    let addr: Multiaddr = node.daemon().addresses[0].parse().unwrap();
    let victim = Keypair::generate_ed25519();
    let forged = |attacker: &Keypair| record(attacker, &victim, "default/forged");
    let garbage = |_: &Keypair| b"MSR1 not a record".to_vec();
    for (what, message) in [
        ("a forged record", &forged as &dyn Fn(&Keypair) -> Vec<u8>),
        ("garbage", &garbage),
    ] {
        let attacker = Keypair::generate_ed25519();
        let attacker_id = attacker.public().to_peer_id();
        let mut swarm = gossip_peer(&attacker, addr.clone()).await;
        publish(&mut swarm, message(&attacker));
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let SwarmEvent::ConnectionClosed { .. } = swarm.select_next_some().await {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the node disconnects a peer that sent {what}"));
        // The attacker may see its side close before the node's swarm has counted the
        // connection closed on its own side.
        wait_until("the node to drop the attacker", Duration::from_secs(10), || {
            let mesh = mesh.clone();
            async move {
                (!mesh.net().connected_peers().await.contains(&attacker_id)).then_some(())
            }
        })
        .await;
        // Kept out: a new connection is closed at once.
        swarm.dial(addr.clone()).unwrap();
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionClosed { .. }
                    | SwarmEvent::OutgoingConnectionError { .. } => return,
                    _ => {}
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("a peer that sent {what} stays out"));
    }
    let found = mesh
        .discover(&WorkloadId::new("default", "forged"), None)
        .await;
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(node.daemon().node.health().unwrap().status, "ok");
    node.stop().await;
}
