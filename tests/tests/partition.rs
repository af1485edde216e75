//! Partitions in tests: the in-process `TestNet` cuts the links between groups of nodes (both
//! ways, through `libp2p-allow-block-list`) and heals them, without root. While cut, nothing
//! crosses: no connection, no gossip, no request; once healed, the sides talk again.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use libp2p::identity::Keypair;
use mesh_node::testing::{signed_apply, wait_until, TestNet};
use mesh_protocol::WorkloadId;

fn pod(name: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n")
}

/// Waits until the nodes `range` of `net` hold the record of `id` in their books.
async fn held_by(
    net: &TestNet,
    range: std::ops::Range<usize>,
    id: &WorkloadId,
    what: &str,
    timeout: Duration,
) {
    wait_until(what, timeout, || {
        let range = range.clone();
        async move {
            range
                .clone()
                .all(|i| net.node(i).daemon().mesh.records().get(id).is_some())
                .then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_mesh_is_cut_both_ways_and_talks_again_once_healed() {
    // Renewal rounds of 1 s: the record's holder republishes it every round.
    let net = TestNet::start(5, |_, c| c.mesh.provider_ttl = Duration::from_secs(3)).await;
    net.wait_connected(Duration::from_secs(30)).await;
    net.partition(&[&[0, 1, 2], &[3, 4]]).await;
    let user = Keypair::generate_ed25519();
    let ids: Vec<libp2p::PeerId> = (0..5)
        .map(|i| net.node(i).daemon().node.id().parse().unwrap())
        .collect();

    // No connection across, and a dial across is refused.
    for i in 0..3 {
        let connected = net.node(i).daemon().mesh.net().connected_peers().await;
        assert!(
            !connected.contains(&ids[3]) && !connected.contains(&ids[4]),
            "{i}: {connected:?}"
        );
    }
    let a = &net.node(0).daemon().mesh;
    // A dial across is refused by the cut (checked below: no link formed).
    let _ = a
        .net()
        .dial(net.node(3).daemon().addresses[0].parse().unwrap())
        .await;
    // An apply on one side reaches that side only.
    let id = WorkloadId::new("default", "left");
    a.apply(signed_apply(a, &user, &pod("left"), 1).await)
        .await
        .unwrap();
    held_by(
        &net,
        1..3,
        &id,
        "the record to reach the left side",
        Duration::from_secs(10),
    )
    .await;
    let connected = net.node(0).daemon().mesh.net().connected_peers().await;
    assert!(
        !connected.contains(&ids[3]),
        "the refused dial formed no link: {connected:?}"
    );
    // A request across fails rather than reaching the other side.
    let asked = a
        .net()
        .request(ids[3], Vec::new(), mesh_protocol::wire::Request::Engines)
        .await;
    assert!(asked.is_err(), "a request crossed the partition: {asked:?}");
    for i in 3..5 {
        assert!(
            net.node(i).daemon().mesh.records().get(&id).is_none(),
            "node {i} heard it"
        );
    }

    // Healed: every node connected to every other, requests cross again, and the other side
    // learns the record from its holder's next republish round.
    net.heal().await;
    let right = &net.node(4).daemon().mesh;
    let asked = right
        .net()
        .request(ids[0], Vec::new(), mesh_protocol::wire::Request::Engines)
        .await;
    assert!(asked.is_ok(), "{asked:?}");
    // Its holder republishes it on gossip each round; an unchanged record is a copy to
    // gossipsub's duplicate cache (10 s), so the first round 10 s after the last goes out.
    held_by(
        &net,
        3..5,
        &id,
        "the record to reach the right side",
        Duration::from_secs(30),
    )
    .await;
    net.stop().await;
}
