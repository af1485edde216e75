//! Reads from any node: `get`, `list` and `logs` give the same answer on every node of the
//! mesh, including nodes that run no replica. The workload records say what should exist;
//! signed provider records say what runs where. `list` asks no peer; `get` and `logs` ask
//! only the nodes that run the workload (never every peer).

use std::collections::{BTreeMap, HashSet};

use futures::future::join_all;
use libp2p::PeerId;
use mesh_protocol::api::{Deployment, LogLine, Logs, RecordInfo};
use mesh_protocol::wire::{Provider, Request, Response};
use mesh_protocol::WorkloadId;

use super::merge::{cached_providers, from_record, merge, short_id, unexpected, with_record};
use super::Error;
use super::Mesh;
use crate::records;

impl Mesh {
    /// Nodes that run (or ran and failed) a replica of `id`: its providers, and this node
    /// when its store has the workload.
    pub(crate) async fn holders(&self, id: &WorkloadId) -> Result<Vec<PeerId>, Error> {
        let mut peers: HashSet<PeerId> = self
            .providers_of(id, None)
            .await
            .iter()
            .filter_map(|p| p.peer_id.parse().ok())
            .collect();
        if self.inner.node.store().desired(id)?.is_some() {
            peers.insert(self.peer_id());
        }
        let mut peers: Vec<PeerId> = peers.into_iter().collect();
        peers.sort_by_cached_key(|p| p.to_string());
        Ok(peers)
    }

    /// A workload: its record, with the replicas of every node that runs it.
    pub async fn get(&self, id: &WorkloadId, events: bool) -> Result<Deployment, Error> {
        let record = self.record(id).await;
        if record.as_ref().is_some_and(|r| r.record.tombstone) {
            return Err(Error::not_found(id));
        }
        let me = self.peer_id();
        let asks = self.holders(id).await?.into_iter().map(|peer| async move {
            if peer == me {
                return Ok(self.inner.node.view(id, events)?);
            }
            let request = Request::ReplicaGet {
                id: id.clone(),
                events,
            };
            match self.ask(peer, request).await? {
                Response::Deployment(d) => Ok(*d),
                _ => Err(unexpected(&peer)),
            }
        });
        let mut parts: Vec<Deployment> = join_all(asks)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        match record {
            Some(r) => {
                parts.push(from_record(&r, &[]));
                let merged = merge(parts).expect("the record's part is there");
                Ok(with_record(merged, &r))
            }
            // A workload from before records (an older store): what its nodes say.
            None => merge(parts).ok_or_else(|| Error::not_found(id)),
        }
    }

    /// Every workload of the mesh, from the records this node holds and the provider records
    /// it heard: no peer is asked.
    pub async fn list(&self) -> Result<Vec<Deployment>, Error> {
        let mut by_id: BTreeMap<WorkloadId, Deployment> = BTreeMap::new();
        let me = self.peer_id().to_string();
        for v in self.inner.records.list() {
            if v.record.tombstone {
                continue;
            }
            let id = &v.record.id;
            // For this node's own replica its store is the truth: its announcement may not
            // have gone out yet (just restarted) or may lag a change.
            let mut providers = self.cached_providers_of(id);
            let local = self.inner.node.view(id, false).ok();
            if local.is_some() {
                providers.retain(|p| p.peer_id != me);
            }
            let mut parts = vec![from_record(&v, &providers)];
            parts.extend(local);
            let merged = merge(parts).expect("the record's part is there");
            by_id.insert(id.clone(), with_record(merged, &v));
        }
        // Workloads of this node from before records.
        for d in self.inner.node.list()? {
            let id = WorkloadId::new(&d.namespace, &d.name);
            by_id.entry(id).or_insert(d);
        }
        Ok(by_id.into_values().collect())
    }

    /// Providers of `id` (any phase) as heard on gossip.
    pub(crate) fn cached_providers_of(&self, id: &WorkloadId) -> Vec<Provider> {
        cached_providers(id, &self.inner.providers.get(&id.to_string()), None)
    }

    /// `GET /records/{name}`: the record the mesh holds for `id`, tombstones included.
    /// The earlier records of `id` this node kept, oldest first, as signed (no data keys).
    pub fn record_history(&self, id: &WorkloadId) -> Vec<mesh_protocol::api::SignedRecord> {
        self.inner
            .records
            .history(id)
            .into_iter()
            .map(|v| mesh_protocol::api::SignedRecord {
                bytes: v.bytes,
                data_key: None,
            })
            .collect()
    }

    pub async fn record_info(&self, id: &WorkloadId) -> Option<RecordInfo> {
        self.record_from_dht(id)
            .await
            .map(|v| records::info(&v.record))
    }

    /// Logs of every replica, each line tagged with its node.
    pub async fn logs(&self, id: &WorkloadId, tail: Option<usize>) -> Result<Logs, Error> {
        let me = self.peer_id();
        let holders = self.holders(id).await?;
        let several = holders.len() > 1;
        let asks = holders.into_iter().map(|peer| async move {
            let logs = if peer == me {
                self.inner.node.logs(id, tail).await.map_err(Error::from)
            } else {
                let request = Request::ReplicaLogs {
                    id: id.clone(),
                    tail,
                };
                match self.ask(peer, request).await {
                    Ok(Response::Logs(l)) => Ok(l),
                    Ok(_) => Err(unexpected(&peer)),
                    Err(e) => Err(e),
                }
            };
            (peer, logs)
        });
        let mut lines: Vec<LogLine> = Vec::new();
        let mut found = false;
        for (peer, logs) in join_all(asks).await {
            let Ok(logs) = logs else { continue };
            found = true;
            let tag = short_id(&peer);
            lines.extend(logs.lines.into_iter().map(|mut l| {
                if several {
                    l.source = Some(match l.source {
                        Some(s) => format!("…{tag}/{s}"),
                        None => format!("…{tag}"),
                    });
                }
                l
            }));
        }
        if !found {
            return Err(Error::not_found(id));
        }
        Ok(Logs {
            name: id.name.clone(),
            namespace: id.namespace.clone(),
            lines,
        })
    }
}
