//! Peers heard from by gossip heartbeat: their signed node records and when they arrived.
//! Placement and `list` use the fresh ones.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use mesh_provider::NodeRecord;

/// The longest validity a heartbeat may claim for itself here (a peer's period grows with the
/// mesh: an hour is a period of 20 minutes, a mesh of 10 000 nodes at defaults).
const MAX_VALIDITY: Duration = Duration::from_secs(3600);

/// How long `record` says it is valid (its signer's period × 3 + slack), from its own two
/// timestamps (so a peer's clock being off changes nothing), at least `floor`.
fn validity(record: &NodeRecord, floor: Duration) -> Duration {
    Duration::from_millis(record.expires_at.saturating_sub(record.issued_at))
        .min(MAX_VALIDITY)
        .max(floor)
}

#[derive(Debug)]
pub struct PeerTable {
    /// How long a peer stays fresh after its heartbeat arrived, at least: the validity of
    /// this node's own heartbeats at the configured period. A heartbeat that says it is valid
    /// longer (its signer's period grew with the mesh) keeps its peer fresh that long.
    stale_after: Duration,
    peers: Mutex<HashMap<PeerId, (NodeRecord, Instant)>>,
}

impl PeerTable {
    pub fn new(stale_after: Duration) -> Self {
        Self {
            stale_after,
            peers: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> MutexGuard<'_, HashMap<PeerId, (NodeRecord, Instant)>> {
        self.peers
            .lock()
            .expect("peer table lock is never poisoned")
    }

    /// Records a verified heartbeat; an older one (by signed issue time) never replaces a newer.
    pub fn insert(&self, peer: PeerId, record: NodeRecord) {
        let mut peers = self.table();
        match peers.get(&peer) {
            Some((have, _)) if have.issued_at > record.issued_at => {}
            _ => {
                peers.insert(peer, (record, Instant::now()));
            }
        }
    }

    /// Peers heard from recently whose record has not expired at `now` (Unix ms), in no
    /// particular order. (Sorted by their base58 text, this was the costliest function of 200
    /// in-process nodes forming a mesh: `perf` put 11.7 % of the process in `bs58`, half of it
    /// here, as every liveness round asked for it.)
    pub fn fresh(&self, now: u64) -> Vec<(PeerId, NodeRecord)> {
        let mut peers = self.table();
        let floor = self.stale_after;
        peers.retain(|_, (r, at)| at.elapsed() < validity(r, floor) * 10 && r.expires_at > now);
        peers
            .iter()
            .filter(|(_, (r, at))| self.is_fresh(r, at, now))
            .map(|(p, (r, _))| (*p, r.clone()))
            .collect()
    }

    /// The peers [`Self::fresh`] returns, without copying their records (liveness and
    /// healing ask for these every round; cloning every record was 6 % of 100 in-process
    /// nodes forming a mesh, in `perf`).
    pub fn fresh_ids(&self, now: u64) -> Vec<PeerId> {
        let peers = self.table();
        peers
            .iter()
            .filter(|(_, (r, at))| self.is_fresh(r, at, now))
            .map(|(p, _)| *p)
            .collect()
    }

    /// A heartbeat that arrived at `at` still within its validity, and unexpired at `now`.
    fn is_fresh(&self, record: &NodeRecord, at: &Instant, now: u64) -> bool {
        at.elapsed() < validity(record, self.stale_after) && record.expires_at > now
    }

    /// How many peers were heard from (stale ones included, until forgotten).
    pub fn heard_count(&self) -> usize {
        self.table().len()
    }

    /// When the newest heartbeat of `peer` held here was signed.
    pub fn issued_at(&self, peer: &PeerId) -> Option<u64> {
        let peers = self.table();
        peers.get(peer).map(|(r, _)| r.issued_at)
    }

    /// Every peer heard from (stale ones included, until forgotten), with when its newest
    /// heartbeat arrived and how long that heartbeat is valid (see [`validity`]).
    pub fn heard(&self) -> Vec<(PeerId, Instant, Duration)> {
        let peers = self.table();
        peers
            .iter()
            .map(|(p, (r, at))| (*p, *at, validity(r, self.stale_after)))
            .collect()
    }

    pub fn get(&self, peer: &PeerId) -> Option<NodeRecord> {
        let peers = self.table();
        peers.get(peer).map(|(r, _)| r.clone())
    }

    /// The addresses `peer` announced in its node record (none if not heard of).
    pub fn addrs_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.get(peer)
            .map(|r| r.addresses.iter().filter_map(|a| a.parse().ok()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_provider::record::NodeResources;

    fn record(issued_at: u64, expires_at: u64) -> NodeRecord {
        NodeRecord {
            peer_id: String::new(),
            addresses: vec![],
            engines: vec![],
            resources: NodeResources::default(),
            workloads: 0,
            software_version: "0".into(),
            trust: String::new(),
            cordoned: false,
            issued_at,
            expires_at,
        }
    }

    #[test]
    fn a_heartbeat_keeps_its_peer_fresh_as_long_as_it_says() {
        let now = mesh_runtime::now_millis();
        // This node's own floor is nothing: only the heartbeats' own validity keeps peers.
        let table = PeerTable::new(Duration::ZERO);
        let (long, expired) = (PeerId::random(), PeerId::random());
        table.insert(long, record(now, now + 60_000));
        table.insert(expired, record(now - 60_000, now - 1));
        assert_eq!(table.fresh_ids(now), vec![long]);
        assert_eq!(table.fresh(now).len(), 1);
        let heard = table.heard();
        assert_eq!(heard.len(), 1, "the expired record is forgotten");
        assert_eq!(table.heard_count(), 1);
        assert_eq!(heard[0].2, Duration::from_secs(60));
        // A record claiming more than an hour counts as an hour.
        let greedy = PeerId::random();
        table.insert(greedy, record(now, now + 10 * 3_600_000));
        let heard = table.heard();
        let of_greedy = heard.iter().find(|(p, _, _)| *p == greedy).unwrap();
        assert_eq!(of_greedy.2, MAX_VALIDITY);
        // The floor applies to shorter ones.
        let floored = PeerTable::new(Duration::from_secs(17));
        floored.insert(long, record(now, now + 1_000));
        assert_eq!(floored.heard()[0].2, Duration::from_secs(17));
    }
}
