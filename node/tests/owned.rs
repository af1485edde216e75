//! A deploy belongs to the node, not to the request that asked for it: a client that hangs
//! up mid-apply leaves the workload Running, with no pending intent left behind.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use mesh_node::testing::{wait_until, TestNode};
use mesh_protocol::api::ApplyRequest;
use mesh_protocol::{Phase, WorkloadId};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_mid_apply_cancels_nothing() {
    let node = TestNode::start().await;
    let req = ApplyRequest {
        manifest: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: slow\n  annotations:\n    beemesh.io/runtime-engine: mock\n    beemesh.io/mock-start-delay-ms: \"3000\"\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n".into(),
        ..ApplyRequest::default()
    };
    let client = node.client();
    // The client gives up long before the start delay is over; dropping the request future
    // closes its connection.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(800),
        client.post("/deployments", &req),
    )
    .await;
    assert!(
        gave_up.is_err(),
        "the apply answered before the client hung up"
    );
    let id = WorkloadId::new("default", "slow");
    let store = node.daemon().node.store().clone();
    // The deploy was under way when the client left: its intent is recorded.
    assert!(store.desired(&id).unwrap().is_some());

    // Finished: Running, and the intent cleared (it is cleared right after the replica is
    // stored Running, so both are waited for together).
    let d = wait_until(
        "the deploy to finish without its client",
        Duration::from_secs(20),
        || async {
            let d = node.daemon().node.view(&id, false).ok()?;
            let settled = d.phase == Phase::Running && store.list_pending().ok()?.is_empty();
            settled.then_some(d)
        },
    )
    .await;
    assert_eq!(d.replicas.len(), 1);
    assert!(
        store.list_pending().unwrap().is_empty(),
        "a pending intent was left"
    );
    assert_eq!(node.mock.instances().len(), 1);
    node.stop().await;
}
