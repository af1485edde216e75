//! Record renewals: a node's first put looks up the key's closest peers; later puts go
//! straight to them. A renewal must still replace the copy every holder has, or lookups would
//! keep finding the old record.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use libp2p::Multiaddr;
use mesh_node::net::{self, Client, NetConfig};
use mesh_node::testing::wait_until;
use mesh_provider::record::{NodeRecord, Record};
use mesh_provider::{keys, signed};
use tokio_util::sync::CancellationToken;

struct Peer {
    client: Client,
    keypair: Keypair,
    addr: Multiaddr,
}

/// A bare network node (no node service: its events are drained and dropped).
async fn peer(bootstrap: Vec<Multiaddr>, shutdown: &CancellationToken) -> Peer {
    let keypair = Keypair::generate_ed25519();
    let mut config = NetConfig::new(keypair.clone());
    config.bootstrap = bootstrap;
    let (client, mut events, event_loop) = net::new(config, shutdown.clone()).unwrap();
    tokio::spawn(event_loop.run());
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let addr = wait_until("a listen address", Duration::from_secs(10), || async {
        client.listen_addrs().await.into_iter().next()
    })
    .await
    .with(libp2p::multiaddr::Protocol::P2p(client.local_peer_id()));
    Peer {
        client,
        keypair,
        addr,
    }
}

fn node_record(keypair: &Keypair, issued_at: u64) -> Vec<u8> {
    let record = Record::Node(NodeRecord {
        peer_id: keypair.public().to_peer_id().to_string(),
        addresses: Vec::new(),
        engines: Vec::new(),
        resources: Default::default(),
        workloads: 0,
        software_version: "test".into(),
        trust: String::new(),
        cordoned: false,
        issued_at,
        expires_at: issued_at + 60_000,
    });
    signed::encode(keypair, &record).unwrap()
}

/// The `issued_at` of the copy `holder` stores.
async fn stored(holder: &Client, key: &[u8], signer: &Keypair) -> Option<u64> {
    let copy = holder.stored_record(key.to_vec()).await?;
    let peer = signer.public().to_peer_id();
    signed::verify(&copy, Some(&peer), mesh_runtime::now_millis())
        .ok()
        .map(|s| s.record.issued_at())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_replace_the_copy_on_every_holder() {
    let shutdown = CancellationToken::new();
    let seed = peer(Vec::new(), &shutdown).await;
    let mut peers = vec![];
    // More nodes than the replication factor (8): the writer's peers are a choice.
    for _ in 0..10 {
        peers.push(peer(vec![seed.addr.clone()], &shutdown).await);
    }
    let writer = &peers[0];
    let key = keys::node(&writer.keypair.public().to_peer_id());
    let first = mesh_runtime::now_millis();
    let expires = Instant::now() + Duration::from_secs(60);

    // The first put looks the closest peers up; renewals go to the peers found then. No
    // lookup for the record runs in between (a lookup caches the record it finds on peers
    // that lacked it): each holder's copy is replaced by the writer's puts alone.
    let others: Vec<&Peer> = std::iter::once(&seed).chain(&peers[1..]).collect();
    for round in 0..=3u64 {
        let issued = first + round;
        writer
            .client
            .put_record(
                key.clone(),
                node_record(&writer.keypair, issued),
                expires,
                true,
            )
            .await
            .unwrap();
        wait_until(
            &format!("put {round} to reach the key's 8 closest peers"),
            Duration::from_secs(10),
            || async {
                let mut holders = 0;
                for holder in &others {
                    if stored(&holder.client, &key, &writer.keypair).await == Some(issued) {
                        holders += 1;
                    }
                }
                (holders >= 8).then_some(())
            },
        )
        .await;
    }
    shutdown.cancel();
}

/// A peer that stopped stays in the writer's routing table for a while, nearer to the key than
/// some that answered the lookup: the put still goes out to those found, and answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_completes_when_a_routing_table_peer_is_gone() {
    let shutdown = CancellationToken::new();
    let seed = peer(Vec::new(), &shutdown).await;
    let gone_token = shutdown.child_token();
    let gone = peer(vec![seed.addr.clone()], &gone_token).await;
    // The writer dials both, so its routing table names the peer that will go.
    let writer = peer(vec![seed.addr.clone(), gone.addr.clone()], &shutdown).await;
    let key = keys::node(&writer.keypair.public().to_peer_id());
    let expires = Instant::now() + Duration::from_secs(60);
    let first = mesh_runtime::now_millis();

    // The writer knows the peer that will go: it stored the writer's first record.
    wait_until(
        "the first put to reach every peer",
        Duration::from_secs(20),
        || async {
            writer
                .client
                .put_record(
                    key.clone(),
                    node_record(&writer.keypair, first),
                    expires,
                    true,
                )
                .await
                .unwrap();
            let stored_now = stored(&gone.client, &key, &writer.keypair).await;
            (stored_now == Some(first)).then_some(())
        },
    )
    .await;
    gone_token.cancel();

    // A later record, put while the writer's routing table still names the stopped peer
    // (fewer peers than the replication factor: every known peer is among the nearest).
    let issued = first + 1;
    let put = writer.client.put_record(
        key.clone(),
        node_record(&writer.keypair, issued),
        expires,
        true,
    );
    tokio::time::timeout(Duration::from_secs(30), put)
        .await
        .expect("the put answers")
        .unwrap();
    wait_until(
        "the seed to hold the new record",
        Duration::from_secs(10),
        || async {
            (stored(&seed.client, &key, &writer.keypair).await == Some(issued)).then_some(())
        },
    )
    .await;
    shutdown.cancel();
}
