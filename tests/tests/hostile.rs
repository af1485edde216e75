//! Hostile peers: a raw libp2p peer sends oversized and malformed requests on the node's
//! request-response protocol. Each is refused, the node stays up, and it still answers a
//! well-formed request afterwards.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use mesh_node::testing::{raw_peer, TestNode};
use serde_json::{json, Value};

type Raw = request_response::cbor::Behaviour<Value, Value>;

/// What came back for one request.
#[derive(Debug)]
enum Outcome {
    Answer(Value),
    Failure(String),
}

async fn send_all(addr: Multiaddr, peer: PeerId, requests: Vec<Value>) -> Vec<Outcome> {
    let codec = request_response::cbor::codec::Codec::<Value, Value>::default()
        .set_request_size_maximum(64 << 20)
        .set_response_size_maximum(64 << 20);
    let behaviour: Raw = request_response::Behaviour::with_codec(
        codec,
        [(
            StreamProtocol::new("/mesh/rpc/1"),
            ProtocolSupport::Outbound,
        )],
        request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
    );
    let mut swarm = raw_peer(libp2p::identity::Keypair::generate_ed25519(), behaviour);
    swarm.dial(addr.clone()).unwrap();
    let mut outcomes = Vec::new();
    for request in requests {
        let id =
            swarm
                .behaviour_mut()
                .send_request_with_addresses(&peer, request, vec![addr.clone()]);
        let outcome = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message:
                            request_response::Message::Response {
                                request_id,
                                response,
                            },
                        ..
                    }) if request_id == id => return Outcome::Answer(response),
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                        request_id,
                        error,
                        ..
                    }) if request_id == id => return Outcome::Failure(error.to_string()),
                    _ => {}
                }
            }
        })
        .await
        .expect("every request ends, answered or failed, within its timeout");
        outcomes.push(outcome);
    }
    outcomes
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
            Outcome::Failure(why) => assert!(!why.is_empty()),
            Outcome::Answer(v) => panic!("hostile request {i} was answered: {v}"),
        }
    }
    // The same peer, right after: a well-formed request is answered.
    match &outcomes[4] {
        Outcome::Answer(v) => assert_eq!(v["Engines"][0]["name"], "mock", "{v}"),
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
        Outcome::Answer(v) => {
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
