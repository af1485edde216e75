//! The Kademlia side of the event loop: record puts (straight to the closest peers found
//! before, or after a lookup), records peers put here (only signed, newer ones are kept), and
//! query progress answering the pending lookups.

use std::time::{Duration, Instant};

use libp2p::kad::{self, GetProvidersOk, GetRecordOk, QueryId, QueryResult};
use libp2p::PeerId;

use super::{EventLoop, Reply, CLOSEST_PEERS_REUSE, ENOUGH_COPIES};
use crate::metrics::Reason;
use crate::net::behaviour;

/// The `kind` label of a Kademlia query (`meshd_dht_query_duration_seconds`).
fn query_kind(result: &QueryResult) -> &'static str {
    match result {
        QueryResult::Bootstrap(_) => "bootstrap",
        QueryResult::GetClosestPeers(_) => "get_closest_peers",
        QueryResult::GetProviders(_) => "get_providers",
        QueryResult::StartProviding(_) => "start_providing",
        QueryResult::RepublishProvider(_) => "republish_provider",
        QueryResult::GetRecord(_) => "get_record",
        QueryResult::PutRecord(_) => "put_record",
        QueryResult::RepublishRecord(_) => "republish_record",
    }
}

impl EventLoop {
    /// Sends a record to its key's closest peers. A renewal goes straight to the peers found
    /// for the key before (a lookup walks to many more peers than it stores on, and every
    /// peer it reaches stays connected for a while); a new key, or one whose peers are older
    /// than [`CLOSEST_PEERS_REUSE`], failed to store it, or no longer include the nearest
    /// peers of the routing table, is looked up first.
    pub(super) fn replicate(
        &mut self,
        record: kad::Record,
        reply: Option<Reply<Result<(), String>>>,
    ) {
        if self.alone() {
            // Stored locally, nobody to replicate to (see `alone`).
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            return;
        }
        // A peer the routing table learned since (a node that joined), closer to the key than
        // those found, calls for a new lookup.
        let target = kad::KBucketKey::from(record.key.clone());
        let nearest = self.nearest_in_table(&target, behaviour::REPLICATION_FACTOR);
        let kad = &mut self.swarm.behaviour_mut().kad;
        match self.closest.get(&record.key) {
            Some((found, peers))
                if found.elapsed() < CLOSEST_PEERS_REUSE
                    && nearest.iter().all(|p| peers.contains(p)) =>
            {
                let peers = peers.clone();
                self.put_to(record, &peers, reply);
            }
            _ => {
                // The replication factor's closest, not Kademlia's default of K (20): the record
                // goes to each peer found, and every one of them stays connected for a round.
                let id = kad.get_n_closest_peers(
                    record.key.to_vec(),
                    std::num::NonZeroUsize::new(behaviour::REPLICATION_FACTOR).expect("non-zero"),
                );
                self.pending_closest.insert(id, (record, reply));
            }
        }
    }

    /// The `n` peers of the routing table nearest to `target`, nearest first. By hand rather
    /// than with `get_closest_local_peers`, whose iterator moves a K-entry buffer for each of
    /// the table's 256 buckets (see `alone`).
    pub(super) fn nearest_in_table(
        &mut self,
        target: &kad::KBucketKey<kad::RecordKey>,
        n: usize,
    ) -> Vec<PeerId> {
        let mut by_distance: Vec<(kad::KBucketDistance, PeerId)> = Vec::new();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for entry in bucket.iter() {
                by_distance.push((target.distance(entry.node.key), *entry.node.key.preimage()));
            }
        }
        by_distance.sort_unstable_by_key(|(distance, _)| *distance);
        by_distance
            .into_iter()
            .take(n)
            .map(|(_, peer)| peer)
            .collect()
    }

    /// Sends a record to `peers`, who count as used.
    fn put_to(
        &mut self,
        record: kad::Record,
        peers: &[PeerId],
        reply: Option<Reply<Result<(), String>>>,
    ) {
        let now = Instant::now();
        for peer in peers {
            self.last_used.insert(*peer, now);
        }
        let kad = &mut self.swarm.behaviour_mut().kad;
        let id = kad.put_record_to(record, peers.iter().copied(), kad::Quorum::One);
        if let Some(reply) = reply {
            self.pending_puts.insert(id, reply);
        }
    }

    pub(super) fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed {
                id,
                result,
                step,
                stats,
            } => {
                // A query that asked no peer (a lone node's) ends at once: not a latency.
                let asked = stats.num_requests() > 0;
                if let Some(took) = stats.duration().filter(|_| step.last && asked) {
                    self.metrics.dht_query(query_kind(&result), took);
                }
                self.on_query(id, result, step.last)
            }
            kad::Event::InboundRequest { request } => self.on_kad_inbound(request),
            _ => {}
        }
    }

    /// Records and provider entries from peers: only signed records, newer than the copy we
    /// hold, are stored (Kademlia itself would take anything).
    fn on_kad_inbound(&mut self, request: kad::InboundRequest) {
        let store_ok = |r: Result<(), kad::store::Error>| {
            if let Err(e) = r {
                tracing::debug!(error = ?e, "record not stored");
            }
        };
        match request {
            kad::InboundRequest::PutRecord {
                record: Some(mut record),
                source,
                ..
            } => {
                // A peer renewing a record here comes back every round: keep its connection.
                self.last_used.insert(source, Instant::now());
                let key = record.key.to_vec();
                let now = mesh_runtime::now_millis();
                if let Some(id) = mesh_provider::keys::workload_of_record(&key) {
                    return self.store_workload_record(id, record, source);
                }
                let Some(signer) = mesh_provider::keys::signer_of(&key) else {
                    tracing::debug!(%source, "refused a record under a foreign key");
                    self.metrics.refused(Reason::DhtRecord);
                    return;
                };
                let incoming =
                    match mesh_provider::signed::verify(&record.value, Some(&signer), now) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!(%source, error = %e, "refused a record");
                            self.metrics.refused(Reason::DhtRecord);
                            return;
                        }
                    };
                if matches!(
                    incoming.record,
                    mesh_provider::Record::Command(_) | mesh_provider::Record::Suspicion(_)
                ) {
                    tracing::debug!(%source, "refused a command or suspicion put into the DHT");
                    self.metrics.refused(Reason::DhtRecord);
                    return;
                }
                let store = self.swarm.behaviour_mut().kad.store_mut();
                if let Some(existing) = kad::store::RecordStore::get(store, &record.key) {
                    if let Ok(have) =
                        mesh_provider::signed::verify_signature(&existing.value, Some(&signer))
                    {
                        if have.record.issued_at() >= incoming.record.issued_at() {
                            return;
                        }
                    }
                }
                let remaining = incoming.record.expires_at().saturating_sub(now);
                record.expires = Some(Instant::now() + Duration::from_millis(remaining));
                store_ok(kad::store::RecordStore::put(store, record));
            }
            kad::InboundRequest::AddProvider {
                record: Some(record),
            } => {
                let store = self.swarm.behaviour_mut().kad.store_mut();
                store_ok(kad::store::RecordStore::add_provider(store, record));
            }
            _ => {}
        }
    }

    /// A workload record put here by a peer: kept only when it verifies, names the workload
    /// its key names, and has a higher revision than the copy held.
    fn store_workload_record(
        &mut self,
        id: mesh_protocol::WorkloadId,
        mut record: kad::Record,
        source: PeerId,
    ) {
        use mesh_provider::workload;
        let incoming = match workload::verify(&record.value) {
            Ok(v) if v.record.id == id => v,
            Ok(_) => {
                tracing::debug!(%source, "refused a workload record under another workload's key");
                self.metrics.refused(Reason::DhtRecord);
                return;
            }
            Err(e) => {
                tracing::debug!(%source, error = %e, "refused a workload record");
                self.metrics.refused(Reason::DhtRecord);
                return;
            }
        };
        let store = self.swarm.behaviour_mut().kad.store_mut();
        let held = kad::store::RecordStore::get(store, &record.key)
            .and_then(|existing| workload::verify(&existing.value).ok());
        if held
            .as_ref()
            .is_some_and(|have| have.record.revision >= incoming.record.revision)
        {
            return;
        }
        if let Some(trust) = &self.trust {
            if let Err(refusal) = trust.authorise_without_history(&incoming, held.as_ref()) {
                tracing::debug!(%source, %refusal, "refused a workload record put");
                self.metrics.refused(Reason::DhtRecord);
                return;
            }
        }
        record.expires = Some(Instant::now() + crate::mesh::records::RECORD_DHT_TTL);
        if let Err(e) = kad::store::RecordStore::put(store, record) {
            tracing::debug!(error = ?e, "workload record not stored");
        }
    }

    /// Ends a lookup early; Kademlia then reports its last step, which answers the caller.
    fn finish(&mut self, id: QueryId) {
        if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
            query.finish();
        }
    }

    fn on_query(&mut self, id: QueryId, result: QueryResult, last: bool) {
        match result {
            QueryResult::GetRecord(Ok(GetRecordOk::FoundRecord(found))) => {
                if let Some((records, _)) = self.pending_get_records.get_mut(&id) {
                    records.push(found.record.value);
                    // One writer per key, and renewals reach every holder: two copies are
                    // enough to take the newest, without walking the rest of the DHT.
                    if records.len() >= ENOUGH_COPIES {
                        self.finish(id);
                    }
                }
            }
            QueryResult::GetRecord(_) => {}
            QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })) => {
                if let Some((found, answers, _)) = self.pending_get_providers.get_mut(&id) {
                    // Only answers that name providers count: peers far from the key answer
                    // with none, and stopping on those would miss every provider.
                    if !providers.is_empty() {
                        *answers += 1;
                    }
                    found.extend(providers);
                    // Every provider announces to the same closest peers of the key, so each
                    // of them holds the whole list: two answers are enough.
                    if *answers >= ENOUGH_COPIES {
                        self.finish(id);
                    }
                }
            }
            QueryResult::GetProviders(_) => {}
            QueryResult::GetClosestPeers(result) => {
                if let Some((record, reply)) = self.pending_closest.remove(&id) {
                    let peers: Vec<PeerId> = match result {
                        Ok(ok) => ok.peers.into_iter().map(|p| p.peer_id).collect(),
                        Err(kad::GetClosestPeersError::Timeout { peers, .. }) => {
                            peers.into_iter().map(|p| p.peer_id).collect()
                        }
                    };
                    if peers.is_empty() {
                        // A lone node: stored locally, nobody to replicate to.
                        if let Some(reply) = reply {
                            let _ = reply.send(Ok(()));
                        }
                        return;
                    }
                    // Straight to the peers found: going through `replicate` again would look
                    // them up once more whenever the routing table names a nearer peer the
                    // lookup did not reach (one that is gone), and again, without end.
                    let key = record.key.clone();
                    self.put_to(record, &peers, reply);
                    self.closest.insert(key, (Instant::now(), peers));
                }
            }
            QueryResult::PutRecord(result) => {
                if let Err(e) = &result {
                    // Stored locally anyway; a lone node has nobody to replicate to. The next
                    // renewal looks the closest peers up again.
                    tracing::debug!(error = %e, "record replication incomplete");
                    self.closest.remove(e.key());
                }
                if let Some(reply) = self.pending_puts.remove(&id) {
                    let _ = reply.send(Ok(()));
                }
            }
            QueryResult::StartProviding(result) => {
                if let Err(e) = &result {
                    tracing::debug!(error = %e, "provider replication incomplete");
                }
                if let Some(reply) = self.pending_provides.remove(&id) {
                    let _ = reply.send(Ok(()));
                }
            }
            _ => {}
        }
        if last {
            if let Some((records, reply)) = self.pending_get_records.remove(&id) {
                let _ = reply.send(records);
            }
            if let Some((providers, _, reply)) = self.pending_get_providers.remove(&id) {
                let _ = reply.send(providers);
            }
        }
    }
}
