//! `meshctl get -w`: the list (or one workload), then a line per change. The node is asked
//! every [`PERIOD`]; a workload is printed again when what `get` shows of it changes (phase,
//! replicas and their nodes and phases, version, engine, restarts, error, job attempts), and
//! once as `Deleted` when it is gone. With `-o json` each change is one line,
//! `{"type":"ADDED|MODIFIED|DELETED","object":DEPLOYMENT}`, as Kubernetes watches print.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use mesh_protocol::api::Deployment;
use mesh_protocol::WorkloadId;
use serde::Serialize;

use super::backend::Backend;
use super::output::{deployment_header, deployment_row, row_line, Format, Table};

/// How often the node is asked.
pub const PERIOD: Duration = Duration::from_millis(500);

/// The pace of a watch or a follow: a tick every `period` (none at once), until Ctrl-C.
pub(super) struct Poll(tokio::time::Interval);

impl Poll {
    pub(super) fn every(period: Duration) -> Self {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self(tick)
    }

    /// Waits for the next tick: `false` once the user pressed Ctrl-C.
    pub(super) async fn next(&mut self) -> bool {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => false,
            _ = self.0.tick() => true,
        }
    }
}

#[derive(Debug, Serialize)]
struct Change<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    object: &'a Deployment,
}

/// What `get` shows of a workload, without its age: a change in it is a change to print.
fn key(d: &Deployment) -> String {
    let replicas: Vec<String> = d
        .replicas
        .iter()
        .map(|r| {
            format!(
                "{}:{:?}:{}:{}:{:?}:{:?}",
                r.node,
                r.phase,
                r.version,
                r.restarts,
                r.exit_code,
                r.job
                    .as_ref()
                    .map(|j| (j.attempts, j.exit_code, j.finished()))
            )
        })
        .collect();
    format!(
        "{:?}|{}|{}|{}|{:?}|{:?}|{}",
        d.phase,
        d.version,
        d.engine,
        d.desired_replicas,
        d.revision,
        d.error,
        replicas.join(",")
    )
}

async fn fetch(backend: &Backend, only: Option<&WorkloadId>) -> anyhow::Result<Vec<Deployment>> {
    match only {
        None => backend.list().await,
        Some(id) => match backend.get(id, false).await {
            Ok(d) => Ok(vec![d]),
            Err(e) if super::exit_code(&e) == super::exit::NOT_FOUND => Ok(Vec::new()),
            Err(e) => Err(e),
        },
    }
}

/// Prints rows padded to the header's widths (a watch cannot know later rows' widths).
struct Printer {
    fmt: Format,
    widths: Vec<usize>,
}

impl Printer {
    fn new(fmt: Format, first: &[Deployment]) -> Self {
        let wide = fmt == Format::Wide;
        let header = deployment_header(wide);
        let mut table = Table::new(&header);
        for d in first {
            table.row(deployment_row(d, wide));
        }
        let printer = Self {
            fmt,
            widths: table.widths(),
        };
        if fmt.is_table() {
            let header: Vec<String> = header.into_iter().map(str::to_string).collect();
            printer.line(&header);
        }
        printer
    }

    fn line(&self, cells: &[String]) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", row_line(cells, &self.widths));
        let _ = stdout.flush();
    }

    fn print(&self, kind: &'static str, d: &Deployment) -> anyhow::Result<()> {
        if self.fmt.is_table() {
            let mut row = deployment_row(d, self.fmt == Format::Wide);
            if kind == "DELETED" {
                row[3] = "Deleted".to_string();
            }
            self.line(&row);
            return Ok(());
        }
        let change = Change { kind, object: d };
        let mut stdout = std::io::stdout().lock();
        match self.fmt {
            Format::Yaml => write!(stdout, "---\n{}", serde_yaml::to_string(&change)?)?,
            _ => writeln!(stdout, "{}", serde_json::to_string(&change)?)?,
        }
        stdout.flush()?;
        Ok(())
    }
}

/// Watches until Ctrl-C (or the node stops answering).
pub async fn watch(backend: &Backend, fmt: Format, only: Option<WorkloadId>) -> anyhow::Result<()> {
    let first = fetch(backend, only.as_ref()).await?;
    let printer = Printer::new(fmt, &first);
    let mut seen: BTreeMap<String, (String, Deployment)> = BTreeMap::new();
    for d in first {
        printer.print("ADDED", &d)?;
        seen.insert(format!("{}/{}", d.namespace, d.name), (key(&d), d));
    }
    let mut poll = Poll::every(PERIOD);
    while poll.next().await {
        let now = fetch(backend, only.as_ref()).await?;
        let mut gone: Vec<String> = seen.keys().cloned().collect();
        for d in now {
            let name = format!("{}/{}", d.namespace, d.name);
            gone.retain(|n| *n != name);
            let k = key(&d);
            match seen.get(&name) {
                Some((old, _)) if *old == k => continue,
                Some(_) => printer.print("MODIFIED", &d)?,
                None => printer.print("ADDED", &d)?,
            }
            seen.insert(name, (k, d));
        }
        for name in gone {
            if let Some((_, d)) = seen.remove(&name) {
                printer.print("DELETED", &d)?;
            }
        }
    }
    Ok(())
}
