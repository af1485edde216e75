//! What a node announces about a replica it runs. The same type is the signed payload of
//! a provider record (`mesh_provider::signed`) and what discovery answers (`wire::Provider`):
//! no mapping between them.

use serde::{Deserialize, Serialize};

use crate::spec::ResourceAmounts;
use crate::{Phase, UnixMillis};

/// "This node runs a replica of this workload": signed by the node, expiring, renewed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderRecord {
    /// `namespace/name`.
    pub workload: String,
    pub version: String,
    pub peer_id: String,
    pub engine: String,
    /// Capabilities of that engine (`logs`, `sandbox`, …).
    pub capabilities: Vec<String>,
    /// Resources the workload asked for.
    pub resources: ResourceAmounts,
    pub phase: Phase,
    /// Where the provider listens.
    pub addresses: Vec<String>,
    pub issued_at: UnixMillis,
    pub expires_at: UnixMillis,
    /// A signed withdrawal: the workload was deleted on this node.
    #[serde(default)]
    pub withdrawn: bool,
    /// The replica slot this provider fills (`0..replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// Revision of the workload record it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}
