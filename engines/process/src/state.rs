//! What survives a node restart, per instance under `<state_dir>/instances/<id>/`:
//! `instance.json` ([`Record`]: the commands, and per container the process (pid + kernel
//! start time, so a reused pid is never mistaken for ours) and its exit once seen),
//! `logs/<container>.stdout|stderr` (the processes write there directly, so output is kept
//! while the node is down) and `work/<container>/` (default working directories).

use std::path::{Path, PathBuf};

use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};
use serde::{Deserialize, Serialize};

use crate::plan::Command;

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
    pub fn log(&self, container: &str, stream: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{container}.{stream}"))
    }
    pub fn work(&self, container: &str) -> PathBuf {
        self.dir.join("work").join(container)
    }
}

pub use mesh_runtime::host::{read_json, start_time, write_json, Proc};

/// Process-group operations on a [`Proc`] that leads its group.
pub trait ProcGroup {
    /// Signals the process group this process leads. A group that is gone is fine.
    fn signal_group(&self, signal: Signal);
    /// Some process of its group still exists (the leader may be gone, its children not).
    fn group_exists(&self) -> bool;
}

impl ProcGroup for Proc {
    fn signal_group(&self, signal: Signal) {
        if let Some(pid) = i32::try_from(self.pid).ok().and_then(Pid::from_raw) {
            let _ = kill_process_group(pid, signal);
        }
    }

    fn group_exists(&self) -> bool {
        i32::try_from(self.pid)
            .ok()
            .and_then(Pid::from_raw)
            .is_some_and(|pid| test_kill_process_group(pid).is_ok())
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    #[serde(default)]
    pub code: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
    /// The node asked it to stop.
    #[serde(default)]
    pub stopped: bool,
}

/// One container's command and its current process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub command: Command,
    #[serde(default)]
    pub proc: Option<Proc>,
    #[serde(default)]
    pub exit: Option<Exit>,
}

/// An instance as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub workload: String,
    pub init: Vec<Command>,
    pub slots: Vec<Slot>,
    /// Starts so far (restarts = starts - 1).
    #[serde(default)]
    pub starts: u32,
}
