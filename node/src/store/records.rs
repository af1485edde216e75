//! Workload records this node holds (see `crate::records::book`), as signed bytes.

use mesh_protocol::WorkloadId;

use super::{key, parse_id, Result, Store};

/// Earlier records kept per workload (for `meshctl rollback`).
pub const HISTORY_PER_WORKLOAD: usize = 10;

fn history_prefix(id: &WorkloadId) -> Vec<u8> {
    let mut k = key(id);
    k.push(0);
    k
}

impl Store {
    /// Keeps the signed record of `id` (not flushed: the book is a cache the mesh can refill;
    /// a replica's record is kept with its desired state, which is flushed).
    pub fn put_record(&self, id: &WorkloadId, bytes: &[u8]) -> Result<()> {
        self.records.insert(key(id), bytes)?;
        Ok(())
    }

    pub fn remove_record(&self, id: &WorkloadId) -> Result<()> {
        self.records.remove(key(id))?;
        for k in self.record_history.scan_prefix(history_prefix(id)).keys() {
            self.record_history.remove(k?)?;
        }
        Ok(())
    }

    /// Keeps revision `revision` of `id` in its history, dropping the oldest beyond
    /// [`HISTORY_PER_WORKLOAD`].
    pub fn put_history(&self, id: &WorkloadId, revision: u64, bytes: &[u8]) -> Result<()> {
        let mut k = history_prefix(id);
        k.extend_from_slice(&revision.to_be_bytes());
        self.record_history.insert(k, bytes)?;
        let keys: Vec<sled::IVec> = self
            .record_history
            .scan_prefix(history_prefix(id))
            .keys()
            .collect::<std::result::Result<_, _>>()?;
        for old in keys
            .iter()
            .take(keys.len().saturating_sub(HISTORY_PER_WORKLOAD))
        {
            self.record_history.remove(old)?;
        }
        Ok(())
    }

    /// The earlier records of `id` kept, oldest first: (revision, bytes).
    pub fn history(&self, id: &WorkloadId) -> Result<Vec<(u64, Vec<u8>)>> {
        let prefix = history_prefix(id);
        let mut out = Vec::new();
        for entry in self.record_history.scan_prefix(&prefix) {
            let (k, v) = entry?;
            let Some(rev) = k
                .get(prefix.len()..)
                .and_then(|r| <[u8; 8]>::try_from(r).ok())
            else {
                continue;
            };
            out.push((u64::from_be_bytes(rev), v.to_vec()));
        }
        Ok(out)
    }

    /// Every record kept, by id.
    pub fn list_records(&self) -> Result<Vec<(WorkloadId, Vec<u8>)>> {
        let mut out = Vec::new();
        for entry in self.records.iter() {
            let (k, v) = entry?;
            if let Some(id) = parse_id(&k) {
                out.push((id, v.to_vec()));
            }
        }
        Ok(out)
    }
}
