//! `meshctl describe`: one workload in full.

use mesh_protocol::api::Deployment;
use mesh_protocol::job::JobStatus;
use mesh_protocol::spec::short_version;
use mesh_protocol::{Event, Outcome};

use super::mesh::short_peer;
use super::{age, bytes, duration_us, print_value, ready, span_ms, Format, Table};

pub fn print_describe(fmt: Format, d: &Deployment) -> anyhow::Result<()> {
    if !fmt.is_table() {
        return print_value(fmt, d);
    }
    let mut s = String::new();
    let line =
        |s: &mut String, k: &str, v: &str| s.push_str(&format!("{:<15}{v}\n", format!("{k}:")));
    line(&mut s, "Name", &d.name);
    line(&mut s, "Namespace", &d.namespace);
    line(&mut s, "Kind", d.kind.as_str());
    line(&mut s, "Version", &d.version);
    line(&mut s, "Phase", d.phase.as_str());
    if let Some(rev) = d.revision {
        let by = d.submitter.as_deref().map(short_peer).unwrap_or_default();
        line(&mut s, "Revision", &format!("{rev} (signed by key {by})"));
    }
    if let Some(e) = &d.error {
        line(&mut s, "Error", e);
    }
    line(
        &mut s,
        "Engine",
        if d.engine.is_empty() { "-" } else { &d.engine },
    );
    line(
        &mut s,
        "Engine reason",
        if d.engine_reason.is_empty() {
            "-"
        } else {
            &d.engine_reason
        },
    );
    let mut res = Vec::new();
    if let Some(c) = d.resources.cpu_millis {
        res.push(format!("cpu {c}m"));
    }
    if let Some(m) = d.resources.memory_bytes {
        res.push(format!("memory {}Mi", m / (1024 * 1024)));
    }
    line(
        &mut s,
        "Resources",
        &if res.is_empty() {
            "-".to_string()
        } else {
            res.join(", ")
        },
    );
    line(&mut s, "Created", &format!("{} ago", age(d.created_at)));
    line(
        &mut s,
        "Replicas",
        &format!("{} desired, {} ready", d.desired_replicas, ready(d)),
    );
    let mut t = Table::new(&[
        "SLOT", "NODE", "PHASE", "ENGINE", "VERSION", "INSTANCE", "RESTARTS", "ERROR",
    ]);
    for r in &d.replicas {
        t.row(vec![
            r.slot.map_or_else(|| "-".into(), |s| s.to_string()),
            r.node.clone(),
            r.phase.to_string(),
            r.engine.clone(),
            short_version(&r.version).to_string(),
            r.instance.clone().unwrap_or_else(|| "-".into()),
            r.restarts.to_string(),
            r.error
                .clone()
                .or(r.exit_code.map(|c| format!("exit code {c}")))
                .unwrap_or_default(),
        ]);
    }
    for l in t.render().lines() {
        s.push_str(&format!("  {l}\n"));
    }
    for r in &d.replicas {
        if let Some(j) = &r.job {
            s.push_str(&format!("Job (on {}):\n", short_peer(&r.node)));
            describe_job(&mut s, j);
        }
    }
    for (title, items) in [("Placement", &d.placement), ("Warnings", &d.warnings)] {
        if !items.is_empty() {
            s.push_str(&format!("{title}:\n"));
            for i in items.iter() {
                s.push_str(&format!("  - {i}\n"));
            }
        }
    }
    if !d.annotations.is_empty() {
        s.push_str("Annotations:\n");
        for (k, v) in &d.annotations {
            s.push_str(&format!("  {k}: {v}\n"));
        }
    }
    s.push_str("History:\n");
    let mut t = Table::new(&["VERSION", "APPLIED", "REACHED RUNNING"]);
    for h in &d.history {
        t.row(vec![
            short_version(&h.version).to_string(),
            format!("{} ago", age(h.applied_at)),
            if h.reached_running {
                "yes".into()
            } else {
                "no".into()
            },
        ]);
    }
    for l in t.render().lines() {
        s.push_str(&format!("  {l}\n"));
    }
    s.push_str("Events:\n");
    for l in events_table(&d.events).lines() {
        s.push_str(&format!("  {l}\n"));
    }
    print!("{s}");
    Ok(())
}

/// The job section of `describe`: attempts, deadline, exit code, typed error, outputs and
/// the attempts' history.
pub(super) fn describe_job(s: &mut String, j: &JobStatus) {
    let now = mesh_runtime::now_millis();
    let line = |s: &mut String, k: &str, v: &str| {
        s.push_str(&format!("  {:<15}{v}\n", format!("{k}:")));
    };
    line(s, "Run", &j.run_id);
    line(
        s,
        "Correlation",
        if j.correlation.is_empty() {
            "-"
        } else {
            &j.correlation
        },
    );
    line(
        s,
        "Attempts",
        &format!(
            "{} ({} failed; backoffLimit {})",
            j.attempts, j.failed_attempts, j.backoff_limit
        ),
    );
    if let Some(ms) = j.active_deadline_ms {
        let left = match (j.started_at, j.completed_at) {
            (Some(start), None) => format!(" ({} left)", span_ms((start + ms).saturating_sub(now))),
            _ => String::new(),
        };
        line(
            s,
            "Deadline",
            &format!("{} from the first start{left}", span_ms(ms)),
        );
    }
    if let Some(at) = j.next_attempt_at {
        line(
            s,
            "Next attempt",
            &format!("in {}", span_ms(at.saturating_sub(now))),
        );
    }
    line(
        s,
        "Exit code",
        &j.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
    );
    let result = match (&j.error, j.finished()) {
        (Some(e), _) => format!("Failed ({} error)", e.phase),
        (None, true) => "Succeeded".to_string(),
        (None, false) => "-".to_string(),
    };
    line(s, "Result", &result);
    if let Some(e) = &j.error {
        line(s, "Error", &e.to_string());
    }
    if j.kept_instance {
        line(s, "Instance", "kept (beemesh.io/job-keep-instance)");
    }
    if !j.outputs.is_empty() {
        s.push_str("  Outputs:\n");
        let mut t = Table::new(&["PATH", "SIZE", "DIGEST", "LOCATION"]);
        for a in &j.outputs {
            let digest = a.digest.strip_prefix("sha256:").unwrap_or(&a.digest);
            t.row(vec![
                a.path.clone(),
                bytes(a.size),
                format!("sha256:{}", &digest[..digest.len().min(12)]),
                a.location.clone(),
            ]);
        }
        for l in t.render().lines() {
            s.push_str(&format!("    {l}\n"));
        }
    }
    if !j.history.is_empty() {
        s.push_str("  Attempt history:\n");
        let mut t = Table::new(&["#", "CORRELATION", "STARTED", "TOOK", "EXIT", "ERROR"]);
        for a in &j.history {
            t.row(vec![
                a.number.to_string(),
                a.correlation.clone(),
                a.started_at
                    .map_or_else(|| "-".into(), |at| format!("{} ago", age(at))),
                match (a.started_at, a.finished_at) {
                    (Some(b), Some(e)) => span_ms(e.saturating_sub(b)),
                    (Some(_), None) => "running".into(),
                    _ => "-".into(),
                },
                a.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
                a.error.as_ref().map(|e| e.to_string()).unwrap_or_default(),
            ]);
        }
        for l in t.render().lines() {
            s.push_str(&format!("    {l}\n"));
        }
    }
}

pub(super) fn events_table(events: &[Event]) -> String {
    let mut t = Table::new(&[
        "AGE",
        "WORKLOAD",
        "STEP",
        "OUTCOME",
        "ENGINE",
        "TOOK",
        "CORRELATION",
        "MESSAGE",
    ]);
    for e in events {
        t.row(vec![
            age(e.at),
            e.workload.clone(),
            e.step.to_string(),
            match e.outcome {
                Outcome::Ok => "ok".into(),
                Outcome::Failed => "FAILED".into(),
            },
            e.engine.clone().unwrap_or_else(|| "-".into()),
            duration_us(e.duration_us),
            e.correlation.clone().unwrap_or_else(|| "-".into()),
            e.message.clone(),
        ]);
    }
    t.render()
}
