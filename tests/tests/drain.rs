//! Moves without a moment below n: `drain` places each replica of a node elsewhere before
//! it removes its own (the command signed, forwarded, replay-checked), and when every
//! holder of a workload died, the live node closest to its record places the slots.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod healing_support;

use std::collections::HashSet;
use std::time::Duration;

use healing_support::{events, mesh, peer_of, pod, settled};
use libp2p::identity::Keypair;
use libp2p::PeerId;
use mesh_node::testing::{signed_apply, wait_until, TestNet};
use mesh_protocol::{Step, WorkloadId};

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
    // Two replicas, then three: the first two keep running the first revision (nothing
    // changed for them), so a drain must send the record the mesh holds, not theirs.
    for id in &ids {
        for n in [2, 3] {
            a.apply(signed_apply(a, &user, &pod(&id.name), n).await)
                .await
                .unwrap();
        }
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
    // The node to drain: one (not node 0, which watches) whose replica runs an older revision
    // than the mesh holds; of the two nodes that took the first two replicas, one is such.
    let older = |i: usize| {
        ids.iter().any(|id| {
            let runs = net.node(i).daemon().node.store().desired(id).unwrap();
            runs.is_some_and(|d| d.revision < a.records().revision(id))
        })
    };
    let drained = (1..5).find(|i| older(*i)).unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_holder_died_the_node_closest_to_the_record_places_them() {
    // Node 0 has no engine: both replicas run elsewhere, and it stays to watch.
    let mut net = TestNet::start(5, |i, c| {
        c.mesh.provider_ttl = Duration::from_secs(15);
        if i == 0 {
            c.extra_engines.clear();
        }
    })
    .await;
    net.wait_connected(Duration::from_secs(30)).await;
    let user = Keypair::generate_ed25519();
    let id = WorkloadId::new("default", "orphan");
    let a = &net.node(0).daemon().mesh;
    a.apply(signed_apply(a, &user, &pod("orphan"), 2).await)
        .await
        .unwrap();
    let everyone: HashSet<PeerId> = (0..5).map(|i| peer_of(&net, i)).collect();
    let before = settled(
        &net,
        &[0],
        &id,
        2,
        &everyone,
        "2 running",
        Duration::from_secs(20),
    )
    .await;
    // Both holders go; their provider records have not expired.
    let holders: Vec<usize> = (1..5)
        .filter(|i| before.values().any(|p| *p == peer_of(&net, *i)))
        .collect();
    assert_eq!(holders.len(), 2);
    let dead: Vec<PeerId> = holders.iter().map(|i| peer_of(&net, *i)).collect();
    for i in holders.iter().rev() {
        net.nodes.remove(*i).stop().await;
    }
    let alive: HashSet<PeerId> = everyone
        .iter()
        .copied()
        .filter(|p| !dead.contains(p))
        .collect();
    let seen_by: Vec<usize> = (0..net.nodes.len()).collect();
    settled(
        &net,
        &seen_by,
        &id,
        2,
        &alive,
        "2 running on the nodes left",
        Duration::from_secs(12),
    )
    .await;
    // Recorded once the targets answered, which may be after the others saw them run.
    let heals = wait_until(
        "the placements' events",
        Duration::from_secs(10),
        || async {
            let heals = events(&net, Step::Heal);
            let placed = heals.iter().filter(|m| m.contains(" placed on ")).count();
            (placed >= holders.len()).then_some(heals)
        },
    )
    .await;
    let placed = heals.iter().filter(|m| m.contains(" placed on ")).count();
    assert_eq!(
        placed,
        holders.len(),
        "each empty slot placed once: {heals:?}"
    );
    net.stop().await;
}
