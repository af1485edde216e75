//! Peers heard from by gossip heartbeat: their signed node records and when they arrived.
//! Placement and `list` use the fresh ones.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use mesh_provider::NodeRecord;

#[derive(Debug)]
pub struct PeerTable {
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

    /// Records a verified heartbeat; an older one (by signed issue time) never replaces a newer.
    pub fn insert(&self, peer: PeerId, record: NodeRecord) {
        let mut peers = self
            .peers
            .lock()
            .expect("peer table lock is never poisoned");
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
        let mut peers = self
            .peers
            .lock()
            .expect("peer table lock is never poisoned");
        peers.retain(|_, (r, at)| at.elapsed() < self.stale_after * 10 && r.expires_at > now);
        peers
            .iter()
            .filter(|(_, (r, at))| at.elapsed() < self.stale_after && r.expires_at > now)
            .map(|(p, (r, _))| (*p, r.clone()))
            .collect()
    }

    /// Every peer heard from (stale ones included, until forgotten), with when its newest
    /// heartbeat arrived.
    pub fn heard(&self) -> Vec<(PeerId, Instant)> {
        let peers = self
            .peers
            .lock()
            .expect("peer table lock is never poisoned");
        peers.iter().map(|(p, (_, at))| (*p, *at)).collect()
    }

    pub fn get(&self, peer: &PeerId) -> Option<NodeRecord> {
        let peers = self
            .peers
            .lock()
            .expect("peer table lock is never poisoned");
        peers.get(peer).map(|(r, _)| r.clone())
    }

    /// The addresses `peer` announced in its node record (none if not heard of).
    pub fn addrs_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.get(peer)
            .map(|r| r.addresses.iter().filter_map(|a| a.parse().ok()).collect())
            .unwrap_or_default()
    }
}
