//! A private mesh (`--mesh-key`) and the peer bounds from rust-libp2p's own behaviours: nodes
//! with the same key connect; a node with another key, and a stranger with none, cannot even
//! complete a handshake; an allowlist keeps every other peer out; the connection limit holds.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::{dummy, SwarmEvent};
use libp2p::{Multiaddr, PeerId};
use mesh_node::testing::{raw_peer, raw_private_peer, wait_until, TestNode};

const WAIT: Duration = Duration::from_secs(20);

fn key_file(dir: &tempfile::TempDir, name: &str, hex_byte: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(
        &path,
        format!("/key/swarm/psk/1.0.0/\n/base16/\n{}\n", hex_byte.repeat(32)),
    )
    .unwrap();
    path
}

fn addr(node: &TestNode) -> Multiaddr {
    node.daemon().addresses[0].parse().unwrap()
}

fn peer_id(node: &TestNode) -> PeerId {
    node.daemon().node.id().to_string().parse().unwrap()
}

/// Dials `target` from a bare TCP/Noise/Yamux peer (no mesh key): whether the node refused
/// it, in the handshake or by closing the connection it had just accepted (limits and
/// allowlists decide once a connection is established). One it keeps stays open well past
/// [`WAIT`] (the stranger keeps idle connections a minute), so a kept one is told apart from
/// a refused one by the wait running out.
async fn stranger_is_refused(target: Multiaddr) -> bool {
    refused(
        raw_peer(Keypair::generate_ed25519(), dummy::Behaviour),
        target,
    )
    .await
}

async fn refused(mut swarm: libp2p::Swarm<dummy::Behaviour>, target: Multiaddr) -> bool {
    swarm.dial(target).unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::OutgoingConnectionError { .. }
                | SwarmEvent::ConnectionClosed { .. } => return,
                _ => {}
            }
        }
    })
    .await
    .is_ok()
}

/// A stranger whose connection the node accepted, kept open while the swarm is polled.
async fn stranger_connected(target: Multiaddr) -> tokio::task::JoinHandle<()> {
    accepted(
        raw_peer(Keypair::generate_ed25519(), dummy::Behaviour),
        target,
    )
    .await
}

async fn accepted(
    mut swarm: libp2p::Swarm<dummy::Behaviour>,
    target: Multiaddr,
) -> tokio::task::JoinHandle<()> {
    swarm.dial(target).unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            if let SwarmEvent::ConnectionEstablished { .. } = swarm.select_next_some().await {
                return;
            }
        }
    })
    .await
    .expect("the node accepts the connection");
    tokio::spawn(async move { while swarm.next().await.is_some() {} })
}

async fn connected(node: &TestNode) -> Vec<PeerId> {
    node.daemon().mesh.net().connected_peers().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_nodes_with_the_mesh_key_complete_a_handshake() {
    let keys = tempfile::tempdir().unwrap();
    let ours = key_file(&keys, "ours", "a1");
    let theirs = key_file(&keys, "theirs", "b2");
    let a = TestNode::start_with(|c| c.mesh_key = Some(ours.clone())).await;
    // QUIC is not used in a private mesh: every address is TCP.
    assert!(a
        .daemon()
        .addresses
        .iter()
        .all(|addr| addr.contains("/tcp/")));
    let seed = addr(&a);
    let b = TestNode::start_with(|c| {
        c.mesh_key = Some(ours.clone());
        c.bootstrap = vec![seed.clone()];
    })
    .await;
    let b_id = peer_id(&b);
    wait_until("the two nodes with one key to connect", WAIT, || async {
        connected(&a).await.contains(&b_id).then_some(())
    })
    .await;

    // A peer with another key, and one with none, fail in the handshake; the same raw peer
    // with the mesh's key gets in (so the refusals are the key's doing).
    let key_of = |path: &PathBuf| mesh_node::daemon::load_mesh_key(path).unwrap();
    let wrong = raw_private_peer(
        Keypair::generate_ed25519(),
        key_of(&theirs),
        dummy::Behaviour,
    );
    assert!(refused(wrong, seed.clone()).await);
    assert!(stranger_is_refused(seed.clone()).await);
    let right = raw_private_peer(Keypair::generate_ed25519(), key_of(&ours), dummy::Behaviour);
    let right_id = *right.local_peer_id();
    let held = accepted(right, seed.clone()).await;
    wait_until("the peer with the key to be connected", WAIT, || async {
        connected(&a).await.contains(&right_id).then_some(())
    })
    .await;
    assert!(connected(&a).await.contains(&b_id));
    held.abort();
    assert_eq!(a.daemon().node.health().unwrap().status, "ok");
    for node in [a, b] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowlist_keeps_every_other_peer_out() {
    let friend = TestNode::start().await;
    let friend_id = peer_id(&friend);
    let guarded = TestNode::start_with(|c| c.allowed_peers = Some(vec![friend_id])).await;
    let target = addr(&guarded);
    assert!(stranger_is_refused(target.clone()).await);
    friend.daemon().mesh.net().dial(target).await.unwrap();
    wait_until("the allowed peer to be connected", WAIT, || async {
        connected(&guarded).await.contains(&friend_id).then_some(())
    })
    .await;
    assert_eq!(connected(&guarded).await, vec![friend_id]);
    guarded.stop().await;
    friend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_refuses_connections_beyond_it() {
    let node = TestNode::start_with(|c| c.max_connections = 2).await;
    let target = addr(&node);
    let held = [
        stranger_connected(target.clone()).await,
        stranger_connected(target.clone()).await,
    ];
    wait_until("two connections held", WAIT, || async {
        (connected(&node).await.len() == 2).then_some(())
    })
    .await;
    assert!(
        stranger_is_refused(target).await,
        "a third connection is refused"
    );
    assert_eq!(connected(&node).await.len(), 2);
    assert_eq!(node.daemon().node.health().unwrap().status, "ok");
    for h in held {
        h.abort();
    }
    node.stop().await;
}
