//! The record book: the newest revision of every workload record this node heard of (from
//! an apply, gossip, the DHT or a peer), verified, bounded, and written through to the store
//! so a restarted node answers `get` and `list` before it hears from anyone.
//!
//! A record replaces the one held only with a higher revision, so a replayed or late copy
//! never rolls the desired state back. Tombstones stay until
//! [`mesh_provider::workload::TOMBSTONE_TTL_MS`] after the
//! delete, so a replica that comes back late meets its tombstone.

use std::collections::HashMap;
use std::sync::Mutex;

use mesh_protocol::{UnixMillis, WorkloadId};
use mesh_provider::workload::{self, Verified};

use crate::store::{self, Store};

/// Records kept at most. Beyond it, tombstones go first (oldest first), then the oldest
/// records; the DHT still holds what this node forgets.
pub const MAX_RECORDS: usize = 10_000;

/// What became of an offered record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Newer than what was held (or the first heard): kept.
    Adopted,
    /// The very record held.
    Same,
    /// Not newer than the revision held: ignored.
    Older { held: u64 },
}

/// The newest verified record per workload. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct RecordBook {
    entries: Mutex<HashMap<WorkloadId, Verified>>,
    store: Store,
}

impl RecordBook {
    /// The book as the store left it; records that no longer verify are dropped.
    pub fn load(store: Store) -> Result<Self, store::Error> {
        let mut entries = HashMap::new();
        for (id, bytes) in store.list_records()? {
            match workload::verify(&bytes) {
                Ok(v) if v.record.id == id => {
                    entries.insert(id, v);
                }
                Ok(_) | Err(_) => {
                    tracing::warn!(workload = %id, "dropping a stored workload record that does not verify");
                    store.remove_record(&id)?;
                }
            }
        }
        Ok(Self {
            entries: Mutex::new(entries),
            store,
        })
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<WorkloadId, Verified>> {
        self.entries
            .lock()
            .expect("record book lock is never poisoned")
    }

    pub fn get(&self, id: &WorkloadId) -> Option<Verified> {
        self.entries().get(id).cloned()
    }

    /// The revision held for `id` (0 when none).
    pub fn revision(&self, id: &WorkloadId) -> u64 {
        self.entries().get(id).map_or(0, |v| v.record.revision)
    }

    /// Keeps `v` if it supersedes the record held (see [`workload::supersedes`]), and writes
    /// it through under the book's lock, so the store never ends up holding an older copy
    /// than the book. A tombstone is flushed: a restart must not forget a delete.
    pub fn offer(&self, v: Verified, now: UnixMillis) -> Result<Offer, store::Error> {
        let id = v.record.id.clone();
        let mut entries = self.entries();
        if let Some(held) = entries.get(&id) {
            if held.bytes == v.bytes {
                return Ok(Offer::Same);
            }
            if !workload::supersedes(&v, held) {
                return Ok(Offer::Older {
                    held: held.record.revision,
                });
            }
        } else if entries.len() >= MAX_RECORDS {
            if let Some(evicted) = evict(&mut entries, now) {
                self.store.remove_record(&evicted)?;
            }
        }
        self.store.put_record(&id, &v.bytes)?;
        if v.record.tombstone {
            self.store.flush()?;
        }
        entries.insert(id, v);
        Ok(Offer::Adopted)
    }

    /// Every record held (tombstones included), by id.
    pub fn list(&self) -> Vec<Verified> {
        let mut out: Vec<Verified> = self.entries().values().cloned().collect();
        out.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        out
    }

    /// Forgets tombstones past their time.
    pub fn prune(&self, now: UnixMillis) -> Result<(), store::Error> {
        let mut entries = self.entries();
        let expired: Vec<WorkloadId> = entries
            .iter()
            .filter(|(_, v)| v.record.tombstone_expired(now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.store.remove_record(&id)?;
            entries.remove(&id);
        }
        Ok(())
    }
}

/// Makes room: the oldest tombstone, else the oldest record.
fn evict(entries: &mut HashMap<WorkloadId, Verified>, now: UnixMillis) -> Option<WorkloadId> {
    let victim = entries
        .iter()
        .min_by_key(|(_, v)| {
            let age = now.saturating_sub(v.record.issued_at);
            // Tombstones first, then records; the oldest of either first.
            let tombstone_rank = if v.record.tombstone { 0u8 } else { 1u8 };
            (tombstone_rank, std::cmp::Reverse(age))
        })
        .map(|(id, _)| id.clone())?;
    entries.remove(&victim);
    Some(victim)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use libp2p::identity::Keypair;
    use mesh_protocol::WorkloadKind;
    use mesh_provider::workload::{encode, WorkloadRecord, TOMBSTONE_TTL_MS};

    fn signed(key: &Keypair, name: &str, revision: u64, tombstone: bool) -> Verified {
        let mut r = WorkloadRecord::tombstone(
            WorkloadId::new("default", name),
            revision,
            WorkloadKind::Pod,
            1,
        );
        r.tombstone = tombstone;
        encode(key, r).unwrap()
    }

    #[test]
    fn only_a_higher_revision_replaces_and_the_book_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let book = RecordBook::load(store.clone()).unwrap();
        let key = Keypair::generate_ed25519();
        let r2 = signed(&key, "web", 2, false);
        assert_eq!(book.offer(r2.clone(), 10).unwrap(), Offer::Adopted);
        assert_eq!(book.offer(r2.clone(), 10).unwrap(), Offer::Same);
        assert_eq!(
            book.offer(signed(&key, "web", 1, false), 10).unwrap(),
            Offer::Older { held: 2 }
        );
        assert_eq!(
            book.offer(signed(&key, "web", 3, true), 10).unwrap(),
            Offer::Adopted
        );
        drop(book);
        let again = RecordBook::load(store).unwrap();
        let held = again.get(&WorkloadId::new("default", "web")).unwrap();
        assert_eq!(held.record.revision, 3);
        assert!(held.record.tombstone);
    }

    #[test]
    fn expired_tombstones_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let book = RecordBook::load(Store::open(dir.path()).unwrap()).unwrap();
        let key = Keypair::generate_ed25519();
        book.offer(signed(&key, "gone", 1, true), 1).unwrap();
        book.offer(signed(&key, "kept", 1, false), 1).unwrap();
        book.prune(1 + TOMBSTONE_TTL_MS).unwrap();
        assert_eq!(book.list().len(), 1);
        assert_eq!(book.list()[0].record.id.name, "kept");
    }
}
