//! Provider and node records of the mesh, without I/O: what a node announces into the DHT,
//! how it is signed and verified, when it expires, how discovery filters it, and how the
//! entry node of an apply ranks candidate nodes. Time is always passed in (`now`, Unix ms).
//!
//! Kademlia provider records carry only a peer id, so metadata travels in a separate signed
//! record under a per-provider key (one key is never written by two providers). Expiry is
//! inside the signed payload, because the lifetime of a Kademlia record is stamped by the
//! node that stores it, not by the announcer; deleting publishes a signed withdrawal under
//! the same key, because `stop_providing` does not remove copies held by others.
//!
//! # Layout
//!
//! - [`keys`]: DHT keys (per-provider metadata keys, provider keys for workloads, engines, nodes).
//! - [`record`]: `ProviderRecord` and `NodeRecord`.
//! - `envelope`: the signed envelope shared by every record kind (magic, key, signature, payload).
//! - [`signed`]: provider and node records in it: encode, sign, verify.
//! - [`discovery`]: choosing the current record per provider and filtering by engine.
//! - [`placement`]: ranking candidate nodes for replicas.
//! - [`plan`]: replica slots: what an apply must keep, update, add and retire.
//! - [`workload`]: workload records (the signed desired state) and [`sealing`] of their secrets.

pub mod discovery;
mod envelope;
pub mod keys;
pub mod placement;
pub mod plan;
pub mod record;
pub mod sealing;
pub mod signed;
pub mod workload;

pub use discovery::{newest_per_provider, Discovered};
pub use placement::{rank, NodeCandidate, Placement};
pub use record::{
    EngineSummary, NodeAction, NodeCommand, NodeRecord, NodeResources, ProviderRecord, Record,
    Suspicion,
};
pub use signed::{RecordError, Signed};

pub use libp2p_identity::{Keypair, PeerId, PublicKey};

/// Largest encoded record. Kademlia messages are capped at 16 KiB by default; staying well
/// below leaves room for the message framing and several records per answer.
pub const MAX_RECORD_BYTES: usize = 8 * 1024;
