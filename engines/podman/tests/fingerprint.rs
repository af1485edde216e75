//! The periodic fingerprint: healthy with a version on the real service, unhealthy at once
//! (with the reason) when the socket is missing or nobody listens on it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use mesh_engine_podman::PodmanEngine;
use mesh_runtime::Engine;

#[tokio::test]
async fn the_real_service_is_healthy_with_its_version() {
    let Some(engine) = common::engine().await else {
        return;
    };
    let started = Instant::now();
    let fingerprint = engine.fingerprint().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(fingerprint.healthy, "{fingerprint:?}");
    let version = fingerprint.version.expect("a version");
    assert!(
        version.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "{version}"
    );
    assert!(
        fingerprint
            .detail
            .contains(&engine.socket().display().to_string()),
        "{}",
        fingerprint.detail
    );
}

#[tokio::test]
async fn a_missing_socket_is_unhealthy_quickly() {
    let engine = PodmanEngine::connect(Path::new("/nonexistent/podman/podman.sock"));
    let started = Instant::now();
    let fingerprint = engine.fingerprint().await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(!fingerprint.healthy);
    assert!(
        fingerprint
            .detail
            .contains("/nonexistent/podman/podman.sock"),
        "{}",
        fingerprint.detail
    );
}

/// A socket file left behind by a stopped service: connecting is refused.
#[tokio::test]
async fn a_dead_socket_is_unhealthy_quickly() {
    let dir = std::env::temp_dir().join(common::unique("fp"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("podman.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind a socket"));
    let engine = PodmanEngine::connect(&path);
    let started = Instant::now();
    let fingerprint = engine.fingerprint().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!fingerprint.healthy, "{fingerprint:?}");
    assert!(fingerprint.version.is_none());
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}

/// With the daemon unreachable, the engine cannot tell whether the pod exists: operations
/// fail with the reason instead of reporting the pod missing or gone.
#[tokio::test]
async fn an_unreachable_daemon_is_an_error_not_a_missing_pod() {
    let engine = PodmanEngine::connect(Path::new("/nonexistent/podman/podman.sock"));
    let handle = mesh_engine_podman::InstanceData {
        pod: "mesh-web-0123abcd".into(),
        ..Default::default()
    }
    .into_handle();
    let status = engine.status(&handle).await;
    assert!(status.is_err(), "{status:?}");
    assert!(engine.recover(&handle).await.is_err());
    assert!(engine.remove(&handle).await.is_err());
}
