//! The mesh as this node sees it: providers of a workload, and the nodes of the mesh with
//! their engines and capacity. `meshctl nodes` and placement read the same view, so a node is
//! placeable as soon as `nodes` lists it with a healthy engine.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use libp2p::{Multiaddr, PeerId};
use mesh_protocol::wire::{NodeEngine, NodeInfo, Provider, Request, Response};
use mesh_protocol::{WorkloadId, WorkloadSpec};
use mesh_provider::plan::Candidate;
use mesh_provider::record::{NodeRecord, Record};
use mesh_provider::{keys, newest_per_provider, signed};
use mesh_runtime::{now_millis, select, Policy};

use super::merge::{cached_providers, candidates_of, from_response};
use super::Error;
use super::Mesh;

/// Providers whose replica runs or ran to completion.
fn running(providers: Vec<Provider>) -> Vec<Provider> {
    providers
        .into_iter()
        .filter(|p| p.phase.is_healthy())
        .collect()
}

/// Connected peers asked for their node record at once, at most.
pub const MAX_DIRECT_ASKS: usize = 16;
/// How long a direct ask may take.
pub const DIRECT_ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a cordoned node is passed over.
const CORDONED: &str = "cordoned (meshctl drain): takes no new replicas until meshctl uncordon";

impl Mesh {
    pub(crate) fn addrs_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.inner.peers.addrs_of(peer)
    }

    pub(crate) async fn ask(&self, peer: PeerId, request: Request) -> Result<Response, Error> {
        let addrs = self.addrs_of(&peer);
        from_response(&peer, self.inner.net.request(peer, addrs, request).await)
    }

    /// Whether this node's gossip cache holds every current provider record: it has been up
    /// for a full renewal round (a third of the provider TTL), so it heard every provider's
    /// announcement or renewal since.
    pub fn cache_is_warm(&self) -> bool {
        self.inner.started.elapsed() >= self.inner.config.provider_ttl / 3
    }

    /// Providers running a workload: signature-valid, unexpired records, newest per peer,
    /// of replicas that run (or ran to completion). A warm node that heard of the workload on
    /// gossip answers from those copies; otherwise (a node that just joined, a workload it
    /// never heard of) the DHT is asked as well. See [`Mesh::discover_dht`].
    pub async fn discover(&self, id: &WorkloadId, engine: Option<&str>) -> Vec<Provider> {
        running(self.providers_of(id, engine).await)
    }

    /// [`Mesh::discover`] through the DHT, merged with the copies heard on gossip.
    pub async fn discover_dht(&self, id: &WorkloadId, engine: Option<&str>) -> Vec<Provider> {
        running(self.providers_dht(id, engine).await)
    }

    /// Every provider of a workload, whatever its replica's phase (a failed replica is
    /// announced too, so every node sees it failed), but those on peers this node confirmed
    /// dead (their records have not expired yet, but they run nothing any more).
    pub(crate) async fn providers_of(
        &self,
        id: &WorkloadId,
        engine: Option<&str>,
    ) -> Vec<Provider> {
        let heard = self.inner.providers.get(&id.to_string());
        if heard.is_empty() || !self.cache_is_warm() {
            return self.providers_dht(id, engine).await;
        }
        self.without_dead(cached_providers(id, &heard, engine))
    }

    fn without_dead(&self, mut providers: Vec<Provider>) -> Vec<Provider> {
        let liveness = &self.inner.liveness;
        providers.retain(|p| {
            p.peer_id
                .parse()
                .map_or(true, |peer| !liveness.is_dead(&peer))
        });
        providers
    }

    /// `get_providers` on the workload key, then each provider's record, merged with the
    /// copies heard on gossip.
    async fn providers_dht(&self, id: &WorkloadId, engine: Option<&str>) -> Vec<Provider> {
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
        self.without_dead(newest_per_provider(raw, &workload, engine, now_millis()))
    }

    /// Whether this node has heard every live peer's heartbeat: it has been up for two
    /// heartbeat periods (one to hear each peer, one for a late or lost message), the longest
    /// period among the peers it heard (periods grow with the mesh).
    pub fn heartbeats_are_warm(&self) -> bool {
        let longest = self
            .inner
            .peers
            .heard()
            .into_iter()
            .map(|(_, _, validity)| super::heartbeat_period_of(validity))
            .max()
            .unwrap_or_default()
            .max(self.inner.config.heartbeat_interval);
        self.inner.started.elapsed() >= longest * 2
    }

    /// Other nodes of the mesh, newest record per node. A warm node answers from the
    /// heartbeats it heard; a node that just started also asks the DHT for the signed node
    /// records of the nodes providing the all-nodes key (or `engine`'s key).
    pub async fn known_nodes(&self, engine: Option<&str>) -> Vec<(PeerId, NodeRecord)> {
        let mut out = self.heard_nodes(engine).await;
        // Peers this node is connected to but knows nothing of yet (one that just joined,
        // before its first heartbeat): asked directly, so a node is placeable as soon as it is
        // reachable.
        let known: HashSet<PeerId> = out.iter().map(|(p, _)| *p).collect();
        let me = self.peer_id();
        let unknown: Vec<PeerId> = self
            .inner
            .net
            .connected_peers()
            .await
            .into_iter()
            .filter(|p| *p != me && !known.contains(p))
            .take(MAX_DIRECT_ASKS)
            .collect();
        let asks = unknown.into_iter().map(|peer| self.ask_node_record(peer));
        for (peer, record) in join_all(asks).await.into_iter().flatten() {
            if engine.is_none_or(|e| record.healthy_engines().any(|h| h == e)) {
                out.push((peer, record));
            }
        }
        // A peer confirmed dead is not a node of the mesh until it is heard from again.
        out.retain(|(p, _)| !self.inner.liveness.is_dead(p));
        out.sort_by_cached_key(|(p, _)| p.to_string());
        out
    }

    /// A peer's own signed node record, asked of it (and remembered as a heartbeat would be).
    /// Peers that are not mesh nodes (a `meshctl --peer` client) answer nothing useful.
    async fn ask_node_record(&self, peer: PeerId) -> Option<(PeerId, NodeRecord)> {
        let answer = tokio::time::timeout(
            DIRECT_ASK_TIMEOUT,
            self.inner
                .net
                .request(peer, Vec::new(), Request::NodeRecord),
        )
        .await
        .ok()?
        .ok()?;
        let Response::Signed(bytes) = answer else {
            return None;
        };
        let signed = signed::verify(&bytes, Some(&peer), now_millis()).ok()?;
        let Record::Node(record) = signed.record else {
            return None;
        };
        self.inner.peers.insert(peer, record.clone());
        Some((peer, record))
    }

    /// Nodes heard of: heartbeats on a warm node, the DHT's node records as well otherwise.
    async fn heard_nodes(&self, engine: Option<&str>) -> Vec<(PeerId, NodeRecord)> {
        let me = self.peer_id();
        let now = now_millis();
        if self.heartbeats_are_warm() {
            let mut out: Vec<(PeerId, NodeRecord)> = self
                .inner
                .peers
                .fresh(now)
                .into_iter()
                .filter(|(peer, record)| {
                    *peer != me && engine.is_none_or(|e| record.healthy_engines().any(|h| h == e))
                })
                .collect();
            out.sort_by_cached_key(|(p, _)| p.to_string());
            return out;
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
                    Record::Provider(_) | Record::Command(_) | Record::Suspicion(_) => None,
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
        out.sort_by_cached_key(|(p, _)| p.to_string());
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
                trust: r.trust,
                cordoned: r.cordoned,
                seen_at: r.issued_at,
                local,
            })
            .collect();
        out.sort_by(|a, b| b.local.cmp(&a.local).then(a.peer_id.cmp(&b.peer_id)));
        out
    }

    /// The nodes that could run `spec`, this one first, each with the engine it would pick
    /// (or why it cannot), from the same view as [`Mesh::nodes`].
    pub(crate) async fn candidates(&self, spec: &WorkloadSpec) -> Vec<Candidate> {
        let me = self.peer_id();
        let local = select(
            spec,
            &self.inner.node.registry().candidates(),
            &Policy::default(),
        );
        let resources = super::announce::machine_resources(0);
        let cordoned = || Err(CORDONED.to_string());
        let mut out = vec![Candidate {
            peer: me,
            is_self: true,
            engine: if self.inner.node.store().cordoned() {
                cordoned()
            } else {
                local.map(|s| s.engine).map_err(|e| e.0)
            },
            cpu_free_millis: resources.cpu_free_millis,
            memory_free_bytes: resources.memory_free_bytes,
        }];
        for (peer, record) in self.known_nodes(None).await {
            out.push(Candidate {
                peer,
                is_self: false,
                engine: if record.cordoned {
                    cordoned()
                } else {
                    select(spec, &candidates_of(&record), &Policy::default())
                        .map(|s| s.engine)
                        .map_err(|e| e.0)
                },
                cpu_free_millis: record.resources.cpu_free_millis,
                memory_free_bytes: record.resources.memory_free_bytes,
            });
        }
        out
    }
}
