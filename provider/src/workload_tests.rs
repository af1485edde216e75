#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use super::*;
use crate::sealing::{open, seal};

fn record(id: &str) -> WorkloadRecord {
    WorkloadRecord {
        id: WorkloadId::new("default", id),
        revision: 3,
        kind: WorkloadKind::Pod,
        spec_version: "sha256:ab".into(),
        replicas: Replicas::Count(2),
        modules: Vec::new(),
        source: Source::Plain(ManifestSource {
            manifest: "apiVersion: v1\nkind: Pod\n".into(),
            ..Default::default()
        }),
        tombstone: false,
        issued_at: 1_000,
        submitter: String::new(),
        nonce: new_nonce(),
        rollback_to: None,
    }
}

#[test]
fn a_signed_record_verifies_and_names_its_signer() {
    let key = Keypair::generate_ed25519();
    let signed = encode(&key, record("web")).unwrap();
    let got = verify(&signed.bytes).unwrap();
    assert_eq!(got.signer, key.public().to_peer_id());
    assert_eq!(got.record.submitter, key.public().to_peer_id().to_string());
    assert_eq!(got.record.revision, 3);
    assert!(is_workload_record(&signed.bytes));
}

#[test]
fn any_altered_byte_of_the_payload_is_refused() {
    let key = Keypair::generate_ed25519();
    let bytes = encode(&key, record("web")).unwrap().bytes;
    // Every byte of the payload (after magic, key and signature) changed in turn.
    let payload_start = bytes.len()
        - serde_json::to_vec(&verify(&bytes).unwrap().record)
            .unwrap()
            .len();
    for i in payload_start..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        assert!(verify(&bad).is_err(), "byte {i} altered was accepted");
    }
}

#[test]
fn a_revision_raised_by_someone_else_is_refused() {
    let key = Keypair::generate_ed25519();
    let mut bytes = encode(&key, record("web")).unwrap().bytes;
    let from = b"\"revision\":3";
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    bytes[at + from.len() - 1] = b'9';
    assert_eq!(verify(&bytes), Err(Error::BadSignature));
}

#[test]
fn a_record_resigned_by_another_key_under_the_first_name_is_refused() {
    let owner = Keypair::generate_ed25519();
    let forger = Keypair::generate_ed25519();
    // The forger signs a payload that claims the owner as submitter.
    let mut forged = record("web");
    forged.submitter = owner.public().to_peer_id().to_string();
    let payload = serde_json::to_vec(&forged).unwrap();
    let mut msg = envelope::WORKLOAD.domain.to_vec();
    msg.extend_from_slice(&payload);
    let sig = forger.sign(&msg).unwrap();
    let key = forger.public().encode_protobuf();
    let mut bytes = envelope::WORKLOAD.magic.to_vec();
    bytes.extend_from_slice(&(key.len() as u16).to_be_bytes());
    bytes.extend_from_slice(&key);
    bytes.extend_from_slice(&(sig.len() as u16).to_be_bytes());
    bytes.extend_from_slice(&sig);
    bytes.extend_from_slice(&payload);
    assert!(matches!(verify(&bytes), Err(Error::WrongSigner { .. })));
}

#[test]
fn a_provider_record_signature_does_not_verify_as_a_workload_record() {
    // Same key, same payload bytes, other domain: refused.
    let key = Keypair::generate_ed25519();
    let mut r = record("web");
    r.submitter = key.public().to_peer_id().to_string();
    let payload = serde_json::to_vec(&r).unwrap();
    let mut msg = b"mesh-record/1\0".to_vec();
    msg.extend_from_slice(&payload);
    let sig = key.sign(&msg).unwrap();
    let pk = key.public().encode_protobuf();
    let mut bytes = envelope::WORKLOAD.magic.to_vec();
    bytes.extend_from_slice(&(pk.len() as u16).to_be_bytes());
    bytes.extend_from_slice(&pk);
    bytes.extend_from_slice(&(sig.len() as u16).to_be_bytes());
    bytes.extend_from_slice(&sig);
    bytes.extend_from_slice(&payload);
    assert_eq!(verify(&bytes), Err(Error::BadSignature));
}

#[test]
fn truncated_garbage_and_oversize_input_are_refused_without_panic() {
    let key = Keypair::generate_ed25519();
    let bytes = encode(&key, record("web")).unwrap().bytes;
    for len in 0..bytes.len() {
        assert!(
            verify(&bytes[..len]).is_err(),
            "prefix of {len} bytes accepted"
        );
    }
    assert!(matches!(
        verify(&vec![0u8; MAX_WORKLOAD_RECORD_BYTES + 1]),
        Err(Error::TooLarge(_))
    ));
    let mut huge = record("web");
    if let Source::Plain(s) = &mut huge.source {
        s.manifest = "x".repeat(MAX_WORKLOAD_RECORD_BYTES);
    }
    assert!(matches!(encode(&key, huge), Err(Error::TooLarge(_))));
}

#[test]
fn the_data_key_is_stable_per_user_and_workload_and_differs_otherwise() {
    let alice = Keypair::generate_ed25519();
    let bob = Keypair::generate_ed25519();
    let web = WorkloadId::new("default", "web");
    let db = WorkloadId::new("default", "db");
    let k = DataKey::derive(&alice, &web).unwrap();
    assert_eq!(k, DataKey::derive(&alice, &web).unwrap());
    assert_ne!(k, DataKey::derive(&alice, &db).unwrap());
    assert_ne!(k, DataKey::derive(&bob, &web).unwrap());
    assert_eq!(format!("{k:?}"), "DataKey(…)");
}

#[test]
fn a_sealed_manifest_opens_only_with_its_key_and_workload() {
    let alice = Keypair::generate_ed25519();
    let web = WorkloadId::new("default", "web");
    let key = DataKey::derive(&alice, &web).unwrap();
    let source = ManifestSource {
        manifest: "kind: Secret\nstringData:\n  password: hunter2\n".into(),
        ..Default::default()
    };
    let sealed = seal(&key, &web, &source);
    let text = serde_json::to_string(&sealed).unwrap();
    assert!(!text.contains("hunter2"));
    // Random nonces: the same source never seals to the same bytes.
    assert_ne!(sealed, seal(&key, &web, &source));
    assert_eq!(open(&key, &web, &sealed).unwrap(), source);
    let other = DataKey::derive(&alice, &WorkloadId::new("default", "db")).unwrap();
    assert_eq!(open(&other, &web, &sealed), Err(SealError::Open));
    // Moved into another workload's record: refused too.
    assert_eq!(
        open(&key, &WorkloadId::new("default", "db"), &sealed),
        Err(SealError::Open)
    );
    let mut altered = sealed.clone();
    altered.ciphertext[0] ^= 1;
    assert_eq!(open(&key, &web, &altered), Err(SealError::Open));
}

#[test]
fn same_desire_ignores_revision_and_time() {
    let a = record("web");
    let mut b = a.clone();
    b.revision = 9;
    b.issued_at = 5;
    assert!(a.same_desire(&b));
    b.replicas = Replicas::Count(3);
    assert!(!a.same_desire(&b));
}

#[test]
fn absurd_revisions_and_future_records_are_refused_from_elsewhere() {
    let key = Keypair::generate_ed25519();
    let mut r = record("web");
    r.revision = u64::MAX;
    let bytes = encode(&key, r).unwrap().bytes;
    assert!(verify(&bytes).is_ok());
    assert_eq!(
        verify_at(&bytes, 1_000),
        Err(Error::RevisionTooHigh(u64::MAX))
    );
    let mut r = record("web");
    r.issued_at = 10_000_000;
    let bytes = encode(&key, r).unwrap().bytes;
    assert!(matches!(
        verify_at(&bytes, 1_000),
        Err(Error::FromTheFuture(_))
    ));
    assert!(verify_at(&bytes, 10_000_000).is_ok());
}

#[test]
fn at_an_equal_revision_every_node_picks_the_same_record() {
    let alice = Keypair::generate_ed25519();
    let bob = Keypair::generate_ed25519();
    let a = encode(&alice, record("web")).unwrap();
    let b = encode(&bob, record("web")).unwrap();
    assert_ne!(supersedes(&a, &b), supersedes(&b, &a), "exactly one wins");
    let mut t = record("web");
    t.tombstone = true;
    let t = encode(&bob, t).unwrap();
    assert!(
        supersedes(&t, &a) && !supersedes(&a, &t),
        "a tombstone wins a tie"
    );
    let mut newer = record("web");
    newer.revision = 4;
    let newer = encode(&alice, newer).unwrap();
    assert!(supersedes(&newer, &t));
    assert!(!supersedes(&a, &a));
}
