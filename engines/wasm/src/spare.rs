//! A warm runner: one `mesh-wasm-runner` spawned ahead of need, which has made its wasmtime
//! engine and waits for its Start frame. A workload's first start takes it instead of
//! spawning a process (the trace of a warm start through `meshd`: of the runner's 3.3 ms
//! start → exit, the spawn and the engine's creation were most), and a new spare is spawned
//! in the background. Restarts spawn afresh: their `runner.log` is appended to, and a
//! restart is not waited on.
//!
//! A spare's stderr is a file of its own under `spares/`; taking it renames that file to the
//! instance's `runner.log`, so the runner's diagnostics end up where a cold start's do. A
//! spare whose engine value is dropped reads the end of its stdin and exits.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A runner process with its pipes, and the file its stderr goes to.
#[derive(Debug)]
pub struct Runner {
    pub child: Child,
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
}

/// Spawns a runner whose stderr appends to `diag`: in its own process group (a stop signals
/// the group), not killed when its handle is dropped (a node restart leaves it running).
pub fn spawn_runner(runner_path: &Path, diag: &Path) -> io::Result<Runner> {
    let diag = OpenOptions::new().create(true).append(true).open(diag)?;
    let mut child = Command::new(runner_path)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(diag))
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start {}: {e}", runner_path.display()),
            )
        })?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("no stdin"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("no stdout"))?;
    Ok(Runner {
        child,
        stdin,
        stdout,
    })
}

/// At most one spare runner, refilled after each take.
#[derive(Debug)]
pub struct Spares {
    runner_path: PathBuf,
    dir: PathBuf,
    spare: Mutex<Option<(Runner, PathBuf)>>,
    filling: AtomicBool,
    seq: AtomicU64,
}

impl Spares {
    /// Spares of `runner_path`, their stderr files in `dir` (emptied: files of an earlier
    /// node's spares, which exited with it).
    pub fn new(runner_path: PathBuf, dir: PathBuf) -> io::Result<Self> {
        crate::trash::empty_dir(&dir)?;
        Ok(Self {
            runner_path,
            dir,
            spare: Mutex::new(None),
            filling: AtomicBool::new(false),
            seq: AtomicU64::new(0),
        })
    }

    /// The spare, if one is ready and still alive, its stderr file renamed to `diag`; and a
    /// new spare on its way (also when there was none, so the next start finds one).
    pub fn take(self: &Arc<Self>, diag: &Path) -> Option<Runner> {
        let taken = self.lock().take();
        self.refill();
        let (mut runner, log) = taken?;
        if !matches!(runner.child.try_wait(), Ok(None)) {
            return None;
        }
        std::fs::rename(&log, diag).ok()?;
        Some(runner)
    }

    /// The process id of the spare waiting, if any (for tests).
    pub fn ready(&self) -> Option<u32> {
        self.lock().as_ref().and_then(|(r, _)| r.child.id())
    }

    /// Spawns a spare in the background unless one is waiting or on its way.
    fn refill(self: &Arc<Self>) {
        if self.lock().is_some() || self.filling.swap(true, Ordering::SeqCst) {
            return;
        }
        let spares = self.clone();
        // Fork and exec block the calling thread (the parent waits for the child's exec):
        // on the blocking pool, not on a runtime worker that has applies to serve.
        tokio::task::spawn_blocking(move || {
            let n = spares.seq.fetch_add(1, Ordering::Relaxed);
            let log = spares.dir.join(format!("spare-{n}.log"));
            match spawn_runner(&spares.runner_path, &log) {
                Ok(runner) => *spares.lock() = Some((runner, log)),
                Err(e) => tracing::warn!(error = %e, "cannot spawn a spare wasm runner"),
            }
            spares.filling.store(false, Ordering::SeqCst);
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Runner, PathBuf)>> {
        self.spare.lock().unwrap_or_else(|p| p.into_inner())
    }
}
