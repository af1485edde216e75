//! What this node tells the mesh: provider records of its running workloads and its own node
//! record in the DHT (signed, expiring, renewed at a third of the TTL, withdrawn with a signed
//! withdrawal on delete), and heartbeats on gossip.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::net::Verdict;
use libp2p::{Multiaddr, PeerId};
use mesh_protocol::{Phase, WorkloadId};
use mesh_provider::record::{EngineSummary, NodeRecord, NodeResources, ProviderRecord, Record};
use mesh_provider::RecordError;
use mesh_provider::{keys, signed};
use mesh_runtime::now_millis;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Mesh;
use crate::net::REPROVIDE_INTERVAL;

/// CPU and memory of this machine: totals from the OS, free CPU = total minus the CPU the
/// node's workloads asked for, free memory = `MemAvailable`.
pub fn machine_resources(cpu_requested_millis: u64) -> NodeResources {
    let host = Host::now();
    NodeResources {
        cpu_millis: host.cpus * 1000,
        cpu_free_millis: (host.cpus * 1000).saturating_sub(cpu_requested_millis),
        memory_bytes: host.memory_bytes,
        memory_free_bytes: host.memory_free_bytes,
    }
}

/// What the OS says of the machine, read at most once per [`Host::FRESH`]: every apply asks
/// (its placement weighs this node's free memory), and reading it takes four files (the
/// CPU count comes from the cgroup's quota: `/proc/self/cgroup` and two files of it, then
/// `/proc/meminfo`), which `strace` of a node taking applies showed on every one.
#[derive(Debug, Clone, Copy)]
struct Host {
    read_at: Instant,
    cpus: u64,
    memory_bytes: u64,
    memory_free_bytes: u64,
}

impl Host {
    const FRESH: Duration = Duration::from_secs(1);

    fn now() -> Self {
        static LAST: std::sync::Mutex<Option<Host>> = std::sync::Mutex::new(None);
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        match *last {
            Some(h) if h.read_at.elapsed() < Self::FRESH => h,
            _ => *last.insert(Self::read()),
        }
    }

    fn read() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib = |field: &str| -> u64 {
            meminfo
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        Self {
            read_at: Instant::now(),
            cpus,
            memory_bytes: kib("MemTotal:"),
            memory_free_bytes: kib("MemAvailable:"),
        }
    }
}

fn with_peer(addr: &Multiaddr, peer: PeerId) -> String {
    let s = addr.to_string();
    if s.contains("/p2p/") {
        s
    } else {
        format!("{s}/p2p/{peer}")
    }
}

/// When a new announcement is gossiped and put into the DHT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spread {
    /// At once.
    Now,
    /// When the caller says (after something more urgent: a replica's answer to its entry
    /// node), with [`Mesh::spread_later`].
    Later,
}

impl Mesh {
    pub(crate) fn peer_id(&self) -> PeerId {
        self.inner.keypair.public().to_peer_id()
    }

    /// This node's listen addresses, each ending in `/p2p/<peer id>`.
    pub async fn addresses(&self) -> Vec<String> {
        let me = self.peer_id();
        self.inner
            .net
            .listen_addrs()
            .await
            .iter()
            .map(|a| with_peer(a, me))
            .collect()
    }

    /// This node's signed-to-be node record, valid for `ttl`.
    pub(crate) async fn node_record(&self, ttl: Duration) -> NodeRecord {
        let node = &self.inner.node;
        let desired = node.store().list_desired().unwrap_or_default();
        let cpu_requested: u64 = desired
            .iter()
            .filter_map(|d| d.spec.resources.cpu_millis)
            .sum();
        let engines = node
            .registry()
            .infos()
            .into_iter()
            .map(|e| EngineSummary {
                name: e.name,
                healthy: e.healthy,
                version: e.version,
                kinds: e.kinds.iter().map(|k| k.to_string()).collect(),
                capabilities: e.capabilities,
            })
            .collect();
        let now = now_millis();
        NodeRecord {
            peer_id: self.peer_id().to_string(),
            addresses: self.addresses().await,
            engines,
            resources: machine_resources(cpu_requested),
            workloads: desired.len() as u32,
            software_version: crate::version::LONG.to_string(),
            trust: self.inner.records.trust().mode().to_string(),
            cordoned: node.store().cordoned(),
            issued_at: now,
            expires_at: now + ttl.as_millis() as u64,
        }
    }

    /// Signs and stores a record; with `replicated`, returns once the closest peers were asked
    /// to store it too.
    async fn put(&self, key: Vec<u8>, record: &Record, ttl: Duration, replicated: bool) {
        if let Some(bytes) = self.sign(record) {
            self.put_signed(key, bytes, ttl, replicated).await;
        }
    }

    fn sign(&self, record: &Record) -> Option<Vec<u8>> {
        signed::encode(&self.inner.keypair, record)
            .map_err(|e| tracing::error!(error = %e, "cannot sign a record"))
            .ok()
    }

    async fn put_signed(&self, key: Vec<u8>, bytes: Vec<u8>, ttl: Duration, replicated: bool) {
        if let Err(e) = self
            .inner
            .net
            .put_record(key, bytes, Instant::now() + ttl, replicated)
            .await
        {
            tracing::debug!(error = %e, "record not replicated yet");
        }
    }

    /// Signs a provider record (or withdrawal), publishes it on gossip, which reaches every
    /// node within a few hops, and stores it under the provider's DHT key, where nodes that
    /// missed the gossip (or joined later) find it.
    async fn publish_provider(
        &self,
        id: &WorkloadId,
        record: ProviderRecord,
        replicated: bool,
    ) -> Option<Vec<u8>> {
        let bytes = self.sign_provider(&record)?;
        self.spread_provider(id, bytes.clone(), replicated).await;
        Some(bytes)
    }

    /// Signs a provider record and keeps it in this node's cache.
    fn sign_provider(&self, record: &ProviderRecord) -> Option<Vec<u8>> {
        let bytes = self.sign(&Record::Provider(record.clone()))?;
        self.inner
            .providers
            .insert(self.peer_id(), record, bytes.clone(), now_millis());
        Some(bytes)
    }

    /// Gossips a signed provider record and stores it under the provider's DHT key.
    async fn spread_provider(&self, id: &WorkloadId, bytes: Vec<u8>, replicated: bool) {
        self.inner.net.publish(bytes.clone()).await;
        let key = keys::provider(id, &self.peer_id());
        let ttl = self.inner.config.provider_ttl;
        self.put_signed(key, bytes, ttl, replicated).await;
    }

    /// Gossips and puts into the DHT an announcement made with [`Spread::Later`], and provides
    /// its workload's key; nothing if `bytes` is not one (or was spread already).
    pub(crate) async fn spread_later(&self, bytes: &[u8]) {
        let id = self
            .inner
            .unspread
            .lock()
            .expect("unspread lock is never poisoned")
            .remove(bytes);
        if let Some(id) = id {
            self.spread_announcement(&id, bytes.to_vec()).await;
        }
    }

    /// Spreads a new announcement: gossip, and the DHT in the background (the mesh benchmark
    /// measures how soon every node sees it).
    async fn spread_announcement(&self, id: &WorkloadId, bytes: Vec<u8>) {
        let replicated = false;
        let ((), provided) = futures::join!(
            self.spread_provider(id, bytes, replicated),
            self.provide(keys::workload(id), replicated)
        );
        if let Err(e) = provided {
            tracing::debug!(workload = %id, error = %e, "provider entry not replicated yet");
        }
    }

    /// Announces the workload if a replica runs here, withdraws it otherwise. Unless `renew`,
    /// a version announced less than a third of the TTL ago is not announced again. Returns
    /// the signed provider record published, if any.
    pub async fn announce(&self, id: &WorkloadId, renew: bool) -> Option<Vec<u8>> {
        self.announce_with(id, renew, Spread::Now).await
    }

    /// [`Mesh::announce`]; with [`Spread::Later`] the provider record is signed, kept in this
    /// node's cache and returned, but neither gossiped nor put into the DHT until the caller
    /// calls [`Mesh::spread_later`] (see [`Mesh::answer`]).
    pub(crate) async fn announce_with(
        &self,
        id: &WorkloadId,
        renew: bool,
        spread: Spread,
    ) -> Option<Vec<u8>> {
        // A node that left (see `leave`) announces nothing more: its withdrawals stand.
        if self.inner.owned.is_closed() {
            return None;
        }
        let node = &self.inner.node;
        let ttl = self.inner.config.provider_ttl;
        let running = node.store().desired(id).ok().flatten().and_then(|d| {
            let observed = node.store().observed(id).ok()?;
            // A failed replica is announced as failed, so every node sees it.
            let r = observed.current()?.clone();
            Some((d, r))
        });
        let Some((desired, replica)) = running else {
            self.withdraw(id).await;
            return None;
        };
        if !renew {
            let announced = self
                .inner
                .announced
                .lock()
                .expect("announced lock is never poisoned");
            if announced.get(id).is_some_and(|(v, slot, at)| {
                *v == replica.version && *slot == desired.slot && at.elapsed() < ttl / 3
            }) {
                return self.inner.providers.own(id, &self.peer_id());
            }
        }
        let now = now_millis();
        let capabilities = node
            .registry()
            .get(&replica.engine)
            .map(|e| e.capabilities().iter().map(|c| c.to_string()).collect())
            .unwrap_or_default();
        let record = ProviderRecord {
            workload: id.to_string(),
            version: replica.version.clone(),
            peer_id: self.peer_id().to_string(),
            engine: replica.engine.clone(),
            capabilities,
            resources: desired.spec.resources,
            phase: replica.phase,
            addresses: self.addresses().await,
            issued_at: now,
            expires_at: now + ttl.as_millis() as u64,
            withdrawn: false,
            slot: Some(desired.slot),
            revision: desired.record.as_ref().map(|_| desired.revision),
        };
        let published = self.sign_provider(&record);
        if let Some(bytes) = &published {
            match spread {
                Spread::Now => self.spread_announcement(id, bytes.clone()).await,
                Spread::Later => {
                    let mut unspread = self
                        .inner
                        .unspread
                        .lock()
                        .expect("unspread lock is never poisoned");
                    unspread.insert(bytes.clone(), id.clone());
                }
            }
        }
        self.inner
            .announced
            .lock()
            .expect("announced lock is never poisoned")
            .insert(id.clone(), (replica.version, desired.slot, Instant::now()));
        published
    }

    /// Publishes a signed withdrawal (newer than any announcement, so it wins everywhere) and
    /// stops providing the workload key.
    pub async fn withdraw(&self, id: &WorkloadId) {
        let was = self
            .inner
            .announced
            .lock()
            .expect("announced lock is never poisoned")
            .remove(id);
        let ttl = self.inner.config.provider_ttl;
        let now = now_millis();
        let record = ProviderRecord {
            workload: id.to_string(),
            version: was.map(|(v, _, _)| v).unwrap_or_default(),
            peer_id: self.peer_id().to_string(),
            engine: String::new(),
            capabilities: Vec::new(),
            resources: Default::default(),
            phase: Phase::Deleted,
            addresses: Vec::new(),
            issued_at: now,
            expires_at: now + ttl.as_millis() as u64,
            withdrawn: true,
            slot: None,
            revision: None,
        };
        self.publish_provider(id, record, true).await;
        self.unprovide(keys::workload(id)).await;
    }

    /// Announces this node: its signed record under its node key, and provider entries for
    /// the all-nodes key and each healthy engine's key.
    pub async fn announce_node(&self) {
        let ttl = self.inner.config.provider_ttl;
        let record = self.node_record(ttl).await;
        let engines: Vec<String> = record.healthy_engines().map(str::to_string).collect();
        self.put(
            keys::node(&self.peer_id()),
            &Record::Node(record),
            ttl,
            false,
        )
        .await;
        let _ = self.provide(keys::all_nodes(), false).await;
        for name in self.inner.node.registry().names() {
            if engines.iter().any(|e| e == name) {
                let _ = self.provide(keys::engine(name), false).await;
            } else {
                self.unprovide(keys::engine(name)).await;
            }
        }
    }

    /// Announces this node as a provider of `key`, unless it did less than
    /// [`REPROVIDE_INTERVAL`] ago.
    ///
    /// A provider entry only points at a node; the node's signed records (renewed every round
    /// and expiring on their own) say whether it is current, so an entry needs no renewal
    /// within the TTL. Announcing one walks to the key's closest peers, and many keys are
    /// provided by every node (all nodes, an engine, a popular workload or module): renewing
    /// them every round would keep those peers connected to the whole mesh.
    pub(crate) async fn provide(&self, key: Vec<u8>, replicated: bool) -> Result<(), String> {
        if self
            .provided()
            .get(&key)
            .is_some_and(|at| at.elapsed() < REPROVIDE_INTERVAL)
        {
            return Ok(());
        }
        // Alone (just started, or cut off), the entry stays local: it counts as announced only
        // once some peer could have heard it.
        if !self.inner.net.connected_peers().await.is_empty() {
            self.provided().insert(key.clone(), Instant::now());
        }
        self.inner.net.start_providing(key, replicated).await
    }

    /// Stops providing `key` (copies held by other nodes stay until they expire).
    pub(crate) async fn unprovide(&self, key: Vec<u8>) {
        self.provided().remove(&key);
        self.inner.net.stop_providing(key).await;
    }

    fn provided(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Instant>> {
        self.inner
            .provided
            .lock()
            .expect("provided lock is never poisoned")
    }

    /// Renews everything at a third of the TTL; reacts to workload changes at once.
    pub(crate) async fn run_announcer(
        self,
        mut changes: mpsc::Receiver<WorkloadId>,
        shutdown: CancellationToken,
    ) {
        let mut renew = tokio::time::interval(self.inner.config.provider_ttl / 3);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = renew.tick() => {
                    self.announce_node().await;
                    self.provide_modules().await;
                    let ids: Vec<WorkloadId> = self.inner.node.store().list_desired().unwrap_or_default().iter().map(|d| d.spec.id()).collect();
                    for id in ids {
                        self.announce(&id, true).await;
                    }
                    self.republish_records().await;
                    if let Err(e) = self.inner.records.prune(now_millis()) {
                        tracing::error!(error = %e, "cannot prune workload records");
                    }
                }
                Some(id) = changes.recv() => { self.announce(&id, false).await; }
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Publishes a signed heartbeat (a node record valid for three periods plus slack) every
    /// period.
    pub(crate) async fn run_heartbeats(self, shutdown: CancellationToken) {
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {
                    self.inner.providers.prune(now_millis());
                    next = tokio::time::Instant::now() + self.heartbeat().await;
                }
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// The period of this node's heartbeats now: see [`super::MeshConfig::heartbeat_period`].
    /// The mesh's size is every peer heard from lately, stale ones included: on a busy
    /// machine heartbeats arrive late, and a period that shrank as peers went stale would
    /// load the mesh further just then.
    pub(crate) fn heartbeat_period(&self) -> Duration {
        let nodes = self.inner.peers.heard_count() + 1;
        self.inner.config.heartbeat_period(nodes)
    }

    /// Publishes one signed heartbeat: this node's record, valid for three periods plus
    /// slack. Returns the period.
    pub(crate) async fn heartbeat(&self) -> Duration {
        let period = self.heartbeat_period();
        let validity = super::heartbeat_validity(period);
        let record = Record::Node(self.node_record(validity).await);
        match signed::encode(&self.inner.keypair, &record) {
            Ok(bytes) => self.inner.net.publish(bytes).await,
            Err(e) => tracing::error!(error = %e, "cannot sign a heartbeat"),
        }
        period
    }

    /// A gossip message (or a provider record a peer answered with): a heartbeat or a
    /// provider record (or withdrawal), kept only when signed by the peer it names (and by
    /// `signer`, when given) and unexpired. Whoever relayed it, a signed record says only what
    /// its signer signed; the newest copy per signer wins, so a replayed older one changes
    /// nothing.
    pub(crate) fn on_gossip(&self, signer: Option<PeerId>, data: &[u8]) -> Verdict {
        if mesh_provider::workload::is_workload_record(data) {
            return self.on_gossip_record(data);
        }
        let now = now_millis();
        match signed::verify(data, signer.as_ref(), now) {
            Ok(s) if s.signer == self.peer_id() => Verdict::Ignore,
            Ok(s) => {
                match s.record {
                    Record::Node(record) => {
                        self.on_heartbeat(&s.signer, record.issued_at);
                        self.inner.peers.insert(s.signer, record);
                    }
                    Record::Provider(record) => {
                        self.inner
                            .providers
                            .insert(s.signer, &record, data.to_vec(), now);
                    }
                    Record::Suspicion(suspicion) => {
                        self.on_suspicion(&s.signer, &suspicion);
                    }
                    // Commands go to their node only: one on gossip is someone's mistake.
                    Record::Command(_) => return Verdict::Reject,
                }
                Verdict::Accept
            }
            // Late (a slow hop, a clock behind), not forged: not held against the sender.
            Err(RecordError::Expired(_)) => Verdict::Ignore,
            Err(e) => {
                tracing::debug!(?signer, error = %e, "gossip message refused");
                Verdict::Reject
            }
        }
    }
}
