//! Scale: many in-process nodes (the test harness's `TestNet`, one tokio runtime, each node
//! with its own libp2p swarm on loopback, sled store, mock engine and Unix-socket API) form a
//! mesh in which apply, discovery and `list` work. Reports how long the mesh takes to form
//! (every node has heard every other's heartbeat), memory per node (the process's resident
//! and anonymous memory divided by the node count) and CPU per idle node, and writes them into
//! `docs/benchmarks.md` between the `scale` markers.
//!
//! Run: `cargo bench -p mesh-node --bench scale` (`MESH_BENCH_SCALE=200`, the default;
//! several sizes comma-separated).

#![allow(clippy::unwrap_used)] // a bench: a panic is the failure report

use std::time::{Duration, Instant};

use mesh_node::testing::TestNet;
use mesh_protocol::api::ApplyRequest;

mod support;

/// A `/proc/self/status` field in KiB.
fn status_kib(field: &str) -> u64 {
    support::status_kib("self", field)
}

/// CPU time of this process (user + system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

struct Row {
    nodes: usize,
    formed: Duration,
    /// Nodes (itself included) the least-informed and the median node had fresh heartbeats of.
    least_heard: usize,
    median_heard: usize,
    apply: Duration,
    discovered: usize,
    listed: usize,
    rss_per_node: f64,
    anon_per_node: f64,
    cpu_per_node: f64,
    threads: u64,
}

async fn measure(n: usize) -> Row {
    let before_anon = status_kib("RssAnon:");
    let before_rss = status_kib("VmRSS:");
    let started = Instant::now();
    // meshd's defaults for heartbeats (5 s): every node receives every node's heartbeat.
    let net = TestNet::start(n, |_, c| {
        c.mesh.heartbeat_interval = Duration::from_secs(5);
        c.monitor_period = Duration::from_secs(1);
    })
    .await;
    // Formed: every node has a fresh heartbeat from every other, within the budget
    // (`MESH_BENCH_FORM_SECONDS`, 180 by default); else the least and median heard are kept.
    let budget = Duration::from_secs(
        std::env::var("MESH_BENCH_FORM_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(180),
    );
    let heard = loop {
        let now = mesh_runtime::now_millis();
        let mut heard: Vec<usize> = net
            .nodes
            .iter()
            .map(|node| node.daemon().mesh.peers().fresh(now).len() + 1)
            .collect();
        heard.sort_unstable();
        if heard[0] >= n || started.elapsed() > budget {
            break heard;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let formed = started.elapsed();
    let (least_heard, median_heard) = (heard[0], heard[heard.len() / 2]);

    // Idle: memory and CPU over 10 s.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu = (cpu_time() - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    let rss = status_kib("VmRSS:").saturating_sub(before_rss);
    let anon = status_kib("RssAnon:").saturating_sub(before_anon);
    let threads = status_kib("Threads:");

    // Apply a 3-replica Pod through node 0; then every node's list and a sample of nodes'
    // discovery must show it.
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: scale\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n";
    let req = ApplyRequest {
        manifest: manifest.to_string(),
        replicas: Some(3),
        ..Default::default()
    };
    let t = Instant::now();
    let answer = net
        .node(0)
        .client()
        .post("/deployments", &req)
        .await
        .unwrap();
    let apply = t.elapsed();
    assert!(answer.status.is_success(), "{}", answer.error_message());
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut discovered, mut listed);
    loop {
        discovered = 0;
        for i in (0..n).step_by((n / 10).max(1)) {
            let providers: Vec<serde_json::Value> = net
                .node(i)
                .client()
                .get("/discover/scale")
                .await
                .unwrap_or_default();
            discovered += usize::from(providers.len() == 3);
        }
        listed = 0;
        for node in &net.nodes {
            let list: Vec<mesh_protocol::api::Deployment> =
                node.client().get("/deployments").await.unwrap();
            listed += usize::from(list.iter().any(|d| d.name == "scale"));
        }
        if (discovered == n.div_ceil((n / 10).max(1)) && listed == n) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    net.stop().await;
    Row {
        nodes: n,
        formed,
        least_heard,
        median_heard,
        apply,
        discovered,
        listed,
        rss_per_node: mib(rss) / n as f64,
        anon_per_node: mib(anon) / n as f64,
        cpu_per_node: cpu * 100.0 / n as f64,
        threads,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("scale bench: run with `cargo bench -p mesh-node --bench scale`");
        return;
    }
    let sizes: Vec<usize> = std::env::var("MESH_BENCH_SCALE")
        .unwrap_or_else(|_| "200".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for n in sizes {
        let row = rt.block_on(measure(n));
        println!(
            "{n} nodes: formed in {:.1} s, apply {:.0} ms, discovered on {} sampled nodes, listed on {}, {:.2} MiB RSS / {:.2} MiB anon per node, {:.2} % CPU per idle node",
            row.formed.as_secs_f64(),
            row.apply.as_secs_f64() * 1e3,
            row.discovered,
            row.listed,
            row.rss_per_node,
            row.anon_per_node,
            row.cpu_per_node
        );
        rows.push(row);
    }
    let mut table = String::from(
        "| nodes | formed (every node heard every other) s | nodes heard: least / median | 3-replica apply through node 0 ms | discovery shows 3 providers (sampled nodes) | list shows it (nodes) | RSS per node MiB | of which anon MiB | idle CPU per node | threads |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &rows {
        let sampled = r.nodes.div_ceil((r.nodes / 10).max(1));
        table.push_str(&format!(
            "| {} | {} | {} / {} | {:.0} | {}/{} | {}/{} | {:.2} | {:.2} | {:.2} % | {} |\n",
            r.nodes,
            if r.least_heard >= r.nodes {
                format!("{:.1}", r.formed.as_secs_f64())
            } else {
                format!("not within {:.0}", r.formed.as_secs_f64())
            },
            r.least_heard,
            r.median_heard,
            r.apply.as_secs_f64() * 1e3,
            r.discovered,
            sampled,
            r.listed,
            r.nodes,
            r.rss_per_node,
            r.anon_per_node,
            r.cpu_per_node,
            r.threads
        ));
    }
    let body = format!(
        "In-process nodes (`mesh_node::testing::TestNet`: one process, one tokio runtime on {} cores, each node with its own\n\
         libp2p swarm on 127.0.0.1, sled store, mock engine and Unix-socket API), bootstrapped to node 0, meshd's default\n\
         heartbeats (5 s) and provider TTL (60 s). Formed: from the first start until every node has a fresh heartbeat\n\
         from every other. Memory: the process's growth divided by the node count (code is shared, so this is the\n\
         per-node cost of a node's own state); CPU: the process's CPU time over 10 s once formed, per node. Release build.\n\n{table}\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    print!("{body}");
    mesh_node::testing::update_benchmark_section("scale", &body).unwrap();
}
