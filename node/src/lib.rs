//! The node: `meshd` (daemon) and `meshctl` (CLI), as a library so that tests can run many
//! nodes in one process.
//!
//! # Layout
//!
//! - [`daemon`]: configuration (`meshd`'s flags and config file), start-up (store, engines,
//!   recovery, API) and shutdown.
//! - [`service`]: [`Node`], this node's replicas (run, delete, read).
//! - [`recovery`]: re-adoption after a restart and the monitor of running instances.
//! - `jobs`: run-to-completion workloads: attempts, retries, deadline, collected outputs.
//! - [`mesh`]: mesh-wide operations, announcements, heartbeats, serving peers.
//! - [`net`]: the libp2p swarm task and its client.
//! - [`records`]: workload records: build, sign, open; the record book.
//! - [`trust`]: which signers this node accepts, for what, with which host access.
//! - [`identity`]: the node key and `node.json`.
//! - [`store`]: the sled-backed typed store.
//! - [`metrics`]: the node's Prometheus metrics (`GET /metrics`).
//! - [`api`]: the local HTTP API over the Unix socket and loopback TCP.
//! - [`ui`]: the read-only dashboard the local API serves at `/ui`.
//! - [`client`]: the client of that API.
//! - [`cli`]: `meshctl`'s commands and output.
//! - [`view`], [`error`]: API views of stored records, API errors.
//! - [`testnet`]: local testnets of `meshd` processes.
//! - [`version`]: the version and git revision of the binaries.
//! - [`testing`]: in-process test nodes and bounded waits, for this crate's and `tests/`'s tests.

pub mod api;
pub mod cli;
pub mod client;
pub mod daemon;
pub mod engine_events;
pub mod identity;
mod jobs;
pub mod local_api;
pub mod mesh;
pub mod metrics;
pub mod net;
pub mod records;
pub mod recovery;
pub mod restart;
pub mod service;
pub mod store;
pub mod testing;
pub mod testnet;
pub mod trust;
pub mod ui;
pub mod version;
pub mod view;

pub use daemon::{run, start, Config, Daemon};
pub use service::Node;
