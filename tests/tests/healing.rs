//! Self-healing without a leader (in-process nodes on loopback, mock engines): a dead
//! provider's slot is placed again by one node; a partition's two sides each restore what
//! they can and, healed, come back to exactly n with no slot filled twice; a node that is
//! slow (its network task paused), not dead, keeps its replicas.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod healing_support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use healing_support::{a_holder, deployed, events, mesh, peer_of, settled, slots};
use libp2p::PeerId;
use mesh_node::testing::{wait_until, TestNet};
use mesh_protocol::Step;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_providers_slot_is_placed_again_once() {
    // Provider records outlive the test's wait (15 s): the slot empties because its holder
    // is found dead, not because its announcement expired.
    let mut net = mesh(5, Duration::from_secs(15)).await;
    let (id, before) = deployed(&net, "web", 3).await;
    let everyone: HashSet<PeerId> = (0..5).map(|i| peer_of(&net, i)).collect();

    // The victim: a holder other than node 0, which stays to watch. Stopped without leaving
    // (no withdrawal): its connections drop as a killed process's do.
    let victim = a_holder(&net, 1..5, &before);
    let dead = peer_of(&net, victim);
    let slot = *before.iter().find(|(_, p)| **p == dead).unwrap().0;
    let killed = Instant::now();
    net.nodes.remove(victim).stop().await;
    let alive: HashSet<PeerId> = everyone.iter().copied().filter(|p| *p != dead).collect();
    let after = settled(
        &net,
        &[0, 1, 2, 3],
        &id,
        3,
        &alive,
        "3 running again without the dead node",
        Duration::from_secs(30),
    )
    .await;
    let took = killed.elapsed();
    eprintln!("replaced in {took:?}");
    for (s, p) in &before {
        if *p != dead {
            assert_eq!(after[s], *p, "slot {s} moved although its holder lives");
        }
    }
    // Confirmed dead by the nodes, and one node placed the slot, with its reason.
    let liveness = events(&net, Step::Liveness);
    assert!(
        took < Duration::from_secs(12),
        "replaced only as its record expired: {took:?}"
    );
    assert!(
        liveness
            .iter()
            .any(|m| m.contains(&dead.to_string()) && m.contains("dead")),
        "{liveness:?}"
    );
    // The placing node records it once the target answered, which may be after the new
    // provider record reached the others.
    let placed_msg = format!("slot {slot} placed");
    let heals = wait_until("the placement's event", Duration::from_secs(10), || async {
        let heals = events(&net, Step::Heal);
        heals
            .iter()
            .any(|m| m.contains(&placed_msg))
            .then_some(heals)
    })
    .await;
    let placed: Vec<&String> = heals.iter().filter(|m| m.contains(&placed_msg)).collect();
    assert_eq!(placed.len(), 1, "one node places the slot: {heals:?}");
    assert!(placed[0].contains("is dead"), "{placed:?}");
    // The replacement's start is in its node's lifecycle events.
    let target = after[&slot];
    let node = net
        .nodes
        .iter()
        .find(|n| n.daemon().node.id() == target.to_string())
        .unwrap();
    let started = node.daemon().node.store().events(&id, 100).unwrap();
    assert!(
        started.iter().any(|e| e.step == Step::Activate),
        "{started:?}"
    );
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_partition_each_side_restores_and_the_healed_mesh_keeps_exactly_n() {
    let net = mesh(5, Duration::from_secs(3)).await;
    let (id, _) = deployed(&net, "split", 3).await;
    let everyone: HashSet<PeerId> = (0..5).map(|i| peer_of(&net, i)).collect();

    let left: HashSet<PeerId> = (0..3).map(|i| peer_of(&net, i)).collect();
    let right: HashSet<PeerId> = (3..5).map(|i| peer_of(&net, i)).collect();
    net.partition(&[&[0, 1, 2], &[3, 4]]).await;
    // Availability first: the side of three restores all three slots; the side of two fills
    // two, one replica per node, and the third waits for a node.
    settled(
        &net,
        &[0, 1, 2],
        &id,
        3,
        &left,
        "the left side to restore 3",
        Duration::from_secs(30),
    )
    .await;
    wait_until(
        "the right side to fill 2 slots",
        Duration::from_secs(30),
        || async {
            let views = slots(&net, &[3, 4], &id).await;
            views
                .iter()
                .all(|v| v.len() == 2 && v.values().all(|p| p.len() == 1 && right.contains(&p[0])))
                .then_some(())
        },
    )
    .await;

    net.heal().await;
    // Within two renewal rounds (1 s each here) of the sides meeting again: one to hear the
    // other side's holders, one for the lower-ranked to give up and withdraw; plus slack for
    // a loaded machine.
    let healed = Instant::now();
    settled(
        &net,
        &[0, 1, 2, 3, 4],
        &id,
        3,
        &everyone,
        "exactly 3 after the heal",
        Duration::from_secs(3),
    )
    .await;
    eprintln!("exactly 3 again {:?} after the heal", healed.elapsed());
    let retired = events(&net, Step::Heal);
    assert!(
        retired.iter().any(|m| m.contains("which ranks higher")),
        "{retired:?}"
    );
    // And it stays so: a few more rounds change nothing.
    let now = slots(&net, &[0], &id).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(slots(&net, &[0], &id).await, now);
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_node_is_suspected_but_not_declared_dead_and_keeps_its_replicas() {
    let net = mesh(4, Duration::from_secs(3)).await;
    let (id, before) = deployed(&net, "slow", 3).await;
    let everyone: HashSet<PeerId> = (0..4).map(|i| peer_of(&net, i)).collect();
    let slow = a_holder(&net, 1..4, &before);
    let slow_peer = peer_of(&net, slow);
    // Paused for 4 s: longer than the silence that makes it suspect (2 heartbeats + 2 s = 3 s),
    // shorter than that plus the suspicion timeout (3 heartbeats + 2 s).
    net.node(slow)
        .daemon()
        .mesh
        .net()
        .pause(Duration::from_secs(4))
        .await;
    wait_until(
        "the slow node to be suspected",
        Duration::from_secs(10),
        || async {
            let liveness = events(&net, Step::Liveness);
            liveness
                .iter()
                .any(|m| m.contains(&format!("peer {slow_peer} suspect")))
                .then_some(())
        },
    )
    .await;
    wait_until(
        "the slow node to be heard again",
        Duration::from_secs(15),
        || async {
            let liveness = events(&net, Step::Liveness);
            liveness
                .iter()
                .any(|m| m.contains(&format!("peer {slow_peer} alive")))
                .then_some(())
        },
    )
    .await;
    let after = settled(
        &net,
        &[0, 1, 2, 3],
        &id,
        3,
        &everyone,
        "3 running",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(before, after, "a replica moved off a slow node");
    let liveness = events(&net, Step::Liveness);
    assert!(
        !liveness
            .iter()
            .any(|m| m.contains(&format!("peer {slow_peer} dead"))),
        "{liveness:?}"
    );
    let heals = events(&net, Step::Heal);
    assert!(heals.is_empty(), "{heals:?}");
    net.stop().await;
}

/// A node not connected to a peer that dies learns it from the nodes that were: the first
/// to find it dead gossips a suspicion, and the others probe it at once instead of waiting
/// for its heartbeats to stop (two periods plus 2 s: 12 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_not_connected_to_a_dead_peer_learns_of_it_from_those_that_were() {
    let mut net = TestNet::start(4, |_, c| {
        c.mesh.heartbeat_interval = Duration::from_secs(5);
    })
    .await;
    net.wait_connected(Duration::from_secs(30)).await;
    // Node 2 (no node's bootstrap peer) closes its connection to node 3, as its connection
    // manager would: announced, so neither side suspects the other.
    let (watcher, victim) = (2, 3);
    let dead = peer_of(&net, victim);
    net.node(watcher)
        .daemon()
        .mesh
        .net()
        .close(dead, true)
        .await;
    wait_until(
        "the close to reach node 3",
        Duration::from_secs(5),
        || async {
            let metrics = net.node(victim).daemon().node.metrics().clone();
            (metrics.peer_closes(true) >= 1).then_some(())
        },
    )
    .await;
    let watcher_store = net.node(watcher).daemon().node.store().clone();
    let liveness = move || -> Vec<String> {
        watcher_store
            .all_events(10_000)
            .unwrap()
            .into_iter()
            .filter(|e| e.step == Step::Liveness)
            .map(|e| e.message)
            .collect()
    };
    let killed = Instant::now();
    net.nodes.remove(victim).stop().await;
    let seen = wait_until(
        "the watcher to find the dead node dead",
        Duration::from_secs(8),
        || async {
            let events = liveness();
            events
                .iter()
                .any(|m| m.contains(&format!("peer {dead} dead")))
                .then_some(events)
        },
    )
    .await;
    eprintln!("found dead in {:?}", killed.elapsed());
    assert!(
        seen.iter()
            .any(|m| m.contains(&format!("peer {dead} suspect")) && m.contains("found it dead")),
        "the watcher suspected it for another reason than a peer's word: {seen:?}"
    );
    net.stop().await;
}
