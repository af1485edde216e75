//! Who may run what: nodes with a trust file refuse an untrusted key, a key outside its
//! namespaces, a change or delete of another's workload by a non-admin, a replayed request and
//! a downgrade, each with an error naming the key and the rule, through every way in (the local
//! API, a peer's apply, a replica request, a delete). Nothing is stored, started or forwarded;
//! the node stays up and keeps serving. The trust file is reloaded when it changes.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use mesh_node::records;
use mesh_node::testing::{send_raw, signed_apply, wait_until, TestNet, TestNode};
use mesh_protocol::api::{ApplyRequest, SignedRecord};
use mesh_protocol::wire::{ReplicaApply, Request, Response};
use mesh_protocol::{WorkloadId, WorkloadKind};

fn pod(ns: &str, name: &str, image: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/{image}\n")
}

fn entry(key: &Keypair, roles: &str, namespaces: &str) -> String {
    format!(
        "- key: {}\n  roles: [{roles}]\n  namespaces: [{namespaces}]\n",
        key.public().to_peer_id()
    )
}

fn write_trust(path: &Path, entries: &[String]) {
    std::fs::write(path, format!("keys:\n{}", entries.concat())).unwrap();
}

async fn send(addr: &Multiaddr, peer: PeerId, request: Request) -> Response {
    send_raw(
        "/mesh/deploy/1",
        Duration::from_secs(20),
        addr.clone(),
        peer,
        vec![request],
    )
    .await
    .remove(0)
    .unwrap_or_else(|e| panic!("request failed: {e}"))
}

fn refused(answer: &Response, says: &[&str]) {
    match answer {
        Response::Error { status, message } => {
            assert_eq!(*status, 403, "{message}");
            for s in says {
                assert!(message.contains(s), "{message:?} does not say {s:?}");
            }
        }
        other => panic!("accepted: {other:?}"),
    }
}

/// Why `mesh` refused an apply of `record` (as a client sends it).
async fn refusal(mesh: &mesh_node::mesh::Mesh, record: SignedRecord) -> String {
    let req = ApplyRequest {
        records: vec![record],
        ..ApplyRequest::default()
    };
    mesh.apply(req).await.unwrap_err().to_string()
}

/// Nothing of `id` on `node`: no desired state, no record, no instance of it.
fn untouched(node: &TestNode, id: &WorkloadId) {
    let d = node.daemon();
    assert!(d.node.store().desired(id).unwrap().is_none(), "{id} stored");
    assert!(d.mesh.records().get(id).is_none(), "{id} record kept");
    assert!(
        !node.mock.instances().iter().any(|i| i.spec.id() == *id),
        "{id} started"
    );
}

async fn two_nodes(trust: PathBuf) -> TestNet {
    let net = TestNet::start(2, move |_, c| {
        c.trust = mesh_node::trust::Source::File(trust.clone());
    })
    .await;
    net.wait_connected(Duration::from_secs(30)).await;
    net
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_namespaces_and_non_owners_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.yaml");
    let [alice, bob, admin, stranger] = std::array::from_fn(|_| Keypair::generate_ed25519());
    write_trust(
        &trust,
        &[
            entry(&alice, "deploy", "default"),
            entry(&bob, "deploy", "default, team"),
            entry(&admin, "admin", "'*'"),
        ],
    );
    let net = two_nodes(trust).await;
    let (a, b) = (net.node(0), net.node(1));
    let mesh = &a.daemon().mesh;
    let addr: Multiaddr = a.daemon().addresses[0].parse().unwrap();
    let peer: PeerId = a.daemon().node.id().parse().unwrap();
    let stranger_id = stranger.public().to_peer_id().to_string();

    // A stranger, through the local API, a peer's apply and a replica request.
    let stranger_pod = pod("default", "intruder", "mesh-test:latest");
    let req = signed_apply(mesh, &stranger, &stranger_pod, 2).await;
    let answer = a.client().post("/deployments", &req).await.unwrap();
    assert_eq!(answer.status.as_u16(), 403, "{}", answer.error_message());
    assert!(
        answer.error_message().contains(&stranger_id),
        "{}",
        answer.error_message()
    );
    assert!(answer.error_message().contains("not trusted"));
    let req = signed_apply(mesh, &stranger, &stranger_pod, 2).await;
    refused(
        &send(&addr, peer, Request::Apply(Box::new(req.clone()))).await,
        &[&stranger_id, "not trusted"],
    );
    let replica = Request::ApplyReplica(Box::new(ReplicaApply {
        correlation: None,
        record: req.records[0].clone(),
        workload: WorkloadId::new("default", "intruder"),
        slot: 0,
        desired_replicas: 1,
        modules: Vec::new(),
        placement: Vec::new(),
        entry: String::new(),
    }));
    refused(
        &send(&addr, peer, replica).await,
        &[&stranger_id, "not trusted"],
    );
    // Bob outside his namespaces.
    let req = signed_apply(mesh, &bob, &pod("prod", "web", "mesh-test:latest"), 1).await;
    let e = mesh.apply(req).await.unwrap_err().to_string();
    assert!(
        e.contains("may not use namespace prod") && e.contains("keys[1].namespaces"),
        "{e}"
    );
    for node in [a, b] {
        untouched(node, &WorkloadId::new("default", "intruder"));
        untouched(node, &WorkloadId::new("prod", "web"));
    }

    // Alice's workload, on both nodes: bob may neither change nor delete it, nor may a
    // stranger delete it through a peer.
    let id = WorkloadId::new("default", "web");
    let v1 = pod("default", "web", "mesh-test:latest");
    mesh.apply(signed_apply(mesh, &alice, &v1, 2).await)
        .await
        .unwrap();
    let running = |n: &TestNode| {
        n.daemon()
            .node
            .store()
            .desired(&id)
            .unwrap()
            .map(|d| d.revision)
    };
    assert_eq!((running(a), running(b)), (Some(1), Some(1)));
    let change = signed_apply(mesh, &bob, &pod("default", "web", "mesh-test:2"), 2).await;
    let e = mesh.apply(change).await.unwrap_err().to_string();
    assert!(
        e.contains("admin role") && e.contains(&alice.public().to_peer_id().to_string()),
        "{e}"
    );
    let tombstone = |key: &Keypair| -> SignedRecord {
        records::build_tombstone(key, &id, WorkloadKind::Pod, 1, mesh_runtime::now_millis())
            .unwrap()
    };
    let e = mesh
        .delete(&id, Some(tombstone(&bob)))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("admin role"), "{e}");
    let delete = Request::Delete {
        id: id.clone(),
        record: Some(tombstone(&stranger)),
    };
    refused(
        &send(&addr, peer, delete).await,
        &[&stranger_id, "not trusted"],
    );
    for node in [a, b] {
        assert_eq!(running(node), Some(1));
        assert_eq!(node.daemon().mesh.records().revision(&id), 1);
        assert_eq!(
            node.mock.instances().len(),
            1,
            "one replica per node, still running"
        );
    }
    // The admin may.
    mesh.delete(&id, Some(tombstone(&admin))).await.unwrap();
    for node in [a, b] {
        assert_eq!(running(node), None);
    }
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_skewed_and_older_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.yaml");
    let alice = Keypair::generate_ed25519();
    write_trust(&trust, &[entry(&alice, "deploy", "default")]);
    let node = TestNode::start_with(|c| c.trust = mesh_node::trust::Source::File(trust)).await;
    let mesh = &node.daemon().mesh;
    let id = WorkloadId::new("default", "web");
    let req = signed_apply(mesh, &alice, &pod("default", "web", "mesh-test:latest"), 1).await;
    mesh.apply(req.clone()).await.unwrap();
    let e = mesh.apply(req.clone()).await.unwrap_err().to_string();
    assert!(
        e.contains("replayed request") && e.contains("already received"),
        "{e}"
    );

    // Signed 6 minutes ago (the default skew allows 5).
    let src = mesh_provider::workload::ManifestSource {
        manifest: pod("default", "web", "mesh-test:2"),
        ..Default::default()
    };
    let stale_clock = mesh_runtime::now_millis() - 6 * 60 * 1000;
    let old = records::build(&alice, &src, Some(1), |_| 1, stale_clock).unwrap();
    let e = refusal(mesh, old[0].signed.clone()).await;
    assert!(e.contains("ago, beyond the 5m"), "{e}");
    // Revision 2, then a fresh record at revision 1: a downgrade.
    mesh.apply(signed_apply(mesh, &alice, &src.manifest, 1).await)
        .await
        .unwrap();
    let other = mesh_provider::workload::ManifestSource {
        manifest: pod("default", "web", "mesh-test:3"),
        ..Default::default()
    };
    let down = records::build(&alice, &other, Some(1), |_| 0, mesh_runtime::now_millis()).unwrap();
    let e = refusal(mesh, down[0].signed.clone()).await;
    assert!(e.contains("refused as a downgrade"), "{e}");
    let d = node.daemon().node.store().desired(&id).unwrap().unwrap();
    assert_eq!(d.revision, 2);
    assert_eq!(node.daemon().mesh.records().revision(&id), 2);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_rollback_brings_back_a_known_revision_and_nothing_else() {
    let alice = Keypair::generate_ed25519();
    let net = TestNet::start(2, |_, _| {}).await;
    net.wait_connected(Duration::from_secs(30)).await;
    let mesh = &net.node(0).daemon().mesh;
    let id = WorkloadId::new("default", "web");
    let v1 = pod("default", "web", "mesh-test:1");
    let first = mesh
        .apply(signed_apply(mesh, &alice, &v1, 2).await)
        .await
        .unwrap();
    let v1_version = first.workloads[0].deployment.version.clone();
    mesh.apply(signed_apply(mesh, &alice, &pod("default", "web", "mesh-test:2"), 2).await)
        .await
        .unwrap();
    let history = mesh.records().history(&id);
    assert_eq!(history.len(), 2);

    // A rollback that claims revision 2 but carries revision 1's content is refused.
    let mut lie = mesh_provider::workload::verify(&history[0].bytes).unwrap();
    lie.record.revision = 2;
    let forged = records::build_rollback(&alice, &lie, 2, mesh_runtime::now_millis()).unwrap();
    let e = refusal(mesh, forged).await;
    assert!(
        e.contains("rollback to revision 2 refused") && e.contains("its content is"),
        "{e}"
    );

    let back = records::build_rollback(&alice, &history[0], 2, mesh_runtime::now_millis()).unwrap();
    let resp = mesh
        .apply(ApplyRequest {
            records: vec![back],
            ..ApplyRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(resp.workloads[0].deployment.version, v1_version);
    for i in 0..2 {
        let node = net.node(i).daemon();
        let held = node.mesh.records().get(&id).unwrap();
        assert_eq!(
            (held.record.revision, held.record.rollback_to),
            (3, Some(1))
        );
        let d = node.node.store().desired(&id).unwrap().unwrap();
        assert_eq!(
            d.spec.version, v1_version,
            "node {i} runs revision 1's content again"
        );
    }
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trust_file_is_reloaded_when_it_changes_and_a_broken_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.yaml");
    let (alice, bob) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    write_trust(&trust, &[entry(&alice, "deploy", "default")]);
    let path = trust.clone();
    let node = TestNode::start_with(|c| c.trust = mesh_node::trust::Source::File(path)).await;
    let mesh = &node.daemon().mesh;
    let bobs = pod("default", "bobs", "mesh-test:latest");
    let e = mesh
        .apply(signed_apply(mesh, &bob, &bobs, 1).await)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not trusted"), "{e}");

    write_trust(
        &trust,
        &[
            entry(&alice, "deploy", "default"),
            entry(&bob, "deploy", "default"),
        ],
    );
    wait_until("bob to be trusted", Duration::from_secs(10), || async {
        node.daemon()
            .node
            .trust()
            .policy()
            .keys
            .contains_key(&bob.public().to_peer_id())
            .then_some(())
    })
    .await;
    mesh.apply(signed_apply(mesh, &bob, &bobs, 1).await)
        .await
        .unwrap();

    std::fs::write(&trust, "keys: [ {key: broken\n").unwrap();
    let e = node.daemon().node.trust().reload().unwrap_err().to_string();
    assert!(e.contains("trust file"), "{e}");
    let p = node.daemon().node.trust().policy();
    assert!(
        p.keys.contains_key(&bob.public().to_peer_id()),
        "the loaded policy stays"
    );
    assert!(p.keys.contains_key(&alice.public().to_peer_id()));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_the_trust_file_denies_is_never_selected_and_the_refusal_is_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.yaml");
    let alice = Keypair::generate_ed25519();
    let keys = entry(&alice, "deploy", "default");
    std::fs::write(
        &trust,
        format!("keys:\n{keys}node:\n  engines: {{deny: [mock]}}\n"),
    )
    .unwrap();
    let path = trust.clone();
    let node = TestNode::start_with(|c| c.trust = mesh_node::trust::Source::File(path)).await;
    let mesh = &node.daemon().mesh;
    let id = WorkloadId::new("default", "web");
    let resp = mesh
        .apply(signed_apply(mesh, &alice, &pod("default", "web", "mesh-test:latest"), 1).await)
        .await
        .unwrap();
    let d = &resp.workloads[0].deployment;
    assert_eq!(d.phase, mesh_protocol::Phase::Failed, "{d:#?}");
    let error = d.replicas[0].error.clone().unwrap_or_default();
    assert!(error.contains("mock is denied by node policy"), "{error}");
    assert!(
        node.mock.instances().is_empty(),
        "nothing started on a denied engine"
    );
    let events = node.daemon().node.events(Some(&id), 10).unwrap();
    assert!(events.iter().any(|e| e.step == mesh_protocol::Step::Select
        && e.outcome == mesh_protocol::Outcome::Failed
        && e.message.contains("denied by node policy")));

    // Allowed again once the file says so (reloaded on change): the next apply runs.
    std::fs::write(&trust, format!("keys:\n{keys}")).unwrap();
    wait_until(
        "the engine to be allowed",
        Duration::from_secs(10),
        || async {
            node.daemon()
                .node
                .trust()
                .policy()
                .engines
                .denied
                .is_empty()
                .then_some(())
        },
    )
    .await;
    let resp = mesh
        .apply(signed_apply(mesh, &alice, &pod("default", "web", "mesh-test:2"), 1).await)
        .await
        .unwrap();
    assert_eq!(
        resp.workloads[0].deployment.phase,
        mesh_protocol::Phase::Running
    );
    node.stop().await;
}
