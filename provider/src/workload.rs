//! Workload records: the desired state of a workload as a signed mesh object.
//!
//! `meshctl` builds one [`WorkloadRecord`] per workload of a manifest and signs it with the
//! user's key; every node verifies it before it stores, forwards or acts on it, so no node can
//! forge or alter the desired state. Encoding (integers big-endian):
//!
//! ```text
//! "MWR1" | u16 key_len | public key (libp2p protobuf encoding) | u16 sig_len | signature | payload (JSON)
//! ```
//!
//! The signature covers `"mesh-workload/1\0" || payload`: the domain keeps a signature made
//! for a provider record, a request or anything else from ever verifying as a workload
//! record. The payload is verified as received (never re-encoded), so the JSON encoder's
//! choices cannot make a valid record fail; the submitter named inside must be the signer.
//!
//! Secrets: a manifest that carries Secret values or interpolation variables travels
//! [`Source::Sealed`] (XChaCha20-Poly1305 under the workload's [`DataKey`]), and its spec
//! version is then keyed by the same key (see `WorkloadSpec::seal_keyed`), so neither the
//! record nor any version string lets a weak password be guessed offline.

use libp2p_identity::{Keypair, PeerId};
use mesh_protocol::api::{ApplyRequest, BundledModule};
use mesh_protocol::{UnixMillis, WorkloadId, WorkloadKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::sealing::{DataKey, SealError, Sealed};

use crate::envelope;

/// Largest encoded workload record. The manifest travels inside it, so this bounds the
/// manifests the mesh holds; Kademlia and gossip limits are set above it.
pub const MAX_WORKLOAD_RECORD_BYTES: usize = 64 * 1024;

/// Highest revision a record may carry: a workload is never applied four billion times, and a
/// record at `u64::MAX` would freeze its workload forever (nothing could be newer).
pub const MAX_REVISION: u64 = u32::MAX as u64;

/// How far in the future a record's `issued_at` may lie (clock skew between machines). A
/// record from further ahead would never age out of the book.
pub const MAX_CLOCK_SKEW_MS: UnixMillis = 10 * 60 * 1000;

/// How long a tombstone is kept after the delete, so that a replica that comes back late (a
/// node that was cut off) meets it and cannot resurrect the workload. Far beyond any TTL.
pub const TOMBSTONE_TTL_MS: UnixMillis = 7 * 24 * 3600 * 1000;

/// How many replicas the mesh should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Replicas {
    /// Slots `0..n`.
    Count(u32),
    /// One on every capable node (DaemonSet).
    EveryNode,
}

impl Replicas {
    pub fn count(&self) -> Option<u32> {
        match self {
            Replicas::Count(n) => Some(*n),
            Replicas::EveryNode => None,
        }
    }
}

impl std::fmt::Display for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Replicas::Count(n) => write!(f, "{n}"),
            Replicas::EveryNode => f.write_str("every capable node"),
        }
    }
}

/// What a node parses to get the spec: exactly what `meshctl` read and sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestSource {
    pub manifest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_name: Option<String>,
    /// Compose interpolation variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Modules named by path, with their digests (never their bytes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<BundledModule>,
}

impl ManifestSource {
    /// What an apply request asks to run, as a record carries it: the modules by path and
    /// digest only (no bytes, no provider hints).
    pub fn of(req: &ApplyRequest) -> Self {
        Self {
            manifest: req.manifest.clone(),
            name: req.name.clone(),
            default_name: req.default_name.clone(),
            env: req.env.clone(),
            modules: req
                .modules
                .iter()
                .map(|m| BundledModule {
                    bytes: None,
                    providers: Vec::new(),
                    ..m.clone()
                })
                .collect(),
        }
    }
}

/// The manifest, in clear or sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Plain(ManifestSource),
    Sealed(Sealed),
    /// A tombstone carries no manifest.
    Deleted,
}

/// The desired state of one workload, as signed by its submitter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadRecord {
    pub id: WorkloadId,
    /// Strictly increasing per workload; a node keeps the highest it has seen.
    pub revision: u64,
    pub kind: WorkloadKind,
    /// The spec version a node's parse of the source must give (keyed when sealed).
    pub spec_version: String,
    pub replicas: Replicas,
    /// Module digests the workload runs (`sha256:…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<String>,
    pub source: Source,
    /// A delete: the workload should run nowhere.
    #[serde(default)]
    pub tombstone: bool,
    pub issued_at: UnixMillis,
    /// Key id (peer-id form) of the signer.
    pub submitter: String,
    /// 16 random bytes (hex) `meshctl` draws for each record it signs: a node refuses a
    /// request whose record it has seen before (a replay), within the allowed clock skew.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    /// A signed rollback: this revision brings back the content of that earlier revision
    /// (`meshctl rollback`). A node that knows that revision checks the content is its.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<u64>,
}

impl WorkloadRecord {
    /// A tombstone for `id` at `revision`.
    pub fn tombstone(id: WorkloadId, revision: u64, kind: WorkloadKind, now: UnixMillis) -> Self {
        Self {
            id,
            revision,
            kind,
            spec_version: String::new(),
            replicas: Replicas::Count(0),
            modules: Vec::new(),
            source: Source::Deleted,
            tombstone: true,
            issued_at: now,
            submitter: String::new(),
            nonce: new_nonce(),
            rollback_to: None,
        }
    }

    /// Whether `other` asks for the same thing (content and replicas), whatever its revision.
    pub fn same_desire(&self, other: &WorkloadRecord) -> bool {
        self.tombstone == other.tombstone
            && self.spec_version == other.spec_version
            && self.replicas == other.replicas
    }

    /// Whether a tombstone is past [`TOMBSTONE_TTL_MS`] and may be forgotten.
    pub fn tombstone_expired(&self, now: UnixMillis) -> bool {
        self.tombstone && self.issued_at.saturating_add(TOMBSTONE_TTL_MS) <= now
    }
}

/// A fresh record nonce: 16 random bytes from the OS, in hex.
pub fn new_nonce() -> String {
    use chacha20poly1305::aead::rand_core::RngCore as _;
    let mut bytes = [0u8; 16];
    chacha20poly1305::aead::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a workload record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("malformed workload record: {0}")]
    Malformed(String),
    #[error("workload record of {0} bytes exceeds the {MAX_WORKLOAD_RECORD_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("workload record signature does not verify (altered or forged)")]
    BadSignature,
    #[error("workload record names submitter {claimed} but is signed by {signer}")]
    WrongSigner { claimed: String, signer: String },
    #[error("workload record revision {0} is beyond the highest allowed ({MAX_REVISION})")]
    RevisionTooHigh(u64),
    #[error("workload record issued {0} ms in the future (clocks more than 10 min apart?)")]
    FromTheFuture(UnixMillis),
}

/// A verified record, its signer and the exact bytes it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub record: WorkloadRecord,
    pub signer: PeerId,
    pub bytes: Vec<u8>,
}

/// Whether `bytes` look like a workload record (as opposed to a provider or node record).
pub fn is_workload_record(bytes: &[u8]) -> bool {
    bytes.starts_with(envelope::WORKLOAD.magic)
}

/// Signs `record` with `keypair` (setting its submitter) and encodes it.
pub fn encode(keypair: &Keypair, mut record: WorkloadRecord) -> Result<Verified, Error> {
    let signer = keypair.public().to_peer_id();
    record.submitter = signer.to_string();
    let payload = serde_json::to_vec(&record).map_err(|e| Error::Malformed(e.to_string()))?;
    let out = envelope::seal(envelope::WORKLOAD, keypair, &payload).map_err(Error::Malformed)?;
    if out.len() > MAX_WORKLOAD_RECORD_BYTES {
        return Err(Error::TooLarge(out.len()));
    }
    Ok(Verified {
        record,
        signer,
        bytes: out,
    })
}

/// [`verify`] for a record from elsewhere: also refuses a revision beyond [`MAX_REVISION`] and
/// an `issued_at` more than [`MAX_CLOCK_SKEW_MS`] after `now`.
pub fn verify_at(bytes: &[u8], now: UnixMillis) -> Result<Verified, Error> {
    let v = verify(bytes)?;
    if v.record.revision > MAX_REVISION {
        return Err(Error::RevisionTooHigh(v.record.revision));
    }
    if v.record.issued_at > now.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err(Error::FromTheFuture(v.record.issued_at - now));
    }
    Ok(v)
}

/// Whether `a` supersedes `b` (two records of one workload): the higher revision; at an equal
/// revision (two submitters signed the same next revision at once) a tombstone, then the later
/// `issued_at`, then the lower SHA-256 of the bytes, so that every node picks the same one.
pub fn supersedes(a: &Verified, b: &Verified) -> bool {
    use sha2::{Digest as _, Sha256};
    let key = |v: &Verified| {
        (
            v.record.revision,
            v.record.tombstone,
            v.record.issued_at,
            std::cmp::Reverse(Sha256::digest(&v.bytes).to_vec()),
        )
    };
    key(a) > key(b)
}

/// Decodes and verifies a record: size, signature, submitter = signer.
pub fn verify(bytes: &[u8]) -> Result<Verified, Error> {
    if bytes.len() > MAX_WORKLOAD_RECORD_BYTES {
        return Err(Error::TooLarge(bytes.len()));
    }
    let (signer, rest) = envelope::open(envelope::WORKLOAD, bytes).map_err(|e| match e {
        envelope::Refused::Malformed(m) => Error::Malformed(m),
        envelope::Refused::BadSignature => Error::BadSignature,
    })?;
    let record: WorkloadRecord =
        serde_json::from_slice(rest).map_err(|e| Error::Malformed(e.to_string()))?;
    if record.submitter != signer.to_string() {
        return Err(Error::WrongSigner {
            claimed: record.submitter,
            signer: signer.to_string(),
        });
    }
    Ok(Verified {
        record,
        signer,
        bytes: bytes.to_vec(),
    })
}

#[cfg(test)]
#[path = "workload_tests.rs"]
mod tests;
