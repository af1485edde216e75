#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! The process engine runs containers' commands as host processes: output, exit codes,
//! stops that reach the whole process group, and recovery after a node restart.

use std::time::{Duration, Instant};

use mesh_engine_process::state::start_time;
use mesh_engine_process::ProcessEngine;
use mesh_protocol::spec::{Container, EnvVar, JobSpec, SourceFormat};
use mesh_protocol::{WorkloadKind, WorkloadSpec};
use mesh_runtime::{
    Engine, Handle, InstallContext, InstanceState, InstanceStatus, LogOptions, Recovered,
};
use rustix::process::{test_kill_process_group, Pid};

const WAIT: Duration = Duration::from_secs(20);

fn workload(name: &str, kind: WorkloadKind, script: &str) -> WorkloadSpec {
    let mut spec = WorkloadSpec::new(name, "default", kind, SourceFormat::Kubernetes);
    spec.containers = vec![Container {
        name: "main".into(),
        image: "ignored:latest".into(),
        command: vec!["sh".into(), "-c".into()],
        args: vec![script.into()],
        env: vec![EnvVar {
            name: "WHO".into(),
            value: Some("mesh".into()),
            value_from: None,
        }],
        ..Container::default()
    }];
    if kind == WorkloadKind::Job {
        spec.job = Some(JobSpec::default());
    }
    spec.seal()
}

async fn deploy(engine: &ProcessEngine, spec: &WorkloadSpec) -> Handle {
    engine.validate(spec).await.unwrap();
    engine.prepare(spec).await.unwrap();
    let ctx = InstallContext {
        node: "n".into(),
        replica: 0,
    };
    let handle = engine.install(spec, &ctx).await.unwrap();
    engine.start(&handle).await.unwrap();
    handle
}

async fn wait_for(
    engine: &ProcessEngine,
    handle: &Handle,
    pred: impl Fn(&InstanceStatus) -> bool,
) -> InstanceStatus {
    let until = Instant::now() + WAIT;
    loop {
        let st = engine.status(handle).await.unwrap();
        if pred(&st) {
            return st;
        }
        assert!(Instant::now() < until, "last status {st:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_line(engine: &ProcessEngine, handle: &Handle, line: &str) {
    let until = Instant::now() + WAIT;
    loop {
        let lines = engine.logs(handle, LogOptions::default()).await.unwrap();
        if lines.iter().any(|l| l.line == line) {
            return;
        }
        assert!(Instant::now() < until, "no {line:?} in {lines:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn group_gone(pid: u32) -> bool {
    test_kill_process_group(Pid::from_raw(pid as i32).unwrap()).is_err()
}

/// `sh -c 'echo hi; sleep 30'` runs, logs "hi", and stop ends the whole group (the shell
/// and its `sleep` child) with SIGTERM, reported as exit 143.
#[tokio::test]
async fn runs_logs_and_stops_the_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let engine = ProcessEngine::new(dir.path()).unwrap();
    let handle = deploy(
        &engine,
        &workload("sleeper", WorkloadKind::Pod, "echo hi $WHO; sleep 30"),
    )
    .await;
    wait_for(&engine, &handle, |s| s.state == InstanceState::Running).await;
    wait_line(&engine, &handle, "hi mesh").await;
    let pid = engine.pids(&handle)[0];
    assert!(!group_gone(pid));
    let began = Instant::now();
    engine.stop(&handle, Duration::from_secs(5)).await.unwrap();
    assert!(began.elapsed() < Duration::from_secs(3));
    assert!(group_gone(pid), "process group {pid} survived stop");
    let st = engine.status(&handle).await.unwrap();
    assert_eq!(st.state, InstanceState::Exited { code: 143 }, "{st:?}");
    engine.stop(&handle, Duration::from_secs(1)).await.unwrap();
    engine.remove(&handle).await.unwrap();
    assert_eq!(
        engine.status(&handle).await.unwrap().state,
        InstanceState::Missing
    );
    assert!(!dir.path().join("instances").join(&handle.instance).exists());
}

/// Exit codes are reported: 0 for a Job that succeeds, the code otherwise; stderr is kept.
#[tokio::test]
async fn exit_codes_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let engine = ProcessEngine::new(dir.path()).unwrap();
    let ok = deploy(&engine, &workload("ok", WorkloadKind::Job, "echo done")).await;
    let st = wait_for(&engine, &ok, |s| {
        matches!(s.state, InstanceState::Exited { .. })
    })
    .await;
    assert_eq!(st.state, InstanceState::Exited { code: 0 });
    let bad = deploy(
        &engine,
        &workload("bad", WorkloadKind::Job, "echo oops >&2; exit 7"),
    )
    .await;
    let st = wait_for(&engine, &bad, |s| {
        matches!(s.state, InstanceState::Exited { .. })
    })
    .await;
    assert_eq!(st.state, InstanceState::Exited { code: 7 });
    let lines = engine
        .logs(&bad, LogOptions { tail: Some(1) })
        .await
        .unwrap();
    assert_eq!(lines[0].line, "oops");
    assert_eq!(lines[0].source.as_deref(), Some("main"));
}

/// A process killed from outside is a failure naming the signal.
#[tokio::test]
async fn killed_process_is_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let engine = ProcessEngine::new(dir.path()).unwrap();
    let handle = deploy(
        &engine,
        &workload("victim", WorkloadKind::Pod, "exec sleep 30"),
    )
    .await;
    wait_for(&engine, &handle, |s| s.state == InstanceState::Running).await;
    let pid = engine.pids(&handle)[0];
    rustix::process::kill_process(
        Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let st = wait_for(&engine, &handle, |s| {
        matches!(s.state, InstanceState::Failed { .. })
    })
    .await;
    assert_eq!(
        st.state,
        InstanceState::Failed {
            reason: "container main: killed by signal 9".into()
        }
    );
    engine.remove(&handle).await.unwrap();
}

/// After a node restart (a new engine value over the same state directory) the running
/// process is adopted, its logs are still readable, and it can be stopped; an instance
/// whose process ended meanwhile with nothing recorded is gone.
#[tokio::test]
async fn recovers_after_a_new_engine_value() {
    let dir = tempfile::tempdir().unwrap();
    let first = ProcessEngine::new(dir.path()).unwrap();
    let alive = deploy(
        &first,
        &workload("alive", WorkloadKind::Deployment, "echo hi; sleep 30"),
    )
    .await;
    let lost = deploy(
        &first,
        &workload("lost", WorkloadKind::Deployment, "sleep 30"),
    )
    .await;
    let done = deploy(&first, &workload("done", WorkloadKind::Job, "exit 0")).await;
    wait_line(&first, &alive, "hi").await;
    wait_for(&first, &done, |s| {
        s.state == InstanceState::Exited { code: 0 }
    })
    .await;
    let pid = first.pids(&alive)[0];
    let lost_pid = first.pids(&lost)[0];
    drop(first);
    rustix::process::kill_process_group(
        Pid::from_raw(lost_pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let until = Instant::now() + WAIT;
    while start_time(lost_pid).is_some() {
        assert!(Instant::now() < until);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let second = ProcessEngine::new(dir.path()).unwrap();
    match second.recover(&alive).await.unwrap() {
        Recovered::Adopted(st) => assert_eq!(st.state, InstanceState::Running, "{st:?}"),
        Recovered::Gone => panic!("running process not adopted"),
    }
    let lines = second.logs(&alive, LogOptions::default()).await.unwrap();
    assert_eq!(
        lines.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
        ["hi"]
    );
    assert_eq!(second.recover(&lost).await.unwrap(), Recovered::Gone);
    match second.recover(&done).await.unwrap() {
        Recovered::Adopted(st) => assert_eq!(st.state, InstanceState::Exited { code: 0 }),
        Recovered::Gone => panic!("recorded exit forgotten"),
    }
    second.start(&alive).await.unwrap();
    assert_eq!(
        second.pids(&alive),
        vec![pid],
        "start must not spawn a second process"
    );
    second.stop(&alive, Duration::from_secs(2)).await.unwrap();
    assert!(group_gone(pid));
    assert_eq!(
        second.status(&alive).await.unwrap().state,
        InstanceState::Exited { code: 143 }
    );
    for h in [&alive, &lost, &done] {
        second.remove(h).await.unwrap();
    }
}

/// A container without a command is refused at Validate: the image is not run.
#[tokio::test]
async fn image_only_containers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = ProcessEngine::new(dir.path()).unwrap();
    let mut spec = workload("img", WorkloadKind::Pod, "true");
    spec.containers[0].command.clear();
    spec.containers[0].args.clear();
    let err = engine.validate(&spec.seal()).await.unwrap_err().to_string();
    assert!(err.contains("ignores the image"), "{err}");
}
