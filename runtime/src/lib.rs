//! Runtime side of a node: the [`Engine`] trait engines implement, the [`Registry`] that holds
//! them with their latest fingerprint, the pure engine [`select`]ion function, and the
//! [`lifecycle`] controller that drives every workload through the same phases whatever the
//! engine.
//!
//! # Layout
//!
//! - [`engine`]: the `Engine` trait, `Handle`, status and capability types.
//! - [`error`]: the `runtime::Error` type.
//! - [`registry`]: engines by name plus their periodic fingerprints.
//! - [`select`]: `(spec, engines, policy) -> (engine, reason)`, sans-IO.
//! - [`lifecycle`]: Validate → Fetch → Prepare → Install → Activate → HealthCheck → Running,
//!   updates with rollback, uninstall.
//! - [`job`]: run-to-completion workloads: retry, backoff and deadline policy (sans-IO) and
//!   the operations of one attempt (start, logs, collect, teardown).
//! - [`artifact`]: bounded copying of declared output files, for engines.
//! - [`host`]: processes identified beyond their pid, atomic JSON state files (process, wasm).
//! - [`mock`]: a complete engine scripted by annotations, for tests of everything above it.
//! - [`testing`]: skip-or-fail rules for tests that need a real engine daemon.
//! - [`time`]: RFC 3339 timestamps (of engines' logs and health results) to Unix ms.

pub mod artifact;
pub mod engine;
pub mod error;
pub mod host;
pub mod job;
pub mod lifecycle;
pub mod mock;
pub mod registry;
pub mod select;
pub mod testing;
pub mod time;

pub use engine::{
    forward_ended, Capability, Engine, Fingerprint, Handle, Health, InstallContext, InstanceState,
    InstanceStatus, LogOptions, Recovered,
};
pub use error::Error;
pub use lifecycle::{Controller, ControllerConfig, DeployReport, Observer};
pub use registry::Registry;
pub use select::{select, Candidate, Policy, Selection};

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
