//! Scale: many in-process nodes (the test harness's `TestNet`, one tokio runtime, each node
//! with its own libp2p swarm on loopback, sled store, mock engine and Unix-socket API) form a
//! mesh in which apply, discovery and `list` work. Reports how long the mesh takes to form
//! (every node has heard every other's heartbeat), memory per node (the process's resident
//! and anonymous memory divided by the node count) and CPU per idle node, and writes them into
//! `docs/benchmarks.md` between the `scale` markers.
//!
//! Run: `cargo bench -p mesh-node --bench scale` (`MESH_BENCH_SCALE=200`, the default;
//! several sizes comma-separated; `RUST_LOG=mesh_node::mesh=info` logs the nodes on stderr:
//! which peers turn suspect or dead, and why).

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

/// How long the bench waits for the 3-replica apply's answer.
const APPLY_DEADLINE: Duration = Duration::from_secs(180);
/// How long it waits for one node's discovery or list (an unanswered one counts as not showing
/// the workload).
const ASK_DEADLINE: Duration = Duration::from_secs(30);

/// How long the idle window lasts (`MESH_BENCH_IDLE_SECONDS`, 10 by default).
fn idle_seconds() -> u64 {
    std::env::var("MESH_BENCH_IDLE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
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
    /// At the end of formation: connected peers and gossip mesh peers, least / median, and
    /// the nodes with no gossip mesh peer.
    connections: (usize, usize),
    gossip_mesh: (usize, usize),
    no_gossip_mesh: usize,
    /// Nodes whose network task did not answer those counts within a second.
    unanswered: usize,
    /// How long the apply took, or why it failed.
    apply: Result<Duration, String>,
    discovered: usize,
    listed: usize,
    rss_per_node: f64,
    anon_per_node: f64,
    cpu_per_node: f64,
    /// Connection churn over the idle window, per node and second: peers that closed their
    /// last connection with the node, and of those the ones that closed it without notice.
    closes_per_node: f64,
    unannounced_per_node: f64,
    threads: u64,
    max_connections: u32,
    /// Open descriptors per node once formed (both ends of an in-process connection count).
    fds_per_node: f64,
}

/// Descriptors a node holds besides its connections: its store's files, its listeners (TCP,
/// QUIC, the API's Unix socket) and its engine's directory, with room to spare.
const FDS_BESIDE_CONNECTIONS: u64 = 10;

async fn measure(n: usize, fd_limit: u64) -> Row {
    // Both ends of each connection are in this process: each node may hold as many connections
    // as its share of the descriptor limit allows (meshd's own limit, 512, is for one node per
    // process). The connection manager keeps nodes near 24–32 anyway; this is the cap.
    let max_connections = (fd_limit.saturating_sub(n as u64 * FDS_BESIDE_CONNECTIONS)
        / (2 * n as u64))
        .clamp(8, u64::from(mesh_node::net::MAX_CONNECTIONS)) as u32;
    println!("{n} nodes: at most {max_connections} connections each");
    let before_anon = status_kib("RssAnon:");
    let before_rss = status_kib("VmRSS:");
    let started = Instant::now();
    // meshd's defaults for heartbeats (5 s up to 50 nodes, longer beyond): every node receives
    // every node's heartbeat.
    // Bootstrapped to one seed per 25 nodes in turn: a seed is dialled by fewer nodes at once
    // than its connection limit.
    let net = TestNet::start_seeded(n, n.div_ceil(25), |_, c| {
        c.mesh.heartbeat_interval = Duration::from_secs(5);
        c.monitor_period = Duration::from_secs(1);
        c.max_connections = max_connections;
    })
    .await;
    println!(
        "{n} nodes: started in {:.1} s",
        started.elapsed().as_secs_f64()
    );
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
            .map(|node| node.daemon().mesh.peers().fresh_ids(now).len() + 1)
            .collect();
        heard.sort_unstable();
        if heard[0] >= n || started.elapsed() > budget {
            break heard;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let formed = started.elapsed();
    let (least_heard, median_heard) = (heard[0], heard[heard.len() / 2]);
    // What the overlay looks like at that moment (the next step after a mesh that did not
    // form: which nodes are cut off, and from what).
    // Each count is a question to the node's network task: a node whose task is far behind
    // (a mesh in a storm) is left out after a second rather than holding up the report.
    let (mut connections, mut gossip_mesh) = (Vec::new(), Vec::new());
    let mut unanswered = 0;
    for node in &net.nodes {
        let net = node.daemon().mesh.net();
        let ask = async { (net.connected_peers().await, net.gossip_mesh_peers().await) };
        match tokio::time::timeout(Duration::from_secs(1), ask).await {
            Ok((c, g)) => {
                connections.push(c.len());
                gossip_mesh.push(g.len());
            }
            Err(_) => unanswered += 1,
        }
    }
    let no_gossip_mesh = gossip_mesh.iter().filter(|m| **m == 0).count();
    let least_median = |mut v: Vec<usize>| {
        v.sort_unstable();
        (
            v.first().copied().unwrap_or(0),
            v.get(v.len() / 2).copied().unwrap_or(0),
        )
    };
    let (connections, gossip_mesh) = (least_median(connections), least_median(gossip_mesh));
    println!(
        "{n} nodes: connections least/median {connections:?}, gossip mesh peers {gossip_mesh:?}, {no_gossip_mesh} nodes with none, {unanswered} nodes did not answer within 1 s"
    );

    // Idle: memory, CPU and connection churn over `MESH_BENCH_IDLE_SECONDS` (10 by default).
    let idle = Duration::from_secs(idle_seconds());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let closes = |announced: bool| -> u64 {
        net.nodes
            .iter()
            .map(|node| node.daemon().node.metrics().peer_closes(announced))
            .sum()
    };
    let (announced0, unannounced0) = (closes(true), closes(false));
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    tokio::time::sleep(idle).await;
    let idle_secs = t0.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu0).as_secs_f64() / idle_secs;
    let unannounced = (closes(false) - unannounced0) as f64 / idle_secs / n as f64;
    let closes_per_node = unannounced + (closes(true) - announced0) as f64 / idle_secs / n as f64;
    let rss = status_kib("VmRSS:").saturating_sub(before_rss);
    let anon = status_kib("RssAnon:").saturating_sub(before_anon);
    let threads = status_kib("Threads:");
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());

    // Apply a 3-replica Pod through node 0; then every node's list and a sample of nodes'
    // discovery must show it.
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: scale\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n";
    let req = ApplyRequest {
        manifest: manifest.to_string(),
        replicas: Some(3),
        ..Default::default()
    };
    // Bounded: in a mesh that did not form, one run's apply hung for 14 minutes.
    let t = Instant::now();
    let answer = tokio::time::timeout(
        APPLY_DEADLINE,
        net.node(0).client().post("/deployments", &req),
    )
    .await
    .map(Result::unwrap);
    let apply = match answer {
        Err(_) => Err(format!("no answer within {} s", APPLY_DEADLINE.as_secs())),
        Ok(answer) if answer.status.is_success() => Ok(t.elapsed()),
        Ok(answer) => {
            // The replicas' own errors say why; the whole answer lists every candidate.
            let replicas: Option<Vec<String>> =
                serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .ok()
                    .and_then(|v| {
                        v["workloads"][0]["deployment"]["replicas"]
                            .as_array()
                            .map(|rs| {
                                rs.iter()
                                    .map(|r| r["error"].as_str().unwrap_or("ok").to_string())
                                    .collect()
                            })
                    });
            Err(replicas.map_or_else(|| answer.error_message(), |r| r.join("; ")))
        }
    };
    if let Err(e) = &apply {
        println!("{n} nodes: the apply failed: {e}");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut discovered, mut listed);
    loop {
        discovered = 0;
        for i in (0..n).step_by((n / 10).max(1)) {
            let client = net.node(i).client();
            let ask = client.get("/discover/scale");
            let providers: Vec<serde_json::Value> = tokio::time::timeout(ASK_DEADLINE, ask)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            discovered += usize::from(providers.len() == 3);
        }
        listed = 0;
        for node in &net.nodes {
            // Each list asks the mesh: past the deadline, the remaining nodes count as not
            // listing it rather than the round running on for minutes.
            if Instant::now() > deadline {
                break;
            }
            let client = node.client();
            let ask = client.get("/deployments");
            let list: Vec<mesh_protocol::api::Deployment> = tokio::time::timeout(ASK_DEADLINE, ask)
                .await
                .map_or_else(|_| Vec::new(), Result::unwrap);
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
        connections,
        gossip_mesh,
        no_gossip_mesh,
        unanswered,
        apply,
        discovered,
        listed,
        rss_per_node: mib(rss) / n as f64,
        anon_per_node: mib(anon) / n as f64,
        cpu_per_node: cpu * 100.0 / n as f64,
        closes_per_node,
        unannounced_per_node: unannounced,
        threads,
        fds_per_node: fds as f64 / n as f64,
        max_connections,
    }
}

/// An apply's time in ms, or its failure (pipes escaped for the table).
fn apply_cell(apply: &Result<Duration, String>) -> String {
    match apply {
        Ok(took) => format!("{:.0}", took.as_secs_f64() * 1e3),
        Err(e) => {
            let short: String = e.chars().take(200).collect();
            format!("failed: {}…", short.replace('|', "\\|"))
        }
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
    // Both ends of every connection are in this process, beside each node's store and sockets:
    // 200 nodes need more descriptors than a shell's usual limit. As root the hard limit rises
    // to the kernel's maximum; otherwise the soft limit to the hard one.
    use mesh_node::daemon::limits;
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if limits::set_open_files(nr_open, nr_open).is_err() {
        limits::raise_open_files().unwrap();
    }
    let fd_limit = limits::open_files().unwrap().0;
    println!("open-file limit {fd_limit}");
    // `RUST_LOG` set: the nodes' logs on stderr (which peers turn suspect, and why).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(mesh_node::daemon::log_filter("warn"))
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for n in sizes {
        let row = rt.block_on(measure(n, fd_limit));
        println!(
            "{n} nodes: formed in {:.1} s, apply {}, discovered on {} sampled nodes, listed on {}, {:.2} MiB RSS / {:.2} MiB anon per node, {:.2} % CPU per idle node, {:.2} peers closing per node and second ({:.2} without notice)",
            row.formed.as_secs_f64(),
            apply_cell(&row.apply),
            row.discovered,
            row.listed,
            row.rss_per_node,
            row.anon_per_node,
            row.cpu_per_node,
            row.closes_per_node,
            row.unannounced_per_node
        );
        rows.push(row);
    }
    let mut table = String::from(
        "| nodes | formed (every node heard every other) s | nodes heard: least / median | connections: least / median | gossip mesh peers: least / median (nodes with none) | 3-replica apply through node 0 ms | discovery shows 3 providers (sampled nodes) | list shows it (nodes) | RSS per node MiB | of which anon MiB | idle CPU per node | idle churn: peers closing per node and s (without notice) | threads | open files per node | connections per node at most |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &rows {
        let sampled = r.nodes.div_ceil((r.nodes / 10).max(1));
        table.push_str(&format!(
            "| {} | {} | {} / {} | {} / {}{} | {} / {} ({}) | {} | {}/{} | {}/{} | {:.2} | {:.2} | {:.2} % | {:.2} ({:.2}) | {} | {:.0} | {} |\n",
            r.nodes,
            if r.least_heard >= r.nodes {
                format!("{:.1}", r.formed.as_secs_f64())
            } else {
                format!("not within {:.0}", r.formed.as_secs_f64())
            },
            r.least_heard,
            r.median_heard,
            r.connections.0,
            r.connections.1,
            if r.unanswered > 0 {
                format!(" ({} nodes did not answer in 1 s)", r.unanswered)
            } else {
                String::new()
            },
            r.gossip_mesh.0,
            r.gossip_mesh.1,
            r.no_gossip_mesh,
            apply_cell(&r.apply),
            r.discovered,
            sampled,
            r.listed,
            r.nodes,
            r.rss_per_node,
            r.anon_per_node,
            r.cpu_per_node,
            r.closes_per_node,
            r.unannounced_per_node,
            r.threads,
            r.fds_per_node,
            r.max_connections
        ));
    }
    let body = format!(
        "In-process nodes (`mesh_node::testing::TestNet`: one process, one tokio runtime on {} cores, each node with its own\n\
         libp2p swarm on 127.0.0.1, sled store, mock engine and Unix-socket API), meshd's default\n\
         heartbeats (5 s, growing with the mesh beyond 50 nodes: 10 s at 100) and provider TTL (60 s), bootstrapped to one seed node per 25 nodes in turn. Formed: from the first start until every node has a fresh heartbeat\n\
         from every other; the connections and gossip mesh peers of each node are counted at that moment. Memory: the process's growth divided by the node count (code is shared, so this is the\n\
         per-node cost of a node's own state); CPU: the process's CPU time over {idle_secs} s once formed, per node; churn: over the same window, the peers that closed their last connection with a node (with the notice of its connection manager, or without, when the node suspects and probes them). Open files:\n\
         the process's descriptors once formed, per node (both ends of each connection are in the process), under a\n\
         limit of {fd_limit} (the hard limit here; raising it needs `CAP_SYS_RESOURCE`); so each node may hold at most its\n\
         share of connections (`max_connections`, last column; meshd's default is 512). Release build.\n\n{table}\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        idle_secs = idle_seconds(),
    );
    print!("{body}");
    mesh_node::testing::update_benchmark_section("scale", &body).unwrap();
}
