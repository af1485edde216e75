//! The contract between the lifecycle controller and an execution engine. Engines only
//! *execute*; every lifecycle decision (ordering, timeouts, rollback, events) lives in the
//! controller, so there are no engine-specific branches there.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use mesh_protocol::api::LogLine;
use mesh_protocol::job::Artifact;
use mesh_protocol::{WorkloadKind, WorkloadSpec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What an engine can do beyond the mandatory operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    Logs,
    Metrics,
    /// Workloads are isolated from the host (containers, WASM).
    Sandbox,
    Volume,
    Network,
    Wasm,
    /// Runs Kubernetes workload kinds natively.
    K8s,
    Compose,
    /// Run-to-completion workloads.
    Jobs,
    /// Can re-adopt instances after a node restart.
    Recover,
    /// CPU and memory limits are enforced.
    Limits,
    /// Declared output files of a finished run can be collected ([`Engine::collect`]).
    Outputs,
}

impl Capability {
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Logs => "logs",
            Capability::Metrics => "metrics",
            Capability::Sandbox => "sandbox",
            Capability::Volume => "volume",
            Capability::Network => "network",
            Capability::Wasm => "wasm",
            Capability::K8s => "k8s",
            Capability::Compose => "compose",
            Capability::Jobs => "jobs",
            Capability::Recover => "recover",
            Capability::Limits => "limits",
            Capability::Outputs => "outputs",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Result of a periodic health probe of an engine (daemon reachable, version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub healthy: bool,
    pub version: Option<String>,
    /// Why it is unhealthy, or what it talks to (socket path, …).
    pub detail: String,
}

impl Fingerprint {
    pub fn healthy(version: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            healthy: true,
            version: Some(version.into()),
            detail: detail.into(),
        }
    }

    pub fn unhealthy(detail: impl Into<String>) -> Self {
        Self {
            healthy: false,
            version: None,
            detail: detail.into(),
        }
    }
}

/// Engine-owned reference to one installed instance. Persisted by the node so that the
/// instance can be re-adopted after a restart; only the engine interprets `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handle {
    pub engine: String,
    /// Engine-side id (container id, pod name, process id, …).
    pub instance: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

/// What the controller tells an engine about the instance it installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallContext {
    /// Node id of the node installing it (labels, log lines).
    pub node: String,
    /// Replica ordinal on this node (0 for the first).
    pub replica: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceState {
    /// Installed, not started.
    Created,
    Running,
    /// Exited on its own with this code.
    Exited {
        code: i32,
    },
    /// The engine reports a failure (OOM-killed, trapped, crashed).
    Failed {
        reason: String,
    },
    /// The engine does not know the instance.
    Missing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    /// The workload defines no health check: running means healthy.
    NoCheck,
    Starting,
    Healthy,
    Unhealthy {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub state: InstanceState,
    pub health: Health,
    pub restarts: u32,
    /// Engine's own words (container state, …).
    pub detail: String,
}

impl InstanceStatus {
    pub fn running(health: Health) -> Self {
        Self {
            state: InstanceState::Running,
            health,
            restarts: 0,
            detail: String::new(),
        }
    }
}

/// Outcome of [`Engine::recover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// The instance still exists; here is its current status.
    Adopted(InstanceStatus),
    /// The instance is gone (the daemon lost it, the host rebooted): it must be reinstalled.
    Gone,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Only the last N lines.
    pub tail: Option<usize>,
}

/// An execution engine. Mandatory operations are the lifecycle's; optional ones are
/// announced by [`Engine::capabilities`] and default to [`Error::Unsupported`].
///
/// Contract: `prepare` and `install` leave nothing behind when they fail; `stop` and `remove`
/// are idempotent (removing a missing instance is Ok).
#[async_trait]
pub trait Engine: Send + Sync + fmt::Debug + 'static {
    /// Registry name (`podman`, `docker`, `wasm`, `process`, `mock`).
    fn name(&self) -> &str;

    fn capabilities(&self) -> &[Capability];

    /// Workload kinds this engine can run.
    fn kinds(&self) -> &[WorkloadKind];

    /// Probe the engine: reachable, version. Called periodically by the registry.
    async fn fingerprint(&self) -> Fingerprint;

    /// Engine-specific checks of the spec (Validate phase).
    async fn validate(&self, _spec: &WorkloadSpec) -> Result<()> {
        Ok(())
    }

    /// Bring artefacts (images, modules) to the node (Fetch phase).
    async fn fetch(&self, _spec: &WorkloadSpec) -> Result<()> {
        Ok(())
    }

    /// Everything the instance needs before it exists: networks, volumes (Prepare phase).
    async fn prepare(&self, spec: &WorkloadSpec) -> Result<()>;

    /// Create the instance without starting it (Install phase).
    async fn install(&self, spec: &WorkloadSpec, ctx: &InstallContext) -> Result<Handle>;

    /// Start an installed instance (Activate phase, and restart after a rollback).
    async fn start(&self, handle: &Handle) -> Result<()>;

    async fn status(&self, handle: &Handle) -> Result<InstanceStatus>;

    async fn logs(&self, _handle: &Handle, _opts: LogOptions) -> Result<Vec<LogLine>> {
        Err(Error::Unsupported {
            engine: self.name().to_string(),
            operation: "logs",
        })
    }

    /// Stop, waiting up to `grace` before killing.
    async fn stop(&self, handle: &Handle, grace: Duration) -> Result<()>;

    /// Remove the instance and everything it created.
    async fn remove(&self, handle: &Handle) -> Result<()>;

    /// Re-attach to an instance after the node restarted, from its persisted handle.
    async fn recover(&self, handle: &Handle) -> Result<Recovered>;

    /// Follows the engine's own events and sends the instance name ([`Handle::instance`]) of
    /// every instance of this node's that stopped, died or was removed, as the engine reports
    /// it, until the event stream ends (the daemon restarted) or `stopped` is closed. The node
    /// then looks at that instance at once, rather than at its next poll. Engines without an
    /// events API answer [`Error::Unsupported`] and are polled only.
    async fn watch(&self, _stopped: tokio::sync::mpsc::Sender<String>) -> Result<()> {
        Err(Error::Unsupported {
            engine: self.name().to_string(),
            operation: "following events",
        })
    }

    /// Copies the declared output files of a finished instance (paths relative to its working
    /// directory, checked by `mesh_protocol::job::check_output_path`; a trailing `/` names a
    /// directory) into `dest`, bounded as [`crate::artifact::collect`] is. A declared path
    /// that does not exist is an [`Error::Output`]. Announced by [`Capability::Outputs`].
    async fn collect(
        &self,
        _handle: &Handle,
        _outputs: &[String],
        _dest: &Path,
    ) -> Result<Vec<Artifact>> {
        Err(Error::Unsupported {
            engine: self.name().to_string(),
            operation: "collecting output files",
        })
    }
}

/// [`Engine::watch`] for an engine that learns of its instances' ends itself (the WASM
/// engine's runners, the process engine's reaped children) and broadcasts their names on
/// `ended`: forwards each to `stopped` until either side closes. Names missed because the
/// receiver fell behind are left to the node's monitor poll.
pub async fn forward_ended(
    mut ended: tokio::sync::broadcast::Receiver<String>,
    stopped: tokio::sync::mpsc::Sender<String>,
) -> Result<()> {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match ended.recv().await {
            Ok(instance) => {
                if stopped.send(instance).await.is_err() {
                    return Ok(());
                }
            }
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return Ok(()),
        }
    }
}
