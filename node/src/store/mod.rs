//! The node's durable state, in sled, behind a typed API: nothing outside this module sees a
//! key or an encoding.
//!
//! Trees:
//! - `desired`: `namespace/name` → [`Desired`] (current spec, version history, placement);
//! - `versions`: `namespace/name \0 version` → `WorkloadSpec` (for rollback and describe);
//! - `observed`: `namespace/name` → [`Observed`] (replicas on this node, engine handles);
//! - `pending`: `namespace/name` → [`Pending`] (an apply or delete that has not finished);
//! - `events`: `namespace/name \0 seq` → `Event`, at most [`MAX_EVENTS_PER_WORKLOAD`] each;
//! - `attempt_logs`: `namespace/name \0 attempt` → the last log lines of a finished job
//!   attempt, tagged with its correlation id (the newest `MAX_ATTEMPT_HISTORY` attempts)
//!   ([`jobs`]);
//! - `records`: `namespace/name` → the signed workload record the node holds ([`records`]);
//! - `node_state`: this node's own settings: whether it is cordoned ([`node_state`]);
//! - `event_log`: `seq` → every event the node recorded, the newest
//!   [`event_log::MAX_EVENT_LOG`] ([`event_log`]).
//!
//! Files beside the database, under `<data dir>/jobs/<namespace>/<name>/`: the collected
//! outputs of a job's successful run (`outputs/`). They go with the workload.
//!
//! Values are JSON. Writes that must survive a crash (intent before acting, handles after
//! install) are followed by [`Store::flush`].

pub mod event_log;
mod jobs;
mod node_state;
pub mod records;

use std::path::{Path, PathBuf};

use mesh_protocol::api::VersionRecord;
use mesh_protocol::job::JobStatus;
use mesh_protocol::{Event, Phase, WorkloadId, WorkloadSpec};
use mesh_runtime::Handle;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Events kept per workload; older ones are dropped.
pub const MAX_EVENTS_PER_WORKLOAD: usize = 200;
/// Versions remembered per workload (current included).
pub const MAX_VERSIONS_PER_WORKLOAD: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Db(#[from] sled::Error),
    #[error("store: corrupt record under {key}: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
    #[error("store: {path}: {source}")]
    Files {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub spec: WorkloadSpec,
    /// Replicas asked for (after `--replicas`).
    pub replicas: u32,
    pub created_at: u64,
    pub updated_at: u64,
    /// Newest first; the first entry is the current version.
    pub history: Vec<VersionRecord>,
    /// Why replicas were not placed.
    #[serde(default)]
    pub placement: Vec<String>,
    /// The signed workload record this replica runs (absent in stores of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<mesh_protocol::api::SignedRecord>,
    /// The replica slot this node fills.
    #[serde(default)]
    pub slot: u32,
    /// The revision of `record` (kept beside it so that comparisons need no signature check).
    #[serde(default)]
    pub revision: u64,
}

/// One replica on this node, as last observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaRecord {
    pub ordinal: u32,
    pub phase: Phase,
    pub engine: String,
    pub engine_reason: String,
    pub version: String,
    #[serde(default)]
    pub handle: Option<Handle>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub restarts: u32,
    pub updated_at: u64,
    /// The job run of a run-to-completion workload (see `crate::jobs`).
    #[serde(default)]
    pub job: Option<JobStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub replicas: Vec<ReplicaRecord>,
    /// Restarts by the node after the replica stopped (see [`crate::restart`]).
    #[serde(
        default,
        skip_serializing_if = "crate::restart::RestartState::is_default"
    )]
    pub restart: crate::restart::RestartState,
}

impl Observed {
    /// The replica that stands for this node: the one that runs (an update in progress has
    /// two), else the first (a failed one).
    pub fn current(&self) -> Option<&ReplicaRecord> {
        self.replicas
            .iter()
            .find(|r| r.phase.is_healthy())
            .or_else(|| self.replicas.first())
    }
}

/// An operation that started and has not finished; replayed after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pending {
    Apply { version: String, since: u64 },
    Delete { since: u64 },
}

/// Typed wrapper around the node's sled database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    desired: sled::Tree,
    versions: sled::Tree,
    observed: sled::Tree,
    pending: sled::Tree,
    events: sled::Tree,
    attempt_logs: sled::Tree,
    records: sled::Tree,
    /// `namespace/name\0<revision, big-endian>` → an earlier record of the workload, for
    /// rollbacks (the last [`records::HISTORY_PER_WORKLOAD`]).
    record_history: sled::Tree,
    /// This node's own settings (`cordoned`, events dropped from the log).
    node_state: sled::Tree,
    /// `seq` (big-endian) → every event, for followers ([`event_log`]).
    event_log: sled::Tree,
    /// Entries in `event_log`: counted once at open and kept up to date by its inserts and
    /// removals, since sled's `Tree::len` walks the whole tree ([`event_log`]).
    event_log_len: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The newest sequence number logged, for live followers ([`Store::watch_events`]).
    newest_event: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// `<data dir>/jobs`: files of job runs.
    jobs_dir: PathBuf,
}

fn key(id: &WorkloadId) -> Vec<u8> {
    id.to_string().into_bytes()
}

fn prefix(id: &WorkloadId) -> Vec<u8> {
    let mut k = key(id);
    k.push(0);
    k
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records always serialise")
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

/// A namespace or name as one path component: itself when it is plainly safe (the manifest
/// parser only lets DNS labels through), else hex.
fn component(s: &str) -> String {
    let plain = !s.is_empty()
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain {
        s.to_string()
    } else {
        s.bytes().map(|b| format!("{b:02x}")).collect()
    }
}

fn parse_id(key: &[u8]) -> Option<WorkloadId> {
    let s = std::str::from_utf8(key).ok()?;
    let (ns, name) = s.split_once('/')?;
    Some(WorkloadId::new(ns, name))
}

impl Store {
    /// Opens (or creates) the database in `dir`; job files go to `jobs/` beside it.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::LowSpace)
            .open()?;
        let event_log = db.open_tree("event_log")?;
        let event_log_len = std::sync::Arc::new(event_log.len().into());
        Ok(Self {
            desired: db.open_tree("desired")?,
            versions: db.open_tree("versions")?,
            observed: db.open_tree("observed")?,
            pending: db.open_tree("pending")?,
            events: db.open_tree("events")?,
            attempt_logs: db.open_tree("attempt_logs")?,
            records: db.open_tree("records")?,
            record_history: db.open_tree("record_history")?,
            node_state: db.open_tree("node_state")?,
            event_log,
            event_log_len,
            newest_event: std::sync::Arc::new(tokio::sync::watch::Sender::new(0)),
            jobs_dir: dir.parent().unwrap_or(dir).join("jobs"),
            db,
        })
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    pub fn put_desired(&self, d: &Desired) -> Result<()> {
        let id = d.spec.id();
        self.desired.insert(key(&id), encode(d))?;
        let mut vkey = prefix(&id);
        vkey.extend_from_slice(d.spec.version.as_bytes());
        self.versions.insert(vkey, encode(&d.spec))?;
        // Forget versions that fell out of the history.
        let keep: Vec<&str> = d.history.iter().map(|h| h.version.as_str()).collect();
        for entry in self.versions.scan_prefix(prefix(&id)) {
            let (k, _) = entry?;
            let version = &k[prefix(&id).len()..];
            if !keep.iter().any(|v| v.as_bytes() == version) {
                self.versions.remove(k)?;
            }
        }
        Ok(())
    }

    pub fn desired(&self, id: &WorkloadId) -> Result<Option<Desired>> {
        let k = key(id);
        self.desired.get(&k)?.map(|v| decode(&k, &v)).transpose()
    }

    pub fn list_desired(&self) -> Result<Vec<Desired>> {
        self.desired
            .iter()
            .map(|entry| {
                let (k, v) = entry?;
                decode(&k, &v)
            })
            .collect()
    }

    /// A remembered version of a workload's spec.
    pub fn version(&self, id: &WorkloadId, version: &str) -> Result<Option<WorkloadSpec>> {
        let mut k = prefix(id);
        k.extend_from_slice(version.as_bytes());
        self.versions.get(&k)?.map(|v| decode(&k, &v)).transpose()
    }

    pub fn put_observed(&self, id: &WorkloadId, o: &Observed) -> Result<()> {
        self.observed.insert(key(id), encode(o))?;
        Ok(())
    }

    pub fn observed(&self, id: &WorkloadId) -> Result<Observed> {
        let k = key(id);
        Ok(self
            .observed
            .get(&k)?
            .map(|v| decode(&k, &v))
            .transpose()?
            .unwrap_or_default())
    }

    pub fn set_pending(&self, id: &WorkloadId, op: &Pending) -> Result<()> {
        self.pending.insert(key(id), encode(op))?;
        Ok(())
    }

    pub fn clear_pending(&self, id: &WorkloadId) -> Result<()> {
        self.pending.remove(key(id))?;
        Ok(())
    }

    pub fn list_pending(&self) -> Result<Vec<(WorkloadId, Pending)>> {
        let mut out = Vec::new();
        for entry in self.pending.iter() {
            let (k, v) = entry?;
            if let Some(id) = parse_id(&k) {
                out.push((id, decode(&k, &v)?));
            }
        }
        Ok(out)
    }

    /// Appends an event, assigning its sequence number, and trims the workload's log.
    pub fn append_event(&self, mut event: Event) -> Result<Event> {
        event.seq = self.db.generate_id()?;
        let id: WorkloadId = parse_id(event.workload.as_bytes())
            .unwrap_or_else(|| WorkloadId::new("", &event.workload));
        let mut k = prefix(&id);
        k.extend_from_slice(&event.seq.to_be_bytes());
        self.events.insert(k, encode(&event))?;
        self.log_event(&event)?;
        // Trimming scans the workload's log: do it once every few events, not on each.
        if event.seq.is_multiple_of(16) {
            self.trim_events(&id)?;
        }
        Ok(event)
    }

    fn trim_events(&self, id: &WorkloadId) -> Result<()> {
        let keys: Vec<sled::IVec> = self
            .events
            .scan_prefix(prefix(id))
            .keys()
            .collect::<std::result::Result<_, _>>()?;
        if keys.len() > MAX_EVENTS_PER_WORKLOAD {
            for k in &keys[..keys.len() - MAX_EVENTS_PER_WORKLOAD] {
                self.events.remove(k)?;
            }
        }
        Ok(())
    }

    /// The newest `limit` events of a workload, oldest first.
    pub fn events(&self, id: &WorkloadId, limit: usize) -> Result<Vec<Event>> {
        let mut out: Vec<Event> = Vec::new();
        for entry in self.events.scan_prefix(prefix(id)).rev().take(limit) {
            let (k, v) = entry?;
            out.push(decode(&k, &v)?);
        }
        out.reverse();
        Ok(out)
    }

    /// The newest `limit` events of every workload, oldest first.
    pub fn all_events(&self, limit: usize) -> Result<Vec<Event>> {
        let mut out: Vec<Event> = Vec::new();
        for entry in self.events.iter() {
            let (k, v) = entry?;
            out.push(decode(&k, &v)?);
        }
        out.sort_by_key(|e| e.seq);
        let skip = out.len().saturating_sub(limit);
        out.drain(..skip);
        Ok(out)
    }

    /// Forgets a workload entirely (desired, versions, observed, pending, events, job logs
    /// and files).
    pub fn remove_workload(&self, id: &WorkloadId) -> Result<()> {
        self.desired.remove(key(id))?;
        self.observed.remove(key(id))?;
        for tree in [&self.versions, &self.events, &self.attempt_logs] {
            for k in tree.scan_prefix(prefix(id)).keys() {
                tree.remove(k?)?;
            }
        }
        self.pending.remove(key(id))?;
        remove_dir(&self.job_dir(id))
    }
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Files {
            path: dir.display().to_string(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
