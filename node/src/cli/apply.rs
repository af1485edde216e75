//! `meshctl apply` and `meshctl delete`: the manifest is read and parsed here first (a bad
//! file fails fast, with its location), modules named by path are bundled, and every
//! workload's record is signed with the user's key at the revision after the mesh's.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use mesh_protocol::api::{ApplyAction, ApplyRequest};
use mesh_protocol::WorkloadId;
use mesh_provider::workload::ManifestSource;

use super::backend::Backend;
use super::output::{self, Format};
use super::{key, ApplyArgs};
use crate::records;

/// Reads the manifest and the variables it references from the environment.
fn read_manifest(file: &str) -> anyhow::Result<(String, Option<String>)> {
    let (bytes, stem) = if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(mesh_manifests::MAX_MANIFEST_BYTES as u64 + 1)
            .read_to_end(&mut buf)
            .context("cannot read the manifest from stdin")?;
        (buf, None)
    } else {
        let path = PathBuf::from(file);
        let meta = std::fs::metadata(&path).with_context(|| format!("cannot read {file}"))?;
        if meta.len() > mesh_manifests::MAX_MANIFEST_BYTES as u64 {
            bail!(
                "{file}: {} bytes; manifests are limited to {} bytes",
                meta.len(),
                mesh_manifests::MAX_MANIFEST_BYTES
            );
        }
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {file}"))?;
        (
            bytes,
            file_stem(&path).map(|s| mesh_manifests::normalize_name(&s)),
        )
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{file}: not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok((text, stem))
}

fn file_stem(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_string_lossy().to_string();
    // `compose.yaml` and `docker-compose.yml` say nothing: use the directory's name, as Compose does.
    if matches!(stem.as_str(), "compose" | "docker-compose") {
        let dir = std::fs::canonicalize(path)
            .ok()?
            .parent()?
            .file_name()?
            .to_string_lossy()
            .to_string();
        return Some(dir);
    }
    Some(stem)
}

/// The WASM modules the manifest names by path, read relative to the manifest's directory,
/// with their digests: the node runs the digest.
fn bundle_modules(
    specs: &[mesh_protocol::WorkloadSpec],
    base: &std::path::Path,
) -> anyhow::Result<Vec<mesh_protocol::api::BundledModule>> {
    use mesh_protocol::api::{BundledModule, MAX_MODULE_BYTES};
    use mesh_protocol::spec::ModuleSource;
    let mut out: Vec<BundledModule> = Vec::new();
    for spec in specs {
        let Some(ModuleSource::Path(path)) = spec.module.as_ref().map(|m| &m.source) else {
            continue;
        };
        if out.iter().any(|m| m.path == *path) {
            continue;
        }
        let file = base.join(path);
        let size = std::fs::metadata(&file)
            .with_context(|| format!("{}: spec.module {}", spec.name, file.display()))?
            .len();
        if size > MAX_MODULE_BYTES as u64 {
            bail!(
                "{}: module {} is {size} bytes; at most {MAX_MODULE_BYTES} can be bundled (store it on a node and write its sha256: digest)",
                spec.name,
                file.display()
            );
        }
        let bytes = std::fs::read(&file)
            .with_context(|| format!("{}: spec.module {}", spec.name, file.display()))?;
        if !bytes.starts_with(b"\0asm") {
            bail!(
                "{}: {} is not a WebAssembly module (no \\0asm header)",
                spec.name,
                file.display()
            );
        }
        out.push(BundledModule {
            path: path.clone(),
            digest: mesh_engine_wasm::Digest::of(&bytes).to_string(),
            bytes: Some(bytes),
            providers: Vec::new(),
        });
    }
    Ok(out)
}

pub(super) async fn apply(
    backend: &Backend,
    fmt: Format,
    args: ApplyArgs,
    key_path: &Path,
) -> anyhow::Result<std::process::ExitCode> {
    let (manifest, stem) = read_manifest(&args.file)?;
    let name = args.name.clone().or(stem.clone());
    let env: BTreeMap<String, String> = mesh_manifests::referenced_env_vars(manifest.as_bytes())
        .into_iter()
        .filter_map(|k| std::env::var(&k).ok().map(|v| (k, v)))
        .collect();
    // Parse here first: a bad file fails fast, with its location, before any node is involved.
    let opts = mesh_manifests::ParseOptions {
        default_name: name.clone(),
        env: env.clone(),
        ..Default::default()
    };
    let label = if args.file == "-" {
        "<stdin>"
    } else {
        args.file.as_str()
    };
    let specs = mesh_manifests::parse(manifest.as_bytes(), &opts)
        .map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
    let base = if args.file == "-" {
        std::env::current_dir()?
    } else {
        std::path::Path::new(&args.file)
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default()
    };
    let modules = bundle_modules(&specs, &base).map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
    let keypair = key::load(key_path)?;
    let unsigned = ApplyRequest {
        no_wait: args.no_wait,
        manifest,
        name: args.name.clone(),
        default_name: stem,
        replicas: args.replicas,
        env,
        records: Vec::new(),
        modules,
    };
    let src = ManifestSource::of(&unsigned);
    let ids: Vec<WorkloadId> = specs.iter().map(|s| s.id()).collect();
    // Each record is signed at the revision after the one the mesh holds. Another apply of
    // the same workload in between makes the node refuse ours as not newer: sign again.
    let mut attempt = 0;
    let resp = loop {
        attempt += 1;
        let mut held = BTreeMap::new();
        for id in &ids {
            let revision = backend.record(id).await?.map_or(0, |r| r.revision);
            held.insert(id.clone(), revision);
        }
        let built = records::build(
            &keypair,
            &src,
            args.replicas,
            |id| held.get(id).copied().unwrap_or(0),
            mesh_runtime::now_millis(),
        )
        .map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
        let req = ApplyRequest {
            records: built.into_iter().map(|b| b.signed).collect(),
            ..unsigned.clone()
        };
        match with_progress(backend, fmt, &ids, args.no_wait, backend.apply(req)).await {
            Err(e) if attempt < 3 && e.to_string().contains("is not newer than revision") => {
                continue
            }
            // Context, not a new error: the node's refusal stays in the chain for the exit status.
            other => break other.map_err(|e| e.context(label.to_string()))?,
        }
    };
    report(fmt, &resp)
}

/// Runs `apply`, showing on a terminal how many replicas of each workload are Running
/// (asked every 300 ms) until it answers.
async fn with_progress<T>(
    backend: &Backend,
    fmt: Format,
    ids: &[WorkloadId],
    no_wait: bool,
    apply: impl std::future::Future<Output = T>,
) -> T {
    let bar = super::progress::spinner(if no_wait { Format::Json } else { fmt });
    if bar.is_hidden() {
        return apply.await;
    }
    bar.set_message(format!("applying {}", names(ids)));
    let poll = async {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(300));
        loop {
            tick.tick().await;
            let mut parts = Vec::new();
            for id in ids {
                if let Ok(d) = backend.get(id, false).await {
                    let ready = output::ready(&d);
                    parts.push(format!("{}: {ready} ready, {}", id.name, d.phase));
                }
            }
            if !parts.is_empty() {
                bar.set_message(parts.join("; "));
            }
        }
    };
    let out = tokio::select! {
        out = apply => out,
        () = poll => unreachable!("the poll never ends"),
    };
    bar.finish_and_clear();
    out
}

fn names(ids: &[WorkloadId]) -> String {
    let names: Vec<&str> = ids.iter().map(|i| i.name.as_str()).collect();
    names.join(", ")
}

/// Prints an apply's outcome; exits 1 when a workload failed or was rolled back.
pub(super) fn report(
    fmt: Format,
    resp: &mesh_protocol::api::ApplyResponse,
) -> anyhow::Result<std::process::ExitCode> {
    output::print_apply(fmt, resp)?;
    let failed = resp
        .workloads
        .iter()
        .any(|w| matches!(w.action, ApplyAction::Failed | ApplyAction::RolledBack));
    Ok(if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}

/// Deletes a workload with a tombstone signed by the user's key, at the revision after the
/// one the mesh holds.
pub(super) async fn delete(
    backend: &Backend,
    id: &WorkloadId,
    key_path: &Path,
) -> anyhow::Result<mesh_protocol::api::Deployment> {
    let keypair = key::load(key_path)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let held = backend.record(id).await?;
        let (revision, kind) = held.map_or((0, None), |r| (r.revision, Some(r.kind)));
        let tombstone = records::build_tombstone(
            &keypair,
            id,
            kind.unwrap_or(mesh_protocol::WorkloadKind::Pod),
            revision,
            mesh_runtime::now_millis(),
        )?;
        match backend.delete(id, tombstone).await {
            Err(e) if attempt < 3 && e.to_string().contains("is not newer than revision") => {
                continue
            }
            other => return other,
        }
    }
}
