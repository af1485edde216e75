#![allow(clippy::unwrap_used)]

use super::describe::describe_job;
use super::*;
use mesh_protocol::job::{Artifact, Attempt, JobError, JobPhase, JobReason};

fn failed_job() -> JobStatus {
    JobStatus {
        run_id: "job-3f2a9c1d-7b41".into(),
        correlation: "job-3f2a9c1d-7b41-3".into(),
        attempts: 3,
        failed_attempts: 3,
        backoff_limit: 2,
        started_at: Some(1_000),
        completed_at: Some(5_000),
        exit_code: Some(1),
        error: Some(
            JobError::new(
                JobPhase::Execution,
                "exited with code 1; backoffLimit 2 reached after 3 attempts",
            )
            .with_reason(JobReason::BackoffLimitExceeded),
        ),
        history: vec![Attempt {
            number: 3,
            correlation: "job-3f2a9c1d-7b41-3".into(),
            started_at: Some(4_000),
            finished_at: Some(4_500),
            exit_code: Some(1),
            error: Some(JobError::new(JobPhase::Execution, "exited with code 1")),
        }],
        ..JobStatus::default()
    }
}

/// `get` says how a job ended in one line; `describe` shows attempts, the typed error,
/// outputs with sizes and the attempts with their correlation ids.
#[test]
fn jobs_render_their_results() {
    let failed = failed_job();
    assert_eq!(attempts(&failed), "3/3");
    assert_eq!(
            job_summary(&failed),
            "execution error: exited with code 1; backoffLimit 2 reached after 3 attempts (BackoffLimitExceeded)"
        );
    let mut s = String::new();
    describe_job(&mut s, &failed);
    assert!(
        s.contains("Attempts:      3 (3 failed; backoffLimit 2)"),
        "{s}"
    );
    assert!(s.contains("Result:        Failed (execution error)"), "{s}");
    assert!(s.contains("Exit code:     1"), "{s}");
    assert!(s.contains("3  job-3f2a9c1d-7b41-3"), "{s}");
    assert!(s.contains("500ms"), "{s}");

    let ok = JobStatus {
        error: None,
        exit_code: Some(0),
        outputs: vec![Artifact {
            path: "result.txt".into(),
            size: 2048,
            digest: format!("sha256:{}", "ab".repeat(32)),
            location: "/data/jobs/default/pi/outputs/result.txt".into(),
        }],
        ..failed_job()
    };
    assert_eq!(job_summary(&ok), "succeeded, 1 output");
    let mut s = String::new();
    describe_job(&mut s, &ok);
    assert!(s.contains("Result:        Succeeded"), "{s}");
    assert!(
        s.contains(
            "result.txt  2.0KiB  sha256:abababababab  /data/jobs/default/pi/outputs/result.txt"
        ),
        "{s}"
    );
    let running = JobStatus {
        completed_at: None,
        error: None,
        ..failed_job()
    };
    assert_eq!(
        job_summary(&running),
        "attempt 3 running (job-3f2a9c1d-7b41-3)"
    );
}
