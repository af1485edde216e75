//! Shared helpers of the tests against the real Podman service: the skip-or-fail probe,
//! unique names, specs from YAML, bounded polling, and cleanup that also runs on panic.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mesh_engine_podman::names::LABEL_WORKLOAD;
use mesh_engine_podman::podman_api::opts::{
    ContainerListFilter, ContainerListOpts, PodListFilter, PodListOpts, VolumeListFilter,
    VolumeListOpts,
};
use mesh_engine_podman::PodmanEngine;
use mesh_protocol::WorkloadSpec;
use mesh_runtime::testing::engine_available;
use mesh_runtime::{Engine, Handle, InstallContext, InstanceState, InstanceStatus};

/// The busybox test image built by `scripts/setup-engines.sh`.
pub const IMAGE: &str = "localhost/mesh-test:latest";
/// Bound on a workload reaching a state.
pub const WAIT: Duration = Duration::from_secs(60);

/// The engine on the default socket, or `None` (test skipped) when the service or the test
/// image is absent and `MESH_REQUIRE_ENGINES` does not name podman.
pub async fn engine() -> Option<PodmanEngine> {
    let engine = PodmanEngine::connect(&PodmanEngine::default_socket(None));
    let fingerprint = tokio::time::timeout(Duration::from_secs(3), engine.fingerprint()).await;
    let probe = match fingerprint {
        Ok(f) if f.healthy => {
            let image = engine.client().images().get(IMAGE).exists().await;
            match image {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!(
                    "image {IMAGE} is missing: run scripts/setup-engines.sh"
                )),
                Err(e) => Err(e.to_string()),
            }
        }
        Ok(f) => Err(f.detail),
        Err(_) => Err("fingerprint timed out".to_string()),
    };
    engine_available("podman", probe).then_some(engine)
}

/// A name no other test (or earlier run) uses: `<prefix>-<pid><counter><time>` as a DNS label.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{:x}{n}{:x}", std::process::id(), nanos >> 8)
}

/// The single workload of a Kubernetes manifest.
pub fn parse_one(yaml: &str) -> WorkloadSpec {
    let specs = mesh_manifests::parse(yaml.as_bytes(), &Default::default())
        .expect("the test manifest parses");
    assert_eq!(specs.len(), 1, "one workload expected");
    specs.into_iter().next().expect("one workload")
}

/// A one-container Job (no retries, `restartPolicy: Never`) named `<prefix>-<unique>`, whose
/// container runs `script` with `sh -c`.
pub fn job(prefix: &str, script: &str) -> WorkloadSpec {
    let name = unique(prefix);
    parse_one(&format!(
        r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: {IMAGE}
        command: ["sh", "-c", "{script}"]
"#
    ))
}

/// A port nobody listens on now, for a published host port.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("bound address").port()
}

/// Polls `probe` until it yields `Some`, failing after `limit` with the last `Err` it saw.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, String>>,
{
    let deadline = Instant::now() + limit;
    let mut last = String::from("nothing yet");
    loop {
        match probe().await {
            Ok(Some(value)) => return value,
            Ok(None) => {}
            Err(e) => last = e,
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {limit:?}; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls the status until `done` accepts it.
pub async fn wait_status(
    engine: &PodmanEngine,
    handle: &Handle,
    what: &str,
    done: impl Fn(&InstanceStatus) -> bool,
) -> InstanceStatus {
    wait_for(what, WAIT, || async {
        let status = engine.status(handle).await.map_err(|e| e.to_string())?;
        if done(&status) {
            Ok(Some(status))
        } else {
            Err(format!("{:?} ({})", status.state, status.detail))
        }
    })
    .await
}

pub fn is_running(status: &InstanceStatus) -> bool {
    status.state == InstanceState::Running
}

/// Pods, containers and volumes labelled for `workload` (`<namespace>.<name>`), by name.
pub async fn labelled(engine: &PodmanEngine, workload: &str) -> Vec<String> {
    let podman = engine.client();
    let label = || (LABEL_WORKLOAD.to_string(), workload.to_string());
    let pods = podman
        .pods()
        .list(
            &PodListOpts::builder()
                .filter([PodListFilter::LabelKeyVal(label().0, label().1)])
                .build(),
        )
        .await
        .expect("pod list");
    let containers = podman
        .containers()
        .list(
            &ContainerListOpts::builder()
                .all(true)
                .filter([ContainerListFilter::LabelKeyVal(label().0, label().1)])
                .build(),
        )
        .await
        .expect("container list");
    let volumes = podman
        .volumes()
        .list(
            &VolumeListOpts::builder()
                .filter([VolumeListFilter::LabelKeyVal(label().0, label().1)])
                .build(),
        )
        .await
        .expect("volume list");
    let mut out: Vec<String> = pods
        .into_iter()
        .map(|p| format!("pod {}", p.name.unwrap_or_default()))
        .collect();
    out.extend(
        containers
            .into_iter()
            .map(|c| format!("container {:?}", c.names.unwrap_or_default())),
    );
    out.extend(volumes.into_iter().map(|v| format!("volume {}", v.name)));
    out
}

/// Removes the handles it holds when dropped, even when the test panicked, so that a failed
/// test leaves nothing behind. Runs on its own thread and runtime: `Drop` cannot await.
pub struct Cleanup {
    engine: PodmanEngine,
    handles: Mutex<Vec<Handle>>,
}

impl Cleanup {
    pub fn new(engine: &PodmanEngine) -> Self {
        Self {
            engine: engine.clone(),
            handles: Mutex::new(Vec::new()),
        }
    }

    pub fn add(&self, handle: &Handle) {
        self.handles
            .lock()
            .expect("cleanup lock")
            .push(handle.clone());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let handles = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|e| e.into_inner()));
        let engine = self.engine.clone();
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            rt.block_on(async {
                for handle in handles {
                    let removal = tokio::time::timeout(WAIT, engine.remove(&handle)).await;
                    if !matches!(removal, Ok(Ok(()))) {
                        eprintln!("cleanup of {} failed: {removal:?}", handle.instance);
                    }
                }
            });
        });
        let _ = worker.join();
    }
}

/// Prepare, install (registered with `cleanup` at once) and start `spec` on node "node-a".
pub async fn install_and_start(
    engine: &PodmanEngine,
    spec: &WorkloadSpec,
    cleanup: &Cleanup,
) -> Handle {
    engine.prepare(spec).await.expect("prepare");
    let ctx = InstallContext {
        node: "node-a".into(),
        replica: 0,
    };
    let handle = engine.install(spec, &ctx).await.expect("install");
    cleanup.add(&handle);
    engine.start(&handle).await.expect("start");
    handle
}
