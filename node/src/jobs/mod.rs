//! Run-to-completion workloads on a node: Jobs and run-to-completion Functions.
//!
//! An apply starts a run ([`Node::start_job`]): the first attempt is provisioned and started
//! before the apply answers. From then on the monitor advances the run ([`Node::advance_job`]):
//! an exit is collected (exit code, the attempt's last log lines, declared outputs when it
//! succeeded), the instance is torn down (after a success, the run is stored as Succeeded
//! first, so that no one waits for its log lines and its removal), and a failure is retried
//! after its backoff until `backoffLimit` or the deadline ends the run. Every transition is
//! written (and flushed) to the store before the next one starts, so after a restart
//! [`Node::recover_job`] carries the run on:
//!
//! - a finished run stays Succeeded or Failed and is not run again; its instance, if the node
//!   stopped before removing it and the run does not keep it, is removed then;
//! - an attempt whose instance is still there is adopted, and the monitor keeps watching it
//!   (an exit that happened while the node was down is collected as usual);
//! - an attempt whose instance vanished while the node was down, or that was being
//!   provisioned, counts as a failed attempt and is retried within `backoffLimit` and the
//!   deadline; only a first attempt cut short inside its apply starts the run afresh;
//! - a run waiting out its backoff starts its next attempt when due. The deadline is wall
//!   clock time from the first start: time the node was down counts.
//!
//! Every attempt has a correlation id (`job-<version>-<nonce>-<attempt>`): its events carry
//! it, its log lines are tagged with it, and the node's tracing output about it runs in a
//! `job` span with the id as a field.

use std::time::Duration;

use mesh_protocol::api::ApplyAction;
use mesh_protocol::job::{JobError, JobPhase};
use mesh_protocol::{Outcome, Phase, Step, WorkloadId, WorkloadSpec};
use mesh_runtime::engine::InstallContext;
use mesh_runtime::job::{self, AttemptState, Next, Policy};
use mesh_runtime::{now_millis, Handle, Observer, Selection};
use tracing::Instrument as _;

use crate::service::Error;
use crate::service::Node;
use crate::store::{Observed, ReplicaRecord};

mod recorder;
mod recover;

use crate::service::Recorder;
pub(crate) use recorder::unplaceable;
use recorder::{correlation, span, status};

/// Whether an attempt begins under an apply's durable intent (`Pending::Apply`, flushed
/// before the lifecycle: a crash redoes the apply) or on its own (a retry by the monitor).
#[derive(Debug, Clone, Copy)]
enum Intent {
    Durable,
    None,
}

impl Node {
    fn job_policy(&self, spec: &WorkloadSpec) -> Policy {
        Policy::new(spec, self.controller().config())
    }

    /// Writes one replica into the stored observation (by ordinal) and flushes.
    fn persist(&self, id: &WorkloadId, replica: &ReplicaRecord) -> Result<(), Error> {
        self.write(id, replica)?;
        self.store().flush()?;
        Ok(())
    }

    /// [`Node::persist`] without the flush: for a first attempt, whose apply's intent is
    /// durable (a crash before the next flush finishes the apply at the next start).
    fn write(&self, id: &WorkloadId, replica: &ReplicaRecord) -> Result<(), Error> {
        let store = self.store();
        let mut observed = store.observed(id)?;
        match observed
            .replicas
            .iter_mut()
            .find(|r| r.ordinal == replica.ordinal)
        {
            Some(r) => *r = replica.clone(),
            None => observed.replicas.push(replica.clone()),
        }
        store.put_observed(id, &observed)?;
        Ok(())
    }

    /// Starts a fresh run of `spec`: removes what earlier runs or versions left, then
    /// provisions and starts the first attempt. Caller holds the workload lock.
    pub(crate) async fn start_job(
        &self,
        spec: &WorkloadSpec,
        selection: &Selection,
        observed: &mut Observed,
        existed: bool,
    ) -> Result<ApplyAction, Error> {
        let id = spec.id();
        let store = self.store();
        for old in std::mem::take(&mut observed.replicas) {
            let Some(handle) = &old.handle else { continue };
            let old_spec = store
                .version(&id, &old.version)?
                .unwrap_or_else(|| spec.clone());
            let cid = correlation(&old);
            let rec = Recorder::job(self, old.ordinal, &cid);
            if let Err(e) = self.controller().uninstall(&old_spec, handle, &rec).await {
                tracing::warn!(workload = %id, error = %e, "could not remove the previous instance");
            }
        }
        store.clear_job_run(&id)?;
        let now = now_millis();
        let run = job::new_run(spec, &self.job_policy(spec), now);
        let mut replica = ReplicaRecord {
            ordinal: 0,
            phase: Phase::Pending,
            engine: selection.engine.clone(),
            engine_reason: selection.reason.clone(),
            version: spec.version.clone(),
            handle: None,
            error: None,
            exit_code: None,
            restarts: 0,
            updated_at: now,
            job: Some(run),
        };
        observed.replicas = vec![replica.clone()];
        store.put_observed(&id, observed)?;
        self.begin_attempt(spec, &mut replica, Intent::Durable)
            .await?;
        let phase = replica.phase;
        observed.replicas = vec![replica];
        if phase != Phase::Failed {
            if let Some(mut d) = store.desired(&id)? {
                if let Some(h) = d.history.iter_mut().find(|h| h.version == spec.version) {
                    h.reached_running = true;
                }
                store.put_desired(&d)?;
            }
        }
        Ok(match (phase, existed) {
            (Phase::Failed, _) => ApplyAction::Failed,
            (_, true) => ApplyAction::Updated,
            (_, false) => ApplyAction::Created,
        })
    }

    /// Provisions and starts the next attempt of a job replica. A provision failure ends the
    /// run; a start failure is a failed attempt (retried).
    async fn begin_attempt(
        &self,
        spec: &WorkloadSpec,
        r: &mut ReplicaRecord,
        intent: Intent,
    ) -> Result<(), Error> {
        let id = spec.id();
        // Under an apply's durable intent the attempt's states are written, not flushed (the
        // engine's handle still is, before the instance starts): the WASM bench's trace put
        // each flush at 0.2–0.35 ms of a warm hello's apply.
        let keep = |r: &ReplicaRecord| match intent {
            Intent::Durable => self.write(&id, r),
            Intent::None => self.persist(&id, r),
        };
        let cid = job::begin_attempt(status(r));
        let attempt = status(r).attempts;
        r.phase = Phase::Installing;
        r.error = None;
        r.updated_at = now_millis();
        keep(r)?;
        let rec = Recorder::job(self, r.ordinal, &cid);
        async {
            tracing::info!(attempt, engine = %r.engine, "attempt starting");
            let ctx = InstallContext {
                node: self.id().to_string(),
                replica: r.ordinal,
            };
            let engine = r.engine.clone();
            match self
                .controller()
                .start_attempt(spec, &engine, &ctx, &rec)
                .await
            {
                Ok(handle) => {
                    tracing::info!(attempt, instance = %handle.instance, "attempt running");
                    r.handle = Some(handle);
                    r.phase = Phase::Running;
                    job::attempt_running(status(r), now_millis());
                    r.updated_at = now_millis();
                    keep(r)
                }
                Err((error, _)) if error.phase == JobPhase::Provision => {
                    job::finish(status(r), Some(error.clone()), now_millis());
                    self.settle(spec, r, &rec)
                }
                Err((error, handle)) => {
                    r.handle = handle.clone();
                    self.attempt_failed(spec, r, handle, error, None, &rec)
                        .await
                }
            }
        }
        .instrument(span(&id, &cid))
        .await
    }

    /// One look at a job replica by the monitor: notices exits and the deadline, and starts
    /// retries that are due. Returns whether anything changed. Caller holds the workload lock.
    pub(crate) async fn advance_job(
        &self,
        spec: &WorkloadSpec,
        r: &mut ReplicaRecord,
    ) -> Result<bool, Error> {
        let Some(st) = r.job.clone() else {
            return Ok(false);
        };
        if st.finished() {
            return Ok(false);
        }
        let policy = self.job_policy(spec);
        let now = now_millis();
        let cid = st.correlation.clone();
        let rec = Recorder::job(self, r.ordinal, &cid);
        let id = spec.id();
        async {
            match (r.handle.clone(), r.phase) {
                (Some(handle), Phase::Running | Phase::Unknown) => {
                    if policy.deadline_passed(&st, now) {
                        self.deadline_exceeded(spec, &policy, r, Some(handle), &rec)
                            .await?;
                        return Ok(true);
                    }
                    let Some(engine) = self.registry().get(&handle.engine).cloned() else {
                        return Ok(false);
                    };
                    let timeout = self.controller().config().step_timeout;
                    let polled = match tokio::time::timeout(timeout, engine.status(&handle)).await {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(_) => Err(format!("no status within {timeout:?}")),
                    };
                    match polled {
                        Err(e) => {
                            if r.phase == Phase::Unknown {
                                return Ok(false);
                            }
                            r.phase = Phase::Unknown;
                            r.error = Some(format!("engine {} unreachable: {e}", handle.engine));
                            r.updated_at = now;
                            tracing::warn!(error = %e, "engine unreachable");
                            self.persist(&id, r)?;
                            Ok(true)
                        }
                        Ok(s) => match job::attempt_state(&s) {
                            AttemptState::Running if r.phase == Phase::Unknown => {
                                r.phase = Phase::Running;
                                r.error = None;
                                self.persist(&id, r)?;
                                Ok(true)
                            }
                            AttemptState::Running => Ok(false),
                            AttemptState::Succeeded { exit_code } => {
                                self.attempt_succeeded(spec, &policy, r, handle, exit_code, &rec)
                                    .await?;
                                Ok(true)
                            }
                            AttemptState::Failed { exit_code, error } => {
                                self.attempt_failed(spec, r, Some(handle), error, exit_code, &rec)
                                    .await?;
                                Ok(true)
                            }
                        },
                    }
                }
                (None, Phase::Pending) => {
                    if policy.deadline_passed(&st, now) {
                        self.deadline_exceeded(spec, &policy, r, None, &rec).await?;
                        Ok(true)
                    } else if st.next_attempt_at.is_some_and(|at| now >= at) {
                        self.begin_attempt(spec, r, Intent::None).await?;
                        Ok(true)
                    } else {
                        Ok(false)
                    }
                }
                _ => Ok(false),
            }
        }
        .instrument(span(&id, &cid))
        .await
    }

    /// Keeps the attempt's last log lines, tagged with its correlation id.
    async fn keep_logs(&self, id: &WorkloadId, r: &ReplicaRecord, handle: &Handle) {
        let Some(st) = &r.job else { return };
        let lines = self
            .controller()
            .attempt_logs(handle, &st.correlation)
            .await;
        if let Err(e) = self.store().put_attempt_logs(id, st.attempts, &lines) {
            tracing::error!(error = %e, "cannot keep the attempt's logs");
        }
    }

    /// Exit 0: declared outputs, the run ends; then its logs are kept and its instance torn
    /// down.
    async fn attempt_succeeded(
        &self,
        spec: &WorkloadSpec,
        policy: &Policy,
        r: &mut ReplicaRecord,
        handle: Handle,
        exit_code: i32,
        rec: &Recorder<'_>,
    ) -> Result<(), Error> {
        let id = spec.id();
        let attempt = status(r).attempts;
        rec.step(
            spec,
            &handle.engine,
            Step::Exit,
            Outcome::Ok,
            Duration::ZERO,
            &format!("attempt {attempt} exited with code {exit_code}"),
        );
        let outputs = if policy.outputs.is_empty() {
            Ok(Vec::new())
        } else {
            let dest = self.store().outputs_dir(&id);
            self.controller()
                .collect_outputs(spec, &handle, &policy.outputs, &dest, rec)
                .await
        };
        r.exit_code = Some(exit_code);
        let now = now_millis();
        match outputs {
            Ok(files) => job::attempt_succeeded(status(r), exit_code, files, now),
            Err(e) => {
                let st = status(r);
                st.exit_code = Some(exit_code);
                if let Some(a) = st.current_mut() {
                    a.exit_code = Some(exit_code);
                }
                job::finish(st, Some(e), now);
            }
        }
        // The run's outcome is known: it is settled (stored, announced) first, and the
        // attempt's log lines are kept and its instance torn down after, so that whoever
        // waits for the run's end does not wait for them. Just after an exit, the first call
        // to Podman about the container waited 95-260 ms for Podman to finish with the pod
        // (a trace of the engines bench's Job, docs/benchmarks.md). Until the lines are kept,
        // the logs of the run are read from the instance; a node stopped in between keeps
        // them and tears the instance down at its next start (`recover_job`).
        self.settle(spec, r, rec)?;
        self.keep_logs(&id, r, &handle).await;
        if let Err(e) = self.tear_down(spec, policy, r, handle, rec).await {
            // The run's outcome stands; what is left is its instance, which a delete (or the
            // node's next start) removes.
            let run = match &r.error {
                None => "the run succeeded".to_string(),
                Some(error) => error.clone(),
            };
            r.error = Some(format!("{run}; its instance is left: {e}"));
        }
        self.persist(&id, r)?;
        // The replica let go of its instance (or kept an error): its announcement says so.
        self.notify(&id);
        Ok(())
    }

    /// A failed attempt (non-zero exit, crash, start failure, lost instance): logs and
    /// teardown when there is an instance, then a retry after the backoff or the end of the
    /// run.
    async fn attempt_failed(
        &self,
        spec: &WorkloadSpec,
        r: &mut ReplicaRecord,
        handle: Option<Handle>,
        error: JobError,
        exit_code: Option<i32>,
        rec: &Recorder<'_>,
    ) -> Result<(), Error> {
        let id = spec.id();
        let policy = self.job_policy(spec);
        let attempt = status(r).attempts;
        rec.step(
            spec,
            &r.engine,
            Step::Exit,
            Outcome::Failed,
            Duration::ZERO,
            &format!("attempt {attempt} failed: {}", error.message),
        );
        if let Some(h) = &handle {
            self.keep_logs(&id, r, h).await;
        }
        if exit_code.is_some() {
            r.exit_code = exit_code;
        }
        let next = job::attempt_failed(&policy, status(r), error, exit_code, now_millis());
        if let Some(h) = handle {
            self.tear_down_or_fail(spec, &policy, r, h, rec).await;
        }
        match next {
            Next::RetryAt(at) if !status(r).finished() => {
                let wait = Duration::from_millis(at.saturating_sub(now_millis()));
                let limit = policy.backoff_limit;
                let failed = status(r).failed_attempts;
                rec.step(
                    spec,
                    &r.engine,
                    Step::Retry,
                    Outcome::Ok,
                    Duration::ZERO,
                    &format!(
                        "attempt {} in {}ms ({failed} of at most {} failed)",
                        attempt + 1,
                        wait.as_millis(),
                        limit + 1
                    ),
                );
                r.phase = Phase::Pending;
                r.error = None;
                r.updated_at = now_millis();
                self.persist(&id, r)
            }
            _ => self.settle(spec, r, rec),
        }
    }

    /// The deadline passed: stop the running attempt (if any), keep its logs, tear down; the
    /// run fails.
    async fn deadline_exceeded(
        &self,
        spec: &WorkloadSpec,
        policy: &Policy,
        r: &mut ReplicaRecord,
        handle: Option<Handle>,
        rec: &Recorder<'_>,
    ) -> Result<(), Error> {
        let id = spec.id();
        let error = policy.deadline_error();
        tracing::warn!(error = %error, "deadline exceeded");
        let now = now_millis();
        if let Some(h) = handle {
            if let Err(e) = self.controller().stop_attempt(spec, &h, rec).await {
                tracing::warn!(error = %e, "cannot stop the attempt");
            }
            self.keep_logs(&id, r, &h).await;
            let st = status(r);
            st.failed_attempts += 1;
            if let Some(a) = st.current_mut() {
                a.finished_at = Some(now);
            }
            job::finish(st, Some(error), now);
            self.tear_down_or_fail(spec, policy, r, h, rec).await;
        } else {
            job::finish(status(r), Some(error), now);
        }
        self.settle(spec, r, rec)
    }

    /// Stops and (unless the instance is kept) removes the attempt's instance. A teardown
    /// that fails keeps the handle, so that a delete tries again.
    async fn tear_down(
        &self,
        spec: &WorkloadSpec,
        policy: &Policy,
        r: &mut ReplicaRecord,
        handle: Handle,
        rec: &Recorder<'_>,
    ) -> Result<(), JobError> {
        let keep = policy.keep_instance && status(r).finished();
        let result = self.controller().teardown(spec, &handle, keep, rec).await;
        match &result {
            Ok(()) if keep => {
                status(r).kept_instance = true;
                r.handle = Some(handle);
            }
            Ok(()) => r.handle = None,
            Err(_) => r.handle = Some(handle),
        }
        result
    }

    /// [`Node::tear_down`] of a failed attempt: a teardown failure ends the run with a
    /// Teardown error, unless it already has one.
    async fn tear_down_or_fail(
        &self,
        spec: &WorkloadSpec,
        policy: &Policy,
        r: &mut ReplicaRecord,
        handle: Handle,
        rec: &Recorder<'_>,
    ) {
        if let Err(e) = self.tear_down(spec, policy, r, handle, rec).await {
            let st = status(r);
            if st.error.is_none() {
                job::finish(st, Some(e), now_millis());
            }
        }
    }

    /// Ends the run: the replica's phase and error follow the job's, an event says how it
    /// ended, and the replica is persisted.
    fn settle(
        &self,
        spec: &WorkloadSpec,
        r: &mut ReplicaRecord,
        rec: &Recorder<'_>,
    ) -> Result<(), Error> {
        let st = status(r).clone();
        let (phase, outcome, message) = match &st.error {
            None => (
                Phase::Succeeded,
                Outcome::Ok,
                format!(
                    "job succeeded after {} attempt{}",
                    st.attempts,
                    if st.attempts == 1 { "" } else { "s" }
                ),
            ),
            Some(e) => (Phase::Failed, Outcome::Failed, format!("job failed: {e}")),
        };
        r.phase = phase;
        r.error = st.error.as_ref().map(|e| e.to_string());
        r.updated_at = now_millis();
        rec.step(
            spec,
            &r.engine,
            Step::Exit,
            outcome,
            Duration::ZERO,
            &message,
        );
        self.persist(&spec.id(), r)?;
        // Announced at once (succeeded or failed), not at the next renewal round.
        self.notify(&spec.id());
        Ok(())
    }
}
