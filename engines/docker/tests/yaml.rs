//! Manifests as users write them, parsed by `mesh-manifests` and run on the real daemons:
//! a Compose file with a healthy dependency and a named volume, and a Kubernetes Pod whose
//! page comes from a ConfigMap beside it.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::*;
use mesh_manifests::{parse, ParseOptions};
use mesh_protocol::WorkloadSpec;
use mesh_runtime::engine::Health;

fn one(yaml: &str) -> WorkloadSpec {
    let mut specs = parse(yaml.as_bytes(), &ParseOptions::default()).expect("manifest parses");
    assert_eq!(specs.len(), 1, "one workload");
    specs.remove(0)
}

fn compose_file(name: &str, port: u16) -> String {
    format!(
        r#"
name: {name}
services:
  web:
    image: {IMAGE}
    init: true
    command: ["httpd", "-f", "-p", "80", "-h", "/var/www"]
    ports: ["127.0.0.1:{port}:80"]
    depends_on:
      db:
        condition: service_healthy
  db:
    image: {IMAGE}
    init: true
    command: ["sh", "-c", "exec sleep 300"]
    volumes: ["data:/data"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      timeout: 1s
      retries: 3
volumes:
  data: {{}}
"#
    )
}

fn pod_file(name: &str, port: u16) -> String {
    format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: site
data:
  index.html: "page from a configmap"
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
    - name: web
      image: {IMAGE}
      imagePullPolicy: Never
      command: ["httpd", "-f", "-p", "80", "-h", "/site"]
      ports:
        - containerPort: 80
          hostPort: {port}
          hostIP: 127.0.0.1
      volumeMounts:
        - name: site
          mountPath: /site
  volumes:
    - name: site
      configMap:
        name: site
"#
    )
}

/// Deploys `spec`, checks it runs healthy (or without checks) and serves `page`, removes it.
async fn serves(
    engine_name: &str,
    socket: &'static str,
    spec: WorkloadSpec,
    port: u16,
    page: &str,
) {
    let Some(t) = engine(engine_name, socket).await else {
        return;
    };
    let handle = deploy(&t.engine, &spec).await;
    cleaning_up(&t.engine, &handle, async {
        let status = wait_status(&t.engine, &handle, is_running).await;
        assert!(
            matches!(status.health, Health::Healthy | Health::NoCheck),
            "{status:?}"
        );
        let body = wait_for("HTTP answer", WAIT, || http_get(port)).await;
        assert!(body.contains(page), "{body}");
    })
    .await;
    remove_and_check(&t.engine, socket, &spec, &handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_file_runs_on_docker_and_podman() {
    for (engine_name, socket) in [("docker", DOCKER_SOCKET), ("podman", PODMAN_SOCKET)] {
        let port = free_port();
        let spec = one(&compose_file(&unique("yaml-compose"), port));
        serves(engine_name, socket, spec, port, "mesh test page").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_pod_file_runs_on_docker_and_podman() {
    for (engine_name, socket) in [("docker", DOCKER_SOCKET), ("podman", PODMAN_SOCKET)] {
        let port = free_port();
        let spec = one(&pod_file(&unique("yaml-pod"), port));
        assert_eq!(spec.config.len(), 1, "the ConfigMap travels with the pod");
        serves(engine_name, socket, spec, port, "page from a configmap").await;
    }
}
