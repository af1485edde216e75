//! The parts of a [`super::WorkloadSpec`]: containers, environment, ports, mounts, volumes,
//! config objects, health checks, dependencies, modules, machines and job settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ResourceAmounts;

/// Requests and limits of one container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    #[serde(default)]
    pub requests: ResourceAmounts,
    #[serde(default)]
    pub limits: ResourceAmounts,
}

/// One container (a Kubernetes container or a Compose service).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    pub image: String,
    /// Entrypoint override (Kubernetes `command`, Compose `entrypoint`).
    #[serde(default)]
    pub command: Vec<String>,
    /// Arguments (Kubernetes `args`, Compose `command`).
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub ports: Vec<Port>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub pull_policy: PullPolicy,
    #[serde(default)]
    pub healthcheck: Option<HealthCheck>,
    /// Compose `depends_on`.
    #[serde(default)]
    pub depends_on: Vec<Dependency>,
    /// Compose per-service restart policy; Kubernetes uses the workload's.
    #[serde(default)]
    pub restart: Option<RestartPolicy>,
    /// Compose `deploy.replicas` of this service (`None`: 1).
    #[serde(default)]
    pub replicas: Option<u32>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub init: bool,
}

/// An environment variable: a literal value or a reference resolved at deploy time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_from: Option<EnvSource>,
}

/// Where an environment value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum EnvSource {
    ConfigMap {
        name: String,
        key: String,
    },
    Secret {
        name: String,
        key: String,
    },
    /// Downward API field (`metadata.name`, …): resolved by the engine.
    Field {
        path: String,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

/// A container port, optionally published on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub container_port: u16,
    #[serde(default)]
    pub host_port: Option<u16>,
    #[serde(default)]
    pub host_ip: Option<String>,
    #[serde(default)]
    pub protocol: PortProtocol,
    #[serde(default)]
    pub name: Option<String>,
}

/// A volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Volume name (a [`Volume::name`]) or, for Compose bind mounts, the host path.
    pub source: String,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub sub_path: Option<String>,
}

/// A volume declared by the workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub source: VolumeSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum VolumeSource {
    /// Scratch space that lives and dies with the workload (`emptyDir`, anonymous volumes).
    Ephemeral {
        #[serde(default)]
        memory: bool,
    },
    /// A directory of the host (`hostPath`, Compose bind mounts).
    HostPath {
        path: String,
    },
    /// A named volume owned by the engine (Compose named volumes, PVC claims).
    Named {
        #[serde(default)]
        external: bool,
    },
    ConfigMap {
        name: String,
    },
    Secret {
        name: String,
    },
    /// A volume type the mesh cannot provide (cloud disks, NFS, …); kept for the warning.
    Unsupported {
        kind: String,
    },
}

/// A ConfigMap or Secret that travelled in the same file as its workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigObject {
    pub kind: ConfigKind,
    pub name: String,
    /// Values, decoded (Secret `data` is base64-decoded; binary values are kept as base64
    /// with the key in `binary_keys`).
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub binary_keys: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigKind {
    ConfigMap,
    Secret,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    /// Use a local image when there is one, pull otherwise (the default).
    #[default]
    IfNotPresent,
    Always,
    /// Never pull: the image must be local.
    Never,
}

/// A container health check (Compose `healthcheck`, Kubernetes `livenessProbe`/`readinessProbe`
/// with an `exec` action).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Command in Docker's form: `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    #[serde(default)]
    pub interval_ms: Option<u64>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub start_period_ms: Option<u64>,
}

/// Compose `depends_on` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub service: String,
    #[serde(default)]
    pub condition: DependencyCondition,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DependencyCondition {
    #[default]
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
    /// Compose `unless-stopped`.
    UnlessStopped,
}

/// The WASM module of a Function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// `sha256:<hex>` of the module bytes when known, else the path given in the manifest.
    pub source: ModuleSource,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Memory limit in bytes.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// Wall-clock limit in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "value")]
pub enum ModuleSource {
    /// A path, resolved by `meshctl` (which bundles the bytes) before the apply is sent.
    Path(String),
    /// A content address: `sha256:<64 hex>`.
    Digest(String),
}

/// A virtual machine (`beemesh.io/v1` VirtualMachine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualMachine {
    pub image: String,
    #[serde(default)]
    pub vcpus: Option<u32>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub disk_bytes: Option<u64>,
}

/// Run-to-completion settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobSpec {
    /// Retries after a failed run (`backoffLimit`, default 6 as in Kubernetes).
    #[serde(default)]
    pub backoff_limit: Option<u32>,
    /// Deadline for the whole job in milliseconds (`activeDeadlineSeconds`).
    #[serde(default)]
    pub active_deadline_ms: Option<u64>,
    #[serde(default)]
    pub completions: Option<u32>,
    /// Declared output files, checked by [`crate::job::check_output_path`]: collected from the
    /// instance's working directory after a successful run. Skipped when empty so that the
    /// content digest of jobs without outputs is unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
}

/// How new content replaces running replicas: a Deployment's `strategy`. Each replica is
/// updated in place on its node (new instance healthy, or the old one back); this says how
/// many are updated at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rollout {
    /// `RollingUpdate`: at most this many replicas updated at once.
    Rolling { max_unavailable: Amount },
    /// `Recreate`: every replica at once.
    Recreate,
}

/// A count, or a percentage of the replica count (`maxUnavailable: 25%`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Amount {
    Count(u32),
    Percent(u32),
}

impl Rollout {
    /// Replicas updated at once out of `replicas` (at least 1). Percentages round down, as
    /// Kubernetes rounds `maxUnavailable`.
    pub fn batch(&self, replicas: usize) -> usize {
        match self {
            Rollout::Recreate => replicas.max(1),
            Rollout::Rolling { max_unavailable } => match max_unavailable {
                Amount::Count(n) => *n as usize,
                Amount::Percent(p) => replicas * (*p).min(100) as usize / 100,
            }
            .max(1),
        }
    }
}

/// Host access a workload asks for beyond its own sandbox. The engines do not give these yet
/// (the parser warns that they are not honoured); they are recorded so that a node's trust
/// policy can refuse a workload that asks for them from a key not granted them, rather than
/// run it silently without.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostAccess {
    /// The host's network namespace (`hostNetwork`, Compose `network_mode: host`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub network: bool,
    /// The host's process namespace (`hostPID`, Compose `pid: host`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pid: bool,
    /// The host's IPC namespace (`hostIPC`, Compose `ipc: host`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ipc: bool,
    /// A privileged container (`securityContext.privileged`, Compose `privileged`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// Added Linux capabilities, upper case without `CAP_` (`capabilities.add`, `cap_add`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Host devices (Compose `devices`, Kubernetes `volumeDevices`), by host path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
}

impl HostAccess {
    /// Whether nothing is asked.
    pub fn is_none(&self) -> bool {
        *self == HostAccess::default()
    }

    /// Adds what `other` asks (a workload's containers together).
    pub fn merge(&mut self, other: HostAccess) {
        self.network |= other.network;
        self.pid |= other.pid;
        self.ipc |= other.ipc;
        self.privileged |= other.privileged;
        for c in other.capabilities {
            if !self.capabilities.contains(&c) {
                self.capabilities.push(c);
            }
        }
        for d in other.devices {
            if !self.devices.contains(&d) {
                self.devices.push(d);
            }
        }
    }
}
