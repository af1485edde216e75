//! Signed records as peers send them: workload records (MWR1), provider and node records
//! (MSR1), gossip messages of either kind, and DHT records under their keys.

use mesh_provider::workload::{self, Verified, MAX_CLOCK_SKEW_MS, MAX_REVISION};
use mesh_provider::{keys, signed, RecordError, MAX_RECORD_BYTES};
use mesh_runtime::now_millis;

use super::harness::{mutate_bytes, run, Outcome};
use super::{corpus, envelope, users};

/// What every accepted workload record must satisfy.
fn consistent_workload(v: &Verified, bytes: &[u8]) -> Result<(), String> {
    if v.record.submitter != v.signer.to_string() {
        return Err(format!(
            "submitter {} but signer {}",
            v.record.submitter, v.signer
        ));
    }
    if v.bytes != bytes || !workload::is_workload_record(bytes) {
        return Err("the verified bytes are not the input".into());
    }
    if signed::verify_signature(bytes, None).is_ok() {
        return Err("a workload record also verifies as a provider or node record".into());
    }
    let json = serde_json::to_vec(&v.record).map_err(|e| e.to_string())?;
    match serde_json::from_slice::<workload::WorkloadRecord>(&json) {
        Ok(again) if again == v.record => Ok(()),
        other => Err(format!(
            "the record does not re-encode to itself: {other:?}"
        )),
    }
}

/// `verify` and `verify_at` agree, and what they accept is consistent.
fn check_workload(bytes: &[u8]) -> Outcome {
    let now = now_millis();
    let at = workload::verify_at(bytes, now);
    let v = match workload::verify(bytes) {
        Ok(v) => v,
        Err(e) => {
            if matches!(e, workload::Error::TooLarge(n) if n <= workload::MAX_WORKLOAD_RECORD_BYTES)
            {
                return Err(format!("refused as too large: {e}"));
            }
            return match at {
                Ok(_) => Err(format!("verify_at accepted what verify refused ({e})")),
                Err(_) => Ok(false),
            };
        }
    };
    consistent_workload(&v, bytes)?;
    let (revision, issued_at) = (v.record.revision, v.record.issued_at);
    match at {
        Ok(w) if w == v && revision <= MAX_REVISION && issued_at <= now + MAX_CLOCK_SKEW_MS => {
            Ok(true)
        }
        Err(workload::Error::RevisionTooHigh(r)) if r == revision && r > MAX_REVISION => Ok(true),
        Err(workload::Error::FromTheFuture(_)) if issued_at > now + MAX_CLOCK_SKEW_MS => Ok(true),
        other => Err(format!("verify accepted, verify_at gave {other:?}")),
    }
}

/// `verify_signature`, and `verify` with and without an expected signer, agree.
fn check_signed(bytes: &[u8]) -> Outcome {
    let now = now_millis();
    let expected = users()[0].public().to_peer_id();
    let s = match signed::verify_signature(bytes, None) {
        Ok(s) => s,
        Err(RecordError::TooLarge(n)) if n <= MAX_RECORD_BYTES => return Err("too large?".into()),
        Err(_) => {
            return match signed::verify(bytes, None, now) {
                Ok(_) => Err("verify accepted what verify_signature refused".into()),
                Err(_) => Ok(false),
            };
        }
    };
    if s.record.peer_id() != s.signer.to_string() {
        return Err(format!(
            "names {} but signed by {}",
            s.record.peer_id(),
            s.signer
        ));
    }
    if workload::verify(bytes).is_ok() {
        return Err("a provider or node record also verifies as a workload record".into());
    }
    let json = serde_json::to_vec(&s.record).map_err(|e| e.to_string())?;
    if serde_json::from_slice::<mesh_provider::Record>(&json)
        .ok()
        .as_ref()
        != Some(&s.record)
    {
        return Err("the record does not re-encode to itself".into());
    }
    let live = s.record.expires_at() > now;
    match (signed::verify(bytes, None, now), live) {
        (Ok(v), true) if v == s => {}
        (Err(RecordError::Expired(at)), false) if at == s.record.expires_at() => {}
        (other, _) => {
            return Err(format!(
                "verify gave {other:?} (expires_at {})",
                s.record.expires_at()
            ))
        }
    }
    let with_expected = signed::verify(bytes, Some(&expected), now);
    match with_expected {
        Ok(v) if v.signer != expected => Err("accepted for another expected signer".into()),
        Err(RecordError::WrongSigner { .. }) if s.signer == expected => {
            Err("refused its own signer".into())
        }
        _ => Ok(true),
    }
}

#[test]
fn workload_records() {
    let c = corpus();
    let keys = users();
    run(
        "workload-records",
        &c.workload,
        |rng| {
            let seed = rng.pick(&c.workload);
            envelope::mutate(rng, seed, &c.workload, &c.trees, &keys)
        },
        check_workload,
    );
}

#[test]
fn provider_and_node_records() {
    let c = corpus();
    let keys = users();
    run(
        "provider-node-records",
        &c.signed,
        |rng| {
            let seed = rng.pick(&c.signed);
            envelope::mutate(rng, seed, &c.signed, &c.trees, &keys)
        },
        check_signed,
    );
}

/// A gossip message, dispatched as `on_gossip` does: a workload record by its magic, anything
/// else as a provider or node record.
fn check_gossip(data: &[u8]) -> Outcome {
    if workload::is_workload_record(data) {
        check_workload(data)
    } else {
        check_signed(data)
    }
}

#[test]
fn gossip_messages() {
    let c = corpus();
    let keys = users();
    let all: Vec<Vec<u8>> = c.workload.iter().chain(&c.signed).cloned().collect();
    run(
        "gossip",
        &all,
        |rng| {
            let seed = rng.pick(&all);
            envelope::mutate(rng, seed, &all, &c.trees, &keys)
        },
        check_gossip,
    );
}

/// A Kademlia `PutRecord` (`u16 key length | key | value`), checked as `on_kad_inbound` does:
/// a workload record under its workload's key, a provider or node record under its signer's.
fn check_dht(input: &[u8]) -> Outcome {
    let Some((len, rest)) = input.split_first_chunk::<2>() else {
        return Ok(false);
    };
    let Some((key, value)) = rest.split_at_checked(u16::from_be_bytes(*len) as usize) else {
        return Ok(false);
    };
    if let Some(id) = keys::workload_of_record(key) {
        if keys::record(&id) != key {
            return Err(format!("the key of {id} is not the key it was read from"));
        }
        return match workload::verify(value) {
            Ok(v) if v.record.id == id => check_workload(value),
            _ => Ok(false),
        };
    }
    let Some(signer) = keys::signer_of(key) else {
        return Ok(false);
    };
    let text = std::str::from_utf8(key).map_err(|_| "a signer from a key that is not UTF-8")?;
    if !text.ends_with(&format!("/{signer}")) {
        return Err(format!(
            "signer {signer} is not the end of the key {text:?}"
        ));
    }
    match signed::verify(value, Some(&signer), now_millis()) {
        Ok(s) if s.signer != signer => Err("stored under another signer's key".into()),
        Ok(_) => check_signed(value),
        Err(_) => Ok(false),
    }
}

#[test]
fn dht_records() {
    let c = corpus();
    let keys_ = users();
    let frame =
        |key: Vec<u8>, value: &[u8]| [&(key.len() as u16).to_be_bytes()[..], &key, value].concat();
    let mut seeds: Vec<Vec<u8>> = c
        .built
        .iter()
        .map(|b| frame(keys::record(&b.spec.id()), &b.signed.bytes))
        .collect();
    for value in &c.signed {
        let s = signed::verify_signature(value, None).unwrap();
        let key = match &s.record {
            // A command put under its signer's node key: the DHT filter refuses it (commands
            // go to their node, they are never stored).
            mesh_provider::Record::Node(_)
            | mesh_provider::Record::Command(_)
            | mesh_provider::Record::Suspicion(_) => keys::node(&s.signer),
            mesh_provider::Record::Provider(p) => {
                let (ns, name) = p.workload.split_once('/').unwrap();
                keys::provider(&mesh_protocol::WorkloadId::new(ns, name), &s.signer)
            }
        };
        seeds.push(frame(key, value));
    }
    let tokens: Vec<Vec<u8>> = [
        "/",
        "//",
        "/mesh/1/record/",
        "/mesh/1/provider/",
        "/mesh/1/node/",
        "/mesh/2/",
    ]
    .iter()
    .map(|t| t.as_bytes().to_vec())
    .chain(
        keys_
            .iter()
            .map(|k| k.public().to_peer_id().to_string().into_bytes()),
    )
    .collect();
    let tokens: Vec<&[u8]> = tokens.iter().map(Vec::as_slice).collect();
    let values: Vec<Vec<u8>> = c.workload.iter().chain(&c.signed).cloned().collect();
    run(
        "dht",
        &seeds.clone(),
        |rng| {
            let seed = rng.pick(&seeds);
            let len = u16::from_be_bytes([seed[0], seed[1]]) as usize;
            let (mut key, mut value) = (seed[2..2 + len].to_vec(), seed[2 + len..].to_vec());
            match rng.below(4) {
                0 => mutate_bytes(rng, &mut key, &tokens, &[]),
                1 => value = rng.pick(&values).clone(),
                2 => value = envelope::mutate(rng, &value, &values, &c.trees, &keys_),
                _ => {
                    let mut whole = frame(key, &value);
                    mutate_bytes(rng, &mut whole, &tokens, &seeds);
                    return whole;
                }
            }
            frame(key, &value)
        },
        check_dht,
    );
}
