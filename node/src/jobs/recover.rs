//! Carrying job runs on after a restart, and their logs.

use mesh_protocol::api::LogLine;
use mesh_protocol::job::{JobError, JobPhase};
use mesh_protocol::{Phase, WorkloadId, WorkloadSpec};
use mesh_runtime::engine::LogOptions;
use mesh_runtime::{job, Recovered};
use tracing::Instrument as _;

use super::recorder::{span, status};
use crate::service::Error;
use crate::service::Node;
use crate::service::Recorder;
use crate::store::ReplicaRecord;

impl Node {
    /// Carries a job replica on after a node restart (see the module docs). `None`: the run
    /// must start afresh (the caller converges). Caller holds the workload lock.
    pub(crate) async fn recover_job(
        &self,
        spec: &WorkloadSpec,
        mut r: ReplicaRecord,
        desired_version: &str,
        interrupted: bool,
    ) -> Result<Option<ReplicaRecord>, Error> {
        let id = spec.id();
        let Some(st) = r.job.clone() else {
            return Ok(Some(r));
        };
        let cid = st.correlation.clone();
        let rec = Recorder::job(self, r.ordinal, &cid);
        let controller = self.controller();
        async {
            if st.finished() {
                if let Some(h) = r.handle.clone() {
                    match controller.recover(spec, &h, &rec).await {
                        Ok(Recovered::Gone) => {
                            r.handle = None;
                            status(&mut r).kept_instance = false;
                            self.persist(&id, &r)?;
                        }
                        // The run ended and was stored, and the node stopped before its
                        // teardown (or the teardown failed): the attempt's lines are kept,
                        // if they were not yet, and the instance goes now.
                        Ok(Recovered::Adopted(_)) if !st.kept_instance => {
                            if !self.store().has_attempt_logs(&id, st.attempts)? {
                                self.keep_logs(&id, &r, &h).await;
                            }
                            let policy = self.job_policy(spec);
                            match self.tear_down(spec, &policy, &mut r, h, &rec).await {
                                // What is left to say is the run's own error, if any.
                                Ok(()) => {
                                    r.error =
                                        status(&mut r).error.as_ref().map(|e| e.to_string())
                                }
                                Err(e) => tracing::warn!(error = %e, "cannot remove a finished run's instance"),
                            }
                            self.persist(&id, &r)?;
                        }
                        _ => {}
                    }
                }
                return Ok(Some(r));
            }
            if r.version != desired_version {
                if let Some(h) = &r.handle {
                    let _ = controller.uninstall(spec, h, &rec).await;
                }
                return Ok(None);
            }
            match (r.handle.clone(), r.phase) {
                (Some(h), Phase::Running | Phase::Unknown) => {
                    match controller.recover(spec, &h, &rec).await {
                        Ok(Recovered::Adopted(s)) => {
                            tracing::info!(instance = %h.instance, state = ?s.state, "attempt re-adopted");
                            Ok(Some(r))
                        }
                        Ok(Recovered::Gone) => {
                            let error = JobError::new(
                                JobPhase::Execution,
                                "the instance was lost while the node was down",
                            );
                            self.attempt_failed(spec, &mut r, None, error, None, &rec)
                                .await?;
                            r.handle = None;
                            self.persist(&id, &r)?;
                            Ok(Some(r))
                        }
                        Err(e) => {
                            r.phase = Phase::Unknown;
                            r.error = Some(format!("cannot recover: {e}"));
                            self.persist(&id, &r)?;
                            Ok(Some(r))
                        }
                    }
                }
                (None, Phase::Pending) if st.next_attempt_at.is_some() => Ok(Some(r)),
                (handle, _) => {
                    // Cut short before its attempt ran (provisioning, or no attempt yet).
                    if let Some(h) = handle {
                        if let Err(e) = controller.uninstall(spec, &h, &rec).await {
                            tracing::warn!(error = %e, "cannot remove a half-made instance");
                        }
                        r.handle = None;
                    }
                    if st.attempts == 0 || (interrupted && st.attempts == 1) {
                        return Ok(None);
                    }
                    let error = JobError::new(
                        JobPhase::Provision,
                        "interrupted by a node restart before the attempt started",
                    );
                    self.attempt_failed(spec, &mut r, None, error, None, &rec)
                        .await?;
                    Ok(Some(r))
                }
            }
        }
        .instrument(span(&id, &cid))
        .await
    }

    /// Log lines of a job replica: the kept lines of its finished attempts, then the live
    /// lines of the attempt that runs now, each tagged with its correlation id; the last
    /// `tail` overall.
    pub(crate) async fn job_logs(
        &self,
        id: &WorkloadId,
        r: &ReplicaRecord,
        tail: Option<usize>,
    ) -> Result<Vec<LogLine>, Error> {
        let kept = self.store().attempt_logs_by_attempt(id)?;
        let last_kept =
            |kept: &[(u32, Vec<LogLine>)], attempt: u32| kept.iter().any(|(a, _)| *a == attempt);
        let flatten = |kept: Vec<(u32, Vec<LogLine>)>| -> Vec<LogLine> {
            kept.into_iter().flat_map(|(_, lines)| lines).collect()
        };
        let running = r
            .job
            .as_ref()
            .filter(|j| !j.finished() && matches!(r.phase, Phase::Running | Phase::Unknown));
        // A run settled just before its last attempt's lines were kept: they are still in the
        // instance (see `attempt_succeeded`). Decided on the same read as the lines shown.
        let unkept = r
            .job
            .as_ref()
            .filter(|j| j.finished() && j.attempts > 0 && !last_kept(&kept, j.attempts));
        let mut lines = flatten(kept);
        if let (Some(st), Some(handle)) = (running.or(unkept), &r.handle) {
            if let Some(engine) = self.registry().get(&handle.engine) {
                match engine.logs(handle, LogOptions { tail }).await {
                    Ok(live) => lines.extend(job::tag(live, &st.correlation)),
                    Err(mesh_runtime::Error::Unsupported { .. }) => {}
                    Err(e) => {
                        // Kept and torn down meanwhile: the kept lines are the whole story.
                        let again = self.store().attempt_logs_by_attempt(id)?;
                        match unkept {
                            Some(j) if last_kept(&again, j.attempts) => lines = flatten(again),
                            _ => return Err(Error::Unavailable(e.to_string())),
                        }
                    }
                }
            }
        }
        if let Some(n) = tail {
            lines.drain(..lines.len().saturating_sub(n));
        }
        Ok(lines)
    }
}
