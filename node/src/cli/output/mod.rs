//! Rendering for `meshctl`: aligned tables for people, JSON or YAML for scripts.

use std::io::Write;

use clap::ValueEnum;
use mesh_protocol::api::{ApplyAction, ApplyResponse, Deployment, LogLine, Logs};
use mesh_protocol::job::JobStatus;
use mesh_protocol::spec::short_version;
use mesh_protocol::Event;
use serde::Serialize;

mod describe;
mod mesh;

use describe::events_table;
pub use describe::print_describe;
pub(crate) use mesh::short_peer;
pub use mesh::{print_engines, print_nodes, print_providers};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns, for people.
    Table,
    /// A table with more columns (`get`: nodes, revision, restarts; `nodes`: addresses).
    Wide,
    /// JSON, for scripts (watches: one object per line).
    Json,
    Yaml,
}

impl Format {
    /// A table, plain or wide.
    pub fn is_table(self) -> bool {
        matches!(self, Format::Table | Format::Wide)
    }
}

/// Prints any value as JSON or YAML (tables are per type).
pub fn print_value<T: Serialize>(fmt: Format, value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match fmt {
        Format::Json | Format::Table | Format::Wide => {
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

    /// The width of each column: its widest cell.
    pub fn widths(&self) -> Vec<usize> {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    pub fn render(&self) -> String {
        let widths = self.widths();
        let mut out = String::new();
        for row in &self.rows {
            out.push_str(&row_line(row, &widths));
            out.push('\n');
        }
        out
    }
}

/// One row of a table whose columns have `widths` (a cell wider than its column pushes the
/// rest right; the last cell is not padded).
pub fn row_line(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (c, cell) in cells.iter().enumerate() {
        if c + 1 == cells.len() {
            line.push_str(cell);
        } else {
            let w = widths.get(c).copied().unwrap_or(0);
            line.push_str(&format!("{cell:<w$}  "));
        }
    }
    line.trim_end().to_string()
}

/// `at` (Unix ms) as a UTC time of day with milliseconds: `21:53:13.042`.
pub fn clock(at: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at);
    let full = humantime::format_rfc3339_millis(t).to_string();
    full.get(11..23).unwrap_or(&full).to_string()
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
        ApplyAction::Accepted => "accepted",
    }
}

/// `2/3`: replicas Running or Succeeded, of those wanted.
pub(crate) fn ready(d: &Deployment) -> String {
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
    if !fmt.is_table() {
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
        Format::Table | Format::Wide => {}
        _ if single => return print_value(fmt, &list[0]),
        _ => return print_value(fmt, &list),
    }
    if list.is_empty() {
        eprintln!("no workloads (meshctl apply -f FILE deploys one)");
        return Ok(());
    }
    let wide = fmt == Format::Wide;
    let mut t = Table::new(&deployment_header(wide));
    for d in list {
        t.row(deployment_row(d, wide));
    }
    print!("{}", t.render());
    Ok(())
}

/// The columns of `get`; `wide` adds NODES, REVISION and RESTARTS.
pub fn deployment_header(wide: bool) -> Vec<&'static str> {
    let mut h = vec![
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
    ];
    if wide {
        h.extend(["NODES", "REVISION", "RESTARTS"]);
    }
    h.push("DETAIL");
    h
}

/// One workload as a row of `get` (see [`deployment_header`]).
pub fn deployment_row(d: &Deployment, wide: bool) -> Vec<String> {
    let job = job_of(d);
    let mut row = vec![
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
    ];
    if wide {
        let nodes: Vec<String> = d.replicas.iter().map(|r| short_peer(&r.node)).collect();
        row.push(if nodes.is_empty() {
            "-".into()
        } else {
            nodes.join(",")
        });
        row.push(d.revision.map_or_else(|| "-".into(), |r| r.to_string()));
        row.push(
            d.replicas
                .iter()
                .map(|r| r.restarts)
                .sum::<u32>()
                .to_string(),
        );
    }
    row.push(match job {
        Some(j) => job_summary(j),
        None => d.error.clone().unwrap_or_default(),
    });
    row
}

pub fn print_events(fmt: Format, events: &[Event]) -> anyhow::Result<()> {
    if !fmt.is_table() {
        return print_value(fmt, &events);
    }
    print!("{}", events_table(events));
    Ok(())
}

pub fn print_logs(fmt: Format, logs: &Logs) -> anyhow::Result<()> {
    if !fmt.is_table() {
        return print_value(fmt, logs);
    }
    let mut out = std::io::stdout().lock();
    for l in &logs.lines {
        writeln!(out, "{}", log_line(l))?;
    }
    Ok(())
}

/// A log line as `logs` prints it: `[correlation] [source] text`, each tag when there is one.
pub(crate) fn log_line(l: &LogLine) -> String {
    let mut text = String::new();
    if let Some(c) = &l.correlation {
        text.push_str(&format!("[{c}] "));
    }
    if let Some(src) = &l.source {
        text.push_str(&format!("[{src}] "));
    }
    text.push_str(&l.line);
    text
}

#[cfg(test)]
mod tests;
