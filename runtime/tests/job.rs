//! The operations of one job attempt on the mock engine: start, exit, logs, collected
//! outputs, teardown, and the typed errors of each phase.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mesh_protocol::annotations as ann;
use mesh_protocol::api::LogLine;
use mesh_protocol::job::JobPhase;
use mesh_protocol::spec::{Container, JobSpec, SourceFormat, DEFAULT_NAMESPACE};
use mesh_protocol::{Outcome, Step, WorkloadKind, WorkloadSpec};
use mesh_runtime::engine::{Capability, Fingerprint, InstallContext, InstanceStatus, LogOptions};
use mesh_runtime::job::{attempt_state, AttemptState};
use mesh_runtime::mock::MockEngine;
use mesh_runtime::{Controller, ControllerConfig, Engine, Handle, Observer, Recovered, Registry};
use support::ctx;

struct Quiet;

impl Observer for Quiet {
    fn step(&self, _: &WorkloadSpec, _: &str, _: Step, _: Outcome, _: Duration, _: &str) {}
    fn installed(&self, _: &WorkloadSpec, _: &Handle) {}
}

fn job(annotations: &[(&str, &str)], outputs: &[&str]) -> WorkloadSpec {
    let mut s = WorkloadSpec::new(
        "pi",
        DEFAULT_NAMESPACE,
        WorkloadKind::Job,
        SourceFormat::Kubernetes,
    );
    s.containers.push(Container {
        name: "main".into(),
        image: "localhost/mesh-test:latest".into(),
        ..Container::default()
    });
    s.job = Some(JobSpec {
        outputs: outputs.iter().map(|o| o.to_string()).collect(),
        ..JobSpec::default()
    });
    for (k, v) in annotations {
        s.annotations.insert(k.to_string(), v.to_string());
    }
    s.seal()
}

fn controller(engine: Arc<dyn Engine>) -> Controller {
    let mut registry = Registry::new();
    registry.register(engine);
    Controller::new(Arc::new(registry), ControllerConfig::default())
}

async fn wait_exit(engine: &dyn Engine, handle: &Handle) -> AttemptState {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = attempt_state(&engine.status(handle).await.unwrap());
        if state != AttemptState::Running {
            return state;
        }
        assert!(Instant::now() < deadline, "the attempt never exited");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One attempt end to end: it runs, exits 0, its logs are tagged with the correlation id,
/// its declared outputs are copied, and teardown removes the instance and its files.
#[tokio::test]
async fn an_attempt_runs_and_its_outputs_are_collected() {
    let mock = Arc::new(MockEngine::new());
    let ctl = controller(mock.clone());
    let spec = job(
        &[
            (ann::MOCK_EXIT_AFTER_MS, "10"),
            (ann::MOCK_OUTPUT_FILES, "r.txt=done, out/a=1, out/b=22"),
        ],
        &["r.txt", "out/"],
    );
    let handle = ctl
        .start_attempt(&spec, "mock", &ctx(), &Quiet)
        .await
        .unwrap();
    assert_eq!(
        wait_exit(mock.as_ref(), &handle).await,
        AttemptState::Succeeded { exit_code: 0 }
    );
    let logs = ctl.attempt_logs(&handle, "job-x-1").await;
    assert!(logs.iter().any(|l| l.line == "started"));
    assert!(logs
        .iter()
        .all(|l| l.correlation.as_deref() == Some("job-x-1")));

    let dest = tempfile::tempdir().unwrap();
    let dest = dest.path().join("outputs");
    std::fs::create_dir_all(dest.join("stale")).unwrap();
    let files = ctl
        .collect_outputs(&spec, &handle, spec.outputs(), &dest, &Quiet)
        .await
        .unwrap();
    let got: Vec<(&str, u64)> = files.iter().map(|a| (a.path.as_str(), a.size)).collect();
    assert_eq!(got, [("r.txt", 4), ("out/a", 1), ("out/b", 2)]);
    assert!(!dest.join("stale").exists(), "the destination starts empty");

    let work = mock.work_dir(&handle.instance);
    assert!(work.exists());
    ctl.teardown(&spec, &handle, false, &Quiet).await.unwrap();
    assert!(mock.instances().is_empty());
    assert!(
        !work.exists(),
        "the working directory goes with the instance"
    );
}

/// A start failure is an Execution error that hands back the installed instance (for its
/// logs and teardown); a missing output is an Artifact error.
#[tokio::test]
async fn start_failures_and_missing_outputs_are_typed() {
    let mock = Arc::new(MockEngine::new());
    let ctl = controller(mock.clone());
    let bad = job(&[(ann::MOCK_START_ERROR, "no such image")], &[]);
    let (error, handle) = ctl
        .start_attempt(&bad, "mock", &ctx(), &Quiet)
        .await
        .unwrap_err();
    assert_eq!(error.phase, JobPhase::Execution);
    assert_eq!(error.message, "Activate failed: engine mock: no such image");
    let handle = handle.expect("the installed instance");
    let logs = ctl.attempt_logs(&handle, "c").await;
    assert!(logs.iter().any(|l| l.line == "start failed: no such image"));

    let quiet = job(&[(ann::MOCK_EXIT_AFTER_MS, "1")], &["result.txt"]);
    let handle = ctl
        .start_attempt(&quiet, "mock", &ctx(), &Quiet)
        .await
        .unwrap();
    wait_exit(mock.as_ref(), &handle).await;
    let dest = tempfile::tempdir().unwrap();
    let error = ctl
        .collect_outputs(&quiet, &handle, quiet.outputs(), dest.path(), &Quiet)
        .await
        .unwrap_err();
    assert_eq!(error.phase, JobPhase::Artifact);
    assert!(
        error.message.contains("result.txt was not written"),
        "{error:?}"
    );
}

/// `mock-exit-codes` scripts successive runs of a workload, across instances.
#[tokio::test]
async fn scripted_exit_codes_follow_the_workload_across_instances() {
    let mock = Arc::new(MockEngine::new());
    let ctl = controller(mock.clone());
    let spec = job(
        &[
            (ann::MOCK_EXIT_AFTER_MS, "1"),
            (ann::MOCK_EXIT_CODES, "2,0"),
        ],
        &[],
    );
    let mut states = Vec::new();
    for _ in 0..3 {
        let h = ctl
            .start_attempt(&spec, "mock", &ctx(), &Quiet)
            .await
            .unwrap();
        states.push(wait_exit(mock.as_ref(), &h).await);
        ctl.teardown(&spec, &h, false, &Quiet).await.unwrap();
    }
    let codes: Vec<Option<i32>> = states
        .iter()
        .map(|s| match s {
            AttemptState::Succeeded { exit_code } => Some(*exit_code),
            AttemptState::Failed { exit_code, .. } => *exit_code,
            AttemptState::Running => None,
        })
        .collect();
    assert_eq!(codes, [Some(2), Some(0), Some(0)]);
}

/// An engine that cannot collect files refuses declared outputs at Validate (a Provision
/// error), before anything is installed.
#[tokio::test]
async fn outputs_need_an_engine_that_collects_files() {
    let inner = Arc::new(MockEngine::new());
    let ctl = controller(Arc::new(NoOutputs(inner.clone())));
    let spec = job(&[], &["result.txt"]);
    let (error, handle) = ctl
        .start_attempt(&spec, "mock", &ctx(), &Quiet)
        .await
        .unwrap_err();
    assert_eq!(error.phase, JobPhase::Provision);
    assert_eq!(
        error.message,
        "Validate failed: declared outputs (result.txt) need an engine that collects files; mock does not"
    );
    assert!(handle.is_none());
    assert!(inner.instances().is_empty());
}

/// The mock without the Outputs capability (and so without `collect`).
#[derive(Debug)]
struct NoOutputs(Arc<MockEngine>);

const NO_OUTPUTS: &[Capability] = &[Capability::Jobs];

#[async_trait]
impl Engine for NoOutputs {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn capabilities(&self) -> &[Capability] {
        NO_OUTPUTS
    }
    fn kinds(&self) -> &[WorkloadKind] {
        self.0.kinds()
    }
    async fn fingerprint(&self) -> Fingerprint {
        self.0.fingerprint().await
    }
    async fn prepare(&self, spec: &WorkloadSpec) -> mesh_runtime::error::Result<()> {
        self.0.prepare(spec).await
    }
    async fn install(
        &self,
        spec: &WorkloadSpec,
        ctx: &InstallContext,
    ) -> mesh_runtime::error::Result<Handle> {
        self.0.install(spec, ctx).await
    }
    async fn start(&self, handle: &Handle) -> mesh_runtime::error::Result<()> {
        self.0.start(handle).await
    }
    async fn status(&self, handle: &Handle) -> mesh_runtime::error::Result<InstanceStatus> {
        self.0.status(handle).await
    }
    async fn logs(
        &self,
        handle: &Handle,
        opts: LogOptions,
    ) -> mesh_runtime::error::Result<Vec<LogLine>> {
        self.0.logs(handle, opts).await
    }
    async fn stop(&self, handle: &Handle, grace: Duration) -> mesh_runtime::error::Result<()> {
        self.0.stop(handle, grace).await
    }
    async fn remove(&self, handle: &Handle) -> mesh_runtime::error::Result<()> {
        self.0.remove(handle).await
    }
    async fn recover(&self, handle: &Handle) -> mesh_runtime::error::Result<Recovered> {
        self.0.recover(handle).await
    }
}
