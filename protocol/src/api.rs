//! Bodies of the local API (`docs/api.md`). JSON on the wire; `meshctl` renders them as tables,
//! JSON or YAML.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::job::JobStatus;
use crate::lifecycle::{Event, Phase};
use crate::spec::{ResourceAmounts, WorkloadKind};
use crate::UnixMillis;

/// `POST /deployments`: the raw manifest, parsed and validated again by the node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplyRequest {
    /// Manifest text (YAML or JSON).
    pub manifest: String,
    /// `--name`: names a Compose project, or renames the single workload of a Kubernetes file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Name for formats that carry none (Compose without `name:`) when `name` is not given;
    /// `meshctl` passes the file's stem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_name: Option<String>,
    /// Override of the replica count (`meshctl apply --replicas N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Variables for Compose interpolation (`${VAR}`); `meshctl` sends its environment's
    /// variables that the file references.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The signed workload records of the manifest's workloads, one each, made by `meshctl`
    /// with the user's key (see `docs/protocol.md`). When absent (a client of the local API
    /// that signs nothing), the node makes them with its own key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<SignedRecord>,
    /// WASM modules the manifest names by path (`spec.module: ./hello.wasm`), bundled by
    /// `meshctl`. The node stores them by digest and runs the digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<BundledModule>,
    /// `meshctl apply --no-wait`: answer once every record is verified, authorised and kept
    /// (action `accepted`), and place and start the replicas after answering.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_wait: bool,
}

/// A signed workload record as it travels, with the workload's data key when its manifest
/// is sealed. The key goes only to the node `meshctl` talks to, and from it point-to-point to
/// the nodes that run a replica; it never enters a published record.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignedRecord {
    #[serde(with = "crate::b64")]
    pub bytes: Vec<u8>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::b64::option"
    )]
    pub data_key: Option<Vec<u8>>,
}

impl std::fmt::Debug for SignedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedRecord")
            .field("bytes", &self.bytes.len())
            .field("data_key", &self.data_key.as_ref().map(|_| "…"))
            .finish()
    }
}

/// `GET /records/{name}`: the workload record a node holds (its newest revision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordInfo {
    pub namespace: String,
    pub name: String,
    pub kind: WorkloadKind,
    pub revision: u64,
    pub spec_version: String,
    /// Replicas wanted (`None`: every capable node).
    pub replicas: Option<u32>,
    pub tombstone: bool,
    /// Key id of the signer.
    pub submitter: String,
    pub issued_at: UnixMillis,
    /// Whether the manifest is sealed (it carries secrets).
    pub sealed: bool,
}

/// `DELETE /deployments/{name}` body: the signed tombstone. When absent, the node signs one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeleteRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<SignedRecord>,
}

/// A module named by path in a manifest: its digest, and its bytes (absent once the entry
/// node stored them and forwards the apply to the nodes it placed replicas on; those fetch
/// it, from `providers` first).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BundledModule {
    /// The path exactly as the manifest writes it.
    pub path: String,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::b64::option"
    )]
    pub bytes: Option<Vec<u8>>,
    /// Multiaddrs (ending in `/p2p/<peer id>`) of nodes known to hold the module.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
}

/// Largest module `meshctl` bundles into an apply.
pub const MAX_MODULE_BYTES: usize = 8 * 1024 * 1024;

/// What an apply did to one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyAction {
    Created,
    Updated,
    /// Same content as the running version: nothing was done.
    Unchanged,
    /// The new version failed its health check; the previous version was kept.
    RolledBack,
    Failed,
    /// `--no-wait`: the record is kept; replicas are being placed and started.
    Accepted,
}

/// `POST /deployments` answers after every workload has settled (Running, Failed, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyResponse {
    pub workloads: Vec<ApplyOutcome>,
    /// The apply's correlation id: every node it touched logs its work in a span with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyOutcome {
    pub action: ApplyAction,
    pub deployment: Deployment,
}

/// One replica of a workload, on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replica {
    pub node: String,
    pub phase: Phase,
    pub engine: String,
    pub engine_reason: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Engine-side id of the instance (container id, pod name, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub restarts: u32,
    pub updated_at: UnixMillis,
    /// The replica slot it fills (`0..replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// Attempts, exit code, outputs and typed error of a run-to-completion workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobStatus>,
}

/// A workload as `meshctl get NAME -o json` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub name: String,
    pub namespace: String,
    pub kind: WorkloadKind,
    pub version: String,
    /// Engine of the (first) replica.
    pub engine: String,
    pub engine_reason: String,
    /// Overall phase: Running when every placed replica runs.
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub desired_replicas: u32,
    /// Revision of the workload record (the mesh's desired state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// Key id of the record's signer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitter: Option<String>,
    pub replicas: Vec<Replica>,
    /// Why replicas could not be placed (e.g. fewer capable nodes than replicas).
    #[serde(default)]
    pub placement: Vec<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub resources: ResourceAmounts,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    /// Previous versions, newest first (`describe`).
    #[serde(default)]
    pub history: Vec<VersionRecord>,
    /// Recent events, oldest first (`describe`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: String,
    pub applied_at: UnixMillis,
    /// Whether this version ever reached Running (last-known-good candidates).
    pub reached_running: bool,
}

/// `GET /deployments/{name}/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub name: String,
    pub namespace: String,
    pub version: String,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub replicas: Vec<Replica>,
}

/// `GET /deployments/{name}/logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logs {
    pub name: String,
    pub namespace: String,
    pub lines: Vec<LogLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<UnixMillis>,
    pub stream: LogStream,
    /// Container or service the line came from, for multi-container workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub line: String,
    /// Correlation id of the job attempt that wrote the line (run-to-completion workloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// `GET /plugins`: one entry per registered engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineInfo {
    pub name: String,
    pub healthy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub capabilities: Vec<String>,
    pub kinds: Vec<WorkloadKind>,
    /// Why it is unhealthy, or what it talks to.
    #[serde(default)]
    pub detail: String,
    pub checked_at: UnixMillis,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub node: String,
    pub software_version: String,
    pub workloads: usize,
    pub engines: Vec<EngineInfo>,
    pub started_at: UnixMillis,
    /// The node heals the mesh: up for a full round of announcements and heartbeats (before
    /// that every slot would look empty to it), and not leaving.
    #[serde(default)]
    pub self_healing: bool,
}

/// Error body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// `POST /commands`: an operator's command to one node, signed by the operator's key (the
/// signed bytes of a `NodeCommand` record, see `mesh_provider::record`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRequest {
    #[serde(with = "crate::b64")]
    pub command: Vec<u8>,
}

/// What a drain or an uncordon did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainReport {
    /// The node.
    pub node: String,
    /// Whether it takes no new replicas now.
    pub cordoned: bool,
    /// Replicas moved: each running on its new node before this node's copy was removed.
    pub moved: Vec<Moved>,
    /// Replicas left on the node, and why.
    pub left: Vec<Left>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    pub workload: String,
    pub slot: u32,
    /// The node that runs it now.
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Left {
    pub workload: String,
    pub why: String,
}

/// `GET /events/log`: a page of one node's durable event log (`meshctl events -w`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventPage {
    /// The node whose log it is.
    pub node: String,
    /// Events after the sequence number asked for, oldest first.
    pub events: Vec<crate::Event>,
    /// The oldest and newest sequence numbers the log holds (0 when empty).
    pub first: u64,
    pub last: u64,
    /// Events dropped from the log (the oldest, beyond its bound) since the node began.
    pub dropped: u64,
}

impl EventPage {
    /// How many events after sequence number `after` the node dropped before they were read:
    /// those between `after` and the oldest the log still holds, at most all it dropped.
    pub fn missed_after(&self, after: u64) -> u64 {
        if self.first > after.saturating_add(1) && (after > 0 || self.dropped > 0) {
            (self.first - after - 1).min(self.dropped)
        } else {
            0
        }
    }
}

/// `GET /deployments/NAME/outputs?path=&node=&offset=`: a piece of a job's collected output
/// file, `bytes` from `offset` of a file of `total` bytes (at most 4 MiB a piece).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChunk {
    pub total: u64,
    pub offset: u64,
    #[serde(with = "crate::b64")]
    pub bytes: Vec<u8>,
}
