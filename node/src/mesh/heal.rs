//! Self-healing without a leader. Every node runs the same round, each heartbeat period and
//! whenever a peer dies or comes back, over the workload records it holds:
//!
//! - a slot without a live provider (none announced, or its holder confirmed dead by
//!   [`super::liveness`]) is placed again by one node only: the live holder of the
//!   workload's current version ranked first by [`rendezvous`] for that slot, or, when no
//!   holder is left, the live node closest to the record's DHT key. It places with the same
//!   plan and placement as an apply and sends the signed record (with its data key, which
//!   it holds as a replica of that record) to the target, point to point;
//! - a slot filled twice (both sides of a partition restored it) is given up by its
//!   lower-ranked holder once the two hear of each other, and a slot beyond the count by its
//!   holder, so exactly n remain. Each holder decides for itself, from the same plan.
//!
//! Every move is an event with its reason ([`Step::Heal`]).

use std::collections::HashSet;
use std::time::Instant;

use libp2p::kad::KBucketKey;
use libp2p::PeerId;
use mesh_protocol::api::{ApplyOutcome, SignedRecord};
use mesh_protocol::wire::ReplicaApply;
use mesh_protocol::{Outcome, Step, WorkloadId};
use mesh_provider::keys;
use mesh_provider::plan::{plan, rendezvous, Candidate, Holder};
use mesh_provider::workload::Verified;
use mesh_runtime::now_millis;
use tokio_util::sync::CancellationToken;

use super::liveness::Status;
use super::merge::short_id;
use super::Mesh;
use crate::records::{self, Opened};

/// A slot sent to a node by [`Mesh::place_slots`], and how it went there.
pub(crate) struct Placed {
    pub target: PeerId,
    /// The engine the plan expected the node to use.
    pub engine: String,
    pub outcome: Result<ApplyOutcome, super::Error>,
}

impl Mesh {
    pub(crate) async fn run_healer(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.inner.config.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.inner.heal_now.notified() => {}
                _ = shutdown.cancelled() => return,
            }
            self.heal_round().await;
        }
    }

    /// Whether this node takes part in healing now (see [`Mesh::heal_round`]).
    pub fn heals(&self) -> bool {
        !self.inner.owned.is_closed() && self.cache_is_warm() && self.heartbeats_are_warm()
    }

    /// One healing round over every live workload record this node holds. A node that just
    /// started waits until it has heard a full round of announcements and heartbeats (before
    /// that, every slot would look empty to it); a node that is leaving does nothing.
    pub(crate) async fn heal_round(&self) {
        if !self.heals() {
            return;
        }
        for v in self.inner.records.list() {
            if !v.record.tombstone {
                self.heal(&v).await;
            }
        }
    }

    async fn heal(&self, v: &Verified) {
        let id = v.record.id.clone();
        let Some(count) = v.record.replicas.count() else {
            return; // one per capable node: nothing is a slot to move
        };
        // A fresh apply is still being placed by its entry node.
        let grace = self.inner.config.heartbeat_validity().as_millis() as u64;
        if now_millis().saturating_sub(v.record.issued_at) < grace {
            return;
        }
        let lock = self.workload_lock(&id);
        let _turn = lock.lock().await;
        let workload = id.to_string();
        let version = &v.record.spec_version;
        let holders = self.live_holders(&id).await;
        let me = self.peer_id();
        // What stays, from the holders alone: a slot held twice or beyond the count is given
        // up by the holder the plan retires; that holder decides for itself.
        let bare = plan(
            &workload,
            v.record.replicas,
            version,
            Default::default(),
            &[],
            &holders,
        );
        if let Some((slot, _)) = bare.retire.iter().find(|(_, p)| *p == me) {
            self.give_up(&id, version, *slot, count, &holders).await;
            return;
        }
        let current: Vec<PeerId> = holders
            .iter()
            .filter(|h| h.version == *version && h.running)
            .map(|h| h.peer)
            .collect();
        // A slot that was empty when a peer (an entry node, a healer, a drain) placed a
        // replica here moments ago: that peer may still be placing it, one slot after another.
        // Acting for it now, as its only current holder, would place it twice. (Giving up a
        // slot held twice, above, is not delayed.)
        let mine: Vec<u32> = bare
            .unplaced
            .into_iter()
            .filter(|slot| self.acts_for(&id, *slot, &current) == me)
            .filter(|slot| !self.left_to_placer(&id, *slot))
            .collect();
        if !mine.is_empty() {
            self.place(v, &holders, &mine).await;
        }
    }

    /// The slot holders of `id` as an apply sees them ([`Mesh::slot_holders`]: announced by
    /// peers not confirmed dead, and this node's own replica from its store), but a holder on
    /// a cordoned node counts as not running: when its slot is held twice (a drain places the
    /// slot elsewhere before it removes its own), it is the one to go.
    async fn live_holders(&self, id: &WorkloadId) -> Vec<Holder> {
        self.live(self.slot_holders(id).await)
    }

    /// `holders`, a holder on a cordoned node counted as not running (see `live_holders`).
    fn live(&self, holders: Vec<(Holder, mesh_protocol::wire::Provider)>) -> Vec<Holder> {
        let me = self.peer_id();
        let cordoned = |peer: &PeerId| {
            if *peer == me {
                self.inner.node.store().cordoned()
            } else {
                self.inner.peers.get(peer).is_some_and(|r| r.cordoned)
            }
        };
        holders
            .into_iter()
            .map(|(mut h, _)| {
                h.running &= !cordoned(&h.peer);
                h
            })
            .collect()
    }

    /// Who places an empty `slot` of `id`: of the live holders running the current version,
    /// the one [`rendezvous`] ranks first; with none, the live node closest to the record's
    /// DHT key.
    fn acts_for(&self, id: &WorkloadId, slot: u32, current: &[PeerId]) -> PeerId {
        let workload = id.to_string();
        if let Some(top) = current
            .iter()
            .max_by_key(|p| rendezvous(&workload, slot, p))
        {
            return *top;
        }
        let target = KBucketKey::new(keys::record(id));
        let me = self.peer_id();
        let mut nodes = self.alive_peers();
        nodes.push(me);
        nodes
            .into_iter()
            .min_by_key(|p| KBucketKey::from(*p).distance(&target))
            .unwrap_or(me)
    }

    /// Places the empty `slots` of a workload this node acts for.
    async fn place(&self, v: &Verified, holders: &[Holder], slots: &[u32]) {
        let id = &v.record.id;
        let version = &v.record.spec_version;
        let (signed, opened) = match self.open_held(v) {
            Ok(held) => held,
            Err(records::Error::NoKey(_)) => {
                self.waiting_for_key(v);
                return;
            }
            Err(e) => {
                tracing::warn!(workload = %id, error = %e, "cannot open the record to heal it");
                return;
            }
        };
        // Candidates this node believes alive (a suspect gets nothing new).
        let candidates: Vec<_> = self
            .candidates(&opened.spec)
            .await
            .into_iter()
            .filter(|c| c.is_self || self.inner.liveness.status(&c.peer) == Status::Alive)
            .collect();
        let workload = id.to_string();
        let placed = self
            .place_slots(&signed, &opened, &candidates, holders, slots)
            .await;
        for (slot, result) in placed {
            let why = match self.gone_holder(id, slot) {
                Some(peer) => format!("its holder …{} is dead", short_id(&peer)),
                None => "no live node announced it".to_string(),
            };
            let placed = match result {
                Ok(p) => p,
                Err(notes) => {
                    tracing::info!(workload = %id, slot, reason = %why, %notes, "slot left empty: no capable node");
                    continue;
                }
            };
            let target = short_id(&placed.target);
            let (outcome, message) = match placed.outcome {
                Ok(o) => (
                    Outcome::Ok,
                    format!(
                        "slot {slot} placed on …{target} ({}, {:?}): {why}",
                        placed.engine, o.deployment.phase
                    ),
                ),
                Err(e) => (
                    Outcome::Failed,
                    format!("slot {slot} could not be placed on …{target}: {e} ({why})"),
                ),
            };
            self.mesh_event(Step::Heal, &workload, version, outcome, message);
        }
    }

    /// Plans `slots` of the workload of `opened` (sent as `signed`), given its `holders`,
    /// over `candidates` with the apply's own plan and placement, and sends each slot's node
    /// its `ApplyReplica` in turn. A slot no candidate can take is `Err` with the plan's notes.
    pub(crate) async fn place_slots(
        &self,
        signed: &SignedRecord,
        opened: &Opened,
        candidates: &[Candidate],
        holders: &[Holder],
        slots: &[u32],
    ) -> Vec<(u32, Result<Placed, String>)> {
        let record = &opened.verified.record;
        let planned = plan(
            &record.id.to_string(),
            record.replicas,
            &record.spec_version,
            opened.spec.resources,
            candidates,
            holders,
        );
        let mut out = Vec::with_capacity(slots.len());
        // One id for this placement (a heal or a drain), carried to the targets' logs.
        let cid = super::apply::new_correlation("place");
        for slot in slots {
            let Some((_, target, engine)) = planned.add.iter().find(|(s, _, _)| s == slot) else {
                out.push((*slot, Err(planned.notes.join("; "))));
                continue;
            };
            let request = ReplicaApply {
                correlation: Some(cid.clone()),
                record: signed.clone(),
                workload: record.id.clone(),
                slot: *slot,
                desired_replicas: record.replicas.count().unwrap_or(0),
                modules: Vec::new(),
                placement: planned.notes.clone(),
                entry: self.peer_id().to_string(),
            };
            tracing::info!(workload = %record.id, slot, target = %target, correlation = %cid, "placing a slot");
            let outcome = self.run_replica(*target, request).await;
            let placed = Placed {
                target: *target,
                engine: engine.clone(),
                outcome,
            };
            out.push((*slot, Ok(placed)));
        }
        out
    }

    /// Notes that `placer` placed a replica of `id` here, when the slots in `empty` had no
    /// live holder (see [`Mesh::heal`]).
    pub(crate) fn placed_here(&self, id: &WorkloadId, placer: PeerId, empty: Vec<u32>) {
        let mut placed = self.inner.placed_here.lock().expect("never poisoned");
        let validity = self.inner.config.heartbeat_validity();
        placed.retain(|_, (at, _, _)| at.elapsed() < validity);
        placed.insert(id.clone(), (Instant::now(), placer, empty));
    }

    /// Whether `slot` of `id` is left to the peer that placed a replica here: it was empty
    /// then, less than a heartbeat's validity ago (the grace a fresh apply has too), and
    /// that peer is not suspect or dead since (a placer that died places nothing more). A
    /// slot emptied later (its holder died since) is not its business.
    fn left_to_placer(&self, id: &WorkloadId, slot: u32) -> bool {
        let placed = self.inner.placed_here.lock().expect("never poisoned");
        let validity = self.inner.config.heartbeat_validity();
        placed.get(id).is_some_and(|(at, placer, empty)| {
            at.elapsed() < validity
                && empty.contains(&slot)
                && self.inner.liveness.status(placer) == Status::Alive
        })
    }

    /// The slots of `id` no live holder fills, as this node's gossip cache and store show
    /// them now. Called on a replica's apply, before its answer: never a DHT lookup (a node
    /// whose cache is still cold does not heal yet anyway, and a holder missing from its cache
    /// only widens the grace).
    pub(crate) fn unplaced_now(&self, id: &WorkloadId) -> Vec<u32> {
        let Some(v) = self.inner.records.get(id).filter(|v| !v.record.tombstone) else {
            return Vec::new();
        };
        let holders = self.live(self.holders_among(id, self.cached_providers_of(id)));
        plan(
            &id.to_string(),
            v.record.replicas,
            &v.record.spec_version,
            Default::default(),
            &[],
            &holders,
        )
        .unplaced
    }

    /// The peer confirmed dead that last announced `slot` of `id`, if any.
    fn gone_holder(&self, id: &WorkloadId, slot: u32) -> Option<PeerId> {
        self.cached_providers_of(id)
            .into_iter()
            .filter(|p| p.slot == Some(slot))
            .filter_map(|p| p.peer_id.parse().ok())
            .find(|p| self.inner.liveness.is_dead(p))
    }

    /// The held record `v` as it is sent to a new slot, opened: this node's own replica's
    /// record when it runs that revision (a sealed manifest's key came with it), else the
    /// record alone. `Err(NoKey)` when it is sealed and this node has no key for it.
    pub(crate) fn open_held(&self, v: &Verified) -> Result<(SignedRecord, Opened), records::Error> {
        let own = self
            .inner
            .node
            .store()
            .desired(&v.record.id)
            .ok()
            .flatten()
            .and_then(|d| d.record.filter(|_| d.revision == v.record.revision));
        let signed = own.unwrap_or_else(|| SignedRecord {
            bytes: v.bytes.clone(),
            data_key: None,
        });
        let opened = records::open(&signed)?;
        Ok((signed, opened))
    }

    /// A sealed workload with an empty slot that no node holding its data key can place:
    /// it waits for its user to apply it again (said once per revision).
    fn waiting_for_key(&self, v: &Verified) {
        let key = (v.record.id.clone(), v.record.revision);
        let mut waiting = self
            .inner
            .heal_waiting
            .lock()
            .expect("heal waiting lock is never poisoned");
        if !waiting.insert(key) {
            return;
        }
        let message = "a slot is empty and no live node holds the data key of its sealed \
                       manifest: waiting until it is applied again"
            .to_string();
        tracing::warn!(workload = %v.record.id, "{message}");
        self.mesh_event(
            Step::Heal,
            &v.record.id.to_string(),
            &v.record.spec_version,
            Outcome::Failed,
            message,
        );
    }

    /// Gives up this node's replica in `slot`: another live holder keeps the slot (after a
    /// partition healed), or the slot is beyond the count.
    async fn give_up(
        &self,
        id: &WorkloadId,
        version: &str,
        slot: u32,
        count: u32,
        holders: &[Holder],
    ) {
        let me = self.peer_id();
        let other: HashSet<PeerId> = holders
            .iter()
            .filter(|h| h.slot == slot && h.peer != me)
            .map(|h| h.peer)
            .collect();
        let why = match other.iter().next() {
            _ if slot >= count => format!("slot {slot} is beyond the {count} replicas wanted"),
            Some(keeper) => format!(
                "slot {slot} is also filled by …{}, which ranks higher (the mesh was split)",
                short_id(keeper)
            ),
            None => format!("this node fills another slot of it than slot {slot}"),
        };
        match self.inner.node.delete_slot(id, slot).await {
            Ok(true) => {
                tracing::info!(workload = %id, slot, reason = %why, "gave up a slot");
                // Recorded before the withdrawal, which waits for the DHT's copies.
                let message = format!("retired here: {why}");
                self.mesh_event(Step::Heal, &id.to_string(), version, Outcome::Ok, message);
                self.withdraw(id).await;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(workload = %id, slot, error = %e, "cannot give up a slot"),
        }
    }
}
