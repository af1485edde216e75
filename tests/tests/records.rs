//! Workload records: the mesh holds each workload's desired state, so re-applying the same
//! file changes nothing anywhere, any node answers `get` and `list`, and a node that just
//! joined is placeable at once.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::time::Duration;

use libp2p::identity::Keypair;
use mesh_node::records;
use mesh_node::testing::{self, wait_until, TestNet, TestNode};
use mesh_protocol::api::{ApplyAction, ApplyRequest};
use mesh_protocol::{Phase, WorkloadId};

const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n";

fn id() -> WorkloadId {
    WorkloadId::new("default", "hello")
}

/// An apply as `meshctl apply -f hello.yaml --replicas N` sends it.
async fn signed_apply(mesh: &mesh_node::mesh::Mesh, user: &Keypair, replicas: u32) -> ApplyRequest {
    testing::signed_apply(mesh, user, MANIFEST, replicas).await
}

/// Every mock instance of the testnet: (node, instance id) → start count.
fn instances(net: &TestNet) -> BTreeMap<(usize, String), u32> {
    net.nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| {
            n.mock
                .instances()
                .into_iter()
                .map(move |m| ((i, m.id), m.starts))
        })
        .collect()
}

/// The same file with the same replica count, applied again from every node of a 3-node
/// mesh, is `unchanged` everywhere and touches no instance: same instance ids, same start
/// counts. (Before records, the second apply reinstalled both replicas.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reapplying_the_same_file_from_any_node_touches_no_instance() {
    let net = TestNet::start(3, |_, _| {}).await;
    net.wait_connected(Duration::from_secs(20)).await;
    let user = Keypair::generate_ed25519();
    let entry = &net.node(0).daemon().mesh;
    let first = entry
        .apply(signed_apply(entry, &user, 2).await)
        .await
        .unwrap();
    let outcome = &first.workloads[0];
    assert_eq!(outcome.action, ApplyAction::Created, "{outcome:?}");
    assert_eq!(outcome.deployment.replicas.len(), 2);
    let before = instances(&net);
    assert_eq!(before.len(), 2, "{before:?}");

    for node in &net.nodes {
        let mesh = &node.daemon().mesh;
        // Every node has the record within a gossip round.
        wait_until(
            "the record to reach every node",
            Duration::from_secs(10),
            || async { mesh.record_info(&id()).await.filter(|r| r.revision == 1) },
        )
        .await;
        let again = mesh
            .apply(signed_apply(mesh, &user, 2).await)
            .await
            .unwrap();
        assert_eq!(
            again.workloads[0].action,
            ApplyAction::Unchanged,
            "{:?}",
            again.workloads[0]
        );
        assert_eq!(instances(&net), before, "an instance was touched");
        // Nothing new was adopted: the record stays at revision 1.
        assert_eq!(mesh.record_info(&id()).await.unwrap().revision, 1);
    }

    // A scale changes only the difference: one more replica, the first two untouched.
    let scaled = entry
        .apply(signed_apply(entry, &user, 3).await)
        .await
        .unwrap();
    assert_eq!(scaled.workloads[0].action, ApplyAction::Updated);
    let after = instances(&net);
    assert_eq!(after.len(), 3, "{after:?}");
    for (k, starts) in &before {
        assert_eq!(
            after.get(k),
            Some(starts),
            "instance {k:?} was touched by the scale"
        );
    }
    let slots: Vec<Option<u32>> = scaled.workloads[0]
        .deployment
        .replicas
        .iter()
        .map(|r| r.slot)
        .collect();
    assert_eq!(
        slots,
        vec![Some(0), Some(1), Some(2)],
        "describe shows slot → node"
    );
    net.stop().await;
}

/// `get` and `list` on a node that runs no replica show the workload, with its replicas and
/// the record's revision; no peer is asked for `list`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_list_from_a_node_without_a_replica_show_the_workload() {
    let net = TestNet::start(3, |_, _| {}).await;
    net.wait_connected(Duration::from_secs(20)).await;
    let user = Keypair::generate_ed25519();
    let entry = &net.node(0).daemon().mesh;
    let resp = entry
        .apply(signed_apply(entry, &user, 1).await)
        .await
        .unwrap();
    let runner = resp.workloads[0].deployment.replicas[0].node.clone();
    let bystander = net
        .nodes
        .iter()
        .find(|n| n.daemon().mesh.net().local_peer_id().to_string() != runner)
        .unwrap();
    assert!(bystander.mock.instances().is_empty());
    let mesh = &bystander.daemon().mesh;

    let listed = wait_until("list on a bystander", Duration::from_secs(10), || async {
        let list = mesh.list().await.ok()?;
        let d = list.into_iter().find(|d| d.name == "hello")?;
        (d.replicas.len() == 1 && d.phase == Phase::Running).then_some(d)
    })
    .await;
    assert_eq!(listed.revision, Some(1));
    assert_eq!(listed.replicas[0].node, runner);
    assert_eq!(
        listed.submitter,
        Some(user.public().to_peer_id().to_string())
    );

    let got = mesh.get(&id(), false).await.unwrap();
    assert_eq!(got.phase, Phase::Running);
    assert_eq!(got.replicas.len(), 1);
    assert_eq!(got.replicas[0].node, runner);
    assert_eq!(got.revision, Some(1));

    // Deleted from the bystander: gone everywhere, and the runner's instance removed.
    let tombstone = records::build_tombstone(
        &user,
        &id(),
        mesh_protocol::WorkloadKind::Pod,
        1,
        mesh_runtime::now_millis(),
    )
    .unwrap();
    mesh.delete(&id(), Some(tombstone)).await.unwrap();
    for node in &net.nodes {
        let m = &node.daemon().mesh;
        wait_until(
            "the tombstone everywhere",
            Duration::from_secs(10),
            || async {
                m.list()
                    .await
                    .ok()
                    .filter(|l| l.iter().all(|d| d.name != "hello"))
            },
        )
        .await;
        assert!(node.mock.instances().is_empty());
    }
    net.stop().await;
}

/// A node with no engine of its own takes an apply right after a capable node bootstraps to
/// it: the newcomer is placeable as soon as it is connected (before, every apply failed with
/// "no capable node with room" for about five seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_right_after_a_node_joins_places_on_it() {
    // The entry node is warm (it trusts its heartbeat table), and the newcomer's first
    // heartbeat is a minute away: only asking the newcomer itself finds it.
    let entry = TestNode::start_with(|c| {
        c.extra_engines.clear();
        c.mesh.heartbeat_interval = Duration::from_millis(100);
    })
    .await;
    let mesh = &entry.daemon().mesh;
    wait_until(
        "the entry node to be warm",
        Duration::from_secs(10),
        || async { mesh.heartbeats_are_warm().then_some(()) },
    )
    .await;
    let seed: libp2p::Multiaddr = entry.daemon().addresses[0].parse().unwrap();
    let capable = TestNode::start_with(|c| {
        c.bootstrap = vec![seed];
        c.mesh.heartbeat_interval = Duration::from_secs(60);
    })
    .await;
    let capable_id = capable.daemon().mesh.net().local_peer_id();
    // Connected (the only condition), then apply at once.
    wait_until(
        "the newcomer to connect",
        Duration::from_secs(10),
        || async {
            mesh.net()
                .connected_peers()
                .await
                .contains(&capable_id)
                .then_some(())
        },
    )
    .await;
    let user = Keypair::generate_ed25519();
    let resp = mesh
        .apply(signed_apply(mesh, &user, 1).await)
        .await
        .unwrap();
    let w = &resp.workloads[0];
    assert_eq!(w.action, ApplyAction::Created, "{w:?}");
    assert_eq!(w.deployment.replicas[0].node, capable_id.to_string());
    assert_eq!(capable.mock.instances().len(), 1);
    // `nodes` lists it too: the same view.
    let nodes = mesh.nodes(Some("mock")).await;
    assert!(nodes.iter().any(|n| n.peer_id == capable_id.to_string()));
    capable.stop().await;
    entry.stop().await;
}
