#![allow(clippy::unwrap_used)]
use super::*;
use mesh_protocol::spec::{JobSpec, SourceFormat};
use mesh_protocol::WorkloadKind;

fn policy(limit: u32, deadline_s: Option<u64>) -> Policy {
    let mut spec = WorkloadSpec::new("j", "default", WorkloadKind::Job, SourceFormat::Kubernetes);
    spec.job = Some(JobSpec {
        backoff_limit: Some(limit),
        active_deadline_ms: deadline_s.map(|s| s * 1000),
        ..JobSpec::default()
    });
    Policy::new(&spec, &ControllerConfig::default())
}

fn failure() -> JobError {
    JobError::new(JobPhase::Execution, "exited with code 1")
}

#[test]
fn backoff_doubles_from_the_base_up_to_the_cap() {
    let p = policy(6, None);
    let secs: Vec<u64> = (1..=8).map(|f| p.backoff(f).as_secs()).collect();
    assert_eq!(secs, [10, 20, 40, 80, 160, 320, 360, 360]);
    assert_eq!(p.backoff(u32::MAX), Duration::from_secs(360));
}

#[test]
fn defaults_follow_kubernetes() {
    let spec = WorkloadSpec::new("j", "default", WorkloadKind::Job, SourceFormat::Kubernetes);
    let p = Policy::new(&spec, &ControllerConfig::default());
    assert_eq!(p.backoff_limit, 6);
    assert_eq!(p.backoff_base, Duration::from_secs(10));
    assert_eq!(p.active_deadline, None);
}

/// backoffLimit 2: three attempts fail, then the run fails with the reason and the count.
#[test]
fn retries_stop_after_backoff_limit() {
    let p = policy(2, None);
    let spec =
        WorkloadSpec::new("j", "default", WorkloadKind::Job, SourceFormat::Kubernetes).seal();
    let mut st = new_run(&spec, &p, 1000);
    let mut now = 1000;
    for n in 1..=2 {
        let id = begin_attempt(&mut st);
        assert_eq!(id, format!("{}-{n}", st.run_id));
        attempt_running(&mut st, now);
        let next = attempt_failed(&p, &mut st, failure(), Some(1), now);
        assert_eq!(next, Next::RetryAt(now + p.backoff(n).as_millis() as u64));
        now += 100_000;
    }
    begin_attempt(&mut st);
    assert_eq!(
        attempt_failed(&p, &mut st, failure(), Some(1), now),
        Next::Failed
    );
    assert_eq!((st.attempts, st.failed_attempts), (3, 3));
    let e = st.error.clone().unwrap();
    assert_eq!(e.phase, JobPhase::Execution);
    assert_eq!(e.reason, Some(JobReason::BackoffLimitExceeded));
    assert_eq!(
        e.message,
        "exited with code 1; backoffLimit 2 reached after 3 attempts"
    );
    assert!(st.finished());
    assert_eq!(st.started_at, Some(1000), "the first start stays");
}

#[test]
fn the_deadline_counts_from_the_first_start_across_retries() {
    let p = policy(6, Some(5));
    let spec =
        WorkloadSpec::new("j", "default", WorkloadKind::Job, SourceFormat::Kubernetes).seal();
    let mut st = new_run(&spec, &p, 0);
    begin_attempt(&mut st);
    assert!(!p.deadline_passed(&st, u64::MAX), "not started yet");
    attempt_running(&mut st, 1_000);
    assert!(matches!(
        attempt_failed(&p, &mut st, failure(), Some(1), 2_000),
        Next::RetryAt(_)
    ));
    begin_attempt(&mut st);
    attempt_running(&mut st, 3_000);
    assert_eq!(p.deadline_at(&st), Some(6_000));
    assert!(!p.deadline_passed(&st, 5_999));
    assert_eq!(
        attempt_failed(&p, &mut st, failure(), Some(1), 6_000),
        Next::Failed
    );
    let e = st.error.unwrap();
    assert_eq!(e.reason, Some(JobReason::DeadlineExceeded));
    assert!(e.message.starts_with("deadline exceeded after 5s"), "{e}");
}

#[test]
fn success_records_exit_code_and_outputs() {
    let p = policy(6, None);
    let spec =
        WorkloadSpec::new("j", "default", WorkloadKind::Job, SourceFormat::Kubernetes).seal();
    let mut st = new_run(&spec, &p, 0);
    begin_attempt(&mut st);
    attempt_running(&mut st, 10);
    attempt_succeeded(&mut st, 0, Vec::new(), 20);
    assert_eq!(st.exit_code, Some(0));
    assert_eq!(st.completed_at, Some(20));
    assert_eq!(st.error, None);
    assert_eq!(st.current().unwrap().finished_at, Some(20));
}

#[test]
fn history_is_bounded_to_the_newest_attempts() {
    let p = policy(1000, None);
    let spec =
        WorkloadSpec::new("j", "default", WorkloadKind::Job, SourceFormat::Kubernetes).seal();
    let mut st = new_run(&spec, &p, 0);
    for _ in 0..(MAX_ATTEMPT_HISTORY + 5) {
        begin_attempt(&mut st);
        attempt_failed(&p, &mut st, failure(), Some(1), 0);
    }
    assert_eq!(st.history.len(), MAX_ATTEMPT_HISTORY);
    assert_eq!(st.history.last().unwrap().number, st.attempts);
}

#[test]
fn instance_states_map_to_attempt_states() {
    let status = |state| InstanceStatus {
        state,
        health: crate::engine::Health::NoCheck,
        restarts: 0,
        detail: String::new(),
    };
    assert_eq!(
        attempt_state(&status(InstanceState::Running)),
        AttemptState::Running
    );
    assert_eq!(
        attempt_state(&status(InstanceState::Exited { code: 0 })),
        AttemptState::Succeeded { exit_code: 0 }
    );
    match attempt_state(&status(InstanceState::Failed {
        reason: "trapped: unreachable".into(),
    })) {
        AttemptState::Failed { exit_code, error } => {
            assert_eq!(exit_code, None);
            assert_eq!(error.phase, JobPhase::Execution);
            assert_eq!(error.message, "trapped: unreachable");
        }
        other => panic!("{other:?}"),
    }
}
