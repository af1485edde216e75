//! The correlation id of a job attempt in every line about it: `meshctl logs` lines, the
//! job's events, and the node's tracing output (captured by this binary's global subscriber,
//! which is why the test lives alone here).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod job_support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use job_support::{apply, finished, job, job_of, start};
use mesh_protocol::api::Logs;
use mesh_protocol::{Event, Phase, Step};

/// An in-memory `tracing` writer, to read the node's log output back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of a job run carries the correlation id of its attempt: `meshctl logs`
/// lines, the job's events, and the node's own tracing output.
#[tokio::test]
async fn every_line_of_an_attempt_carries_its_correlation_id() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // Global (this test is alone in its binary): a thread-scoped default would race with
    // tracing's per-callsite interest cache.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let node = start().await;
    apply(
        &node,
        job(
            "traced",
            &[
                ("beemesh.io/mock-exit-after-ms", "20"),
                ("beemesh.io/mock-exit-codes", "1,0"),
            ],
            "",
        ),
    )
    .await;
    let d = finished(&node, "traced").await;
    assert_eq!(d.phase, Phase::Succeeded, "{d:#?}");
    let j = job_of(&d);
    let ids: Vec<String> = j.history.iter().map(|a| a.correlation.clone()).collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    assert_eq!(ids[1], j.correlation);
    assert!(ids.iter().all(|c| c.starts_with(&j.run_id)), "{ids:?}");

    let logs: Logs = node.client().get("/deployments/traced/logs").await.unwrap();
    assert!(!logs.lines.is_empty());
    let tagged: BTreeSet<&str> = logs
        .lines
        .iter()
        .map(|l| l.correlation.as_deref().expect("every line is tagged"))
        .collect();
    assert_eq!(tagged, ids.iter().map(String::as_str).collect());
    assert!(logs
        .lines
        .iter()
        .any(|l| l.correlation.as_deref() == Some(&ids[0]) && l.line == "exited with code 1"));
    let tail: Logs = node
        .client()
        .get("/deployments/traced/logs?tail=1")
        .await
        .unwrap();
    assert_eq!(tail.lines.len(), 1);
    assert_eq!(tail.lines[0].correlation.as_deref(), Some(ids[1].as_str()));

    // Every event after engine selection belongs to an attempt.
    let job_events: Vec<&Event> = d.events.iter().filter(|e| e.step != Step::Select).collect();
    assert!(
        job_events.iter().all(|e| e.correlation.is_some()),
        "{job_events:#?}"
    );
    for id in &ids {
        let steps: Vec<Step> = job_events
            .iter()
            .filter(|e| e.correlation.as_deref() == Some(id))
            .map(|e| e.step)
            .collect();
        assert!(
            steps.starts_with(&[
                Step::Validate,
                Step::Fetch,
                Step::Prepare,
                Step::Install,
                Step::Activate,
                Step::Exit
            ]),
            "{id}: {steps:?}"
        );
    }

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for id in &ids {
        let line = text
            .lines()
            .find(|l| l.contains("attempt starting") && l.contains(&format!("correlation={id}")))
            .unwrap_or_else(|| panic!("no tracing line for {id} in:\n{text}"));
        assert!(line.contains("workload=default/traced"), "{line}");
    }
    let job_lines: Vec<&str> = text.lines().filter(|l| l.contains("job{")).collect();
    assert!(
        job_lines.iter().all(|l| l.contains("correlation=job-")),
        "{job_lines:#?}"
    );
    node.stop().await;
}
