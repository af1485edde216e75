//! Drift on real engines: a workload's containers removed by hand (`podman pod rm -f`,
//! `docker rm -f`) behind the node's back come back, by the node's own restart policy, with
//! new containers. The node's monitor polls only once an hour here, so it is the engines'
//! events API that tells it. Skips when a daemon is absent, fails instead when
//! `MESH_REQUIRE_ENGINES` names it (CI sets `podman,docker`).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::Command;
use std::time::Duration;

mod engine_support;

use engine_support::{apply, daemon_up, ids, node_polling_every, unique};
use mesh_node::testing::{wait_until, TestNode};
use mesh_protocol::api::Deployment;
use mesh_protocol::{Phase, Step};

/// Containers labelled as `instance`'s, by id.
fn containers(cli: &str, instance: &str) -> Vec<String> {
    ids(cli, &format!("beemesh.io/instance={instance}"))
}

async fn get(node: &TestNode, name: &str) -> Deployment {
    node.client()
        .get(&format!("/deployments/{name}?events=true"))
        .await
        .unwrap()
}

/// Applies `manifest`, removes its containers with `remove`, and waits for new ones.
async fn comes_back(engine: &str, manifest: String, name: &str, remove: impl Fn(&str, &[String])) {
    let node = node_polling_every(&[engine], Duration::from_secs(3600)).await;
    apply(&node, manifest, Some(name)).await;
    let first = get(&node, name).await;
    assert_eq!(first.phase, Phase::Running, "{first:?}");
    let instance = first.replicas[0].instance.clone().unwrap();
    let before = containers(engine, &instance);
    assert!(
        !before.is_empty(),
        "no {engine} container labelled {instance}"
    );
    remove(&instance, &before);
    let back = wait_until(
        &format!("{engine}: the workload running again in new containers"),
        Duration::from_secs(30),
        || async {
            let d = get(&node, name).await;
            let now = d.replicas[0]
                .instance
                .clone()
                .map(|i| containers(engine, &i));
            let fresh =
                now.is_some_and(|c| !c.is_empty() && c.iter().all(|id| !before.contains(id)));
            // Restarted and recorded (the view of a restart in progress shows the old state).
            let restarted = d.replicas[0].restarts >= 1;
            (d.phase == Phase::Running && fresh && restarted).then_some(d)
        },
    )
    .await;
    assert!(
        back.events
            .iter()
            .any(|e| e.step == Step::Retry && e.message.starts_with("restarting")),
        "{:?}",
        back.events
    );
    let gone = node
        .client()
        .request(hyper::Method::DELETE, &format!("/deployments/{name}"), None)
        .await
        .unwrap();
    assert!(gone.status.is_success());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_podman_pod_removed_by_hand_comes_back() {
    if !daemon_up("podman").await {
        return;
    }
    let name = unique("drift-pod");
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n    imagePullPolicy: Never\n    command: [\"sleep\", \"3600\"]\n"
    );
    comes_back("podman", manifest, &name, |instance, _| {
        let rm = Command::new("podman")
            .args(["pod", "rm", "-f", instance])
            .output()
            .unwrap();
        assert!(
            rm.status.success(),
            "{}",
            String::from_utf8_lossy(&rm.stderr)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_container_removed_by_hand_comes_back() {
    if !daemon_up("docker").await {
        return;
    }
    let name = unique("drift-compose");
    let manifest = "services:\n  app:\n    image: localhost/mesh-test:latest\n    pull_policy: never\n    command: [\"sleep\", \"3600\"]\n".to_string();
    comes_back("docker", manifest, &name, |_, ids| {
        let rm = Command::new("docker")
            .args(["rm", "-f"])
            .args(ids)
            .output()
            .unwrap();
        assert!(
            rm.status.success(),
            "{}",
            String::from_utf8_lossy(&rm.stderr)
        );
    })
    .await;
}
