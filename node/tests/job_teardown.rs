//! The end of a job run on one in-process node: the run is Succeeded before its log lines
//! are kept and its instance removed (engines may take a while for both), and neither is
//! lost meanwhile.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod job_support;

use job_support::{apply, finished, job, job_of, start, torn_down};
use mesh_protocol::api::Logs;
use mesh_protocol::Phase;

/// A run is Succeeded as soon as its outcome is known: the removal of its instance (slow on
/// a container engine) comes after, and the replica lets go of the instance once it is done.
#[tokio::test]
async fn a_job_is_succeeded_before_its_instance_is_removed() {
    let node = start().await;
    let slow_removal = [
        ("beemesh.io/mock-exit-after-ms", "20"),
        ("beemesh.io/mock-remove-delay-ms", "5000"),
    ];
    apply(&node, job("slow-rm", &slow_removal, "")).await;
    let d = finished(&node, "slow-rm").await;
    assert_eq!(d.phase, Phase::Succeeded, "{d:#?}");
    let instance = d.replicas[0]
        .instance
        .clone()
        .expect("Succeeded while the instance is being removed");
    assert!(node.mock.instance(&instance).is_some());

    let d = torn_down(&node, "slow-rm").await;
    assert_eq!(d.phase, Phase::Succeeded);
    assert_eq!(d.replicas[0].error, None);
    assert!(node.mock.instances().is_empty());
    node.stop().await;
}

/// A run is Succeeded before its last attempt's log lines are kept (an engine may take a while
/// to give them, as Podman does just after an exit): meanwhile the logs come from the
/// instance, and afterwards from what the node kept.
#[tokio::test]
async fn a_succeeded_jobs_logs_are_there_before_the_node_kept_them() {
    let node = start().await;
    let slow_logs = [
        ("beemesh.io/mock-exit-after-ms", "20"),
        ("beemesh.io/mock-logs-delay-ms", "4000"),
    ];
    apply(&node, job("slow-logs", &slow_logs, "")).await;
    let d = finished(&node, "slow-logs").await;
    assert_eq!(d.phase, Phase::Succeeded, "{d:#?}");
    assert!(
        d.replicas[0].instance.is_some(),
        "Succeeded while the lines are being kept"
    );
    let cid = job_of(&d).correlation.clone();
    let logs: Logs = node
        .client()
        .get("/deployments/slow-logs/logs")
        .await
        .unwrap();
    assert!(
        logs.lines.iter().any(|l| l.line == "started"),
        "{:?}",
        logs.lines
    );
    assert!(logs.lines.iter().all(|l| l
        .correlation
        .as_deref()
        .is_some_and(|c| c.starts_with(&cid))));

    let d = torn_down(&node, "slow-logs").await;
    assert_eq!(d.phase, Phase::Succeeded);
    let kept: Logs = node
        .client()
        .get("/deployments/slow-logs/logs")
        .await
        .unwrap();
    assert_eq!(
        kept.lines.iter().map(|l| &l.line).collect::<Vec<_>>(),
        logs.lines.iter().map(|l| &l.line).collect::<Vec<_>>(),
        "the kept lines are the ones read from the instance"
    );
    node.stop().await;
}
