//! `meshctl history NAME` and `meshctl rollback NAME [--to-revision N]`: the revisions of a
//! workload a node kept, and a signed rollback that brings an earlier one back.
//!
//! A rollback is a new revision (revisions only grow, so every node converges on it) whose
//! content and replica count are an earlier revision's, marked `rollback_to`; a node that
//! knows that revision checks the content is its. Without `--to-revision` the newest earlier
//! revision that asks for something else (content or replicas) is brought back.

use std::path::Path;

use anyhow::{anyhow, bail};
use mesh_protocol::api::ApplyRequest;
use mesh_protocol::WorkloadId;
use mesh_provider::workload::{Source, Verified};
use serde::Serialize;

use super::backend::Backend;
use super::key;
use super::output::{self, Format, Table};
use crate::records;

#[derive(Debug, Serialize)]
struct Revision {
    revision: u64,
    spec_version: String,
    replicas: Option<u32>,
    signer: String,
    issued_at: u64,
    sealed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback_to: Option<u64>,
}

fn revision(v: &Verified) -> Revision {
    Revision {
        revision: v.record.revision,
        spec_version: v.record.spec_version.clone(),
        replicas: v.record.replicas.count(),
        signer: v.signer.to_string(),
        issued_at: v.record.issued_at,
        sealed: matches!(v.record.source, Source::Sealed(_)),
        rollback_to: v.record.rollback_to,
    }
}

async fn kept(backend: &Backend, id: &WorkloadId) -> anyhow::Result<Vec<Verified>> {
    let history = backend.history(id).await?;
    if history.is_empty() {
        bail!(
            "this node keeps no revisions of {id} (meshctl get lists workloads; ask a node that \
             runs it with --node)"
        );
    }
    Ok(history)
}

pub(super) async fn history(backend: &Backend, fmt: Format, id: &WorkloadId) -> anyhow::Result<()> {
    let rows: Vec<Revision> = kept(backend, id).await?.iter().map(revision).collect();
    if !fmt.is_table() {
        return output::print_value(fmt, &rows);
    }
    let mut t = Table::new(&[
        "REVISION",
        "VERSION",
        "REPLICAS",
        "SIGNED BY",
        "AGE",
        "NOTE",
    ]);
    for r in &rows {
        t.row(vec![
            r.revision.to_string(),
            mesh_protocol::spec::short_version(&r.spec_version).to_string(),
            r.replicas.map_or("every node".into(), |n| n.to_string()),
            output::short_peer(&r.signer),
            output::age(r.issued_at),
            match r.rollback_to {
                Some(to) => format!("rollback to {to}"),
                None if r.sealed => "sealed".into(),
                None => String::new(),
            },
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

pub(super) async fn rollback(
    backend: &Backend,
    fmt: Format,
    id: &WorkloadId,
    to: Option<u64>,
    key_path: &Path,
) -> anyhow::Result<std::process::ExitCode> {
    let keypair = key::load(key_path)?;
    let history = kept(backend, id).await?;
    let current = history.last().expect("kept() is never empty");
    let target = match to {
        Some(n) => history
            .iter()
            .find(|v| v.record.revision == n)
            .ok_or_else(|| {
                let known: Vec<String> =
                    history.iter().map(|v| v.record.revision.to_string()).collect();
                anyhow!(
                    "this node does not keep revision {n} of {id}; it keeps {} (meshctl history {})",
                    known.join(", "),
                    id.name
                )
            })?,
        None => history
            .iter()
            .rev()
            .find(|v| !v.record.same_desire(&current.record))
            .ok_or_else(|| {
                anyhow!("{id} has no earlier revision that asks for something else to roll back to")
            })?,
    };
    if target.record.revision == current.record.revision {
        bail!("revision {} is the current one", target.record.revision);
    }
    let held = backend.record(id).await?.map_or(0, |r| r.revision);
    let signed = records::build_rollback(&keypair, target, held, mesh_runtime::now_millis())?;
    let req = ApplyRequest {
        records: vec![signed],
        ..ApplyRequest::default()
    };
    let resp = backend.apply(req).await?;
    if fmt.is_table() {
        eprintln!(
            "{id}: revision {} brings back revision {}",
            held + 1,
            target.record.revision
        );
    }
    super::apply::report(fmt, &resp)
}
