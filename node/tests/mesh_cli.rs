//! The mesh through the real binaries: a `meshd` testnet, `meshctl` against any node or over
//! libp2p with `--peer`, and the records of a node killed with SIGKILL expiring within one TTL.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::{Duration, Instant};

use mesh_node::testing::wait_until_blocking;
use mesh_node::testnet;

mod cli_support;
use cli_support::{ctl, fast_testnet, json, sock, Down, Streaming};

#[test]
fn testnet_discover_peer_mode_and_kill_9_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let ttl = Duration::from_secs(3);
    let net = fast_testnet(dir.path(), 3, None);
    let guard = Down(dir.path());
    let (a, c) = (&net.nodes[0], &net.nodes[2]);
    wait_until_blocking("every node to be known", Duration::from_secs(30), || {
        let nodes = json(ctl(&[
            "--node",
            sock(a),
            "nodes",
            "--engine",
            "mock",
            "-o",
            "json",
        ]));
        (nodes.as_array().unwrap().len() == 3).then_some(())
    });

    let files = tempfile::tempdir().unwrap();
    let manifest = files.path().join("web.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  template:\n    metadata:\n      annotations:\n        beemesh.io/runtime-engine: mock\n    spec:\n      containers:\n      - name: main\n        image: localhost/mesh-test:latest\n",
    )
    .unwrap();
    let applied = json(ctl(&[
        "--node",
        sock(a),
        "apply",
        "-f",
        manifest.to_str().unwrap(),
        "-o",
        "json",
    ]));
    assert_eq!(
        applied["workloads"][0]["deployment"]["replicas"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Announcements replicate in the background: C sees all three within moments.
    let providers = wait_until_blocking(
        "C to discover the 3 providers",
        Duration::from_secs(5),
        || {
            let args = [
                "--node",
                sock(c),
                "discover",
                "web",
                "--engine",
                "mock",
                "-o",
                "json",
            ];
            let p = json(ctl(&args));
            (p.as_array().unwrap().len() == 3).then_some(p)
        },
    );
    for p in providers.as_array().unwrap() {
        for field in [
            "peer_id",
            "engine",
            "version",
            "expires_at",
            "capabilities",
            "resources",
        ] {
            assert!(p.get(field).is_some(), "discover lacks {field}: {p}");
        }
    }
    let none = json(ctl(&[
        "--node",
        sock(c),
        "discover",
        "web",
        "--engine",
        "podman",
        "-o",
        "json",
    ]));
    assert!(none.as_array().unwrap().is_empty());

    // No local daemon needed: any node over libp2p.
    let via_peer = json(ctl(&[
        "--peer",
        &c.addresses[0],
        "get",
        "web",
        "-o",
        "json",
    ]));
    assert_eq!(via_peer["replicas"].as_array().unwrap().len(), 3);

    // kill -9 of a provider: its record disappears from discovery within one TTL.
    let victim = &net.nodes[1];
    testnet::kill9(victim);
    let killed_at = Instant::now();
    wait_until_blocking(
        "the killed node's record to expire",
        ttl + Duration::from_secs(2),
        || {
            let providers = json(ctl(&["--node", sock(c), "discover", "web", "-o", "json"]));
            let ids: Vec<&str> = providers
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["peer_id"].as_str().unwrap())
                .collect();
            (!ids.contains(&victim.peer_id.as_str())).then_some(ids.len())
        },
    );
    assert!(killed_at.elapsed() <= ttl + Duration::from_secs(2));
    drop(guard);
}

/// Stops the testnet even when an assertion failed.
/// Self-healing through the real binaries: `kill -9` of a provider, and its slot runs again
/// elsewhere (the replacement's start in its node's events); `meshctl events -w` on the first
/// node shows the healing as it happens; `meshctl drain` moves a node's replica off it and
/// `meshctl nodes` shows it cordoned.
#[test]
fn kill_9_is_healed_followed_by_events_w_and_drain_moves_replicas() {
    let dir = tempfile::tempdir().unwrap();
    // A watcher (no engine), three replicas, a spare for the kill and one for the drain.
    let net = fast_testnet(dir.path(), 6, Some("none"));
    let guard = Down(dir.path());
    let a = &net.nodes[0];
    wait_until_blocking("every node to be known", Duration::from_secs(30), || {
        let nodes = json(ctl(&["--node", sock(a), "nodes", "-o", "json"]));
        (nodes.as_array().unwrap().len() == 6).then_some(())
    });
    let files = tempfile::tempdir().unwrap();
    let manifest = files.path().join("web.yaml");
    std::fs::write(&manifest, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  template:\n    metadata:\n      annotations:\n        beemesh.io/runtime-engine: mock\n    spec:\n      containers:\n      - name: main\n        image: localhost/mesh-test:latest\n").unwrap();
    let applied = ctl(&["--node", sock(a), "apply", "-f", manifest.to_str().unwrap()]);
    assert!(applied.status.success(), "{applied:?}");
    let running = |exclude: &[&str]| -> Option<Vec<String>> {
        let providers = json(ctl(&["--node", sock(a), "discover", "web", "-o", "json"]));
        let ids: Vec<String> = providers
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["peer_id"].as_str().unwrap().to_string())
            .collect();
        (ids.len() == 3 && ids.iter().all(|i| !exclude.contains(&i.as_str()))).then_some(ids)
    };
    let before = wait_until_blocking("3 running", Duration::from_secs(30), || running(&[]));

    // Followed from node 0, every node's log from its start, one JSON object per line.
    let watch = Streaming::start(&[
        "--node",
        sock(a),
        "events",
        "-w",
        "--from-start",
        "-o",
        "json",
    ]);

    // Killed before healing is armed (nodes up for a round, the record past its apply's
    // grace): the replacement comes once it is, within the wait below.
    let victim = net
        .nodes
        .iter()
        .find(|n| before.contains(&n.peer_id))
        .unwrap();
    testnet::kill9(victim);
    let after = wait_until_blocking("3 running again", Duration::from_secs(30), || {
        running(&[victim.peer_id.as_str()])
    });
    let new = after.iter().find(|p| !before.contains(p)).unwrap();
    let target = net.nodes.iter().find(|n| n.peer_id == *new).unwrap();
    let events = json(ctl(&[
        "--node",
        sock(target),
        "events",
        "web",
        "-o",
        "json",
    ]));
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["step"] == "Activate"),
        "{events}"
    );
    let parsed = |lines: &[String]| -> Vec<serde_json::Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let seen = parsed(&watch.until(Duration::from_secs(20), |lines| {
        parsed(lines).iter().any(|l| {
            l["event"]["step"] == "Heal"
                && l["event"]["message"].as_str().unwrap().contains("placed")
        })
    }));
    assert!(
        seen.iter().any(|l| l["event"]["step"] == "Liveness"
            && l["event"]["message"]
                .as_str()
                .unwrap()
                .contains(&victim.peer_id)),
        "{seen:?}"
    );
    drop(watch);

    // Drain a node that runs a replica: it moves, and the node shows Cordoned.
    let holder = net
        .nodes
        .iter()
        .find(|n| after.contains(&n.peer_id))
        .unwrap();
    let drained = ctl(&["--node", sock(a), "drain", &holder.peer_id]);
    let text = String::from_utf8_lossy(&drained.stdout);
    assert!(drained.status.success(), "{drained:?}");
    assert!(text.contains("1 replica(s) moved"), "{text}");
    wait_until_blocking(
        "3 running off the drained node",
        Duration::from_secs(30),
        || running(&[victim.peer_id.as_str(), holder.peer_id.as_str()]),
    );
    let nodes = json(ctl(&["--node", sock(a), "nodes", "-o", "json"]));
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["peer_id"] == holder.peer_id.as_str() && n["cordoned"] == true),
        "{nodes}"
    );
    let table = ctl(&["--node", sock(a), "nodes"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("Cordoned"));
    drop(guard);
}
