//! The one recorder of lifecycle steps: each step becomes a stored event (with a job
//! attempt's correlation id when there is one), and an engine handle is persisted as soon as
//! it exists (so a crash right after an install still finds the instance).

use std::time::Duration;

use mesh_protocol::{Event, Outcome, Phase, Step, WorkloadSpec};
use mesh_runtime::{now_millis, Handle, Observer};

use crate::metrics::Metrics;
use crate::service::Node;
use crate::store::{ReplicaRecord, Store};

/// What a new engine handle does to the replica's stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnInstall {
    /// A deploy or update: a new replica record beside the one it replaces.
    NewReplica,
    /// A job attempt: the handle goes on the job's replica record.
    SetHandle,
    /// Recovery: nothing (it stores what it finds itself).
    Nothing,
}

/// Records lifecycle steps as stored events and persists handles as soon as they exist.
#[derive(Debug)]
pub(crate) struct Recorder<'a> {
    store: &'a Store,
    /// Where step durations are observed (recovery's quiet recorder observes nothing).
    metrics: Option<&'a Metrics>,
    ordinal: u32,
    reason: &'a str,
    /// A job attempt's correlation id (empty otherwise): on every event and log line.
    correlation: &'a str,
    on_install: OnInstall,
    /// Recovery records its own events; the steps it drives are not recorded twice.
    record_steps: bool,
}

impl<'a> Recorder<'a> {
    /// For a deploy or update of replica `ordinal`, its engine chosen for `reason`.
    pub(crate) fn replica(node: &'a Node, ordinal: u32, reason: &'a str) -> Self {
        Self {
            store: node.store(),
            metrics: Some(node.metrics()),
            ordinal,
            reason,
            correlation: "",
            on_install: OnInstall::NewReplica,
            record_steps: true,
        }
    }

    /// For a job attempt of replica `ordinal`, its events tagged with `correlation`.
    pub(crate) fn job(node: &'a Node, ordinal: u32, correlation: &'a str) -> Self {
        Self {
            store: node.store(),
            metrics: Some(node.metrics()),
            ordinal,
            reason: "",
            correlation,
            on_install: OnInstall::SetHandle,
            record_steps: true,
        }
    }

    /// For recovery's own calls into the controller: records nothing.
    pub(crate) fn quiet(store: &'a Store) -> Self {
        Self {
            store,
            metrics: None,
            ordinal: 0,
            reason: "",
            correlation: "",
            on_install: OnInstall::Nothing,
            record_steps: false,
        }
    }
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
        if !self.record_steps {
            return;
        }
        if let Some(metrics) = self.metrics {
            metrics.step(step, engine, outcome, took);
        }
        let duration_us = took.as_micros() as u64;
        let workload = spec.id().to_string();
        if self.correlation.is_empty() {
            tracing::debug!(%workload, %step, ?outcome, us = duration_us, %message, "lifecycle step");
        } else {
            // The job's tracing span carries the workload and the correlation id.
            match outcome {
                Outcome::Ok => tracing::info!(%step, us = duration_us, %message, "job step"),
                Outcome::Failed => {
                    tracing::warn!(%step, us = duration_us, %message, "job step failed")
                }
            }
        }
        let event = Event {
            seq: 0,
            at: now_millis(),
            workload,
            version: spec.version.clone(),
            step,
            outcome,
            duration_us,
            engine: (!engine.is_empty()).then(|| engine.to_string()),
            message: message.to_string(),
            correlation: (!self.correlation.is_empty()).then(|| self.correlation.to_string()),
        };
        if let Err(e) = self.store.append_event(event) {
            tracing::error!(error = %e, "cannot record event");
        }
    }

    fn installed(&self, spec: &WorkloadSpec, handle: &Handle) {
        if self.on_install == OnInstall::Nothing {
            return;
        }
        let id = spec.id();
        let result = self.store.observed(&id).and_then(|mut obs| {
            match self.on_install {
                OnInstall::NewReplica => {
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
                    // An update keeps the old replica until it is replaced: the new one is
                    // stored beside it.
                    obs.replicas
                        .retain(|r| !(r.ordinal == self.ordinal && r.version == spec.version));
                    obs.replicas.push(record);
                }
                OnInstall::SetHandle => {
                    if let Some(r) = obs
                        .replicas
                        .iter_mut()
                        .find(|r| r.ordinal == self.ordinal && r.version == spec.version)
                    {
                        r.handle = Some(handle.clone());
                        r.updated_at = now_millis();
                    }
                }
                OnInstall::Nothing => {}
            }
            self.store.put_observed(&id, &obs)?;
            self.store.flush()
        });
        if let Err(e) = result {
            tracing::error!(workload = %id, error = %e, "cannot persist handle");
        }
    }
}
