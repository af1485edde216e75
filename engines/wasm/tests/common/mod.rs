//! Shared helpers of the wasm engine tests: WAT guests, Function specs, deploy and wait.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[allow(unused_imports)] // each test binary uses a subset of the shared guests
pub use mesh_engine_wasm::guests::*;
use mesh_engine_wasm::{Digest, WasmEngine};
use mesh_protocol::WorkloadSpec;
use mesh_runtime::{Engine, Handle, InstallContext, InstanceState, InstanceStatus, LogOptions};

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(30);

/// The runner: this crate's `runner` example (the `mesh-wasm-runner` binary is the node
/// package's), which `cargo test` builds with the tests: `target/<profile>/examples/runner`.
pub fn runner() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executables live in target/<profile>/deps");
    let runner = profile.join("examples").join("runner");
    assert!(
        runner.is_file(),
        "{} is missing: `cargo test -p mesh-engine-wasm` builds it (with --test, add \
         `cargo build -p mesh-engine-wasm --example runner` first)",
        runner.display()
    );
    runner
}

/// A fresh engine over `dir`.
pub fn engine(dir: &Path) -> WasmEngine {
    WasmEngine::new(dir, runner()).expect("engine")
}

/// Compiles WAT text and stores the module; returns its digest.
pub fn put(engine: &WasmEngine, wat_text: &str) -> Digest {
    let bytes = wat::parse_str(wat_text).expect("valid WAT");
    engine.store().put(&bytes).expect("stored")
}

pub fn ctx() -> InstallContext {
    InstallContext {
        node: "test-node".to_string(),
        replica: 0,
    }
}

/// Validate → Fetch → Prepare → Install → Start, as the controller does.
pub async fn deploy(engine: &WasmEngine, spec: &WorkloadSpec) -> Handle {
    engine.validate(spec).await.expect("validate");
    engine.fetch(spec).await.expect("fetch");
    engine.prepare(spec).await.expect("prepare");
    let handle = engine.install(spec, &ctx()).await.expect("install");
    engine.start(&handle).await.expect("start");
    handle
}

/// Evaluates `probe` every 10 ms until it returns `Some`, or panics naming `what` after
/// [`WAIT`].
pub async fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + WAIT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < until,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls status until `pred` holds, or panics with the last status after [`WAIT`].
pub async fn wait_for(
    engine: &WasmEngine,
    handle: &Handle,
    what: &str,
    pred: impl Fn(&InstanceStatus) -> bool,
) -> InstanceStatus {
    let until = Instant::now() + WAIT;
    loop {
        let st = engine.status(handle).await.expect("status");
        if pred(&st) {
            return st;
        }
        assert!(
            Instant::now() < until,
            "timed out waiting for {what}; last status {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits for the run to end (Exited or Failed).
pub async fn wait_end(engine: &WasmEngine, handle: &Handle) -> InstanceStatus {
    wait_for(engine, handle, "the end of the run", |s| {
        matches!(
            s.state,
            InstanceState::Exited { .. } | InstanceState::Failed { .. }
        )
    })
    .await
}

pub async fn log_text(engine: &WasmEngine, handle: &Handle) -> Vec<String> {
    engine
        .logs(handle, LogOptions::default())
        .await
        .expect("logs")
        .into_iter()
        .map(|l| l.line)
        .collect()
}

/// Polls the logs until a line equals `line`.
pub async fn wait_log(engine: &WasmEngine, handle: &Handle, line: &str) -> Vec<String> {
    let until = Instant::now() + WAIT;
    loop {
        let lines = log_text(engine, handle).await;
        if lines.iter().any(|l| l == line) {
            return lines;
        }
        assert!(
            Instant::now() < until,
            "no log line {line:?}; logs {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn failed_reason(st: &InstanceStatus) -> &str {
    match &st.state {
        InstanceState::Failed { reason } => reason,
        other => panic!("expected Failed, got {other:?} ({})", st.detail),
    }
}
