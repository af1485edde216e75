//! The node service: runs, deletes and reads this node's replicas of workloads. The mesh
//! layer (`crate::mesh`) decides what runs where and calls it.
//!
//! Operations on one workload are serialised by a per-workload lock; deploys of different
//! workloads run concurrently up to [`MAX_CONCURRENT_DEPLOYS`]. The intent of every apply
//! and delete is written (and flushed) before anything is done, so a crash in the middle is
//! finished by [`Node::recover_all`] at the next start.

//! # Layout
//!
//! - this file: [`Node`], reads (view, list, logs, events) and module keeping;
//! - [`apply`]: running this node's replica of a workload record;
//! - [`delete`]: removing it;
//! - [`recorder`]: lifecycle steps as stored events.

mod apply;
mod delete;
pub mod error;
mod recorder;

pub use error::Error;

pub(crate) use recorder::Recorder;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mesh_engine_wasm::{Digest, ModuleStore};
use mesh_protocol::api::{ApplyRequest, Deployment, Health, LogLine, Logs, MAX_MODULE_BYTES};
use mesh_protocol::{Event, Outcome, Step, WorkloadId};
use mesh_runtime::{now_millis, Controller, LogOptions, Policy, Registry};
use tokio::sync::{mpsc, Semaphore};

use crate::store::Store;
use crate::view;

/// Deploys running at once on a node; further applies wait for a slot.
pub const MAX_CONCURRENT_DEPLOYS: usize = 32;
/// Events shown by `describe`.
pub const DESCRIBE_EVENTS: usize = 50;
/// Largest `--tail` served; bounds the answer.
pub const MAX_LOG_LINES: usize = 10_000;
/// Workload changes queued for the mesh announcer (it also sweeps periodically).
pub const CHANGE_CHANNEL: usize = 1024;

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
    trust: crate::trust::Trust,
    locks: Mutex<HashMap<WorkloadId, Arc<tokio::sync::Mutex<()>>>>,
    deploys: Semaphore,
    started_at: u64,
    /// Told about every workload whose local state changed (the mesh announcer listens).
    changes: mpsc::Sender<WorkloadId>,
    /// Where bundled WASM modules are kept (the wasm engine's store).
    modules: Option<ModuleStore>,
    metrics: Arc<crate::metrics::Metrics>,
}

/// What a node is made of; the channel of workload changes is made first, by whoever
/// listens to it (the daemon hands its receiver to the mesh).
#[derive(Debug)]
pub struct Parts {
    pub id: String,
    pub store: Store,
    pub controller: Controller,
    pub policy: Policy,
    pub trust: crate::trust::Trust,
    pub changes: mpsc::Sender<WorkloadId>,
    pub modules: Option<ModuleStore>,
    /// The node's metrics (shared with its network task and served at `GET /metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Node {
    pub fn new(parts: Parts) -> Self {
        Self {
            inner: Arc::new(Inner {
                id: parts.id,
                store: parts.store,
                controller: parts.controller,
                policy: parts.policy,
                trust: parts.trust,
                locks: Mutex::new(HashMap::new()),
                deploys: Semaphore::new(MAX_CONCURRENT_DEPLOYS),
                started_at: now_millis(),
                changes: parts.changes,
                modules: parts.modules,
                metrics: parts.metrics,
            }),
        }
    }

    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The module store, when this node keeps modules.
    pub fn module_store(&self) -> Option<&ModuleStore> {
        self.inner.modules.as_ref()
    }

    /// Stores the module bytes an apply carries, after checking each hashes to its stated
    /// digest. Returns the digests stored.
    pub async fn store_modules(&self, req: &ApplyRequest) -> Result<Vec<Digest>, Error> {
        let mut stored = Vec::new();
        for m in &req.modules {
            let Some(bytes) = &m.bytes else { continue };
            let digest = Digest::parse(&m.digest)
                .map_err(|e| Error::Invalid(format!("bundled module {}: {e}", m.path)))?;
            if bytes.len() > MAX_MODULE_BYTES {
                return Err(Error::Invalid(format!(
                    "bundled module {} is {} bytes; at most {MAX_MODULE_BYTES}",
                    m.path,
                    bytes.len()
                )));
            }
            let Some(store) = self.module_store().cloned() else {
                return Err(Error::Invalid(format!(
                    "this node keeps no WASM modules; cannot take {}",
                    m.path
                )));
            };
            let bytes = bytes.clone();
            tokio::task::spawn_blocking(move || store.put_expected(&digest, &bytes))
                .await
                .map_err(|e| Error::Internal(format!("module store task: {e}")))?
                .map_err(|e| Error::Invalid(format!("bundled module {}: {e}", m.path)))?;
            stored.push(digest);
        }
        Ok(stored)
    }

    /// Tells the watcher that `id` changed. A full watcher misses nothing for long: the
    /// announcer also sweeps every workload periodically.
    pub(crate) fn notify(&self, id: &WorkloadId) {
        let _ = self.inner.changes.try_send(id.clone());
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.inner.metrics
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn registry(&self) -> &Arc<Registry> {
        self.inner.controller.registry()
    }

    /// The node's trust policy.
    pub fn trust(&self) -> &crate::trust::Trust {
        &self.inner.trust
    }

    /// The engines this node may use: its configured policy, narrowed by the trust file's
    /// `node.engines` (reloaded with it).
    pub(crate) fn engine_policy(&self) -> Policy {
        let mut p = self.inner.policy.clone();
        let t = self.inner.trust.policy();
        p.denied.extend(t.engines.denied.iter().cloned());
        if let Some(allow) = &t.engines.allowed {
            p.allowed = Some(match p.allowed.take() {
                Some(a) => a.intersection(allow).cloned().collect(),
                None => allow.clone(),
            });
        }
        p
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
    pub fn health(&self) -> Result<Health, Error> {
        Ok(Health {
            status: "ok".to_string(),
            node: self.inner.id.clone(),
            software_version: crate::version::LONG.to_string(),
            workloads: self.inner.store.list_desired()?.len(),
            engines: self.registry().infos(),
            started_at: self.inner.started_at,
            // The mesh fills it in (`GET /health`).
            self_healing: false,
        })
    }

    /// `GET /deployments/{name}` (with events when `detailed`).
    pub fn view(&self, id: &WorkloadId, detailed: bool) -> Result<Deployment, Error> {
        let store = &self.inner.store;
        let desired = store
            .desired(id)?
            .ok_or_else(|| Error::NotFound(id.clone()))?;
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
    pub fn list(&self) -> Result<Vec<Deployment>, Error> {
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

    /// `GET /deployments/{name}/logs`.
    pub async fn logs(&self, id: &WorkloadId, tail: Option<usize>) -> Result<Logs, Error> {
        let store = &self.inner.store;
        store
            .desired(id)?
            .ok_or_else(|| Error::NotFound(id.clone()))?;
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
                Error::Internal(format!(
                    "engine {} is not enabled on this node",
                    handle.engine
                ))
            })?;
            let got = engine
                .logs(handle, LogOptions { tail })
                .await
                .map_err(|e| Error::Unavailable(e.to_string()))?;
            lines.extend(got);
        }
        Ok(Logs {
            name: id.name.clone(),
            namespace: id.namespace.clone(),
            lines,
        })
    }

    /// `GET /events`.
    pub fn events(&self, id: Option<&WorkloadId>, limit: usize) -> Result<Vec<Event>, Error> {
        let store = &self.inner.store;
        Ok(match id {
            Some(id) => store.events(id, limit)?,
            None => store.all_events(limit)?,
        })
    }
}
