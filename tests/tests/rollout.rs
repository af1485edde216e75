//! New content rolls out one replica at a time, and a rollout whose first new replica fails
//! its health check stops there with the old version serving everywhere. Secrets travel
//! sealed: no published record holds them in clear, and only the node that runs the workload
//! gets the data key.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use libp2p::identity::Keypair;
use mesh_node::mesh::Mesh;
use mesh_node::records;
use mesh_node::testing::TestNet;
use mesh_protocol::api::{ApplyAction, ApplyRequest};
use mesh_protocol::spec::ConfigKind;
use mesh_protocol::{Phase, WorkloadId};
use mesh_provider::workload::{self, ManifestSource, Source};

fn pod(name: &str, image: &str, health: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    beemesh.io/runtime-engine: mock\n    beemesh.io/mock-health: {health}\nspec:\n  containers:\n  - name: main\n    image: {image}\n"
    )
}

async fn signed(mesh: &Mesh, user: &Keypair, manifest: &str, replicas: u32) -> ApplyRequest {
    mesh_node::testing::signed_apply(mesh, user, manifest, replicas).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_stops_at_the_first_replica_that_fails_its_health_check() {
    let net = TestNet::start(3, |_, c| {
        c.controller.health_timeout = Duration::from_millis(500);
    })
    .await;
    net.wait_connected(Duration::from_secs(20)).await;
    let user = Keypair::generate_ed25519();
    let entry = &net.node(0).daemon().mesh;
    let v1 = pod("web", "localhost/mesh-test:1", "ok");
    let first = entry
        .apply(signed(entry, &user, &v1, 3).await)
        .await
        .unwrap();
    assert_eq!(first.workloads[0].action, ApplyAction::Created);
    let old_version = first.workloads[0].deployment.version.clone();

    // Version 2 never becomes healthy: the first replica updated rolls back, and the others
    // are never touched.
    let instances = |net: &TestNet| -> Vec<(usize, String, u32)> {
        net.nodes
            .iter()
            .enumerate()
            .flat_map(|(i, n)| {
                n.mock
                    .instances()
                    .into_iter()
                    .map(move |m| (i, m.id, m.starts))
            })
            .collect()
    };
    let before = instances(&net);
    let v2 = pod("web", "localhost/mesh-test:2", "fail");
    let second = entry
        .apply(signed(entry, &user, &v2, 3).await)
        .await
        .unwrap();
    let w = &second.workloads[0];
    assert_eq!(w.action, ApplyAction::RolledBack, "{w:?}");
    assert!(
        w.deployment.placement.iter().any(
            |n| n.contains("rollout stopped at slot 0: 2 replica(s) keep the previous version")
        ),
        "{:?}",
        w.deployment.placement
    );
    let running: Vec<String> = net
        .nodes
        .iter()
        .flat_map(|n| n.mock.instances())
        .filter(|m| m.state == mesh_runtime::mock::MockRunState::Running)
        .map(|m| m.spec.version)
        .collect();
    assert_eq!(
        running,
        vec![old_version.clone(); 3],
        "the old version serves everywhere"
    );
    let d = entry
        .get(&WorkloadId::new("default", "web"), false)
        .await
        .unwrap();
    assert!(d
        .replicas
        .iter()
        .all(|r| r.phase == Phase::Running && r.version == old_version));
    // Slots 1 and 2 were never asked: their instances are the very same, started once.
    let after = instances(&net);
    for slot in [1, 2] {
        let runner = d
            .replicas
            .iter()
            .find(|r| r.slot == Some(slot))
            .map(|r| r.node.clone())
            .unwrap();
        let node = net
            .nodes
            .iter()
            .position(|n| n.daemon().node.id() == runner)
            .unwrap();
        let of = |list: &[(usize, String, u32)]| -> Vec<(usize, String, u32)> {
            list.iter()
                .filter(|(i, _, _)| *i == node)
                .cloned()
                .collect()
        };
        assert_eq!(of(&after), of(&before), "slot {slot}'s node was touched");
    }

    // A good version 3 rolls out to all three, one at a time.
    let v3 = pod("web", "localhost/mesh-test:3", "ok");
    let third = entry
        .apply(signed(entry, &user, &v3, 3).await)
        .await
        .unwrap();
    let w = &third.workloads[0];
    assert_eq!(w.action, ApplyAction::Updated, "{w:?}");
    assert!(w
        .deployment
        .replicas
        .iter()
        .all(|r| r.version == w.deployment.version));
    assert_eq!(w.deployment.replicas.len(), 3);
    net.stop().await;
}

const SECRET: &str = "hunter2-never-in-clear";

fn with_secret() -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: {SECRET}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: db\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n    env:\n    - name: PASSWORD\n      valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_travel_sealed_and_reach_only_the_node_that_runs_them() {
    // Node 0 takes the apply but runs nothing; node 1 runs it; node 2 only hears of it.
    let net = TestNet::start(3, |i, c| {
        if i != 1 {
            c.extra_engines.clear();
        }
    })
    .await;
    net.wait_connected(Duration::from_secs(20)).await;
    let user = Keypair::generate_ed25519();
    let entry = &net.node(0).daemon().mesh;
    let req = signed(entry, &user, &with_secret(), 1).await;

    // The published record is sealed: no secret, no plain digest of the spec.
    let record = workload::verify(&req.records[0].bytes).unwrap();
    assert!(!String::from_utf8_lossy(&record.bytes).contains(SECRET));
    assert!(matches!(record.record.source, Source::Sealed(_)));
    let plain = records::parse_source(&ManifestSource {
        manifest: with_secret(),
        ..Default::default()
    })
    .unwrap();
    assert_ne!(
        record.record.spec_version, plain[0].version,
        "the version is keyed"
    );

    let resp = entry.apply(req).await.unwrap();
    let w = &resp.workloads[0];
    assert_eq!(w.action, ApplyAction::Created, "{w:?}");
    assert_eq!(
        w.deployment.replicas[0].node,
        net.node(1).daemon().node.id()
    );
    // The node that runs it got the data key and the secret value.
    let instances = net.node(1).mock.instances();
    let creds = instances[0]
        .spec
        .config
        .iter()
        .find(|c| c.kind == ConfigKind::Secret)
        .unwrap();
    assert_eq!(creds.data["password"], SECRET);
    // The entry node keeps no replica, so no data key; every copy of the record any node
    // holds is the sealed one (waited for: node 2 hears it on gossip).
    let bystander = &net.node(2).daemon().mesh;
    mesh_node::testing::wait_until("the record at node 2", Duration::from_secs(10), || async {
        bystander
            .record_info(&WorkloadId::new("default", "db"))
            .await
    })
    .await;
    assert!(net
        .node(0)
        .daemon()
        .node
        .store()
        .list_desired()
        .unwrap()
        .is_empty());
    for node in &net.nodes {
        for (_, bytes) in node.daemon().node.store().list_records().unwrap() {
            assert!(!String::from_utf8_lossy(&bytes).contains(SECRET));
        }
    }
    // The same file again: the same key, the same keyed version, nothing to do.
    let again = entry
        .apply(signed(entry, &user, &with_secret(), 1).await)
        .await
        .unwrap();
    assert_eq!(again.workloads[0].action, ApplyAction::Unchanged);
    net.stop().await;
}

fn deployment(image: &str, health: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 3\n  strategy:\n    rollingUpdate:\n      maxUnavailable: 2\n  selector:\n    matchLabels: {{app: api}}\n  template:\n    metadata:\n      labels: {{app: api}}\n      annotations:\n        beemesh.io/runtime-engine: mock\n        beemesh.io/mock-health: {health}\n    spec:\n      containers:\n      - name: main\n        image: {image}\n"
    )
}

/// `maxUnavailable: 2`: two replicas are updated at once; when that batch fails, the third
/// is never touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_strategy_sets_how_many_replicas_update_at_once() {
    let net = TestNet::start(3, |_, c| {
        c.controller.health_timeout = Duration::from_millis(500);
    })
    .await;
    net.wait_connected(Duration::from_secs(20)).await;
    let user = Keypair::generate_ed25519();
    let entry = &net.node(0).daemon().mesh;
    let v1 = deployment("localhost/mesh-test:1", "ok");
    let first = entry
        .apply(signed(entry, &user, &v1, 3).await)
        .await
        .unwrap();
    assert_eq!(first.workloads[0].action, ApplyAction::Created);
    let v2 = deployment("localhost/mesh-test:2", "fail");
    let second = entry
        .apply(signed(entry, &user, &v2, 3).await)
        .await
        .unwrap();
    let w = &second.workloads[0];
    assert_eq!(w.action, ApplyAction::RolledBack, "{w:?}");
    assert!(
        w.deployment
            .placement
            .iter()
            .any(|n| n
                .contains("rollout stopped at slot 0, 1: 1 replica(s) keep the previous version")),
        "{:?}",
        w.deployment.placement
    );
    net.stop().await;
}
