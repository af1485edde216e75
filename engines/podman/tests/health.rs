//! Exec probes become Podman health checks whose result shows in `status`, also on hosts
//! without systemd, where Podman's own health-check timers never fire.

mod common;

use common::{parse_one, wait_status, Cleanup, IMAGE};
use mesh_runtime::{Engine, Health};

async fn health_of(probe: &str) -> Option<Health> {
    let engine = common::engine().await?;
    let name = common::unique("hc");
    let spec = parse_one(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: app
    image: {IMAGE}
    command: ["sleep", "300"]
    livenessProbe:
      exec:
        command: ["sh", "-c", "{probe}"]
      periodSeconds: 1
      failureThreshold: 1
"#
    ));
    let cleanup = Cleanup::new(&engine);
    let handle = common::install_and_start(&engine, &spec, &cleanup).await;
    let status = wait_status(&engine, &handle, "health decided", |s| {
        common::is_running(s) && matches!(s.health, Health::Healthy | Health::Unhealthy { .. })
    })
    .await;
    engine.remove(&handle).await.expect("remove");
    Some(status.health)
}

#[tokio::test]
async fn a_passing_probe_makes_the_pod_healthy() {
    let Some(health) = health_of("test -f /var/www/index.html").await else {
        return;
    };
    assert_eq!(health, Health::Healthy);
}

#[tokio::test]
async fn a_failing_probe_makes_the_pod_unhealthy_with_the_container_named() {
    let Some(health) = health_of("echo probe-says-no; exit 1").await else {
        return;
    };
    let Health::Unhealthy { reason } = health else {
        panic!("expected unhealthy, got {health:?}")
    };
    assert!(reason.starts_with("container app"), "{reason}");
}
