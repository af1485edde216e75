//! Offline autonomy (issue 12, item 5): a node restarted with no peer reachable brings its
//! workloads back from its own store at once, without waiting on the network, and announces
//! them again when peers return.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use mesh_node::testing::{signed_apply, wait_until, TestNet, TestNode};
use mesh_protocol::{Phase, WorkloadId};

fn pod(name: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n")
}

/// Two connected nodes: node 0 runs nothing, so the workloads applied through it land on
/// node 1. `ttl`: the provider TTL, when not the default.
async fn entry_and_runner(ttl: Option<Duration>) -> TestNet {
    let net = TestNet::start(2, |i, c| {
        if let Some(ttl) = ttl {
            c.mesh.provider_ttl = ttl;
        }
        if i == 0 {
            c.extra_engines.clear();
        }
    })
    .await;
    net.wait_connected(Duration::from_secs(30)).await;
    net
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_alone_runs_its_workloads_and_announces_them_when_peers_return() {
    // Short renewal rounds (1 s) so that announcements come back quickly.
    let ttl = Duration::from_secs(3);
    let mut net = entry_and_runner(Some(ttl)).await;
    let user = Keypair::generate_ed25519();
    let entry = &net.node(0).daemon().mesh;
    let names = ["alpha", "beta", "gamma"];
    for name in names {
        entry
            .apply(signed_apply(entry, &user, &pod(name), 1).await)
            .await
            .unwrap();
    }
    let instances = net.node(1).mock.instances();
    assert_eq!(instances.len(), 3);

    // Both stop; node 1 comes back alone, its only bootstrap peer (node 0) gone.
    let second = net.nodes.pop().unwrap();
    let first = net.nodes.pop().unwrap();
    let seed = first.daemon().addresses[0].clone();
    let first_dir = first.stop().await;
    let second_dir = second.stop().await;
    let started = Instant::now();
    let alone = TestNode::start_in(second_dir, |c| {
        c.mesh.provider_ttl = ttl;
        c.bootstrap = vec![seed.parse().unwrap()];
    })
    .await;
    let took = started.elapsed();
    for name in names {
        let d = alone
            .daemon()
            .node
            .view(&WorkloadId::new("default", name), false)
            .unwrap();
        assert_eq!(d.phase, Phase::Running, "{name} is running again: {d:#?}");
    }
    assert!(alone.daemon().mesh.net().connected_peers().await.is_empty());
    // Re-adopted from the engine, not started twice.
    let again = alone.mock.instances();
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|i| i.starts == 1), "{again:#?}");
    eprintln!("restart with no peer reachable: workloads Running after {took:?}");

    // Node 0 returns (same identity, a new port) and joins through node 1: it learns node
    // 1's replicas from node 1's next announcements, without any apply.
    let back = TestNode::start_in(first_dir, |c| {
        c.mesh.provider_ttl = ttl;
        c.extra_engines.clear();
        c.bootstrap = vec![alone.daemon().addresses[0].parse().unwrap()];
    })
    .await;
    let alone_id = alone.daemon().node.id().to_string();
    for name in names {
        let id = WorkloadId::new("default", name);
        let providers = wait_until(
            "the returned peer to discover the replica",
            Duration::from_secs(20),
            || {
                let mesh = back.daemon().mesh.clone();
                let id = id.clone();
                async move {
                    let found = mesh.discover(&id, None).await;
                    (!found.is_empty()).then_some(found)
                }
            },
        )
        .await;
        assert_eq!(providers[0].peer_id, alone_id);
    }
    back.stop().await;
    alone.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_leaves_withdraws_its_replicas_takes_no_work_and_leaves_them_running() {
    // Default TTL (60 s): the replica disappears from discovery by withdrawal, not expiry.
    let net = entry_and_runner(None).await;
    let user = Keypair::generate_ed25519();
    let entry = &net.node(0).daemon().mesh;
    entry
        .apply(signed_apply(entry, &user, &pod("stay"), 1).await)
        .await
        .unwrap();
    let id = WorkloadId::new("default", "stay");
    assert_eq!(entry.discover(&id, None).await.len(), 1);

    let leaving = net.node(1);
    let left_at = Instant::now();
    leaving.daemon().mesh.leave().await;
    wait_until(
        "the withdrawal to reach the entry node",
        Duration::from_secs(10),
        || async { entry.discover(&id, None).await.is_empty().then_some(()) },
    )
    .await;
    assert!(left_at.elapsed() < Duration::from_secs(10));
    // The workload keeps running there; new work is refused.
    let d = leaving.daemon().node.view(&id, false).unwrap();
    assert_eq!(d.phase, Phase::Running);
    assert!(leaving
        .mock
        .instances()
        .iter()
        .all(|i| i.state == mesh_runtime::mock::MockRunState::Running));
    let e = leaving
        .daemon()
        .mesh
        .apply(signed_apply(&leaving.daemon().mesh, &user, &pod("late"), 1).await)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("shutting down"), "{e}");
    net.stop().await;
}
