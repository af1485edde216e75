use super::*;
use mesh_protocol::api::LogLine;
use mesh_protocol::job::MAX_ATTEMPT_HISTORY;
use mesh_protocol::spec::{SourceFormat, DEFAULT_NAMESPACE};
use mesh_protocol::{Outcome, Step, WorkloadKind};

fn desired(name: &str) -> Desired {
    let spec = WorkloadSpec::new(
        name,
        DEFAULT_NAMESPACE,
        WorkloadKind::Pod,
        SourceFormat::Kubernetes,
    )
    .seal();
    Desired {
        history: vec![VersionRecord {
            version: spec.version.clone(),
            applied_at: 1,
            reached_running: false,
        }],
        spec,
        replicas: 1,
        created_at: 1,
        updated_at: 1,
        placement: vec![],
        record: None,
        slot: 0,
        revision: 0,
    }
}

fn event(workload: &str) -> Event {
    Event {
        seq: 0,
        at: 0,
        workload: workload.to_string(),
        version: String::new(),
        step: Step::Validate,
        outcome: Outcome::Ok,
        duration_us: 1,
        engine: None,
        message: String::new(),
        correlation: None,
    }
}

#[test]
fn survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let d = desired("web");
    let id = d.spec.id();
    {
        let store = Store::open(dir.path()).unwrap();
        store.put_desired(&d).unwrap();
        store
            .set_pending(&id, &Pending::Delete { since: 5 })
            .unwrap();
        store.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.desired(&id).unwrap(), Some(d.clone()));
    assert_eq!(
        store.version(&id, &d.spec.version).unwrap(),
        Some(d.spec.clone())
    );
    assert_eq!(
        store.list_pending().unwrap(),
        vec![(id.clone(), Pending::Delete { since: 5 })]
    );
    store.remove_workload(&id).unwrap();
    assert_eq!(store.desired(&id).unwrap(), None);
    assert!(store.list_pending().unwrap().is_empty());
}

#[test]
fn event_log_is_bounded_per_workload() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let id = WorkloadId::new(DEFAULT_NAMESPACE, "busy");
    for _ in 0..(MAX_EVENTS_PER_WORKLOAD + 100) {
        store.append_event(event("default/busy")).unwrap();
    }
    store.append_event(event("default/quiet")).unwrap();
    let all = store.events(&id, usize::MAX).unwrap();
    assert!(
        all.len() <= MAX_EVENTS_PER_WORKLOAD + 16,
        "{} events kept",
        all.len()
    );
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "oldest first");
    assert_eq!(
        store
            .events(&WorkloadId::new(DEFAULT_NAMESPACE, "quiet"), 10)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store.all_events(5).unwrap().last().unwrap().workload,
        "default/quiet"
    );
}

#[test]
fn attempt_logs_keep_the_newest_attempts_and_go_with_the_workload() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let id = WorkloadId::new(DEFAULT_NAMESPACE, "job");
    let line = |n: u32| LogLine {
        at: None,
        stream: mesh_protocol::api::LogStream::Stdout,
        source: None,
        line: format!("attempt {n}"),
        correlation: Some(format!("c-{n}")),
    };
    for n in 1..=(MAX_ATTEMPT_HISTORY as u32 + 2) {
        store.put_attempt_logs(&id, n, &[line(n)]).unwrap();
    }
    let kept = store.attempt_logs_by_attempt(&id).unwrap();
    let lines: Vec<&LogLine> = kept.iter().flat_map(|(_, l)| l).collect();
    assert_eq!(lines.len(), MAX_ATTEMPT_HISTORY);
    assert_eq!(lines[0].line, "attempt 3");
    assert_eq!(lines.last().unwrap().correlation.as_deref(), Some("c-22"));
    let attempts: Vec<u32> = store
        .attempt_logs_by_attempt(&id)
        .unwrap()
        .iter()
        .map(|(a, _)| *a)
        .collect();
    assert_eq!(attempts, (3..=22).collect::<Vec<u32>>());
    assert!(store.has_attempt_logs(&id, 22).unwrap());
    assert!(!store.has_attempt_logs(&id, 2).unwrap());
    let outputs = store.outputs_dir(&id);
    assert!(outputs.starts_with(dir.path().join("jobs")));
    std::fs::create_dir_all(&outputs).unwrap();
    store.remove_workload(&id).unwrap();
    assert!(store.attempt_logs_by_attempt(&id).unwrap().is_empty());
    assert!(!outputs.exists());
}

#[test]
fn odd_names_become_safe_path_components() {
    assert_eq!(component("web-1"), "web-1");
    assert_eq!(component(".."), "2e2e");
    assert_eq!(component("a/b"), "612f62");
}

#[test]
fn corrupt_records_are_reported_not_panicked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .desired
        .insert("default/x", &b"{not json"[..])
        .unwrap();
    let err = store.desired(&WorkloadId::new("default", "x")).unwrap_err();
    assert!(err.to_string().contains("corrupt record under default/x"));
}

#[test]
fn the_event_log_pages_in_order_and_drops_the_oldest_beyond_its_bound_with_a_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let extra = 200;
    let mut seqs = Vec::new();
    for i in 0..event_log::MAX_EVENT_LOG + extra {
        let workload = if i % 2 == 0 { "default/a" } else { "" };
        seqs.push(store.append_event(event(workload)).unwrap().seq);
    }
    let page = store.event_page("me", 0, 10).unwrap();
    assert_eq!(page.node, "me");
    assert_eq!(page.last, *seqs.last().unwrap());
    // Trimmed in steps: at most a step's worth above the bound, and what went is counted.
    let kept = store.event_page("me", 0, usize::MAX).unwrap().events.len();
    assert!((event_log::MAX_EVENT_LOG - 64..=event_log::MAX_EVENT_LOG + 64).contains(&kept));
    assert_eq!(page.dropped as usize, seqs.len() - kept);
    assert_eq!(page.first, seqs[seqs.len() - kept]);
    // A page after a sequence number starts right after it, in order.
    let mid = seqs[seqs.len() - 5];
    let tail: Vec<u64> = store
        .event_page("me", mid, 100)
        .unwrap()
        .events
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(tail, seqs[seqs.len() - 4..]);
    // The length kept in memory is the log's.
    assert_eq!(store.event_log_len(), kept);
    // The count survives a restart, and the length is counted again at open.
    drop(store);
    let again = Store::open(&dir.path().join("db")).unwrap();
    assert_eq!(again.events_dropped(), page.dropped);
    assert_eq!(again.event_log_len(), kept);
    // Trimming goes on from the length counted at open.
    for _ in 0..extra {
        again.append_event(event("default/a")).unwrap();
    }
    let now = again.event_page("me", 0, usize::MAX).unwrap().events.len();
    assert_eq!(again.event_log_len(), now);
    assert!((event_log::MAX_EVENT_LOG - 64..=event_log::MAX_EVENT_LOG + 64).contains(&now));
}
