//! Restart policy and drift on one node (mock engine): an instance removed behind the node's
//! back comes back at once; one that keeps exiting is restarted with a growing pause and
//! shows CrashLoopBackOff meanwhile; `Never` leaves it Failed; `OnFailure` leaves an exit 0.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use mesh_node::testing::{wait_until, TestNode};
use mesh_protocol::api::{ApplyRequest, Deployment};
use mesh_protocol::{Phase, Step};

/// The second restart in a row waits this long, the third twice as long, …
const BACKOFF: Duration = Duration::from_millis(400);
const WAIT: Duration = Duration::from_secs(20);

fn pod(name: &str, policy: &str, annotations: &[(&str, &str)]) -> String {
    let mut ann = String::from("    beemesh.io/runtime-engine: mock\n");
    for (k, v) in annotations {
        ann.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n{ann}spec:\n  restartPolicy: {policy}\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n"
    )
}

async fn start() -> TestNode {
    TestNode::start_with(|c| c.controller.restart_backoff_base = BACKOFF).await
}

async fn apply(node: &TestNode, manifest: String) {
    let req = ApplyRequest {
        manifest,
        ..ApplyRequest::default()
    };
    let answer = node.client().post("/deployments", &req).await.unwrap();
    assert!(answer.status.is_success(), "{:?}", answer.body);
}

async fn get(node: &TestNode, name: &str) -> Deployment {
    node.client()
        .get(&format!("/deployments/{name}?events=true"))
        .await
        .unwrap()
}

async fn until(
    node: &TestNode,
    name: &str,
    what: &str,
    f: impl Fn(&Deployment) -> bool,
) -> Deployment {
    wait_until(what, WAIT, || async {
        let d = get(node, name).await;
        f(&d).then_some(d)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_removed_by_hand_comes_back_at_once() {
    let node = start().await;
    apply(&node, pod("drift", "Always", &[])).await;
    let first = until(&node, "drift", "running", |d| d.phase == Phase::Running).await;
    let instance = first.replicas[0].instance.clone().unwrap();
    assert!(node.mock.remove_by_hand(&instance));
    let back = until(&node, "drift", "a new instance running", |d| {
        d.phase == Phase::Running && d.replicas[0].instance.as_deref() != Some(instance.as_str())
    })
    .await;
    assert_eq!(back.replicas[0].restarts, 1);
    let retry = back.events.iter().find(|e| e.step == Step::Retry).unwrap();
    assert!(
        retry.message.contains("restarting") && retry.message.contains("no longer knows"),
        "{retry:?}"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_keeps_exiting_backs_off_and_shows_crash_loop() {
    let node = start().await;
    let exits = [
        ("beemesh.io/mock-exit-after-ms", "100"),
        ("beemesh.io/mock-exit-code", "3"),
    ];
    apply(&node, pod("crash", "Always", &exits)).await;
    let looping = until(&node, "crash", "CrashLoopBackOff", |d| {
        d.phase == Phase::CrashLoopBackOff
    })
    .await;
    let error = looping.error.clone().unwrap();
    assert!(
        error.contains("back-off") && error.contains("exited with code 3"),
        "{error}"
    );
    // It keeps being restarted, each pause longer than the one before.
    let later = until(&node, "crash", "three restarts", |d| {
        d.replicas[0].restarts >= 3
    })
    .await;
    let restarts: Vec<u64> = later
        .events
        .iter()
        .filter(|e| e.step == Step::Retry && e.message.starts_with("restarting"))
        .map(|e| e.at)
        .collect();
    assert!(restarts.len() >= 3, "{:?}", later.events);
    let gaps: Vec<u64> = restarts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[1] >= BACKOFF.as_millis() as u64 * 2 - 50,
        "pauses {gaps:?}"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_leaves_a_stopped_replica_failed_and_on_failure_leaves_an_exit_0() {
    let node = start().await;
    apply(
        &node,
        pod(
            "once",
            "Never",
            &[
                ("beemesh.io/mock-exit-after-ms", "100"),
                ("beemesh.io/mock-exit-code", "1"),
            ],
        ),
    )
    .await;
    apply(
        &node,
        pod(
            "done",
            "OnFailure",
            &[
                ("beemesh.io/mock-exit-after-ms", "100"),
                ("beemesh.io/mock-exit-code", "0"),
            ],
        ),
    )
    .await;
    apply(
        &node,
        pod(
            "retry",
            "OnFailure",
            &[
                ("beemesh.io/mock-exit-after-ms", "100"),
                ("beemesh.io/mock-exit-code", "1"),
            ],
        ),
    )
    .await;
    until(&node, "retry", "the OnFailure replica restarted", |d| {
        d.replicas[0].restarts >= 1
    })
    .await;
    for name in ["once", "done"] {
        let d = until(&node, name, "stopped", |d| d.phase == Phase::Failed).await;
        assert_eq!(d.replicas[0].restarts, 0, "{name}");
        assert!(
            !d.events.iter().any(|e| e.step == Step::Retry),
            "{name}: {:?}",
            d.events
        );
    }
    node.stop().await;
}
