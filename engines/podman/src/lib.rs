//! The Podman engine (`podman` in the registry): runs Kubernetes workloads (Pod, Deployment,
//! Job, DaemonSet) as Podman pods through `kube play` on Podman's REST API, with
//! [`podman_api`]. Compose workloads are forwarded to a delegate engine when one is set with
//! [`PodmanEngine::with_compose`] (the Docker engine pointed at Podman's Docker-compatible
//! socket); their handles are wrapped so that every later operation comes back here and is
//! forwarded too.
//!
//! # Lifecycle on Podman
//!
//! | phase | what happens |
//! |---|---|
//! | `validate` | a dry render of the YAML: unknown kinds, dangling ConfigMap/Secret/volume references |
//! | `fetch` | pulls `Always` images and missing `IfNotPresent` ones, each bounded by the pull timeout |
//! | `prepare` | every image is local, else `image <ref> is not available locally and could not be pulled: <why>`; creates nothing |
//! | `install` | `kube play` with `start=false`: Podman 4.3 honours it, creating the pod, its containers and its volumes without running anything |
//! | `start` | pod start (idempotent: a running pod is left alone); init containers run first, then are removed by Podman; a Job's main containers are then waited for (`wait`, up to 10 s, 8 Jobs at once) |
//! | `status` | pod and container inspection, see [`status::summarize`]; a Job's pod whose containers all exited 0, as Podman reported at the exit (the wait asked after its start, or the `died` events), is answered from that |
//! | `stop` | pod stop with the grace period as timeout |
//! | `remove` | what `podman kube down` does for the pod, plus leftovers labelled with the instance, its ConfigMap volumes and the workload's named volumes no container uses any more |
//! | `recover` | the pod by name (then by instance label): adopted with its status, or gone |
//!
//! A replica of a Deployment, DaemonSet or Job is one pod (the mesh places one replica per
//! node). The pod is named `mesh-<name>-<first 8 hex of the version>` (a DNS label, with
//! `-r<N>` for replica N > 0), so an update's old and new versions never share a name; the
//! [`Handle`](mesh_runtime::Handle)'s `instance` is the pod name and its `data` an
//! [`InstanceData`]: the rendered YAML and every object name needed to undo the instance.
//!
//! # Labels
//!
//! Pods and containers carry `beemesh.io/managed: "true"`, `beemesh.io/engine: podman`,
//! `beemesh.io/workload: <namespace>.<name>` (label values cannot contain `/`; a namespace
//! never contains `.`, so the first `.` splits the value back), `beemesh.io/version` (the
//! version's first 63 hex digits), `beemesh.io/node` (the node id, label-safe) and
//! `beemesh.io/instance` (the pod name). Named volumes the engine creates carry only the first
//! three: they outlive a version. See [`names`].
//!
//! # Podman 4.3 notes
//!
//! Secrets are rendered as ConfigMaps, emptyDir and ConfigMap volumes get pod-scoped names,
//! images without `PATH` get the usual default, and probes are rendered for Podman's
//! health-check conversion (see [`render`]). Podman runs health checks from systemd timers,
//! which a host without systemd lacks, and gives checks from a liveness probe the on-failure
//! action `restart`, which fails in a one-container pod: where Podman's results are overdue
//! the engine runs the check itself with an exec that triggers no action, so `status`
//! reports the health and the lifecycle controller decides.
//!
//! # Layout
//!
//! - [`engine`]: [`PodmanEngine`], socket resolution, the `Engine` implementation and the
//!   Compose seam.
//! - [`names`]: pod and object names, label keys and value encoding.
//! - [`render`]: `WorkloadSpec` → Kubernetes YAML for `kube play`.
//! - `images`: pulls and local image checks (`fetch`, `prepare`).
//! - `deploy`: install, start, stop, remove.
//! - [`status`]: status, health, recovery.
//! - `events`, `exits`, `wait`: Podman's events followed, a Job's containers waited for; the
//!   exit codes they give.
//! - `logs`: container logs, merged and tagged by container.
//! - `health`: health checks the engine runs where Podman's timers do not.
//! - [`handle`]: [`InstanceData`], the persisted description of an instance.
//! - `api`: bounded API calls that keep the daemon's HTTP status.

mod api;
mod deploy;
pub mod engine;
mod events;
mod exits;
pub mod handle;
mod health;
mod images;
mod logs;
pub mod names;
pub mod render;
pub mod status;
mod wait;

pub use podman_api;

pub use engine::{resolve_socket, PodmanEngine, DEFAULT_PULL_TIMEOUT, ROOTFUL_SOCKET};
pub use handle::InstanceData;

/// Registry name of the engine.
pub const NAME: &str = "podman";
