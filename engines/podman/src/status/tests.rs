//! Unit tests of the status summary.

use mesh_runtime::{Health, InstanceState};

use super::{summarize, ContainerView};

fn c(name: &str, state: &str, exit_code: i32) -> ContainerView {
    ContainerView {
        name: name.into(),
        state: state.into(),
        exit_code,
        ..ContainerView::default()
    }
}

#[test]
fn all_running_is_running_with_a_detail() {
    let s = summarize("Running", &[c("a", "running", 0), c("b", "running", 0)]);
    assert_eq!(s.state, InstanceState::Running);
    assert_eq!(s.health, Health::NoCheck);
    assert_eq!(s.detail, "pod Running, 2/2 containers running");
}

#[test]
fn exits_report_the_first_failing_code() {
    let s = summarize("Exited", &[c("a", "exited", 0), c("b", "exited", 3)]);
    assert_eq!(s.state, InstanceState::Exited { code: 3 });
    assert!(s.detail.contains("b=3"), "{}", s.detail);
    let s = summarize("Exited", &[c("a", "exited", 0)]);
    assert_eq!(s.state, InstanceState::Exited { code: 0 });
}

#[test]
fn created_oom_and_start_errors() {
    assert_eq!(
        summarize("Created", &[c("a", "created", 0)]).state,
        InstanceState::Created
    );
    let mut oom = c("a", "exited", 137);
    oom.oom_killed = true;
    assert!(
        matches!(summarize("Exited", &[oom]).state, InstanceState::Failed { reason } if reason.contains("OOM"))
    );
    let mut broken = c("a", "exited", 127);
    broken.error = "executable file not found".into();
    assert!(
        matches!(summarize("Error", &[broken]).state, InstanceState::Failed { reason } if reason.contains("executable"))
    );
    assert!(matches!(
        summarize("Created", &[]).state,
        InstanceState::Failed { .. }
    ));
}

#[test]
fn health_and_restarts_aggregate_over_containers() {
    let mut a = c("a", "running", 0);
    a.health = Some("healthy".into());
    a.restarts = 2;
    let mut b = c("b", "running", 0);
    b.health = Some("starting".into());
    b.restarts = 1;
    let s = summarize("Running", &[a.clone(), b.clone()]);
    assert_eq!(s.health, Health::Starting);
    assert_eq!(s.restarts, 3);
    b.health = Some("healthy".into());
    assert_eq!(
        summarize("Running", &[a.clone(), b.clone()]).health,
        Health::Healthy
    );
    b.health = Some("unhealthy".into());
    b.health_output = "connection refused\n".into();
    assert_eq!(
        summarize("Running", &[a, b]).health,
        Health::Unhealthy {
            reason: "container b: connection refused".into()
        }
    );
}

#[test]
fn a_container_stopped_by_its_failing_check_is_failed_with_the_check_output() {
    let mut a = c("app", "exited", 137);
    a.health = Some("unhealthy".into());
    a.health_output = "probe-says-no".into();
    let s = summarize("Exited", &[a]);
    assert!(
        matches!(&s.state, InstanceState::Failed { reason } if reason.contains("probe-says-no")),
        "{s:?}"
    );
}
