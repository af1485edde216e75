//! Hostile peers: a raw libp2p peer sends oversized and malformed requests on the node's
//! request-response protocol. Each is refused, the node stays up, and it still answers a
//! well-formed request afterwards.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use mesh_node::testing::{send_raw, TestNode};
use serde_json::{json, Value};

/// What came back for one request: the answer, or why there is none.
type Outcome = Result<Value, String>;

async fn send_all(addr: Multiaddr, peer: PeerId, requests: Vec<Value>) -> Vec<Outcome> {
    send_raw("/mesh/rpc/1", Duration::from_secs(10), addr, peer, requests).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_requests_are_refused_and_the_node_stays_up() {
    let node = TestNode::start().await;
    let addr: Multiaddr = node.daemon().addresses[0].parse().unwrap();
    let peer: PeerId = node.daemon().node.id().parse().unwrap();

    let oversized = Value::String("x".repeat(3 * 1024 * 1024));
    let outcomes = send_all(
        addr.clone(),
        peer,
        vec![
            oversized,
            json!({"Bogus": {"field": 1}}),
            json!([1, 2, 3]),
            json!({"ApplyReplica": "not a struct"}),
            json!("Engines"),
        ],
    )
    .await;
    for (i, outcome) in outcomes[..4].iter().enumerate() {
        match outcome {
            Err(why) => assert!(!why.is_empty()),
            Ok(v) => panic!("hostile request {i} was answered: {v}"),
        }
    }
    // The same peer, right after: a well-formed request is answered.
    match &outcomes[4] {
        Ok(v) => assert_eq!(v["Engines"][0]["name"], "mock", "{v}"),
        other => panic!("a valid request after hostile ones failed: {other:?}"),
    }
    // And the node's own API still works end to end.
    let h: Value = node.client().get("/health").await.unwrap();
    assert_eq!(h["status"], "ok");
}

/// An apply from an unknown raw peer is parsed and validated by the node like any other:
/// malformed YAML inside a well-formed message gets a clear error and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_manifest_from_a_peer_changes_nothing() {
    let node = TestNode::start().await;
    let addr: Multiaddr = node.daemon().addresses[0].parse().unwrap();
    let peer: PeerId = node.daemon().node.id().parse().unwrap();
    // Signed like any apply (a peer's apply must carry its records), with a manifest that
    // does not parse.
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata: {name: x\n";
    let record = mesh_provider::workload::WorkloadRecord {
        id: mesh_protocol::WorkloadId::new("default", "x"),
        revision: 1,
        kind: mesh_protocol::WorkloadKind::Pod,
        spec_version: "sha256:00".into(),
        replicas: mesh_provider::workload::Replicas::Count(1),
        modules: Vec::new(),
        source: mesh_provider::workload::Source::Plain(mesh_provider::workload::ManifestSource {
            manifest: manifest.into(),
            ..Default::default()
        }),
        tombstone: false,
        issued_at: mesh_runtime::now_millis(),
        submitter: String::new(),
        nonce: mesh_provider::workload::new_nonce(),
        rollback_to: None,
    };
    let key = libp2p::identity::Keypair::generate_ed25519();
    let bytes = mesh_provider::workload::encode(&key, record).unwrap().bytes;
    let apply = serde_json::to_value(mesh_protocol::wire::Request::Apply(Box::new(
        mesh_protocol::api::ApplyRequest {
            manifest: manifest.into(),
            records: vec![mesh_protocol::api::SignedRecord {
                bytes,
                data_key: None,
            }],
            ..Default::default()
        },
    )))
    .unwrap();
    let outcomes = send_all(addr, peer, vec![apply]).await;
    match &outcomes[0] {
        Ok(v) => {
            assert_eq!(v["Error"]["status"], 400, "{v}");
            assert!(
                v["Error"]["message"].as_str().unwrap().contains("line"),
                "{v}"
            );
        }
        other => panic!("expected an error answer: {other:?}"),
    }
    assert!(node.mock.instances().is_empty());
}
