//! Forged and altered workload records from a raw libp2p peer: every one is refused with a
//! clear error, and nothing is stored, started, published or forwarded.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use mesh_node::records;
use mesh_node::testing::{send_raw, TestNode};
use mesh_protocol::api::{ApplyRequest, SignedRecord};
use mesh_protocol::wire::{ReplicaApply, Request, Response};
use mesh_protocol::WorkloadId;
use mesh_provider::workload::ManifestSource;

const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: victim\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n";

/// Sends `requests` one after the other on the deploy protocol and returns each answer.
async fn send_all(addr: Multiaddr, peer: PeerId, requests: Vec<Request>) -> Vec<Response> {
    send_raw(
        "/mesh/deploy/1",
        Duration::from_secs(20),
        addr,
        peer,
        requests,
    )
    .await
    .into_iter()
    .map(|r| r.unwrap_or_else(|e| panic!("request failed: {e}")))
    .collect()
}

fn signed(user: &Keypair) -> SignedRecord {
    let src = ManifestSource {
        manifest: MANIFEST.into(),
        ..Default::default()
    };
    let built = records::build(user, &src, Some(1), |_| 0, mesh_runtime::now_millis()).unwrap();
    built.into_iter().next().unwrap().signed
}

/// The record with the first occurrence of `from` in its payload replaced by `to` (same
/// length), as a peer that alters a record in flight would send it.
fn altered(record: &SignedRecord, from: &str, to: &str) -> SignedRecord {
    assert_eq!(from.len(), to.len());
    let text = record.bytes.clone();
    let at = text
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap();
    let mut bytes = text;
    bytes[at..at + from.len()].copy_from_slice(to.as_bytes());
    SignedRecord {
        bytes,
        data_key: None,
    }
}

fn apply(record: SignedRecord) -> Request {
    Request::Apply(Box::new(ApplyRequest {
        manifest: MANIFEST.into(),
        records: vec![record],
        ..ApplyRequest::default()
    }))
}

fn replica(record: SignedRecord) -> Request {
    Request::ApplyReplica(Box::new(ReplicaApply {
        correlation: None,
        record,
        workload: WorkloadId::new("default", "victim"),
        slot: 0,
        desired_replicas: 1,
        modules: Vec::new(),
        placement: Vec::new(),
        entry: String::new(),
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_altered_records_are_refused_and_change_nothing() {
    let node = TestNode::start().await;
    let addr: Multiaddr = node.daemon().addresses[0].parse().unwrap();
    let peer: PeerId = node.daemon().node.id().parse().unwrap();
    let user = Keypair::generate_ed25519();
    let good = signed(&user);

    // The manifest inside changed (another image), the replica count raised, a record signed
    // by someone else claiming the user as its submitter, garbage.
    let other_image = altered(&good, "localhost/mesh-test", "localhost/evil-test");
    let more = altered(&good, "\"count\":1", "\"count\":9");
    let mut forged_by = good.clone();
    {
        let attacker = Keypair::generate_ed25519();
        let key = attacker.public().encode_protobuf();
        // Same payload, the attacker's key and signature over it.
        let orig_key_len = u16::from_be_bytes([good.bytes[4], good.bytes[5]]) as usize;
        let sig_at = 6 + orig_key_len;
        let sig_len = u16::from_be_bytes([good.bytes[sig_at], good.bytes[sig_at + 1]]) as usize;
        let payload = &good.bytes[sig_at + 2 + sig_len..];
        let mut msg = b"mesh-workload/1\0".to_vec();
        msg.extend_from_slice(payload);
        let sig = attacker.sign(&msg).unwrap();
        let mut bytes = b"MWR1".to_vec();
        bytes.extend_from_slice(&(key.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&key);
        bytes.extend_from_slice(&(sig.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&sig);
        bytes.extend_from_slice(payload);
        forged_by.bytes = bytes;
    }
    let garbage = SignedRecord {
        bytes: b"MWR1\x00\x05junk".to_vec(),
        data_key: None,
    };
    let hostile = [other_image, more, forged_by, garbage];
    let mut requests: Vec<Request> = hostile.iter().cloned().map(apply).collect();
    requests.extend(hostile.iter().cloned().map(replica));
    let answers = send_all(addr, peer, requests).await;
    for (i, answer) in answers.iter().enumerate() {
        match answer {
            Response::Error { status, message } => {
                assert_eq!(*status, 400, "request {i}: {message}");
                assert!(
                    message.contains("signature")
                        || message.contains("signed by")
                        || message.contains("malformed"),
                    "request {i}: {message}"
                );
            }
            other => panic!("hostile request {i} was accepted: {other:?}"),
        }
    }
    // Nothing stored, nothing started, no record held.
    let store = node.daemon().node.store();
    assert!(store.list_desired().unwrap().is_empty());
    assert!(store.list_records().unwrap().is_empty());
    assert!(node.daemon().mesh.records().list().is_empty());
    assert!(node.mock.instances().is_empty());
    node.stop().await;
}

/// Valid signatures, wrong moment: an apply from a peer that carries no records (a node signs
/// only for its own local API), and a replay of an older record of a workload after a newer
/// one was applied. Both are refused; the replica keeps running the newer version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_peer_applies_and_replayed_older_records_are_refused() {
    let node = TestNode::start().await;
    let addr: Multiaddr = node.daemon().addresses[0].parse().unwrap();
    let peer: PeerId = node.daemon().node.id().parse().unwrap();
    let mesh = &node.daemon().mesh;
    let user = Keypair::generate_ed25519();

    let v1 = signed(&user);
    mesh.apply(match apply(v1.clone()) {
        Request::Apply(r) => *r,
        _ => unreachable!(),
    })
    .await
    .unwrap();
    let src = ManifestSource {
        manifest: MANIFEST.replace("mesh-test:latest", "mesh-test:2"),
        ..Default::default()
    };
    let v2 = records::build(&user, &src, Some(1), |_| 1, mesh_runtime::now_millis())
        .unwrap()
        .remove(0)
        .signed;
    let applied = mesh
        .apply(ApplyRequest {
            manifest: src.manifest.clone(),
            records: vec![v2],
            ..ApplyRequest::default()
        })
        .await
        .unwrap();
    let running = applied.workloads[0].deployment.version.clone();

    let unsigned = Request::Apply(Box::new(ApplyRequest {
        manifest: MANIFEST.replace("victim", "other"),
        ..ApplyRequest::default()
    }));
    let answers = send_all(addr, peer, vec![unsigned, replica(v1.clone()), apply(v1)]).await;
    match &answers[0] {
        Response::Error { status, message } => {
            assert_eq!(*status, 400);
            assert!(message.contains("signed by its submitter"), "{message}");
        }
        other => panic!("an unsigned peer apply was accepted: {other:?}"),
    }
    for answer in &answers[1..] {
        match answer {
            Response::Error { status, message } => {
                assert_eq!(*status, 409, "{message}");
                assert!(message.contains("not newer than revision 2"), "{message}");
            }
            other => panic!("a replayed older record was accepted: {other:?}"),
        }
    }
    let d = node
        .daemon()
        .node
        .view(&WorkloadId::new("default", "victim"), false)
        .unwrap();
    assert_eq!(d.version, running, "the replica still runs revision 2");
    assert!(node
        .daemon()
        .node
        .store()
        .desired(&WorkloadId::new("default", "other"))
        .unwrap()
        .is_none());
    node.stop().await;
}
