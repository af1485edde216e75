//! Mesh benchmark on real `meshd` processes (mock engine, loopback), at several mesh sizes:
//! apply→Running on a remote node, discovery latency, time until a new provider is visible
//! from every node, and resident memory of an idle `meshd`. Writes its figures into
//! `docs/benchmarks.md` between the `mesh` markers.
//!
//! Run: `cargo bench -p mesh-node --bench mesh` (`MESH_BENCH_SIZES=5,10` to choose sizes;
//! `MESH_BENCH_MESHD=PATH` and `MESH_BENCH_TRUST=file|any|none` to run another `meshd`).

#![allow(clippy::unwrap_used)] // a bench: a panic is the failure report

mod mesh_trace;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use futures::future::join_all;
use mesh_node::client::{Client, Target};
use mesh_node::testnet;
use mesh_protocol::api::{ApplyRequest, ApplyResponse};
use mesh_protocol::wire::{NodeInfo, Provider};
use support::{signed, user, wait, Down};

/// When each node first listed the provider, in a line: the slowest node (its index), it
/// and the next two, and the median node.
struct Late {
    slowest: usize,
    top: [Duration; 3],
    median: Duration,
}

impl std::fmt::Display for Late {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node {} at {} ms, the next two at {} and {} ms; the median node at {} ms",
            self.slowest,
            ms(self.top[0]),
            ms(self.top[1]),
            ms(self.top[2]),
            ms(self.median)
        )
    }
}

fn lateness(each: &[Duration]) -> Late {
    let slowest = (0..each.len()).max_by_key(|&i| each[i]).unwrap_or(0);
    let mut sorted = each.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let at = |i: usize| sorted.get(i).copied().unwrap_or_default();
    Late {
        slowest,
        top: [at(0), at(1), at(2)],
        median: at(sorted.len() / 2),
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[(((sorted.len() as f64 - 1.0) * p).round() as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// A `/proc/PID/status` field of a node process in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    support::status_kib(&pid.to_string(), field)
}

/// Established TCP connections of a process: its socket inodes that `/proc/PID/net/tcp` lists
/// in state 01.
fn tcp_connections(pid: u32) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
        .map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.get(3) == Some(&"01") && f.get(9).is_some_and(|i| inodes.contains(*i))
                })
                .count()
        })
        .sum()
}

/// CPU time (user + system) a process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may contain spaces) start after ')'.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// Quiet time before idle memory and CPU are sampled: connections opened while the mesh
/// formed (bootstrap lookups, first announcements) close once unused for the idle timeout
/// (30 s), counted every 10 s. Sampling earlier measures the start-up, not an idle node.
const SETTLE: Duration = Duration::from_secs(45);
/// Window over which idle CPU is measured.
const CPU_WINDOW: Duration = Duration::from_secs(10);

/// How the nodes trust the bench's user (`MESH_BENCH_TRUST`): `file` (default: a testnet trust
/// file with its key), `any` (`--trust-any`), or `none` (no trust flag: a `meshd` from before
/// trust existed, given with `MESH_BENCH_MESHD`, for a side-by-side run).
fn trust_mode() -> String {
    std::env::var("MESH_BENCH_TRUST").unwrap_or_else(|_| "file".into())
}

/// A one-pod apply, signed by the bench's user (a new workload: revision 1).
fn pod(name: &str) -> ApplyRequest {
    signed(
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n"
        ),
        None,
    )
}

struct Row {
    n: usize,
    apply: Vec<Duration>,
    discover: Vec<Duration>,
    /// Discovery forced through the DHT (`?source=dht`).
    discover_dht: Vec<Duration>,
    visible: Vec<Duration>,
    /// Per apply, which node saw the provider last and how the others did.
    lates: Vec<Late>,
    rss_mean_kib: u64,
    rss_max_kib: u64,
    anon_mean_kib: u64,
    file_mean_kib: u64,
    /// Idle CPU per node, percent of one core.
    cpu_percent: f64,
    /// CPU time of every node together during the applies, in cores (of the machine's).
    apply_cores: f64,
    /// Established connections per idle node: mean and max.
    connections_mean: f64,
    connections_max: usize,
    /// Milliseconds per apply step (`MESH_BENCH_TRACE`), per step.
    trace: Vec<Vec<f64>>,
}

async fn measure(n: usize, meshd: &Path, trace: bool) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let opts = testnet::Options {
        dir: dir.path().to_path_buf(),
        nodes: n,
        engines: Some("mock".to_string()),
        meshd: meshd.to_path_buf(),
        extra_args: {
            let mut args = if trace {
                mesh_trace::args()
            } else {
                vec!["--log".into(), "warn".into()]
            };
            if trust_mode() == "any" {
                args.push("--trust-any".into());
            }
            args
        },
        // The entry node runs nothing, so every apply lands on a remote node.
        first_engines: Some("none".to_string()),
        trust_key: (trust_mode() == "file").then(|| user().public().to_peer_id()),
    };
    let net = tokio::task::spawn_blocking(move || testnet::up(&opts))
        .await
        .unwrap()
        .unwrap();
    // Stops the testnet even when a measurement panics: no meshd outlives the bench.
    let down = Down(dir.path().to_path_buf());
    let clients: Vec<Client> = net
        .nodes
        .iter()
        .map(|n| Client::new(Target::Unix(n.api_socket.clone())))
        .collect();
    let entry = &clients[0];
    wait(
        "the entry node to know every capable node",
        Duration::from_secs(120),
        || async {
            let nodes: Vec<NodeInfo> = entry.get("/nodes?engine=mock").await.ok()?;
            (nodes.len() + 1 >= n).then_some(())
        },
    )
    .await;
    // Idle memory and CPU: connected, settled, no workload yet.
    tokio::time::sleep(SETTLE).await;
    let ticks: u64 = net.nodes.iter().map(|n| cpu_ticks(n.pid)).sum();
    tokio::time::sleep(CPU_WINDOW).await;
    let ticks = net.nodes.iter().map(|n| cpu_ticks(n.pid)).sum::<u64>() - ticks;
    // Clock ticks are 1/100 s on Linux.
    let cpu_percent = ticks as f64 / CPU_WINDOW.as_secs_f64() / n as f64;
    let rss: Vec<u64> = net
        .nodes
        .iter()
        .map(|n| status_kib(n.pid, "VmRSS:"))
        .collect();
    let connections: Vec<usize> = net.nodes.iter().map(|n| tcp_connections(n.pid)).collect();
    let anon: u64 = net
        .nodes
        .iter()
        .map(|n| status_kib(n.pid, "RssAnon:"))
        .sum();
    let file: u64 = net
        .nodes
        .iter()
        .map(|n| status_kib(n.pid, "RssFile:"))
        .sum();

    let applies = 20;
    let mut apply = Vec::new();
    let mut visible = Vec::new();
    let mut lates = Vec::new();
    // CPU ticks of every node while applies are in flight: how many cores the mesh keeps busy
    // meanwhile (near the machine's count: an apply waits for CPU, not for the network).
    let (mut busy_ticks, mut applying) = (0u64, Duration::ZERO);
    let mut totals = std::collections::BTreeMap::new();
    for i in 0..applies {
        let name = format!("b{i}");
        let req = pod(&name);
        let ticks: u64 = net.nodes.iter().map(|n| cpu_ticks(n.pid)).sum();
        let t = Instant::now();
        let answer = entry.post("/deployments", &req).await.unwrap();
        apply.push(t.elapsed());
        applying += t.elapsed();
        busy_ticks += net.nodes.iter().map(|n| cpu_ticks(n.pid)).sum::<u64>() - ticks;
        let resp: ApplyResponse = serde_json::from_slice(&answer.body).unwrap();
        if let Some(cid) = &resp.correlation {
            totals.insert(cid.clone(), apply[apply.len() - 1].as_secs_f64() * 1e3);
        }
        assert!(
            answer.status.is_success(),
            "{:?}",
            resp.workloads[0].deployment.error
        );
        assert_ne!(
            resp.workloads[0].deployment.replicas[0].node,
            net.nodes[0].peer_id
        );
        // From the answer to the moment the last node sees the provider; each node's own time
        // is kept to tell one late node from a late mesh.
        let t = Instant::now();
        let path = format!("/discover/{name}");
        let each: Vec<Duration> = join_all(clients.iter().map(|c| {
            let path = path.clone();
            async move {
                wait(
                    "the provider to be visible",
                    Duration::from_secs(30),
                    || async {
                        let p: Vec<Provider> = c.get(&path).await.ok()?;
                        (!p.is_empty()).then(|| t.elapsed())
                    },
                )
                .await
            }
        }))
        .await;
        visible.push(t.elapsed());
        let late = lateness(&each);
        if std::env::var_os("MESH_BENCH_LATE").is_some() {
            eprintln!("{n} nodes, apply {i}: {late}");
        }
        lates.push(late);
    }
    let mut discover = Vec::new();
    let mut discover_dht = Vec::new();
    for i in 0..100usize {
        let c = &clients[(i * 7 + 1) % n];
        let path = format!("/discover/b{}", i % applies);
        let t = Instant::now();
        let p: Vec<Provider> = c.get(&path).await.unwrap();
        discover.push(t.elapsed());
        assert_eq!(p.len(), 1);
        let t = Instant::now();
        let p: Vec<Provider> = c.get(&format!("{path}?source=dht")).await.unwrap();
        discover_dht.push(t.elapsed());
        assert_eq!(p.len(), 1);
    }
    let trace = if trace {
        let dirs: Vec<&Path> = net
            .nodes
            .iter()
            .filter_map(|n| n.api_socket.parent())
            .collect();
        mesh_trace::steps(&dirs, &totals)
    } else {
        Vec::new()
    };
    tokio::task::spawn_blocking(move || drop(down))
        .await
        .unwrap();
    for v in [&mut apply, &mut discover, &mut discover_dht, &mut visible] {
        v.sort();
    }
    Row {
        n,
        apply,
        discover,
        discover_dht,
        visible,
        lates,
        rss_mean_kib: rss.iter().sum::<u64>() / rss.len() as u64,
        rss_max_kib: rss.iter().copied().max().unwrap_or(0),
        anon_mean_kib: anon / n as u64,
        file_mean_kib: file / n as u64,
        cpu_percent,
        apply_cores: busy_ticks as f64 / 100.0 / applying.as_secs_f64(),
        connections_mean: connections.iter().sum::<usize>() as f64 / connections.len() as f64,
        connections_max: connections.iter().copied().max().unwrap_or(0),
        trace,
    }
}

/// `MESH_BENCH_TRACE=1`: at the largest size, a second, traced run (the nodes log their apply
/// steps as JSON and the bench times them); `MESH_BENCH_TRACE=25,50`: at those sizes.
fn traced(n: usize, sizes: &[usize]) -> bool {
    match std::env::var("MESH_BENCH_TRACE").as_deref() {
        Ok("1") => sizes.iter().max() == Some(&n),
        Ok(list) => list.split(',').any(|s| s.trim().parse() == Ok(n)),
        Err(_) => false,
    }
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = std::env::var("MESH_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| if quick { vec![3] } else { vec![5, 10, 25, 50] });
    let built = std::path::PathBuf::from(env!("CARGO_BIN_EXE_meshd"));
    let meshd = std::env::var_os("MESH_BENCH_MESHD").map_or(built, std::path::PathBuf::from);
    let meshd = meshd.as_path();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut table = String::from(
        "| nodes | apply→Running remote p50 / p99 ms | discovery p50 / p99 ms | discovery through the DHT p50 / p99 ms | visible everywhere p50 / max ms | idle RSS mean / max MiB | of which anon / file (mean) MiB | idle CPU per node | connections per idle node mean / max | cores busy during applies |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut traces = String::new();
    // (connections, nodes, anon KiB) per size: what a connection and a peer of the mesh cost
    // in a node's own memory.
    let mut memory: Vec<[f64; 3]> = Vec::new();
    // Per size, the apply whose provider took longest to be seen everywhere: by whom.
    let mut worst = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    for &n in &sizes {
        eprintln!("mesh bench: {n} nodes");
        let r = rt.block_on(measure(n, meshd, false));
        let row = format!(
            "| {} | {} / {} | {} / {} | {} / {} | {} / {} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} % | {:.0} / {} | {:.2} |\n",
            r.n,
            ms(pct(&r.apply, 0.5)),
            ms(pct(&r.apply, 0.99)),
            ms(pct(&r.discover, 0.5)),
            ms(pct(&r.discover, 0.99)),
            ms(pct(&r.discover_dht, 0.5)),
            ms(pct(&r.discover_dht, 0.99)),
            ms(pct(&r.visible, 0.5)),
            ms(*r.visible.last().unwrap()),
            r.rss_mean_kib as f64 / 1024.0,
            r.rss_max_kib as f64 / 1024.0,
            r.anon_mean_kib as f64 / 1024.0,
            r.file_mean_kib as f64 / 1024.0,
            r.cpu_percent,
            r.connections_mean,
            r.connections_max,
            r.apply_cores,
        );
        eprint!("{row}");
        table.push_str(&row);
        memory.push([r.connections_mean, n as f64, r.anon_mean_kib as f64]);
        if let Some(w) = r.lates.iter().max_by_key(|l| l.top[0]) {
            worst.push_str(&format!("| {n} | {w} |\n"));
        }
        if traced(n, &sizes) {
            eprintln!("mesh bench: {n} nodes, traced");
            let r = rt.block_on(measure(n, meshd, true));
            let mut t = format!(
                "\nWhere a remote apply's time goes at {} nodes: a second mesh, whose nodes log JSON at `mesh_node::mesh=debug`\n\
                 (`MESH_BENCH_TRACE`), {} applies timed from their lines; apply p50 {} ms in this traced run, {:.2} cores busy:\n\n\
                 | step | p50 ms | max ms |\n|---|---:|---:|\n",
                r.n,
                r.trace[0].len(),
                ms(pct(&r.apply, 0.5)),
                r.apply_cores,
            );
            for (name, mut v) in mesh_trace::STEPS.iter().zip(r.trace) {
                v.sort_by(f64::total_cmp);
                if let (Some(mid), Some(max)) = (v.get(v.len() / 2), v.last()) {
                    t.push_str(&format!("| {name} | {mid:.1} | {max:.1} |\n"));
                }
            }
            eprint!("{t}");
            traces.push_str(&t);
        }
    }
    if let Some([base, per_connection, per_node]) = fit(&memory) {
        table.push_str(&format!(
            "\nAn idle node's own memory (anon) as base + a × connections + b × nodes of the mesh, least squares \
             over the sizes above: base {:.1} MiB, {per_connection:.0} KiB per connection, {per_node:.0} KiB per node.\n",
            base / 1024.0
        ));
    }
    if !worst.is_empty() {
        table.push_str(&format!(
            "\nThe apply of each size whose provider took longest to be visible everywhere: when each node first \
             listed it (nodes are polled every 20 ms, all at once):\n\n| nodes | last to see it |\n|---:|---|\n{worst}"
        ));
    }
    let body = format!(
        "Real `meshd` processes (release build) on 127.0.0.1, started by `testnet::up`; node 0 runs no engine so every\n\
         apply lands on a remote node (mock engine). Per size: 20 applies through node 0's local API (time of the whole\n\
         `POST /deployments`, which answers when the remote replica is Running and announced); after each, the time until\n\
         every node's `/discover` lists the provider (all nodes polled concurrently, a node that does not see it yet again\n\
         20 ms later); 100 discoveries from varying nodes, each also forced through the DHT (`?source=dht`: `get_providers`\n\
         and the provider's record, merged with gossip); RSS of every `meshd` and its CPU use over 10 s, once the mesh formed\n\
         and then stayed quiet for 45 s, before any workload; the CPU time of all nodes together while applies were in\n\
         flight, divided by their wall time (cores busy: the machine has {cores}). RSS splits into anonymous memory (the node's own) and\n\
         file-backed pages (the binary's code, shared by every `meshd` on the machine). Defaults throughout:\n\
         heartbeats every 5 s, connections unused for 30 s closed (and trimmed to 24 above 32), routing table refreshed every\n\
         5 min, provider TTL 60 s. Release build (`opt-level = \"s\"`, crypto and sled at 3, fat LTO). {cores} cores.\n\n{table}{traces}\n",
    );
    print!("{body}");
    if quick {
        println!("(quick run: docs/benchmarks.md not updated)");
        return;
    }
    mesh_node::testing::update_benchmark_section("mesh", &body).unwrap();
}

/// Least squares of y = c0 + c1 x1 + c2 x2 through `points` ([x1, x2, y]): [c0, c1, c2], by
/// Cramer's rule on the normal equations, when they have one solution.
fn fit(points: &[[f64; 3]]) -> Option<[f64; 3]> {
    let rows: Vec<[f64; 3]> = points.iter().map(|p| [1.0, p[0], p[1]]).collect();
    let mut m = [[0.0; 3]; 3];
    let mut v = [0.0; 3];
    for (r, p) in rows.iter().zip(points) {
        for i in 0..3 {
            v[i] += r[i] * p[2];
            for j in 0..3 {
                m[i][j] += r[i] * r[j];
            }
        }
    }
    let det = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(&m);
    if points.len() < 3 || d.abs() < 1e-9 {
        return None;
    }
    let mut out = [0.0; 3];
    for (i, o) in out.iter_mut().enumerate() {
        let mut mi = m;
        for (row, value) in mi.iter_mut().zip(v) {
            row[i] = value;
        }
        *o = det(&mi) / d;
    }
    Some(out)
}
