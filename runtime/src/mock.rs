//! The mock engine: a complete engine whose behaviour is scripted by the workload's own
//! annotations, so tests exercise the production paths of everything above engines.
//!
//! | annotation | effect |
//! |---|---|
//! | `beemesh.io/mock-start-error: MSG` | `start` fails with MSG |
//! | `beemesh.io/mock-start-delay-ms: N` | `start` takes N ms |
//! | `beemesh.io/mock-remove-delay-ms: N` | `remove` takes N ms (the instance is gone at its end) |
//! | `beemesh.io/mock-logs-delay-ms: N` | `logs` takes N ms |
//! | `beemesh.io/mock-exit-after-ms: N` | the instance exits N ms after it started |
//! | `beemesh.io/mock-exit-code: C` | ... with code C (default 0) |
//! | `beemesh.io/mock-exit-codes: "1,1,0"` | ... with the code of the workload's k-th start on this engine (the last one after that) |
//! | `beemesh.io/mock-output-files: "result.txt=42, out/a=x"` | a start writes these files in the instance's working directory |
//! | `beemesh.io/mock-health: fail` | the health check reports unhealthy |
//!
//! Declared outputs are collected from the working directory (`<state dir>/work/<instance>`,
//! or a directory under the system's temporary directory for an in-memory engine).
//!
//! Instances live in memory and, when a state directory is given, in a journal there
//! ([`journal`]: one JSON line per change), the way a container daemon keeps containers
//! while the node daemon restarts: after a `kill -9` of `meshd`, `recover` finds them again.
//! Tests read back the exact spec and install context an instance received with
//! [`MockEngine::instance`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use mesh_protocol::annotations;
use mesh_protocol::api::{LogLine, LogStream};
use mesh_protocol::job::Artifact;
use mesh_protocol::{WorkloadKind, WorkloadSpec};
use serde::{Deserialize, Serialize};

use crate::engine::{
    Capability, Engine, Fingerprint, Handle, Health, InstallContext, InstanceState, InstanceStatus,
    LogOptions, Recovered,
};
use crate::error::{Error, Result};
use crate::now_millis;

const NAME: &str = "mock";

const CAPABILITIES: &[Capability] = &[
    Capability::Logs,
    Capability::Metrics,
    Capability::Volume,
    Capability::Network,
    Capability::K8s,
    Capability::Compose,
    Capability::Jobs,
    Capability::Recover,
    Capability::Outputs,
];

/// Kinds the mock runs: everything but virtual machines, so that VM selection stays honest.
const KINDS: &[WorkloadKind] = &[
    WorkloadKind::Pod,
    WorkloadKind::Deployment,
    WorkloadKind::Job,
    WorkloadKind::DaemonSet,
    WorkloadKind::Compose,
    WorkloadKind::Function,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MockRunState {
    Created,
    Running,
    Stopped,
}

/// One mock instance: what it was given and what happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MockInstance {
    pub id: String,
    /// The exact spec `install` received.
    pub spec: WorkloadSpec,
    /// The exact install context `install` received.
    pub ctx: InstallContext,
    pub state: MockRunState,
    pub started_at: Option<u64>,
    /// How many times `start` succeeded on this instance.
    pub starts: u32,
    pub logs: Vec<LogLine>,
    /// Exit code of the current run, chosen at start (see `mock-exit-codes`).
    #[serde(default)]
    pub exit_code: Option<i32>,
}

/// Calls received, for assertions.
#[derive(Debug, Default)]
pub struct MockCounters {
    pub prepares: AtomicU64,
    pub installs: AtomicU64,
    pub starts: AtomicU64,
    pub stops: AtomicU64,
    pub removes: AtomicU64,
    pub recovers: AtomicU64,
}

#[derive(Debug)]
pub struct MockEngine {
    state_dir: Option<PathBuf>,
    /// The state directory's journal; locked after `instances` or `runs`, never before.
    journal: Option<Mutex<Journal>>,
    /// Working directories of instances, one per instance id.
    work_root: PathBuf,
    instances: Mutex<BTreeMap<String, MockInstance>>,
    /// Starts per workload version (`ns/name@version`), for `mock-exit-codes`; persisted
    /// with the instances.
    runs: Mutex<BTreeMap<String, u32>>,
    next_id: AtomicU64,
    healthy: AtomicBool,
    pub counters: MockCounters,
}

fn annotation_u64(spec: &WorkloadSpec, key: &str) -> Option<u64> {
    spec.annotation(key).and_then(|v| v.trim().parse().ok())
}

impl MockEngine {
    /// An engine whose instances live only in memory (their working directories in a
    /// directory of the system's temporary directory, removed when the engine is dropped).
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Self {
            state_dir: None,
            journal: None,
            work_root: std::env::temp_dir()
                .join(format!("mesh-mock-{}-{nanos:x}", std::process::id())),
            instances: Mutex::new(BTreeMap::new()),
            runs: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            healthy: AtomicBool::new(true),
            counters: MockCounters::default(),
        }
    }

    /// An engine whose instances survive a restart of the node, in `dir`.
    pub fn with_state_dir(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        let (journal, state) = Journal::open(&dir)?;
        Ok(Self {
            work_root: dir.join("work"),
            instances: Mutex::new(state.instances),
            runs: Mutex::new(state.runs),
            journal: Some(Mutex::new(journal)),
            state_dir: Some(dir),
            next_id: AtomicU64::new(1),
            healthy: AtomicBool::new(true),
            counters: MockCounters::default(),
        })
    }

    /// The instances an engine with state directory `dir` left there (for tests that look at
    /// what survives the node), without opening it for writing.
    pub fn stored_instances(dir: &Path) -> std::io::Result<Vec<MockInstance>> {
        Ok(Journal::read(dir)?.instances.into_values().collect())
    }

    /// Removes an instance from the state directory `dir` while no engine has it open, as
    /// `podman rm` while `meshd` is down would (tests of drift across a restart).
    pub fn remove_stored(dir: &Path, id: &str) -> std::io::Result<()> {
        Journal::open(dir)?.0.forget(id)
    }

    /// The working directory of an instance (declared outputs are collected from here).
    pub fn work_dir(&self, id: &str) -> PathBuf {
        self.work_root.join(id)
    }

    /// Counts a start of `spec`'s version and returns its number (1 for the first).
    fn count_run(&self, spec: &WorkloadSpec) -> Result<u32> {
        let key = format!("{}@{}", spec.id(), spec.version);
        let mut runs = self.runs.lock().expect("mock lock is never poisoned");
        let n = runs.entry(key.clone()).or_insert(0);
        *n += 1;
        let n = *n;
        self.journaled("runs", |j| j.run(&key, n))?;
        Ok(n)
    }

    /// Writes the `mock-output-files` of `spec` into the instance's working directory.
    fn write_outputs(&self, id: &str, spec: &WorkloadSpec) -> Result<()> {
        let dir = self.work_dir(id);
        let io = |e: std::io::Error| Error::engine(NAME, format!("{}: {e}", dir.display()));
        let Some(files) = spec.annotation(annotations::MOCK_OUTPUT_FILES) else {
            return Ok(());
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        for entry in files.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (path, content) = entry.split_once('=').unwrap_or((entry, ""));
            mesh_protocol::job::check_output_path(path.trim())
                .map_err(|e| Error::Invalid(format!("{}: {e}", annotations::MOCK_OUTPUT_FILES)))?;
            let target = dir.join(path.trim());
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::write(&target, content).map_err(io)?;
        }
        Ok(())
    }

    /// Scripted daemon health: `false` makes the next fingerprint unhealthy.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    /// A copy of an instance, to read back what it received.
    pub fn instance(&self, id: &str) -> Option<MockInstance> {
        self.lock().get(id).cloned()
    }

    /// Removes an instance behind the node's back, as an operator's `podman pod rm -f` or
    /// `docker rm -f` would (tests of drift). Returns whether it existed.
    pub fn remove_by_hand(&self, id: &str) -> bool {
        let mut map = self.lock();
        let existed = map.remove(id).is_some();
        let _ = self.forget(id);
        existed
    }

    /// Every instance the engine holds.
    pub fn instances(&self) -> Vec<MockInstance> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, MockInstance>> {
        self.instances.lock().expect("mock lock is never poisoned")
    }

    /// Writes `inst` to the journal; the caller holds the instances' lock, so that the
    /// journal's order is the order of the changes.
    fn persist(&self, inst: &MockInstance) -> Result<()> {
        self.journaled(&inst.id, |j| j.put(inst))
    }

    /// Writes the removal of instance `id` to the journal; the caller holds the lock.
    fn forget(&self, id: &str) -> Result<()> {
        self.journaled(id, |j| j.forget(id))
    }

    fn journaled(
        &self,
        what: &str,
        f: impl FnOnce(&mut Journal) -> std::io::Result<()>,
    ) -> Result<()> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let mut journal = journal.lock().expect("mock lock is never poisoned");
        f(&mut journal).map_err(|e| Error::engine(NAME, format!("cannot persist {what}: {e}")))
    }

    /// Rewrites the journal as the live state when it has grown well beyond it; the caller
    /// holds the instances' lock (`map`).
    fn compact_if_grown(&self, map: &BTreeMap<String, MockInstance>) -> Result<()> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let runs = self.runs.lock().expect("mock lock is never poisoned");
        let mut journal = journal.lock().expect("mock lock is never poisoned");
        if !journal.wants_compaction(map.len() + runs.len()) {
            return Ok(());
        }
        journal
            .compact(map, &runs)
            .map_err(|e| Error::engine(NAME, format!("cannot compact the journal: {e}")))
    }

    fn not_found(handle: &Handle) -> Error {
        Error::NotFound {
            engine: NAME.to_string(),
            instance: handle.instance.clone(),
        }
    }

    /// Updates an instance and persists it, under the lock.
    fn modify<T>(
        &self,
        handle: &Handle,
        f: impl FnOnce(&mut MockInstance) -> Result<T>,
    ) -> Result<T> {
        let mut map = self.lock();
        let inst = map
            .get_mut(&handle.instance)
            .ok_or_else(|| Self::not_found(handle))?;
        let out = f(inst)?;
        self.persist(inst)?;
        Ok(out)
    }

    fn status_of(inst: &MockInstance, now: u64) -> InstanceStatus {
        let spec = &inst.spec;
        let exit_code = inst.exit_code.unwrap_or_else(|| {
            spec.annotation(annotations::MOCK_EXIT_CODE)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        });
        let state = match inst.state {
            MockRunState::Created => InstanceState::Created,
            MockRunState::Stopped => InstanceState::Exited { code: 0 },
            MockRunState::Running => match (
                annotation_u64(spec, annotations::MOCK_EXIT_AFTER_MS),
                inst.started_at,
            ) {
                (Some(after), Some(at)) if now.saturating_sub(at) >= after => {
                    InstanceState::Exited { code: exit_code }
                }
                _ => InstanceState::Running,
            },
        };
        let health = match spec.annotation(annotations::MOCK_HEALTH).map(str::trim) {
            Some(h) if h.eq_ignore_ascii_case("fail") => Health::Unhealthy {
                reason: format!("scripted by {}", annotations::MOCK_HEALTH),
            },
            _ => Health::NoCheck,
        };
        InstanceStatus {
            detail: format!("{:?}", state),
            state,
            health,
            restarts: inst.starts.saturating_sub(1),
        }
    }
}

impl Default for MockEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for MockEngine {
    /// An in-memory engine leaves nothing behind; one with a state directory keeps its
    /// instances' files, as a container daemon would.
    fn drop(&mut self) {
        if self.state_dir.is_none() {
            let _ = std::fs::remove_dir_all(&self.work_root);
        }
    }
}

/// The exit code of the `run`-th start (1-based) from `"1,1,0"`; the last code after the list.
fn scripted_exit_code(list: &str, run: u32) -> Option<i32> {
    let codes: Vec<i32> = list
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let index = (run.max(1) as usize - 1).min(codes.len().checked_sub(1)?);
    codes.get(index).copied()
}

fn log(line: impl Into<String>) -> LogLine {
    LogLine {
        at: Some(now_millis()),
        stream: LogStream::Stdout,
        source: None,
        line: line.into(),
        correlation: None,
    }
}

mod engine;
mod journal;

use journal::Journal;

#[cfg(test)]
mod tests {
    use super::scripted_exit_code;

    #[test]
    fn exit_codes_follow_the_list_then_repeat_the_last() {
        let got: Vec<Option<i32>> = (1..=5).map(|r| scripted_exit_code("1, 2,0", r)).collect();
        assert_eq!(got, [Some(1), Some(2), Some(0), Some(0), Some(0)]);
        assert_eq!(scripted_exit_code("", 1), None);
    }
}
