//! Sealed manifests (`sealing::open` with real data keys) and records opened for running
//! (`mesh_node::records::open`: verify, unseal, parse, check the stated spec version).

use std::cell::RefCell;

use libp2p::identity::Keypair;
use mesh_node::records::{self, Built};
use mesh_protocol::api::SignedRecord;
use mesh_protocol::WorkloadId;
use mesh_provider::sealing::{self, DataKey, Sealed};
use mesh_provider::workload::{self, ManifestSource, Source};

use super::harness::{mutate_bytes, run, Outcome, Rng};
use super::{corpus, envelope, users};

const YAML: &[&[u8]] = &[
    b": ",
    b"- ",
    b"\n",
    b"  ",
    b"&a ",
    b"*a",
    b"<<: *a\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b"'",
    b"\"",
    b"#",
    b"!reset ",
    b"${A:-",
    b"${PIHOLE_PW}",
    b"~",
    b"65536",
    b"replicas: 70\n",
    b"---\n",
    b"kind: Secret\n",
    b"name: x\n",
    b"namespace: kube-system\n",
    b"hostNetwork: true\n",
];

/// A sealed manifest as the fuzzer hands it over: `(id, key bytes, sealed)` in JSON.
type Case = (WorkloadId, Vec<u8>, Sealed);

#[test]
fn sealed_manifests() {
    let c = corpus();
    let known: Vec<(Case, ManifestSource)> = c
        .built
        .iter()
        .filter_map(|b| {
            let key = b.opened.key.as_ref()?;
            let Source::Sealed(s) = &b.opened.verified.record.source else {
                return None;
            };
            Some((
                (b.spec.id(), key.as_bytes().to_vec(), s.clone()),
                b.opened.source.clone(),
            ))
        })
        .collect();
    assert!(!known.is_empty());
    let seeds: Vec<Vec<u8>> = known
        .iter()
        .map(|(case, _)| serde_json::to_vec(case).unwrap())
        .collect();
    // The last source the mutator sealed again, under a real key: it must open to it.
    let resealed: RefCell<Option<(Case, ManifestSource)>> = RefCell::new(None);
    run(
        "sealed-manifests",
        &seeds,
        |rng| {
            let ((mut id, mut key, mut sealed), source) = rng.pick(&known).clone();
            let (other, _) = rng.pick(&known);
            match rng.below(8) {
                0 => mutate_bytes(rng, &mut sealed.nonce, &[], &[]),
                1 => mutate_bytes(
                    rng,
                    &mut sealed.ciphertext,
                    &[],
                    std::slice::from_ref(&other.2.ciphertext),
                ),
                2 => sealed.nonce = other.2.nonce.clone(),
                3 => sealed.ciphertext = other.2.ciphertext.clone(),
                4 if rng.chance(2) => id = other.0.clone(),
                4 => id.name.push('x'),
                5 => mutate_bytes(rng, &mut key, &[], std::slice::from_ref(&other.1)),
                6 => {
                    let mut source = source;
                    let mut text = source.manifest.into_bytes();
                    mutate_bytes(rng, &mut text, YAML, &[]);
                    source.manifest = String::from_utf8_lossy(&text).into_owned();
                    source.env.insert("A".into(), "\u{0}".repeat(rng.below(3)));
                    let data_key = DataKey::from_bytes(&key).unwrap();
                    sealed = sealing::seal(&data_key, &id, &source);
                    *resealed.borrow_mut() =
                        Some(((id.clone(), key.clone(), sealed.clone()), source));
                }
                _ => {}
            }
            serde_json::to_vec(&(id, key, sealed)).unwrap()
        },
        |input| {
            let Ok(case) = serde_json::from_slice::<Case>(input) else {
                return Ok(false);
            };
            let expected = known
                .iter()
                .chain(resealed.borrow().as_ref())
                .find(|(k, _)| *k == case)
                .map(|(_, source)| source.clone());
            let (id, key, sealed) = case;
            let key = match DataKey::from_bytes(&key) {
                Ok(k) => k,
                Err(_) if key.len() == 32 => return Err("a 32-byte data key refused".into()),
                Err(_) => return Ok(false),
            };
            match (sealing::open(&key, &id, &sealed), expected) {
                (Ok(got), Some(want)) if got == want => Ok(true),
                (Ok(_), _) => Err("an altered sealed manifest opened".into()),
                (Err(e), Some(_)) => Err(format!("an unaltered sealed manifest was refused: {e}")),
                (Err(_), None) => Ok(false),
            }
        },
    );
}

fn key_of(b: &Built, keys: &[Keypair]) -> Keypair {
    keys.iter()
        .find(|k| k.public().to_peer_id() == b.opened.verified.signer)
        .expect("seeds are signed by the fuzz users")
        .clone()
}

/// A record whose manifest was edited, signed again by its submitter; half the time with the
/// spec version its edited manifest parses to, so that it opens when the edit still parses.
fn edited(rng: &mut Rng, b: &Built, donors: &[Vec<u8>], keys: &[Keypair]) -> SignedRecord {
    let mut src = b.opened.source.clone();
    let mut text = src.manifest.into_bytes();
    mutate_bytes(rng, &mut text, YAML, donors);
    src.manifest = String::from_utf8_lossy(&text).into_owned();
    if rng.chance(6) {
        src.name = Some(["web", "", "a/b", "x"][rng.below(4)].into());
    }
    let mut record = b.opened.verified.record.clone();
    if rng.chance(2) {
        let spec = records::parse_source(&src)
            .ok()
            .and_then(|specs| specs.into_iter().find(|s| s.id() == record.id));
        if let Some(spec) = spec {
            record.spec_version = match &b.opened.key {
                Some(k) => spec.seal_keyed(k.as_bytes()).version,
                None => spec.version,
            };
        }
    }
    record.source = match &b.opened.key {
        Some(k) => Source::Sealed(sealing::seal(k, &record.id, &src)),
        None => Source::Plain(src),
    };
    SignedRecord {
        bytes: workload::encode(&key_of(b, keys), record)
            .map(|v| v.bytes)
            .unwrap_or_default(),
        data_key: b.signed.data_key.clone(),
    }
}

fn check_open(input: &[u8]) -> Outcome {
    let Ok(signed) = serde_json::from_slice::<SignedRecord>(input) else {
        return Ok(false);
    };
    let Ok(o) = records::open(&signed) else {
        return Ok(false);
    };
    let r = &o.verified.record;
    if r.submitter != o.verified.signer.to_string() {
        return Err(format!(
            "submitter {} but signer {}",
            r.submitter, o.verified.signer
        ));
    }
    if o.spec.id() != r.id || o.spec.version != r.spec_version {
        return Err(format!(
            "opened {} {} for a record of {} {}",
            o.spec.id(),
            o.spec.version,
            r.id,
            r.spec_version
        ));
    }
    match (&r.source, &o.key) {
        (Source::Plain(s), None) if *s == o.source => {}
        (Source::Sealed(s), Some(k)) if sealing::open(k, &r.id, s).as_ref() == Ok(&o.source) => {}
        _ => return Err("the opened source is not the record's".into()),
    }
    match records::open_verified(o.verified.clone(), signed.data_key.as_deref()) {
        Ok(again) if again.spec == o.spec => Ok(true),
        other => Err(format!("opening the same record again gave {other:?}")),
    }
}

#[test]
fn opened_records() {
    let c = corpus();
    let keys = users();
    let runnable: Vec<&SignedRecord> = c
        .records
        .iter()
        .filter(|r| !workload::verify(&r.bytes).unwrap().record.tombstone)
        .collect();
    let seeds: Vec<Vec<u8>> = runnable
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap())
        .collect();
    let manifests: Vec<Vec<u8>> = c
        .built
        .iter()
        .map(|b| b.opened.source.manifest.clone().into_bytes())
        .collect();
    run(
        "opened-records",
        &seeds,
        |rng| {
            let b = rng.pick(&c.built);
            let mut signed = b.signed.clone();
            match rng.below(4) {
                0 => {
                    signed.bytes =
                        envelope::mutate(rng, &signed.bytes, &c.workload, &c.trees, &keys)
                }
                1 => signed = edited(rng, b, &manifests, &keys),
                2 => match rng.below(4) {
                    0 => signed.data_key = None,
                    1 => signed.data_key = rng.pick(&c.records).data_key.clone(),
                    _ => mutate_bytes(rng, signed.data_key.get_or_insert_with(Vec::new), &[], &[]),
                },
                _ => {
                    // Another record's source under this record's id, signed by its submitter.
                    let mut record = b.opened.verified.record.clone();
                    record.source = rng.pick(&c.built).opened.verified.record.source.clone();
                    signed.bytes = workload::encode(&key_of(b, &keys), record).unwrap().bytes;
                }
            }
            serde_json::to_vec(&signed).unwrap()
        },
        check_open,
    );
}
