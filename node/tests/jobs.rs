//! Run-to-completion workloads through one in-process node: attempts, retries with backoff,
//! the deadline, collected outputs, typed errors, correlation ids and restarts, as a user of
//! `meshctl get/describe/logs -o json` sees them.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod job_support;

use std::sync::Arc;

use job_support::{apply, finished, get, job, job_of, start, torn_down, BACKOFF};
use mesh_node::testing::TestNode;
use mesh_protocol::api::{ApplyAction, Logs};
use mesh_protocol::job::{JobPhase, JobReason};
use mesh_protocol::{Outcome, Phase, Step};

/// A job that exits 0 succeeds with its exit code and its declared outputs, copied into the
/// node's data directory; its instance is removed once they are collected.
#[tokio::test]
async fn a_job_succeeds_with_its_exit_code_and_outputs() {
    let node = start().await;
    let resp = apply(
        &node,
        job(
            "pi",
            &[
                ("beemesh.io/mock-exit-after-ms", "100"),
                (
                    "beemesh.io/mock-output-files",
                    "result.txt=42, out/a.txt=hello",
                ),
                ("beemesh.io/outputs", "result.txt, out/"),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(resp.workloads[0].action, ApplyAction::Created);
    assert_eq!(resp.workloads[0].deployment.phase, Phase::Running);

    assert_eq!(finished(&node, "pi").await.phase, Phase::Succeeded);
    let d = torn_down(&node, "pi").await;
    assert_eq!(d.phase, Phase::Succeeded, "{d:#?}");
    let j = job_of(&d);
    assert_eq!((j.attempts, j.failed_attempts), (1, 0));
    assert_eq!(j.exit_code, Some(0));
    assert_eq!(d.replicas[0].exit_code, Some(0));
    assert_eq!(j.error, None);
    let outputs: Vec<(&str, u64)> = j
        .outputs
        .iter()
        .map(|a| (a.path.as_str(), a.size))
        .collect();
    assert_eq!(outputs, [("result.txt", 2), ("out/a.txt", 5)]);
    assert!(j.outputs[0]
        .location
        .starts_with(&node.dir.path().display().to_string()));
    assert_eq!(
        std::fs::read_to_string(&j.outputs[0].location).unwrap(),
        "42"
    );
    assert_eq!(
        std::fs::read_to_string(&j.outputs[1].location).unwrap(),
        "hello"
    );
    assert_eq!(d.replicas[0].instance, None, "the instance is torn down");
    assert!(node.mock.instances().is_empty());

    // The same fields in the JSON that `meshctl get pi -o json` prints.
    let json: serde_json::Value = node.client().get("/deployments/pi").await.unwrap();
    let jj = &json["replicas"][0]["job"];
    assert_eq!(jj["attempts"], 1);
    assert_eq!(jj["exit_code"], 0);
    assert_eq!(jj["outputs"][1]["path"], "out/a.txt");
    assert!(jj["outputs"][0]["digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));

    let steps: Vec<Step> = d.events.iter().map(|e| e.step).collect();
    assert!(
        steps.ends_with(&[Step::Exit, Step::Collect, Step::Exit, Step::Uninstall]),
        "{steps:?}"
    );
    node.stop().await;
}

/// A job that keeps failing is retried exactly backoffLimit times, with doubling pauses, then
/// fails with a typed Execution error that says why and after how many attempts.
#[tokio::test]
async fn a_failing_job_is_retried_backoff_limit_times_then_fails() {
    let node = start().await;
    apply(
        &node,
        job(
            "flaky",
            &[
                ("beemesh.io/mock-exit-after-ms", "20"),
                ("beemesh.io/mock-exit-code", "3"),
            ],
            "  backoffLimit: 2\n",
        ),
    )
    .await;
    let d = finished(&node, "flaky").await;
    assert_eq!(d.phase, Phase::Failed, "{d:#?}");
    let j = job_of(&d);
    assert_eq!((j.attempts, j.failed_attempts), (3, 3));
    assert_eq!(j.exit_code, Some(3));
    let e = j.error.as_ref().unwrap();
    assert_eq!(e.phase, JobPhase::Execution);
    assert_eq!(e.reason, Some(JobReason::BackoffLimitExceeded));
    assert_eq!(
        e.message,
        "exited with code 3; backoffLimit 2 reached after 3 attempts"
    );
    assert_eq!(
        d.error.as_deref(),
        Some("execution error: exited with code 3; backoffLimit 2 reached after 3 attempts (BackoffLimitExceeded)")
    );
    assert_eq!(
        node.mock
            .counters
            .installs
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert!(node.mock.instances().is_empty(), "every attempt torn down");

    // Exponential backoff: the second pause is at least twice the base.
    let h = &j.history;
    assert_eq!(h.len(), 3);
    let pause = |i: usize| h[i + 1].started_at.unwrap() - h[i].finished_at.unwrap();
    assert!(pause(0) >= 50, "first pause {}ms", pause(0));
    assert!(pause(1) >= 100, "second pause {}ms", pause(1));
    assert!(h.iter().all(|a| a.exit_code == Some(3)));
    let retries = d.events.iter().filter(|e| e.step == Step::Retry).count();
    assert_eq!(retries, 2);
    node.stop().await;
}

/// `beemesh.io/mock-exit-codes: "1,1,0"`: two failed attempts, then success on the third.
#[tokio::test]
async fn a_job_succeeds_on_a_later_attempt() {
    let node = start().await;
    apply(
        &node,
        job(
            "third-time",
            &[
                ("beemesh.io/mock-exit-after-ms", "20"),
                ("beemesh.io/mock-exit-codes", "1,1,0"),
            ],
            "",
        ),
    )
    .await;
    let d = finished(&node, "third-time").await;
    assert_eq!(d.phase, Phase::Succeeded, "{d:#?}");
    let j = job_of(&d);
    assert_eq!((j.attempts, j.failed_attempts, j.backoff_limit), (3, 2, 6));
    assert_eq!(j.exit_code, Some(0));
    let codes: Vec<Option<i32>> = j.history.iter().map(|a| a.exit_code).collect();
    assert_eq!(codes, [Some(1), Some(1), Some(0)]);
    assert_eq!(
        j.history[0].error.as_ref().unwrap().message,
        "exited with code 1"
    );
    assert_eq!(d.error, None);
    node.stop().await;
}

/// activeDeadlineSeconds bounds the whole run from its first start, across retries: the
/// running attempt is stopped, nothing more is tried, and the run fails as DeadlineExceeded.
#[tokio::test]
async fn the_deadline_ends_the_run_across_retries() {
    let node = start().await;
    apply(
        &node,
        job(
            "slow",
            &[
                ("beemesh.io/mock-exit-after-ms", "300"),
                ("beemesh.io/mock-exit-code", "1"),
            ],
            "  backoffLimit: 50\n  activeDeadlineSeconds: 1\n",
        ),
    )
    .await;
    let d = finished(&node, "slow").await;
    assert_eq!(d.phase, Phase::Failed, "{d:#?}");
    let j = job_of(&d);
    let e = j.error.as_ref().unwrap();
    assert_eq!(e.phase, JobPhase::Execution);
    assert_eq!(e.reason, Some(JobReason::DeadlineExceeded));
    assert!(e.message.starts_with("deadline exceeded after 1s"), "{e}");
    assert!(
        j.attempts >= 2 && j.attempts < 10,
        "{} attempts",
        j.attempts
    );
    let ran = j.completed_at.unwrap() - j.started_at.unwrap();
    assert!(
        (1000..5000).contains(&ran),
        "ended {ran}ms after the first start"
    );
    assert!(
        node.mock.instances().is_empty(),
        "the last attempt is torn down"
    );
    node.stop().await;
}

/// A long attempt is stopped when the deadline passes.
#[tokio::test]
async fn the_deadline_stops_a_running_attempt() {
    let node = start().await;
    apply(
        &node,
        job(
            "forever",
            &[("beemesh.io/mock-exit-after-ms", "600000")],
            "  activeDeadlineSeconds: 1\n",
        ),
    )
    .await;
    let d = finished(&node, "forever").await;
    let j = job_of(&d);
    assert_eq!(
        j.error.as_ref().unwrap().reason,
        Some(JobReason::DeadlineExceeded)
    );
    assert_eq!((j.attempts, j.failed_attempts), (1, 1));
    assert!(
        node.mock
            .counters
            .stops
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    assert!(node.mock.instances().is_empty());
    node.stop().await;
}

/// A declared output the run did not write is an Artifact error; the run is not retried.
#[tokio::test]
async fn a_missing_declared_output_is_an_artifact_error() {
    let node = start().await;
    apply(
        &node,
        job(
            "forgetful",
            &[
                ("beemesh.io/mock-exit-after-ms", "20"),
                ("beemesh.io/mock-output-files", "result.txt=1"),
                ("beemesh.io/outputs", "result.txt, summary.json"),
            ],
            "",
        ),
    )
    .await;
    let d = finished(&node, "forgetful").await;
    assert_eq!(d.phase, Phase::Failed, "{d:#?}");
    let j = job_of(&d);
    let e = j.error.as_ref().unwrap();
    assert_eq!(e.phase, JobPhase::Artifact);
    assert!(e.message.contains("summary.json was not written"), "{e}");
    assert_eq!(j.exit_code, Some(0), "the run itself exited 0");
    assert_eq!(j.attempts, 1, "an artifact error is not retried");
    assert!(node.mock.instances().is_empty());
    assert!(d
        .events
        .iter()
        .any(|e| e.step == Step::Collect && e.outcome == Outcome::Failed));
    node.stop().await;
}

/// A finished job stays finished across a restart of the node and is not run again; its
/// logs are still served.
#[tokio::test]
async fn a_finished_job_survives_a_restart_and_is_not_run_again() {
    let node = start().await;
    let manifest = job(
        "done",
        &[
            ("beemesh.io/mock-exit-after-ms", "20"),
            ("beemesh.io/mock-exit-codes", "1,0"),
            ("beemesh.io/mock-output-files", "r.txt=ok"),
            ("beemesh.io/outputs", "r.txt"),
        ],
        "",
    );
    apply(&node, manifest.clone()).await;
    let before = finished(&node, "done").await;
    assert_eq!(before.phase, Phase::Succeeded);
    let dir = node.stop().await;

    let node = TestNode::start_in(dir, |c| c.controller.job_backoff_base = BACKOFF).await;
    // Recovery decides at start, before the node serves: nothing was installed again.
    assert_eq!(
        node.mock
            .counters
            .installs
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let after = get(&node, "done").await;
    assert_eq!(after.phase, Phase::Succeeded);
    assert_eq!(job_of(&after), job_of(&before));
    assert_eq!(
        std::fs::read_to_string(&job_of(&after).outputs[0].location).unwrap(),
        "ok"
    );
    let logs: Logs = node.client().get("/deployments/done/logs").await.unwrap();
    assert!(logs.lines.iter().any(|l| l.line == "exited with code 1"));
    // Re-applying the same content changes nothing.
    let again = apply(&node, manifest).await;
    assert_eq!(again.workloads[0].action, ApplyAction::Unchanged);
    node.stop().await;
}

/// A node that stops while an attempt runs adopts the attempt at restart and collects it
/// when it exits; an attempt whose instance vanished meanwhile counts as failed and is
/// retried.
#[tokio::test]
async fn a_job_interrupted_mid_run_is_carried_on_after_a_restart() {
    let node = start().await;
    let long = job("survivor", &[("beemesh.io/mock-exit-after-ms", "1500")], "");
    let lost = job("lost", &[("beemesh.io/mock-exit-after-ms", "1500")], "");
    apply(&node, long).await;
    apply(&node, lost).await;
    let lost_instance = get(&node, "lost").await.replicas[0]
        .instance
        .clone()
        .unwrap();
    let dir = node.stop().await;
    // The engine loses one instance while the node is down.
    mesh_runtime::mock::MockEngine::remove_stored(&dir.path().join("mock"), &lost_instance)
        .unwrap();

    let node = TestNode::start_in(dir, |c| c.controller.job_backoff_base = BACKOFF).await;
    let survivor = finished(&node, "survivor").await;
    assert_eq!(survivor.phase, Phase::Succeeded, "{survivor:#?}");
    assert_eq!(
        job_of(&survivor).attempts,
        1,
        "the running attempt was adopted"
    );

    let lost = finished(&node, "lost").await;
    assert_eq!(lost.phase, Phase::Succeeded, "{lost:#?}");
    let j = job_of(&lost);
    assert_eq!((j.attempts, j.failed_attempts), (2, 1));
    assert_eq!(
        j.history[0].error.as_ref().unwrap().message,
        "the instance was lost while the node was down"
    );
    node.stop().await;
}

/// Re-applying a job while it runs changes nothing; re-applying a failed job runs it again.
#[tokio::test]
async fn reapplying_a_failed_job_runs_it_again() {
    let node = start().await;
    let manifest = job(
        "again",
        &[
            ("beemesh.io/mock-exit-after-ms", "200"),
            ("beemesh.io/mock-exit-codes", "1,0"),
        ],
        "  backoffLimit: 0\n",
    );
    apply(&node, manifest.clone()).await;
    let running = apply(&node, manifest.clone()).await;
    assert_eq!(running.workloads[0].action, ApplyAction::Unchanged);
    let first = finished(&node, "again").await;
    assert_eq!(first.phase, Phase::Failed);
    let first_run = job_of(&first).run_id.clone();

    let second = apply(&node, manifest).await;
    assert_eq!(second.workloads[0].action, ApplyAction::Updated);
    let d = finished(&node, "again").await;
    assert_eq!(d.phase, Phase::Succeeded, "{d:#?}");
    let j = job_of(&d);
    assert_eq!(j.attempts, 1, "a fresh run");
    assert_ne!(j.run_id, first_run);
    let logs: Logs = node.client().get("/deployments/again/logs").await.unwrap();
    assert!(
        logs.lines.iter().all(|l| l
            .correlation
            .as_deref()
            .is_some_and(|c| c.starts_with(&j.run_id))),
        "the previous run's logs are gone: {logs:#?}"
    );
    node.stop().await;
}

/// Through the process engine: a real `sh -c` command writes its output file; a failing
/// command is retried and fails with its exit code.
#[tokio::test]
async fn a_shell_job_on_the_process_engine_produces_its_output() {
    let node = TestNode::start_with(|c| {
        c.controller.job_backoff_base = BACKOFF;
        let engine = mesh_engine_process::ProcessEngine::new(c.data_dir.join("process")).unwrap();
        c.extra_engines.push(Arc::new(engine));
    })
    .await;
    let shell = |name: &str, script: &str, extra: &str| {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations:\n    beemesh.io/runtime-engine: process\n    beemesh.io/outputs: \"result.txt, out/\"\nspec:\n{extra}  template:\n    spec:\n      containers:\n      - name: main\n        image: busybox\n        command: [sh, -c, {script:?}]\n"
        )
    };
    apply(
        &node,
        shell(
            "compute",
            "echo computing; echo 42 > result.txt; mkdir -p out/deep; printf x > out/deep/x.txt",
            "",
        ),
    )
    .await;
    let d = finished(&node, "compute").await;
    assert_eq!(d.phase, Phase::Succeeded, "{d:#?}");
    let j = job_of(&d);
    assert_eq!(j.exit_code, Some(0));
    let paths: Vec<&str> = j.outputs.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(paths, ["result.txt", "out/deep/x.txt"]);
    assert_eq!(
        std::fs::read_to_string(&j.outputs[0].location).unwrap(),
        "42\n"
    );
    let logs: Logs = node
        .client()
        .get("/deployments/compute/logs")
        .await
        .unwrap();
    let line = logs
        .lines
        .iter()
        .find(|l| l.line == "computing")
        .expect("the command's output");
    assert_eq!(line.correlation.as_deref(), Some(j.correlation.as_str()));
    assert!(
        !node
            .dir
            .path()
            .join("process/instances")
            .read_dir()
            .unwrap()
            .any(|_| true),
        "the instance directory is removed"
    );

    apply(
        &node,
        shell("broken", "echo oops >&2; exit 3", "  backoffLimit: 1\n"),
    )
    .await;
    let d = finished(&node, "broken").await;
    assert_eq!(d.phase, Phase::Failed, "{d:#?}");
    let j = job_of(&d);
    assert_eq!((j.attempts, j.exit_code), (2, Some(3)));
    assert_eq!(
        j.error.as_ref().unwrap().reason,
        Some(JobReason::BackoffLimitExceeded)
    );
    node.stop().await;
}
