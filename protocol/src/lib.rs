//! Shared vocabulary of the mesh: identifiers, the normalised [`WorkloadSpec`] every manifest
//! format is turned into, lifecycle phases and events, and the messages of the local API.
//!
//! This crate does no I/O. Everything here is plain data with serde derives so that the
//! store, the local API and (later) the wire all speak the same types.
//!
//! # Layout
//!
//! - [`spec`]: `WorkloadSpec` and its parts (containers, modules, volumes, resources).
//! - [`annotations`]: the `beemesh.io/*` annotation keys the product understands.
//! - [`lifecycle`]: phases, lifecycle steps and events.
//! - [`job`]: run-to-completion results: attempts, typed job errors, collected outputs.
//! - [`api`]: request and response bodies of the local API.
//! - [`duration`]: parsing of human durations (`500ms`, `10s`, `2m`).
//! - [`provider`]: what a node announces about a replica it runs (signed, and discovered).
//! - [`wire`]: request-response messages between nodes and from `meshctl --peer`.

pub mod annotations;
pub mod api;
pub mod b64;
pub mod duration;
pub mod job;
pub mod lifecycle;
pub mod provider;
pub mod spec;
pub mod wire;

pub use lifecycle::{Event, Outcome, Phase, Step};
pub use spec::{WorkloadId, WorkloadKind, WorkloadSpec};

/// Milliseconds since the Unix epoch; every timestamp on the API and in the store uses it.
pub type UnixMillis = u64;
