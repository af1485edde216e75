//! Run-to-completion workloads (Jobs, run-to-completion Functions).
//!
//! Each attempt of a job run goes
//!
//! ```text
//! provision (Validate → Fetch → Prepare → Install) → run (Activate, wait for the exit)
//!   → collect (exit code, last logs, declared outputs) → teardown (stop, remove)
//! ```
//!
//! on a fresh instance. The policy — retries with exponential backoff up to `backoffLimit`,
//! one deadline for the whole run from its first start, correlation ids — is plain functions
//! over [`JobStatus`] with `now` passed in ([`Policy`], [`begin_attempt`], [`attempt_failed`],
//! …). The operations of one attempt are [`Controller`] methods; the node drives them from its
//! monitor and persists the status after each transition, so a run survives a node restart.

use std::path::Path;
use std::time::{Duration, Instant};

use mesh_protocol::annotations;
use mesh_protocol::api::LogLine;
use mesh_protocol::job::{
    Artifact, Attempt, JobError, JobPhase, JobReason, JobStatus, DEFAULT_BACKOFF_LIMIT,
    MAX_ATTEMPT_HISTORY,
};
use mesh_protocol::spec::short_version;
use mesh_protocol::{Outcome, Step, WorkloadSpec};

use crate::engine::{Handle, InstallContext, InstanceState, InstanceStatus, LogOptions};
use crate::error::Error;
use crate::lifecycle::{Controller, ControllerConfig, Observer};

/// Log lines kept per attempt (the last ones).
pub const MAX_ATTEMPT_LOG_LINES: usize = 1000;

/// The rules of one job run, from its spec and the node's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Retries after a failed attempt.
    pub backoff_limit: u32,
    pub active_deadline: Option<Duration>,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Keep the last attempt's instance after the run.
    pub keep_instance: bool,
    pub outputs: Vec<String>,
}

impl Policy {
    pub fn new(spec: &WorkloadSpec, config: &ControllerConfig) -> Self {
        let job = spec.job.clone().unwrap_or_default();
        Self {
            backoff_limit: job.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT),
            active_deadline: job.active_deadline_ms.map(Duration::from_millis),
            backoff_base: config.job_backoff_base,
            backoff_max: config.job_backoff_max,
            keep_instance: spec
                .annotation(annotations::JOB_KEEP_INSTANCE)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            outputs: job.outputs,
        }
    }

    /// Pause before the next attempt after `failures` failed ones: base · 2^(failures-1),
    /// at most `backoff_max`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(32);
        self.backoff_base
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.backoff_max)
            .min(self.backoff_max)
    }

    /// When the deadline passes (Unix ms), once the run has started.
    pub fn deadline_at(&self, status: &JobStatus) -> Option<u64> {
        let limit = self.active_deadline?;
        Some(status.started_at? + limit.as_millis() as u64)
    }

    pub fn deadline_passed(&self, status: &JobStatus, now: u64) -> bool {
        self.deadline_at(status).is_some_and(|at| now >= at)
    }

    /// The error of a run stopped by its deadline.
    pub fn deadline_error(&self) -> JobError {
        let secs = self.active_deadline.map_or(0, |d| d.as_secs());
        JobError::new(
            JobPhase::Execution,
            format!("deadline exceeded after {secs}s"),
        )
        .with_reason(JobReason::DeadlineExceeded)
    }
}

/// A fresh run: no attempt yet. `now` makes the run id unique among runs of one version.
pub fn new_run(spec: &WorkloadSpec, policy: &Policy, now: u64) -> JobStatus {
    let version = short_version(&spec.version);
    JobStatus {
        run_id: format!(
            "job-{}-{:04x}",
            &version[..version.len().min(8)],
            now & 0xffff
        ),
        backoff_limit: policy.backoff_limit,
        active_deadline_ms: policy.active_deadline.map(|d| d.as_millis() as u64),
        ..JobStatus::default()
    }
}

/// Records the start of the next attempt and returns its correlation id.
pub fn begin_attempt(status: &mut JobStatus) -> String {
    status.attempts += 1;
    status.next_attempt_at = None;
    status.correlation = format!("{}-{}", status.run_id, status.attempts);
    status.history.push(Attempt {
        number: status.attempts,
        correlation: status.correlation.clone(),
        started_at: None,
        finished_at: None,
        exit_code: None,
        error: None,
    });
    let excess = status.history.len().saturating_sub(MAX_ATTEMPT_HISTORY);
    status.history.drain(..excess);
    status.correlation.clone()
}

/// The attempt's instance started: the run's deadline counts from its first start.
pub fn attempt_running(status: &mut JobStatus, now: u64) {
    status.started_at.get_or_insert(now);
    if let Some(a) = status.current_mut() {
        a.started_at = Some(now);
    }
}

/// Where a run goes after an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Start the next attempt at this time (Unix ms).
    RetryAt(u64),
    /// No more attempts: the run failed with [`JobStatus::error`].
    Failed,
}

/// Records a failed attempt and decides: retry after the backoff, or fail the run (retries
/// used up, or the deadline passed).
pub fn attempt_failed(
    policy: &Policy,
    status: &mut JobStatus,
    error: JobError,
    exit_code: Option<i32>,
    now: u64,
) -> Next {
    status.failed_attempts += 1;
    if exit_code.is_some() {
        status.exit_code = exit_code;
    }
    if let Some(a) = status.current_mut() {
        a.finished_at = Some(now);
        a.exit_code = exit_code;
        a.error = Some(error.clone());
    }
    if policy.deadline_passed(status, now) {
        let mut e = policy.deadline_error();
        e.message = format!("{}; last attempt: {}", e.message, error.message);
        finish(status, Some(e), now);
        return Next::Failed;
    }
    if status.failed_attempts > policy.backoff_limit {
        let e = JobError {
            message: format!(
                "{}; backoffLimit {} reached after {} attempts",
                error.message, policy.backoff_limit, status.attempts
            ),
            reason: Some(JobReason::BackoffLimitExceeded),
            ..error
        };
        finish(status, Some(e), now);
        return Next::Failed;
    }
    let at = now + policy.backoff(status.failed_attempts).as_millis() as u64;
    status.next_attempt_at = Some(at);
    Next::RetryAt(at)
}

/// Records a successful attempt and ends the run.
pub fn attempt_succeeded(status: &mut JobStatus, exit_code: i32, outputs: Vec<Artifact>, now: u64) {
    status.exit_code = Some(exit_code);
    status.outputs = outputs;
    if let Some(a) = status.current_mut() {
        a.finished_at = Some(now);
        a.exit_code = Some(exit_code);
    }
    finish(status, None, now);
}

/// Ends the run; `error` makes it a failure. A failure of the current attempt is recorded on
/// it too, when the attempt has none yet.
pub fn finish(status: &mut JobStatus, error: Option<JobError>, now: u64) {
    status.next_attempt_at = None;
    status.completed_at = Some(now);
    if let (Some(e), Some(a)) = (&error, status.history.last_mut()) {
        a.finished_at.get_or_insert(now);
        if a.error.is_none() {
            a.error = Some(e.clone());
        }
    }
    status.error = error;
}

/// What the instance of a running attempt is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptState {
    Running,
    Succeeded {
        exit_code: i32,
    },
    Failed {
        exit_code: Option<i32>,
        error: JobError,
    },
}

/// The attempt's state from its instance's status. Health is not a job's business: a job
/// runs until it exits.
pub fn attempt_state(status: &InstanceStatus) -> AttemptState {
    let failed = |exit_code, message: String| AttemptState::Failed {
        exit_code,
        error: JobError::new(JobPhase::Execution, message),
    };
    match &status.state {
        InstanceState::Created | InstanceState::Running => AttemptState::Running,
        InstanceState::Exited { code: 0 } => AttemptState::Succeeded { exit_code: 0 },
        InstanceState::Exited { code } => failed(Some(*code), format!("exited with code {code}")),
        InstanceState::Failed { reason } => failed(None, reason.clone()),
        InstanceState::Missing => failed(
            None,
            "the instance is gone (the engine no longer knows it)".to_string(),
        ),
    }
}

impl Controller {
    /// Provision and Activate of one attempt. A provision failure leaves nothing behind; a
    /// start failure hands back the installed instance, for its logs and its teardown.
    pub async fn start_attempt(
        &self,
        spec: &WorkloadSpec,
        engine: &str,
        ctx: &InstallContext,
        obs: &dyn Observer,
    ) -> Result<Handle, (JobError, Option<Handle>)> {
        let handle = self
            .provision(spec, engine, ctx, obs)
            .await
            .map_err(|(step, e)| {
                (
                    JobError::new(JobPhase::Provision, format!("{step} failed: {e}")),
                    None,
                )
            })?;
        match self.activate(spec, &handle, obs).await {
            Ok(()) => Ok(handle),
            Err(e) => Err((
                JobError::new(JobPhase::Execution, format!("Activate failed: {e}")),
                Some(handle),
            )),
        }
    }

    /// The last [`MAX_ATTEMPT_LOG_LINES`] lines of an attempt, each tagged with its
    /// correlation id. An engine without logs gives none.
    pub async fn attempt_logs(&self, handle: &Handle, correlation: &str) -> Vec<LogLine> {
        let Ok(engine) = self.engine(&handle.engine) else {
            return Vec::new();
        };
        let opts = LogOptions {
            tail: Some(MAX_ATTEMPT_LOG_LINES),
        };
        match tokio::time::timeout(self.config().step_timeout, engine.logs(handle, opts)).await {
            Ok(Ok(lines)) => tag(lines, correlation),
            Ok(Err(Error::Unsupported { .. })) => Vec::new(),
            Ok(Err(e)) => {
                tracing::warn!(instance = %handle.instance, error = %e, "cannot read the attempt's logs");
                Vec::new()
            }
            Err(_) => Vec::new(),
        }
    }

    /// The Collect step of a successful attempt: its declared outputs, copied into `dest`
    /// (emptied first). A missing or oversized output is an Artifact error.
    pub async fn collect_outputs(
        &self,
        spec: &WorkloadSpec,
        handle: &Handle,
        outputs: &[String],
        dest: &Path,
        obs: &dyn Observer,
    ) -> Result<Vec<Artifact>, JobError> {
        let artifact = |e: Error| JobError::new(JobPhase::Artifact, e.to_string());
        let engine = self.engine(&handle.engine).map_err(artifact)?;
        let work = async {
            reset_dir(dest).await?;
            engine.collect(handle, outputs, dest).await
        };
        let started = Instant::now();
        let result = match tokio::time::timeout(self.config().step_timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                what: "collecting outputs".to_string(),
                after: self.config().step_timeout,
            }),
        };
        let (outcome, message) = match &result {
            Ok(files) => (
                Outcome::Ok,
                format!(
                    "collected {} output file{} ({} bytes)",
                    files.len(),
                    if files.len() == 1 { "" } else { "s" },
                    files.iter().map(|a| a.size).sum::<u64>()
                ),
            ),
            Err(e) => (Outcome::Failed, e.to_string()),
        };
        obs.step(
            spec,
            &handle.engine,
            Step::Collect,
            outcome,
            started.elapsed(),
            &message,
        );
        result.map_err(artifact)
    }

    /// Stops a running attempt (its deadline passed), waiting up to the stop grace period.
    pub async fn stop_attempt(
        &self,
        spec: &WorkloadSpec,
        handle: &Handle,
        obs: &dyn Observer,
    ) -> Result<(), JobError> {
        let execution = |e: Error| JobError::new(JobPhase::Execution, e.to_string());
        let engine = self.engine(&handle.engine).map_err(execution)?;
        let grace = self.config().stop_grace;
        self.step(
            obs,
            spec,
            &handle.engine,
            Step::Exit,
            engine.stop(handle, grace),
        )
        .await
        .map_err(execution)
    }

    /// Teardown of an attempt: stop, then remove unless `keep`. Idempotent.
    pub async fn teardown(
        &self,
        spec: &WorkloadSpec,
        handle: &Handle,
        keep: bool,
        obs: &dyn Observer,
    ) -> Result<(), JobError> {
        let teardown = |e: Error| JobError::new(JobPhase::Teardown, e.to_string());
        if !keep {
            return self.uninstall(spec, handle, obs).await.map_err(teardown);
        }
        let engine = self.engine(&handle.engine).map_err(teardown)?;
        let grace = self.config().stop_grace;
        self.step(
            obs,
            spec,
            &handle.engine,
            Step::Uninstall,
            engine.stop(handle, grace),
        )
        .await
        .map_err(teardown)
    }
}

/// Tags lines with a correlation id.
pub fn tag(lines: Vec<LogLine>, correlation: &str) -> Vec<LogLine> {
    lines
        .into_iter()
        .map(|mut l| {
            l.correlation = Some(correlation.to_string());
            l
        })
        .collect()
}

async fn reset_dir(dir: &Path) -> crate::error::Result<()> {
    let io = |e: std::io::Error| Error::Invalid(format!("cannot prepare {}: {e}", dir.display()));
    match tokio::fs::remove_dir_all(dir).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    tokio::fs::create_dir_all(dir).await.map_err(io)
}

#[cfg(test)]
mod tests;
