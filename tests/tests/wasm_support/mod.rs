//! WAT guests and helpers for the multi-node WASM tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

#[allow(unused_imports)] // each test binary uses a subset of the shared guests
pub use mesh_engine_wasm::guests::*;

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(30);

/// The `mesh-wasm-runner` binary beside the test executables (`target/<profile>/`): the node
/// package's, built by `cargo test --workspace` (for the node's own tests).
pub fn runner() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executables live in target/<profile>/deps");
    let runner = dir.join("mesh-wasm-runner");
    assert!(
        runner.exists(),
        "{} is missing: run `cargo build -p mesh-node --bin mesh-wasm-runner` (cargo test --workspace builds it)",
        runner.display()
    );
    runner
}
