#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! Long-running guests: a runner killed from outside, a node restart (dropping the engine
//! value) that adopts the still-running runner, and stops with a grace period.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mesh_engine_wasm::state::{start_time, Paths};
use mesh_runtime::{Engine, Health, InstanceState, Recovered};
use rustix::process::{kill_process, Pid, Signal};

fn signal(pid: u32, sig: Signal) {
    kill_process(Pid::from_raw(pid as i32).unwrap(), sig).unwrap();
}

fn ticker_opts() -> Opts {
    // The timeout only bounds a runner leaked by a failing test.
    Opts {
        service: true,
        timeout_ms: Some(60_000),
        ..Opts::default()
    }
}

/// SIGKILL of the runner from outside: the node (this test process) is unaffected and the
/// instance fails with the precise reason.
#[tokio::test]
async fn runner_killed_by_sigkill_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let digest = put(&engine, TICKER);
    let handle = deploy(&engine, &function("victim", &digest, ticker_opts())).await;
    wait_log(&engine, &handle, "tick").await;
    let pid = engine.runner_pid(&handle).unwrap();
    signal(pid, Signal::KILL);
    let st = wait_end(&engine, &handle).await;
    assert_eq!(failed_reason(&st), "runner killed by signal 9");
    let lines = log_text(&engine, &handle).await;
    assert!(
        lines.contains(&"runner killed by signal 9".to_string()),
        "{lines:?}"
    );
    // Recorded on disk too, so a restarted node reports the same.
    drop(engine);
    let again = common::engine(dir.path());
    let st = again.status(&handle).await.unwrap();
    assert_eq!(failed_reason(&st), "runner killed by signal 9");
    again.remove(&handle).await.unwrap();
}

/// A node restart: the engine value is dropped (pipes closed) while a long-running guest
/// runs. A new engine over the same state directory adopts it as Running, its logs (old
/// and new lines) are readable, and it can still be stopped and removed.
#[tokio::test]
async fn long_running_guest_survives_a_node_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = engine(dir.path());
    let digest = put(&first, TICKER);
    let handle = deploy(&first, &function("survivor", &digest, ticker_opts())).await;
    wait_log(&first, &handle, "tick").await;
    let pid = first.runner_pid(&handle).unwrap();
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(start_time(pid).is_some(), "the runner died with the node");

    let second = engine(dir.path());
    let adopted = match second.recover(&handle).await.unwrap() {
        Recovered::Adopted(st) => st,
        Recovered::Gone => panic!("runner not adopted"),
    };
    assert_eq!(adopted.state, InstanceState::Running, "{adopted:?}");
    assert_eq!(adopted.health, Health::NoCheck);
    assert!(adopted.detail.contains("adopted"), "{}", adopted.detail);
    let before = log_text(&second, &handle).await.len();
    assert!(before >= 3, "{before}");
    // The runner keeps writing its log without the node's pipe.
    let until = Instant::now() + WAIT;
    while log_text(&second, &handle).await.len() <= before + 2 {
        assert!(Instant::now() < until, "no new lines after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // start on an adopted running instance is a no-op, not a second runner.
    second.start(&handle).await.unwrap();
    assert_eq!(second.runner_pid(&handle), Some(pid));

    second.stop(&handle, Duration::from_secs(2)).await.unwrap();
    assert!(start_time(pid).is_none(), "runner still alive after stop");
    let st = second.status(&handle).await.unwrap();
    assert_eq!(st.state, InstanceState::Exited { code: 143 }, "{st:?}");
    second.remove(&handle).await.unwrap();
    assert!(!Paths::new(dir.path(), &handle.instance).dir.exists());
    assert_eq!(second.recover(&handle).await.unwrap(), Recovered::Gone);
}

/// A runner that died while the node was away, with nothing recorded, is Gone.
#[tokio::test]
async fn runner_dead_without_a_record_is_gone_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = engine(dir.path());
    let digest = put(&first, TICKER);
    let handle = deploy(&first, &function("lost", &digest, ticker_opts())).await;
    wait_log(&first, &handle, "tick").await;
    let pid = first.runner_pid(&handle).unwrap();
    drop(first);
    signal(pid, Signal::KILL);
    wait_until("the killed runner to be gone", || {
        start_time(pid).is_none().then_some(())
    })
    .await;
    let second = engine(dir.path());
    assert_eq!(second.recover(&handle).await.unwrap(), Recovered::Gone);
    second.remove(&handle).await.unwrap();
}

/// Stop asks the guest to stop; it ends well within the grace period as "stopped".
#[tokio::test]
async fn stop_ends_a_running_guest_within_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let digest = put(&engine, TICKER);
    let handle = deploy(&engine, &function("polite", &digest, ticker_opts())).await;
    wait_log(&engine, &handle, "tick").await;
    let pid = engine.runner_pid(&handle).unwrap();
    let began = Instant::now();
    engine.stop(&handle, Duration::from_secs(5)).await.unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    let st = engine.status(&handle).await.unwrap();
    assert_eq!(st.state, InstanceState::Exited { code: 143 }, "{st:?}");
    assert_eq!(st.detail, "stopped by the node");
    assert!(start_time(pid).is_none());
    // Idempotent, and the instance can be started again (rollback path).
    engine.stop(&handle, Duration::from_secs(1)).await.unwrap();
    let before = log_text(&engine, &handle).await.len();
    engine.start(&handle).await.unwrap();
    wait_for(&engine, &handle, "running again", |s| {
        s.state == InstanceState::Running && s.restarts == 1
    })
    .await;
    // Lines of the first run are still there, followed by the second run's.
    let until = Instant::now() + WAIT;
    while log_text(&engine, &handle).await.len() <= before {
        assert!(Instant::now() < until, "no output from the second run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.remove(&handle).await.unwrap();
}

/// A runner that does not react (frozen with SIGSTOP) is killed after the grace period.
#[tokio::test]
async fn stop_kills_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let digest = put(&engine, TICKER);
    let handle = deploy(&engine, &function("frozen", &digest, ticker_opts())).await;
    wait_log(&engine, &handle, "tick").await;
    let pid = engine.runner_pid(&handle).unwrap();
    signal(pid, Signal::STOP);
    let began = Instant::now();
    engine
        .stop(&handle, Duration::from_millis(300))
        .await
        .unwrap();
    let took = began.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(start_time(pid).is_none(), "runner survived SIGKILL");
    let st = engine.status(&handle).await.unwrap();
    assert_eq!(st.state, InstanceState::Exited { code: 137 }, "{st:?}");
    assert_eq!(st.detail, "killed after the stop grace period");
    engine.remove(&handle).await.unwrap();
}

/// `restartPolicy: Always` on a long-running Function: a guest that traps is restarted
/// with backoff, and the restarts are counted.
#[tokio::test]
async fn restart_policy_always_restarts_a_crashing_guest() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let digest = put(&engine, TRAP);
    let spec = function(
        "crashy",
        &digest,
        Opts {
            service: true,
            restart: Some(mesh_protocol::spec::RestartPolicy::Always),
            ..Opts::default()
        },
    );
    let handle = deploy(&engine, &spec).await;
    let st = wait_for(&engine, &handle, "two restarts", |s| s.restarts >= 2).await;
    assert_eq!(st.state, InstanceState::Running);
    let st = wait_for(&engine, &handle, "backoff", |s| {
        matches!(s.health, Health::Unhealthy { .. })
    })
    .await;
    assert!(st.detail.contains("unreachable"), "{}", st.detail);
    engine.stop(&handle, Duration::from_secs(1)).await.unwrap();
    let st = engine.status(&handle).await.unwrap();
    assert!(
        matches!(
            st.state,
            InstanceState::Exited { .. } | InstanceState::Failed { .. }
        ),
        "{st:?}"
    );
    engine.remove(&handle).await.unwrap();
}

/// Follows `engine`'s events (`watch`) in the background: what it reports, and the task.
fn follow(
    engine: &std::sync::Arc<mesh_engine_wasm::WasmEngine>,
) -> (
    tokio::sync::mpsc::Receiver<String>,
    tokio::task::JoinHandle<mesh_runtime::error::Result<()>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let engine = engine.clone();
    (rx, tokio::spawn(async move { engine.watch(tx).await }))
}

/// `watch`: the runner's final frame reaches the node at once. A guest killed from outside
/// under `restartPolicy: Never` is reported by instance; one the node stops is not.
#[tokio::test]
async fn watch_reports_a_runner_that_ended_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let engine = std::sync::Arc::new(engine(dir.path()));
    let (mut rx, watching) = follow(&engine);
    let digest = put(&engine, TICKER);
    let never = |name| {
        function(
            name,
            &digest,
            Opts {
                restart: Some(mesh_protocol::spec::RestartPolicy::Never),
                ..ticker_opts()
            },
        )
    };
    let stopped = deploy(&engine, &never("stopped")).await;
    engine.stop(&stopped, Duration::from_secs(1)).await.unwrap();
    let victim = deploy(&engine, &never("victim")).await;
    wait_log(&engine, &victim, "tick").await;
    signal(engine.runner_pid(&victim).unwrap(), Signal::KILL);
    let reported = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("reported within 10 s")
        .unwrap();
    assert_eq!(
        reported, victim.instance,
        "only the runner that ended on its own"
    );
    watching.abort();
    engine.remove(&stopped).await.unwrap();
    engine.remove(&victim).await.unwrap();
}

/// `watch`: a guest that ends on its own is reported once, at its final frame, with its
/// status already final; the runner's reap after it is not reported again.
#[tokio::test]
async fn watch_reports_a_guest_that_ended_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = std::sync::Arc::new(engine(dir.path()));
    let (mut rx, watching) = follow(&engine);
    let digest = put(&engine, mesh_engine_wasm::guests::HELLO);
    let spec = function(
        "once",
        &digest,
        Opts {
            args: vec!["a".into()],
            ..Opts::default()
        },
    );
    let handle = deploy(&engine, &spec).await;
    let reported = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("reported within 10 s")
        .unwrap();
    assert_eq!(reported, handle.instance);
    let st = engine.status(&handle).await.unwrap();
    assert_eq!(st.state, InstanceState::Exited { code: 0 }, "{st:?}");
    // The end of supervision (after the reap) would report again, if anything, before it
    // counts as done.
    wait_until("the runner's reap", || {
        (!engine.supervising(&handle)).then_some(())
    })
    .await;
    // A second report would be on its way from the engine's forwarder: a moment for it.
    let again = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
    assert!(again.is_err(), "reported once, not again: {again:?}");
    engine.remove(&handle).await.unwrap();
    watching.abort();
}
