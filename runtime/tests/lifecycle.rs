//! The lifecycle controller driving the mock engine: every phase, every scripted failure,
//! updates with rollback, and recovery from persisted handles.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_protocol::annotations as ann;
use mesh_protocol::spec::JobSpec;
use mesh_protocol::{Outcome, Phase, Step, WorkloadKind, WorkloadSpec};
use mesh_runtime::mock::MockEngine;
use mesh_runtime::{Controller, ControllerConfig, Engine, Handle, Observer, Recovered, Registry};
use support::{ctx, spec};

#[derive(Default)]
struct Recorder {
    steps: Mutex<Vec<(Step, Outcome, String)>>,
    installed: Mutex<Vec<Handle>>,
}

impl Observer for Recorder {
    fn step(
        &self,
        _: &WorkloadSpec,
        _: &str,
        step: Step,
        outcome: Outcome,
        _: Duration,
        message: &str,
    ) {
        self.steps
            .lock()
            .unwrap()
            .push((step, outcome, message.to_string()));
    }
    fn installed(&self, _: &WorkloadSpec, handle: &Handle) {
        self.installed.lock().unwrap().push(handle.clone());
    }
}

impl Recorder {
    fn steps(&self) -> Vec<Step> {
        self.steps.lock().unwrap().iter().map(|s| s.0).collect()
    }
}

fn setup(config: ControllerConfig) -> (Controller, Arc<MockEngine>) {
    let mock = Arc::new(MockEngine::new());
    let mut registry = Registry::new();
    registry.register(mock.clone());
    (Controller::new(Arc::new(registry), config), mock)
}

/// A plain workload walks every phase in order and ends Running; the engine received the
/// exact spec and context.
#[tokio::test]
async fn happy_path_runs_every_phase_in_order() {
    let (ctl, mock) = setup(ControllerConfig::default());
    let rec = Recorder::default();
    let s = spec("web", &[]);
    let report = ctl.deploy(&s, "mock", &ctx(), &rec).await;
    assert_eq!(report.phase, Phase::Running, "{report:?}");
    assert_eq!(
        rec.steps(),
        vec![
            Step::Validate,
            Step::Fetch,
            Step::Prepare,
            Step::Install,
            Step::Activate,
            Step::HealthCheck
        ]
    );
    let handle = report.handle.expect("installed");
    assert_eq!(
        rec.installed.lock().unwrap().as_slice(),
        std::slice::from_ref(&handle)
    );
    let inst = mock
        .instance(&handle.instance)
        .expect("mock holds the instance");
    assert_eq!(inst.spec, s);
    assert_eq!(inst.ctx, ctx());
    assert_eq!(inst.starts, 1);
}

/// `mock-start-error` fails the Activate phase with the scripted message.
#[tokio::test]
async fn start_error_fails_at_activate() {
    let (ctl, _) = setup(ControllerConfig::default());
    let rec = Recorder::default();
    let report = ctl
        .deploy(
            &spec("bad", &[(ann::MOCK_START_ERROR, "image exploded")]),
            "mock",
            &ctx(),
            &rec,
        )
        .await;
    assert_eq!(report.phase, Phase::Failed);
    assert_eq!(report.failed_step, Some(Step::Activate));
    assert!(
        report.error.as_deref().unwrap().contains("image exploded"),
        "{report:?}"
    );
    assert!(
        report.handle.is_some(),
        "the failed instance stays for its logs"
    );
    assert_eq!(rec.steps().last(), Some(&Step::Activate));
}

/// `mock-health: fail` fails the HealthCheck phase.
#[tokio::test]
async fn unhealthy_fails_at_health_check() {
    let (ctl, _) = setup(ControllerConfig::default());
    let rec = Recorder::default();
    let report = ctl
        .deploy(
            &spec("sick", &[(ann::MOCK_HEALTH, "fail")]),
            "mock",
            &ctx(),
            &rec,
        )
        .await;
    assert_eq!(report.failed_step, Some(Step::HealthCheck));
    assert!(report.error.unwrap().contains("unhealthy"));
}

/// A workload that exits before it is healthy fails with its exit code; a Job that exits 0
/// succeeds.
#[tokio::test]
async fn exits_during_health_check() {
    let (ctl, _) = setup(ControllerConfig::default());
    let rec = Recorder::default();
    let crash = spec(
        "crash",
        &[(ann::MOCK_EXIT_AFTER_MS, "0"), (ann::MOCK_EXIT_CODE, "3")],
    );
    let report = ctl.deploy(&crash, "mock", &ctx(), &rec).await;
    assert_eq!(report.failed_step, Some(Step::HealthCheck));
    assert!(report.error.unwrap().contains("exited with code 3"));

    let mut job = spec("job", &[(ann::MOCK_EXIT_AFTER_MS, "0")]);
    job.kind = WorkloadKind::Job;
    job.job = Some(JobSpec::default());
    let job = job.seal();
    let report = ctl.deploy(&job, "mock", &ctx(), &rec).await;
    assert_eq!(report.phase, Phase::Succeeded, "{report:?}");
}

/// The health check gives up after its timeout and says so.
#[tokio::test]
async fn health_check_times_out() {
    let config = ControllerConfig {
        health_timeout: Duration::from_millis(50),
        ..ControllerConfig::default()
    };
    let (ctl, mock) = setup(config);
    let s = spec("slow", &[]);
    // An instance that never leaves Created: install it, and health-check without starting.
    let handle = mock.install(&s, &ctx()).await.unwrap();
    let err = ctl
        .health_check(mock.as_ref(), &s, &handle)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timed out after 50ms"), "{err}");
}

/// A start delay is waited for, not mistaken for a failure.
#[tokio::test]
async fn start_delay_is_honoured() {
    let (ctl, _) = setup(ControllerConfig::default());
    let rec = Recorder::default();
    let started = std::time::Instant::now();
    let report = ctl
        .deploy(
            &spec("slowstart", &[(ann::MOCK_START_DELAY_MS, "30")]),
            "mock",
            &ctx(),
            &rec,
        )
        .await;
    assert_eq!(report.phase, Phase::Running);
    assert!(started.elapsed() >= Duration::from_millis(30));
}

/// An update whose new version is unhealthy is rolled back: the old instance runs again and
/// the new one is removed.
#[tokio::test]
async fn failed_update_rolls_back_to_last_known_good() {
    let (ctl, mock) = setup(ControllerConfig::default());
    let rec = Recorder::default();
    let v1 = spec("app", &[]);
    let old = ctl.deploy(&v1, "mock", &ctx(), &rec).await.handle.unwrap();
    let v2 = spec("app", &[(ann::MOCK_HEALTH, "fail")]);
    let report = ctl.update(&v1, &old, &v2, "mock", &ctx(), &rec).await;
    assert!(report.rolled_back);
    assert_eq!(report.rollback_error, None);
    assert_eq!(report.new.phase, Phase::Failed);
    let instances = mock.instances();
    assert_eq!(instances.len(), 1, "the failed new instance was removed");
    assert_eq!(instances[0].id, old.instance);
    assert_eq!(instances[0].starts, 2, "the old instance was started again");
    assert!(rec.steps().contains(&Step::Rollback));
}

/// A successful update replaces the old instance.
#[tokio::test]
async fn successful_update_replaces_old_instance() {
    let (ctl, mock) = setup(ControllerConfig::default());
    let rec = Recorder::default();
    let v1 = spec("app", &[]);
    let old = ctl.deploy(&v1, "mock", &ctx(), &rec).await.handle.unwrap();
    let v2 = spec("app", &[("team", "blue")]);
    let report = ctl.update(&v1, &old, &v2, "mock", &ctx(), &rec).await;
    assert!(!report.rolled_back);
    assert_eq!(report.new.phase, Phase::Running);
    let instances = mock.instances();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].spec.version, v2.version);
}

/// Instances persisted in a state dir are found again by a new engine value (a node restart)
/// and re-adopted through `recover`; removed ones are reported gone.
#[tokio::test]
async fn recover_after_restart_from_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let s = spec("keep", &[]);
    let handle = {
        let mock = Arc::new(MockEngine::with_state_dir(dir.path()).unwrap());
        let mut registry = Registry::new();
        registry.register(mock.clone());
        let ctl = Controller::new(Arc::new(registry), ControllerConfig::default());
        ctl.deploy(&s, "mock", &ctx(), &rec).await.handle.unwrap()
    };
    let mock = Arc::new(MockEngine::with_state_dir(dir.path()).unwrap());
    let mut registry = Registry::new();
    registry.register(mock.clone());
    let ctl = Controller::new(Arc::new(registry), ControllerConfig::default());
    match ctl.recover(&s, &handle, &rec).await.unwrap() {
        Recovered::Adopted(status) => {
            assert_eq!(status.state, mesh_runtime::InstanceState::Running)
        }
        Recovered::Gone => panic!("instance should be adopted"),
    }
    ctl.uninstall(&s, &handle, &rec).await.unwrap();
    assert_eq!(
        ctl.recover(&s, &handle, &rec).await.unwrap(),
        Recovered::Gone
    );
    assert!(
        MockEngine::stored_instances(dir.path()).unwrap().is_empty(),
        "no instance left behind"
    );
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["instances.jsonl"], "nothing but the journal left");
}

/// A spec whose version does not match its content is refused at Validate.
#[tokio::test]
async fn tampered_spec_fails_validation() {
    let (ctl, _) = setup(ControllerConfig::default());
    let rec = Recorder::default();
    let mut s = spec("t", &[]);
    s.containers[0].image = "evil:latest".into();
    let report = ctl.deploy(&s, "mock", &ctx(), &rec).await;
    assert_eq!(report.failed_step, Some(Step::Validate));
}

/// The registry's fingerprints reflect engine health and feed selection.
#[tokio::test]
async fn fingerprint_flips_with_health() {
    let mock = Arc::new(MockEngine::new());
    let mut registry = Registry::new();
    registry.register(mock.clone());
    registry.refresh().await;
    assert!(registry.candidates()[0].healthy);
    mock.set_healthy(false);
    registry.refresh().await;
    let c = &registry.candidates()[0];
    assert!(!c.healthy);
    assert!(c.detail.contains("scripted down"));
}
