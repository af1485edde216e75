//! The signed envelope (`MWR1`/`MSR1` | key | signature | JSON payload), taken apart and put
//! together again, so that a mutated payload can be signed again and reach the decoding
//! behind the signature check. The layout is the one `mesh_provider`'s private `envelope`
//! module writes: [`check_layout`] proves this copy gives byte-identical records.

use libp2p::identity::Keypair;
use serde_json::Value;

use super::harness::{mutate_bytes, mutate_json, Rng};

/// Magic and signature domain of each kind.
pub const WORKLOAD: (&[u8; 4], &[u8]) = (b"MWR1", b"mesh-workload/1\0");
pub const RECORD: (&[u8; 4], &[u8]) = (b"MSR1", b"mesh-record/1\0");

/// Field names of the payloads, for inserted entries.
pub const FIELDS: &[&str] = &[
    "id",
    "revision",
    "kind",
    "spec_version",
    "replicas",
    "modules",
    "source",
    "tombstone",
    "issued_at",
    "submitter",
    "nonce",
    "rollback_to",
    "type",
    "peer_id",
    "expires_at",
    "workload",
    "version",
    "engines",
    "withdrawn",
    "slot",
    "plain",
    "sealed",
    "deleted",
    "manifest",
    "env",
];

const TOKENS: &[&[u8]] = &[
    b"MWR1",
    b"MSR1",
    b"\x00\x24",
    b"\x00\x40",
    b"\xff\xff",
    b"\x00\x00",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"\\u0000",
    b"\\ud800",
    b"\"sealed\"",
    b"\"every-node\"",
    b"{\"count\":4294967295}",
];

#[derive(Debug, Clone)]
pub struct Parts {
    pub magic: [u8; 4],
    pub key: Vec<u8>,
    pub sig: Vec<u8>,
    pub payload: Vec<u8>,
}

/// Splits a well-formed envelope (a seed).
pub fn split(bytes: &[u8]) -> Parts {
    let u16_at = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]) as usize;
    let key_len = u16_at(4);
    let sig_at = 6 + key_len;
    let sig_len = u16_at(sig_at);
    Parts {
        magic: bytes[..4].try_into().expect("4 bytes"),
        key: bytes[6..sig_at].to_vec(),
        sig: bytes[sig_at + 2..sig_at + 2 + sig_len].to_vec(),
        payload: bytes[sig_at + 2 + sig_len..].to_vec(),
    }
}

pub fn join(p: &Parts) -> Vec<u8> {
    let mut out = p.magic.to_vec();
    out.extend_from_slice(&(p.key.len() as u16).to_be_bytes());
    out.extend_from_slice(&p.key);
    out.extend_from_slice(&(p.sig.len() as u16).to_be_bytes());
    out.extend_from_slice(&p.sig);
    out.extend_from_slice(&p.payload);
    out
}

/// Signs `payload` under `domain` and wraps it with `magic`.
pub fn seal(magic: &[u8; 4], domain: &[u8], key: &Keypair, payload: &[u8]) -> Vec<u8> {
    let msg = [domain, payload].concat();
    join(&Parts {
        magic: *magic,
        key: key.public().encode_protobuf(),
        sig: key.sign(&msg).expect("ed25519 signs anything"),
        payload: payload.to_vec(),
    })
}

fn kind_of(magic: &[u8; 4]) -> (&'static [u8; 4], &'static [u8]) {
    if magic == WORKLOAD.0 {
        WORKLOAD
    } else {
        RECORD
    }
}

/// Every seed, signed again by this copy of the layout, is the same bytes (ed25519 signatures
/// are deterministic): the envelopes the mutator signs are the ones the encoders make.
pub fn check_layout(seeds: &[Vec<u8>], keys: &[Keypair]) {
    for seed in seeds {
        let p = split(seed);
        let key = signer(&p, keys).expect("seeds are signed by the fuzz users");
        let (magic, domain) = kind_of(&p.magic);
        assert_eq!(
            &seal(magic, domain, key, &p.payload),
            seed,
            "envelope layout"
        );
    }
}

fn signer<'a>(p: &Parts, keys: &'a [Keypair]) -> Option<&'a Keypair> {
    keys.iter().find(|k| k.public().encode_protobuf() == p.key)
}

/// A mutated envelope: raw bytes; a payload changed (as a JSON tree or as text) and signed
/// again, by its signer or by another key (then sometimes naming that key as its author); a
/// key or signature altered; signed for the other kind; or another key put in.
pub fn mutate(
    rng: &mut Rng,
    seed: &[u8],
    donors: &[Vec<u8>],
    trees: &[Value],
    keys: &[Keypair],
) -> Vec<u8> {
    let mut p = split(seed);
    let (magic, domain) = kind_of(&p.magic);
    let own = signer(&p, keys).expect("seeds are signed by the fuzz users");
    match rng.below(8) {
        0 | 1 => {
            let mut bytes = seed.to_vec();
            mutate_bytes(rng, &mut bytes, TOKENS, donors);
            bytes
        }
        2..=4 => {
            let key = if rng.chance(4) { rng.pick(keys) } else { own };
            let mut tree: Value =
                serde_json::from_slice(&p.payload).expect("seed payloads are JSON");
            if !rng.chance(4) {
                mutate_json(rng, &mut tree, trees, FIELDS);
            }
            if rng.chance(2) {
                let me = key.public().to_peer_id().to_string();
                for field in ["submitter", "peer_id"] {
                    if let Some(v) = tree.get_mut(field) {
                        *v = Value::String(me.clone());
                    }
                }
            }
            let mut payload = serde_json::to_vec(&tree).expect("a tree serialises");
            if rng.chance(3) {
                mutate_bytes(rng, &mut payload, TOKENS, &[]);
            }
            seal(magic, domain, key, &payload)
        }
        5 => {
            let field = if rng.chance(2) {
                &mut p.key
            } else {
                &mut p.sig
            };
            mutate_bytes(
                rng,
                field,
                &[b"\x08\x01\x12\x20", b"\x08\x00", b"\x08\x02"],
                &[],
            );
            join(&p)
        }
        6 => {
            // Signed for the other kind: under its domain, or its magic, or both.
            let (other_magic, other_domain) = if magic == WORKLOAD.0 {
                RECORD
            } else {
                WORKLOAD
            };
            let (m, d) = match rng.below(3) {
                0 => (magic, other_domain),
                1 => (other_magic, domain),
                _ => (other_magic, other_domain),
            };
            seal(m, d, own, &p.payload)
        }
        _ => {
            p.key = rng.pick(keys).public().encode_protobuf();
            join(&p)
        }
    }
}
