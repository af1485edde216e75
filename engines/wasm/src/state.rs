//! What survives a node restart: one directory per instance under
//! `<state_dir>/instances/<id>/` holding
//!
//! - `instance.json` ([`Record`]): what to run and which runner process runs it (pid and
//!   kernel start time, so a reused pid is never mistaken for our runner), written by the node;
//! - `status.json` ([`RunStatus`]): the runner's latest state, written by the runner (and by
//!   the node when the runner died without a word);
//! - `log.jsonl`: guest output (see [`crate::logs`]);
//! - `scratch/`: the guest's `/scratch`.
//!
//! Every JSON file is replaced atomically (temp file + rename).

use std::path::{Path, PathBuf};

use mesh_protocol::spec::RestartPolicy;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Paths of one instance's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(state_dir: &Path, id: &str) -> Self {
        Self {
            dir: state_dir.join("instances").join(id),
        }
    }
    pub fn record(&self) -> PathBuf {
        self.dir.join("instance.json")
    }
    pub fn status(&self) -> PathBuf {
        self.dir.join("status.json")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("log.jsonl")
    }
    pub fn scratch(&self) -> PathBuf {
        self.dir.join("scratch")
    }
}

pub use mesh_runtime::host::{read_json, start_time, write_json, Proc};

/// What the node knows about an instance: enough to start, adopt and remove it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// `namespace/name` of the workload.
    pub workload: String,
    /// The guest's `argv[0]`.
    pub name: String,
    pub digest: Digest,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub memory_limit_bytes: u64,
    pub timeout_ms: Option<u64>,
    pub restart_policy: RestartPolicy,
    pub runs_to_completion: bool,
    /// The current runner, once started.
    #[serde(default)]
    pub runner: Option<Proc>,
    /// Runner starts so far (restarts = starts - 1).
    #[serde(default)]
    pub starts: u32,
}

/// Phase of a run as recorded in `status.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunPhase {
    Running,
    Exited,
    Trapped,
    Failed,
    Stopped,
    /// The runner died without a final event (written by the node).
    Killed,
}

/// The latest state of a runner, kept on disk so that it outlives the node's pipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    pub phase: RunPhase,
    /// Runner pid this status belongs to (a status from an older run is stale).
    pub pid: u32,
    #[serde(default)]
    pub code: Option<i32>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub compile_ms: Option<f64>,
    #[serde(default)]
    pub cached: Option<bool>,
    /// Unix milliseconds of the change.
    pub at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_files_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.json");
        assert_eq!(read_json::<RunStatus>(&path).expect("absent"), None);
        let st = RunStatus {
            phase: RunPhase::Exited,
            pid: 7,
            code: Some(0),
            message: None,
            compile_ms: Some(1.5),
            cached: Some(false),
            at: 1,
        };
        write_json(&path, &st).expect("writes");
        assert_eq!(read_json::<RunStatus>(&path).expect("reads"), Some(st));
    }
}
