//! Rendering for `meshctl`: aligned tables for people, JSON or YAML for scripts.

use std::io::Write;

use clap::ValueEnum;
use mesh_protocol::api::{ApplyAction, ApplyResponse, Deployment, EngineInfo, Logs};
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
        "VERSION",
        "AGE",
    ]);
    for d in list {
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
            short_version(&d.version).to_string(),
            age(d.created_at),
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

fn events_table(events: &[Event]) -> String {
    let mut t = Table::new(&[
        "AGE", "WORKLOAD", "STEP", "OUTCOME", "ENGINE", "TOOK", "MESSAGE",
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
