//! Self-healing without a leader (in-process nodes on loopback, mock engines): a dead
//! provider's slot is placed again by one node; a partition's two sides each restore what
//! they can and, healed, come back to exactly n with no slot filled twice; a node that is
//! slow (its network task paused), not dead, keeps its replicas.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use libp2p::PeerId;
use mesh_node::testing::{signed_apply, wait_until, TestNet};
use mesh_protocol::{Step, WorkloadId};

fn pod(name: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n")
}

/// Heartbeats every 500 ms (the `TestNet` default); provider records live `ttl`, renewed
/// every third of it.
async fn mesh(n: usize, ttl: Duration) -> TestNet {
    let net = TestNet::start(n, |_, c| c.mesh.provider_ttl = ttl).await;
    net.wait_connected(Duration::from_secs(30)).await;
    net
}

fn peer_of(net: &TestNet, i: usize) -> PeerId {
    net.node(i).daemon().node.id().parse().unwrap()
}

/// The running slot holders of `id` as the nodes `seen_by` see them: slot → peers.
async fn slots(
    net: &TestNet,
    seen_by: &[usize],
    id: &WorkloadId,
) -> Vec<BTreeMap<u32, Vec<PeerId>>> {
    let mut out = Vec::new();
    for &i in seen_by {
        let mut by_slot: BTreeMap<u32, Vec<PeerId>> = BTreeMap::new();
        for p in net.node(i).daemon().mesh.discover(id, None).await {
            if let (Some(slot), Ok(peer)) = (p.slot, p.peer_id.parse()) {
                by_slot.entry(slot).or_default().push(peer);
            }
        }
        out.push(by_slot);
    }
    out
}

/// Waits until every node of `seen_by` sees exactly `want` slots `0..want`, each filled
/// once, by nodes of `allowed`; returns the holders.
async fn settled(
    net: &TestNet,
    seen_by: &[usize],
    id: &WorkloadId,
    want: u32,
    allowed: &HashSet<PeerId>,
    what: &str,
    timeout: Duration,
) -> BTreeMap<u32, PeerId> {
    wait_until(what, timeout, || async {
        let views = slots(net, seen_by, id).await;
        let first = views[0].clone();
        let ok = views.iter().all(|v| *v == first)
            && first.keys().copied().eq(0..want)
            && first
                .values()
                .all(|p| p.len() == 1 && allowed.contains(&p[0]));
        ok.then(|| first.into_iter().map(|(s, p)| (s, p[0])).collect())
    })
    .await
}

/// Every event of `step` the nodes recorded, as messages.
fn events(net: &TestNet, step: Step) -> Vec<String> {
    net.nodes
        .iter()
        .flat_map(|n| n.daemon().node.store().all_events(10_000).unwrap())
        .filter(|e| e.step == step)
        .map(|e| e.message)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_providers_slot_is_placed_again_once() {
    // Provider records outlive the test's wait (15 s): the slot empties because its holder
    // is found dead, not because its announcement expired.
    let mut net = mesh(5, Duration::from_secs(15)).await;
    let user = Keypair::generate_ed25519();
    let id = WorkloadId::new("default", "web");
    let a = &net.node(0).daemon().mesh;
    a.apply(signed_apply(a, &user, &pod("web"), 3).await)
        .await
        .unwrap();
    let everyone: HashSet<PeerId> = (0..5).map(|i| peer_of(&net, i)).collect();
    let before = settled(
        &net,
        &[0, 1, 2, 3, 4],
        &id,
        3,
        &everyone,
        "3 running",
        Duration::from_secs(20),
    )
    .await;

    // The victim: a holder other than node 0, which stays to watch. Stopped without leaving
    // (no withdrawal): its connections drop as a killed process's do.
    let victim = (1..5)
        .find(|i| before.values().any(|p| *p == peer_of(&net, *i)))
        .unwrap();
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
    let heals = events(&net, Step::Heal);
    let placed: Vec<&String> = heals
        .iter()
        .filter(|m| m.contains(&format!("slot {slot} placed")))
        .collect();
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
    let user = Keypair::generate_ed25519();
    let id = WorkloadId::new("default", "split");
    let a = &net.node(0).daemon().mesh;
    a.apply(signed_apply(a, &user, &pod("split"), 3).await)
        .await
        .unwrap();
    let everyone: HashSet<PeerId> = (0..5).map(|i| peer_of(&net, i)).collect();
    settled(
        &net,
        &[0, 1, 2, 3, 4],
        &id,
        3,
        &everyone,
        "3 running",
        Duration::from_secs(20),
    )
    .await;

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
    let user = Keypair::generate_ed25519();
    let id = WorkloadId::new("default", "slow");
    let a = &net.node(0).daemon().mesh;
    a.apply(signed_apply(a, &user, &pod("slow"), 3).await)
        .await
        .unwrap();
    let everyone: HashSet<PeerId> = (0..4).map(|i| peer_of(&net, i)).collect();
    let before = settled(
        &net,
        &[0, 1, 2, 3],
        &id,
        3,
        &everyone,
        "3 running",
        Duration::from_secs(20),
    )
    .await;
    let slow = (1..4)
        .find(|i| before.values().any(|p| *p == peer_of(&net, *i)))
        .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_moves_every_replica_without_a_moment_below_n() {
    let net = mesh(5, Duration::from_secs(3)).await;
    let user = Keypair::generate_ed25519();
    let a = &net.node(0).daemon().mesh;
    let everyone: HashSet<PeerId> = (0..5).map(|i| peer_of(&net, i)).collect();
    let ids: Vec<WorkloadId> = ["d1", "d2"]
        .iter()
        .map(|n| WorkloadId::new("default", *n))
        .collect();
    for id in &ids {
        a.apply(signed_apply(a, &user, &pod(&id.name), 3).await)
            .await
            .unwrap();
    }
    let mut before = Vec::new();
    for id in &ids {
        before.push(
            settled(
                &net,
                &[0],
                id,
                3,
                &everyone,
                "3 running",
                Duration::from_secs(20),
            )
            .await,
        );
    }
    // The node to drain: one that runs a replica of both, if any, else of the first.
    let drained = (1..5)
        .find(|i| {
            before
                .iter()
                .all(|b| b.values().any(|p| *p == peer_of(&net, *i)))
        })
        .or_else(|| (1..5).find(|i| before[0].values().any(|p| *p == peer_of(&net, *i))))
        .unwrap();
    let gone = peer_of(&net, drained);
    let runs_there = before
        .iter()
        .filter(|b| b.values().any(|p| *p == gone))
        .count();

    // Sampled every 20 ms from node 0 while the drain runs: never fewer than 3 running.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        let mesh = a.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            let mut least = usize::MAX;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                for id in &ids {
                    least = least.min(mesh.discover(id, None).await.len());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            least
        })
    };
    // Sent through node 0, which forwards it to the node it names.
    let command = mesh_node::mesh::Mesh::sign_command(
        &user,
        gone,
        mesh_provider::NodeAction::Drain,
        mesh_runtime::now_millis(),
    )
    .unwrap();
    let report = a.command(command.clone()).await.unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let least = sampler.await.unwrap();
    assert!(report.cordoned);
    assert_eq!(report.moved.len(), runs_there, "{report:?}");
    assert!(report.left.is_empty(), "{report:?}");
    assert!(least >= 3, "a moment with {least} running");
    let others: HashSet<PeerId> = everyone.iter().copied().filter(|p| *p != gone).collect();
    for id in &ids {
        settled(
            &net,
            &[0, 1, 2, 3, 4],
            id,
            3,
            &others,
            "3 running off the drained node",
            Duration::from_secs(10),
        )
        .await;
    }
    // Cordoned: shown as such, and a new workload goes elsewhere.
    let nodes = a.nodes(None).await;
    assert!(
        nodes
            .iter()
            .any(|n| n.peer_id == gone.to_string() && n.cordoned),
        "{nodes:?}"
    );
    let fresh = WorkloadId::new("default", "after");
    a.apply(signed_apply(a, &user, &pod("after"), 4).await)
        .await
        .unwrap();
    settled(
        &net,
        &[0],
        &fresh,
        4,
        &others,
        "4 running off the cordoned node",
        Duration::from_secs(20),
    )
    .await;
    // The same signed command again is a replay.
    let replay = a.command(command).await.unwrap_err();
    assert!(replay.to_string().contains("already received"), "{replay}");
    // Uncordoned, it takes replicas again.
    let uncordon = mesh_node::mesh::Mesh::sign_command(
        &user,
        gone,
        mesh_provider::NodeAction::Uncordon,
        mesh_runtime::now_millis(),
    )
    .unwrap();
    assert!(!a.command(uncordon).await.unwrap().cordoned);
    let wide = WorkloadId::new("default", "wide");
    a.apply(signed_apply(a, &user, &pod("wide"), 5).await)
        .await
        .unwrap();
    settled(
        &net,
        &[0],
        &wide,
        5,
        &everyone,
        "5 running, one on the uncordoned node",
        Duration::from_secs(20),
    )
    .await;
    net.stop().await;
}
