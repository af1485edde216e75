//! The Docker engine: runs Compose projects and Kubernetes workload kinds as containers
//! through the Docker API (`bollard`) over a Unix socket.
//!
//! One [`DockerEngine`] value talks to one daemon. The same type serves two registry names:
//! `docker` against dockerd, and the Compose path of `podman` against Podman's
//! Docker-compatible socket; the only difference is handled in [`client`] (Podman without
//! systemd does not run health checks by itself, so the engine asks it to).
//!
//! An *instance* (what a [`Handle`] points to) is one replica of one workload version on this
//! node: a bridge network `mesh-<name>-<ver8>`, its volumes and config files, and one
//! container per service replica, `mesh-<name>-<ver8>-<service>-<index>`. Kubernetes kinds are
//! translated: the pod's containers become containers on the instance network, reachable by
//! container name (the fallback "a Kubernetes Pod on a node without Podman runs on Docker").
//! Every object carries `beemesh.io/*` labels ([`labels`]), from which the engine can find,
//! start, inspect and remove an instance without its handle.
//!
//! Choices worth knowing:
//! - The second and later replicas of a workload on one node get `-r<replica>` after the
//!   version in their names, so replicas never collide.
//! - Compose named volumes are shared by every version of the workload on the node
//!   (`mesh-<namespace>-<name>-<volume>`), so data survives an update; `remove` deletes one
//!   once no container uses it. `emptyDir` and anonymous volumes belong to one instance.
//! - A Kubernetes pod's containers share a network, not `localhost`: they reach each other
//!   by container name (network alias).
//! - `install` first removes leftovers of the very same instance (same workload version and
//!   replica), which only an interrupted install can leave.
//! - A container its restart policy is about to restart counts as exited (crash loop).
//! - Job retries (`backoff_limit`) and deadlines belong to the controller: job containers
//!   never restart.
//!
//! # Layout
//!
//! - [`client`]: lazy connection, API version negotiation, error mapping, Podman health runs.
//! - [`labels`]: label keys, object names, label filters.
//! - [`plan`]: validation naming the manifest field, start order (pure).
//! - [`mounts`]: mount sources, volumes and config files of an instance (pure).
//! - [`container`]: one spec container to a container-create body (pure).
//! - [`install`]: prepare (images, external volumes) and install; [`HandleData`].
//! - [`run`]: start (init containers, `depends_on` conditions) and stop.
//! - [`observe`]: members by label, status, logs, recover.
//! - [`cleanup`]: remove, by handle and by label.
//! - [`raw`]: lenient list and inspect reads (Podman's extra states), Podman health runs.
//! - `time`: RFC 3339 timestamps of log lines (`mesh_runtime::time`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use mesh_protocol::api::LogLine;
use mesh_protocol::{WorkloadKind, WorkloadSpec};
use mesh_runtime::engine::{
    Capability, Engine, Fingerprint, Handle, InstallContext, InstanceStatus, LogOptions, Recovered,
};
use mesh_runtime::error::{Error, Result};

pub mod cleanup;
pub mod client;
pub mod container;
pub mod install;
pub mod labels;
pub mod mounts;
pub mod observe;
pub mod plan;
pub mod raw;
pub mod run;
/// RFC 3339 timestamps of log lines: the runtime's one parser.
pub use mesh_runtime::time;

pub use install::{ContainerRef, HandleData};

/// The default daemon socket.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// Bound on one fingerprint probe (the registry bounds the call at 3 s).
pub const FINGERPRINT_TIMEOUT: Duration = Duration::from_millis(2500);
/// Default bound on one image pull attempt in `prepare`.
pub const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(120);

const CAPABILITIES: &[Capability] = &[
    Capability::Logs,
    Capability::Sandbox,
    Capability::Volume,
    Capability::Network,
    Capability::Compose,
    Capability::Jobs,
    Capability::Recover,
    Capability::Limits,
    Capability::K8s,
];

const KINDS: &[WorkloadKind] = &[
    WorkloadKind::Compose,
    WorkloadKind::Pod,
    WorkloadKind::Deployment,
    WorkloadKind::Job,
    WorkloadKind::DaemonSet,
];

/// The socket named by `DOCKER_HOST` when it is a `unix://` address, else
/// [`DEFAULT_SOCKET`]. Other schemes (tcp, ssh) are not supported and fall back.
pub fn default_socket() -> PathBuf {
    socket_from(std::env::var("DOCKER_HOST").ok().as_deref())
}

fn socket_from(docker_host: Option<&str>) -> PathBuf {
    match docker_host.map(str::trim) {
        Some(host) if host.starts_with("unix://") => PathBuf::from(&host["unix://".len()..]),
        Some(host) if !host.is_empty() => {
            tracing::warn!(
                docker_host = host,
                "only unix:// DOCKER_HOST is supported; using {DEFAULT_SOCKET}"
            );
            PathBuf::from(DEFAULT_SOCKET)
        }
        _ => PathBuf::from(DEFAULT_SOCKET),
    }
}

/// A Docker-API engine bound to one daemon socket.
#[derive(Debug)]
pub struct DockerEngine {
    name: String,
    client: client::Client,
    state_dir: PathBuf,
    pull_timeout: Duration,
}

impl DockerEngine {
    /// An engine registered as `name`, talking to the daemon at `socket`, writing its files
    /// (ConfigMap and Secret contents) under `state_dir`. Never fails: the daemon is reached
    /// on first use, and [`Engine::fingerprint`] reports whether it answers.
    pub fn connect(name: &str, socket: &Path, state_dir: PathBuf) -> Self {
        Self {
            name: name.to_string(),
            client: client::Client::new(name, socket),
            state_dir,
            pull_timeout: DEFAULT_PULL_TIMEOUT,
        }
    }

    /// Bounds each image pull attempt of `prepare`.
    pub fn with_pull_timeout(mut self, timeout: Duration) -> Self {
        self.pull_timeout = timeout;
        self
    }

    pub fn socket(&self) -> &Path {
        self.client.socket()
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The daemon connection (negotiated on first use; a failed fingerprint drops it so that
    /// a restarted or upgraded daemon is negotiated afresh).
    pub(crate) async fn connection(&self) -> Result<client::Connection> {
        self.client.get().await
    }
}

#[async_trait]
impl Engine for DockerEngine {
    fn name(&self) -> &str {
        &self.name
    }

    /// `GET /events` of the daemon, containers with the instance label only: `die` (the
    /// process ended) and `destroy` (removed, by the node or by hand).
    async fn watch(&self, stopped: tokio::sync::mpsc::Sender<String>) -> Result<()> {
        use futures::StreamExt;
        let docker = self.client.docker().await?;
        let filters = std::collections::HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "event".to_string(),
                vec!["die".to_string(), "destroy".to_string()],
            ),
            ("label".to_string(), vec![labels::INSTANCE.to_string()]),
        ]);
        let options = bollard::query_parameters::EventsOptionsBuilder::new()
            .filters(&filters)
            .build();
        let mut events = docker.events(Some(options));
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| Error::engine(&self.name, format!("events: {e}")))?;
            let instance = event
                .actor
                .and_then(|a| a.attributes)
                .and_then(|a| a.get(labels::INSTANCE).cloned());
            if let Some(instance) = instance {
                if stopped.send(instance).await.is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn capabilities(&self) -> &[Capability] {
        CAPABILITIES
    }

    fn kinds(&self) -> &[WorkloadKind] {
        KINDS
    }

    async fn fingerprint(&self) -> Fingerprint {
        let socket = self.client.socket().display().to_string();
        let probe = async {
            let conn = self.client.get().await?;
            // Asked afresh each time: the daemon may have been restarted or upgraded.
            let daemon = self.client.probe().await?;
            Ok::<_, Error>((conn, daemon))
        };
        match tokio::time::timeout(FINGERPRINT_TIMEOUT, probe).await {
            Ok(Ok((conn, daemon))) => {
                if daemon.version != conn.version {
                    self.client.reset().await;
                }
                let kind = if daemon.podman.is_some() {
                    "podman (docker api)"
                } else {
                    "docker"
                };
                Fingerprint::healthy(
                    daemon.version,
                    format!("{kind} at {socket}, api {}", daemon.api),
                )
            }
            Ok(Err(e)) => {
                self.client.reset().await;
                Fingerprint::unhealthy(e.to_string())
            }
            Err(_) => {
                self.client.reset().await;
                Fingerprint::unhealthy(format!(
                    "{socket}: no answer within {FINGERPRINT_TIMEOUT:?}"
                ))
            }
        }
    }

    async fn validate(&self, spec: &WorkloadSpec) -> Result<()> {
        if !KINDS.contains(&spec.kind) {
            return Err(Error::Invalid(format!(
                "engine {} cannot run kind {}",
                self.name, spec.kind
            )));
        }
        plan::validate(spec)
    }

    async fn prepare(&self, spec: &WorkloadSpec) -> Result<()> {
        self.prepare_images(spec).await
    }

    async fn install(&self, spec: &WorkloadSpec, ctx: &InstallContext) -> Result<Handle> {
        self.install_instance(spec, ctx).await
    }

    async fn start(&self, handle: &Handle) -> Result<()> {
        self.start_instance(handle).await
    }

    async fn status(&self, handle: &Handle) -> Result<InstanceStatus> {
        self.instance_status(handle).await
    }

    async fn logs(&self, handle: &Handle, opts: LogOptions) -> Result<Vec<LogLine>> {
        self.instance_logs(handle, opts).await
    }

    async fn stop(&self, handle: &Handle, grace: Duration) -> Result<()> {
        self.stop_instance(handle, grace).await
    }

    async fn remove(&self, handle: &Handle) -> Result<()> {
        self.remove_instance(&handle.instance, &HandleData::of(handle))
            .await
    }

    async fn recover(&self, handle: &Handle) -> Result<Recovered> {
        self.recover_instance(handle).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_resolution() {
        assert_eq!(socket_from(None), PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(
            socket_from(Some("unix:///run/podman/podman.sock")),
            PathBuf::from("/run/podman/podman.sock")
        );
        assert_eq!(
            socket_from(Some("tcp://10.0.0.1:2375")),
            PathBuf::from(DEFAULT_SOCKET)
        );
        assert_eq!(socket_from(Some("")), PathBuf::from(DEFAULT_SOCKET));
    }

    #[test]
    fn kubernetes_kinds_and_compose_are_announced() {
        let engine = DockerEngine::connect(
            "docker",
            Path::new("/nonexistent.sock"),
            PathBuf::from("/tmp/x"),
        );
        assert!(engine.kinds().contains(&WorkloadKind::Pod));
        assert!(engine.kinds().contains(&WorkloadKind::Compose));
        assert!(!engine.kinds().contains(&WorkloadKind::Function));
        assert!(engine.capabilities().contains(&Capability::Limits));
    }
}
