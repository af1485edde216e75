//! Workload records on a node: building them (`meshctl`, or a node for an unsigned local
//! apply), opening them (verify, unseal, parse exactly as every node does, check the spec
//! version the signer stated), and the bounded [`book::RecordBook`] every node keeps.
//!
//! # Layout
//!
//! - this file: parse, build, open;
//! - [`book`]: the newest revision of every workload this node heard of.

pub mod book;

use libp2p::identity::Keypair;
use mesh_engine_wasm::Digest;
use mesh_protocol::api::{BundledModule, RecordInfo, SignedRecord};
use mesh_protocol::spec::ModuleSource;
use mesh_protocol::{UnixMillis, WorkloadId, WorkloadKind, WorkloadSpec};
use mesh_provider::sealing::{self, DataKey, SealError};
use mesh_provider::workload::{self, ManifestSource, Replicas, Source, Verified, WorkloadRecord};

/// Workloads in one apply request.
pub const MAX_WORKLOADS_PER_APPLY: usize = 64;

/// Why a record or its manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Manifest(String),
    #[error(transparent)]
    Record(#[from] workload::Error),
    #[error("{id}: {source}")]
    Seal { id: WorkloadId, source: SealError },
    #[error("{0}: the manifest is sealed (it carries secrets) and no data key came with it")]
    NoKey(WorkloadId),
    #[error("{0}: a tombstone has no manifest to run")]
    Tombstone(WorkloadId),
    #[error("the record of {id} names no workload of its manifest")]
    NotInManifest { id: WorkloadId },
    #[error(
        "{id}: the record states spec version {stated} but this node parses its manifest to {parsed} \
         (nodes of different software versions?)"
    )]
    Mismatch {
        id: WorkloadId,
        stated: String,
        parsed: String,
    },
    #[error(
        "{id}: revision {offered} is not newer than revision {held} held by the mesh, refused as \
         a downgrade; apply again (meshctl signs the next revision), or bring back an earlier \
         version with meshctl rollback"
    )]
    Stale {
        id: WorkloadId,
        offered: u64,
        held: u64,
    },
}

/// A Function whose module is a path (`spec.module: ./hello.wasm`) runs the digest of the
/// module `meshctl` bundled for that path; its version is sealed over the digest, so a new
/// module is a new version.
fn resolve_module(spec: &mut WorkloadSpec, modules: &[BundledModule]) -> Result<(), Error> {
    let Some(module) = &mut spec.module else {
        return Ok(());
    };
    let ModuleSource::Path(path) = &module.source else {
        return Ok(());
    };
    let bundled = modules.iter().find(|m| m.path == *path).ok_or_else(|| {
        Error::Manifest(format!(
            "{}: spec.module {path:?} is a local path; apply the file with meshctl, which \
             bundles the module, or write its digest (sha256:…)",
            spec.name
        ))
    })?;
    Digest::parse(&bundled.digest)
        .map_err(|e| Error::Manifest(format!("bundled module {path}: {e}")))?;
    module.source = ModuleSource::Digest(bundled.digest.clone());
    *spec = spec.clone().seal();
    Ok(())
}

/// Parses a manifest exactly as every node does: formats, `--name`, module paths to digests.
/// Versions are plain digests; [`key_versions`] keys them for a sealed manifest.
pub fn parse_source(src: &ManifestSource) -> Result<Vec<WorkloadSpec>, Error> {
    let opts = mesh_manifests::ParseOptions {
        default_name: src.name.clone().or_else(|| src.default_name.clone()),
        env: src.env.clone(),
        ..mesh_manifests::ParseOptions::default()
    };
    let mut specs = mesh_manifests::parse(src.manifest.as_bytes(), &opts)
        .map_err(|e| Error::Manifest(e.to_string()))?;
    for spec in &mut specs {
        resolve_module(spec, &src.modules)?;
    }
    if specs.len() > MAX_WORKLOADS_PER_APPLY {
        return Err(Error::Manifest(format!(
            "{} workloads in one apply; at most {MAX_WORKLOADS_PER_APPLY}",
            specs.len()
        )));
    }
    if let Some(name) = &src.name {
        if specs.len() != 1 {
            return Err(Error::Manifest(format!(
                "--name renames a file with exactly one workload; this file has {}",
                specs.len()
            )));
        }
        if specs[0].name != *name {
            specs[0].name = name.clone();
            specs[0] = specs[0].clone().seal();
        }
    }
    Ok(specs)
}

/// Whether a manifest must travel sealed: it carries Secret values, or interpolation
/// variables from the user's environment (passwords, tokens).
pub fn needs_sealing(src: &ManifestSource, specs: &[WorkloadSpec]) -> bool {
    !src.env.is_empty() || specs.iter().any(WorkloadSpec::has_secrets)
}

/// The replicas a record asks for.
pub fn replicas_of(spec: &WorkloadSpec, replicas: Option<u32>) -> Replicas {
    if spec.kind == WorkloadKind::DaemonSet {
        Replicas::EveryNode
    } else {
        Replicas::Count(replicas.unwrap_or_else(|| spec.replica_count()).max(1))
    }
}

/// One record built for a workload of a manifest.
#[derive(Debug, Clone)]
pub struct Built {
    pub spec: WorkloadSpec,
    pub signed: SignedRecord,
    /// The record as [`open`] would give it back (no need to verify what was just signed).
    pub opened: Opened,
}

/// Builds and signs the record of every workload of `src` with `keypair`, each at the
/// revision after `held(id)` (0 when the mesh holds none).
pub fn build(
    keypair: &Keypair,
    src: &ManifestSource,
    replicas: Option<u32>,
    held: impl Fn(&WorkloadId) -> u64,
    now: UnixMillis,
) -> Result<Vec<Built>, Error> {
    let specs = parse_source(src)?;
    let sealed = needs_sealing(src, &specs);
    let mut out = Vec::with_capacity(specs.len());
    for mut spec in specs {
        let id = spec.id();
        let key = if sealed {
            let key = DataKey::derive(keypair, &id).map_err(|source| Error::Seal {
                id: id.clone(),
                source,
            })?;
            spec = spec.seal_keyed(key.as_bytes());
            Some(key)
        } else {
            None
        };
        let source = match &key {
            Some(key) => Source::Sealed(sealing::seal(key, &id, src)),
            None => Source::Plain(src.clone()),
        };
        let record = WorkloadRecord {
            id: id.clone(),
            revision: next_revision(&id, held(&id))?,
            kind: spec.kind,
            spec_version: spec.version.clone(),
            replicas: replicas_of(&spec, replicas),
            modules: module_digests(&spec),
            source,
            tombstone: false,
            issued_at: now,
            submitter: String::new(),
            nonce: workload::new_nonce(),
            rollback_to: None,
        };
        let verified = workload::encode(keypair, record)?;
        let signed = SignedRecord {
            bytes: verified.bytes.clone(),
            data_key: key.as_ref().map(|k| k.as_bytes().to_vec()),
        };
        out.push(Built {
            opened: Opened {
                verified,
                spec: spec.clone(),
                source: src.clone(),
                key,
            },
            spec,
            signed,
        });
    }
    Ok(out)
}

/// Builds and signs a tombstone for `id` at the revision after `held`.
pub fn build_tombstone(
    keypair: &Keypair,
    id: &WorkloadId,
    kind: WorkloadKind,
    held: u64,
    now: UnixMillis,
) -> Result<SignedRecord, Error> {
    let record = WorkloadRecord::tombstone(id.clone(), next_revision(id, held)?, kind, now);
    Ok(SignedRecord {
        bytes: workload::encode(keypair, record)?.bytes,
        data_key: None,
    })
}

/// Builds and signs a rollback: the content of `to` (an earlier record of the workload) at
/// the revision after `held`, marked as bringing back `to`'s revision. A sealed workload can
/// only be rolled back by a key that derives its data key (its submitter's).
pub fn build_rollback(
    keypair: &Keypair,
    to: &Verified,
    held: u64,
    now: UnixMillis,
) -> Result<SignedRecord, Error> {
    let old = &to.record;
    if old.tombstone {
        return Err(Error::Tombstone(old.id.clone()));
    }
    let data_key = match &old.source {
        Source::Sealed(_) => {
            let key = DataKey::derive(keypair, &old.id).map_err(|source| Error::Seal {
                id: old.id.clone(),
                source,
            })?;
            // Proves the key opens it (another user's sealed workload does not open).
            open_verified(to.clone(), Some(key.as_bytes()))?;
            Some(key.as_bytes().to_vec())
        }
        _ => None,
    };
    let record = WorkloadRecord {
        revision: next_revision(&old.id, held)?,
        issued_at: now,
        nonce: workload::new_nonce(),
        rollback_to: Some(old.revision),
        submitter: String::new(),
        ..old.clone()
    };
    Ok(SignedRecord {
        bytes: workload::encode(keypair, record)?.bytes,
        data_key,
    })
}

/// The revision after `held`, refused past [`workload::MAX_REVISION`].
fn next_revision(id: &WorkloadId, held: u64) -> Result<u64, Error> {
    held.checked_add(1)
        .filter(|r| *r <= workload::MAX_REVISION)
        .ok_or_else(|| Error::Manifest(format!("{id}: no revision after {held} is allowed")))
}

fn module_digests(spec: &WorkloadSpec) -> Vec<String> {
    match spec.module.as_ref().map(|m| &m.source) {
        Some(ModuleSource::Digest(d)) => vec![d.clone()],
        _ => Vec::new(),
    }
}

/// A verified record opened for running: its spec as this node parses it, and its data key.
#[derive(Debug, Clone)]
pub struct Opened {
    pub verified: Verified,
    pub spec: WorkloadSpec,
    pub source: ManifestSource,
    pub key: Option<DataKey>,
}

/// Verifies a signed record, unseals its manifest with `data_key` when sealed, parses it and
/// checks that this node gets the version the signer stated.
pub fn open(signed: &SignedRecord) -> Result<Opened, Error> {
    let verified = workload::verify_at(&signed.bytes, mesh_runtime::now_millis())?;
    open_verified(verified, signed.data_key.as_deref())
}

/// [`open`] for a record already verified.
pub fn open_verified(verified: Verified, data_key: Option<&[u8]>) -> Result<Opened, Error> {
    let id = verified.record.id.clone();
    let seal_err = |source| Error::Seal {
        id: id.clone(),
        source,
    };
    let (source, key) = match &verified.record.source {
        Source::Deleted => return Err(Error::Tombstone(id)),
        Source::Plain(src) => (src.clone(), None),
        Source::Sealed(sealed) => {
            let key = DataKey::from_bytes(data_key.ok_or_else(|| Error::NoKey(id.clone()))?)
                .map_err(seal_err)?;
            let src = sealing::open(&key, &id, sealed).map_err(seal_err)?;
            (src, Some(key))
        }
    };
    let mut spec = parse_source(&source)?
        .into_iter()
        .find(|s| s.id() == id)
        .ok_or_else(|| Error::NotInManifest { id: id.clone() })?;
    if let Some(key) = &key {
        spec = spec.seal_keyed(key.as_bytes());
    }
    if spec.version != verified.record.spec_version {
        return Err(Error::Mismatch {
            id,
            stated: verified.record.spec_version.clone(),
            parsed: spec.version,
        });
    }
    Ok(Opened {
        verified,
        spec,
        source,
        key,
    })
}

/// What `GET /records/{name}` shows of a record.
pub fn info(r: &WorkloadRecord) -> RecordInfo {
    RecordInfo {
        namespace: r.id.namespace.clone(),
        name: r.id.name.clone(),
        kind: r.kind,
        revision: r.revision,
        spec_version: r.spec_version.clone(),
        replicas: r.replicas.count(),
        tombstone: r.tombstone,
        submitter: r.submitter.clone(),
        issued_at: r.issued_at,
        sealed: matches!(r.source, Source::Sealed(_)),
    }
}
