//! Multi-node scenarios on an in-process testnet: placement, discovery from any peer,
//! withdrawal on delete, expiry of a dead node's records, and scale.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mesh_node::testing::{wait_until, TestNet};
use mesh_protocol::api::{ApplyAction, ApplyRequest};
use mesh_protocol::{Phase, WorkloadId};

fn pod(name: &str) -> ApplyRequest {
    ApplyRequest {
        manifest: format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    beemesh.io/runtime-engine: mock\n    beemesh.io/resources.cpu: 100m\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n"
        ),
        ..ApplyRequest::default()
    }
}

fn id(name: &str) -> WorkloadId {
    WorkloadId::new("default", name)
}

/// Three nodes: apply on A with 2 replicas lands on two distinct nodes; C discovers both
/// (engine mock) with their metadata and none for podman; delete from C withdraws both at
/// once, well within one TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_place_discover_and_withdraw() {
    let ttl = Duration::from_secs(10);
    let net = TestNet::start(3, |_, c| c.mesh.provider_ttl = ttl).await;
    net.wait_connected(Duration::from_secs(20)).await;
    let (a, c) = (&net.node(0).daemon().mesh, &net.node(2).daemon().mesh);

    let mut req = pod("web");
    req.replicas = Some(2);
    let resp = a.apply(req).await.unwrap();
    let d = &resp.workloads[0].deployment;
    assert_eq!(resp.workloads[0].action, ApplyAction::Created, "{d:?}");
    assert_eq!(d.replicas.len(), 2, "{d:?}");
    assert!(d
        .replicas
        .iter()
        .all(|r| r.phase == Phase::Running && r.engine == "mock"));
    let placed: BTreeSet<&str> = d.replicas.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(placed.len(), 2, "replicas on distinct nodes");

    // Announcements replicate in the background: C sees both within moments.
    let found = wait_until(
        "C to discover both providers",
        Duration::from_secs(5),
        || async {
            let found = c.discover(&id("web"), Some("mock")).await;
            (found.len() == 2).then_some(found)
        },
    )
    .await;
    let providers: BTreeSet<&str> = found.iter().map(|p| p.peer_id.as_str()).collect();
    assert_eq!(providers, placed, "C discovers exactly the placed nodes");
    let now = mesh_runtime::now_millis();
    for p in &found {
        assert_eq!(p.engine, "mock");
        assert_eq!(p.version, d.version);
        assert_eq!(p.phase, Phase::Running);
        assert!(p.expires_at > now && p.expires_at <= now + ttl.as_millis() as u64);
        assert!(p.capabilities.contains(&"logs".to_string()));
        assert_eq!(p.resources.cpu_millis, Some(100));
        assert!(!p.addresses.is_empty());
    }
    assert!(c.discover(&id("web"), Some("podman")).await.is_empty());

    // Any node answers get and logs for the whole mesh.
    let got = c.get(&id("web"), false).await.unwrap();
    assert_eq!(got.replicas.len(), 2);
    assert!(!c.logs(&id("web"), None).await.unwrap().lines.is_empty());

    let started = Instant::now();
    let deleted = c.delete(&id("web"), None).await.unwrap();
    assert_eq!(deleted.phase, Phase::Deleted);
    for node in &net.nodes {
        let mesh = &node.daemon().mesh;
        wait_until("providers withdrawn everywhere", ttl / 2, || async {
            mesh.discover(&id("web"), None)
                .await
                .is_empty()
                .then_some(())
        })
        .await;
        assert!(node.mock.instances().is_empty(), "no instance left");
    }
    assert!(
        started.elapsed() < ttl / 2,
        "withdrawn in {:?}",
        started.elapsed()
    );
    net.stop().await;
}

/// A provider that stops without withdrawing (as after `kill -9`) disappears from discovery
/// within one TTL, because expiry is inside its signed record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_provider_disappears_within_one_ttl() {
    let ttl = Duration::from_secs(3);
    let mut net = TestNet::start(3, |_, c| c.mesh.provider_ttl = ttl).await;
    net.wait_connected(Duration::from_secs(20)).await;
    let mut req = pod("orphan");
    req.replicas = Some(3);
    let resp = net.node(0).daemon().mesh.apply(req).await.unwrap();
    assert_eq!(resp.workloads[0].deployment.replicas.len(), 3);
    let watcher = &net.node(0).daemon().mesh;
    wait_until("three providers visible", ttl, || async {
        (watcher.discover(&id("orphan"), None).await.len() == 3).then_some(())
    })
    .await;

    let victim = net.nodes.remove(2);
    let victim_id = victim.daemon().node.id().to_string();
    let stopped_at = Instant::now();
    victim.stop().await;
    let watcher = &net.node(0).daemon().mesh;
    wait_until(
        "the dead provider's record to expire",
        ttl + Duration::from_secs(1),
        || async {
            let found = watcher.discover(&id("orphan"), None).await;
            (!found.iter().any(|p| p.peer_id == victim_id)).then_some(found.len())
        },
    )
    .await;
    assert!(stopped_at.elapsed() <= ttl + Duration::from_secs(1));
    assert_eq!(
        watcher.discover(&id("orphan"), None).await.len(),
        2,
        "the live providers stay"
    );
    net.stop().await;
}

/// Twenty nodes: ten workloads applied from different nodes are each discoverable from every
/// node, with the version and engine they were applied with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_nodes_discover_from_everywhere() {
    let net = TestNet::start(20, |_, _| {}).await;
    net.wait_connected(Duration::from_secs(60)).await;
    let mut applied = Vec::new();
    for w in 0..10usize {
        let entry = (w * 7 + 3) % 20;
        let name = format!("svc-{w}");
        let resp = net
            .node(entry)
            .daemon()
            .mesh
            .apply(pod(&name))
            .await
            .unwrap();
        let d = &resp.workloads[0].deployment;
        assert_eq!(d.phase, Phase::Running, "{d:?}");
        applied.push((name, d.version.clone(), d.replicas[0].node.clone()));
    }
    for (name, version, provider) in &applied {
        for node in &net.nodes {
            let mesh = &node.daemon().mesh;
            let found = wait_until(
                "the provider to be visible",
                Duration::from_secs(10),
                || async {
                    let found = mesh.discover(&id(name), None).await;
                    (!found.is_empty()).then_some(found)
                },
            )
            .await;
            assert_eq!(found.len(), 1, "{name} from {}", node.daemon().node.id());
            assert_eq!(&found[0].peer_id, provider);
            assert_eq!(&found[0].version, version);
            assert_eq!(found[0].engine, "mock");
        }
    }
    let all = net.node(19).daemon().mesh.nodes(Some("mock")).await;
    assert_eq!(all.len(), 20, "nodes --engine mock lists the whole mesh");
    net.stop().await;
}

/// Re-applying a changed manifest from another, warm node updates the replicas where they run:
/// the entry node finds them in its gossip cache, without a DHT lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reapply_from_a_warm_node_updates_replicas_in_place() {
    let ttl = Duration::from_secs(3);
    let net = TestNet::start(4, |_, c| c.mesh.provider_ttl = ttl).await;
    net.wait_connected(Duration::from_secs(20)).await;
    let mut req = pod("api");
    req.replicas = Some(2);
    let first = net.node(0).daemon().mesh.apply(req).await.unwrap();
    let placed: BTreeSet<String> = first.workloads[0]
        .deployment
        .replicas
        .iter()
        .map(|r| r.node.clone())
        .collect();
    assert_eq!(placed.len(), 2);

    let entry = &net.node(3).daemon().mesh;
    wait_until(
        "node 3's cache to be warm and hold both providers",
        Duration::from_secs(10),
        || async {
            (entry.cache_is_warm() && entry.discover(&id("api"), None).await.len() == 2)
                .then_some(())
        },
    )
    .await;
    let mut changed = pod("api");
    changed.manifest = changed.manifest.replace("mesh-test:latest", "mesh-test:v2");
    changed.replicas = Some(2);
    let second = entry.apply(changed).await.unwrap();
    let w = &second.workloads[0];
    assert_eq!(w.action, ApplyAction::Updated, "{:?}", w.deployment);
    let now: BTreeSet<String> = w
        .deployment
        .replicas
        .iter()
        .map(|r| r.node.clone())
        .collect();
    assert_eq!(now, placed, "updated where it ran, no new placement");
    assert_ne!(w.deployment.version, first.workloads[0].deployment.version);
    net.stop().await;
}
