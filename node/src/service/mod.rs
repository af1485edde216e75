//! The node service: applies, deletes and reads workloads on this node. Every entry point
//! (local API today, the mesh later) goes through [`Node`].
//!
//! Operations on one workload are serialised by a per-workload lock; deploys of different
//! workloads run concurrently up to [`MAX_CONCURRENT_DEPLOYS`]. The intent of every apply
//! and delete is written (and flushed) before anything is done, so a crash in the middle is
//! finished by [`Node::recover_all`] at the next start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_engine_wasm::{Digest, ModuleStore};
use mesh_protocol::api::{
    ApplyAction, ApplyOutcome, ApplyRequest, ApplyResponse, BundledModule, Deployment, Health,
    LogLine, Logs, Status, VersionRecord, MAX_MODULE_BYTES,
};
use mesh_protocol::spec::ModuleSource;
use mesh_protocol::wire::ReplicaApply;
use mesh_protocol::{Event, Outcome, Phase, Step, WorkloadId, WorkloadKind, WorkloadSpec};
use mesh_runtime::engine::InstallContext;
use mesh_runtime::{
    now_millis, select, Controller, Handle, LogOptions, Observer, Policy, Registry,
};
use tokio::sync::{mpsc, Semaphore};

use crate::error::ApiError;
use crate::store::{Desired, Observed, Pending, ReplicaRecord, Store};
use crate::view;

/// Deploys running at once on a node; further applies wait for a slot.
pub const MAX_CONCURRENT_DEPLOYS: usize = 32;
/// Workloads in one apply request.
pub const MAX_WORKLOADS_PER_APPLY: usize = 64;
/// Events shown by `describe`.
pub const DESCRIBE_EVENTS: usize = 50;
/// Largest `--tail` served; bounds the answer.
pub const MAX_LOG_LINES: usize = 10_000;

/// A node: its id, store, engines and lifecycle controller. Cheap to clone; no global state.
#[derive(Debug, Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: String,
    store: Store,
    controller: Controller,
    policy: Policy,
    locks: Mutex<HashMap<WorkloadId, Arc<tokio::sync::Mutex<()>>>>,
    deploys: Semaphore,
    started_at: u64,
    /// Told about every workload whose local state changed (the mesh announcer listens).
    changes: std::sync::OnceLock<mpsc::Sender<WorkloadId>>,
    /// Where bundled WASM modules are kept (the wasm engine's store).
    modules: std::sync::OnceLock<ModuleStore>,
}

/// Records lifecycle steps as stored events and persists handles as soon as they exist.
pub(crate) struct Recorder<'a> {
    pub(crate) store: &'a Store,
    pub(crate) ordinal: u32,
    pub(crate) reason: &'a str,
}

impl Observer for Recorder<'_> {
    fn step(
        &self,
        spec: &WorkloadSpec,
        engine: &str,
        step: Step,
        outcome: Outcome,
        took: Duration,
        message: &str,
    ) {
        let event = Event {
            seq: 0,
            at: now_millis(),
            workload: spec.id().to_string(),
            version: spec.version.clone(),
            step,
            outcome,
            duration_us: took.as_micros() as u64,
            engine: Some(engine.to_string()),
            message: message.to_string(),
            correlation: None,
        };
        tracing::debug!(workload = %event.workload, %step, ?outcome, us = event.duration_us, %message, "lifecycle step");
        if let Err(e) = self.store.append_event(event) {
            tracing::error!(error = %e, "cannot record event");
        }
    }

    fn installed(&self, spec: &WorkloadSpec, handle: &Handle) {
        let id = spec.id();
        let result = self.store.observed(&id).and_then(|mut obs| {
            let record = ReplicaRecord {
                ordinal: self.ordinal,
                phase: Phase::Installing,
                engine: handle.engine.clone(),
                engine_reason: self.reason.to_string(),
                version: spec.version.clone(),
                handle: Some(handle.clone()),
                error: None,
                exit_code: None,
                restarts: 0,
                updated_at: now_millis(),
                job: None,
            };
            // An update keeps the old replica until it is replaced: store the new one beside it.
            obs.replicas
                .retain(|r| !(r.ordinal == self.ordinal && r.version == spec.version));
            obs.replicas.push(record);
            self.store.put_observed(&id, &obs)?;
            self.store.flush()
        });
        if let Err(e) = result {
            tracing::error!(workload = %id, error = %e, "cannot persist handle");
        }
    }
}

/// A Function whose module is a path (`spec.module: ./hello.wasm`) runs the digest of the
/// module `meshctl` bundled for that path; its version is sealed over the digest, so a new
/// module is a new version.
fn resolve_module(spec: &mut WorkloadSpec, modules: &[BundledModule]) -> Result<(), ApiError> {
    let Some(module) = &mut spec.module else {
        return Ok(());
    };
    let ModuleSource::Path(path) = &module.source else {
        return Ok(());
    };
    let bundled = modules.iter().find(|m| m.path == *path).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{}: spec.module {path:?} is a local path; apply the file with meshctl, which \
             bundles the module, or write its digest (sha256:…)",
            spec.name
        ))
    })?;
    Digest::parse(&bundled.digest)
        .map_err(|e| ApiError::bad_request(format!("bundled module {path}: {e}")))?;
    module.source = ModuleSource::Digest(bundled.digest.clone());
    *spec = spec.clone().seal();
    Ok(())
}

impl Node {
    pub fn new(id: String, store: Store, controller: Controller, policy: Policy) -> Self {
        Self {
            inner: Arc::new(Inner {
                id,
                store,
                controller,
                policy,
                locks: Mutex::new(HashMap::new()),
                deploys: Semaphore::new(MAX_CONCURRENT_DEPLOYS),
                started_at: now_millis(),
                changes: std::sync::OnceLock::new(),
                modules: std::sync::OnceLock::new(),
            }),
        }
    }

    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Subscribes `tx` to the ids of workloads whose local state changed. Set once.
    pub fn watch_changes(&self, tx: mpsc::Sender<WorkloadId>) {
        let _ = self.inner.changes.set(tx);
    }

    /// Keeps modules bundled into applies in `store` (set once, by the daemon).
    pub fn set_module_store(&self, store: ModuleStore) {
        let _ = self.inner.modules.set(store);
    }

    /// The module store, when this node keeps modules.
    pub fn module_store(&self) -> Option<&ModuleStore> {
        self.inner.modules.get()
    }

    /// Stores the module bytes an apply carries, after checking each hashes to its stated
    /// digest. Returns the digests stored.
    pub async fn store_modules(&self, req: &ApplyRequest) -> Result<Vec<Digest>, ApiError> {
        let mut stored = Vec::new();
        for m in &req.modules {
            let Some(bytes) = &m.bytes else { continue };
            let digest = Digest::parse(&m.digest)
                .map_err(|e| ApiError::bad_request(format!("bundled module {}: {e}", m.path)))?;
            if bytes.len() > MAX_MODULE_BYTES {
                return Err(ApiError::bad_request(format!(
                    "bundled module {} is {} bytes; at most {MAX_MODULE_BYTES}",
                    m.path,
                    bytes.len()
                )));
            }
            let Some(store) = self.module_store().cloned() else {
                return Err(ApiError::bad_request(format!(
                    "this node keeps no WASM modules; cannot take {}",
                    m.path
                )));
            };
            let bytes = bytes.clone();
            tokio::task::spawn_blocking(move || store.put_expected(&digest, &bytes))
                .await
                .map_err(|e| ApiError::internal(format!("module store task: {e}")))?
                .map_err(|e| ApiError::bad_request(format!("bundled module {}: {e}", m.path)))?;
            stored.push(digest);
        }
        Ok(stored)
    }

    /// Tells the watcher that `id` changed. A full watcher misses nothing for long: the
    /// announcer also sweeps every workload periodically.
    pub(crate) fn notify(&self, id: &WorkloadId) {
        if let Some(tx) = self.inner.changes.get() {
            let _ = tx.try_send(id.clone());
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn registry(&self) -> &Arc<Registry> {
        self.inner.controller.registry()
    }

    pub(crate) fn controller(&self) -> &Controller {
        &self.inner.controller
    }

    pub(crate) fn workload_lock(&self, id: &WorkloadId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.locks.lock().expect("lock map is never poisoned");
        locks.entry(id.clone()).or_default().clone()
    }

    pub(crate) fn event(
        &self,
        spec_id: &WorkloadId,
        version: &str,
        step: Step,
        outcome: Outcome,
        engine: Option<&str>,
        message: String,
    ) {
        let event = Event {
            seq: 0,
            at: now_millis(),
            workload: spec_id.to_string(),
            version: version.to_string(),
            step,
            outcome,
            duration_us: 0,
            engine: engine.map(str::to_string),
            message,
            correlation: None,
        };
        if let Err(e) = self.inner.store.append_event(event) {
            tracing::error!(error = %e, "cannot record event");
        }
    }

    /// `GET /health`.
    pub fn health(&self) -> Result<Health, ApiError> {
        Ok(Health {
            status: "ok".to_string(),
            node: self.inner.id.clone(),
            software_version: env!("CARGO_PKG_VERSION").to_string(),
            workloads: self.inner.store.list_desired()?.len(),
            engines: self.registry().infos(),
            started_at: self.inner.started_at,
        })
    }

    /// Parses and validates a manifest the way the node will run it, without running it.
    pub fn parse(&self, req: &ApplyRequest) -> Result<Vec<WorkloadSpec>, ApiError> {
        let opts = mesh_manifests::ParseOptions {
            default_name: req.name.clone().or_else(|| req.default_name.clone()),
            env: req.env.clone(),
            ..mesh_manifests::ParseOptions::default()
        };
        let mut specs = mesh_manifests::parse(req.manifest.as_bytes(), &opts)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        for spec in &mut specs {
            resolve_module(spec, &req.modules)?;
        }
        if specs.len() > MAX_WORKLOADS_PER_APPLY {
            return Err(ApiError::bad_request(format!(
                "{} workloads in one apply; at most {MAX_WORKLOADS_PER_APPLY}",
                specs.len()
            )));
        }
        if let Some(name) = &req.name {
            if specs.len() != 1 {
                return Err(ApiError::bad_request(format!(
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

    /// Applies every workload of a manifest on this node only (one replica each).
    pub async fn apply(&self, req: ApplyRequest) -> Result<ApplyResponse, ApiError> {
        if req.replicas == Some(0) {
            return Err(ApiError::bad_request(
                "--replicas must be at least 1".to_string(),
            ));
        }
        let specs = self.parse(&req)?;
        self.store_modules(&req).await?;
        let mut workloads = Vec::with_capacity(specs.len());
        for spec in specs {
            let replicas = req.replicas.unwrap_or_else(|| spec.replica_count());
            let placement = local_placement_notes(&spec, replicas);
            workloads.push(self.apply_one(spec, replicas, placement).await?);
        }
        Ok(ApplyResponse { workloads })
    }

    /// Runs this node's replica of one workload of a manifest, as placed by an entry node.
    pub async fn apply_replica(&self, req: ReplicaApply) -> Result<ApplyOutcome, ApiError> {
        let spec = self
            .parse(&req.apply)?
            .into_iter()
            .find(|s| s.id() == req.workload)
            .ok_or_else(|| {
                ApiError::bad_request(format!("the manifest has no workload {}", req.workload))
            })?;
        self.apply_one(spec, req.desired_replicas.max(1), req.placement)
            .await
    }

    async fn apply_one(
        &self,
        spec: WorkloadSpec,
        replicas: u32,
        placement: Vec<String>,
    ) -> Result<ApplyOutcome, ApiError> {
        let id = spec.id();
        let lock = self.workload_lock(&id);
        let _guard = lock.lock().await;
        let _slot = self
            .inner
            .deploys
            .acquire()
            .await
            .expect("the deploy semaphore is never closed");
        let store = &self.inner.store;
        let now = now_millis();
        let existing = store.desired(&id)?;
        let mut observed = store.observed(&id)?;

        if let Some(d) = &existing {
            let settled = !observed.replicas.is_empty()
                && observed.replicas.iter().all(|r| {
                    r.version == spec.version
                        && (matches!(r.phase, Phase::Running | Phase::Succeeded)
                            // A job run in progress (running, or waiting to retry).
                            || r.job.as_ref().is_some_and(|j| !j.finished()))
                });
            if d.spec.version == spec.version
                && d.replicas == replicas
                && d.placement == placement
                && settled
            {
                return Ok(ApplyOutcome {
                    action: ApplyAction::Unchanged,
                    deployment: self.view(&id, false)?,
                });
            }
        }

        // Record the intent first: a crash from here on is finished at the next start.
        let mut history = existing
            .as_ref()
            .map(|d| d.history.clone())
            .unwrap_or_default();
        if history.first().map(|h| h.version.as_str()) != Some(spec.version.as_str()) {
            history.insert(
                0,
                VersionRecord {
                    version: spec.version.clone(),
                    applied_at: now,
                    reached_running: false,
                },
            );
            history.truncate(crate::store::MAX_VERSIONS_PER_WORKLOAD);
        }
        let desired = Desired {
            spec: spec.clone(),
            replicas,
            created_at: existing.as_ref().map_or(now, |d| d.created_at),
            updated_at: now,
            history,
            placement,
        };
        store.put_desired(&desired)?;
        store.set_pending(
            &id,
            &Pending::Apply {
                version: spec.version.clone(),
                since: now,
            },
        )?;
        store.flush()?;

        let action = self
            .converge(&spec, &mut observed, existing.is_some())
            .await?;
        store.clear_pending(&id)?;
        self.notify(&id);
        Ok(ApplyOutcome {
            action,
            deployment: self.view(&id, false)?,
        })
    }

    /// Brings this node's replica of `spec` to the spec: selects the engine, then deploys,
    /// updates (with rollback) or reinstalls. Caller holds the workload lock.
    pub(crate) async fn converge(
        &self,
        spec: &WorkloadSpec,
        observed: &mut Observed,
        existed: bool,
    ) -> Result<ApplyAction, ApiError> {
        let id = spec.id();
        let store = &self.inner.store;
        let started = std::time::Instant::now();
        let selection = select(spec, &self.registry().candidates(), &self.inner.policy);
        let took = started.elapsed();
        let selection = match selection {
            Ok(sel) => {
                let rec = Recorder {
                    store,
                    ordinal: 0,
                    reason: "",
                };
                rec.step(
                    spec,
                    &sel.engine,
                    Step::Select,
                    Outcome::Ok,
                    took,
                    &sel.reason,
                );
                sel
            }
            Err(no_engine) => {
                let msg = no_engine.to_string();
                self.event(
                    &id,
                    &spec.version,
                    Step::Select,
                    Outcome::Failed,
                    None,
                    msg.clone(),
                );
                // A running older version keeps running: nothing here can replace it.
                if !observed.replicas.iter().any(|r| r.phase == Phase::Running) {
                    observed.replicas = vec![failed_replica(
                        spec,
                        "",
                        "",
                        format!("Select failed: {msg}"),
                    )];
                    store.put_observed(&id, observed)?;
                }
                return Ok(ApplyAction::Failed);
            }
        };
        if spec.runs_to_completion() {
            return self.start_job(spec, &selection, observed, existed).await;
        }

        let ctx = InstallContext {
            node: self.inner.id.clone(),
            replica: 0,
        };
        let rec = Recorder {
            store,
            ordinal: 0,
            reason: &selection.reason,
        };
        let controller = &self.inner.controller;
        let current = observed
            .replicas
            .iter()
            .find(|r| r.handle.is_some())
            .cloned();
        let (report, action) = match current {
            Some(old) if old.phase == Phase::Running => {
                let handle = old.handle.clone().expect("filtered on handle");
                let old_spec = store
                    .version(&id, &old.version)?
                    .unwrap_or_else(|| spec.clone());
                let update = controller
                    .update(&old_spec, &handle, spec, &selection.engine, &ctx, &rec)
                    .await;
                if update.rolled_back {
                    let mut kept = old.clone();
                    kept.updated_at = now_millis();
                    kept.error = Some(format!(
                        "update to {} failed and was rolled back: {}",
                        mesh_protocol::spec::short_version(&spec.version),
                        update.new.error.clone().unwrap_or_default()
                    ));
                    if let Some(rollback_error) = &update.rollback_error {
                        kept.phase = Phase::Failed;
                        kept.error = Some(format!(
                            "{}; rollback failed too: {rollback_error}",
                            kept.error.unwrap_or_default()
                        ));
                    }
                    observed.replicas = vec![kept];
                    store.put_observed(&id, observed)?;
                    store.flush()?;
                    return Ok(ApplyAction::RolledBack);
                }
                (update.new, ApplyAction::Updated)
            }
            Some(old) => {
                // Not running (failed, exited): replace it outright.
                if let Some(handle) = &old.handle {
                    let old_spec = store
                        .version(&id, &old.version)?
                        .unwrap_or_else(|| spec.clone());
                    if let Err(e) = controller.uninstall(&old_spec, handle, &rec).await {
                        tracing::warn!(workload = %id, error = %e, "could not remove the previous instance");
                    }
                }
                (
                    controller.deploy(spec, &selection.engine, &ctx, &rec).await,
                    ApplyAction::Updated,
                )
            }
            None => {
                let action = if existed {
                    ApplyAction::Updated
                } else {
                    ApplyAction::Created
                };
                (
                    controller.deploy(spec, &selection.engine, &ctx, &rec).await,
                    action,
                )
            }
        };

        let mut replica = ReplicaRecord {
            ordinal: 0,
            phase: report.phase,
            engine: selection.engine.clone(),
            engine_reason: selection.reason.clone(),
            version: spec.version.clone(),
            handle: report.handle.clone(),
            error: report.error.clone(),
            exit_code: None,
            restarts: report.status.as_ref().map_or(0, |s| s.restarts),
            updated_at: now_millis(),
            job: None,
        };
        if let Some(mesh_runtime::InstanceState::Exited { code }) =
            report.status.as_ref().map(|s| &s.state)
        {
            replica.exit_code = Some(*code);
        }
        observed.replicas = vec![replica];
        store.put_observed(&id, observed)?;
        if report.phase != Phase::Failed {
            if let Some(mut d) = store.desired(&id)? {
                if let Some(h) = d.history.iter_mut().find(|h| h.version == spec.version) {
                    h.reached_running = true;
                }
                store.put_desired(&d)?;
            }
        }
        Ok(if report.phase == Phase::Failed {
            ApplyAction::Failed
        } else {
            action
        })
    }

    /// `DELETE /deployments/{name}`: uninstalls every replica on this node and forgets it.
    pub async fn delete(&self, id: &WorkloadId) -> Result<Deployment, ApiError> {
        let lock = self.workload_lock(id);
        let _guard = lock.lock().await;
        let store = &self.inner.store;
        if store.desired(id)?.is_none() {
            return Err(ApiError::not_found(id));
        }
        let view = self.view(id, false)?;
        store.set_pending(
            id,
            &Pending::Delete {
                since: now_millis(),
            },
        )?;
        store.flush()?;
        self.finish_delete(id).await?;
        self.notify(id);
        Ok(Deployment {
            phase: Phase::Deleted,
            ..view
        })
    }

    /// Uninstalls what is left of a workload and removes it from the store.
    pub(crate) async fn finish_delete(&self, id: &WorkloadId) -> Result<(), ApiError> {
        let store = &self.inner.store;
        let desired = store.desired(id)?;
        let observed = store.observed(id)?;
        for replica in &observed.replicas {
            let Some(handle) = &replica.handle else {
                continue;
            };
            let spec = match store.version(id, &replica.version)? {
                Some(s) => s,
                None => match &desired {
                    Some(d) => d.spec.clone(),
                    None => continue,
                },
            };
            let rec = Recorder {
                store,
                ordinal: replica.ordinal,
                reason: &replica.engine_reason,
            };
            self.inner
                .controller
                .uninstall(&spec, handle, &rec)
                .await
                .map_err(|e| ApiError::internal(format!("cannot remove {id}: {e}")))?;
        }
        store.remove_workload(id)?;
        store.flush()?;
        Ok(())
    }

    /// `GET /deployments/{name}` (with events when `detailed`).
    pub fn view(&self, id: &WorkloadId, detailed: bool) -> Result<Deployment, ApiError> {
        let store = &self.inner.store;
        let desired = store.desired(id)?.ok_or_else(|| ApiError::not_found(id))?;
        let observed = store.observed(id)?;
        let events = if detailed {
            store.events(id, DESCRIBE_EVENTS)?
        } else {
            Vec::new()
        };
        Ok(view::deployment(
            &self.inner.id,
            &desired,
            &observed,
            events,
        ))
    }

    /// `GET /deployments`.
    pub fn list(&self) -> Result<Vec<Deployment>, ApiError> {
        let store = &self.inner.store;
        let mut out = Vec::new();
        for desired in store.list_desired()? {
            let observed = store.observed(&desired.spec.id())?;
            out.push(view::deployment(
                &self.inner.id,
                &desired,
                &observed,
                Vec::new(),
            ));
        }
        Ok(out)
    }

    /// `GET /deployments/{name}/status`.
    pub fn status(&self, id: &WorkloadId) -> Result<Status, ApiError> {
        let d = self.view(id, false)?;
        Ok(Status {
            name: d.name,
            namespace: d.namespace,
            version: d.version,
            phase: d.phase,
            error: d.error,
            replicas: d.replicas,
        })
    }

    /// `GET /deployments/{name}/logs`.
    pub async fn logs(&self, id: &WorkloadId, tail: Option<usize>) -> Result<Logs, ApiError> {
        let store = &self.inner.store;
        store.desired(id)?.ok_or_else(|| ApiError::not_found(id))?;
        let tail = tail.map(|t| t.min(MAX_LOG_LINES)).or(Some(MAX_LOG_LINES));
        let mut lines: Vec<LogLine> = Vec::new();
        for replica in store.observed(id)?.replicas {
            if replica.job.is_some() {
                lines.extend(self.job_logs(id, &replica, tail).await?);
                continue;
            }
            let Some(handle) = &replica.handle else {
                continue;
            };
            let engine = self.registry().get(&handle.engine).ok_or_else(|| {
                ApiError::internal(format!(
                    "engine {} is not enabled on this node",
                    handle.engine
                ))
            })?;
            let got = engine
                .logs(handle, LogOptions { tail })
                .await
                .map_err(|e| ApiError::unavailable(e.to_string()))?;
            lines.extend(got);
        }
        Ok(Logs {
            name: id.name.clone(),
            namespace: id.namespace.clone(),
            lines,
        })
    }

    /// `GET /events`.
    pub fn events(&self, id: Option<&WorkloadId>, limit: usize) -> Result<Vec<Event>, ApiError> {
        let store = &self.inner.store;
        Ok(match id {
            Some(id) => store.events(id, limit)?,
            None => store.all_events(limit)?,
        })
    }
}

/// A replica that never got an instance.
pub(crate) fn failed_replica(
    spec: &WorkloadSpec,
    engine: &str,
    reason: &str,
    error: String,
) -> ReplicaRecord {
    ReplicaRecord {
        ordinal: 0,
        phase: Phase::Failed,
        engine: engine.to_string(),
        engine_reason: reason.to_string(),
        version: spec.version.clone(),
        handle: None,
        job: spec
            .runs_to_completion()
            .then(|| crate::jobs::unplaceable(&error)),
        error: Some(error),
        exit_code: None,
        restarts: 0,
        updated_at: now_millis(),
    }
}

/// Why replicas beyond this node's one were not placed when the node applies alone. A node
/// runs at most one replica of a workload; the others go to other capable peers.
pub(crate) fn local_placement_notes(spec: &WorkloadSpec, replicas: u32) -> Vec<String> {
    if spec.kind == WorkloadKind::DaemonSet || replicas <= 1 {
        return Vec::new();
    }
    vec![format!(
        "placed 1 of {replicas} replicas: a node runs at most one replica and no other capable node is known"
    )]
}
