//! Unit tests of socket resolution and of the Compose seam (against the mock engine).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mesh_protocol::spec::SourceFormat;
use mesh_protocol::{WorkloadKind, WorkloadSpec};
use mesh_runtime::mock::MockEngine;
use mesh_runtime::{Capability, Engine, InstallContext, InstanceState, Recovered};

use super::{resolve_socket, PodmanEngine, ROOTFUL_SOCKET};

#[test]
fn socket_resolution_order() {
    let none = |_: &Path| false;
    let all = |_: &Path| true;
    let explicit = Path::new("/tmp/x.sock");
    assert_eq!(
        resolve_socket(Some(explicit), Some("unix:///a.sock"), None, none),
        explicit
    );
    assert_eq!(
        resolve_socket(None, Some("unix:///a.sock"), None, none),
        PathBuf::from("/a.sock")
    );
    // Remote hosts need TLS or SSH, which this engine does not speak: skipped.
    assert_eq!(
        resolve_socket(None, Some("tcp://h:1"), None, none),
        PathBuf::from(ROOTFUL_SOCKET)
    );
    assert_eq!(
        resolve_socket(None, None, Some("/run/user/7"), all),
        PathBuf::from(ROOTFUL_SOCKET)
    );
    let rootless = |p: &Path| p.starts_with("/run/user");
    assert_eq!(
        resolve_socket(None, None, Some("/run/user/7"), rootless),
        PathBuf::from("/run/user/7/podman/podman.sock")
    );
}

#[test]
fn compose_is_only_announced_with_a_delegate() {
    let plain = PodmanEngine::connect(Path::new("/nonexistent.sock"));
    assert!(!plain.kinds().contains(&WorkloadKind::Compose));
    assert!(plain.capabilities().contains(&Capability::Limits));
    let with = plain.with_compose(Arc::new(MockEngine::new()));
    assert!(with.kinds().contains(&WorkloadKind::Compose));
    assert!(with.capabilities().contains(&Capability::Compose));
}

/// A Compose workload goes through the delegate for every operation, while its handle says
/// `podman` so that the controller keeps routing it here.
#[tokio::test]
async fn compose_operations_are_forwarded_to_the_delegate() {
    let mock = Arc::new(MockEngine::new());
    let engine = PodmanEngine::connect(Path::new("/nonexistent.sock")).with_compose(mock.clone());
    let spec = WorkloadSpec::new(
        "app",
        "default",
        WorkloadKind::Compose,
        SourceFormat::Compose,
    )
    .seal();
    let ctx = InstallContext {
        node: "n".into(),
        replica: 0,
    };
    engine.validate(&spec).await.expect("validate");
    engine.prepare(&spec).await.expect("prepare");
    let handle = engine.install(&spec, &ctx).await.expect("install");
    assert_eq!(handle.engine, "podman");
    engine.start(&handle).await.expect("start");
    assert_eq!(
        engine.status(&handle).await.expect("status").state,
        InstanceState::Running
    );
    assert!(!engine
        .logs(&handle, Default::default())
        .await
        .expect("logs")
        .is_empty());
    assert!(matches!(
        engine.recover(&handle).await.expect("recover"),
        Recovered::Adopted(_)
    ));
    engine
        .stop(&handle, Duration::from_secs(1))
        .await
        .expect("stop");
    engine.remove(&handle).await.expect("remove");
    assert_eq!(mock.counters.installs.load(Ordering::Relaxed), 1);
    assert_eq!(mock.counters.starts.load(Ordering::Relaxed), 1);
    assert_eq!(mock.counters.removes.load(Ordering::Relaxed), 1);
    assert!(mock.instances().is_empty());

    let alone = PodmanEngine::connect(Path::new("/nonexistent.sock"));
    assert!(alone.install(&spec, &ctx).await.is_err());
}
