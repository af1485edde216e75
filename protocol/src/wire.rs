//! Messages between nodes, and between `meshctl --peer` and a node, over libp2p
//! request-response (CBOR). `docs/protocol.md` documents them with their limits.
//!
//! Two families share one enum:
//! - *client* requests, which a node serves for the whole mesh (the same operations as the
//!   local API: apply with placement, get, delete, logs, discover, nodes);
//! - *replica* requests, which one node sends another about the replica that node runs
//!   (apply one replica here, its status, its logs, delete it).

use serde::{Deserialize, Serialize};

use crate::api::{
    ApplyRequest, ApplyResponse, BundledModule, Deployment, EngineInfo, Logs, RecordInfo,
    SignedRecord,
};
use crate::WorkloadId;

/// A request to a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    // Client requests: the node acts for the mesh.
    Apply(Box<ApplyRequest>),
    Get {
        id: WorkloadId,
        events: bool,
    },
    List,
    /// Delete, with the signed tombstone (the node signs one when absent).
    Delete {
        id: WorkloadId,
        #[serde(default)]
        record: Option<SignedRecord>,
    },
    /// The workload record the node holds.
    Record {
        id: WorkloadId,
    },
    /// The earlier records of a workload the node kept (for `meshctl rollback`).
    History {
        id: WorkloadId,
    },
    Logs {
        id: WorkloadId,
        tail: Option<usize>,
    },
    Discover {
        id: WorkloadId,
        engine: Option<String>,
    },
    Nodes {
        engine: Option<String>,
    },
    Engines,
    /// The answering node's own signed node record (engines, capacity): placement asks a
    /// peer it is connected to but has not heard a heartbeat from yet.
    NodeRecord,
    /// An operator's signed command for the receiving node (`meshctl drain`, `uncordon`).
    Command {
        #[serde(with = "crate::b64")]
        command: Vec<u8>,
    },
    /// A page of a node's durable event log: events after sequence number `after`; of the
    /// receiving node, or of `node`, to which it forwards the request.
    EventLog {
        #[serde(default)]
        node: Option<String>,
        after: u64,
        limit: u32,
    },
    /// Liveness: "are you there?" Answered [`Response::Pong`] with a signature over `nonce`
    /// by the node's request task, so a node whose event loop is stalled does not answer.
    Ping {
        #[serde(with = "crate::b64")]
        nonce: Vec<u8>,
    },
    /// Liveness, indirect: "ping `peer` for me with `nonce`" (the SWIM idea): a peer that
    /// cannot reach a suspect asks two others, so one bad link does not make a node dead. The
    /// helper relays the suspect's signed answer, so it cannot vouch for a dead node.
    Probe {
        peer: String,
        #[serde(with = "crate::b64")]
        nonce: Vec<u8>,
    },
    /// Connection management: "I am about to close our connection to stay under my
    /// connection limits; I am not leaving." Answered [`Response::Closing`], after which the
    /// sender closes. The receiver does not take that close for a lost peer, so it neither
    /// suspects nor probes (and so dials) the sender again.
    Closing,

    // Replica requests: about the replica on the receiving node only.
    ApplyReplica(Box<ReplicaApply>),
    ReplicaGet {
        id: WorkloadId,
        events: bool,
    },
    ReplicaList,
    /// Remove the replica here: `record` is the workload's current signed record (a
    /// tombstone, or a record whose replica count this slot is beyond), no older than the one
    /// the replica runs.
    ReplicaDelete {
        id: WorkloadId,
        record: SignedRecord,
    },
    ReplicaLogs {
        id: WorkloadId,
        tail: Option<usize>,
    },

    // Content requests.
    /// Up to [`MODULE_CHUNK_BYTES`] of a stored WASM module (`sha256:<hex>`) from `offset`.
    FetchModule {
        digest: String,
        offset: u64,
    },
    /// Up to [`MODULE_CHUNK_BYTES`] from `offset` of a collected output file (`path`, as the
    /// job's status lists it) of a run-to-completion workload: on the receiving node, or on
    /// `node`, to which it forwards the request (`meshctl outputs`).
    Output {
        id: WorkloadId,
        #[serde(default)]
        node: Option<String>,
        path: String,
        offset: u64,
    },
}

/// Largest piece of a module one [`Request::FetchModule`] returns.
pub const MODULE_CHUNK_BYTES: usize = 4 * 1024 * 1024;

impl Request {
    /// Short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Apply(_) => "apply",
            Request::Get { .. } => "get",
            Request::List => "list",
            Request::Delete { .. } => "delete",
            Request::Record { .. } => "record",
            Request::History { .. } => "history",
            Request::Logs { .. } => "logs",
            Request::Discover { .. } => "discover",
            Request::Nodes { .. } => "nodes",
            Request::Engines => "engines",
            Request::NodeRecord => "node-record",
            Request::Command { .. } => "command",
            Request::EventLog { .. } => "event-log",
            Request::Ping { .. } => "ping",
            Request::Probe { .. } => "probe",
            Request::Closing => "closing",
            Request::ApplyReplica(_) => "apply-replica",
            Request::ReplicaGet { .. } => "replica-get",
            Request::ReplicaList => "replica-list",
            Request::ReplicaDelete { .. } => "replica-delete",
            Request::ReplicaLogs { .. } => "replica-logs",
            Request::FetchModule { .. } => "fetch-module",
            Request::Output { .. } => "output",
        }
    }
}

/// A node's signature over a ping's nonce ([`PING_CONTEXT`] then the nonce), with its
/// public key (protobuf encoding): whoever asked checks that the key is the peer's and the
/// signature good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingProof {
    #[serde(with = "crate::b64")]
    pub key: Vec<u8>,
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
}

/// What a ping's signature covers before the nonce: a signature made for a ping is good for
/// nothing else.
pub const PING_CONTEXT: &[u8] = b"mesh-ping/1\0";

/// "Run the replica in slot `slot` of this workload here."
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaApply {
    /// The signed workload record (and the data key, when its manifest is sealed): the target
    /// verifies it and parses the manifest itself.
    pub record: SignedRecord,
    /// Which workload (`namespace/name`), as the record names it.
    pub workload: WorkloadId,
    /// The slot this replica fills.
    pub slot: u32,
    /// Replicas wanted across the mesh.
    pub desired_replicas: u32,
    /// Where the modules the manifest names by path can be fetched (no bytes).
    #[serde(default)]
    pub modules: Vec<BundledModule>,
    /// Why replicas were not placed, as decided by the entry node.
    pub placement: Vec<String>,
    /// The entry node that placed it.
    pub entry: String,
    /// The correlation id of the apply (or heal, drain) that sent it, for the target's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
}

/// A node's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Applied(ApplyResponse),
    /// A replica's outcome, with the signed provider record it announced (when it runs).
    ReplicaApplied {
        outcome: Box<crate::api::ApplyOutcome>,
        #[serde(default, with = "crate::b64::option")]
        provider: Option<Vec<u8>>,
    },
    Deployment(Box<Deployment>),
    Deployments(Vec<Deployment>),
    Logs(Logs),
    Providers(Vec<Provider>),
    Nodes(Vec<NodeInfo>),
    Engines(Vec<EngineInfo>),
    Record(Option<RecordInfo>),
    /// Signed records, oldest first (their data keys never travel here).
    History(Vec<crate::api::SignedRecord>),
    /// A signed record (a node record, for [`Request::NodeRecord`]).
    Signed(#[serde(with = "crate::b64")] Vec<u8>),
    /// The answer to [`Request::Command`].
    Drained(crate::api::DrainReport),
    /// The answer to [`Request::EventLog`].
    EventLog(crate::api::EventPage),
    /// The answer to [`Request::Ping`]: the answering node's proof that it is alive.
    Pong(PingProof),
    /// The answer to [`Request::Probe`]: the suspect's own proof when it answered, and, when
    /// it did not, whether it could not be reached at all (refused, not just slow).
    Probed {
        #[serde(default)]
        proof: Option<PingProof>,
        #[serde(default)]
        unreachable: bool,
    },
    /// The answer to [`Request::Closing`]: noted.
    Closing,
    /// A piece of a module: `bytes` from `offset` of a module of `total` bytes.
    ModuleChunk {
        total: u64,
        offset: u64,
        #[serde(with = "crate::b64")]
        bytes: Vec<u8>,
    },
    /// The answer to [`Request::Output`].
    Output(crate::api::OutputChunk),
    /// The request failed; `status` follows HTTP (400 bad input, 404 not found, 422 apply
    /// failed, 500/503 node trouble).
    Error {
        status: u16,
        message: String,
    },
}

/// One provider of a workload: its signed, unexpired provider record.
pub use crate::provider::ProviderRecord as Provider;

/// One node of the mesh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub peer_id: String,
    pub addresses: Vec<String>,
    pub engines: Vec<NodeEngine>,
    pub cpu_millis: u64,
    pub cpu_free_millis: u64,
    pub memory_bytes: u64,
    pub memory_free_bytes: u64,
    pub workloads: u32,
    pub software_version: String,
    /// Whose signatures the node accepts: `any` (`--trust-any`: every valid signature),
    /// `file` (its trust file) or `owner` (the key of the user running it).
    #[serde(default)]
    pub trust: String,
    /// Cordoned (`meshctl drain`): it takes no new replicas.
    #[serde(default)]
    pub cordoned: bool,
    /// When this information was signed by the node.
    pub seen_at: crate::UnixMillis,
    /// The node answering the query.
    #[serde(default)]
    pub local: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEngine {
    pub name: String,
    pub healthy: bool,
    #[serde(default)]
    pub version: Option<String>,
}
