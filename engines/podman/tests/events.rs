//! Podman's events followed by the engine: an instance whose container died is reported, and
//! a Job's pod whose containers all exited 0 is answered from the event, without inspecting
//! it; a non-zero exit is still inspected, for its details.

mod common;

use std::time::Duration;

use common::Cleanup;
use mesh_engine_podman::PodmanEngine;
use mesh_runtime::{Engine, Handle, InstanceState};
use tokio::sync::mpsc;

/// How long a reported exit may take to arrive once the stream is live.
const EVENT_WAIT: Duration = Duration::from_secs(20);

/// Runs a Job exiting `exit` and waits for the events to name its instance, `None` when they
/// did not within `wait`.
async fn run_and_hear(
    engine: &PodmanEngine,
    cleanup: &Cleanup,
    heard: &mut mpsc::Receiver<String>,
    exit: i32,
    wait: Duration,
) -> Option<Handle> {
    let handle = common::install_and_start(
        engine,
        &common::job("evjob", &format!("exit {exit}")),
        cleanup,
    )
    .await;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, heard.recv()).await {
            Ok(Some(instance)) if instance == handle.instance => return Some(handle),
            Ok(Some(_other)) => continue,
            Ok(None) => panic!("the event stream ended"),
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_jobs_exit_0_is_answered_from_the_event_and_a_failure_is_inspected() {
    let Some(engine) = common::engine().await else {
        return;
    };
    // The events alone: the waits would report the same exits (see tests/job.rs).
    let engine = engine.without_job_waits();
    let (tx, mut heard) = mpsc::channel(64);
    let follower = engine.clone();
    let watching = tokio::spawn(async move { follower.watch(tx).await });
    let cleanup = Cleanup::new(&engine);

    // The stream's subscription is not observable: Jobs are run until one is heard (each
    // waits 3 s), after which no event is lost.
    let mut succeeded = None;
    for _ in 0..5 {
        succeeded = run_and_hear(&engine, &cleanup, &mut heard, 0, Duration::from_secs(3)).await;
        if succeeded.is_some() {
            break;
        }
    }
    let succeeded = succeeded.expect("the events name the Job's instance once it exited");
    let status = engine.status(&succeeded).await.expect("status");
    assert_eq!(status.state, InstanceState::Exited { code: 0 });
    assert!(
        status.detail.contains("as Podman reported at the exit"),
        "answered from the event: {}",
        status.detail
    );

    let failed = run_and_hear(&engine, &cleanup, &mut heard, 3, EVENT_WAIT)
        .await
        .expect("the failed Job's exit is heard");
    let status = engine.status(&failed).await.expect("status");
    assert_eq!(status.state, InstanceState::Exited { code: 3 });
    assert!(
        status.detail.contains("exit codes"),
        "a failure is inspected: {}",
        status.detail
    );

    // Removed, the pod is no longer answered from its old exit.
    engine.remove(&succeeded).await.expect("remove");
    let gone = engine.status(&succeeded).await.expect("status");
    assert_eq!(gone.state, InstanceState::Missing, "{}", gone.detail);
    watching.abort();
}
