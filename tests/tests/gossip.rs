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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_garbage_provider_records_on_gossip_change_nothing() {
    let node = TestNode::start().await;
    let mesh = node.daemon().mesh.clone();
    let addr: Multiaddr = node.daemon().addresses[0].parse().unwrap();

    let attacker = Keypair::generate_ed25519();
    let victim = Keypair::generate_ed25519();
    let config = mesh_node::net::gossip_config()
        .heartbeat_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let behaviour =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config).unwrap();
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
    // 2. The victim's withdrawal, then (replayed) its older announcement, both genuine and
    //    relayed by the attacker: the newer withdrawal wins, nothing is discoverable.
    let now = mesh_runtime::now_millis();
    publish(
        &mut swarm,
        signed_record(&victim, &victim, "default/replayed", now, true),
    );
    publish(
        &mut swarm,
        signed_record(&victim, &victim, "default/replayed", now - 1_000, false),
    );
    // 2b. A genuine, current record of the victim relayed by the attacker: the victim's own
    //     words, counted as the victim's (as a DHT copy would be).
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
    let relayed = mesh
        .discover(&WorkloadId::new("default", "relayed"), None)
        .await;
    assert_eq!(relayed.len(), 1, "{relayed:?}");
    assert_eq!(relayed[0].peer_id, victim.public().to_peer_id().to_string());
    for name in ["forged", "replayed"] {
        let found = mesh.discover(&WorkloadId::new("default", name), None).await;
        assert!(found.is_empty(), "{name}: {found:?}");
    }
    assert_eq!(node.daemon().node.health().unwrap().status, "ok");
    pump.abort();
    node.stop().await;
}
