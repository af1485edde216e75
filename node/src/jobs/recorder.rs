//! The small helpers on a job replica's status (its steps are recorded by
//! `service::Recorder::job`).

use mesh_protocol::job::{JobError, JobPhase, JobStatus};
use mesh_protocol::WorkloadId;
use mesh_runtime::{job, now_millis};

use crate::store::ReplicaRecord;

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
