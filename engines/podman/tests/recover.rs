//! After a restart of the node daemon, a fresh engine value re-adopts the running pod from
//! the persisted handle, without creating anything; once removed, the pod is reported gone.

mod common;

use common::{labelled, parse_one, wait_status, Cleanup, IMAGE};
use mesh_engine_podman::names::workload_label;
use mesh_engine_podman::{InstanceData, PodmanEngine};
use mesh_runtime::{Engine, Handle, InstanceState, Recovered};

#[tokio::test]
async fn a_fresh_engine_adopts_the_running_pod_and_reports_it_gone_after_remove() {
    let Some(engine) = common::engine().await else {
        return;
    };
    let name = common::unique("rec");
    let spec = parse_one(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: sleeper
    image: {IMAGE}
    command: ["sleep", "300"]
"#
    ));
    let cleanup = Cleanup::new(&engine);
    let handle = common::install_and_start(&engine, &spec, &cleanup).await;
    wait_status(&engine, &handle, "pod running", common::is_running).await;
    let pod_id = InstanceData::from_handle(&handle)
        .pod_id
        .expect("kube play reports the pod id");
    let before = labelled(&engine, &workload_label(&spec)).await;

    // What the node persisted, read back by a new daemon with a new engine value.
    let persisted: Handle =
        serde_json::from_str(&serde_json::to_string(&handle).expect("handle serialises"))
            .expect("handle parses");
    let restarted = PodmanEngine::connect(engine.socket());
    match restarted.recover(&persisted).await.expect("recover") {
        Recovered::Adopted(status) => {
            assert_eq!(status.state, InstanceState::Running, "{status:?}")
        }
        Recovered::Gone => panic!("the running pod was not found"),
    }
    let inspected = restarted
        .client()
        .pods()
        .get(&persisted.instance)
        .inspect()
        .await
        .expect("pod inspect");
    assert_eq!(
        inspected.id.as_deref(),
        Some(pod_id.as_str()),
        "the same pod, not a new one"
    );
    assert_eq!(
        labelled(&engine, &workload_label(&spec)).await,
        before,
        "nothing new was created"
    );

    restarted.remove(&persisted).await.expect("remove");
    assert_eq!(
        restarted
            .recover(&persisted)
            .await
            .expect("recover after remove"),
        Recovered::Gone
    );
}
