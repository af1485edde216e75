//! A job attempt's steps as events carrying its correlation id, and the small helpers on a
//! job replica's status.

use std::time::Duration;

use mesh_protocol::job::{JobError, JobPhase, JobStatus};
use mesh_protocol::{Event, Outcome, Step, WorkloadId, WorkloadSpec};
use mesh_runtime::{job, now_millis, Handle, Observer};

use crate::store::{ReplicaRecord, Store};

/// Records a job attempt's steps as events carrying its correlation id (the tracing span
/// carries it for the log line), and persists the instance's handle as soon as it exists.
pub(super) struct JobRecorder<'a> {
    pub(super) store: &'a Store,
    pub(super) ordinal: u32,
    pub(super) correlation: &'a str,
}

impl Observer for JobRecorder<'_> {
    fn step(
        &self,
        spec: &WorkloadSpec,
        engine: &str,
        step: Step,
        outcome: Outcome,
        took: Duration,
        message: &str,
    ) {
        let duration_us = took.as_micros() as u64;
        match outcome {
            Outcome::Ok => tracing::info!(%step, us = duration_us, %message, "job step"),
            Outcome::Failed => tracing::warn!(%step, us = duration_us, %message, "job step failed"),
        }
        let event = Event {
            seq: 0,
            at: now_millis(),
            workload: spec.id().to_string(),
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
        let id = spec.id();
        let result = self.store.observed(&id).and_then(|mut obs| {
            if let Some(r) = obs
                .replicas
                .iter_mut()
                .find(|r| r.ordinal == self.ordinal && r.version == spec.version)
            {
                r.handle = Some(handle.clone());
                r.updated_at = now_millis();
            }
            self.store.put_observed(&id, &obs)?;
            self.store.flush()
        });
        if let Err(e) = result {
            tracing::error!(workload = %id, error = %e, "cannot persist handle");
        }
    }
}

/// The job status of a job replica (created empty on a replica that has none, which callers
/// rule out).
pub(super) fn status(r: &mut ReplicaRecord) -> &mut JobStatus {
    r.job.get_or_insert_with(JobStatus::default)
}

pub(super) fn correlation(r: &ReplicaRecord) -> String {
    r.job
        .as_ref()
        .map(|j| j.correlation.clone())
        .unwrap_or_default()
}

pub(super) fn span(id: &WorkloadId, correlation: &str) -> tracing::Span {
    tracing::info_span!("job", workload = %id, correlation = %correlation)
}

/// A job that failed before any attempt (no engine could run it).
pub(crate) fn unplaceable(error: &str) -> JobStatus {
    let mut status = JobStatus::default();
    job::finish(
        &mut status,
        Some(JobError::new(JobPhase::Provision, error)),
        now_millis(),
    );
    status
}
