//! Processes of one instance: spawning a container's command in its own process group with
//! its output going straight to files, reaping it, stopping the groups, status from the
//! record, bounded log files and reading them back.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mesh_protocol::api::{LogLine, LogStream};
use mesh_runtime::engine::{Health, InstanceState, InstanceStatus};
use rustix::process::Signal;
use tokio::process::Child;
use tokio::task::JoinHandle;

use crate::plan::{Command, DEFAULT_PATH};
use crate::state::{self, Exit, Paths, Proc, ProcGroup, Record};

/// A log file is cut to empty (its content kept as `<file>.1`) past this size, so one
/// stream uses at most twice this on disk.
pub const MAX_LOG_BYTES: u64 = 8 * 1024 * 1024;
/// How often a running container's log files are checked against [`MAX_LOG_BYTES`].
pub const LOG_CHECK_PERIOD: Duration = Duration::from_secs(1);
/// How often process groups are checked while waiting for them to end.
pub const POLL: Duration = Duration::from_millis(20);
/// How long to wait for a process group to end after SIGKILL.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// One instance known to this engine value.
#[derive(Debug)]
pub struct Inst {
    pub paths: Paths,
    record: Mutex<Record>,
    /// Reaper tasks of the processes this engine value spawned (it is their parent).
    pub tasks: Mutex<Vec<JoinHandle<()>>>,
    pub stop_requested: AtomicBool,
}

impl Inst {
    pub fn new(paths: Paths, record: Record) -> Arc<Self> {
        Arc::new(Self {
            paths,
            record: Mutex::new(record),
            tasks: Mutex::new(Vec::new()),
            stop_requested: AtomicBool::new(false),
        })
    }

    pub fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the record and persists it.
    pub fn update(&self, f: impl FnOnce(&mut Record)) -> io::Result<()> {
        let mut r = self.record();
        f(&mut r);
        state::write_json(&self.paths.record(), &*r)
    }

    /// This engine value spawned the processes and reaps them.
    pub fn attached(&self) -> bool {
        !self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

/// Spawns `cmd` in its own process group, stdout and stderr appended to its log files.
pub fn spawn(paths: &Paths, cmd: &Command) -> io::Result<Child> {
    fs::create_dir_all(paths.dir.join("logs"))?;
    let open = |stream| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(paths.log(&cmd.name, stream))
    };
    let (out, err) = (open("stdout")?, open("stderr")?);
    let cwd = match &cmd.working_dir {
        Some(d) => PathBuf::from(d),
        None => {
            let d = paths.work(&cmd.name);
            fs::create_dir_all(&d)?;
            d
        }
    };
    let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_string());
    tokio::process::Command::new(&cmd.argv[0])
        .args(&cmd.argv[1..])
        .env_clear()
        .env("PATH", path)
        .env("HOME", &cwd)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "container {}: cannot run {:?} in {}: {e}",
                    cmd.name,
                    cmd.argv[0],
                    cwd.display()
                ),
            )
        })
}

/// Exit as recorded from a wait status.
pub fn exit_of(status: io::Result<std::process::ExitStatus>, stopped: bool) -> Exit {
    match status {
        Ok(s) => Exit {
            code: s.code(),
            signal: s.signal(),
            stopped,
        },
        Err(_) => Exit {
            code: None,
            signal: None,
            stopped,
        },
    }
}

/// Reaps container `index`, records its exit, and keeps its log files bounded meanwhile; then
/// says which instance it was on `exited` (the engine's events).
pub async fn reap(
    inst: Arc<Inst>,
    index: usize,
    mut child: Child,
    (exited, instance): (tokio::sync::broadcast::Sender<String>, String),
) {
    let name = inst.record().slots[index].command.name.clone();
    let mut check = tokio::time::interval(LOG_CHECK_PERIOD);
    let status = loop {
        tokio::select! {
            s = child.wait() => break s,
            _ = check.tick() => {
                for stream in ["stdout", "stderr"] {
                    bound_log(&inst.paths.log(&name, stream));
                }
            }
        }
    };
    let exit = exit_of(status, inst.stop_requested.load(Ordering::SeqCst));
    if let Err(e) = inst.update(|r| r.slots[index].exit = Some(exit)) {
        tracing::warn!(error = %e, container = %name, "cannot record the exit of a process");
    }
    // Nobody listening (no node follows this engine's events) is fine.
    let _ = exited.send(instance);
}

/// Moves a log file past [`MAX_LOG_BYTES`] to `<file>.1` and empties it. The process keeps
/// appending (O_APPEND) at the new end; lines written between the copy and the cut are lost.
pub fn bound_log(path: &Path) {
    if fs::metadata(path).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
        let _ = fs::copy(path, rotated(path))
            .and_then(|_| OpenOptions::new().write(true).open(path))
            .and_then(|f| f.set_len(0));
    }
}

fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// Lines of every container (init containers first), stdout then stderr per container
/// (the order between the two streams is not kept), the last `tail` overall.
pub fn read_logs(paths: &Paths, record: &Record, tail: Option<usize>) -> io::Result<Vec<LogLine>> {
    let mut out = Vec::new();
    let names = record
        .init
        .iter()
        .map(|c| &c.name)
        .chain(record.slots.iter().map(|s| &s.command.name));
    for name in names {
        for (stream, kind) in [("stdout", LogStream::Stdout), ("stderr", LogStream::Stderr)] {
            let path = paths.log(name, stream);
            for p in [rotated(&path), path] {
                let bytes = match fs::read(&p) {
                    Ok(b) => b,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                out.extend(String::from_utf8_lossy(&bytes).lines().map(|l| LogLine {
                    at: None,
                    stream: kind,
                    source: Some(name.clone()),
                    line: l.to_string(),
                    correlation: None,
                }));
            }
        }
    }
    if let Some(n) = tail {
        out.drain(..out.len().saturating_sub(n));
    }
    Ok(out)
}

/// The instance's status from its record. `attached`: this engine value reaps the
/// processes, so a dead process without a recorded exit is being reaped right now.
pub fn status_of(record: &Record, attached: bool) -> InstanceStatus {
    let mut states = Vec::with_capacity(record.slots.len());
    for slot in &record.slots {
        let name = &slot.command.name;
        states.push(match (&slot.proc, &slot.exit) {
            (None, _) => InstanceState::Created,
            (Some(_), Some(Exit { code: Some(c), .. })) => InstanceState::Exited { code: *c },
            (Some(_), Some(Exit { signal: Some(s), stopped: true, .. })) => InstanceState::Exited { code: 128 + s },
            (Some(_), Some(Exit { signal: Some(s), .. })) => InstanceState::Failed {
                reason: format!("container {name}: killed by signal {s}"),
            },
            (Some(_), Some(_)) => InstanceState::Failed {
                reason: format!("container {name}: lost (no wait status)"),
            },
            (Some(p), None) if attached || p.alive() => InstanceState::Running,
            (Some(p), None) => InstanceState::Failed {
                reason: format!(
                    "container {name}: process {} ended while the node was not watching; its exit code is unknown",
                    p.pid
                ),
            },
        });
    }
    let state = aggregate(states);
    InstanceStatus {
        detail: format!("{state:?}"),
        state,
        health: Health::NoCheck,
        restarts: record.starts.saturating_sub(1),
    }
}

fn aggregate(states: Vec<InstanceState>) -> InstanceState {
    if let Some(f) = states
        .iter()
        .find(|s| matches!(s, InstanceState::Failed { .. }))
    {
        return f.clone();
    }
    if let Some(e) = states
        .iter()
        .find(|s| matches!(s, InstanceState::Exited { code } if *code != 0))
    {
        return e.clone();
    }
    for probe in [InstanceState::Running, InstanceState::Created] {
        if states.contains(&probe) {
            return probe;
        }
    }
    InstanceState::Exited { code: 0 }
}

/// SIGTERM to every group, up to `grace` for them to end, then SIGKILL. Exits the engine
/// cannot reap (processes adopted after a restart) are recorded here.
pub async fn stop(inst: &Inst, grace: Duration) -> Result<(), String> {
    inst.stop_requested.store(true, Ordering::SeqCst);
    let procs: Vec<Proc> = inst.record().slots.iter().filter_map(|s| s.proc).collect();
    let mut signal = Signal::TERM;
    if !grace.is_zero() {
        procs.iter().for_each(|p| p.signal_group(Signal::TERM));
        if !wait_gone(&procs, grace).await {
            signal = Signal::KILL;
        }
    } else {
        signal = Signal::KILL;
    }
    if signal == Signal::KILL {
        procs.iter().for_each(|p| p.signal_group(Signal::KILL));
        if !wait_gone(&procs, KILL_WAIT).await {
            return Err("processes still alive after SIGKILL".to_string());
        }
    }
    // Reapers record what they saw; fill in the rest (no reaper, or it is late).
    let until = Instant::now() + Duration::from_secs(2);
    while inst.attached()
        && inst
            .record()
            .slots
            .iter()
            .any(|s| s.proc.is_some() && s.exit.is_none())
        && Instant::now() < until
    {
        tokio::time::sleep(POLL).await;
    }
    let sig = if signal == Signal::KILL { 9 } else { 15 };
    inst.update(|r| {
        for s in r
            .slots
            .iter_mut()
            .filter(|s| s.proc.is_some() && s.exit.is_none())
        {
            s.exit = Some(Exit {
                code: None,
                signal: Some(sig),
                stopped: true,
            });
        }
    })
    .map_err(|e| e.to_string())
}

async fn wait_gone(procs: &[Proc], within: Duration) -> bool {
    let until = Instant::now() + within;
    loop {
        if !procs.iter().any(|p| p.group_exists()) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}
