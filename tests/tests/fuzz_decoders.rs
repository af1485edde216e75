//! Fuzzing on the stable toolchain: a deterministic mutation fuzzer of every decoder that
//! takes bytes from outside a node (peers, gossip, the DHT, the local API, files), seeded from
//! real encodings made with the repository's own encoders (the examples and the real-world
//! manifests of `testdata/`). Each decoder must return `Ok` or `Err` without panicking, within
//! a second a call, and what it accepts must be consistent (signer = named author, re-encoded
//! values decode to themselves, sealed manifests open only unaltered).
//!
//! Groups (one test each):
//! - `records::workload_records`: `workload::verify` / `verify_at` (MWR1; the signed envelope);
//! - `records::provider_and_node_records`: `signed::verify` / `verify_signature` (MSR1);
//! - `records::gossip_messages`: the dispatch of `on_gossip` over both kinds;
//! - `records::dht_records`: `keys::workload_of_record` / `signer_of` with the record stored
//!   under the key, as a node checks a Kademlia `PutRecord`;
//! - `open::sealed_manifests`: `sealing::open` with real data keys;
//! - `open::opened_records`: `mesh_node::records::open` (verify, unseal, parse, version);
//! - `wire::peer_requests` / `wire::peer_responses`: `wire::Request` / `Response` through the
//!   nodes' libp2p CBOR codec (cbor4ii), at the nodes' size limits;
//! - `wire::local_api_bodies`: `ApplyRequest`, `DeleteRequest`, `SignedRecord` (JSON);
//! - `files::trust_files`: `trust::file::parse`;
//! - `files::mesh_key_files`: `daemon::load_mesh_key`.
//!
//! Each runs `MESH_FUZZ_SECONDS` (default 3) or `MESH_FUZZ_ITERATIONS`, whichever ends first;
//! `MESH_FUZZ_SEED` changes the sequence (records carry random nonces, so a rerun is close to,
//! not exactly, the same inputs: a failing input is written to the temporary directory and
//! its path printed). A longer run:
//! `MESH_FUZZ_SECONDS=600 cargo test -p mesh-tests --test fuzz_decoders`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

#[path = "fuzz_decoders/envelope.rs"]
mod envelope;
#[path = "fuzz_decoders/files.rs"]
mod files;
#[path = "fuzz_decoders/harness.rs"]
mod harness;
#[path = "fuzz_decoders/open.rs"]
mod open;
#[path = "fuzz_decoders/records.rs"]
mod records;
#[path = "fuzz_decoders/seeds.rs"]
mod seeds;
#[path = "fuzz_decoders/wire.rs"]
mod wire;

use std::sync::OnceLock;

use libp2p::identity::Keypair;
use mesh_node::records::Built;
use mesh_protocol::api::SignedRecord;
use mesh_protocol::wire::{Request, Response};
use serde_json::Value;

/// Seeds shared by the groups, built once.
#[derive(Debug)]
pub struct Corpus {
    pub built: Vec<Built>,
    /// Workload records as they travel (with data keys), tombstones and rollbacks included.
    pub records: Vec<SignedRecord>,
    /// Their bytes (MWR1).
    pub workload: Vec<Vec<u8>>,
    /// Provider and node records (MSR1).
    pub signed: Vec<Vec<u8>>,
    /// Every payload as a JSON tree: subtrees to graft.
    pub trees: Vec<Value>,
    pub requests: Vec<Request>,
    pub responses: Vec<Response>,
}

/// The keys of the seeds' signers.
pub fn users() -> Vec<Keypair> {
    (1..=3).map(seeds::user).collect()
}

pub fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let built = seeds::built();
        let records = seeds::signed_records(&built);
        let workload: Vec<Vec<u8>> = records.iter().map(|r| r.bytes.clone()).collect();
        let signed = seeds::provider_and_node_records(&built);
        envelope::check_layout(&workload, &users());
        envelope::check_layout(&signed, &users());
        let trees = workload
            .iter()
            .chain(&signed)
            .map(|b| serde_json::from_slice(&envelope::split(b).payload).unwrap())
            .collect();
        let (requests, responses) = seeds::wire(&built, &records, &signed);
        Corpus {
            built,
            records,
            workload,
            signed,
            trees,
            requests,
            responses,
        }
    })
}
