//! Workload records this node holds (see `crate::records::book`), as signed bytes.

use mesh_protocol::WorkloadId;

use super::{key, parse_id, Result, Store};

impl Store {
    /// Keeps the signed record of `id` (not flushed: the book is a cache the mesh can refill;
    /// a replica's record is kept with its desired state, which is flushed).
    pub fn put_record(&self, id: &WorkloadId, bytes: &[u8]) -> Result<()> {
        self.records.insert(key(id), bytes)?;
        Ok(())
    }

    pub fn remove_record(&self, id: &WorkloadId) -> Result<()> {
        self.records.remove(key(id))?;
        Ok(())
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
