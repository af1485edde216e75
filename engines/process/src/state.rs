//! What survives a node restart, per instance under `<state_dir>/instances/<id>/`:
//! `instance.json` ([`Record`]: the commands, and per container the process (pid + kernel
//! start time, so a reused pid is never mistaken for ours) and its exit once seen),
//! `logs/<container>.stdout|stderr` (the processes write there directly, so output is kept
//! while the node is down) and `work/<container>/` (default working directories).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};
use serde::de::DeserializeOwned;
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

/// A process, identified beyond its pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks after boot).
    pub start_time: u64,
}

impl Proc {
    pub fn current(pid: u32) -> Option<Self> {
        start_time(pid).map(|start_time| Self { pid, start_time })
    }

    /// Still running (not a zombie) and still the same process.
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }

    /// Signals the process group this process leads. A group that is gone is fine.
    pub fn signal_group(&self, signal: Signal) {
        if let Some(pid) = i32::try_from(self.pid).ok().and_then(Pid::from_raw) {
            let _ = kill_process_group(pid, signal);
        }
    }

    /// Some process of its group still exists (the leader may be gone, its children not).
    pub fn group_exists(&self) -> bool {
        i32::try_from(self.pid)
            .ok()
            .and_then(Pid::from_raw)
            .is_some_and(|pid| test_kill_process_group(pid).is_ok())
    }
}

/// Start time of a live (non-zombie) process, from `/proc/<pid>/stat`.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
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

/// Writes `value` as JSON to `path` atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

/// Reads JSON from `path`; `Ok(None)` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_other_start_times_are_not() {
        let me = Proc::current(std::process::id()).expect("our /proc entry");
        assert!(me.alive());
        assert!(!Proc {
            start_time: me.start_time + 1,
            ..me
        }
        .alive());
    }
}
