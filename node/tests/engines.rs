//! Real container engines through the node: Podman for Kubernetes YAML, Docker for Compose,
//! both fallbacks, health flipping when a daemon goes away, and nothing left behind.
//! Each test skips with a printed reason when its daemon is absent, and fails instead when
//! `MESH_REQUIRE_ENGINES` names it (CI sets `podman,docker`).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod engine_support;

use engine_support::{apply, daemon_up, free_port, ids, node_with, unique};
use mesh_node::testing::{wait_until, TestNode};
use mesh_protocol::api::{Deployment, EngineInfo, Logs};
use mesh_protocol::Phase;

const PODMAN_SOCKET: &str = "/run/podman/podman.sock";

/// `CLI ps -a -q --filter label=…` (and the same for pods, volumes, networks): what remains.
fn leftovers(cli: &str, label: &str) -> Vec<String> {
    let filter = format!("label={label}");
    let mut out = Vec::new();
    let kinds: &[&[&str]] = if cli == "podman" {
        &[
            &["ps", "-a", "-q"],
            &["pod", "ps", "-q"],
            &["volume", "ls", "-q"],
        ]
    } else {
        &[
            &["ps", "-a", "-q"],
            &["network", "ls", "-q"],
            &["volume", "ls", "-q"],
        ]
    };
    for args in kinds {
        let o = Command::new(cli)
            .args(*args)
            .args(["--filter", &filter])
            .output()
            .unwrap();
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string),
        );
    }
    out
}

async fn http_get(port: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    body.contains("200").then_some(body)
}

fn httpd_pod(name: &str, port: u16, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    x: y\n{annotations}spec:\n  containers:\n  - name: web\n    image: localhost/mesh-test:latest\n    imagePullPolicy: Never\n    command: [\"sh\", \"-c\", \"echo hello-from-{name}; exec httpd -f -p 8080 -h /var/www\"]\n    ports:\n    - containerPort: 8080\n      hostPort: {port}\n"
    )
}

/// A Kubernetes Pod runs on Podman: it answers HTTP on its published port, its logs reach
/// the node, and delete leaves no pod, container or volume with its label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_pod_serves_http_logs_and_deletes_clean() {
    if !daemon_up("podman").await {
        return;
    }
    let node = node_with(&["podman", "docker"]).await;
    let name = unique("pod-http");
    let port = free_port();
    let resp = apply(&node, httpd_pod(&name, port, ""), None).await;
    let d = &resp.workloads[0].deployment;
    assert_eq!(d.phase, Phase::Running);
    assert_eq!(d.engine, "podman");
    assert_eq!(
        d.engine_reason,
        "inferred from format: Kubernetes manifest → podman"
    );

    let body = wait_until("httpd to answer", Duration::from_secs(30), || {
        http_get(port)
    })
    .await;
    assert!(body.contains("mesh test page"), "{body}");
    let client = node.client();
    wait_until(
        "the pod's stdout in meshctl logs",
        Duration::from_secs(30),
        || async {
            let logs: Logs = client
                .get(&format!("/deployments/{name}/logs"))
                .await
                .ok()?;
            logs.lines
                .iter()
                .any(|l| l.line.contains(&format!("hello-from-{name}")))
                .then_some(())
        },
    )
    .await;

    let label = format!("beemesh.io/workload=default.{name}");
    assert!(
        !leftovers("podman", &label).is_empty(),
        "labelled objects exist while it runs"
    );
    let _: Deployment = client
        .delete(&format!("/deployments/{name}"))
        .await
        .unwrap();
    assert!(
        leftovers("podman", &label).is_empty(),
        "{:?}",
        leftovers("podman", &label)
    );
    assert!(http_get(port).await.is_none());
}

/// A Compose project with two services and `depends_on: service_healthy` comes up in order
/// on Docker and comes down clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_two_services_in_order_on_docker() {
    if !daemon_up("docker").await {
        return;
    }
    let node = node_with(&["podman", "docker"]).await;
    let name = unique("shop");
    let port = free_port();
    let compose = format!(
        "services:\n  web:\n    image: localhost/mesh-test:latest\n    pull_policy: never\n    command: [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/var/www\"]\n    ports: [\"127.0.0.1:{port}:80\"]\n    depends_on:\n      db:\n        condition: service_healthy\n  db:\n    image: localhost/mesh-test:latest\n    pull_policy: never\n    command: [\"sleep\", \"3600\"]\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: 1s\n      retries: 3\n"
    );
    let resp = apply(&node, compose, Some(&name)).await;
    let d = &resp.workloads[0].deployment;
    assert_eq!(d.engine, "docker");
    assert_eq!(d.phase, Phase::Running);
    let body = wait_until("web to answer", Duration::from_secs(30), || http_get(port)).await;
    assert!(body.contains("mesh test page"));

    let label = format!("beemesh.io/workload=default/{name}");
    let started = |service: &str| -> String {
        let o = Command::new("docker")
            .args([
                "ps",
                "-q",
                "--filter",
                &format!("label={label}"),
                "--filter",
                &format!("label=beemesh.io/service={service}"),
            ])
            .output()
            .unwrap();
        let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let o = Command::new("docker")
            .args(["inspect", "-f", "{{.State.StartedAt}}", &id])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let (db, web) = (started("db"), started("web"));
    assert!(
        db < web,
        "db started {db}, web {web}: web must start after db is healthy"
    );

    let _: Deployment = node
        .client()
        .delete(&format!("/deployments/{name}"))
        .await
        .unwrap();
    assert!(
        leftovers("docker", &label).is_empty(),
        "{:?}",
        leftovers("docker", &label)
    );
}

/// Fallbacks: a Pod on a node without Podman runs on Docker; a Compose file on a node without
/// Docker runs on Podman; the reason says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallbacks_both_ways() {
    if !(daemon_up("podman").await && daemon_up("docker").await) {
        return;
    }
    let docker_only = node_with(&["docker"]).await;
    let name = unique("pod-on-docker");
    let port = free_port();
    let resp = apply(&docker_only, httpd_pod(&name, port, ""), None).await;
    let d = &resp.workloads[0].deployment;
    assert_eq!(d.engine, "docker");
    assert!(
        d.engine_reason.contains("Kubernetes manifest implies podman, but podman is not available on this node; fell back to docker"),
        "{}",
        d.engine_reason
    );
    wait_until(
        "the translated pod to answer",
        Duration::from_secs(30),
        || http_get(port),
    )
    .await;
    let _: Deployment = docker_only
        .client()
        .delete(&format!("/deployments/{name}"))
        .await
        .unwrap();

    let podman_only = node_with(&["podman"]).await;
    let name = unique("compose-on-podman");
    let compose = "services:\n  app:\n    image: localhost/mesh-test:latest\n    pull_policy: never\n    command: [\"sleep\", \"3600\"]\n".to_string();
    let resp = apply(&podman_only, compose, Some(&name)).await;
    let d = &resp.workloads[0].deployment;
    assert_eq!(d.engine, "podman");
    assert!(
        d.engine_reason
            .contains("Compose file implies docker, but docker is not available on this node"),
        "{}",
        d.engine_reason
    );
    assert_eq!(d.phase, Phase::Running);
    let _: Deployment = podman_only
        .client()
        .delete(&format!("/deployments/{name}"))
        .await
        .unwrap();
    assert!(leftovers("podman", &format!("beemesh.io/workload=default/{name}")).is_empty());
}

/// A Unix socket that forwards to the Docker daemon: closing it is, for the node, the same
/// as the daemon going away, without stopping the daemon other tests use.
struct DaemonGate {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl DaemonGate {
    fn open(path: &Path, upstream: PathBuf) -> Self {
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::UnixStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
            }
        });
        Self {
            path: path.to_path_buf(),
            task,
        }
    }

    fn close(self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// When the Docker daemon becomes unreachable the engine turns unhealthy within a
/// fingerprint period, a new Compose apply goes to Podman saying why, and the engine comes
/// back healthy with the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_going_away_flips_health_and_placement() {
    if !(daemon_up("podman").await && daemon_up("docker").await) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let gate_path = dir.path().join("docker.sock");
    let gate = DaemonGate::open(&gate_path, mesh_engine_docker::default_socket());
    let socket = gate_path.clone();
    let node = TestNode::start_with(move |c| {
        c.engines = Some(vec!["podman".into(), "docker".into()]);
        c.extra_engines.clear();
        c.docker_socket = Some(socket);
        c.podman_socket = Some(PODMAN_SOCKET.into());
        c.fingerprint_period = Duration::from_millis(200);
    })
    .await;
    let client = node.client();
    let docker_health = || async {
        let engines: Vec<EngineInfo> = client.get("/plugins").await.unwrap();
        engines.into_iter().find(|e| e.name == "docker").unwrap()
    };
    assert!(docker_health().await.healthy);

    gate.close();
    let down = wait_until(
        "docker to turn unhealthy",
        Duration::from_secs(5),
        || async {
            let e = docker_health().await;
            (!e.healthy).then_some(e)
        },
    )
    .await;
    assert!(!down.detail.is_empty());

    let name = unique("after-docker");
    let compose = "services:\n  app:\n    image: localhost/mesh-test:latest\n    pull_policy: never\n    command: [\"sleep\", \"3600\"]\n".to_string();
    let resp = apply(&node, compose, Some(&name)).await;
    let d = &resp.workloads[0].deployment;
    assert_eq!(d.engine, "podman", "{}", d.engine_reason);
    assert!(
        d.engine_reason.contains("docker is unhealthy"),
        "{}",
        d.engine_reason
    );
    let _: Deployment = client
        .delete(&format!("/deployments/{name}"))
        .await
        .unwrap();

    let _gate = DaemonGate::open(&gate_path, mesh_engine_docker::default_socket());
    wait_until(
        "docker to be healthy again",
        Duration::from_secs(5),
        || async { docker_health().await.healthy.then_some(()) },
    )
    .await;
}

/// `kill -9` of meshd and a restart re-adopts the running containers of both engines:
/// same containers, none started twice, all Running.
#[test]
fn kill_9_readopts_real_containers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    if !(rt.block_on(daemon_up("podman")) && rt.block_on(daemon_up("docker"))) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let child = Command::new(env!("CARGO_BIN_EXE_meshd"))
            .args([
                "--data-dir",
                dir.path().to_str().unwrap(),
                "--engines",
                "podman,docker",
            ])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--log", "warn"])
            // The owner's key: the node trusts what meshctl signs with it, and nothing else.
            .env("MESH_KEY", dir.path().join("user.key"))
            .spawn()
            .unwrap();
        mesh_node::testing::wait_until_blocking("meshd to answer", Duration::from_secs(30), || {
            ctl(dir.path(), &["engines"]).status.success().then_some(())
        });
        child
    };
    let mut meshd = start();
    let pod_name = unique("keep-pod");
    let compose_name = unique("keep-compose");
    let files = tempfile::tempdir().unwrap();
    let pod = files.path().join("pod.yaml");
    std::fs::write(&pod, httpd_pod(&pod_name, free_port(), "")).unwrap();
    let compose = files.path().join(format!("{compose_name}.yaml"));
    std::fs::write(&compose, "services:\n  app:\n    image: localhost/mesh-test:latest\n    pull_policy: never\n    command: [\"sleep\", \"3600\"]\n").unwrap();
    for f in [&pod, &compose] {
        let out = ctl(dir.path(), &["apply", "-f", f.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pod_label = format!("beemesh.io/workload=default.{pod_name}");
    let compose_label = format!("beemesh.io/workload=default/{compose_name}");
    let before = (ids("podman", &pod_label), ids("docker", &compose_label));
    assert!(!before.0.is_empty() && !before.1.is_empty());

    meshd.kill().unwrap();
    meshd.wait().unwrap();
    let mut meshd = start();
    let out = ctl(dir.path(), &["get", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for d in list.as_array().unwrap() {
        assert_eq!(d["phase"], "Running", "{d}");
    }
    assert_eq!(
        (ids("podman", &pod_label), ids("docker", &compose_label)),
        before,
        "re-adopted, not recreated"
    );
    for name in [&pod_name, &compose_name] {
        assert!(ctl(dir.path(), &["delete", name]).status.success());
    }
    assert!(leftovers("podman", &pod_label).is_empty());
    assert!(leftovers("docker", &compose_label).is_empty());
    meshd.kill().unwrap();
    meshd.wait().unwrap();
}

fn ctl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .arg("--node")
        .arg(dir.join("meshd.sock"))
        .env("MESH_KEY", dir.join("user.key"))
        .args(args)
        .output()
        .unwrap()
}
