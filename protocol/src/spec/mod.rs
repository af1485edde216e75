//! The normalised workload description. Every manifest format (Kubernetes, Compose,
//! beemesh.io/v1) is turned into one [`WorkloadSpec`] per workload by the `manifests` crate;
//! engines, the store and the wire never see raw YAML.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

mod parts;
pub use parts::*;

/// Namespace used when a manifest names none (Compose, Functions, Kubernetes without one).
pub const DEFAULT_NAMESPACE: &str = "default";

/// `namespace/name`: the key of a workload on a node and across the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkloadId {
    pub namespace: String,
    pub name: String,
}

impl WorkloadId {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The format a workload was written in; it drives engine inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceFormat {
    /// Kubernetes YAML or JSON (`apiVersion` + `kind`).
    Kubernetes,
    /// Docker Compose (a top-level `services` map).
    Compose,
    /// `apiVersion: beemesh.io/v1` kinds.
    Beemesh,
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceFormat::Kubernetes => "kubernetes",
            SourceFormat::Compose => "compose",
            SourceFormat::Beemesh => "beemesh",
        })
    }
}

/// What kind of workload this is. Engines declare which kinds they can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WorkloadKind {
    Pod,
    Deployment,
    Job,
    DaemonSet,
    /// A Compose project: one or more services.
    Compose,
    /// A WASM module (`beemesh.io/v1` Function).
    Function,
    /// A virtual machine (`beemesh.io/v1` VirtualMachine).
    VirtualMachine,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 7] = [
        WorkloadKind::Pod,
        WorkloadKind::Deployment,
        WorkloadKind::Job,
        WorkloadKind::DaemonSet,
        WorkloadKind::Compose,
        WorkloadKind::Function,
        WorkloadKind::VirtualMachine,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "Pod",
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::Job => "Job",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Compose => "Compose",
            WorkloadKind::Function => "Function",
            WorkloadKind::VirtualMachine => "VirtualMachine",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One workload, normalised. `version` is the SHA-256 of everything else
/// (see [`WorkloadSpec::compute_version`]), so re-applying identical content is recognisable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    pub name: String,
    pub namespace: String,
    pub kind: WorkloadKind,
    pub format: SourceFormat,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Merged annotations (object metadata, then pod-template metadata, then Compose
    /// `x-beemesh` annotations); later sources win.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Containers (Kubernetes) or services (Compose, one container per service).
    #[serde(default)]
    pub containers: Vec<Container>,
    #[serde(default)]
    pub init_containers: Vec<Container>,
    /// The WASM module of a Function.
    #[serde(default)]
    pub module: Option<Module>,
    /// The machine of a VirtualMachine.
    #[serde(default)]
    pub vm: Option<VirtualMachine>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// ConfigMaps and Secrets that travelled with the workload in the same file.
    #[serde(default)]
    pub config: Vec<ConfigObject>,
    /// Whole-workload resources: the `beemesh.io/resources.*` annotations when present,
    /// else the sum of the containers' requests (or limits where no request is given).
    #[serde(default)]
    pub resources: ResourceAmounts,
    /// Requested replicas; `None` means 1. A DaemonSet ignores it (one per capable node).
    #[serde(default)]
    pub replicas: Option<u32>,
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// Run-to-completion settings for Jobs and run-to-completion Functions.
    #[serde(default)]
    pub job: Option<JobSpec>,
    /// How updates roll out across replicas (a Deployment's `strategy`); one at a time when
    /// absent. Absent from the encoding when not given, so other specs' digests stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Host access the manifest asks for (host namespaces, privileges, capabilities,
    /// devices): refused by a node's trust policy unless the signer is granted it. Absent
    /// from the encoding when nothing is asked, so other specs' digests stay.
    #[serde(default, skip_serializing_if = "HostAccess::is_none")]
    pub host: HostAccess,
    /// Fields that were recognised but are not honoured (shown by `apply` and `describe`).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// `sha256:<hex>` content digest; see [`WorkloadSpec::compute_version`].
    #[serde(default)]
    pub version: String,
    /// The version is keyed by the workload's data key ([`WorkloadSpec::seal_keyed`]): it
    /// cannot be recomputed from the content alone. Absent from the encoding when false, so
    /// the digests of other specs do not change.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub version_keyed: bool,
}

impl WorkloadSpec {
    /// An empty spec of the given kind; the parser fills the rest.
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        kind: WorkloadKind,
        format: SourceFormat,
    ) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            kind,
            format,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            containers: Vec::new(),
            init_containers: Vec::new(),
            module: None,
            vm: None,
            volumes: Vec::new(),
            config: Vec::new(),
            resources: ResourceAmounts::default(),
            replicas: None,
            restart_policy: RestartPolicy::default(),
            job: None,
            rollout: None,
            host: HostAccess::default(),
            warnings: Vec::new(),
            version: String::new(),
            version_keyed: false,
        }
    }

    pub fn id(&self) -> WorkloadId {
        WorkloadId::new(&self.namespace, &self.name)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }

    /// Desired replica count (at least 1).
    pub fn replica_count(&self) -> u32 {
        self.replicas.unwrap_or(1).max(1)
    }

    /// True for workloads that are expected to exit (Jobs, Functions with a job section).
    pub fn runs_to_completion(&self) -> bool {
        self.job.is_some()
    }

    /// Declared output files of a run-to-completion workload (empty otherwise).
    pub fn outputs(&self) -> &[String] {
        self.job.as_ref().map_or(&[], |j| j.outputs.as_slice())
    }

    /// SHA-256 over the canonical JSON of the spec with `version` and `warnings` blanked.
    /// Field order is fixed by the struct and maps are ordered, so equal content gives an
    /// equal digest on every node.
    pub fn compute_version(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(self.canonical())))
    }

    fn canonical(&self) -> Vec<u8> {
        let mut canonical = self.clone();
        canonical.version.clear();
        canonical.warnings.clear();
        serde_json::to_vec(&canonical).expect("a WorkloadSpec always serialises")
    }

    /// Whether the spec carries values that must not be published: Secret data.
    pub fn has_secrets(&self) -> bool {
        self.config
            .iter()
            .any(|c| c.kind == ConfigKind::Secret && !c.data.is_empty())
    }

    /// Sets `version` to HMAC-SHA256 under `key` (a workload's data key) of the canonical
    /// spec, for specs whose content is secret: a plain digest would let anyone who reads the
    /// version guess a weak password offline. Written in the same `sha256:<hex>` form, so
    /// engines name instances alike; equal content and key give an equal version everywhere.
    pub fn seal_keyed(mut self, key: &[u8]) -> Self {
        use hmac::Mac as _;
        self.version_keyed = true;
        let mut mac =
            hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
        mac.update(&self.canonical());
        self.version = format!("sha256:{}", hex::encode(mac.finalize().into_bytes()));
        self
    }

    /// Sets `version` to [`WorkloadSpec::compute_version`].
    pub fn seal(mut self) -> Self {
        self.version_keyed = false;
        self.version = self.compute_version();
        self
    }

    /// First 12 hex digits of the version, for tables.
    pub fn short_version(&self) -> &str {
        short_version(&self.version)
    }
}

/// First 12 hex digits of a `sha256:` version, for tables.
pub fn short_version(version: &str) -> &str {
    let hex = version.strip_prefix("sha256:").unwrap_or(version);
    &hex[..hex.len().min(12)]
}

/// CPU in millicores and memory in bytes. `None` means "not stated".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceAmounts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

impl ResourceAmounts {
    pub fn is_empty(&self) -> bool {
        self.cpu_millis.is_none() && self.memory_bytes.is_none()
    }
}

#[cfg(test)]
mod tests;
