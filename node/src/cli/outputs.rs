//! `meshctl outputs NAME [-d DIR]`: a job's collected output files, fetched in pieces from
//! the node that ran it (through the node meshctl talks to) and written under DIR with
//! their relative paths. A file is written to a temporary name, checked against the sha256
//! digest its job status lists, and only then renamed into place; a path the node lists is
//! checked first like a declared one (relative, no `..`), so a node cannot write elsewhere.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use mesh_protocol::job::{check_output_path, Artifact};
use mesh_protocol::wire::MODULE_CHUNK_BYTES;
use mesh_protocol::WorkloadId;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::backend::Backend;
use super::output::{print_value, Format, Table};
use super::progress;

#[derive(Debug, Serialize)]
struct Written {
    path: String,
    size: u64,
    digest: String,
    node: String,
    file: PathBuf,
}

pub async fn download(
    backend: &Backend,
    fmt: Format,
    id: &WorkloadId,
    dir: &Path,
) -> anyhow::Result<()> {
    let d = backend.get(id, false).await?;
    let jobs: Vec<(&str, &mesh_protocol::job::JobStatus)> = d
        .replicas
        .iter()
        .filter_map(|r| r.job.as_ref().map(|j| (r.node.as_str(), j)))
        .collect();
    if jobs.is_empty() {
        bail!("{id} is not a run-to-completion workload (Job, Function): it has no outputs");
    }
    let files: Vec<(&str, &Artifact)> = jobs
        .iter()
        .flat_map(|(node, j)| j.outputs.iter().map(move |a| (*node, a)))
        .collect();
    if files.is_empty() {
        let finished = jobs.iter().any(|(_, j)| j.finished());
        bail!(
            "{id} has no collected outputs{} (declare them with the beemesh.io/outputs annotation)",
            if finished {
                ""
            } else {
                " yet: it has not succeeded"
            }
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let total: u64 = files.iter().map(|(_, a)| a.size).sum();
    let bar = progress::bytes(total, fmt);
    let mut written = Vec::new();
    for (node, a) in files {
        check_output_path(&a.path)
            .map_err(|e| anyhow::anyhow!("the node listed an output it should not: {e}"))?;
        if a.path.ends_with('/') {
            continue;
        }
        let file = dir.join(&a.path);
        fetch_one(backend, id, node, a, &file, &bar).await?;
        written.push(Written {
            path: a.path.clone(),
            size: a.size,
            digest: a.digest.clone(),
            node: node.to_string(),
            file,
        });
    }
    bar.finish_and_clear();
    if !fmt.is_table() {
        return print_value(fmt, &written);
    }
    let mut t = Table::new(&["OUTPUT", "SIZE", "DIGEST", "NODE", "WRITTEN TO"]);
    for w in &written {
        t.row(vec![
            w.path.clone(),
            w.size.to_string(),
            w.digest.chars().take(19).collect(),
            super::output::short_peer(&w.node),
            w.file.display().to_string(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

async fn fetch_one(
    backend: &Backend,
    id: &WorkloadId,
    node: &str,
    a: &Artifact,
    file: &Path,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let partial = file.with_extension("meshctl-partial");
    let mut out = std::fs::File::create(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let mut hash = Sha256::new();
    let mut offset = 0u64;
    let result = async {
        while offset < a.size {
            let chunk = backend.output_chunk(id, node, &a.path, offset).await?;
            if chunk.offset != offset
                || chunk.total != a.size
                || chunk.bytes.len() > MODULE_CHUNK_BYTES
                || chunk.bytes.is_empty()
            {
                bail!(
                    "{}: the node sent a piece that does not fit ({} bytes at {} of {}; expected {} bytes)",
                    a.path,
                    chunk.bytes.len(),
                    chunk.offset,
                    chunk.total,
                    a.size
                );
            }
            hash.update(&chunk.bytes);
            out.write_all(&chunk.bytes)?;
            offset += chunk.bytes.len() as u64;
            bar.inc(chunk.bytes.len() as u64);
        }
        let got = format!("sha256:{:x}", hash.finalize_reset());
        if got != a.digest {
            bail!("{}: content is {got}, but the job status says {}", a.path, a.digest);
        }
        out.sync_all()?;
        std::fs::rename(&partial, file)
            .with_context(|| format!("cannot write {}", file.display()))?;
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}
