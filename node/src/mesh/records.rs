//! Workload records in the mesh: adopted into the book, published on gossip and under one DHT
//! key per workload, looked up, re-published, and acted on when a tombstone arrives.
//!
//! Every copy, whichever way it came, is verified before the book sees it, and the book keeps
//! only a higher revision, so a forged, altered or replayed record changes nothing.

use std::time::{Duration, Instant};

use mesh_protocol::{Phase, WorkloadId};
use mesh_provider::keys;
use mesh_provider::workload::{self, Verified};
use mesh_runtime::now_millis;

use super::Mesh;
use crate::error::ApiError;
use crate::records::book::Offer;

/// How long a workload record lives in the DHT without being put again. Holders re-put it
/// every renewal round, so it outlives them by this much: long enough for a healer to find
/// the record of a workload whose every replica died.
pub const RECORD_DHT_TTL: Duration = Duration::from_secs(24 * 3600);

impl Mesh {
    /// Offers a verified record to the book; when it is newer than the one held, it is
    /// published (gossip, and the DHT key's closest peers).
    pub(crate) async fn adopt(&self, v: Verified) -> Result<Offer, ApiError> {
        let offer = self.inner.records.offer(v.clone(), now_millis())?;
        if offer == Offer::Adopted {
            self.publish_record(&v).await;
        }
        Ok(offer)
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

    /// The newest record of `id` this node can find: its book, and on a node whose book may
    /// be incomplete (it just started), the DHT as well.
    pub(crate) async fn record(&self, id: &WorkloadId) -> Option<Verified> {
        let held = self.inner.records.get(id);
        if held.is_some() && self.cache_is_warm() {
            return held;
        }
        let found = self.inner.net.get_records(keys::record(id)).await;
        for bytes in found {
            match workload::verify(&bytes) {
                Ok(v) if v.record.id == *id => {
                    if let Err(e) = self.inner.records.offer(v, now_millis()) {
                        tracing::error!(error = %e, "cannot keep a workload record");
                    }
                }
                Ok(_) | Err(_) => tracing::debug!(workload = %id, "refused a DHT copy of a record"),
            }
        }
        self.inner.records.get(id)
    }

    /// A workload record heard on gossip: verified, offered to the book. A tombstone removes
    /// this node's replica; an older revision than the one held means its sender missed an
    /// update or a delete, so the newer one is published again.
    pub(crate) fn on_gossip_record(&self, data: &[u8]) {
        let v = match workload::verify(data) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %e, "refused a workload record on gossip");
                return;
            }
        };
        let id = v.record.id.clone();
        match self.inner.records.offer(v.clone(), now_millis()) {
            Ok(Offer::Adopted) if v.record.tombstone => self.retire_local(id, "deleted"),
            Ok(Offer::Adopted) | Ok(Offer::Same) => {}
            Ok(Offer::Older { .. }) => {
                if let Some(held) = self.inner.records.get(&id) {
                    let tombstone = held.record.tombstone;
                    if self.should_repeat(&id) {
                        let mesh = self.clone();
                        tokio::spawn(async move { mesh.publish_record(&held).await });
                    }
                    if tombstone {
                        self.retire_local(id, "deleted");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot keep a workload record"),
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

    /// Removes this node's replica of `id`, if it has one, in a task the node owns.
    pub(crate) fn retire_local(&self, id: WorkloadId, why: &'static str) {
        let node = self.inner.node.clone();
        if !matches!(node.store().desired(&id), Ok(Some(_))) {
            return;
        }
        let mesh = self.clone();
        self.inner.owned.spawn(async move {
            tracing::info!(workload = %id, reason = why, "removing this node's replica");
            match node.delete(&id).await {
                Ok(_) => mesh.withdraw(&id).await,
                Err(e) => tracing::warn!(workload = %id, error = %e, "cannot remove the replica"),
            }
        });
    }

    /// Re-publishes the records of workloads this node runs, each by one holder only: the
    /// holder of the lowest slot this node knows to be live. Nodes that joined since, or
    /// missed a gossip message, learn every record within a renewal round this way.
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
            .filter(|r| matches!(r.phase, Phase::Running | Phase::Succeeded))
            .filter_map(|r| Some((r.slot?, r.peer_id.parse().ok()?)))
            .collect()
    }
}
