//! A raw libp2p peer on the node's gossip topic: provider records it did not sign, records
//! relayed on someone else's behalf and garbage are refused; only a record signed by the
//! peer that publishes it reaches discovery.

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
    let now = mesh_runtime::now_millis();
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
        withdrawn: false,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_relayed_and_garbage_provider_records_on_gossip_are_refused() {
    let node = TestNode::start().await;
    let mesh = node.daemon().mesh.clone();
    let addr: Multiaddr = node.daemon().addresses[0].parse().unwrap();

    let attacker = Keypair::generate_ed25519();
    let victim = Keypair::generate_ed25519();
    let config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let behaviour = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(attacker.clone()),
        config,
    )
    .unwrap();
    let mut swarm = raw_peer(attacker.clone(), behaviour);
    let topic = gossipsub::IdentTopic::new(mesh_node::net::GOSSIP_TOPIC);
    swarm.behaviour_mut().subscribe(&topic).unwrap();
    swarm.dial(addr).unwrap();

    // Publish once the node is known to be subscribed (publishing earlier fails).
    let publish = |swarm: &mut libp2p::Swarm<gossipsub::Behaviour>, data: Vec<u8>| {
        swarm.behaviour_mut().publish(topic.clone(), data).unwrap();
    };
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

    // 1. A record claiming to come from another peer, with a broken signature.
    publish(&mut swarm, record(&attacker, &victim, "default/forged"));
    // 2. A genuine record of the victim, relayed (published) by the attacker.
    publish(&mut swarm, record(&victim, &victim, "default/relayed"));
    // 3. Garbage.
    publish(&mut swarm, b"MSR1 not a record".to_vec());
    // 4. The attacker's own, validly signed record: the one thing the node may accept.
    publish(&mut swarm, record(&attacker, &attacker, "default/own"));

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
    assert_eq!(own[0].peer_id, attacker.public().to_peer_id().to_string());
    // Messages from one publisher arrive in order: 1–3 were handled before 4.
    for name in ["forged", "relayed"] {
        let found = mesh.discover(&WorkloadId::new("default", name), None).await;
        assert!(found.is_empty(), "{name}: {found:?}");
    }
    assert_eq!(node.daemon().node.health().unwrap().status, "ok");
    pump.abort();
    node.stop().await;
}
