//! The process engine: runs the containers of Pods, Deployments, Jobs and DaemonSets as
//! native host processes, one per container, with `command` + `args` (the image is
//! ignored).
//!
//! **Not sandboxed.** Commands run as the node's user, see the host filesystem and network,
//! and get no resource limits. The node never selects this engine unless the workload names
//! it (`beemesh.io/runtime-engine: process`); it exists for trusted fleets and for tests.
//!
//! Each container runs in its own process group (so a stop reaches its children) with a
//! clean environment: `PATH` (the node's), `HOME` (the working directory), then the
//! container's `env` (literal values, ConfigMap/Secret keys from the applied file, and
//! `metadata.name`/`metadata.namespace`). The working directory is `workingDir` when given,
//! else a private directory of the instance. Init containers run in order to completion in
//! `start`; one that fails fails the start.
//!
//! Output goes straight from the processes to per-container log files (bounded: past
//! 8 MiB a file is moved to `<file>.1` and emptied), so it is kept while the node is down.
//! `stop` sends SIGTERM to each group, waits the grace period, then SIGKILL; a stopped
//! container reports `Exited { code: 128 + signal }`. After a node restart, `recover`
//! finds processes by pid and kernel start time: alive ones are adopted, ones whose exit was
//! recorded are reported with it, and an instance with no trace is gone. Restart policies
//! are not applied by this engine, and container health checks are not run (a running
//! process is healthy).
//!
//! A job's declared outputs are collected from the first container's working directory.
//!
//! # Layout
//!
//! - [`plan`]: containers to commands (argv, environment, working directory).
//! - [`state`]: the per-instance record and process identity.
//! - [`run`]: spawning, reaping, stopping, status and logs of an instance's processes.
//! - [`engine`]: [`ProcessEngine`], the `mesh_runtime::Engine` implementation.

pub mod engine;
pub mod plan;
pub mod run;
pub mod state;

pub use engine::ProcessEngine;

/// Registry name of the engine.
pub const NAME: &str = "process";
