#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! Guests run to their end: output and exit codes reach the node, traps, deadlines and the
//! memory limit fail the instance with a reason that names them.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mesh_protocol::spec::ModuleSource;
use mesh_protocol::{Outcome, Phase, Step, WorkloadSpec};
use mesh_runtime::{
    Controller, ControllerConfig, Engine, Handle, InstanceState, Observer, Registry,
};

/// A user's hello-world Function prints its argv (argv[0] is the workload name) and its
/// environment; the run ends Exited 0 and `logs` shows both, stdout and stderr.
#[tokio::test]
async fn hello_world_sees_args_and_env_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let digest = put(&engine, HELLO);
    let spec = function(
        "hello",
        &digest,
        Opts {
            args: vec!["a".into(), "b c".into()],
            env: vec![("GREETING".into(), "hello-from-env".into())],
            ..Opts::default()
        },
    );
    let handle = deploy(&engine, &spec).await;
    let st = wait_end(&engine, &handle).await;
    assert_eq!(st.state, InstanceState::Exited { code: 0 }, "{st:?}");
    let lines = log_text(&engine, &handle).await;
    assert!(lines.contains(&"hello a b c".to_string()), "{lines:?}");
    assert!(
        lines.contains(&"GREETING=hello-from-env".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"done".to_string()), "{lines:?}");
    // Only the workload's own environment: nothing of the node's leaks in.
    assert!(!lines.iter().any(|l| l.starts_with("PATH=")), "{lines:?}");
    let info = engine.start_info(&handle).unwrap();
    assert!(info.compile_ms > 0.0);
    engine.remove(&handle).await.unwrap();
    assert!(engine.status(&handle).await.unwrap().state == InstanceState::Missing);
}

/// `proc_exit(3)` is an exit with code 3, not a trap.
#[tokio::test]
async fn proc_exit_code_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let digest = put(&engine, EXIT_3);
    let handle = deploy(&engine, &function("exit3", &digest, Opts::default())).await;
    let st = wait_end(&engine, &handle).await;
    assert_eq!(st.state, InstanceState::Exited { code: 3 }, "{st:?}");
}

/// `unreachable` fails the instance with a reason that says it trapped and why.
#[tokio::test]
async fn trap_fails_with_the_trap_reason() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let digest = put(&engine, TRAP);
    let handle = deploy(&engine, &function("trap", &digest, Opts::default())).await;
    let st = wait_end(&engine, &handle).await;
    let reason = failed_reason(&st);
    assert!(
        reason.contains("trap") && reason.contains("unreachable"),
        "{reason}"
    );
}

/// An endless loop with a 300 ms timeout is interrupted at the deadline, well before the
/// test's own bound, and the reason names the deadline.
#[tokio::test]
async fn endless_loop_hits_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let digest = put(&engine, SPIN);
    let began = Instant::now();
    let spec = function(
        "spin",
        &digest,
        Opts {
            timeout_ms: Some(300),
            ..Opts::default()
        },
    );
    let handle = deploy(&engine, &spec).await;
    let st = wait_end(&engine, &handle).await;
    let took = began.elapsed();
    let reason = failed_reason(&st);
    assert!(
        reason.contains("deadline exceeded after 300 ms"),
        "{reason}"
    );
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// Growing memory past a 16 MiB limit fails the instance naming the limit.
#[tokio::test]
async fn memory_bomb_hits_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let digest = put(&engine, MEMORY_BOMB);
    let spec = function(
        "bomb",
        &digest,
        Opts {
            memory: Some(16 * 1024 * 1024),
            timeout_ms: Some(20_000),
            ..Opts::default()
        },
    );
    let handle = deploy(&engine, &spec).await;
    let st = wait_end(&engine, &handle).await;
    let reason = failed_reason(&st);
    assert!(reason.contains("memory limit of 16 MiB"), "{reason}");
}

/// A path module is refused at Validate with a clear reason; a digest that is not on the
/// node fails Fetch naming it.
#[tokio::test]
async fn path_modules_are_refused_and_missing_modules_named() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let digest = put(&engine, HELLO);
    let mut spec = function("p", &digest, Opts::default());
    spec.module.as_mut().unwrap().source = ModuleSource::Path("./hello.wasm".into());
    let err = engine.validate(&spec.seal()).await.unwrap_err().to_string();
    assert!(err.contains("content-addressed"), "{err}");

    let absent = mesh_engine_wasm::Digest::of(b"not stored");
    let err = engine
        .fetch(&function("q", &absent, Opts::default()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("module {absent} is not on this node")),
        "{err}"
    );
}

#[derive(Default)]
struct Steps(std::sync::Mutex<Vec<(Step, Outcome)>>);

impl Observer for Steps {
    fn step(&self, _: &WorkloadSpec, _: &str, step: Step, outcome: Outcome, _: Duration, _: &str) {
        self.0.lock().unwrap().push((step, outcome));
    }
    fn installed(&self, _: &WorkloadSpec, _: &Handle) {}
}

/// Through the lifecycle controller, a run-to-completion Function ends Succeeded: at once
/// when it exits before the health check's first look, else once its run ends.
#[tokio::test]
async fn controller_deploys_a_function_to_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(engine(dir.path()));
    let digest = put(&engine, HELLO);
    let mut registry = Registry::new();
    registry.register(engine.clone());
    let controller = Controller::new(Arc::new(registry), ControllerConfig::default());
    let steps = Steps::default();
    let spec = function("ctl", &digest, Opts::default());
    let report = controller.deploy(&spec, "wasm", &ctx(), &steps).await;
    match report.phase {
        Phase::Succeeded => {}
        // Still running when the health check looked (a loaded machine): it must end well.
        Phase::Running => {
            let handle = report.handle.as_ref().unwrap();
            assert_eq!(
                wait_end(&engine, handle).await.state,
                InstanceState::Exited { code: 0 }
            );
        }
        _ => panic!("{report:?}"),
    }
    let steps = steps.0.lock().unwrap().clone();
    assert!(steps.iter().all(|(_, o)| *o == Outcome::Ok), "{steps:?}");
    assert_eq!(steps.last().unwrap().0, Step::HealthCheck);
}

/// A module importing something WASI preview 1 does not offer cannot start; the reason
/// names the import.
#[tokio::test]
async fn unknown_import_fails_to_instantiate() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let digest = put(
        &engine,
        r#"(module (import "env" "host_secret" (func)) (func (export "_start")))"#,
    );
    let handle = deploy(&engine, &function("imports", &digest, Opts::default())).await;
    let st = wait_end(&engine, &handle).await;
    let reason = failed_reason(&st);
    assert!(
        reason.starts_with("cannot instantiate the module"),
        "{reason}"
    );
    assert!(reason.contains("host_secret"), "{reason}");
    assert!(!reason.contains('\n'), "{reason}");
}
