//! Job runs: the kept log lines of finished attempts and the files of a run.

use std::path::PathBuf;

use mesh_protocol::api::LogLine;
use mesh_protocol::job::MAX_ATTEMPT_HISTORY;
use mesh_protocol::WorkloadId;

use super::{component, decode, encode, prefix, remove_dir, Result, Store};

impl Store {
    /// Directory of a workload's job files.
    pub(super) fn job_dir(&self, id: &WorkloadId) -> PathBuf {
        self.jobs_dir
            .join(component(&id.namespace))
            .join(component(&id.name))
    }

    /// Where the outputs of a job's successful run are copied.
    pub fn outputs_dir(&self, id: &WorkloadId) -> PathBuf {
        self.job_dir(id).join("outputs")
    }

    /// Forgets a job's previous run: its attempts' logs and its outputs.
    pub fn clear_job_run(&self, id: &WorkloadId) -> Result<()> {
        for k in self.attempt_logs.scan_prefix(prefix(id)).keys() {
            self.attempt_logs.remove(k?)?;
        }
        remove_dir(&self.job_dir(id))
    }

    /// Keeps the last lines of a finished job attempt; only the newest
    /// [`MAX_ATTEMPT_HISTORY`] attempts are kept.
    pub fn put_attempt_logs(&self, id: &WorkloadId, attempt: u32, lines: &[LogLine]) -> Result<()> {
        self.attempt_logs
            .insert(attempt_key(id, attempt), encode(&lines))?;
        let keys: Vec<sled::IVec> = self
            .attempt_logs
            .scan_prefix(prefix(id))
            .keys()
            .collect::<std::result::Result<_, _>>()?;
        for k in &keys[..keys.len().saturating_sub(MAX_ATTEMPT_HISTORY)] {
            self.attempt_logs.remove(k)?;
        }
        Ok(())
    }

    /// Whether the lines of `attempt` of a job are kept.
    pub fn has_attempt_logs(&self, id: &WorkloadId, attempt: u32) -> Result<bool> {
        Ok(self.attempt_logs.contains_key(attempt_key(id, attempt))?)
    }

    /// The kept lines of every finished attempt of a job, by attempt, oldest first: one read,
    /// so that whether an attempt's lines are there and the lines agree.
    pub fn attempt_logs_by_attempt(&self, id: &WorkloadId) -> Result<Vec<(u32, Vec<LogLine>)>> {
        let mut out = Vec::new();
        for entry in self.attempt_logs.scan_prefix(prefix(id)) {
            let (k, v) = entry?;
            let attempt = k
                .len()
                .checked_sub(4)
                .and_then(|at| k[at..].try_into().ok())
                .map_or(0, u32::from_be_bytes);
            out.push((attempt, decode::<Vec<LogLine>>(&k, &v)?));
        }
        Ok(out)
    }
}

/// Key of one attempt's kept lines: the job's prefix, then the attempt (big-endian, so that
/// a prefix scan reads attempts in order).
fn attempt_key(id: &WorkloadId, attempt: u32) -> Vec<u8> {
    let mut k = prefix(id);
    k.extend_from_slice(&attempt.to_be_bytes());
    k
}
