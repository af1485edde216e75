//! Mesh-wide operations: what `meshctl` asks of any node.

use std::collections::{BTreeMap, HashSet};

use futures::future::join_all;
use libp2p::{Multiaddr, PeerId};
use mesh_protocol::api::{
    ApplyAction, ApplyOutcome, ApplyRequest, ApplyResponse, Deployment, LogLine, Logs, Replica,
};
use mesh_protocol::wire::{NodeEngine, NodeInfo, Provider, ReplicaApply, Request, Response};
use mesh_protocol::{Phase, WorkloadId, WorkloadKind, WorkloadSpec};
use mesh_provider::record::{NodeRecord, Record};
use mesh_provider::{keys, newest_per_provider, rank, signed, NodeCandidate};
use mesh_runtime::{now_millis, select, Candidate, Policy};

use super::Mesh;
use crate::error::ApiError;
use crate::view::overall_phase;

/// An error answer from a peer, as an API error.
fn from_response(peer: &PeerId, r: Result<Response, String>) -> Result<Response, ApiError> {
    match r {
        Ok(Response::Error { status, message }) => Err(ApiError {
            status: axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY),
            message,
        }),
        Ok(other) => Ok(other),
        Err(e) => Err(ApiError {
            status: axum::http::StatusCode::BAD_GATEWAY,
            message: format!("peer {peer} unreachable: {e}"),
        }),
    }
}

fn unexpected(peer: &PeerId) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::BAD_GATEWAY,
        message: format!("peer {peer} answered with an unexpected message"),
    }
}

/// Engine candidates of a peer as selection sees them.
fn candidates_of(record: &NodeRecord) -> Vec<Candidate> {
    record
        .engines
        .iter()
        .map(|e| Candidate {
            name: e.name.clone(),
            healthy: e.healthy,
            detail: if e.healthy {
                String::new()
            } else {
                "unhealthy".to_string()
            },
            kinds: WorkloadKind::ALL
                .iter()
                .copied()
                .filter(|k| e.kinds.iter().any(|n| n == k.as_str()))
                .collect(),
        })
        .collect()
}

/// One deployment from the replicas several nodes reported.
pub fn merge(mut parts: Vec<Deployment>) -> Option<Deployment> {
    parts.sort_by_key(|d| std::cmp::Reverse(d.updated_at));
    let mut base = parts.first()?.clone();
    base.replicas = parts
        .iter()
        .flat_map(|d| d.replicas.iter().cloned())
        .collect();
    base.replicas.sort_by(|a, b| a.node.cmp(&b.node));
    base.desired_replicas = parts.iter().map(|d| d.desired_replicas).max().unwrap_or(1);
    base.phase = overall_phase(&base.replicas);
    base.error = base.replicas.iter().find_map(|r| r.error.clone());
    if let Some(first) = base.replicas.first() {
        base.engine = first.engine.clone();
        base.engine_reason = first.engine_reason.clone();
    }
    let mut events: Vec<_> = parts.into_iter().flat_map(|d| d.events).collect();
    events.sort_by_key(|e| (e.at, e.seq));
    base.events = events;
    Some(base)
}

fn combine_actions(actions: &[ApplyAction]) -> ApplyAction {
    if actions.contains(&ApplyAction::Failed) {
        ApplyAction::Failed
    } else if actions.contains(&ApplyAction::RolledBack) {
        ApplyAction::RolledBack
    } else if actions.iter().all(|a| *a == ApplyAction::Unchanged) {
        ApplyAction::Unchanged
    } else if actions
        .iter()
        .all(|a| matches!(a, ApplyAction::Created | ApplyAction::Unchanged))
    {
        ApplyAction::Created
    } else {
        ApplyAction::Updated
    }
}

fn to_providers(records: Vec<mesh_provider::record::ProviderRecord>) -> Vec<Provider> {
    records
        .into_iter()
        .map(|r| Provider {
            peer_id: r.peer_id,
            workload: r.workload,
            engine: r.engine,
            version: r.version,
            phase: r.phase,
            capabilities: r.capabilities,
            resources: r.resources,
            addresses: r.addresses,
            issued_at: r.issued_at,
            expires_at: r.expires_at,
        })
        .collect()
}

/// Providers of a workload from the copies of its records the gossip cache holds (see
/// [`Mesh::cache_is_warm`]).
fn cached_providers(
    id: &WorkloadId,
    heard: &[(PeerId, Vec<u8>)],
    engine: Option<&str>,
) -> Vec<Provider> {
    let workload = id.to_string();
    let raw = heard.iter().map(|(peer, r)| (Some(*peer), r.as_slice()));
    to_providers(newest_per_provider(raw, &workload, engine, now_millis()))
}

impl Mesh {
    pub(crate) fn addrs_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.inner
            .peers
            .get(peer)
            .map(|r| r.addresses.iter().filter_map(|a| a.parse().ok()).collect())
            .unwrap_or_default()
    }

    async fn ask(&self, peer: PeerId, request: Request) -> Result<Response, ApiError> {
        let addrs = self.addrs_of(&peer);
        from_response(&peer, self.inner.net.request(peer, addrs, request).await)
    }

    /// Whether this node's gossip cache holds every current provider record: it has been up
    /// for a full renewal round (a third of the provider TTL), so it heard every provider's
    /// announcement or renewal since.
    pub fn cache_is_warm(&self) -> bool {
        self.inner.started.elapsed() >= self.inner.config.provider_ttl / 3
    }

    /// Providers of a workload: signature-valid, unexpired records, newest per peer. A warm
    /// node that heard of the workload on gossip answers from those copies; otherwise (a node
    /// that just joined, a workload it never heard of) the DHT is asked as well. See
    /// [`Mesh::discover_dht`].
    pub async fn discover(&self, id: &WorkloadId, engine: Option<&str>) -> Vec<Provider> {
        let heard = self.inner.providers.get(&id.to_string());
        if heard.is_empty() || !self.cache_is_warm() {
            return self.discover_dht(id, engine).await;
        }
        cached_providers(id, &heard, engine)
    }

    /// [`Mesh::discover`] through the DHT: `get_providers` on the workload key, then each
    /// provider's record, merged with the copies heard on gossip.
    pub async fn discover_dht(&self, id: &WorkloadId, engine: Option<&str>) -> Vec<Provider> {
        let net = &self.inner.net;
        let peers = net.get_providers(keys::workload(id)).await;
        let lookups = peers.into_iter().map(|peer| async move {
            let records = net.get_records(keys::provider(id, &peer)).await;
            (peer, records)
        });
        let found = join_all(lookups).await;
        let workload = id.to_string();
        // Copies heard on gossip: the same signed bytes, verified the same way.
        let heard = self.inner.providers.get(&workload);
        let raw = found
            .iter()
            .flat_map(|(peer, records)| records.iter().map(move |r| (Some(*peer), r.as_slice())))
            .chain(heard.iter().map(|(peer, r)| (Some(*peer), r.as_slice())));
        to_providers(newest_per_provider(raw, &workload, engine, now_millis()))
    }

    /// Whether this node has heard every live peer's heartbeat: it has been up for two
    /// heartbeat periods (one to hear each peer, one for a late or lost message).
    pub fn heartbeats_are_warm(&self) -> bool {
        self.inner.started.elapsed() >= self.inner.config.heartbeat_interval * 2
    }

    /// Other nodes of the mesh, newest record per node. A warm node answers from the
    /// heartbeats it heard; a node that just started also asks the DHT for the signed node
    /// records of the nodes providing the all-nodes key (or `engine`'s key).
    pub async fn known_nodes(&self, engine: Option<&str>) -> Vec<(PeerId, NodeRecord)> {
        let me = self.peer_id();
        let now = now_millis();
        if self.heartbeats_are_warm() {
            // Sorted by peer id, like the DHT answer below.
            return self
                .inner
                .peers
                .fresh(now)
                .into_iter()
                .filter(|(peer, record)| {
                    *peer != me && engine.is_none_or(|e| record.healthy_engines().any(|h| h == e))
                })
                .collect();
        }
        let key = engine.map_or_else(keys::all_nodes, keys::engine);
        let net = &self.inner.net;
        let mut peers: HashSet<PeerId> = net.get_providers(key).await;
        let heard = self.inner.peers.fresh(now);
        for (peer, record) in &heard {
            if engine.is_none_or(|e| record.healthy_engines().any(|h| h == e)) {
                peers.insert(*peer);
            }
        }
        peers.remove(&me);
        let lookups = peers.into_iter().map(|peer| async move {
            let records = net.get_records(keys::node(&peer)).await;
            let newest = records
                .iter()
                .filter_map(|r| signed::verify(r, Some(&peer), now).ok())
                .filter_map(|s| match s.record {
                    Record::Node(n) => Some(n),
                    Record::Provider(_) => None,
                })
                .max_by_key(|n| n.issued_at);
            (peer, newest)
        });
        let mut out = Vec::new();
        for (peer, newest) in join_all(lookups).await {
            // A heartbeat is usually newer than the DHT record; the newest wins.
            let heartbeat = heard
                .iter()
                .find(|(p, _)| *p == peer)
                .map(|(_, r)| r.clone());
            let best = match (newest, heartbeat) {
                (Some(a), Some(b)) => Some(if a.issued_at >= b.issued_at { a } else { b }),
                (a, b) => a.or(b),
            };
            if let Some(r) = best {
                out.push((peer, r));
            }
        }
        out.sort_by_key(|(p, _)| p.to_string());
        out
    }

    /// Nodes of the mesh (this one included), optionally only those with a healthy `engine`.
    pub async fn nodes(&self, engine: Option<&str>) -> Vec<NodeInfo> {
        let mut records: Vec<(NodeRecord, bool)> = self
            .known_nodes(engine)
            .await
            .into_iter()
            .map(|(_, r)| (r, false))
            .collect();
        records.push((self.node_record(self.inner.config.provider_ttl).await, true));
        let mut out: Vec<NodeInfo> = records
            .into_iter()
            .filter(|(r, _)| engine.is_none_or(|e| r.healthy_engines().any(|h| h == e)))
            .map(|(r, local)| NodeInfo {
                peer_id: r.peer_id,
                addresses: r.addresses,
                engines: r
                    .engines
                    .into_iter()
                    .map(|e| NodeEngine {
                        name: e.name,
                        healthy: e.healthy,
                        version: e.version,
                    })
                    .collect(),
                cpu_millis: r.resources.cpu_millis,
                cpu_free_millis: r.resources.cpu_free_millis,
                memory_bytes: r.resources.memory_bytes,
                memory_free_bytes: r.resources.memory_free_bytes,
                workloads: r.workloads,
                software_version: r.software_version,
                seen_at: r.issued_at,
                local,
            })
            .collect();
        out.sort_by(|a, b| b.local.cmp(&a.local).then(a.peer_id.cmp(&b.peer_id)));
        out
    }

    /// Applies a manifest to the mesh: places each workload's replicas on capable nodes, asks
    /// them to run it, and answers with every replica's real outcome.
    pub async fn apply(&self, req: ApplyRequest) -> Result<ApplyResponse, ApiError> {
        if req.replicas == Some(0) {
            return Err(ApiError::bad_request(
                "--replicas must be at least 1".to_string(),
            ));
        }
        let specs = self.inner.node.parse(&req)?;
        let req = self.take_modules(req).await?;
        let mut workloads = Vec::with_capacity(specs.len());
        for spec in specs {
            workloads.push(self.apply_workload(&req, spec).await?);
        }
        Ok(ApplyResponse { workloads })
    }

    async fn apply_workload(
        &self,
        req: &ApplyRequest,
        spec: WorkloadSpec,
    ) -> Result<ApplyOutcome, ApiError> {
        let id = spec.id();
        let me = self.peer_id();
        let now = now_millis();
        let daemonset = spec.kind == WorkloadKind::DaemonSet;
        let wanted = req.replicas.unwrap_or_else(|| spec.replica_count());

        // Nodes that already run it keep it (an update in place), the rest are ranked. A warm
        // node has heard every current provider on gossip, so a workload it never heard of runs
        // nowhere: no DHT lookup (for a key nobody provides, one walks all the way to the key's
        // closest peers, dialling those it is not connected to).
        let known = if self.cache_is_warm() {
            cached_providers(&id, &self.inner.providers.get(&id.to_string()), None)
        } else {
            self.discover(&id, None).await
        };
        let mut current: HashSet<PeerId> = known
            .iter()
            .filter_map(|p| p.peer_id.parse().ok())
            .collect();
        if self.inner.node.store().desired(&id)?.is_some() {
            current.insert(me);
        }
        let local = select(
            &spec,
            &self.inner.node.registry().candidates(),
            &Policy::default(),
        );
        let mut candidates = vec![NodeCandidate {
            peer_id: me.to_string(),
            is_self: true,
            engine: local.map(|s| s.engine).map_err(|e| e.0),
            cpu_free_millis: super::announce::machine_resources(0).cpu_free_millis,
            memory_free_bytes: super::announce::machine_resources(0).memory_free_bytes,
            replicas_here: u32::from(current.contains(&me)),
        }];
        // Heartbeats are enough when they name enough nodes; otherwise (a node that just
        // started, a DaemonSet) the DHT's node records fill in.
        let mut peers = self.inner.peers.fresh(now);
        if daemonset || peers.len() + 1 < wanted as usize {
            peers = self.known_nodes(None).await;
        }
        for (peer, record) in peers {
            candidates.push(NodeCandidate {
                peer_id: peer.to_string(),
                is_self: false,
                engine: select(&spec, &candidates_of(&record), &Policy::default())
                    .map(|s| s.engine)
                    .map_err(|e| e.0),
                cpu_free_millis: record.resources.cpu_free_millis,
                memory_free_bytes: record.resources.memory_free_bytes,
                replicas_here: u32::from(current.contains(&peer)),
            });
        }
        let (keep, others): (Vec<NodeCandidate>, Vec<NodeCandidate>) = candidates
            .into_iter()
            .partition(|c| c.replicas_here > 0 && c.engine.is_ok());
        let mut keep: Vec<(String, String)> = keep
            .into_iter()
            .map(|c| (c.peer_id, c.engine.expect("partitioned on engine")))
            .collect();
        keep.sort();
        let mut surplus: Vec<String> = Vec::new();
        if !daemonset && keep.len() > wanted as usize {
            surplus = keep
                .split_off(wanted as usize)
                .into_iter()
                .map(|(p, _)| p)
                .collect();
        }
        let remaining = if daemonset {
            None
        } else {
            Some(wanted.saturating_sub(keep.len() as u32))
        };
        let ranked = rank(&others, remaining, spec.resources);
        let mut notes = ranked.passed_over.clone();
        let chosen: Vec<(String, String)> = keep.into_iter().chain(ranked.chosen).collect();
        if ranked.unplaced > 0 {
            notes.insert(
                0,
                format!(
                    "placed {} of {wanted} replicas: {} found no capable node with room",
                    chosen.len(),
                    ranked.unplaced
                ),
            );
        }
        let desired = if daemonset {
            chosen.len().max(1) as u32
        } else {
            wanted
        };

        let replica_req = ReplicaApply {
            apply: req.clone(),
            workload: id.clone(),
            desired_replicas: desired,
            placement: notes.clone(),
            entry: me.to_string(),
        };
        let runs = chosen.iter().map(|(peer, _)| {
            let r = replica_req.clone();
            async move {
                let peer: PeerId = peer
                    .parse()
                    .map_err(|_| ApiError::internal(format!("bad peer id {peer}")))?;
                if peer == me {
                    let outcome = self.inner.node.apply_replica(r).await?;
                    self.announce(&outcome_id(&outcome), false).await;
                    return Ok(outcome);
                }
                match self.ask(peer, Request::ApplyReplica(Box::new(r))).await? {
                    Response::Applied(mut resp) if !resp.workloads.is_empty() => {
                        Ok(resp.workloads.remove(0))
                    }
                    _ => Err(unexpected(&peer)),
                }
            }
        });
        let results = join_all(runs).await;
        for peer in surplus {
            if let Ok(peer) = peer.parse::<PeerId>() {
                let _ = self.delete_replica(peer, &id).await;
            }
        }

        let mut actions = Vec::new();
        let mut parts = Vec::new();
        for ((peer, engine), result) in chosen.iter().zip(results) {
            match result {
                Ok(outcome) => {
                    actions.push(outcome.action);
                    parts.push(outcome.deployment);
                }
                Err(e) => {
                    actions.push(ApplyAction::Failed);
                    parts.push(failed_part(&spec, desired, &notes, peer, engine, e.message));
                }
            }
        }
        if parts.is_empty() {
            actions.push(ApplyAction::Failed);
            let mut d = failed_part(&spec, desired, &notes, "", "", String::new());
            d.replicas.clear();
            parts.push(d);
        }
        let mut deployment = merge(parts).expect("at least one part");
        if deployment.replicas.is_empty() {
            deployment.phase = Phase::Failed;
            deployment.error = Some(format!(
                "no node can run {} {id}: {}",
                spec.kind,
                notes.join("; ")
            ));
        }
        deployment.placement = notes;
        Ok(ApplyOutcome {
            action: combine_actions(&actions),
            deployment,
        })
    }

    async fn delete_replica(&self, peer: PeerId, id: &WorkloadId) -> Result<Deployment, ApiError> {
        if peer == self.peer_id() {
            let d = self.inner.node.delete(id).await?;
            self.withdraw(id).await;
            return Ok(d);
        }
        match self
            .ask(peer, Request::ReplicaDelete { id: id.clone() })
            .await?
        {
            Response::Deployment(d) => Ok(*d),
            _ => Err(unexpected(&peer)),
        }
    }

    /// Nodes that may hold a replica: the providers, plus this node when it has the workload.
    async fn holders(&self, id: &WorkloadId) -> Result<Vec<PeerId>, ApiError> {
        let mut peers: HashSet<PeerId> = self
            .discover(id, None)
            .await
            .iter()
            .filter_map(|p| p.peer_id.parse().ok())
            .collect();
        if self.inner.node.store().desired(id)?.is_some() {
            peers.insert(self.peer_id());
        }
        let mut peers: Vec<PeerId> = peers.into_iter().collect();
        peers.sort_by_key(|p| p.to_string());
        Ok(peers)
    }

    /// A workload with the replicas of every node that runs it.
    pub async fn get(&self, id: &WorkloadId, events: bool) -> Result<Deployment, ApiError> {
        let me = self.peer_id();
        let asks = self.holders(id).await?.into_iter().map(|peer| async move {
            if peer == me {
                return self.inner.node.view(id, events);
            }
            match self
                .ask(
                    peer,
                    Request::ReplicaGet {
                        id: id.clone(),
                        events,
                    },
                )
                .await?
            {
                Response::Deployment(d) => Ok(*d),
                _ => Err(unexpected(&peer)),
            }
        });
        let parts: Vec<Deployment> = join_all(asks)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        merge(parts).ok_or_else(|| ApiError::not_found(id))
    }

    /// Every workload known to this node or its fresh peers.
    pub async fn list(&self) -> Result<Vec<Deployment>, ApiError> {
        let mut parts = self.inner.node.list()?;
        let asks = self
            .inner
            .peers
            .fresh(now_millis())
            .into_iter()
            .map(|(peer, _)| async move {
                match self.ask(peer, Request::ReplicaList).await {
                    Ok(Response::Deployments(list)) => list,
                    _ => Vec::new(),
                }
            });
        parts.extend(join_all(asks).await.into_iter().flatten());
        let mut by_id: BTreeMap<(String, String), Vec<Deployment>> = BTreeMap::new();
        for d in parts {
            by_id
                .entry((d.namespace.clone(), d.name.clone()))
                .or_default()
                .push(d);
        }
        Ok(by_id.into_values().filter_map(merge).collect())
    }

    /// Deletes every replica: on the providers, this node, and every fresh peer (a replica
    /// that failed is not announced, but is deleted all the same).
    pub async fn delete(&self, id: &WorkloadId) -> Result<Deployment, ApiError> {
        let mut peers: HashSet<PeerId> = self.holders(id).await?.into_iter().collect();
        peers.extend(
            self.inner
                .peers
                .fresh(now_millis())
                .into_iter()
                .map(|(p, _)| p),
        );
        let results = join_all(peers.into_iter().map(|peer| self.delete_replica(peer, id))).await;
        let mut parts = Vec::new();
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(d) => parts.push(d),
                Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => {}
                Err(e) => errors.push(e.message),
            }
        }
        if let Some(e) = errors.first() {
            return Err(ApiError::unavailable(format!("delete incomplete: {e}")));
        }
        let mut d = merge(parts).ok_or_else(|| ApiError::not_found(id))?;
        d.phase = Phase::Deleted;
        for r in d.replicas.iter_mut() {
            r.phase = Phase::Deleted;
        }
        Ok(d)
    }

    /// Logs of every replica, each line tagged with its node.
    pub async fn logs(&self, id: &WorkloadId, tail: Option<usize>) -> Result<Logs, ApiError> {
        let me = self.peer_id();
        let holders = self.holders(id).await?;
        let several = holders.len() > 1;
        let asks = holders.into_iter().map(|peer| async move {
            let logs = if peer == me {
                self.inner.node.logs(id, tail).await
            } else {
                match self
                    .ask(
                        peer,
                        Request::ReplicaLogs {
                            id: id.clone(),
                            tail,
                        },
                    )
                    .await
                {
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
            let tag = peer.to_string();
            let tag = &tag[tag.len().saturating_sub(6)..];
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
            return Err(ApiError::not_found(id));
        }
        Ok(Logs {
            name: id.name.clone(),
            namespace: id.namespace.clone(),
            lines,
        })
    }
}

fn outcome_id(outcome: &ApplyOutcome) -> WorkloadId {
    WorkloadId::new(&outcome.deployment.namespace, &outcome.deployment.name)
}

/// The view of a replica that could not be reached or run.
fn failed_part(
    spec: &WorkloadSpec,
    desired: u32,
    notes: &[String],
    peer: &str,
    engine: &str,
    error: String,
) -> Deployment {
    let now = now_millis();
    Deployment {
        name: spec.name.clone(),
        namespace: spec.namespace.clone(),
        kind: spec.kind,
        version: spec.version.clone(),
        engine: engine.to_string(),
        engine_reason: String::new(),
        phase: Phase::Failed,
        error: Some(error.clone()),
        desired_replicas: desired,
        replicas: vec![Replica {
            node: peer.to_string(),
            phase: Phase::Failed,
            engine: engine.to_string(),
            engine_reason: String::new(),
            version: spec.version.clone(),
            error: Some(error),
            instance: None,
            exit_code: None,
            restarts: 0,
            updated_at: now,
            job: None,
        }],
        placement: notes.to_vec(),
        warnings: spec.warnings.clone(),
        resources: spec.resources,
        annotations: spec.annotations.clone(),
        created_at: now,
        updated_at: now,
        history: Vec::new(),
        events: Vec::new(),
    }
}
