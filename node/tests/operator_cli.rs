//! The operator's CLI against real `meshd` processes running real native processes: `logs -f`
//! across two nodes, `get -w`, `apply --no-wait`, one correlation id in both nodes' JSON
//! logs, `-o wide`, `outputs`, and the documented exit statuses.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::Command;
use std::time::Duration;

use mesh_node::testing::wait_until_blocking;

mod cli_support;
use cli_support::{ctl, json, sock, testnet_with, Down, Streaming, MESHCTL};

/// Two replicas of a loop that prints a numbered line every 200 ms.
const TICKER: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ticker
  annotations:
    beemesh.io/runtime-engine: process
spec:
  replicas: 2
  selector: {matchLabels: {app: ticker}}
  template:
    metadata: {labels: {app: ticker}}
    spec:
      containers:
      - name: tick
        image: none
        command: ["sh", "-c", "i=0; while :; do i=$((i+1)); echo \"tick $i\"; sleep 0.2; done"]
"#;

/// A job that writes one declared output file.
const REPORT_JOB: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: report
  annotations:
    beemesh.io/runtime-engine: process
    beemesh.io/outputs: "out/result.txt"
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: report
        image: none
        command: ["sh", "-c", "mkdir -p out && echo 'forty-two' > out/result.txt"]
"#;

fn manifest(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The `tick N` counters per line prefix (`[…node/tick] tick 7`).
fn ticks_by_source(lines: &[String]) -> std::collections::BTreeMap<String, Vec<u64>> {
    let mut out: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for l in lines {
        let (source, text) = l.split_once("] ").unwrap_or(("", l));
        if let Some(n) = text.strip_prefix("tick ").and_then(|n| n.parse().ok()) {
            out.entry(source.to_string()).or_default().push(n);
        }
    }
    out
}

#[test]
fn logs_f_get_w_no_wait_and_one_correlation_id_across_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet_with(
        dir.path(),
        2,
        "process",
        None,
        &["--log=info", "--log-format=json"],
    );
    let _down = Down(dir.path());
    let (a, b) = (sock(&net.nodes[0]), sock(&net.nodes[1]));
    wait_until_blocking("both nodes in the mesh", Duration::from_secs(20), || {
        json(ctl(&["--node", a, "nodes", "-o", "json"]))
            .as_array()
            .is_some_and(|n| n.len() == 2)
            .then_some(())
    });

    let watch = Streaming::start(&["--node", b, "get", "-w", "-o", "json"]);
    let file = manifest(dir.path(), "ticker.yaml", TICKER);
    let accepted = json(ctl(&[
        "--node",
        a,
        "apply",
        "-f",
        &file,
        "--no-wait",
        "-o",
        "json",
    ]));
    assert_eq!(accepted["workloads"][0]["action"], "accepted", "{accepted}");
    let correlation = accepted["correlation"].as_str().unwrap().to_string();
    assert!(correlation.starts_with("apply-"), "{correlation}");

    // The watch on the other node sees it come up: both replicas Running.
    let seen = watch.until(Duration::from_secs(30), |lines| {
        lines.iter().any(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let d = &v["object"];
            d["name"] == "ticker"
                && d["replicas"]
                    .as_array()
                    .is_some_and(|r| r.len() == 2 && r.iter().all(|r| r["phase"] == "Running"))
        })
    });
    assert!(seen[seen.len() - 1].contains("\"MODIFIED\"") || seen.len() == 1);
    let nodes: std::collections::BTreeSet<String> = {
        let d = json(ctl(&["--node", a, "get", "ticker", "-o", "json"]));
        d["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["node"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(nodes.len(), 2, "one replica per node");

    // Both nodes logged their part of the apply in a span with its correlation id.
    for node in &net.nodes {
        let log =
            std::fs::read_to_string(node.api_socket.parent().unwrap().join("meshd.log")).unwrap();
        let hit = log
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .any(|v| v.to_string().contains(&correlation));
        assert!(hit, "{} logged nothing with {correlation}", node.peer_id);
    }

    // logs -f through one node streams both replicas, each prefixed by its node, and keeps
    // delivering new lines.
    let follow = Streaming::start(&["--node", b, "logs", "-f", "ticker"]);
    let lines = follow.until(Duration::from_secs(30), |lines| {
        let ticks = ticks_by_source(lines);
        ticks.len() == 2 && ticks.values().all(|t| t.len() >= 5)
    });
    for (source, ticks) in ticks_by_source(&lines) {
        assert!(source.starts_with("[…"), "prefixed by node: {source}");
        assert!(
            ticks.windows(2).all(|w| w[1] == w[0] + 1),
            "{source}: each line once, in order: {ticks:?}"
        );
    }

    // -o wide names the nodes.
    let wide = ctl(&["--node", a, "get", "-o", "wide"]);
    let text = String::from_utf8_lossy(&wide.stdout);
    assert!(text.lines().next().unwrap().contains("NODES"), "{text}");
    for peer in &nodes {
        assert!(text.contains(&peer[peer.len() - 12..]), "{text}");
    }

    // Deleting it ends with a DELETED line on the watch.
    assert!(ctl(&["--node", a, "delete", "ticker"]).status.success());
    watch.until(Duration::from_secs(30), |lines| {
        lines.iter().any(|l| l.contains("\"DELETED\""))
    });
}

#[test]
fn outputs_are_fetched_from_the_node_that_ran_the_job_and_exit_statuses_are_stable() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet_with(dir.path(), 2, "process", None, &["--log=info"]);
    let _down = Down(dir.path());
    let (a, b) = (sock(&net.nodes[0]), sock(&net.nodes[1]));
    wait_until_blocking("both nodes in the mesh", Duration::from_secs(20), || {
        json(ctl(&["--node", b, "nodes", "-o", "json"]))
            .as_array()
            .is_some_and(|n| n.len() == 2)
            .then_some(())
    });
    let file = manifest(dir.path(), "report.yaml", REPORT_JOB);
    assert!(ctl(&["--node", a, "apply", "-f", &file]).status.success());
    wait_until_blocking("the job Succeeded", Duration::from_secs(30), || {
        (json(ctl(&["--node", a, "get", "report", "-o", "json"]))["phase"] == "Succeeded")
            .then_some(())
    });
    // Through each node: one of them did not run it and forwards the reads.
    for node in [a, b] {
        let out = dir.path().join(format!("out-{}", node.len()));
        let got = json(ctl(&[
            "--node",
            node,
            "outputs",
            "report",
            "-d",
            out.to_str().unwrap(),
            "-o",
            "json",
        ]));
        assert_eq!(got[0]["path"], "out/result.txt", "{got}");
        let text = std::fs::read_to_string(out.join("out/result.txt")).unwrap();
        assert_eq!(text, "forty-two\n");
    }

    // Exit statuses: 4 not found, 3 no node, 2 usage, 5 a key the nodes do not trust.
    assert_eq!(ctl(&["--node", a, "get", "nosuch"]).status.code(), Some(4));
    assert_eq!(
        ctl(&["--node", a, "outputs", "nosuch"]).status.code(),
        Some(4)
    );
    let gone = dir.path().join("no-such.sock");
    assert_eq!(
        ctl(&["--node", gone.to_str().unwrap(), "get"])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(ctl(&["get", "--no-such-flag"]).status.code(), Some(2));
    let stranger = Command::new(MESHCTL)
        .env("MESH_KEY", dir.path().join("stranger.key"))
        .args(["--node", a, "apply", "-f", &file])
        .output()
        .unwrap();
    assert_eq!(
        stranger.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&stranger.stderr)
    );

    // The text log went to a file: plain text, no colour codes.
    let log = std::fs::read_to_string(net.nodes[0].api_socket.parent().unwrap().join("meshd.log"))
        .unwrap();
    assert!(log.contains(" INFO "), "{log}");
    assert!(!log.contains('\x1b'), "ANSI codes in a log file: {log}");
}
