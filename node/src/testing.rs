//! Helpers for tests of nodes (this crate's and the multi-node scenarios in `tests/`):
//! an in-process node on a temporary directory with an instrumented mock engine, and
//! bounded waits on conditions.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_runtime::mock::MockEngine;
use tokio_util::sync::CancellationToken;

use crate::client::{Client, Target};
use crate::daemon::{Config, Daemon};

/// A bare libp2p peer, for tests that speak to a node as a stranger would: TCP, Noise and
/// Yamux around `behaviour`, its side of every connection kept open for a minute.
pub fn raw_peer<B: libp2p::swarm::NetworkBehaviour>(
    key: libp2p::identity::Keypair,
    behaviour: B,
) -> libp2p::Swarm<B> {
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .expect("TCP with Noise and Yamux builds")
        .with_behaviour(|_| behaviour)
        .expect("the behaviour is given")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// A bare libp2p peer of a private mesh: as [`raw_peer`], over the mesh key's TCP transport
/// (pnet, then Noise and Yamux), as a node with `--mesh-key` speaks.
pub fn raw_private_peer<B: libp2p::swarm::NetworkBehaviour>(
    key: libp2p::identity::Keypair,
    mesh_key: libp2p::pnet::PreSharedKey,
    behaviour: B,
) -> libp2p::Swarm<B> {
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| crate::net::private_tcp(key, mesh_key))
        .expect("the private transport builds")
        .with_behaviour(|_| behaviour)
        .expect("the behaviour is given")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Sends `requests` one after the other from a raw libp2p peer on `protocol`
/// (request-response, CBOR, any request and response types: hostile tests send what the
/// node's own types cannot express) and returns each answer, or why there is none. Sizes up
/// to 64 MiB are let through on this side, so the node's own limits are what is tested. Each
/// request times out after `timeout`; the wait for its end is bounded 10 s later.
pub async fn send_raw<Req, Resp>(
    protocol: &'static str,
    timeout: Duration,
    addr: libp2p::Multiaddr,
    peer: libp2p::PeerId,
    requests: Vec<Req>,
) -> Vec<Result<Resp, String>>
where
    Req: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug + Send + Clone + 'static,
    Resp: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug + Send + Clone + 'static,
{
    use futures::StreamExt;
    use libp2p::request_response::{self, ProtocolSupport};
    use libp2p::swarm::SwarmEvent;

    let codec = request_response::cbor::codec::Codec::<Req, Resp>::default()
        .set_request_size_maximum(64 << 20)
        .set_response_size_maximum(64 << 20);
    let behaviour: request_response::cbor::Behaviour<Req, Resp> =
        request_response::Behaviour::with_codec(
            codec,
            [(
                libp2p::StreamProtocol::new(protocol),
                ProtocolSupport::Outbound,
            )],
            request_response::Config::default().with_request_timeout(timeout),
        );
    let mut swarm = raw_peer(libp2p::identity::Keypair::generate_ed25519(), behaviour);
    swarm.dial(addr.clone()).expect("the node's address dials");
    let mut answers = Vec::new();
    for request in requests {
        let id =
            swarm
                .behaviour_mut()
                .send_request_with_addresses(&peer, request, vec![addr.clone()]);
        let answer = tokio::time::timeout(timeout + Duration::from_secs(10), async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message:
                            request_response::Message::Response {
                                request_id,
                                response,
                            },
                        ..
                    }) if request_id == id => return Ok(response),
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                        request_id,
                        error,
                        ..
                    }) if request_id == id => return Err(error.to_string()),
                    _ => {}
                }
            }
        })
        .await
        .expect("every request ends, answered or failed, within its timeout");
        answers.push(answer);
    }
    answers
}

/// Pause between two evaluations of a waited-for condition.
pub const POLL: Duration = Duration::from_millis(10);

/// Evaluates `probe` until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Blocking variant of [`wait_until`] for tests that drive processes.
pub fn wait_until_blocking<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// A node running inside the test process, with the mock engine injected so that tests can
/// read back what it received.
#[derive(Debug)]
pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub mock: Arc<MockEngine>,
    pub daemon: Option<Daemon>,
    shutdown: CancellationToken,
}

impl TestNode {
    /// Starts a node with defaults suited to tests (fast monitor, short health timeout).
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a node after `adjust` has changed its configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, adjust).await
    }

    /// Starts a node on an existing directory (a restart).
    pub async fn start_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> Self {
        let mock =
            Arc::new(MockEngine::with_state_dir(dir.path().join("mock")).expect("mock state dir"));
        let mut config = Config::new(dir.path());
        config.engines = Some(Vec::new());
        config.extra_engines = vec![mock.clone()];
        config.monitor_period = Duration::from_millis(20);
        config.controller.health_timeout = Duration::from_secs(5);
        adjust(&mut config);
        let shutdown = CancellationToken::new();
        let daemon = crate::daemon::start(config, shutdown.clone())
            .await
            .expect("node starts");
        Self {
            dir,
            mock,
            daemon: Some(daemon),
            shutdown,
        }
    }

    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("node is running")
    }

    /// The messages of this node's events of `step` (its last 10 000 events), oldest first.
    pub fn events(&self, step: mesh_protocol::Step) -> Vec<String> {
        self.daemon()
            .node
            .store()
            .all_events(10_000)
            .expect("the node's event log reads")
            .into_iter()
            .filter(|e| e.step == step)
            .map(|e| e.message)
            .collect()
    }

    /// A client of this node's Unix socket.
    pub fn client(&self) -> Client {
        Client::new(Target::Unix(self.daemon().socket.clone()))
    }

    /// Stops the node and hands back its directory, for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.shutdown.cancel();
        if let Some(d) = self.daemon.take() {
            d.wait().await;
        }
        self.dir
    }
}

/// How long cutting or healing links may take to show.
const PARTITION_TIMEOUT: Duration = Duration::from_secs(20);

/// Several in-process nodes on loopback, bootstrapped to the first one, each with its own
/// mock engine and temporary directory.
#[derive(Debug)]
pub struct TestNet {
    pub nodes: Vec<TestNode>,
}

impl TestNet {
    /// Starts `n` nodes with fast heartbeats; `adjust(index, config)` can change each node's
    /// configuration before it starts (bootstrap addresses are filled in afterwards).
    pub async fn start(n: usize, adjust: impl Fn(usize, &mut Config)) -> Self {
        Self::start_seeded(n, 1, adjust).await
    }

    /// [`TestNet::start`], the nodes bootstrapped to `seeds` seed nodes in turn (the seeds to
    /// the first) rather than all to the first: in a large net no node is dialled by every
    /// other at once (a node with a connection limit would refuse most of them).
    pub async fn start_seeded(n: usize, seeds: usize, adjust: impl Fn(usize, &mut Config)) -> Self {
        let start = |i: usize, seed: Option<libp2p::Multiaddr>| {
            let adjust = &adjust;
            async move {
                TestNode::start_with(|c| {
                    c.mesh.heartbeat_interval = Duration::from_millis(500);
                    c.bootstrap = seed.into_iter().collect();
                    adjust(i, c);
                })
                .await
            }
        };
        let address = |node: &TestNode| -> libp2p::Multiaddr {
            node.daemon().addresses[0].parse().expect("a multiaddr")
        };
        let seeds = seeds.clamp(1, n.max(1));
        let mut nodes = vec![start(0, None).await];
        let first = address(&nodes[0]);
        let more_seeds = (1..seeds).map(|i| start(i, Some(first.clone())));
        nodes.extend(futures::future::join_all(more_seeds).await);
        let seed_addresses: Vec<libp2p::Multiaddr> = nodes.iter().map(address).collect();
        let rest = (seeds..n).map(|i| start(i, Some(seed_addresses[i % seeds].clone())));
        nodes.extend(futures::future::join_all(rest).await);
        Self { nodes }
    }

    /// Waits until every node has fresh heartbeats from every other node.
    pub async fn wait_connected(&self, timeout: Duration) {
        let n = self.nodes.len();
        let deadline = Instant::now() + timeout;
        loop {
            let now = mesh_runtime::now_millis();
            let heard: Vec<usize> = self
                .nodes
                .iter()
                .map(|node| node.daemon().mesh.peers().fresh_ids(now).len())
                .collect();
            if heard.iter().all(|h| h + 1 >= n) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for every node to hear the {} others; peers heard per node: {heard:?}",
                n - 1
            );
            tokio::time::sleep(POLL).await;
        }
    }

    pub fn node(&self, i: usize) -> &TestNode {
        &self.nodes[i]
    }

    fn peer(&self, i: usize) -> libp2p::PeerId {
        self.nodes[i]
            .daemon()
            .node
            .id()
            .parse()
            .expect("a node id is a peer id")
    }

    /// Partitions the mesh: every node's links to the nodes outside its group are cut (their
    /// connections closed, new ones refused both ways), as a network split would. Nodes in no
    /// group are cut from everyone. Returns once no node holds a connection across groups.
    pub async fn partition(&self, groups: &[&[usize]]) {
        let group_of = |i: usize| groups.iter().position(|g| g.contains(&i));
        for i in 0..self.nodes.len() {
            let others: Vec<libp2p::PeerId> = (0..self.nodes.len())
                .filter(|j| *j != i && (group_of(*j).is_none() || group_of(*j) != group_of(i)))
                .map(|j| self.peer(j))
                .collect();
            self.nodes[i].daemon().mesh.net().cut(others).await;
        }
        for i in 0..self.nodes.len() {
            let net = self.nodes[i].daemon().mesh.net().clone();
            let foreign: Vec<libp2p::PeerId> = (0..self.nodes.len())
                .filter(|j| *j != i && (group_of(*j).is_none() || group_of(*j) != group_of(i)))
                .map(|j| self.peer(j))
                .collect();
            wait_until(
                "links across the partition to close",
                PARTITION_TIMEOUT,
                || {
                    let net = net.clone();
                    let foreign = foreign.clone();
                    async move {
                        let connected = net.connected_peers().await;
                        (!connected.iter().any(|p| foreign.contains(p))).then_some(())
                    }
                },
            )
            .await;
        }
    }

    /// Heals a [`TestNet::partition`]: every link is restored and each node dials every other
    /// again (as nodes do when a network comes back and they next reach out); returns once
    /// every node is connected to every other.
    pub async fn heal(&self) {
        let everyone: Vec<libp2p::PeerId> = (0..self.nodes.len()).map(|i| self.peer(i)).collect();
        for node in &self.nodes {
            node.daemon().mesh.net().restore(everyone.clone()).await;
        }
        for (i, node) in self.nodes.iter().enumerate() {
            for (j, other) in self.nodes.iter().enumerate() {
                if i != j {
                    // Listen addresses end in /p2p/<peer id>.
                    let addr = other.daemon().addresses[0].parse().expect("a multiaddr");
                    let _ = node.daemon().mesh.net().dial(addr).await;
                }
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let net = node.daemon().mesh.net().clone();
            let want = self.nodes.len() - 1;
            wait_until(
                &format!("node {i} to reconnect to every other"),
                PARTITION_TIMEOUT,
                || {
                    let net = net.clone();
                    async move { (net.connected_peers().await.len() >= want).then_some(()) }
                },
            )
            .await;
        }
    }

    /// Stops every node.
    pub async fn stop(self) {
        futures::future::join_all(self.nodes.into_iter().map(TestNode::stop)).await;
    }
}

/// An apply of `manifest` as `meshctl apply --replicas N` sends it through `mesh`: every
/// workload's record signed by `user` at the revision after the one the mesh holds.
pub async fn signed_apply(
    mesh: &crate::mesh::Mesh,
    user: &libp2p::identity::Keypair,
    manifest: &str,
    replicas: u32,
) -> mesh_protocol::api::ApplyRequest {
    let src = mesh_provider::workload::ManifestSource {
        manifest: manifest.to_string(),
        ..Default::default()
    };
    let specs = crate::records::parse_source(&src).expect("a test manifest parses");
    let mut held = std::collections::HashMap::new();
    for spec in &specs {
        let revision = mesh.record_info(&spec.id()).await.map_or(0, |r| r.revision);
        held.insert(spec.id(), revision);
    }
    let built = crate::records::build(
        user,
        &src,
        Some(replicas),
        |id| held.get(id).copied().unwrap_or(0),
        mesh_runtime::now_millis(),
    )
    .expect("a test manifest signs");
    mesh_protocol::api::ApplyRequest {
        manifest: manifest.to_string(),
        replicas: Some(replicas),
        records: built.into_iter().map(|b| b.signed).collect(),
        ..Default::default()
    }
}

/// Replaces the text between `<!-- NAME:start -->` and `<!-- NAME:end -->` in
/// `docs/benchmarks.md` (appending the section when it is missing). Benchmarks write their
/// figures with it, each into its own section.
pub fn update_benchmark_section(name: &str, body: &str) -> std::io::Result<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md");
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    let block = format!("{start}\n{body}{end}");
    let new = match (doc.find(&start), doc.find(&end)) {
        (Some(a), Some(b)) if a < b => format!("{}{block}{}", &doc[..a], &doc[b + end.len()..]),
        _ => format!("{}\n\n{block}\n", doc.trim_end()),
    };
    std::fs::write(&path, new)?;
    Ok(path)
}
