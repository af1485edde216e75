//! What the engine refuses or reports before and around running: missing images at
//! prepare, limits in the container's host config, daemon fingerprints, and dependency
//! conditions that cannot be met.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use mesh_engine_docker::DockerEngine;
use mesh_protocol::spec::{
    Dependency, DependencyCondition, HealthCheck, PullPolicy, RestartPolicy,
};
use mesh_runtime::engine::Engine;

/// Test 4: an image that is not local (and cannot be pulled offline) fails `prepare`,
/// quickly, naming the image, and leaves nothing behind.
async fn missing_image(engine_name: &str, socket: &'static str) {
    let Some(t) = engine(engine_name, socket).await else {
        return;
    };
    let t = TestEngine {
        engine: t.engine.with_pull_timeout(Duration::from_secs(20)),
        ..t
    };
    for policy in [PullPolicy::IfNotPresent, PullPolicy::Never] {
        let image = format!("localhost/mesh-missing-{}:v1", unique("img"));
        let mut c = sh("app", "true");
        c.image = image.clone();
        c.pull_policy = policy;
        let spec = compose(&unique("missing"), vec![c]);
        let began = Instant::now();
        let err = t
            .engine
            .prepare(&spec)
            .await
            .expect_err("prepare must fail");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(
                "image {image} is not available locally and could not be pulled"
            )),
            "{policy:?}: {msg}"
        );
        assert!(
            began.elapsed() < Duration::from_secs(25),
            "{policy:?} took {:?}",
            began.elapsed()
        );
        let left = leftovers(socket, &spec.id().to_string()).await;
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_missing_image_fails_prepare() {
    missing_image("docker", DOCKER_SOCKET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_compat_missing_image_fails_prepare() {
    missing_image("podman", PODMAN_SOCKET).await;
}

/// Test 6: memory and CPU limits reach the container's host config.
async fn limits(engine_name: &str, socket: &'static str) {
    let Some(t) = engine(engine_name, socket).await else {
        return;
    };
    let mut c = sh("limited", "exec sleep 300");
    c.resources.limits.memory_bytes = Some(64 * 1024 * 1024);
    c.resources.limits.cpu_millis = Some(500);
    let spec = compose(&unique("limits"), vec![c]);
    let handle = deploy(&t.engine, &spec).await;
    cleaning_up(&t.engine, &handle, async {
        let inspect = raw(socket)
            .inspect_container(&format!("{}-limited-0", handle.instance), None)
            .await
            .expect("inspect");
        let host = inspect.host_config.expect("host config");
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
        assert_eq!(host.nano_cpus, Some(500_000_000));
    })
    .await;
    remove_and_check(&t.engine, socket, &spec, &handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_limits_reach_host_config() {
    limits("docker", DOCKER_SOCKET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_compat_limits_reach_host_config() {
    limits("podman", PODMAN_SOCKET).await;
}

/// Test 8: healthy against the real sockets (version and socket in the answer); unhealthy,
/// quickly, against a socket that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprint_reports_daemon_and_absence() {
    for (name, socket) in [("docker", DOCKER_SOCKET), ("podman", PODMAN_SOCKET)] {
        let Some(t) = engine(name, socket).await else {
            continue;
        };
        let fp = t.engine.fingerprint().await;
        assert!(fp.healthy, "{fp:?}");
        assert!(
            fp.version.as_deref().is_some_and(|v| !v.is_empty()),
            "{fp:?}"
        );
        assert!(fp.detail.contains(socket), "{fp:?}");
    }
    let state = tempfile::tempdir().expect("temp dir");
    let absent = DockerEngine::connect(
        "docker",
        Path::new("/nonexistent/mesh/docker.sock"),
        state.path().to_path_buf(),
    );
    let began = Instant::now();
    let fp = absent.fingerprint().await;
    assert!(!fp.healthy);
    assert!(
        fp.detail.contains("/nonexistent/mesh/docker.sock"),
        "{fp:?}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "took {:?}",
        began.elapsed()
    );
}

/// A dependency whose health check fails stops the start with an error naming it; one that
/// must complete successfully but exits 1 does too.
async fn unmet_dependencies(engine_name: &str, socket: &'static str) {
    let Some(t) = engine(engine_name, socket).await else {
        return;
    };
    for (condition, script, expect) in [
        (
            DependencyCondition::ServiceHealthy,
            "exec sleep 300",
            "service db is unhealthy",
        ),
        (
            DependencyCondition::ServiceCompletedSuccessfully,
            "exit 1",
            "service db exited with code 1",
        ),
    ] {
        let mut db = sh("db", script);
        db.restart = Some(RestartPolicy::Never);
        db.healthcheck = Some(HealthCheck {
            test: vec!["CMD-SHELL".into(), "echo not ready; exit 1".into()],
            interval_ms: Some(500),
            timeout_ms: Some(1000),
            retries: Some(1),
            start_period_ms: None,
        });
        let mut web = sh("web", "exec sleep 300");
        web.depends_on = vec![Dependency {
            service: "db".into(),
            condition,
        }];
        let spec = compose(&unique("unmet"), vec![db, web]);
        t.engine.validate(&spec).await.expect("valid");
        let handle = t.engine.install(&spec, &ctx()).await.expect("install");
        let began = Instant::now();
        let result = t.engine.start(&handle).await;
        let elapsed = began.elapsed();
        remove_and_check(&t.engine, socket, &spec, &handle).await;
        let err = result.expect_err("start must fail");
        assert!(err.to_string().contains(expect), "{condition:?}: {err}");
        assert!(
            elapsed < Duration::from_secs(30),
            "{condition:?} took {elapsed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_unmet_dependencies_fail_start() {
    unmet_dependencies("docker", DOCKER_SOCKET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_compat_unmet_dependencies_fail_start() {
    unmet_dependencies("podman", PODMAN_SOCKET).await;
}
