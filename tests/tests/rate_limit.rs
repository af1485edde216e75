//! A peer that floods a node with requests is cut to its rate: past its burst, requests are
//! answered "429 rate limited" at once, and the node keeps serving other peers.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use mesh_node::testing::{send_raw, TestNode};
use serde_json::{json, Value};

const RATE: u32 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_is_cut_to_its_rate_and_others_are_still_served() {
    let node = TestNode::start_with(|c| c.peer_request_rate = RATE).await;
    let addr: Multiaddr = node.daemon().addresses[0].parse().unwrap();
    let peer: PeerId = node.daemon().node.id().parse().unwrap();
    let flood = 200;
    let started = Instant::now();
    let answers: Vec<Result<Value, String>> = send_raw(
        "/mesh/rpc/1",
        Duration::from_secs(10),
        addr.clone(),
        peer,
        vec![json!("Engines"); flood],
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let served = answers
        .iter()
        .filter(|a| matches!(a, Ok(v) if v.get("Engines").is_some()))
        .count();
    let limited = answers
        .iter()
        .filter(|a| {
            matches!(a, Ok(v) if v["Error"]["status"] == 429
                && v["Error"]["message"].as_str().unwrap().contains("rate limited"))
        })
        .count();
    assert_eq!(
        served + limited,
        flood,
        "every request answered: {answers:?}"
    );
    // The burst (twice the rate), plus what refilled while the flood lasted.
    let allowed = 2 * RATE as usize + (elapsed * f64::from(RATE)).ceil() as usize;
    assert!(
        served >= 2 * RATE as usize && served <= allowed,
        "{served} served of {flood} in {elapsed:.2}s (at most {allowed})"
    );
    assert!(limited > 0);

    // Another peer has its own budget; the node's API still answers.
    let other: Vec<Result<Value, String>> = send_raw(
        "/mesh/rpc/1",
        Duration::from_secs(10),
        addr,
        peer,
        vec![json!("Engines")],
    )
    .await;
    assert!(
        other[0].as_ref().unwrap().get("Engines").is_some(),
        "{other:?}"
    );
    let h: Value = node.client().get("/health").await.unwrap();
    assert_eq!(h["status"], "ok");
    node.stop().await;
}
