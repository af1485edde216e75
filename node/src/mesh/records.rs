//! Workload records in the mesh: adopted into the book, published on gossip and under one DHT
//! key per workload, looked up, re-published, and acted on when a tombstone arrives.
//!
//! Every copy, whichever way it came, is verified before the book sees it, and the book keeps
//! only a higher revision, so a forged, altered or replayed record changes nothing.

use std::time::{Duration, Instant};

use mesh_protocol::WorkloadId;
use mesh_provider::keys;
use mesh_provider::workload::{self, Verified};
use mesh_runtime::now_millis;

use super::Error;
use super::Mesh;
use crate::net::Verdict;
use crate::records::book::Offer;

/// How long a workload record lives in the DHT without being put again. Holders re-put it
/// every renewal round, so it outlives them by this much: long enough for a healer to find
/// the record of a workload whose every replica died.
pub const RECORD_DHT_TTL: Duration = Duration::from_secs(24 * 3600);

impl Mesh {
    /// Offers a verified record to the book without publishing it: an apply publishes its
    /// record on gossip as its requests to the new slots leave (see `Mesh::apply_record`), and
    /// the record reaches the DHT with its holders' republish round (putting a new key walks to
    /// its closest peers, dialling those not connected); a delete tells the holders first,
    /// then publishes the tombstone on gossip and in the DHT at once (it has no holders to
    /// republish it). A record older than the one held: 409.
    pub(crate) fn keep(&self, v: &Verified) -> Result<Offer, Error> {
        match self.inner.records.offer(v.clone(), now_millis())? {
            Offer::Older { held } => Err(crate::records::Error::Stale {
                id: v.record.id.clone(),
                offered: v.record.revision,
                held,
            }
            .into()),
            offer => Ok(offer),
        }
    }

    /// Publishes a record on gossip and stores it under its DHT key.
    pub(crate) async fn publish_record(&self, v: &Verified) {
        self.inner.net.publish(v.bytes.clone()).await;
        if let Err(e) = self
            .inner
            .net
            .put_record(
                keys::record(&v.record.id),
                v.bytes.clone(),
                Instant::now() + RECORD_DHT_TTL,
                false,
            )
            .await
        {
            tracing::debug!(workload = %v.record.id, error = %e, "workload record not replicated yet");
        }
    }

    /// The record of `id` this node holds. A warm node (up for a renewal round) has heard
    /// every live record, which the holders republish each round: its book answers. A node
    /// that just started asks the DHT as well. For a workload nobody holds, a DHT lookup walks
    /// all the way to the key's closest peers: the apply path must not pay for it when the
    /// book already knows.
    pub(crate) async fn record(&self, id: &WorkloadId) -> Option<Verified> {
        let held = self.inner.records.get(id);
        if self.cache_is_warm() {
            return held;
        }
        self.record_from_dht(id).await
    }

    /// The newest record of `id` from the book and the DHT both (tombstones of deletes this
    /// node missed included): what `meshctl` signs the next revision after.
    pub(crate) async fn record_from_dht(&self, id: &WorkloadId) -> Option<Verified> {
        let found = self.inner.net.get_records(keys::record(id)).await;
        for bytes in found {
            match workload::verify_at(&bytes, now_millis()) {
                Ok(v) if v.record.id == *id => match self.inner.records.offer(v, now_millis()) {
                    Ok(_) => {}
                    Err(crate::records::book::OfferError::Refused(refusal)) => {
                        tracing::debug!(workload = %id, %refusal, "refused a DHT copy of a record");
                    }
                    Err(e) => tracing::error!(error = %e, "cannot keep a workload record"),
                },
                Ok(_) | Err(_) => tracing::debug!(workload = %id, "refused a DHT copy of a record"),
            }
        }
        self.inner.records.get(id)
    }

    /// A workload record heard on gossip: verified, offered to the book. A tombstone removes
    /// this node's replica; an older revision than the one held means its sender missed an
    /// update or a delete, so the newer one is published again.
    /// The verdict tells gossipsub whether to forward the message (a new record), drop it
    /// quietly (a copy or an older one; a clock ahead of ours) or drop it and count it against
    /// the peer that sent it (a record that does not verify).
    pub(crate) fn on_gossip_record(&self, data: &[u8]) -> Verdict {
        let v = match workload::verify_at(data, now_millis()) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %e, "refused a workload record on gossip");
                return match e {
                    workload::Error::FromTheFuture(_) => Verdict::Ignore,
                    _ => Verdict::Reject,
                };
            }
        };
        let id = v.record.id.clone();
        match self.inner.records.offer(v.clone(), now_millis()) {
            Ok(Offer::Adopted) if v.record.tombstone => {
                self.retire_local(id, v.record.revision, "deleted");
                Verdict::Accept
            }
            Ok(Offer::Adopted) => Verdict::Accept,
            Ok(Offer::Same) => Verdict::Ignore,
            Ok(Offer::Older { .. }) => {
                let Some(held) = self.inner.records.get(&id) else {
                    return Verdict::Ignore;
                };
                // The sender missed an update or a delete. The nodes that run the workload
                // (and every holder of a tombstone) repeat the newer record, at most once a
                // round each, rather than every node that heard the old one.
                let runs_it = matches!(self.inner.node.store().desired(&id), Ok(Some(_)));
                if (runs_it || held.record.tombstone) && self.should_repeat(&id) {
                    let mesh = self.clone();
                    let newer = held.clone();
                    // The node's own work: a stopping node waits for it (it holds the store).
                    self.inner
                        .owned
                        .spawn(async move { mesh.publish_record(&newer).await });
                }
                if held.record.tombstone {
                    self.retire_local(id, held.record.revision, "deleted");
                }
                Verdict::Ignore
            }
            // Another node's policy may trust who this one does not: not the sender's fault.
            Err(crate::records::book::OfferError::Refused(refusal)) => {
                tracing::debug!(workload = %id, %refusal, "refused a workload record on gossip");
                Verdict::Ignore
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot keep a workload record");
                Verdict::Ignore
            }
        }
    }

    /// Whether a record may be published again now (at most once per renewal round each).
    fn should_repeat(&self, id: &WorkloadId) -> bool {
        let mut repeated = self
            .inner
            .repeated
            .lock()
            .expect("repeat lock is never poisoned");
        let now = Instant::now();
        let round = self.inner.config.provider_ttl / 3;
        if repeated
            .get(id)
            .is_some_and(|at| now.duration_since(*at) < round)
        {
            return false;
        }
        repeated.retain(|_, at| now.duration_since(*at) < round);
        repeated.insert(id.clone(), now);
        true
    }

    /// Removes this node's replica of `id` in a task the node owns, if the replica runs a
    /// record older than `revision` (a tombstone's). Checked under the replica's lock, so an
    /// apply of a newer revision that got in first is not undone.
    pub(crate) fn retire_local(&self, id: WorkloadId, revision: u64, why: &'static str) {
        let node = self.inner.node.clone();
        let mesh = self.clone();
        self.inner.owned.spawn(async move {
            match node.delete_superseded(&id, revision).await {
                Ok(true) => {
                    tracing::info!(workload = %id, reason = why, "removed this node's replica");
                    mesh.withdraw(&id).await;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(workload = %id, error = %e, "cannot remove the replica"),
            }
        });
    }

    /// At start: replicas whose workload the book says was deleted (the node went down
    /// between learning the tombstone and removing its replica) are removed.
    pub(crate) fn retire_deleted(&self) {
        let Ok(desired) = self.inner.node.store().list_desired() else {
            return;
        };
        for d in desired {
            let id = d.spec.id();
            if let Some(held) = self.inner.records.get(&id).filter(|h| h.record.tombstone) {
                self.retire_local(id, held.record.revision, "deleted while this node was down");
            }
        }
    }

    /// Re-publishes the records of workloads this node runs, each by one holder only: the
    /// holder of the lowest slot this node knows to be live, on gossip and under the DHT key.
    /// Nodes that joined since, or missed a gossip message, learn every record within a
    /// renewal round this way, and the DHT holds every record that has a live replica.
    pub(crate) async fn republish_records(&self) {
        let me = self.peer_id();
        let Ok(desired) = self.inner.node.store().list_desired() else {
            return;
        };
        for d in desired {
            let id = d.spec.id();
            let Some(held) = self.inner.records.get(&id) else {
                continue;
            };
            if held.record.tombstone {
                continue;
            }
            let lowest_other = self
                .live_slots(&id)
                .into_iter()
                .filter(|(_, peer)| *peer != me)
                .map(|(slot, _)| slot)
                .min();
            if lowest_other.is_none_or(|other| d.slot < other) {
                self.publish_record(&held).await;
            }
        }
    }

    /// Slots of `id` with an unexpired, running provider record heard on gossip.
    pub(crate) fn live_slots(&self, id: &WorkloadId) -> Vec<(u32, libp2p::PeerId)> {
        let heard = self.inner.providers.get(&id.to_string());
        let raw = heard.iter().map(|(peer, r)| (Some(*peer), r.as_slice()));
        mesh_provider::newest_per_provider(raw, &id.to_string(), None, now_millis())
            .into_iter()
            .filter(|r| r.phase.is_healthy())
            .filter_map(|r| Some((r.slot?, r.peer_id.parse().ok()?)))
            .collect()
    }
}
