//! The mesh-wide event stream (`meshctl events -w`): a follower on one node reads every
//! node's durable event log through it; a node cut off by a partition delivers what it
//! recorded meanwhile once the partition heals, in order, none twice.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::time::Duration;

use mesh_node::cli::backend::Backend;
use mesh_node::cli::follow::{Followed, Follower};
use mesh_node::testing::{wait_until, TestNet};
use mesh_protocol::Step;

fn seqs_of(delivered: &[Followed], node: &str) -> Vec<u64> {
    delivered
        .iter()
        .filter(|f| f.node == node)
        .filter_map(|f| f.event.as_ref().map(|e| e.seq))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_nodes_events_arrive_after_the_heal_in_order_and_once() {
    let net = TestNet::start(5, |_, c| c.mesh.provider_ttl = Duration::from_secs(3)).await;
    net.wait_connected(Duration::from_secs(30)).await;
    let backend = Backend::Local(net.node(0).client());
    let mut follower = Follower::new(BTreeMap::new(), false);
    // The first round places every node's cursor at its newest event.
    assert!(follower.poll(&backend).await.unwrap().is_empty());
    let cut_off = net.node(4).daemon().node.id().to_string();
    let start = follower.cursor[&cut_off];
    let mut delivered: Vec<Followed> = Vec::new();

    net.partition(&[&[0, 1, 2], &[3, 4]]).await;
    // Node 4 records, while cut off, that it lost the other side.
    let store = net.node(4).daemon().node.store().clone();
    wait_until(
        "node 4 to record the other side dead",
        Duration::from_secs(20),
        || async {
            let page = store.event_page(&cut_off, start, 500).unwrap();
            let dead = page
                .events
                .iter()
                .filter(|e| e.step == Step::Liveness && e.message.contains(" dead: "))
                .count();
            (dead >= 3).then_some(())
        },
    )
    .await;
    let during = follower.poll(&backend).await.unwrap();
    assert!(
        seqs_of(&during, &cut_off).is_empty(),
        "node 4 reached across the cut"
    );
    delivered.extend(during);

    net.heal().await;
    let recorded_while_cut = store.event_page(&cut_off, start, 500).unwrap().last;
    // Rounds as `meshctl events -w` runs them, until node 4's are in.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seqs_of(&delivered, &cut_off)
        .last()
        .is_none_or(|s| *s < recorded_while_cut)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "node 4's events did not arrive"
        );
        delivered.extend(follower.poll(&backend).await.unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    delivered.extend(follower.poll(&backend).await.unwrap());

    // In order, once each, and every event node 4 kept since the follow began.
    let got = seqs_of(&delivered, &cut_off);
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "out of order or twice: {got:?}"
    );
    let kept: Vec<u64> = store
        .event_page(&cut_off, start, 500)
        .unwrap()
        .events
        .iter()
        .map(|e| e.seq)
        .filter(|s| s <= got.last().unwrap())
        .collect();
    assert_eq!(got, kept);
    let messages: Vec<&str> = delivered
        .iter()
        .filter(|f| f.node == cut_off)
        .filter_map(|f| f.event.as_ref().map(|e| e.message.as_str()))
        .collect();
    assert!(
        messages.iter().filter(|m| m.contains(" dead: ")).count() >= 3,
        "{messages:?}"
    );
    net.stop().await;
}
