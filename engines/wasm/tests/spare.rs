#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! The warm runner: a workload's first start takes the spare runner spawned ahead of it
//! (its engine made, waiting for Start), runs its guest there with the same outcome, logs
//! and diagnostics file as a runner spawned for it; a restart spawns afresh.

mod common;

use common::*;
use mesh_runtime::{Engine, InstanceState};

/// The spare's process id, once one is waiting.
async fn spare_ready(engine: &mesh_engine_wasm::engine::WasmEngine) -> u32 {
    wait_until("a spare runner", || engine.spare_runner()).await
}

/// The runner's process id recorded for `handle`'s instance.
fn runner_pid(handle: &mesh_runtime::Handle) -> u64 {
    let dir = handle.data["dir"].as_str().unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{dir}/instance.json")).unwrap()).unwrap();
    record["runner"]["pid"].as_u64().unwrap()
}

#[tokio::test]
async fn a_first_start_runs_in_the_warm_spare_and_a_new_spare_follows() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let digest = put(&engine, HELLO);
    assert_eq!(engine.spare_runner(), None, "no spare before any start");

    // The first start finds no spare: it spawns its runner, and a spare is made for the next.
    let first = deploy(&engine, &function("first", &digest, Opts::default())).await;
    assert_eq!(
        wait_end(&engine, &first).await.state,
        InstanceState::Exited { code: 0 }
    );
    let spare = spare_ready(&engine).await;
    assert_ne!(u64::from(spare), runner_pid(&first));

    // The second runs in that spare, with what a runner spawned for it would give.
    let second = deploy(
        &engine,
        &function(
            "second",
            &digest,
            Opts {
                args: vec!["warm".into()],
                ..Opts::default()
            },
        ),
    )
    .await;
    assert_eq!(
        runner_pid(&second),
        u64::from(spare),
        "not the spare's process"
    );
    assert_eq!(
        wait_end(&engine, &second).await.state,
        InstanceState::Exited { code: 0 }
    );
    let lines = log_text(&engine, &second).await;
    assert!(lines.contains(&"second warm".to_string()), "{lines:?}");
    let second_dir = second.data["dir"].as_str().unwrap();
    assert!(
        std::path::Path::new(second_dir).join("runner.log").exists(),
        "the spare's diagnostics file did not become the instance's runner.log"
    );

    // Taken, the spare is replaced by another process.
    let next = spare_ready(&engine).await;
    assert_ne!(next, spare);
    engine.remove(&first).await.unwrap();
    engine.remove(&second).await.unwrap();
}
