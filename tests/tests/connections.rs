//! The connection manager: gossipsub keeps a stream open to every peer it meets, so without
//! the manager no connection would ever idle out. A peer the node neither uses nor has in its
//! gossip mesh is disconnected after the idle timeout; a gossip mesh peer, connected at the
//! same time, stays. A close by the connection manager is announced, so the peer does not
//! take it for a lost peer (which it would suspect and probe, dialling the closer again).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, Multiaddr, PeerId, Swarm};
use mesh_node::testing::{raw_peer, wait_until, TestNet, TestNode};
use mesh_protocol::Step;

const IDLE: Duration = Duration::from_secs(3);

/// A raw gossipsub peer, subscribed to the node's topic or not.
fn gossip_peer(subscribe: bool) -> Swarm<gossipsub::Behaviour> {
    let key = Keypair::generate_ed25519();
    let config = mesh_node::net::gossip_config()
        .heartbeat_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let mut behaviour =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config).unwrap();
    if subscribe {
        let topic = gossipsub::IdentTopic::new(mesh_node::net::GOSSIP_TOPIC);
        behaviour.subscribe(&topic).unwrap();
    }
    raw_peer(key, behaviour)
}

#[derive(Debug, PartialEq)]
enum Seen {
    Connected,
    Closed,
    Subscribed,
}

/// The next connection or mesh event of a raw peer, if any within `timeout`.
async fn next(swarm: &mut Swarm<gossipsub::Behaviour>, timeout: Duration) -> Option<Seen> {
    tokio::time::timeout(timeout, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => return Seen::Connected,
                SwarmEvent::ConnectionClosed { .. } => return Seen::Closed,
                SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. }) => {
                    return Seen::Subscribed
                }
                _ => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_connections_close_after_the_idle_timeout_and_gossip_mesh_peers_stay() {
    let node = TestNode::start_with(|c| c.idle_timeout = IDLE).await;
    let addr: Multiaddr = node.daemon().addresses[0].parse().unwrap();
    let node_id: PeerId = node.daemon().node.id().to_string().parse().unwrap();

    let mut idle = gossip_peer(false);
    let mut member = gossip_peer(true);
    member.dial(addr.clone()).unwrap();
    idle.dial(addr).unwrap();
    assert_eq!(
        next(&mut idle, Duration::from_secs(10)).await,
        Some(Seen::Connected)
    );

    // The member joins the node's gossip mesh: it hears the node's subscription, and the
    // node grafts it at its next gossipsub heartbeat.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let in_mesh = member
            .behaviour()
            .mesh_peers(&gossipsub::IdentTopic::new(mesh_node::net::GOSSIP_TOPIC).hash())
            .any(|p| *p == node_id);
        if in_mesh {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node never grafted the subscribed peer"
        );
        let _ = next(&mut member, Duration::from_millis(200)).await;
    }

    // The idle peer is disconnected by the node, within a few idle timeouts.
    let closed = loop {
        match next(&mut idle, IDLE * 4).await {
            Some(Seen::Closed) => break true,
            Some(_) => continue,
            None => break false,
        }
    };
    assert!(
        closed,
        "the node kept an unused, non-mesh connection open for {:?}",
        IDLE * 4
    );

    // Meanwhile the mesh peer, connected as long, is still connected.
    while let Some(seen) = next(&mut member, Duration::from_millis(50)).await {
        assert_ne!(seen, Seen::Closed, "the node closed a gossip mesh peer");
    }
    assert!(member.is_connected(&node_id));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_close_is_not_taken_for_a_lost_peer_and_a_silent_one_is() {
    let net = TestNet::start(3, |_, _| {}).await;
    net.wait_connected(Duration::from_secs(30)).await;
    let peer = |i: usize| -> PeerId { net.node(i).daemon().node.id().parse().unwrap() };
    let closer = peer(0);
    let suspected_by = |i: usize| {
        net.node(i)
            .events(Step::Liveness)
            .iter()
            .any(|m| m.contains(&format!("peer {closer} suspect")))
    };
    let metrics = |i: usize| net.node(i).daemon().node.metrics().clone();

    // Node 0 closes its connections to node 1 as its connection manager does (announced),
    // and to node 2 as a node that dies does (no notice).
    let net0 = net.node(0).daemon().mesh.net();
    net0.close(peer(1), true).await;
    net0.close(peer(2), false).await;

    wait_until(
        "node 1 to see the announced close",
        Duration::from_secs(10),
        || async { (metrics(1).peer_closes(true) >= 1).then_some(()) },
    )
    .await;
    // The contrast: the close without notice makes node 2 suspect node 0 and probe it, and
    // the probe finds it alive.
    wait_until(
        "node 2 to suspect node 0",
        Duration::from_secs(10),
        || async { suspected_by(2).then_some(()) },
    )
    .await;
    assert_eq!(
        metrics(2).peer_closes(false),
        1,
        "node 2 counts a close without notice"
    );
    assert!(
        !suspected_by(1),
        "node 1 suspected node 0 after a close node 0 announced"
    );
    assert_eq!(metrics(1).peer_closes(false), 0);
    net.stop().await;
}
