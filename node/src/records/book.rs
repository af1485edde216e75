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
use crate::trust::{Refusal, Trust};

/// Why an offered record was not kept.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    /// This node's trust policy refuses its signer (see [`Trust::authorise`]).
    #[error(transparent)]
    Refused(Box<Refusal>),
    #[error(transparent)]
    Store(#[from] store::Error),
}

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
    trust: Trust,
}

impl RecordBook {
    /// The book as the store left it; records that no longer verify are dropped.
    pub fn load(store: Store, trust: Trust) -> Result<Self, store::Error> {
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
            trust,
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

    /// The trust policy records are authorised against.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The spec version of revision `revision` of `id`, when this node kept it.
    pub fn known_version(&self, id: &WorkloadId, revision: u64) -> Option<String> {
        self.history(id)
            .into_iter()
            .find(|v| v.record.revision == revision)
            .map(|v| v.record.spec_version)
    }

    /// The earlier records of `id` this node kept (the current one included), oldest first.
    pub fn history(&self, id: &WorkloadId) -> Vec<Verified> {
        let kept = self.store.history(id).unwrap_or_else(|e| {
            tracing::error!(workload = %id, error = %e, "cannot read a record history");
            Vec::new()
        });
        kept.into_iter()
            .filter_map(|(_, bytes)| workload::verify(&bytes).ok())
            .filter(|v| v.record.id == *id)
            .collect()
    }

    /// Keeps `v` if it supersedes the record held (see [`workload::supersedes`]) and this
    /// node's trust policy accepts its signer for it (see [`Trust::authorise`]), and writes it
    /// through under the book's lock, so the store never ends up holding an older copy than
    /// the book. A tombstone is flushed: a restart must not forget a delete.
    pub fn offer(&self, v: Verified, now: UnixMillis) -> Result<Offer, OfferError> {
        let id = v.record.id.clone();
        let mut entries = self.entries();
        let held = entries.get(&id);
        if let Some(held) = held {
            if held.bytes == v.bytes {
                return Ok(Offer::Same);
            }
            if !workload::supersedes(&v, held) {
                return Ok(Offer::Older {
                    held: held.record.revision,
                });
            }
        }
        self.trust
            .authorise(&v, held, |r| self.known_version(&id, r))
            .map_err(|r| OfferError::Refused(Box::new(r)))?;
        if held.is_none() && entries.len() >= MAX_RECORDS {
            if let Some(evicted) = evict(&mut entries, now) {
                self.store.remove_record(&evicted)?;
            }
        }
        self.store.put_record(&id, &v.bytes)?;
        if !v.record.tombstone {
            self.store.put_history(&id, v.record.revision, &v.bytes)?;
        }
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

    fn any() -> Trust {
        Trust::any(Keypair::generate_ed25519().public().to_peer_id())
    }

    #[test]
    fn an_untrusted_signer_is_refused_and_nothing_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let owner = Keypair::generate_ed25519();
        let trust = Trust::new(
            crate::trust::Source::Fixed(crate::trust::Policy::owner(owner.public().to_peer_id())),
            Keypair::generate_ed25519().public().to_peer_id(),
        )
        .unwrap();
        let book = RecordBook::load(store.clone(), trust).unwrap();
        let stranger = Keypair::generate_ed25519();
        let e = book
            .offer(signed(&stranger, "web", 1, false), 10)
            .unwrap_err();
        assert!(matches!(e, OfferError::Refused(_)), "{e}");
        assert!(book.get(&WorkloadId::new("default", "web")).is_none());
        assert!(store.list_records().unwrap().is_empty());
        // The owner's revisions are kept, and remembered for rollbacks.
        for rev in 1..=3 {
            book.offer(signed(&owner, "web", rev, false), 10).unwrap();
        }
        let id = WorkloadId::new("default", "web");
        let revs: Vec<u64> = book
            .history(&id)
            .iter()
            .map(|v| v.record.revision)
            .collect();
        assert_eq!(revs, [1, 2, 3]);
        assert!(book.known_version(&id, 2).is_some());
        assert!(book.known_version(&id, 4).is_none());
    }

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
        let book = RecordBook::load(store.clone(), any()).unwrap();
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
        let again = RecordBook::load(store, any()).unwrap();
        let held = again.get(&WorkloadId::new("default", "web")).unwrap();
        assert_eq!(held.record.revision, 3);
        assert!(held.record.tombstone);
    }

    #[test]
    fn expired_tombstones_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let book = RecordBook::load(Store::open(dir.path()).unwrap(), any()).unwrap();
        let key = Keypair::generate_ed25519();
        book.offer(signed(&key, "gone", 1, true), 1).unwrap();
        book.offer(signed(&key, "kept", 1, false), 1).unwrap();
        book.prune(1 + TOMBSTONE_TTL_MS).unwrap();
        assert_eq!(book.list().len(), 1);
        assert_eq!(book.list()[0].record.id.name, "kept");
    }
}
