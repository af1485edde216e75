//! Foundation benchmark: parse+select per manifest, and apply→Running through the local API
//! (Unix socket) of one node with the mock engine. Writes its figures into
//! `docs/benchmarks.md` between the `foundation` markers.
//!
//! Run: `cargo bench -p mesh-node --bench foundation` (set `MESH_BENCH_APPLIES` to change the
//! number of applies, default 2000).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mesh_node::testing::TestNode;
use mesh_protocol::api::ApplyRequest;
use mesh_protocol::WorkloadKind;
use mesh_runtime::{select, Candidate, Policy};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn candidates() -> Vec<Candidate> {
    let all: Vec<WorkloadKind> = WorkloadKind::ALL.to_vec();
    ["podman", "docker", "wasm", "mock"]
        .iter()
        .map(|n| Candidate {
            name: n.to_string(),
            healthy: true,
            detail: String::new(),
            kinds: all
                .iter()
                .copied()
                .filter(|k| *k != WorkloadKind::VirtualMachine)
                .collect(),
        })
        .collect()
}

fn manifests() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [
        "testdata/real-world/k8s",
        "testdata/real-world/compose",
        "examples",
    ] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir)) {
            files.extend(rd.filter_map(|e| e.ok().map(|e| e.path())));
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn bench_parse_select() -> String {
    let engines = candidates();
    let policy = Policy::default();
    let mut rows = String::from(
        "| manifest | bytes | workloads | p50 µs | p99 µs |\n|---|---:|---:|---:|---:|\n",
    );
    for (name, bytes) in manifests() {
        let opts = mesh_manifests::ParseOptions {
            default_name: Some("bench".into()),
            ..Default::default()
        };
        let Ok(specs) = mesh_manifests::parse(&bytes, &opts) else {
            continue;
        };
        let iterations = 2000;
        let mut samples = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t = Instant::now();
            let specs = mesh_manifests::parse(&bytes, &opts).expect("parsed before");
            for s in &specs {
                std::hint::black_box(select(s, &engines, &policy).ok());
            }
            samples.push(t.elapsed());
        }
        samples.sort();
        rows.push_str(&format!(
            "| {name} | {} | {} | {} | {} |\n",
            bytes.len(),
            specs.len(),
            us(percentile(&samples, 0.5)),
            us(percentile(&samples, 0.99))
        ));
    }
    rows
}

/// `n` applies of new Pods, one after another, on a node whose monitor polls every `monitor`;
/// unless `keep`, each is deleted after its apply (not timed), so the node holds one at most.
async fn bench_apply(n: usize, monitor: Duration, keep: bool) -> String {
    let node = TestNode::start_with(|c| c.monitor_period = monitor).await;
    let client = node.client();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let manifest = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bench-{i}\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n"
        );
        let req = ApplyRequest {
            manifest,
            ..Default::default()
        };
        let t = Instant::now();
        let answer = client.post("/deployments", &req).await.expect("apply");
        samples.push(t.elapsed());
        assert!(answer.status.is_success(), "{}", answer.error_message());
        if !keep {
            let _: serde_json::Value = client
                .delete(&format!("/deployments/bench-{i}"))
                .await
                .expect("delete");
        }
    }
    node.stop().await;
    let total: Duration = samples.iter().sum();
    samples.sort();
    format!(
        "| {} | {} | {n} | {} | {} | {} | {} |\n",
        humantime::format_duration(monitor),
        if keep {
            format!("grows to {n}")
        } else {
            "1".to_string()
        },
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(total / n as u32),
        ms(*samples.last().unwrap()),
    )
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores, {cpu}")
}

fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful: run briefly then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("MESH_BENCH_APPLIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 20 } else { 2000 });
    let parse = bench_parse_select();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // meshd's default monitor period (1 s), and the test harness's (20 ms), side by side: the
    // monitor looks at every workload each period, so with thousands of them a short period
    // competes with the applies (docs/benchmarks.md, "Profiles").
    let mut apply = String::from(
        "| monitor every | workloads held | applies | p50 ms | p99 ms | mean ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (monitor, keep) in [
        (Duration::from_secs(1), true),
        (Duration::from_millis(20), true),
        (Duration::from_secs(1), false),
    ] {
        apply.push_str(&runtime.block_on(bench_apply(n, monitor, keep)));
    }
    let body = format!(
        "Measured {} on {} (`cargo bench -p mesh-node --bench foundation`, release build).\n\n\
         ### Parse + engine selection, per manifest\n\n\
         Whole file: bytes → every `WorkloadSpec` (sealed with its SHA-256 version) → engine selected for each.\n\n{parse}\n\
         ### apply → Running, one node, mock engine, local API over the Unix socket\n\n\
         Each apply is a new Pod; the time is the whole `POST /deployments` round trip, which answers\n\
         only after the lifecycle reached Running (intent and handle flushed to sled on the way). Two nodes in one run:\n\
         one at meshd's default monitor period, one at the test harness's 20 ms (\"Profiles\" below says why); and a\n\
         third at the default period whose workloads are deleted after each apply (not timed), so it holds one at most.\n\n{apply}\n",
        today(),
        machine()
    );
    print!("{body}");
    if quick {
        println!("(quick run: docs/benchmarks.md not updated)");
        return;
    }
    let doc = mesh_node::testing::update_benchmark_section("foundation", &body).unwrap();
    println!("updated {}", doc.display());
}
