//! Shared helpers of the engine's integration tests: daemon probes that skip or fail per
//! `MESH_REQUIRE_ENGINES`, unique names, spec builders, bounded waits and leftover checks.
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bollard::query_parameters::{ListContainersOptions, ListNetworksOptions, ListVolumesOptions};
use mesh_engine_docker::DockerEngine;
use mesh_protocol::spec::{Container, PullPolicy, SourceFormat};
use mesh_protocol::{WorkloadKind, WorkloadSpec};
use mesh_runtime::engine::{Engine, Handle, InstallContext, InstanceState, InstanceStatus};
use mesh_runtime::testing::engine_available;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
pub const PODMAN_SOCKET: &str = "/run/podman/podman.sock";
pub const IMAGE: &str = "localhost/mesh-test:latest";

/// Bound on a workload reaching a state in these tests.
pub const WAIT: Duration = Duration::from_secs(60);

/// An engine under test with its own state directory.
pub struct TestEngine {
    pub engine: DockerEngine,
    pub state: tempfile::TempDir,
    pub socket: &'static str,
}

/// The engine named `name` on `socket`, or `None` (printed) when its daemon is unavailable
/// and `MESH_REQUIRE_ENGINES` does not name it.
pub async fn engine(name: &str, socket: &'static str) -> Option<TestEngine> {
    let state = tempfile::tempdir().expect("temp dir");
    let engine = DockerEngine::connect(name, Path::new(socket), state.path().to_path_buf());
    let fp = engine.fingerprint().await;
    let probe = if fp.healthy { Ok(()) } else { Err(fp.detail) };
    if !engine_available(name, probe) {
        return None;
    }
    Some(TestEngine {
        engine,
        state,
        socket,
    })
}

/// A workload name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after epoch")
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A container of the test image running `script` with `sh -c`.
pub fn sh(name: &str, script: &str) -> Container {
    Container {
        name: name.to_string(),
        image: IMAGE.to_string(),
        args: vec!["sh".into(), "-c".into(), script.into()],
        pull_policy: PullPolicy::Never,
        init: true,
        ..Default::default()
    }
}

pub fn compose(name: &str, containers: Vec<Container>) -> WorkloadSpec {
    let mut spec = WorkloadSpec::new(
        name,
        "default",
        WorkloadKind::Compose,
        SourceFormat::Compose,
    );
    spec.containers = containers;
    spec.seal()
}

pub fn ctx() -> InstallContext {
    InstallContext {
        node: "test-node".to_string(),
        replica: 0,
    }
}

/// Validate, prepare, install and start, as the lifecycle controller does.
pub async fn deploy(engine: &DockerEngine, spec: &WorkloadSpec) -> Handle {
    engine.validate(spec).await.expect("validate");
    engine.prepare(spec).await.expect("prepare");
    let handle = engine.install(spec, &ctx()).await.expect("install");
    if let Err(e) = engine.start(&handle).await {
        let _ = engine.remove(&handle).await;
        panic!("start failed: {e}");
    }
    handle
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// Polls `check` until it returns `Some`, at most `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(50);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Polls status until `pred` holds.
pub async fn wait_status(
    engine: &DockerEngine,
    handle: &Handle,
    pred: impl Fn(&InstanceStatus) -> bool,
) -> InstanceStatus {
    let mut last = None;
    let deadline = Instant::now() + WAIT;
    loop {
        let status = engine.status(handle).await.expect("status");
        if pred(&status) {
            return status;
        }
        if Instant::now() >= deadline {
            panic!("status never matched within {WAIT:?}; last: {last:?}");
        }
        last = Some(status);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn is_running(s: &InstanceStatus) -> bool {
    s.state == InstanceState::Running
}

/// The body of `GET /` on 127.0.0.1:`port`, or `None` while nothing answers.
pub async fn http_get(port: u16) -> Option<String> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        stream
            .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .ok()?;
        let mut body = Vec::new();
        stream.read_to_end(&mut body).await.ok()?;
        let text = String::from_utf8_lossy(&body).to_string();
        text.starts_with("HTTP/1.").then_some(text)
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
}

/// A raw client of the same daemon, for assertions the engine API does not expose.
pub fn raw(socket: &str) -> bollard::Docker {
    bollard::Docker::connect_with_unix(
        socket,
        60,
        &bollard::ClientVersion {
            major_version: 1,
            minor_version: 41,
        },
    )
    .expect("socket exists")
}

/// Names of containers, networks and volumes labelled with workload `id` (`namespace/name`).
pub async fn leftovers(socket: &str, id: &str) -> Vec<String> {
    let docker = raw(socket);
    let filters = std::collections::HashMap::from([(
        "label".to_string(),
        vec![format!("beemesh.io/workload={id}")],
    )]);
    let mut found = Vec::new();
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await
        .expect("list containers");
    found.extend(
        containers
            .into_iter()
            .map(|c| format!("container {:?}", c.names)),
    );
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filters.clone()),
        }))
        .await
        .expect("list networks");
    found.extend(
        networks
            .into_iter()
            .map(|n| format!("network {:?}", n.name)),
    );
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(filters),
        }))
        .await
        .expect("list volumes");
    found.extend(
        volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| format!("volume {}", v.name)),
    );
    found
}

/// Ids of the containers of an instance, by label.
pub async fn container_ids(socket: &str, instance: &str) -> Vec<String> {
    let docker = raw(socket);
    let filters = std::collections::HashMap::from([(
        "label".to_string(),
        vec![format!("beemesh.io/instance={instance}")],
    )]);
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .expect("list containers");
    let mut ids: Vec<String> = list.into_iter().filter_map(|c| c.id).collect();
    ids.sort();
    ids
}

/// Removes the instance and asserts nothing of the workload is left.
pub async fn remove_and_check(
    engine: &DockerEngine,
    socket: &str,
    spec: &WorkloadSpec,
    handle: &Handle,
) {
    engine.remove(handle).await.expect("remove");
    engine.remove(handle).await.expect("remove is idempotent");
    let left = leftovers(socket, &spec.id().to_string()).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Runs `body`; when it panics, removes the instance before passing the panic on, so a
/// failing test leaves no containers behind.
pub async fn cleaning_up<F: Future<Output = ()>>(engine: &DockerEngine, handle: &Handle, body: F) {
    use futures::FutureExt as _;
    let outcome = std::panic::AssertUnwindSafe(body).catch_unwind().await;
    if let Err(panic) = outcome {
        let _ = engine.remove(handle).await;
        std::panic::resume_unwind(panic);
    }
}
