//! Provider records heard on gossip. Every node publishes its signed provider records (and
//! withdrawals) on the gossip topic when it announces, renews or withdraws them, so the other
//! nodes learn about a new provider within a gossip round instead of waiting for a DHT lookup
//! to reach the key's closest peers. Discovery merges these copies with what the DHT returns;
//! both are the same signed bytes and go through the same verification, so the cache can
//! make discovery faster but never make it say something the signer did not sign.

use std::collections::HashMap;
use std::sync::Mutex;

use libp2p::PeerId;
use mesh_protocol::UnixMillis;
use mesh_provider::record::ProviderRecord;

/// Signed provider records kept at most; beyond it, new workloads are not cached (the DHT
/// still finds them).
pub const MAX_CACHED: usize = 100_000;

/// One provider's newest signed record of one workload.
#[derive(Debug, Clone)]
struct Entry {
    issued_at: UnixMillis,
    expires_at: UnixMillis,
    bytes: Vec<u8>,
}

/// Newest signed record per (workload, provider).
#[derive(Debug, Default)]
pub struct ProviderCache {
    entries: Mutex<HashMap<String, HashMap<PeerId, Entry>>>,
}

impl ProviderCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `bytes`, the signed `record` of `signer`, unless a copy issued later is held.
    /// The caller verified the signature. Returns whether it was kept.
    pub fn insert(
        &self,
        signer: PeerId,
        record: &ProviderRecord,
        bytes: Vec<u8>,
        now: UnixMillis,
    ) -> bool {
        let mut entries = self.entries.lock().expect("cache lock is never poisoned");
        let len: usize = entries.values().map(HashMap::len).sum();
        if len >= MAX_CACHED {
            prune(&mut entries, now);
            if entries.values().map(HashMap::len).sum::<usize>() >= MAX_CACHED {
                return false;
            }
        }
        let per = entries.entry(record.workload.clone()).or_default();
        if per
            .get(&signer)
            .is_some_and(|have| have.issued_at >= record.issued_at)
        {
            return false;
        }
        per.insert(
            signer,
            Entry {
                issued_at: record.issued_at,
                expires_at: record.expires_at,
                bytes,
            },
        );
        true
    }

    /// The signed copies held for `workload` (`namespace/name`), with the peer each names.
    pub fn get(&self, workload: &str) -> Vec<(PeerId, Vec<u8>)> {
        let entries = self.entries.lock().expect("cache lock is never poisoned");
        entries
            .get(workload)
            .map(|per| per.iter().map(|(p, e)| (*p, e.bytes.clone())).collect())
            .unwrap_or_default()
    }

    /// The signed copy `peer` published for workload `id`, if held.
    pub fn own(&self, id: &mesh_protocol::WorkloadId, peer: &PeerId) -> Option<Vec<u8>> {
        let entries = self.entries.lock().expect("cache lock is never poisoned");
        entries
            .get(&id.to_string())
            .and_then(|per| per.get(peer))
            .map(|e| e.bytes.clone())
    }

    /// Drops expired copies (withdrawals included: once expired they have done their job).
    /// Whether `peer` announced any provider record held here.
    pub fn knows(&self, peer: &PeerId) -> bool {
        let entries = self
            .entries
            .lock()
            .expect("provider cache lock is never poisoned");
        entries.values().any(|by_peer| by_peer.contains_key(peer))
    }

    pub fn prune(&self, now: UnixMillis) {
        let mut entries = self.entries.lock().expect("cache lock is never poisoned");
        prune(&mut entries, now);
    }

    pub fn len(&self) -> usize {
        let entries = self.entries.lock().expect("cache lock is never poisoned");
        entries.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn prune(entries: &mut HashMap<String, HashMap<PeerId, Entry>>, now: UnixMillis) {
    entries.retain(|_, per| {
        per.retain(|_, e| e.expires_at > now);
        !per.is_empty()
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_protocol::Phase;

    fn record(peer: &PeerId, issued_at: u64, expires_at: u64) -> ProviderRecord {
        ProviderRecord {
            workload: "default/web".into(),
            version: "v".into(),
            peer_id: peer.to_string(),
            engine: "mock".into(),
            capabilities: Vec::new(),
            resources: Default::default(),
            phase: Phase::Running,
            addresses: Vec::new(),
            issued_at,
            expires_at,
            withdrawn: false,
            slot: None,
            revision: None,
        }
    }

    #[test]
    fn newer_copies_replace_older_and_never_the_reverse() {
        let cache = ProviderCache::new();
        let peer = PeerId::random();
        assert!(cache.insert(peer, &record(&peer, 10, 100), b"first".to_vec(), 0));
        assert!(cache.insert(peer, &record(&peer, 20, 100), b"second".to_vec(), 0));
        assert!(!cache.insert(peer, &record(&peer, 15, 100), b"older".to_vec(), 0));
        assert_eq!(cache.get("default/web"), vec![(peer, b"second".to_vec())]);
        assert!(cache.get("default/other").is_empty());
    }

    #[test]
    fn prune_drops_expired_copies() {
        let cache = ProviderCache::new();
        let (a, b) = (PeerId::random(), PeerId::random());
        cache.insert(a, &record(&a, 10, 50), b"a".to_vec(), 0);
        cache.insert(b, &record(&b, 10, 500), b"b".to_vec(), 0);
        cache.prune(100);
        assert_eq!(cache.get("default/web"), vec![(b, b"b".to_vec())]);
        cache.prune(1000);
        assert!(cache.is_empty());
    }
}
