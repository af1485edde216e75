//! Helpers of the tests on real engines: whether a daemon answers (a skip, or a failure
//! when `MESH_REQUIRE_ENGINES` names it), a node with only real engines, an apply.

#![allow(dead_code)] // each test file uses its own subset
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::Command;
use std::time::Duration;

use mesh_node::testing::TestNode;
use mesh_protocol::api::{ApplyRequest, ApplyResponse};
use mesh_runtime::testing::engine_available;
use mesh_runtime::Engine;

pub async fn daemon_up(engine: &str) -> bool {
    let probe = match engine {
        "podman" => {
            let e = mesh_engine_podman::PodmanEngine::connect(
                &mesh_engine_podman::PodmanEngine::default_socket(None),
            );
            e.fingerprint().await
        }
        _ => {
            let e = mesh_engine_docker::DockerEngine::connect(
                "docker",
                &mesh_engine_docker::default_socket(),
                std::env::temp_dir(),
            );
            e.fingerprint().await
        }
    };
    engine_available(
        engine,
        if probe.healthy {
            Ok(())
        } else {
            Err(probe.detail)
        },
    )
}

/// Unique names: tests run in parallel against shared daemons.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id() % 100_000)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn node_with(engines: &[&str]) -> TestNode {
    node_polling_every(engines, Duration::from_millis(20)).await
}

/// [`node_with`], its monitor polling the engines every `period` (an hour: only the
/// engines' events tell it an instance stopped).
pub async fn node_polling_every(engines: &[&str], period: Duration) -> TestNode {
    let engines: Vec<String> = engines.iter().map(|e| e.to_string()).collect();
    TestNode::start_with(move |c| {
        c.engines = Some(engines);
        c.extra_engines.clear();
        c.fingerprint_period = Duration::from_millis(200);
        c.controller.health_timeout = Duration::from_secs(60);
        c.monitor_period = period;
    })
    .await
}

pub async fn apply(node: &TestNode, manifest: String, name: Option<&str>) -> ApplyResponse {
    let req = ApplyRequest {
        manifest,
        default_name: name.map(str::to_string),
        ..ApplyRequest::default()
    };
    let answer = node.client().post("/deployments", &req).await.unwrap();
    let resp: ApplyResponse = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|_| panic!("{}: {}", answer.status, answer.error_message()));
    assert!(
        answer.status.is_success(),
        "apply failed: {:?}",
        resp.workloads[0].deployment.error
    );
    resp
}

/// `CLI ps -a -q --no-trunc --filter label=LABEL`: the containers with that label, sorted.
pub fn ids(cli: &str, label: &str) -> Vec<String> {
    let o = Command::new(cli)
        .args([
            "ps",
            "-a",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label={label}"),
        ])
        .output()
        .unwrap();
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}
