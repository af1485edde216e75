//! Run-to-completion workloads on Podman: a Job's exit code is its outcome.

mod common;

use common::{wait_status, Cleanup};
use mesh_runtime::{Engine, InstanceState, LogOptions};

async fn run_job(exit: i32) -> Option<(InstanceState, Vec<String>)> {
    let engine = common::engine().await?;
    let spec = common::job("job", &format!("echo done; exit {exit}"));
    assert!(spec.runs_to_completion());
    let cleanup = Cleanup::new(&engine);
    let handle = common::install_and_start(&engine, &spec, &cleanup).await;
    let status = wait_status(&engine, &handle, "job finished", |s| {
        matches!(s.state, InstanceState::Exited { .. })
    })
    .await;
    let logs = engine
        .logs(&handle, LogOptions::default())
        .await
        .expect("logs");
    engine.remove(&handle).await.expect("remove");
    Some((status.state, logs.into_iter().map(|l| l.line).collect()))
}

#[tokio::test]
async fn a_job_that_exits_0_is_exited_0() {
    let Some((state, logs)) = run_job(0).await else {
        return;
    };
    assert_eq!(state, InstanceState::Exited { code: 0 });
    assert!(logs.contains(&"done".to_string()), "{logs:?}");
}

#[tokio::test]
async fn a_job_that_exits_3_is_exited_3() {
    let Some((state, _)) = run_job(3).await else {
        return;
    };
    assert_eq!(state, InstanceState::Exited { code: 3 });
}

/// Without the events followed, a Job's exit 0 is still known from the wait the engine asks
/// of Podman once its pod started (`wait`): its status is answered without inspecting it.
#[tokio::test]
async fn a_jobs_success_is_known_from_its_wait() {
    let Some(engine) = common::engine().await else {
        return;
    };
    let spec = common::job("waitjob", "exit 0");
    let cleanup = Cleanup::new(&engine);
    let handle = common::install_and_start(&engine, &spec, &cleanup).await;
    let status = wait_status(&engine, &handle, "the wait's answer", |s| {
        s.detail.contains("as Podman reported at the exit")
    })
    .await;
    assert_eq!(status.state, InstanceState::Exited { code: 0 });
    engine.remove(&handle).await.expect("remove");
}
