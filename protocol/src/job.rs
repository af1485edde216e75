//! Run-to-completion workloads (Jobs, run-to-completion Functions): what a node reports about
//! one job run, and the rules for declared output paths.
//!
//! A job run goes provision → run → collect → teardown once per attempt; a failed attempt is
//! retried up to `backoffLimit` times, the whole run bounded by `activeDeadlineSeconds`. Every
//! attempt has a correlation id that tags its log lines, its events and the node's tracing
//! output. See `docs/manifests.md` ("Jobs").

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::UnixMillis;

/// Retries after a failed attempt when the manifest states none (Kubernetes' default).
pub const DEFAULT_BACKOFF_LIMIT: u32 = 6;
/// Declared outputs per workload.
pub const MAX_OUTPUTS: usize = 16;
/// Length of one declared output path.
pub const MAX_OUTPUT_PATH: usize = 256;
/// Attempts remembered in [`JobStatus::history`] (the newest are kept).
pub const MAX_ATTEMPT_HISTORY: usize = 20;

/// The phase of a job run an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobPhase {
    /// Validate, Fetch, Prepare or Install of an attempt's instance.
    Provision,
    /// Starting the instance, or the run itself (non-zero exit, trap, crash, deadline).
    Execution,
    /// Collecting the declared output files.
    Artifact,
    /// Stopping or removing the instance after the run.
    Teardown,
}

impl JobPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            JobPhase::Provision => "provision",
            JobPhase::Execution => "execution",
            JobPhase::Artifact => "artifact",
            JobPhase::Teardown => "teardown",
        }
    }
}

impl fmt::Display for JobPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job stopped retrying (Kubernetes' Job condition reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobReason {
    /// `backoffLimit` retries failed too.
    BackoffLimitExceeded,
    /// `activeDeadlineSeconds` passed since the first attempt started.
    DeadlineExceeded,
}

impl fmt::Display for JobReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobReason::BackoffLimitExceeded => "BackoffLimitExceeded",
            JobReason::DeadlineExceeded => "DeadlineExceeded",
        })
    }
}

/// A typed job failure: the phase it happened in and one human line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub phase: JobPhase,
    pub message: String,
    /// Set on the job's final error when retries ended for one of these reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<JobReason>,
}

impl JobError {
    pub fn new(phase: JobPhase, message: impl Into<String>) -> Self {
        Self {
            phase,
            message: message.into(),
            reason: None,
        }
    }

    pub fn with_reason(mut self, reason: JobReason) -> Self {
        self.reason = Some(reason);
        self
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.phase, self.message)?;
        if let Some(r) = self.reason {
            write!(f, " ({r})")?;
        }
        Ok(())
    }
}

/// One collected output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Path relative to the instance's working directory (`out/result.txt`).
    pub path: String,
    pub size: u64,
    /// `sha256:<hex>` of the content.
    pub digest: String,
    /// Where the node keeps the copy (a path on that node).
    pub location: String,
}

/// One attempt of a job run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    pub correlation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why the attempt failed; `None` while it runs and when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
}

/// The state of one job run on one replica, as `meshctl get/describe -o json` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    /// Id of this run of the job (`job-<version>-<nonce>`); attempts append their number.
    pub run_id: String,
    /// Correlation id of the current (or last) attempt (`<run_id>-<attempt>`); empty before
    /// the first attempt.
    pub correlation: String,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts that failed.
    pub failed_attempts: u32,
    /// Retries allowed after a failed attempt.
    pub backoff_limit: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_ms: Option<u64>,
    /// When the first attempt started; the deadline counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<UnixMillis>,
    /// When the next attempt starts, while the run waits out its backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<UnixMillis>,
    /// When the run ended (Succeeded or Failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<UnixMillis>,
    /// Exit code of the last attempt that exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Declared outputs of the successful attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<Artifact>,
    /// Why the run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// The newest attempts, oldest first (at most [`MAX_ATTEMPT_HISTORY`]).
    #[serde(default)]
    pub history: Vec<Attempt>,
    /// The last attempt's instance was kept after the run (`beemesh.io/job-keep-instance`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kept_instance: bool,
}

impl JobStatus {
    /// Ended: Succeeded or Failed, nothing more will run.
    pub fn finished(&self) -> bool {
        self.completed_at.is_some()
    }

    /// The current (last) attempt.
    pub fn current(&self) -> Option<&Attempt> {
        self.history.last()
    }

    pub fn current_mut(&mut self) -> Option<&mut Attempt> {
        self.history.last_mut()
    }
}

/// Checks one declared output path: relative, `/`-separated, no `.` or `..` components, no
/// empty components except a trailing `/` that marks a directory.
pub fn check_output_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty output path".to_string());
    }
    if path.len() > MAX_OUTPUT_PATH {
        return Err(format!(
            "output path {path:?} is longer than {MAX_OUTPUT_PATH} bytes"
        ));
    }
    if path.starts_with('/') {
        return Err(format!(
            "output path {path:?} must be relative to the working directory"
        ));
    }
    if path.contains(['\0', '\\']) {
        return Err(format!(
            "output path {path:?} must not contain NUL or backslashes"
        ));
    }
    let body = path.strip_suffix('/').unwrap_or(path);
    for part in body.split('/') {
        match part {
            "" => return Err(format!("output path {path:?} has an empty component")),
            "." | ".." => {
                return Err(format!(
                    "output path {path:?} must not contain `.` or `..` components"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Splits a comma-separated list of output paths (`"result.txt, out/"`) and checks each;
/// duplicates are dropped.
pub fn parse_outputs(list: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        check_output_path(item)?;
        if !out.iter().any(|o| o == item) {
            out.push(item.to_string());
        }
    }
    if out.len() > MAX_OUTPUTS {
        return Err(format!(
            "{} outputs declared; at most {MAX_OUTPUTS}",
            out.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_paths_are_relative_and_plain() {
        for ok in ["result.txt", "out/", "out/a/b.json", "a.b/c"] {
            assert_eq!(check_output_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../up",
            "out/../../x",
            "./x",
            "a//b",
            "a\\b",
            "x/./y",
        ] {
            assert!(check_output_path(bad).is_err(), "{bad} accepted");
        }
        assert!(check_output_path(&"a".repeat(MAX_OUTPUT_PATH + 1)).is_err());
    }

    #[test]
    fn output_lists_are_split_checked_and_deduplicated() {
        assert_eq!(
            parse_outputs(" result.txt, out/ ,result.txt,").unwrap(),
            vec!["result.txt".to_string(), "out/".to_string()]
        );
        assert!(parse_outputs("ok, ../no").unwrap_err().contains("../no"));
        let many: Vec<String> = (0..=MAX_OUTPUTS).map(|i| format!("f{i}")).collect();
        assert!(parse_outputs(&many.join(",")).is_err());
    }

    #[test]
    fn errors_read_as_one_line() {
        let e = JobError::new(JobPhase::Execution, "deadline exceeded after 1s")
            .with_reason(JobReason::DeadlineExceeded);
        assert_eq!(
            e.to_string(),
            "execution error: deadline exceeded after 1s (DeadlineExceeded)"
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["phase"], "execution");
        assert_eq!(json["reason"], "DeadlineExceeded");
    }
}
