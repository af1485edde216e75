//! The WASM engine of the mesh: Functions run on wasmtime with WASI preview 1, each in its
//! own `mesh-wasm-runner` child process, so a crashing or runaway guest never takes the node
//! down (see `engines/wasm/PROTOCOL.md` and [`protocol`]).
//!
//! Modules are content-addressed: the node only ever runs `sha256:` digests from its
//! [`store::ModuleStore`], which verifies bytes before it names them. Runners keep compiled
//! modules in a bounded on-disk compile cache keyed by digest, wasmtime version and engine
//! settings, so the second start of a module skips compilation. Each instance's runner
//! writes guest output and its status to files in the instance's directory, so a restarted
//! node adopts runners that outlived it (see [`state`]).
//!
//! Sandbox: the guest sees its argv (`argv[0]` is the workload name), its environment, the
//! clocks, random numbers, a private `/scratch` directory, and nothing else of the host.
//! Limits: linear memory (`spec.memory`, default 256 MiB), a wall-clock deadline
//! (`spec.timeout`, or a Job's `activeDeadlineSeconds`) checked at every epoch tick.
//! A run-to-completion Function's declared outputs are collected from its `/scratch`.
//!
//! Restart policy: a long-running Function (not run-to-completion) with `restartPolicy`
//! `Always` or `OnFailure` is restarted by this engine with exponential backoff (200 ms
//! doubling to 10 s); while it waits the status is Running and Unhealthy with the reason.
//! Runners adopted after a node restart are not supervised for restarts: when they end,
//! their recorded end is reported and the node decides.
//!
//! # Layout
//!
//! - [`digest`]: `sha256:<hex>` parsing and formatting.
//! - [`store`]: the content-addressed module store.
//! - [`fetch`]: fetching a missing module from peers, verified, skipping bad providers.
//! - [`protocol`]: runner frames (length-delimited JSON) and messages.
//! - [`runner`]: the runner process: compile cache, WASI sandbox, limits, events.
//! - [`spec`]: a Function's spec to what the runner needs.
//! - [`state`]: per-instance files that survive a node restart.
//! - [`logs`]: line splitting, the bounded log file and in-memory ring.
//! - [`engine`]: [`WasmEngine`], the `mesh_runtime::Engine` implementation.
//! - `supervise`: spawning, pumping, restarting and stopping runners.
//! - `observe`: status from live state or from files, recovery, detached stops.
//! - `trash`: removing an instance's directory in the background.
//! - [`guests`]: small WAT guests for tests and benchmarks.

pub mod digest;
pub mod engine;
pub mod fetch;
pub mod guests;
pub mod logs;
mod observe;
pub mod protocol;
pub mod runner;
pub mod spare;
pub mod spec;
pub mod state;
pub mod store;
mod supervise;
mod trash;

pub use digest::Digest;
pub use engine::{WasmEngine, RUNNER_BIN};
pub use fetch::{FetchError, Fetched, ModuleFetcher};
pub use store::ModuleStore;

/// Registry name of the engine.
pub const NAME: &str = "wasm";

/// The wasmtime release the runner is built with (keep in step with `Cargo.toml`); part of
/// the compile cache key and the engine's fingerprint.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// How the module of a run was obtained.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StartInfo {
    /// Time to compile or load the module, in milliseconds.
    pub compile_ms: f64,
    /// Loaded from the compile cache.
    pub cached: bool,
}

/// See [`WasmEngine::find_runner`].
fn find_runner() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let beside = [dir.join(RUNNER_BIN), dir.parent()?.join(RUNNER_BIN)];
    if let Some(p) = beside.into_iter().find(|p| p.is_file()) {
        return Some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(RUNNER_BIN))
        .find(|p| p.is_file())
}
