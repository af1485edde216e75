//! The local API of one node, in process, with the mock engine: what a user of `meshctl`
//! sees through it.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use hyper::{Method, StatusCode};
use mesh_node::testing::{wait_until, TestNode};
use mesh_protocol::api::{
    ApplyAction, ApplyRequest, ApplyResponse, Deployment, EngineInfo, Health, Logs, Status,
};
use mesh_protocol::{Event, Outcome, Phase, Step};

fn pod(name: &str, annotations: &[(&str, &str)]) -> String {
    let mut ann = String::from("    beemesh.io/runtime-engine: mock\n");
    for (k, v) in annotations {
        ann.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n{ann}spec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n"
    )
}

fn req(manifest: String) -> ApplyRequest {
    ApplyRequest {
        manifest,
        ..ApplyRequest::default()
    }
}

async fn apply(node: &TestNode, manifest: String) -> (StatusCode, ApplyResponse) {
    let answer = node
        .client()
        .post("/deployments", &req(manifest))
        .await
        .unwrap();
    let status = answer.status;
    let body = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|e| panic!("{status}: {e}: {}", String::from_utf8_lossy(&answer.body)));
    (status, body)
}

/// Apply answers after the workload is Running, with the engine and the reason it was chosen;
/// `get` shows the fields scripts rely on.
#[tokio::test]
async fn apply_runs_and_get_reports_it() {
    let node = TestNode::start().await;
    let (status, resp) = apply(&node, pod("web", &[])).await;
    assert_eq!(status, StatusCode::OK);
    let w = &resp.workloads[0];
    assert_eq!(w.action, ApplyAction::Created);
    assert_eq!(w.deployment.phase, Phase::Running);
    assert_eq!(w.deployment.engine, "mock");
    assert_eq!(
        w.deployment.engine_reason,
        "annotation beemesh.io/runtime-engine=mock"
    );

    let json: serde_json::Value = node.client().get("/deployments/web").await.unwrap();
    for field in [
        "name",
        "namespace",
        "version",
        "engine",
        "engine_reason",
        "phase",
        "replicas",
    ] {
        assert!(json.get(field).is_some(), "get lacks {field}: {json}");
    }
    let replica = &json["replicas"][0];
    assert_eq!(replica["node"], node.daemon().node.id());
    assert_eq!(replica["phase"], "Running");
    assert_eq!(replica["engine"], "mock");
    assert!(json["version"].as_str().unwrap().starts_with("sha256:"));

    // The mock engine received exactly the spec the node parsed.
    let instances = node.mock.instances();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].spec.version, json["version"].as_str().unwrap());
    assert_eq!(instances[0].ctx.node, node.daemon().node.id());
}

/// Describe carries one event per lifecycle phase, each with its duration, in order.
#[tokio::test]
async fn describe_shows_phases_with_durations() {
    let node = TestNode::start().await;
    apply(&node, pod("web", &[])).await;
    let d: Deployment = node
        .client()
        .get("/deployments/web?events=true")
        .await
        .unwrap();
    let steps: Vec<Step> = d.events.iter().map(|e| e.step).collect();
    assert_eq!(
        steps,
        vec![
            Step::Select,
            Step::Validate,
            Step::Fetch,
            Step::Prepare,
            Step::Install,
            Step::Activate,
            Step::HealthCheck
        ]
    );
    assert!(d.events.iter().all(|e| e.outcome == Outcome::Ok));
    assert!(d.events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(
        d.events[0].message,
        "annotation beemesh.io/runtime-engine=mock"
    );
    let all: Vec<Event> = node.client().get("/events?limit=3").await.unwrap();
    assert_eq!(all.len(), 3);
}

/// Re-applying the same content is a no-op; new content is an update; an update that fails its
/// health check is rolled back and the old version keeps running.
#[tokio::test]
async fn reapply_update_and_rollback() {
    let node = TestNode::start().await;
    let (_, first) = apply(&node, pod("app", &[])).await;
    let v1 = first.workloads[0].deployment.version.clone();

    let (_, same) = apply(&node, pod("app", &[])).await;
    assert_eq!(same.workloads[0].action, ApplyAction::Unchanged);
    assert_eq!(
        node.mock
            .counters
            .installs
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    let (status, updated) = apply(&node, pod("app", &[("team", "blue")])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated.workloads[0].action, ApplyAction::Updated);
    let v2 = updated.workloads[0].deployment.version.clone();
    assert_ne!(v1, v2);

    let (status, bad) = apply(&node, pod("app", &[("beemesh.io/mock-health", "fail")])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let w = &bad.workloads[0];
    assert_eq!(w.action, ApplyAction::RolledBack);
    assert_eq!(w.deployment.replicas[0].version, v2, "v2 still runs");
    assert_eq!(w.deployment.replicas[0].phase, Phase::Running);
    assert!(
        w.deployment
            .error
            .as_deref()
            .unwrap()
            .contains("rolled back"),
        "{:?}",
        w.deployment.error
    );
    let instances = node.mock.instances();
    assert_eq!(instances.len(), 1, "the failed version left nothing behind");
    assert_eq!(instances[0].spec.version, v2);
    let history: Vec<bool> = w
        .deployment
        .history
        .iter()
        .map(|h| h.reached_running)
        .collect();
    assert_eq!(history, vec![false, true, true], "newest first");
}

/// A scripted start error ends in Failed, naming the phase and the error.
#[tokio::test]
async fn failure_names_phase_and_error() {
    let node = TestNode::start().await;
    let (status, resp) = apply(
        &node,
        pod("bad", &[("beemesh.io/mock-start-error", "no such image")]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let d = &resp.workloads[0].deployment;
    assert_eq!(d.phase, Phase::Failed);
    assert_eq!(
        d.error.as_deref(),
        Some("Activate failed: engine mock: no such image")
    );
    let s: Status = node.client().get("/deployments/bad/status").await.unwrap();
    assert_eq!(s.phase, Phase::Failed);
}

/// A workload that exits later is noticed by the monitor: a Job that exits 0 succeeds, a Pod
/// that exits 2 (with `restartPolicy: Never`, else it is restarted) fails with its exit code.
#[tokio::test]
async fn exits_are_noticed() {
    let node = TestNode::start().await;
    let never = pod(
        "crash",
        &[
            ("beemesh.io/mock-exit-after-ms", "100"),
            ("beemesh.io/mock-exit-code", "2"),
        ],
    )
    .replace("spec:\n", "spec:\n  restartPolicy: Never\n");
    apply(&node, never).await;
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: once\n  annotations:\n    beemesh.io/runtime-engine: mock\n    beemesh.io/mock-exit-after-ms: \"100\"\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: main\n        image: localhost/mesh-test:latest\n";
    apply(&node, job.to_string()).await;
    let client = node.client();
    wait_until(
        "crash to fail and once to succeed",
        Duration::from_secs(5),
        || async {
            let a: Status = client.get("/deployments/crash/status").await.ok()?;
            let b: Status = client.get("/deployments/once/status").await.ok()?;
            (a.phase == Phase::Failed && b.phase == Phase::Succeeded).then_some(())
        },
    )
    .await;
    let d: Deployment = client.get("/deployments/crash").await.unwrap();
    assert_eq!(d.replicas[0].exit_code, Some(2));
    assert_eq!(d.error.as_deref(), Some("exited with code 2"));
    let logs: Logs = client.get("/deployments/crash/logs").await.unwrap();
    assert_eq!(logs.lines.last().unwrap().line, "exited with code 2");
}

/// Logs come from the engine, `tail` bounds them; delete removes the instance and the record.
#[tokio::test]
async fn logs_and_delete() {
    let node = TestNode::start().await;
    apply(&node, pod("web", &[])).await;
    let logs: Logs = node.client().get("/deployments/web/logs").await.unwrap();
    assert!(logs.lines.iter().any(|l| l.line == "started"), "{logs:?}");
    assert!(logs
        .lines
        .iter()
        .any(|l| l.line.contains("image localhost/mesh-test:latest")));
    let tail: Logs = node
        .client()
        .get("/deployments/web/logs?tail=1")
        .await
        .unwrap();
    assert_eq!(tail.lines.len(), 1);

    let deleted: Deployment = node.client().delete("/deployments/web").await.unwrap();
    assert_eq!(deleted.phase, Phase::Deleted);
    assert!(node.mock.instances().is_empty());
    let answer = node
        .client()
        .request(Method::GET, "/deployments/web", None)
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.error_message().contains("workload web not found"));
    let answer = node
        .client()
        .request(Method::DELETE, "/deployments/web", None)
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

/// Hostile or broken input gets a clear 400 and changes nothing.
#[tokio::test]
async fn bad_input_changes_nothing() {
    let node = TestNode::start().await;
    let client = node.client();
    let cases = [
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: x\n", "line"),
        (
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\n",
            "Service",
        ),
        ("", "empty"),
    ];
    for (manifest, needle) in cases {
        let answer = client
            .post("/deployments", &req(manifest.to_string()))
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{manifest:?}");
        assert!(
            answer.error_message().contains(needle),
            "{manifest:?}: {}",
            answer.error_message()
        );
    }
    let answer = client
        .request(Method::POST, "/deployments", Some(b"{not json".to_vec()))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.error_message().starts_with("bad apply request"));
    let huge = "#".repeat(mesh_manifests::MAX_MANIFEST_BYTES + 10);
    let answer = client.post("/deployments", &req(huge)).await.unwrap();
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let oversize_body = vec![b' '; mesh_node::api::MAX_REQUEST_BYTES + 1];
    let answer = client
        .request(Method::POST, "/deployments", Some(oversize_body))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let answer = client.request(Method::GET, "/nope", None).await.unwrap();
    assert_eq!(answer.status, StatusCode::NOT_FOUND);

    let list: Vec<Deployment> = client.get("/deployments").await.unwrap();
    assert!(list.is_empty());
    assert!(node.mock.instances().is_empty());
}

/// A kind no enabled engine runs is refused at selection, with the reason.
#[tokio::test]
async fn no_engine_for_kind_fails_selection() {
    let node = TestNode::start().await;
    let vm = "apiVersion: beemesh.io/v1\nkind: VirtualMachine\nmetadata:\n  name: vm1\nspec:\n  image: debian-12.qcow2\n  vcpus: 2\n  memory: 2Gi\n";
    let (status, resp) = apply(&node, vm.to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let d = &resp.workloads[0].deployment;
    assert_eq!(d.phase, Phase::Failed);
    assert!(
        d.error
            .as_deref()
            .unwrap()
            .contains("qemu is not available"),
        "{:?}",
        d.error
    );
}

/// `/health` and `/plugins` describe the node and its engines.
#[tokio::test]
async fn health_and_plugins() {
    let node = TestNode::start().await;
    let h: Health = node.client().get("/health").await.unwrap();
    assert_eq!(h.status, "ok");
    assert_eq!(h.node, node.daemon().node.id());
    let plugins: Vec<EngineInfo> = node.client().get("/plugins").await.unwrap();
    assert_eq!(plugins.len(), 1);
    assert_eq!(plugins[0].name, "mock");
    assert!(plugins[0].healthy);
    assert!(plugins[0].capabilities.contains(&"logs".to_string()));
}

/// Over loopback HTTP the same API answers.
#[tokio::test]
async fn http_listener_serves_the_same_api() {
    let node = TestNode::start_with(|c| c.http = Some("127.0.0.1:0".parse().unwrap())).await;
    let addr = node.daemon().http.expect("http bound");
    let client = mesh_node::client::Client::new(mesh_node::client::Target::Tcp(addr.to_string()));
    let h: Health = client.get("/health").await.unwrap();
    assert_eq!(h.node, node.daemon().node.id());
}

/// A graceful restart keeps every workload and re-adopts its instance without reinstalling.
#[tokio::test]
async fn restart_readopts_instances() {
    let node = TestNode::start().await;
    apply(&node, pod("a", &[])).await;
    apply(&node, pod("b", &[])).await;
    let before: Vec<String> = node.mock.instances().iter().map(|i| i.id.clone()).collect();
    let dir = node.stop().await;
    let node = TestNode::start_in(dir, |_| {}).await;
    let list: Vec<Deployment> = node.client().get("/deployments").await.unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|d| d.phase == Phase::Running), "{list:?}");
    let after: Vec<String> = node.mock.instances().iter().map(|i| i.id.clone()).collect();
    assert_eq!(before, after, "same instances, none added");
    assert_eq!(
        node.mock
            .counters
            .installs
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    assert_eq!(
        node.mock
            .counters
            .recovers
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}

/// A node that died between Install and Running (the handle was flushed, the outcome was not)
/// carries the lifecycle on at restart instead of installing a second instance.
#[tokio::test]
async fn restart_mid_deploy_resumes_the_installed_instance() {
    let node = TestNode::start().await;
    apply(&node, pod("half", &[])).await;
    let id = mesh_protocol::WorkloadId::new("default", "half");
    let before: Vec<String> = node.mock.instances().iter().map(|i| i.id.clone()).collect();
    let dir = node.stop().await;
    {
        // Rewind the stored outcome to what a crash right after Install leaves behind.
        let store = mesh_node::store::Store::open(&dir.path().join("db")).unwrap();
        let mut observed = store.observed(&id).unwrap();
        observed.replicas[0].phase = Phase::Installing;
        store.put_observed(&id, &observed).unwrap();
        let version = store.desired(&id).unwrap().unwrap().spec.version;
        store
            .set_pending(&id, &mesh_node::store::Pending::Apply { version, since: 0 })
            .unwrap();
        store.flush().unwrap();
    }
    let node = TestNode::start_in(dir, |_| {}).await;
    let d: Deployment = node
        .client()
        .get("/deployments/half?events=true")
        .await
        .unwrap();
    assert_eq!(d.phase, Phase::Running, "{d:?}");
    let after: Vec<String> = node.mock.instances().iter().map(|i| i.id.clone()).collect();
    assert_eq!(
        before, after,
        "the installed instance was resumed, not replaced"
    );
    let steps: Vec<Step> = d.events.iter().map(|e| e.step).collect();
    assert!(
        steps.ends_with(&[Step::Recover, Step::HealthCheck]),
        "{steps:?}"
    );
}
