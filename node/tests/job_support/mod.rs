//! Helpers of the job tests: a Job manifest on the mock engine, a node with short backoff,
//! apply, and waiting for a run to end.

#![allow(dead_code)] // each test file uses its own subset

use std::time::Duration;

use mesh_node::testing::{wait_until, TestNode};
use mesh_protocol::api::{ApplyRequest, ApplyResponse, Deployment};
use mesh_protocol::job::JobStatus;
use mesh_protocol::Phase;

/// Retries in these tests wait 50 ms, then 100 ms, …
pub const BACKOFF: Duration = Duration::from_millis(50);
/// Bound on waiting for a job to finish.
pub const FINISH: Duration = Duration::from_secs(15);

/// A Kubernetes Job on the mock engine with `annotations` and extra `spec` lines.
pub fn job(name: &str, annotations: &[(&str, &str)], spec: &str) -> String {
    let mut ann = String::from("    beemesh.io/runtime-engine: mock\n");
    for (k, v) in annotations {
        ann.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations:\n{ann}spec:\n{spec}  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: main\n        image: localhost/mesh-test:latest\n"
    )
}

pub async fn start() -> TestNode {
    TestNode::start_with(|c| c.controller.job_backoff_base = BACKOFF).await
}

pub async fn apply(node: &TestNode, manifest: String) -> ApplyResponse {
    let req = ApplyRequest {
        manifest,
        ..ApplyRequest::default()
    };
    let answer = node.client().post("/deployments", &req).await.unwrap();
    serde_json::from_slice(&answer.body).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )
    })
}

pub async fn get(node: &TestNode, name: &str) -> Deployment {
    node.client()
        .get(&format!("/deployments/{name}?events=true"))
        .await
        .unwrap()
}

/// Waits until the job's run ended (Succeeded or Failed).
pub async fn finished(node: &TestNode, name: &str) -> Deployment {
    let client = node.client();
    let path = format!("/deployments/{name}?events=true");
    wait_until(&format!("job {name} to finish"), FINISH, || async {
        let d: Deployment = client.get(&path).await.ok()?;
        matches!(d.phase, Phase::Succeeded | Phase::Failed).then_some(d)
    })
    .await
}

/// Waits until the job's replica no longer holds an instance (its teardown is done).
pub async fn torn_down(node: &TestNode, name: &str) -> Deployment {
    wait_until(
        &format!("{name}'s instance to be removed"),
        FINISH,
        || async {
            let d = get(node, name).await;
            d.replicas[0].instance.is_none().then_some(d)
        },
    )
    .await
}

pub fn job_of(d: &Deployment) -> &JobStatus {
    d.replicas[0].job.as_ref().expect("a job replica")
}
