//! Helpers of the self-healing tests: a mesh of in-process nodes with short rounds, who runs
//! which slot as each node sees it, waiting until the views agree, the events nodes recorded.

#![allow(dead_code)] // each test file uses its own subset
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use libp2p::PeerId;
use mesh_node::testing::{wait_until, TestNet};
use mesh_protocol::{Step, WorkloadId};

pub fn pod(name: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n")
}

/// Heartbeats every 500 ms (the `TestNet` default); provider records live `ttl`, renewed
/// every third of it.
pub async fn mesh(n: usize, ttl: Duration) -> TestNet {
    let net = TestNet::start(n, |_, c| c.mesh.provider_ttl = ttl).await;
    net.wait_connected(Duration::from_secs(30)).await;
    net
}

pub fn peer_of(net: &TestNet, i: usize) -> PeerId {
    net.node(i).daemon().node.id().parse().unwrap()
}

/// The running slot holders of `id` as the nodes `seen_by` see them: slot → peers.
pub async fn slots(
    net: &TestNet,
    seen_by: &[usize],
    id: &WorkloadId,
) -> Vec<BTreeMap<u32, Vec<PeerId>>> {
    let mut out = Vec::new();
    for &i in seen_by {
        let mut by_slot: BTreeMap<u32, Vec<PeerId>> = BTreeMap::new();
        for p in net.node(i).daemon().mesh.discover(id, None).await {
            if let (Some(slot), Ok(peer)) = (p.slot, p.peer_id.parse()) {
                by_slot.entry(slot).or_default().push(peer);
            }
        }
        out.push(by_slot);
    }
    out
}

/// Waits until every node of `seen_by` sees exactly `want` slots `0..want`, each filled
/// once, by nodes of `allowed`; returns the holders.
pub async fn settled(
    net: &TestNet,
    seen_by: &[usize],
    id: &WorkloadId,
    want: u32,
    allowed: &HashSet<PeerId>,
    what: &str,
    timeout: Duration,
) -> BTreeMap<u32, PeerId> {
    wait_until(what, timeout, || async {
        let views = slots(net, seen_by, id).await;
        let first = views[0].clone();
        let ok = views.iter().all(|v| *v == first)
            && first.keys().copied().eq(0..want)
            && first
                .values()
                .all(|p| p.len() == 1 && allowed.contains(&p[0]));
        ok.then(|| first.into_iter().map(|(s, p)| (s, p[0])).collect())
    })
    .await
}

/// Every event of `step` the nodes recorded, as messages.
pub fn events(net: &TestNet, step: Step) -> Vec<String> {
    net.nodes.iter().flat_map(|n| n.events(step)).collect()
}

/// A node of `range` (not node 0, which watches) that holds a slot in `held`.
pub fn a_holder(
    net: &TestNet,
    range: std::ops::Range<usize>,
    held: &BTreeMap<u32, PeerId>,
) -> usize {
    range
        .clone()
        .find(|i| held.values().any(|p| *p == peer_of(net, *i)))
        .unwrap()
}

/// Applies a Pod `name` with `replicas` replicas through node 0 (signed by a new user key) and
/// waits until every node sees each slot held once; returns the workload and its holders.
pub async fn deployed(
    net: &TestNet,
    name: &str,
    replicas: u32,
) -> (WorkloadId, BTreeMap<u32, PeerId>) {
    let user = libp2p::identity::Keypair::generate_ed25519();
    let a = &net.node(0).daemon().mesh;
    a.apply(mesh_node::testing::signed_apply(a, &user, &pod(name), replicas).await)
        .await
        .unwrap();
    let id = WorkloadId::new("default", name);
    let all: Vec<usize> = (0..net.nodes.len()).collect();
    let everyone: HashSet<PeerId> = all.iter().map(|i| peer_of(net, *i)).collect();
    let holders = settled(
        net,
        &all,
        &id,
        replicas,
        &everyone,
        &format!("{replicas} running"),
        Duration::from_secs(20),
    )
    .await;
    (id, holders)
}
