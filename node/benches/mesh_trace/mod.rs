//! The mesh benchmark's trace (`MESH_BENCH_TRACE=1`): every node logs JSON at
//! `mesh_node::mesh=debug`, and each apply's steps are timed from the lines logged under its
//! correlation id on the entry node and on the node that ran the replica (one machine, one
//! clock): where a remote apply's time goes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

/// The steps, each from one logged message to the next.
const MARKS: [&str; 8] = [
    "apply received",
    "apply accepted",
    "replica sent",
    "replica received",
    "replica applied",
    "replica announced",
    "replica answered",
    "apply done",
];

pub const STEPS: [&str; 8] = [
    "client → entry's apply (HTTP over the Unix socket, queue) and back",
    "entry: received → accepted (open and authorise the records)",
    "entry: accepted → replica sent (record checks, candidates, plan)",
    "request to the target (dial if needed, transport, queue)",
    "target: received → Running (verify, store, lifecycle)",
    "target: announce (provider record signed; gossiped and put into the DHT after the answer)",
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
/// `totals`: each apply's time as its client saw it, by correlation id; the first step is
/// what the client saw beyond the entry node's first and last marks.
pub fn steps(node_dirs: &[&Path], totals: &BTreeMap<String, f64>) -> Vec<Vec<f64>> {
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
    let ms = |from: SystemTime, to: SystemTime| {
        to.duration_since(from).unwrap_or_default().as_secs_f64() * 1e3
    };
    for (cid, m) in marks.iter().filter(|(_, m)| m.len() == MARKS.len()) {
        let Some(total) = totals.get(cid) else {
            continue;
        };
        out[0].push((total - ms(m[MARKS[0]], m[MARKS[MARKS.len() - 1]])).max(0.0));
        for (i, pair) in MARKS.windows(2).enumerate() {
            out[i + 1].push(ms(m[pair[0]], m[pair[1]]));
        }
    }
    out
}
