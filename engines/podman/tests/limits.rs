//! CPU and memory limits of the manifest are enforced by Podman on the container.

mod common;

use common::{parse_one, Cleanup, IMAGE};
use mesh_engine_podman::InstanceData;
use mesh_runtime::{Engine, InstallContext};

#[tokio::test]
async fn cpu_and_memory_limits_reach_the_container() {
    let Some(engine) = common::engine().await else {
        return;
    };
    let name = common::unique("lim");
    let spec = parse_one(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: capped
    image: {IMAGE}
    command: ["sleep", "300"]
    resources:
      requests: {{cpu: 100m, memory: 32Mi}}
      limits: {{cpu: 250m, memory: 64Mi}}
"#
    ));
    let cleanup = Cleanup::new(&engine);
    engine.prepare(&spec).await.expect("prepare");
    let handle = engine
        .install(
            &spec,
            &InstallContext {
                node: "node-a".into(),
                replica: 0,
            },
        )
        .await
        .expect("install");
    cleanup.add(&handle);
    let container = &InstanceData::from_handle(&handle).containers[0];
    let inspected = engine
        .client()
        .containers()
        .get(container)
        .inspect()
        .await
        .expect("container inspect");
    let host = inspected.host_config.expect("host config");
    assert_eq!(host.memory, Some(64 * 1024 * 1024), "memory limit in bytes");
    let quota = host.cpu_quota.unwrap_or(0);
    let period = host.cpu_period.unwrap_or(0);
    let from_quota = if period > 0 {
        quota * 1000 / period as i64
    } else {
        0
    };
    let from_nano = host.nano_cpus.unwrap_or(0) / 1_000_000;
    assert!(
        from_quota == 250 || from_nano == 250,
        "cpu quota {quota}/{period}, nano cpus {:?}",
        host.nano_cpus
    );
    engine.remove(&handle).await.expect("remove");
}
