//! Start-to-exit latency of a hello-world Function through the wasm engine (runner process
//! included), cold (compiled on start) and warm (compile cache hit), against a baseline that
//! runs the same module in-process with the wasmtime API (no runner, module compiled once).
//!
//! `cargo build --release -p mesh-node && cargo bench -p mesh-tests --bench wasm_start`
//! (`BENCH_RUNS=N` to change the 50 runs): the runner binary must be in `target/release/`.
//! Prints p50/p99 and writes them into `docs/benchmarks.md` between the `wasm` markers.
//! It lives in `mesh-tests`, beside the multi-node tests, because its meshd rows start a node
//! and no engine crate depends on `mesh-node`.

#![allow(clippy::unwrap_used)] // bench: a panic is the failure report

#[path = "../tests/wasm_support/mod.rs"]
mod wasm_support;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_engine_wasm::guests::{function, Opts, HELLO};
use mesh_engine_wasm::protocol::Start;
use mesh_engine_wasm::runner::{self, Sink, Watch};
use mesh_engine_wasm::WasmEngine;
use mesh_runtime::InstallContext;
use mesh_runtime::{Engine, InstanceState};
use wasm_support::{runner, WAIT};

const START: &str = "<!-- wasm:start -->";
const END: &str = "<!-- wasm:end -->";

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

struct Row {
    name: &'static str,
    p50: f64,
    p99: f64,
    extra: String,
}

fn row(name: &'static str, mut samples: Vec<Duration>, extra: String) -> Row {
    samples.sort();
    let r = Row {
        name,
        p50: percentile(&samples, 0.5),
        p99: percentile(&samples, 0.99),
        extra,
    };
    println!(
        "{:<44} p50 {:>7.2} ms  p99 {:>7.2} ms  {}",
        r.name, r.p50, r.p99, r.extra
    );
    r
}

/// install → start → Exited 0, timed from `start` to the observed exit.
async fn engine_run(
    engine: &WasmEngine,
    spec: &mesh_protocol::WorkloadSpec,
) -> (Duration, f64, bool) {
    let ctx = InstallContext {
        node: "bench".to_string(),
        replica: 0,
    };
    let handle = engine.install(spec, &ctx).await.unwrap();
    let began = Instant::now();
    engine.start(&handle).await.unwrap();
    loop {
        let st = engine.status(&handle).await.unwrap();
        match st.state {
            InstanceState::Exited { code: 0 } => break,
            InstanceState::Running | InstanceState::Created => tokio::task::yield_now().await,
            other => panic!("hello world ended with {other:?}"),
        }
    }
    let took = began.elapsed();
    let info = engine.start_info(&handle).unwrap();
    engine.remove(&handle).await.unwrap();
    (took, info.compile_ms, info.cached)
}

fn clear_cache(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
}

fn in_process(runs: usize, dir: &Path) -> Vec<Duration> {
    let engine = runner::engine().unwrap();
    let bytes = wat::parse_str(HELLO).unwrap();
    let module = wasmtime::Module::new(&engine, &bytes).unwrap();
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let start = Start {
        name: "hello".into(),
        module_path: dir.join("unused"),
        digest: mesh_engine_wasm::Digest::of(&bytes),
        args: vec!["a".into()],
        env: vec![("GREETING".into(), "hi".into())],
        memory_limit_bytes: 64 * 1024 * 1024,
        timeout_ms: None,
        epoch_tick_ms: 10,
        scratch_dir: scratch,
        cache_dir: dir.join("cache"),
        log_path: None,
        status_path: None,
    };
    let watch = Watch {
        stop: Arc::new(AtomicBool::new(false)),
        timeout: None,
    };
    (0..runs)
        .map(|_| {
            let sink = Arc::new(Sink::new(None, None, None));
            let began = Instant::now();
            let ev = runner::run(&engine, &module, &start, &sink, &watch);
            let took = began.elapsed();
            assert_eq!(ev, mesh_engine_wasm::protocol::Event::Exited { code: 0 });
            took
        })
        .collect()
}

/// The 1-minute load average, to tell a quiet machine from a shared, busy one.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

fn write_doc(rows: &[Row], runs: usize, load: &str) {
    let mut s = String::new();
    writeln!(s, "{START}").unwrap();
    writeln!(s, "## WASM engine: hello world start → exit\n").unwrap();
    writeln!(
        s,
        "`cargo bench -p mesh-tests --bench wasm_start`, release build, {runs} runs each, {} cores, load average {load} when it started. \
         Engine rows time `start` (taking the spare `mesh-wasm-runner` the engine spawned in the background after \
         the previous start, its wasmtime engine made — the first run spawns one —, Start frame, compile or cache \
         load, WASI setup, the guest's run) until `status` reports Exited 0. The baseline runs the same \
         module in-process with the wasmtime API (engine and compiled module reused, a new store \
         and WASI context per run). The meshd rows go through a node (in process, its local API on a Unix \
         socket): `POST /deployments` with the module bundled as `meshctl apply` sends it, one new workload per \
         run, timed to the answer (Running) and until `GET /deployments/NAME` shows Succeeded (asked every 0.2 ms), \
         at meshd's default settings: the monitor polls every {} ms, and the exit reaches the node as an event \
         (the runner's final frame) rather than at the next poll.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        MONITOR.as_millis()
    )
    .unwrap();
    writeln!(s, "| path | p50 ms | p99 ms | notes |\n|---|---:|---:|---|").unwrap();
    for r in rows {
        writeln!(
            s,
            "| {} | {:.2} | {:.2} | {} |",
            r.name, r.p50, r.p99, r.extra
        )
        .unwrap();
    }
    let p50 = |name: &str| rows.iter().find(|r| r.name == name).map_or(0.0, |r| r.p50);
    let baseline = p50("in-process wasmtime baseline (no runner)");
    writeln!(
        s,
        "\nTarget: warm start-to-exit ≤ 10 ms including the runner process. The runner's overhead over the \
         in-process baseline (p50): {:.2} ms warm at the engine, {:.2} ms warm through meshd.",
        p50("engine, warm (compile cache hit)") - baseline,
        p50("meshd, warm: apply → Succeeded seen") - baseline,
    )
    .unwrap();
    write!(s, "{END}").unwrap();

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    let doc = match (doc.find(START), doc.find(END)) {
        (Some(a), Some(b)) if b > a => format!("{}{s}{}", &doc[..a], &doc[b + END.len()..]),
        _ => format!("{}\n\n{s}\n", doc.trim_end()),
    };
    std::fs::write(&path, doc).unwrap();
    println!("wrote {}", path.display());
}

/// Through a node: `POST /deployments` on its Unix socket with the module bundled as
/// `meshctl apply` sends it, timed to the answer (the lifecycle reached Running: validate,
/// store the module, plan, spawn the runner) and to the moment the node reports Succeeded
/// (at the default monitor period `MONITOR`: the exit arrives as an event). Each run is a new workload; `cold` empties the
/// compile cache first.
async fn node_runs(runs: usize, cold: bool) -> (Vec<Duration>, Vec<Duration>) {
    use mesh_node::client::{Client, Target};
    use mesh_protocol::api::{ApplyRequest, BundledModule, Deployment};
    let node = mesh_node::testing::TestNode::start_with(|c| {
        c.extra_engines.clear();
        c.engines = Some(vec!["wasm".into()]);
        c.wasm_runner = Some(runner());
        c.monitor_period = MONITOR;
    })
    .await;
    let client = Client::new(Target::Unix(node.daemon().socket.clone()));
    let bytes = wat::parse_str(HELLO).unwrap();
    let digest = mesh_engine_wasm::Digest::of(&bytes);
    let cache = node.dir.path().join("wasm/cache");
    let (mut answered, mut exited) = (Vec::new(), Vec::new());
    for i in 0..runs + 1 {
        let name = format!("hello-{i}");
        let req = ApplyRequest {
            manifest: format!(
                "apiVersion: beemesh.io/v1\nkind: Function\nmetadata:\n  name: {name}\nspec:\n  module: ./hello.wasm\n  args: [a]\n  env:\n    GREETING: hi\n"
            ),
            modules: vec![BundledModule {
                path: "./hello.wasm".into(),
                digest: digest.to_string(),
                bytes: Some(bytes.clone()),
                providers: Vec::new(),
            }],
            ..ApplyRequest::default()
        };
        if cold && cache.exists() {
            clear_cache(&cache);
        }
        let began = Instant::now();
        let answer = client.post("/deployments", &req).await.unwrap();
        let to_answer = began.elapsed();
        assert!(
            answer.status.is_success(),
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let path = format!("/deployments/{name}");
        loop {
            let d: Deployment = client.get(&path).await.unwrap();
            match d.phase {
                mesh_protocol::Phase::Succeeded => break,
                mesh_protocol::Phase::Failed => panic!("{d:?}"),
                _ => tokio::time::sleep(Duration::from_micros(200)).await,
            }
            assert!(began.elapsed() < WAIT, "hello world did not finish");
        }
        let to_exit = began.elapsed();
        client.delete::<Deployment>(&path).await.unwrap();
        // The first run of a warm series fills the cache.
        if cold || i > 0 {
            answered.push(to_answer);
            exited.push(to_exit);
        }
        if cold && i + 1 == runs {
            break;
        }
    }
    node.stop().await;
    (answered, exited)
}

/// The node's monitor period in the through-the-node rows: meshd's default
/// (`--monitor-interval 1s`). The exit reaches the node as an event (the runner's final frame),
/// not at the next poll.
const MONITOR: Duration = Duration::from_secs(1);

fn main() {
    let load = load_average();
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = rt.block_on(async {
        let engine = WasmEngine::new(dir.path(), runner()).unwrap();
        let digest = engine.store().put(&wat::parse_str(HELLO).unwrap()).unwrap();
        let spec = function(
            "hello",
            &digest,
            Opts {
                args: vec!["a".into()],
                env: vec![("GREETING".into(), "hi".into())],
                ..Opts::default()
            },
        );
        let mut cold = Vec::new();
        let mut cold_compile = Vec::new();
        for _ in 0..runs {
            clear_cache(engine.cache_dir());
            let (took, compile_ms, cached) = engine_run(&engine, &spec).await;
            assert!(!cached);
            cold.push(took);
            cold_compile.push(compile_ms);
        }
        let mut warm = Vec::new();
        let mut warm_compile = Vec::new();
        engine_run(&engine, &spec).await; // fill the cache
        for _ in 0..runs {
            let (took, compile_ms, cached) = engine_run(&engine, &spec).await;
            assert!(cached);
            warm.push(took);
            warm_compile.push(compile_ms);
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        vec![
            row(
                "engine, cold (compile on start)",
                cold,
                format!("compile p50 {:.2} ms", median(cold_compile)),
            ),
            row(
                "engine, warm (compile cache hit)",
                warm,
                format!("cache load p50 {:.2} ms", median(warm_compile)),
            ),
        ]
    });
    let mut rows = rows;
    let node_runs_n = runs.min(30);
    for (cold, label_answer, label_exit) in [
        (
            true,
            "meshd, cold: apply → Running answered",
            "meshd, cold: apply → Succeeded seen",
        ),
        (
            false,
            "meshd, warm: apply → Running answered",
            "meshd, warm: apply → Succeeded seen",
        ),
    ] {
        let (answered, exited) = rt.block_on(node_runs(node_runs_n, cold));
        rows.push(row(
            label_answer,
            answered,
            "local API, module bundled, one new workload per run".into(),
        ));
        rows.push(row(
            label_exit,
            exited,
            format!(
                "default settings: monitor poll every {} ms, exit by event",
                MONITOR.as_millis()
            ),
        ));
    }
    rows.push(row(
        "in-process wasmtime baseline (no runner)",
        in_process(runs, dir.path()),
        "instantiate + run only".into(),
    ));
    write_doc(&rows, runs, &load);
}
