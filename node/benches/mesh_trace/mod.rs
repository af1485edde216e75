//! The mesh benchmark's trace (`MESH_BENCH_TRACE=1`): every node logs JSON at
//! `mesh_node::mesh=debug`, and each apply's steps are timed from the lines logged under its
//! correlation id on the entry node and on the node that ran the replica (one machine, one
//! clock): where a remote apply's time goes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

/// The steps, each from one logged message to the next.
const MARKS: [&str; 7] = [
    "apply accepted",
    "replica sent",
    "replica received",
    "replica applied",
    "replica announced",
    "replica answered",
    "apply done",
];

pub const STEPS: [&str; 6] = [
    "entry: accepted → replica sent (record checks, candidates, plan)",
    "request to the target (dial if needed, transport, queue)",
    "target: received → Running (verify, store, lifecycle)",
    "target: announce (provider record signed, gossiped)",
    "answer back to the entry node",
    "entry: answer → done",
];

/// meshd arguments for a traced run.
pub fn args() -> Vec<String> {
    vec![
        "--log".into(),
        "warn,mesh_node::mesh=debug".into(),
        "--log-format".into(),
        "json".into(),
    ]
}

/// Per step, the milliseconds each traced apply spent in it (applies with every mark only).
pub fn steps(node_dirs: &[&Path]) -> Vec<Vec<f64>> {
    let mut marks: BTreeMap<String, BTreeMap<&'static str, SystemTime>> = BTreeMap::new();
    for dir in node_dirs {
        let Ok(log) = std::fs::read_to_string(dir.join("meshd.log")) else {
            continue;
        };
        for line in log.lines().filter(|l| l.starts_with('{')) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(cid) = v["span"]["correlation"].as_str() else {
                continue;
            };
            let Some(mark) = MARKS
                .iter()
                .find(|m| v["fields"]["message"].as_str() == Some(**m))
            else {
                continue;
            };
            let Some(at) = v["timestamp"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339(t).ok())
            else {
                continue;
            };
            marks.entry(cid.to_string()).or_default().insert(mark, at);
        }
    }
    let mut out = vec![Vec::new(); STEPS.len()];
    for m in marks.values().filter(|m| m.len() == MARKS.len()) {
        for (i, pair) in MARKS.windows(2).enumerate() {
            let d = m[pair[1]].duration_since(m[pair[0]]).unwrap_or_default();
            out[i].push(d.as_secs_f64() * 1e3);
        }
    }
    out
}
