//! [`PodmanEngine`]: construction, socket resolution, and the [`Engine`] implementation, which
//! dispatches to the operation modules or, for Compose workloads, to the delegate engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mesh_protocol::api::LogLine;
use mesh_protocol::{WorkloadKind, WorkloadSpec};
use mesh_runtime::error::Result;
use mesh_runtime::{
    Capability, Engine, Error, Fingerprint, Handle, InstallContext, InstanceStatus, LogOptions,
    Recovered,
};
use podman_api::Podman;

use crate::api::call;
use crate::exits::Exits;
use crate::handle::{compose_inner, wrap_compose, InstanceData};
use crate::health::OwnChecks;
use crate::names::Labels;
use crate::render::{render, Plan};
use crate::wait::JobWaits;
use crate::NAME;

/// Socket of the rootful Podman service.
pub const ROOTFUL_SOCKET: &str = "/run/podman/podman.sock";
/// Default bound on pulling one image.
pub const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on the fingerprint's own call, under the registry's 3 s.
const FINGERPRINT_TIMEOUT: Duration = Duration::from_millis(2_500);

const CAPABILITIES: &[Capability] = &[
    Capability::Logs,
    Capability::Sandbox,
    Capability::Volume,
    Capability::Network,
    Capability::K8s,
    Capability::Jobs,
    Capability::Recover,
    Capability::Limits,
];
const KINDS: &[WorkloadKind] = &[
    WorkloadKind::Pod,
    WorkloadKind::Deployment,
    WorkloadKind::Job,
    WorkloadKind::DaemonSet,
];

/// The Podman engine: Kubernetes workloads as pods through `kube play` on Podman's REST API.
#[derive(Debug, Clone)]
pub struct PodmanEngine {
    pub(crate) podman: Podman,
    socket: PathBuf,
    pub(crate) pull_timeout: Duration,
    /// Runs Compose workloads (the Docker engine pointed at Podman's Docker-compatible socket).
    compose: Option<Arc<dyn Engine>>,
    capabilities: Vec<Capability>,
    kinds: Vec<WorkloadKind>,
    /// Health checks the engine runs where Podman's timers do not; shared by clones.
    pub(crate) checks: Arc<OwnChecks>,
    /// Exit codes from Podman's events and waits (see `exits`); shared by clones.
    pub(crate) exits: Arc<Exits>,
    /// Job pods whose exit is being waited for (see `wait`); shared by clones.
    pub(crate) jobs: Arc<JobWaits>,
}

impl PodmanEngine {
    /// An engine for the Podman service listening on the Unix socket `socket`. Nothing is
    /// contacted here: [`Engine::fingerprint`] tells whether the service answers.
    pub fn connect(socket: &Path) -> Self {
        Self {
            podman: Podman::unix(socket),
            socket: socket.to_path_buf(),
            pull_timeout: DEFAULT_PULL_TIMEOUT,
            compose: None,
            capabilities: CAPABILITIES.to_vec(),
            kinds: KINDS.to_vec(),
            checks: Arc::default(),
            exits: Arc::default(),
            jobs: Arc::default(),
        }
    }

    /// Without the waits for a Job's containers (see `wait`): a Job's end comes from Podman's
    /// events (or the node's poll) alone. For tests of the events.
    pub fn without_job_waits(self) -> Self {
        self.jobs.turn_off();
        self
    }

    /// The socket to use: `explicit` when given, else `CONTAINER_HOST` when it is a
    /// `unix://` address, else the first of [`ROOTFUL_SOCKET`] and
    /// `$XDG_RUNTIME_DIR/podman/podman.sock` that exists, else [`ROOTFUL_SOCKET`].
    pub fn default_socket(explicit: Option<&Path>) -> PathBuf {
        resolve_socket(
            explicit,
            std::env::var("CONTAINER_HOST").ok().as_deref(),
            std::env::var("XDG_RUNTIME_DIR").ok().as_deref(),
            |p| p.exists(),
        )
    }

    /// Runs Compose workloads through `engine`: adds Compose to the kinds and capabilities and
    /// forwards every operation on a Compose spec or instance to it.
    pub fn with_compose(mut self, engine: Arc<dyn Engine>) -> Self {
        self.compose = Some(engine);
        if !self.kinds.contains(&WorkloadKind::Compose) {
            self.kinds.push(WorkloadKind::Compose);
            self.capabilities.push(Capability::Compose);
        }
        self
    }

    /// Bound on pulling one image in `fetch`/`prepare` (default [`DEFAULT_PULL_TIMEOUT`]).
    pub fn with_pull_timeout(mut self, timeout: Duration) -> Self {
        self.pull_timeout = timeout;
        self
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The Podman API client, for callers that inspect what the engine created.
    pub fn client(&self) -> &Podman {
        &self.podman
    }

    /// The delegate for a Compose spec; `None` for the kinds this engine runs itself.
    fn delegate_for(&self, spec: &WorkloadSpec) -> Result<Option<&Arc<dyn Engine>>> {
        if spec.kind != WorkloadKind::Compose {
            return Ok(None);
        }
        self.compose.as_ref().map(Some).ok_or_else(|| {
            Error::Invalid(
                "podman runs Compose through a delegate engine, and none is configured".to_string(),
            )
        })
    }

    /// The delegate and its own handle for a Compose instance.
    fn delegate_handle(&self, handle: &Handle) -> Result<Option<(&Arc<dyn Engine>, Handle)>> {
        let Some(inner) = compose_inner(handle) else {
            return Ok(None);
        };
        let delegate = self.compose.as_ref().ok_or_else(|| {
            Error::engine(
                NAME,
                format!(
                    "{} is a Compose instance but no delegate engine is configured",
                    handle.instance
                ),
            )
        })?;
        Ok(Some((delegate, inner)))
    }
}

/// [`PodmanEngine::default_socket`] with its environment passed in.
pub fn resolve_socket(
    explicit: Option<&Path>,
    container_host: Option<&str>,
    xdg_runtime_dir: Option<&str>,
    exists: impl Fn(&Path) -> bool,
) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_path_buf();
    }
    if let Some(path) = container_host
        .and_then(|h| h.strip_prefix("unix://"))
        .filter(|p| !p.is_empty())
    {
        return PathBuf::from(path);
    }
    let rootful = PathBuf::from(ROOTFUL_SOCKET);
    let rootless = xdg_runtime_dir
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join("podman/podman.sock"));
    std::iter::once(rootful.clone())
        .chain(rootless)
        .find(|p| exists(p))
        .unwrap_or(rootful)
}

#[async_trait]
impl Engine for PodmanEngine {
    fn name(&self) -> &str {
        NAME
    }

    async fn watch(&self, stopped: tokio::sync::mpsc::Sender<String>) -> Result<()> {
        self.jobs.tell(stopped.clone());
        crate::events::watch(&self.podman, &self.exits, stopped).await
    }

    fn capabilities(&self) -> &[Capability] {
        &self.capabilities
    }

    fn kinds(&self) -> &[WorkloadKind] {
        &self.kinds
    }

    async fn fingerprint(&self) -> Fingerprint {
        let at = format!("unix://{}", self.socket.display());
        if !self.socket.exists() {
            return Fingerprint::unhealthy(format!("{at}: no such socket"));
        }
        // The ping answers in milliseconds and its headers carry the version; Podman's
        // version endpoint takes seconds (it asks the OCI runtime and conmon for theirs).
        match call("ping", FINGERPRINT_TIMEOUT, self.podman.ping()).await {
            Ok(ping) => Fingerprint::healthy(
                ping.libpod_api_version.clone(),
                format!(
                    "podman {} (Docker API {}) at {at}",
                    ping.libpod_api_version, ping.api_version
                ),
            ),
            Err(e) => Fingerprint::unhealthy(format!("{at}: {}", Error::from(e))),
        }
    }

    async fn validate(&self, spec: &WorkloadSpec) -> Result<()> {
        if let Some(delegate) = self.delegate_for(spec)? {
            return delegate.validate(spec).await;
        }
        // A dry render catches what kube play would reject (unknown kinds, dangling
        // references) before anything is fetched.
        let labels = Labels::new(
            spec,
            &InstallContext {
                node: String::new(),
                replica: 0,
            },
        );
        let none = Default::default();
        render(&Plan {
            spec,
            labels: &labels,
            new_claims: &none,
            images_without_path: &none,
        })
        .map(|_| ())
        .map_err(Error::Invalid)
    }

    async fn fetch(&self, spec: &WorkloadSpec) -> Result<()> {
        match self.delegate_for(spec)? {
            Some(delegate) => delegate.fetch(spec).await,
            None => self.fetch_images(spec).await,
        }
    }

    async fn prepare(&self, spec: &WorkloadSpec) -> Result<()> {
        match self.delegate_for(spec)? {
            Some(delegate) => delegate.prepare(spec).await,
            None => self.require_images(spec).await,
        }
    }

    async fn install(&self, spec: &WorkloadSpec, ctx: &InstallContext) -> Result<Handle> {
        match self.delegate_for(spec)? {
            Some(delegate) => delegate.install(spec, ctx).await.map(wrap_compose),
            None => self.install_pod(spec, ctx).await,
        }
    }

    async fn start(&self, handle: &Handle) -> Result<()> {
        match self.delegate_handle(handle)? {
            Some((delegate, inner)) => delegate.start(&inner).await,
            None => self.start_pod(handle).await,
        }
    }

    async fn status(&self, handle: &Handle) -> Result<InstanceStatus> {
        match self.delegate_handle(handle)? {
            Some((delegate, inner)) => delegate.status(&inner).await,
            None => self.pod_status(handle).await,
        }
    }

    async fn logs(&self, handle: &Handle, opts: LogOptions) -> Result<Vec<LogLine>> {
        match self.delegate_handle(handle)? {
            Some((delegate, inner)) => delegate.logs(&inner, opts).await,
            None => self.pod_logs(handle, opts).await,
        }
    }

    async fn stop(&self, handle: &Handle, grace: Duration) -> Result<()> {
        match self.delegate_handle(handle)? {
            Some((delegate, inner)) => delegate.stop(&inner, grace).await,
            None => {
                self.stop_pod(&InstanceData::from_handle(handle).pod, grace)
                    .await
            }
        }
    }

    async fn remove(&self, handle: &Handle) -> Result<()> {
        match self.delegate_handle(handle)? {
            Some((delegate, inner)) => delegate.remove(&inner).await,
            None => self.cleanup(&InstanceData::from_handle(handle)).await,
        }
    }

    async fn recover(&self, handle: &Handle) -> Result<Recovered> {
        match self.delegate_handle(handle)? {
            Some((delegate, inner)) => delegate.recover(&inner).await,
            None => self.recover_pod(handle).await,
        }
    }
}

#[cfg(test)]
mod tests;
