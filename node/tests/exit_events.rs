//! Exits are events, not polls: a node whose monitor would not look for an hour still sees a
//! job end, because the engine says so. The process engine reports each child it reaps; the
//! WASM engine reports the runner's end. No time is asserted (the benchmarks measure how
//! soon); the monitor's hour is what would be waited for without the events.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use mesh_node::testing::{wait_until, TestNode};
use mesh_protocol::api::{ApplyRequest, BundledModule, Deployment};
use mesh_protocol::Phase;

/// Longer than any test waits: only an event can end these runs in time.
const NO_POLL: Duration = Duration::from_secs(3600);

async fn succeeded(node: &TestNode, name: &str) -> Deployment {
    let client = node.client();
    let path = format!("/deployments/{name}");
    wait_until(
        &format!("{name} to succeed without a poll"),
        Duration::from_secs(30),
        || async {
            let d: Deployment = client.get(&path).await.ok()?;
            assert_ne!(d.phase, Phase::Failed, "{d:#?}");
            (d.phase == Phase::Succeeded).then_some(d)
        },
    )
    .await
}

async fn apply(node: &TestNode, req: ApplyRequest) {
    let answer = node.client().post("/deployments", &req).await.unwrap();
    assert!(answer.status.is_success(), "{}", answer.error_message());
}

#[tokio::test]
async fn a_process_job_ends_on_the_engines_event() {
    let node = TestNode::start_with(|c| {
        c.monitor_period = NO_POLL;
        let engine = mesh_engine_process::ProcessEngine::new(c.data_dir.join("process")).unwrap();
        c.extra_engines.push(Arc::new(engine));
    })
    .await;
    // Twice: the second run's exit may come while its apply still holds the workload.
    for name in ["quick", "quicker"] {
        let manifest = format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations:\n    beemesh.io/runtime-engine: process\nspec:\n  template:\n    spec:\n      containers:\n      - name: main\n        image: none\n        command: [sh, -c, 'echo done']\n"
        );
        apply(
            &node,
            ApplyRequest {
                manifest,
                ..Default::default()
            },
        )
        .await;
        let d = succeeded(&node, name).await;
        assert_eq!(
            d.replicas[0].job.as_ref().and_then(|j| j.exit_code),
            Some(0)
        );
    }
    node.stop().await;
}

#[tokio::test]
async fn a_wasm_function_ends_on_the_runners_last_frame() {
    let node = TestNode::start_with(|c| {
        c.monitor_period = NO_POLL;
        c.engines = Some(vec!["wasm".into()]);
        c.wasm_runner = Some(env!("CARGO_BIN_EXE_mesh-wasm-runner").into());
    })
    .await;
    let module = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/hello.wasm"
    ))
    .unwrap();
    for name in ["hello-a", "hello-b"] {
        let req = ApplyRequest {
            manifest: format!(
                "apiVersion: beemesh.io/v1\nkind: Function\nmetadata:\n  name: {name}\nspec:\n  module: ./hello.wasm\n"
            ),
            modules: vec![BundledModule {
                path: "./hello.wasm".into(),
                digest: mesh_engine_wasm::Digest::of(&module).to_string(),
                bytes: Some(module.clone()),
                providers: Vec::new(),
            }],
            ..Default::default()
        };
        apply(&node, req).await;
        succeeded(&node, name).await;
    }
    node.stop().await;
}
