//! A two-service Compose project against the real daemons: `depends_on` with
//! `service_healthy`, a published port answering HTTP, logs per service, and a clean remove.
//! Run against dockerd and against Podman's Docker-compatible socket.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::*;
use mesh_engine_docker::time::parse_rfc3339_millis;
use mesh_protocol::spec::{
    Dependency, DependencyCondition, HealthCheck, Mount, Port, Volume, VolumeSource,
};
use mesh_protocol::WorkloadSpec;
use mesh_runtime::engine::{Engine, Health, LogOptions};

/// `db` (with a health check and a named volume) and `web` (httpd on a free host port),
/// `web` depending on `db` being healthy.
fn two_services(name: &str, port: u16) -> WorkloadSpec {
    let mut db = sh(
        "db",
        "echo db ready; echo stored > /data/marker; exec sleep 300",
    );
    db.healthcheck = Some(HealthCheck {
        test: vec!["CMD".into(), "true".into()],
        interval_ms: Some(1000),
        timeout_ms: Some(1000),
        retries: Some(3),
        start_period_ms: None,
    });
    db.mounts = vec![Mount {
        source: "data".into(),
        target: "/data".into(),
        read_only: false,
        sub_path: None,
    }];
    let mut web = sh("web", "echo web up; exec httpd -f -p 80 -h /var/www");
    web.ports = vec![Port {
        container_port: 80,
        host_port: Some(port),
        host_ip: Some("127.0.0.1".into()),
        protocol: Default::default(),
        name: None,
    }];
    web.depends_on = vec![Dependency {
        service: "db".into(),
        condition: DependencyCondition::ServiceHealthy,
    }];
    let mut spec = compose(name, vec![web, db]);
    spec.volumes = vec![Volume {
        name: "data".into(),
        source: VolumeSource::Named { external: false },
    }];
    spec.seal()
}

async fn compose_project_comes_up_in_order(engine_name: &str, socket: &'static str) {
    let Some(t) = engine(engine_name, socket).await else {
        return;
    };
    let port = free_port();
    let spec = two_services(&unique("compose"), port);
    let handle = deploy(&t.engine, &spec).await;
    cleaning_up(&t.engine, &handle, async {
        let status = wait_status(&t.engine, &handle, is_running).await;
        assert_eq!(status.detail, "2/2 running");
        assert_eq!(status.health, Health::Healthy, "{status:?}");

        // Order: db started first, and web only once db had passed a health check.
        let docker = raw(socket);
        let db = docker
            .inspect_container(&format!("{}-db-0", handle.instance), None)
            .await
            .expect("inspect db");
        let web = docker
            .inspect_container(&format!("{}-web-0", handle.instance), None)
            .await
            .expect("inspect web");
        let started = |i: &bollard::models::ContainerInspectResponse| {
            let at = i
                .state
                .as_ref()
                .and_then(|s| s.started_at.clone())
                .expect("started");
            parse_rfc3339_millis(&at).expect("rfc3339")
        };
        let db_state = db.state.as_ref().expect("db state");
        let first_pass = db_state
            .health
            .as_ref()
            .and_then(|h| h.log.as_ref())
            .and_then(|log| log.iter().find(|r| r.exit_code == Some(0)).cloned())
            .expect("db passed a health check");
        let passed_at =
            parse_rfc3339_millis(first_pass.end.as_deref().expect("end")).expect("rfc3339");
        assert!(started(&db) <= started(&web), "db must start before web");
        assert!(
            passed_at <= started(&web),
            "web started before db was healthy"
        );

        // The service answers on the published port.
        let page = wait_for("web to answer HTTP", WAIT, || http_get(port)).await;
        assert!(page.contains("mesh test page"), "{page}");

        // Logs of both services, attributed.
        let logs = wait_for("logs of both services", WAIT, || async {
            let lines = t
                .engine
                .logs(&handle, LogOptions::default())
                .await
                .expect("logs");
            let has = |src: &str, text: &str| {
                lines
                    .iter()
                    .any(|l| l.source.as_deref() == Some(src) && l.line.contains(text))
            };
            (has("web", "web up") && has("db", "db ready")).then_some(lines)
        })
        .await;
        assert!(
            logs.iter().all(|l| l.at.is_some()),
            "every line has a timestamp"
        );
        let tail = t
            .engine
            .logs(&handle, LogOptions { tail: Some(1) })
            .await
            .expect("tail");
        assert_eq!(tail.len(), 1);

        t.engine
            .stop(&handle, std::time::Duration::from_secs(5))
            .await
            .expect("stop");
        t.engine
            .stop(&handle, std::time::Duration::from_secs(5))
            .await
            .expect("stop is idempotent");
        assert!(
            http_get(port).await.is_none(),
            "stopped web must not answer"
        );
    })
    .await;
    remove_and_check(&t.engine, socket, &spec, &handle).await;
}

/// Test 1: Compose on dockerd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_compose_project_with_healthy_dependency() {
    compose_project_comes_up_in_order("docker", DOCKER_SOCKET).await;
}

/// Test 7: the same project through Podman's Docker-compatible API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_compat_compose_project_with_healthy_dependency() {
    compose_project_comes_up_in_order("podman", PODMAN_SOCKET).await;
}
