//! What nodes announce.

use mesh_protocol::UnixMillis;
use serde::{Deserialize, Serialize};

pub use mesh_protocol::provider::ProviderRecord;

/// One engine of a node, as announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineSummary {
    pub name: String,
    pub healthy: bool,
    #[serde(default)]
    pub version: Option<String>,
    /// Workload kinds it runs (`Pod`, `Compose`, …).
    pub kinds: Vec<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// Capacity of a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeResources {
    pub cpu_millis: u64,
    pub cpu_free_millis: u64,
    pub memory_bytes: u64,
    pub memory_free_bytes: u64,
}

/// "This node exists, with these engines": signed by the node, expiring, renewed. Also the
/// body of gossip heartbeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub peer_id: String,
    pub addresses: Vec<String>,
    pub engines: Vec<EngineSummary>,
    pub resources: NodeResources,
    pub workloads: u32,
    pub software_version: String,
    /// Whose signatures the node accepts: `any` (`--trust-any`), `file` (a trust file) or
    /// `owner` (only the key of the user running it). Empty from older nodes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trust: String,
    /// Drained or cordoned (`meshctl drain`): it takes no new replicas.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cordoned: bool,
    pub issued_at: UnixMillis,
    pub expires_at: UnixMillis,
}

impl NodeRecord {
    /// Names of the healthy engines.
    pub fn healthy_engines(&self) -> impl Iterator<Item = &str> {
        self.engines
            .iter()
            .filter(|e| e.healthy)
            .map(|e| e.name.as_str())
    }
}

/// Any signed record, tagged so that a node record can never be mistaken for a provider one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Provider(ProviderRecord),
    Node(NodeRecord),
    /// An operator's command to one node (`meshctl drain`, `uncordon`), signed by the
    /// operator's key: never gossiped or stored, only sent to its node.
    Command(NodeCommand),
    /// A node's word that it found a peer dead, gossiped (never stored).
    Suspicion(Suspicion),
}

/// "I found `suspect` dead": its signer's own ping and every helper's were refused (or it
/// stayed silent through the suspicion timeout). Gossiped so that nodes without a connection
/// to the suspect, which would otherwise notice only when its heartbeats stop, probe it at
/// once. A receiver takes it for a reason to probe, never for a verdict: a mistaken or
/// forged one costs a ping, which the suspect answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspicion {
    /// The signer.
    pub peer_id: String,
    /// The peer found dead.
    pub suspect: String,
    pub issued_at: UnixMillis,
    pub expires_at: UnixMillis,
    /// When the newest heartbeat of the suspect that the signer had was signed: the life it
    /// knew of (SWIM's incarnation number). A receiver holding a newer heartbeat knows of
    /// later life than the signer did, and ignores the suspicion. Absent: not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heard_at: Option<UnixMillis>,
}

/// What an operator asks of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeAction {
    /// Take no new replicas, and move the ones it runs elsewhere.
    Drain,
    /// Take new replicas again.
    Uncordon,
}

/// An operator's signed command to the node `node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCommand {
    /// The signer (the operator's key), as every signed record names it.
    pub peer_id: String,
    /// The node it is for.
    pub node: String,
    pub action: NodeAction,
    /// Random, so that a replay is recognised.
    pub nonce: String,
    pub issued_at: UnixMillis,
    pub expires_at: UnixMillis,
}

impl Record {
    pub fn peer_id(&self) -> &str {
        match self {
            Record::Provider(p) => &p.peer_id,
            Record::Node(n) => &n.peer_id,
            Record::Command(c) => &c.peer_id,
            Record::Suspicion(s) => &s.peer_id,
        }
    }

    pub fn issued_at(&self) -> UnixMillis {
        match self {
            Record::Provider(p) => p.issued_at,
            Record::Node(n) => n.issued_at,
            Record::Command(c) => c.issued_at,
            Record::Suspicion(s) => s.issued_at,
        }
    }

    pub fn expires_at(&self) -> UnixMillis {
        match self {
            Record::Provider(p) => p.expires_at,
            Record::Node(n) => n.expires_at,
            Record::Command(c) => c.expires_at,
            Record::Suspicion(s) => s.expires_at,
        }
    }
}
