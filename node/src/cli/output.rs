//! Rendering for `meshctl`: aligned tables for people, JSON or YAML for scripts.

use std::io::Write;

use clap::ValueEnum;
use mesh_protocol::api::{ApplyAction, ApplyResponse, Deployment, EngineInfo, Logs};
use mesh_protocol::job::JobStatus;
use mesh_protocol::spec::short_version;
use mesh_protocol::wire::{NodeInfo, Provider};
use mesh_protocol::{Event, Outcome};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Prints any value as JSON or YAML (tables are per type).
pub fn print_value<T: Serialize>(fmt: Format, value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match fmt {
        Format::Json | Format::Table => {
            serde_json::to_writer_pretty(&mut out, value)?;
            writeln!(out)?;
        }
        Format::Yaml => write!(out, "{}", serde_yaml::to_string(value)?)?,
    }
    Ok(())
}

/// A table with left-aligned columns separated by two spaces.
#[derive(Debug)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `5s`, `3m`, `2h`, `4d` since `at` (Unix ms).
pub fn age(at: u64) -> String {
    if at == 0 {
        return "-".to_string();
    }
    let secs = mesh_runtime::now_millis().saturating_sub(at) / 1000;
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

fn duration_us(us: u64) -> String {
    if us < 1000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{:.2}s", us as f64 / 1_000_000.0)
    }
}

/// `1.5s`, `3m20s` for a span of milliseconds.
fn span_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..=1023 => format!("{n}B"),
        1024..=1_048_575 => format!("{:.1}KiB", n as f64 / 1024.0),
        _ => format!("{:.1}MiB", n as f64 / 1_048_576.0),
    }
}

/// The first job of a workload's replicas.
fn job_of(d: &Deployment) -> Option<&JobStatus> {
    d.replicas.iter().find_map(|r| r.job.as_ref())
}

/// `3/7`: attempts started of the most allowed.
fn attempts(j: &JobStatus) -> String {
    format!("{}/{}", j.attempts, j.backoff_limit.saturating_add(1))
}

/// One line about a job run, for `get`.
fn job_summary(j: &JobStatus) -> String {
    let now = mesh_runtime::now_millis();
    if let Some(e) = &j.error {
        return e.to_string();
    }
    if j.finished() {
        let n = j.outputs.len();
        return format!(
            "succeeded{}",
            if n == 0 {
                String::new()
            } else {
                format!(", {n} output{}", if n == 1 { "" } else { "s" })
            }
        );
    }
    match j.next_attempt_at {
        Some(at) => format!(
            "attempt {} failed; next in {}",
            j.attempts,
            span_ms(at.saturating_sub(now))
        ),
        None => format!("attempt {} running ({})", j.attempts, j.correlation),
    }
}

fn action_str(a: ApplyAction) -> &'static str {
    match a {
        ApplyAction::Created => "created",
        ApplyAction::Updated => "updated",
        ApplyAction::Unchanged => "unchanged",
        ApplyAction::RolledBack => "rolled back",
        ApplyAction::Failed => "failed",
    }
}

fn ready(d: &Deployment) -> String {
    let running = d
        .replicas
        .iter()
        .filter(|r| {
            matches!(
                r.phase,
                mesh_protocol::Phase::Running | mesh_protocol::Phase::Succeeded
            )
        })
        .count();
    format!("{running}/{}", d.desired_replicas)
}

pub fn print_apply(fmt: Format, resp: &ApplyResponse) -> anyhow::Result<()> {
    if fmt != Format::Table {
        return print_value(fmt, resp);
    }
    let mut t = Table::new(&["WORKLOAD", "ACTION", "PHASE", "ENGINE", "VERSION", "DETAIL"]);
    for w in &resp.workloads {
        let d = &w.deployment;
        let detail = d.error.clone().unwrap_or_else(|| d.engine_reason.clone());
        t.row(vec![
            format!("{}/{}", d.namespace, d.name),
            action_str(w.action).to_string(),
            d.phase.to_string(),
            if d.engine.is_empty() {
                "-".into()
            } else {
                d.engine.clone()
            },
            short_version(&d.version).to_string(),
            detail,
        ]);
    }
    print!("{}", t.render());
    let mut err = std::io::stderr().lock();
    for w in &resp.workloads {
        let d = &w.deployment;
        // Describe lists every placement note; apply only says when replicas are missing.
        let shortfall = d.placement.iter().filter(|p| p.starts_with("placed "));
        for warning in d.warnings.iter().chain(shortfall) {
            writeln!(err, "warning: {}/{}: {warning}", d.namespace, d.name)?;
        }
    }
    Ok(())
}

pub fn print_deployments(fmt: Format, list: &[Deployment], single: bool) -> anyhow::Result<()> {
    match fmt {
        Format::Table => {}
        _ if single => return print_value(fmt, &list[0]),
        _ => return print_value(fmt, &list),
    }
    if list.is_empty() {
        eprintln!("no workloads (meshctl apply -f FILE deploys one)");
        return Ok(());
    }
    let mut t = Table::new(&[
        "NAME",
        "NAMESPACE",
        "KIND",
        "PHASE",
        "ENGINE",
        "READY",
        "ATTEMPTS",
        "EXIT",
        "VERSION",
        "AGE",
        "DETAIL",
    ]);
    for d in list {
        let job = job_of(d);
        t.row(vec![
            d.name.clone(),
            d.namespace.clone(),
            d.kind.to_string(),
            d.phase.to_string(),
            if d.engine.is_empty() {
                "-".into()
            } else {
                d.engine.clone()
            },
            ready(d),
            job.map_or_else(|| "-".into(), attempts),
            job.and_then(|j| j.exit_code)
                .or_else(|| d.replicas.iter().find_map(|r| r.exit_code))
                .map_or_else(|| "-".into(), |c| c.to_string()),
            short_version(&d.version).to_string(),
            age(d.created_at),
            match job {
                Some(j) => job_summary(j),
                None => d.error.clone().unwrap_or_default(),
            },
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

pub fn print_describe(fmt: Format, d: &Deployment) -> anyhow::Result<()> {
    if fmt != Format::Table {
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
        "NODE", "PHASE", "ENGINE", "VERSION", "INSTANCE", "RESTARTS", "ERROR",
    ]);
    for r in &d.replicas {
        t.row(vec![
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
fn describe_job(s: &mut String, j: &JobStatus) {
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

fn events_table(events: &[Event]) -> String {
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

pub fn print_events(fmt: Format, events: &[Event]) -> anyhow::Result<()> {
    if fmt != Format::Table {
        return print_value(fmt, &events);
    }
    print!("{}", events_table(events));
    Ok(())
}

pub fn print_logs(fmt: Format, logs: &Logs) -> anyhow::Result<()> {
    if fmt != Format::Table {
        return print_value(fmt, logs);
    }
    let mut out = std::io::stdout().lock();
    for l in &logs.lines {
        if let Some(c) = &l.correlation {
            write!(out, "[{c}] ")?;
        }
        match &l.source {
            Some(src) => writeln!(out, "[{src}] {}", l.line)?,
            None => writeln!(out, "{}", l.line)?,
        }
    }
    Ok(())
}

pub fn print_engines(fmt: Format, engines: &[EngineInfo]) -> anyhow::Result<()> {
    if fmt != Format::Table {
        return print_value(fmt, &engines);
    }
    if engines.is_empty() {
        eprintln!(
            "no engines enabled on this node (start meshd with --engines, e.g. --engines mock)"
        );
        return Ok(());
    }
    let mut t = Table::new(&[
        "ENGINE",
        "HEALTHY",
        "VERSION",
        "KINDS",
        "CAPABILITIES",
        "DETAIL",
    ]);
    for e in engines {
        t.row(vec![
            e.name.clone(),
            if e.healthy { "yes".into() } else { "no".into() },
            e.version.clone().unwrap_or_else(|| "-".into()),
            e.kinds
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(","),
            e.capabilities.join(","),
            e.detail.clone(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

fn short_peer(peer: &str) -> String {
    if peer.len() > 16 {
        format!("…{}", &peer[peer.len() - 12..])
    } else {
        peer.to_string()
    }
}

fn until(at: u64) -> String {
    let now = mesh_runtime::now_millis();
    if at <= now {
        "expired".to_string()
    } else {
        format!("{}s", (at - now).div_ceil(1000))
    }
}

pub fn print_providers(fmt: Format, providers: &[Provider]) -> anyhow::Result<()> {
    if fmt != Format::Table {
        return print_value(fmt, &providers);
    }
    if providers.is_empty() {
        eprintln!("no providers");
        return Ok(());
    }
    let mut t = Table::new(&[
        "PEER",
        "ENGINE",
        "PHASE",
        "VERSION",
        "EXPIRES IN",
        "CAPABILITIES",
    ]);
    for p in providers {
        t.row(vec![
            short_peer(&p.peer_id),
            p.engine.clone(),
            p.phase.to_string(),
            short_version(&p.version).to_string(),
            until(p.expires_at),
            p.capabilities.join(","),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

pub fn print_nodes(fmt: Format, nodes: &[NodeInfo]) -> anyhow::Result<()> {
    if fmt != Format::Table {
        return print_value(fmt, &nodes);
    }
    let mut t = Table::new(&[
        "PEER",
        "ENGINES",
        "CPU FREE",
        "MEM FREE",
        "WORKLOADS",
        "ADDRESS",
    ]);
    for n in nodes {
        let engines: Vec<String> = n
            .engines
            .iter()
            .map(|e| {
                if e.healthy {
                    e.name.clone()
                } else {
                    format!("{}(down)", e.name)
                }
            })
            .collect();
        t.row(vec![
            if n.local {
                format!("{} (this node)", short_peer(&n.peer_id))
            } else {
                short_peer(&n.peer_id)
            },
            if engines.is_empty() {
                "-".into()
            } else {
                engines.join(",")
            },
            format!("{}m/{}m", n.cpu_free_millis, n.cpu_millis),
            format!("{}Mi", n.memory_free_bytes >> 20),
            n.workloads.to_string(),
            n.addresses.first().cloned().unwrap_or_default(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use mesh_protocol::job::{Artifact, Attempt, JobError, JobPhase, JobReason};

    fn failed_job() -> JobStatus {
        JobStatus {
            run_id: "job-3f2a9c1d-7b41".into(),
            correlation: "job-3f2a9c1d-7b41-3".into(),
            attempts: 3,
            failed_attempts: 3,
            backoff_limit: 2,
            started_at: Some(1_000),
            completed_at: Some(5_000),
            exit_code: Some(1),
            error: Some(
                JobError::new(
                    JobPhase::Execution,
                    "exited with code 1; backoffLimit 2 reached after 3 attempts",
                )
                .with_reason(JobReason::BackoffLimitExceeded),
            ),
            history: vec![Attempt {
                number: 3,
                correlation: "job-3f2a9c1d-7b41-3".into(),
                started_at: Some(4_000),
                finished_at: Some(4_500),
                exit_code: Some(1),
                error: Some(JobError::new(JobPhase::Execution, "exited with code 1")),
            }],
            ..JobStatus::default()
        }
    }

    /// `get` says how a job ended in one line; `describe` shows attempts, the typed error,
    /// outputs with sizes and the attempts with their correlation ids.
    #[test]
    fn jobs_render_their_results() {
        let failed = failed_job();
        assert_eq!(attempts(&failed), "3/3");
        assert_eq!(
            job_summary(&failed),
            "execution error: exited with code 1; backoffLimit 2 reached after 3 attempts (BackoffLimitExceeded)"
        );
        let mut s = String::new();
        describe_job(&mut s, &failed);
        assert!(
            s.contains("Attempts:      3 (3 failed; backoffLimit 2)"),
            "{s}"
        );
        assert!(s.contains("Result:        Failed (execution error)"), "{s}");
        assert!(s.contains("Exit code:     1"), "{s}");
        assert!(s.contains("3  job-3f2a9c1d-7b41-3"), "{s}");
        assert!(s.contains("500ms"), "{s}");

        let ok = JobStatus {
            error: None,
            exit_code: Some(0),
            outputs: vec![Artifact {
                path: "result.txt".into(),
                size: 2048,
                digest: format!("sha256:{}", "ab".repeat(32)),
                location: "/data/jobs/default/pi/outputs/result.txt".into(),
            }],
            ..failed_job()
        };
        assert_eq!(job_summary(&ok), "succeeded, 1 output");
        let mut s = String::new();
        describe_job(&mut s, &ok);
        assert!(s.contains("Result:        Succeeded"), "{s}");
        assert!(
            s.contains(
                "result.txt  2.0KiB  sha256:abababababab  /data/jobs/default/pi/outputs/result.txt"
            ),
            "{s}"
        );
        let running = JobStatus {
            completed_at: None,
            error: None,
            ..failed_job()
        };
        assert_eq!(
            job_summary(&running),
            "attempt 3 running (job-3f2a9c1d-7b41-3)"
        );
    }
}
