//! Planning a workload's replicas: which numbered slots are filled, by whom, and what an
//! apply (or, later, a healer) must do to reach the record's desired state. Sans-IO: the
//! node gathers the candidates (the same view `meshctl nodes` shows) and the current slot
//! holders (provider records), and this module decides.
//!
//! Rules:
//! - a slot holder running the wanted version is kept, untouched (an unchanged apply sends
//!   nothing to anyone);
//! - a holder of another version is updated in place, one at a time (the caller rolls out),
//!   and so is a holder whose replica failed (it is retried where it is);
//! - slots at or beyond the count retire (a scale-down retires the highest slots);
//! - a slot held twice (after a partition) keeps one holder, preferring a running one, then
//!   the wanted version, then the one ranked higher by [`rendezvous`], and retires the other
//!   (every node computes the same order, so the two holders agree on which goes); a node
//!   holding two slots keeps the lower;
//! - an empty slot goes to the best-ranked capable candidate that holds no slot (one replica
//!   per node), ranked by [`crate::placement::rank`].
//!
//! For [`Replicas::EveryNode`] (a DaemonSet) every capable candidate without a slot gets the
//! lowest free slot number.

use std::collections::{BTreeMap, HashSet};

use libp2p_identity::PeerId;
use mesh_protocol::spec::ResourceAmounts;
use sha2::{Digest, Sha256};

use crate::placement::{rank, NodeCandidate, Placement};
use crate::workload::Replicas;

/// A node that could run a replica, as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub peer: PeerId,
    pub is_self: bool,
    /// The engine this node would use, or why it cannot run the workload.
    pub engine: Result<String, String>,
    pub cpu_free_millis: u64,
    pub memory_free_bytes: u64,
}

/// A slot as its holder announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub slot: u32,
    pub peer: PeerId,
    pub version: String,
    /// Its replica runs (or ran to completion); a failed or stopped one is retried in place.
    pub running: bool,
}

/// What to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Slots already as wanted.
    pub keep: Vec<(u32, PeerId)>,
    /// Slots whose holder runs another version (or failed), to update in place one at a time.
    pub update: Vec<(u32, PeerId)>,
    /// Empty slots, the node chosen for each and the engine it would use.
    pub add: Vec<(u32, PeerId, String)>,
    /// Slots (or duplicate holders) to retire.
    pub retire: Vec<(u32, PeerId)>,
    /// Slots no capable node could take.
    pub unplaced: Vec<u32>,
    /// Why candidates were passed over, and what could not be placed.
    pub notes: Vec<String>,
}

impl Plan {
    /// Whether the workload is already as wanted.
    pub fn is_noop(&self) -> bool {
        self.update.is_empty()
            && self.add.is_empty()
            && self.retire.is_empty()
            && self.unplaced.is_empty()
    }
}

/// The rendezvous (highest random weight) rank of `peer` for slot `slot` of `workload`: a
/// hash every node computes alike, so the nodes agree, without talking, on who of several
/// acts for a slot (the healer) or keeps it (a slot held twice).
pub fn rendezvous(workload: &str, slot: u32, peer: &PeerId) -> u64 {
    let mut h = Sha256::new();
    h.update(workload.as_bytes());
    h.update([0]);
    h.update(slot.to_be_bytes());
    h.update(peer.to_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Plans `wanted` replicas of `workload` (`namespace/name`) at version `version` needing
/// `needs`, given the current `holders` and the `candidates`.
pub fn plan(
    workload: &str,
    wanted: Replicas,
    version: &str,
    needs: ResourceAmounts,
    candidates: &[Candidate],
    holders: &[Holder],
) -> Plan {
    let mut out = Plan::default();
    // One holder per slot and one slot per node.
    let mut sorted: Vec<&Holder> = holders.iter().collect();
    sorted.sort_by(|a, b| {
        a.slot
            .cmp(&b.slot)
            .then((!a.running).cmp(&!b.running))
            .then((a.version != version).cmp(&(b.version != version)))
            .then(rendezvous(workload, b.slot, &b.peer).cmp(&rendezvous(workload, a.slot, &a.peer)))
    });
    let mut by_slot: BTreeMap<u32, &Holder> = BTreeMap::new();
    let mut busy: HashSet<PeerId> = HashSet::new();
    for h in sorted {
        if by_slot.contains_key(&h.slot) || busy.contains(&h.peer) {
            out.retire.push((h.slot, h.peer));
            continue;
        }
        by_slot.insert(h.slot, h);
        busy.insert(h.peer);
    }
    let count = wanted.count();
    for (slot, h) in &by_slot {
        if count.is_some_and(|n| *slot >= n) {
            // Stays busy: a node is never told to start a slot and retire one at once.
            out.retire.push((*slot, h.peer));
        } else if h.version == version && h.running {
            out.keep.push((*slot, h.peer));
        } else {
            out.update.push((*slot, h.peer));
        }
    }
    let filled: HashSet<u32> = by_slot.keys().copied().collect();

    let free: Vec<NodeCandidate> = candidates
        .iter()
        .filter(|c| !busy.contains(&c.peer))
        .map(|c| NodeCandidate {
            peer_id: c.peer.to_string(),
            is_self: c.is_self,
            engine: c.engine.clone(),
            cpu_free_millis: c.cpu_free_millis,
            memory_free_bytes: c.memory_free_bytes,
            replicas_here: 0,
        })
        .collect();
    let empty: Vec<u32> = match count {
        Some(n) => (0..n).filter(|s| !filled.contains(s)).collect(),
        None => Vec::new(),
    };
    // Nothing to place: no ranking, so no note about nodes that were not needed.
    let ranked = if count.is_some() && empty.is_empty() {
        Placement::default()
    } else {
        rank(&free, count.map(|_| empty.len() as u32), needs)
    };
    out.notes = ranked.passed_over;
    // Slots for a DaemonSet: the lowest numbers no holder uses, as many as chosen nodes.
    let slots: Vec<u32> = match count {
        Some(_) => empty.clone(),
        None => (0u32..)
            .filter(|s| !filled.contains(s))
            .take(ranked.chosen.len())
            .collect(),
    };
    for ((peer, engine), slot) in ranked.chosen.into_iter().zip(slots.iter().copied()) {
        let peer = peer.parse().expect("candidate ids come from PeerIds");
        out.add.push((slot, peer, engine));
    }
    out.unplaced = slots.into_iter().skip(out.add.len()).collect();
    if !out.unplaced.is_empty() {
        let placed = out.keep.len() + out.update.len() + out.add.len();
        out.notes.insert(
            0,
            format!(
                "placed {placed} of {wanted} replicas: {} found no capable node with room",
                out.unplaced.len()
            ),
        );
    }
    out.retire.sort_by_key(|(slot, _)| std::cmp::Reverse(*slot));
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
