//! The one lifecycle every engine goes through, and the events it emits.
//!
//! ```text
//! Validate -> Fetch -> Prepare -> Install -> Activate -> HealthCheck -> Running
//!                                   Running -> Update -> (HealthCheck) -> Running | Rollback
//!                                   Running -> Uninstall -> Delete
//! Jobs, per attempt:  Validate .. Install -> Activate -> Exit -> Collect -> Uninstall
//!                                                  (-> Retry -> Validate .. on failure)
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::UnixMillis;

/// Where a workload (or one replica of it) is, as shown by `meshctl get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Accepted, waiting for its turn.
    Pending,
    Validating,
    Fetching,
    Preparing,
    Installing,
    Activating,
    HealthChecking,
    Running,
    /// A new version is being rolled out next to the running one.
    Updating,
    RollingBack,
    /// A run-to-completion workload exited 0.
    Succeeded,
    /// A phase failed or the workload exited with an error; see the error.
    Failed,
    Uninstalling,
    Deleted,
    /// The engine that runs it cannot be reached; the last known phase is kept in the events.
    Unknown,
    /// It stopped again and again; the node restarts it after a pause that doubles each time
    /// (see the error for when and why).
    CrashLoopBackOff,
}

impl Phase {
    /// Running, or run to completion: the replica does (or did) what was asked, and fills its
    /// slot.
    pub fn is_healthy(self) -> bool {
        matches!(self, Phase::Running | Phase::Succeeded)
    }

    /// Terminal phases: the lifecycle will not move on without a new apply.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            Phase::Running
                | Phase::Succeeded
                | Phase::Failed
                | Phase::Deleted
                | Phase::Unknown
                | Phase::CrashLoopBackOff
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Validating => "Validating",
            Phase::Fetching => "Fetching",
            Phase::Preparing => "Preparing",
            Phase::Installing => "Installing",
            Phase::Activating => "Activating",
            Phase::HealthChecking => "HealthChecking",
            Phase::Running => "Running",
            Phase::Updating => "Updating",
            Phase::RollingBack => "RollingBack",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Uninstalling => "Uninstalling",
            Phase::Deleted => "Deleted",
            Phase::Unknown => "Unknown",
            Phase::CrashLoopBackOff => "CrashLoopBackOff",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of the lifecycle; each emits an [`Event`] with its duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Step {
    /// The node's trust policy checks the signer and what the workload asks of the host.
    Authorize,
    Select,
    Validate,
    Fetch,
    Prepare,
    Install,
    Activate,
    HealthCheck,
    Update,
    Rollback,
    Recover,
    Exit,
    /// A job attempt's exit code, logs and declared outputs are collected.
    Collect,
    /// A failed job attempt is retried after its backoff.
    Retry,
    Uninstall,
    Delete,
    /// A peer is suspected, confirmed dead, or heard from again (`workload` is empty; the
    /// message names the peer and why).
    Liveness,
    /// Self-healing: a slot without a live provider placed again, or a slot filled twice
    /// (after a partition) given up by its lower-ranked holder; the message says why.
    Heal,
}

impl Step {
    /// The phase a workload is in while this step runs.
    pub fn phase(self) -> Phase {
        match self {
            Step::Authorize | Step::Select | Step::Validate => Phase::Validating,
            Step::Fetch => Phase::Fetching,
            Step::Prepare => Phase::Preparing,
            Step::Install => Phase::Installing,
            Step::Activate => Phase::Activating,
            Step::HealthCheck => Phase::HealthChecking,
            Step::Update => Phase::Updating,
            Step::Rollback => Phase::RollingBack,
            Step::Recover => Phase::Pending,
            Step::Exit => Phase::Running,
            Step::Collect => Phase::Running,
            Step::Retry => Phase::Pending,
            Step::Uninstall => Phase::Uninstalling,
            Step::Delete => Phase::Deleted,
            Step::Liveness | Step::Heal => Phase::Running,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Authorize => "Authorize",
            Step::Select => "Select",
            Step::Validate => "Validate",
            Step::Fetch => "Fetch",
            Step::Prepare => "Prepare",
            Step::Install => "Install",
            Step::Activate => "Activate",
            Step::HealthCheck => "HealthCheck",
            Step::Update => "Update",
            Step::Rollback => "Rollback",
            Step::Recover => "Recover",
            Step::Exit => "Exit",
            Step::Collect => "Collect",
            Step::Retry => "Retry",
            Step::Uninstall => "Uninstall",
            Step::Delete => "Delete",
            Step::Liveness => "Liveness",
            Step::Heal => "Heal",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed,
}

/// What happened to a workload: one per lifecycle step, plus exits and recoveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Per-node sequence number, increasing.
    pub seq: u64,
    pub at: UnixMillis,
    /// `namespace/name`.
    pub workload: String,
    pub version: String,
    pub step: Step,
    pub outcome: Outcome,
    /// How long the step took, in microseconds.
    pub duration_us: u64,
    /// The engine involved, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Human detail: the selection reason, the error, the exit code.
    #[serde(default)]
    pub message: String,
    /// Correlation id of the job attempt the event belongs to (run-to-completion workloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
}
