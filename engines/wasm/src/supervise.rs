//! Runners started by this engine value: spawning one in its own process group, pumping
//! its events into the in-memory log ring and status, restarting it under the workload's
//! restart policy, and stopping it.
//!
//! One task per instance owns the child and its stdout; the engine talks to it through the
//! shared [`Live`] (a std mutex, never held across an await) and the `done` watch channel.
//! Dropping the engine aborts these tasks, which closes the pipes without killing the
//! runners: that is what a node restart looks like to them.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mesh_protocol::api::LogStream;
use mesh_runtime::InstanceState;
use rustix::process::{kill_process_group, Pid, Signal};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{watch, Notify};

use crate::logs::{self, LineSplitter, LogRing, MAX_RING_LINES};
use crate::observe::{outcome, should_restart};
use crate::protocol::{self, Event, Request, Start};
use crate::spare::{spawn_runner, Runner, Spares};
use crate::state::{self, Paths, Proc, Record};
use crate::StartInfo;

/// First pause before restarting a runner under the restart policy; doubles per restart.
pub const RESTART_BACKOFF_FIRST: Duration = Duration::from_millis(200);
/// Longest pause between restarts.
pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A run longer than this resets the backoff.
pub const RESTART_BACKOFF_RESET: Duration = Duration::from_secs(10);
/// How long to wait for a runner to die after SIGKILL.
pub const KILL_WAIT: Duration = Duration::from_secs(5);
/// Exit code reported for a guest stopped by the node (128 + SIGTERM, as containers).
pub const STOPPED_CODE: i32 = 143;
/// Exit code reported for a runner killed after the stop grace period (128 + SIGKILL).
pub const KILLED_CODE: i32 = 137;

/// What is needed to (re)spawn the runner of one instance.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub runner_path: PathBuf,
    pub cache_dir: PathBuf,
    pub module_path: PathBuf,
    pub paths: Paths,
    pub epoch_tick_ms: u64,
    /// The warm runner a first start takes.
    pub spares: Arc<Spares>,
    /// Told the instance id when its runner ends for good without the node asking.
    pub ended: tokio::sync::broadcast::Sender<String>,
}

/// Where the instance's current run is.
#[derive(Debug, Clone, PartialEq)]
pub enum Run {
    /// Runner spawned, module compiling.
    Starting,
    Running,
    /// Ended; waiting to restart under the restart policy.
    Backoff {
        reason: String,
    },
    Done {
        state: InstanceState,
        detail: String,
    },
}

#[derive(Debug)]
pub struct LiveState {
    pub run: Run,
    pub ring: LogRing,
    stdout: LineSplitter,
    stderr: LineSplitter,
    pub record: Record,
    pub stop_requested: bool,
    pub start_info: Option<StartInfo>,
    /// The end was sent on `ended` already (at the final frame).
    reported: bool,
}

/// An instance whose runner this engine value spawned.
#[derive(Debug)]
pub struct Live {
    state: Mutex<LiveState>,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    done: watch::Sender<bool>,
    wake: Notify,
    pub ctx: Ctx,
}

impl Live {
    pub fn new(ctx: Ctx, record: Record) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(LiveState {
                run: Run::Starting,
                ring: LogRing::new(MAX_RING_LINES),
                stdout: LineSplitter::default(),
                stderr: LineSplitter::default(),
                record,
                stop_requested: false,
                start_info: None,
                reported: false,
            }),
            stdin: tokio::sync::Mutex::new(None),
            done: watch::channel(false).0,
            wake: Notify::new(),
            ctx,
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, LiveState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once supervision ended (no runner, no restart pending).
    pub fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    fn on_event(&self, event: &Event) {
        let mut st = self.lock();
        match event {
            Event::Started { compile_ms, cached } => {
                st.run = Run::Running;
                st.start_info = Some(StartInfo {
                    compile_ms: *compile_ms,
                    cached: *cached,
                });
            }
            Event::Stdout { data } => {
                for l in st.stdout.push(data.as_bytes()) {
                    st.ring.push(logs::line(LogStream::Stdout, l));
                }
            }
            Event::Stderr { data } => {
                for l in st.stderr.push(data.as_bytes()) {
                    st.ring.push(logs::line(LogStream::Stderr, l));
                }
            }
            _ => {
                let rest: Vec<_> = [
                    (LogStream::Stdout, st.stdout.finish()),
                    (LogStream::Stderr, st.stderr.finish()),
                ]
                .into_iter()
                .filter_map(|(s, l)| l.map(|l| logs::line(s, l)))
                .collect();
                for l in rest {
                    st.ring.push(l);
                }
            }
        }
    }

    /// The guest ended: report it now rather than after the runner process is torn down and
    /// reaped, unless the restart policy will restart it or the node asked for the end. The
    /// state is set and the end sent on `ended` (the node's events) at once: the runner's
    /// exit and reap took longer than the guest's run in a trace of the WASM bench
    /// (docs/benchmarks.md). `is_done` still waits for the reap.
    fn on_final(&self, event: &Event) {
        let mut st = self.lock();
        let (state, detail, _) = outcome(
            Some(event.clone()),
            Ok(ExitStatus::default()),
            st.stop_requested,
            0,
        );
        if st.stop_requested
            || !should_restart(
                st.record.restart_policy,
                st.record.runs_to_completion,
                &state,
            )
        {
            st.run = Run::Done { state, detail };
            drop(st);
            self.report_end();
        }
    }

    /// Tells `ended` (the node's events) the instance ended on its own, once; an end the
    /// node asked for is not told.
    fn report_end(&self) {
        let id = {
            let mut st = self.lock();
            let unreported = !st.stop_requested && !st.reported;
            st.reported = true;
            unreported.then(|| st.record.id.clone())
        };
        if let Some(id) = id {
            // Nobody may be following (no receiver): that is fine.
            let _ = self.ctx.ended.send(id);
        }
    }

    /// The run has ended (the runner may still be exiting).
    pub fn ended(&self) -> bool {
        matches!(self.lock().run, Run::Done { .. })
    }

    /// Logs a line of the node's own (runner deaths) to the ring and the log file.
    fn note(&self, text: &str) {
        let line = logs::line(LogStream::Stderr, text);
        if let Err(e) = logs::append_line(&self.ctx.paths.log(), &line) {
            tracing::warn!(error = %e, "cannot append to the wasm instance log");
        }
        self.lock().ring.push(line);
    }
}

/// Spawns the runner for `live`'s record, sends Start and records the process.
pub async fn spawn(live: &Arc<Live>) -> io::Result<(Child, ChildStdout)> {
    let ctx = &live.ctx;
    let record = live.lock().record.clone();
    let _ = std::fs::remove_file(ctx.paths.status());
    let diag = ctx.paths.dir.join("runner.log");
    // A first start takes the warm spare; a restart appends to the log it has.
    let warm = if record.starts == 0 {
        ctx.spares.take(&diag)
    } else {
        None
    };
    let Runner {
        mut child,
        mut stdin,
        stdout,
    } = match warm {
        Some(runner) => runner,
        None => spawn_runner(&ctx.runner_path, &diag)?,
    };
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("runner exited at once"))?;
    let proc = Proc::current(pid).unwrap_or(Proc { pid, start_time: 0 });
    let start = Start {
        name: record.name.clone(),
        module_path: ctx.module_path.clone(),
        digest: record.digest,
        args: record.args.clone(),
        env: record.env.clone(),
        memory_limit_bytes: record.memory_limit_bytes,
        timeout_ms: record.timeout_ms,
        epoch_tick_ms: ctx.epoch_tick_ms,
        scratch_dir: ctx.paths.scratch(),
        cache_dir: ctx.cache_dir.clone(),
        log_path: Some(ctx.paths.log()),
        status_path: Some(ctx.paths.status()),
    };
    if let Err(e) = protocol::write_frame_async(&mut stdin, &Request::Start(Box::new(start))).await
    {
        let _ = child.start_kill();
        return Err(io::Error::new(e.kind(), format!("cannot send Start: {e}")));
    }
    *live.stdin.lock().await = Some(stdin);
    let record = {
        let mut st = live.lock();
        st.run = Run::Starting;
        st.record.runner = Some(proc);
        st.record.starts += 1;
        st.record.clone()
    };
    state::write_json(&ctx.paths.record(), &record)?;
    Ok((child, stdout))
}

/// Reads events until the runner closes stdout, then reaps it. Returns the final event
/// (if the runner sent one) and its exit status.
async fn pump(
    live: &Live,
    mut child: Child,
    mut stdout: ChildStdout,
) -> (Option<Event>, io::Result<ExitStatus>) {
    let mut last = None;
    loop {
        match protocol::read_frame_async::<Event>(&mut stdout).await {
            Ok(Some(event)) => {
                live.on_event(&event);
                if event.is_final() {
                    live.on_final(&event);
                    last = Some(event);
                }
            }
            Ok(None) => break,
            Err(e) => {
                live.note(&format!("runner protocol error: {e}; killing the runner"));
                let _ = child.start_kill();
                break;
            }
        }
    }
    (last, child.wait().await)
}

/// Owns the runner of `live` until it ends for good; restarts it under the restart policy.
pub async fn supervise(live: Arc<Live>, mut child: Child, mut stdout: ChildStdout) {
    let mut backoff = RESTART_BACKOFF_FIRST;
    loop {
        let began = Instant::now();
        let pid = child.id().unwrap_or(0);
        let (last, status) = pump(&live, child, stdout).await;
        *live.stdin.lock().await = None;
        let stopped = live.lock().stop_requested;
        let (state, detail, record) = outcome(last, status, stopped, pid);
        if let Some(st) = record {
            live.note(&detail);
            if let Err(e) = state::write_json(&live.ctx.paths.status(), &st) {
                tracing::warn!(error = %e, "cannot record the runner's end");
            }
        }
        let (policy, rtc) = {
            let st = live.lock();
            (st.record.restart_policy, st.record.runs_to_completion)
        };
        if stopped || !should_restart(policy, rtc, &state) {
            live.lock().run = Run::Done { state, detail };
            break;
        }
        if began.elapsed() > RESTART_BACKOFF_RESET {
            backoff = RESTART_BACKOFF_FIRST;
        }
        live.lock().run = Run::Backoff {
            reason: format!("{detail}; restarting in {} ms", backoff.as_millis()),
        };
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = live.wake.notified() => {}
        }
        backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
        if live.lock().stop_requested {
            live.lock().run = Run::Done {
                state: InstanceState::Exited { code: STOPPED_CODE },
                detail: "stopped by the node while waiting to restart".to_string(),
            };
            break;
        }
        match spawn(&live).await {
            Ok((c, s)) => {
                child = c;
                stdout = s;
            }
            Err(e) => {
                let reason = format!("cannot restart the runner: {e}");
                live.note(&reason);
                live.lock().run = Run::Done {
                    state: InstanceState::Failed {
                        reason: reason.clone(),
                    },
                    detail: reason,
                };
                break;
            }
        }
    }
    // Reported before `done`, so that whoever saw the runner reaped saw its report too.
    live.report_end();
    live.done.send_replace(true);
}

/// Waits up to `within` for supervision to end; true if it did.
pub async fn wait_done(live: &Live, within: Duration) -> bool {
    let mut rx = live.done.subscribe();
    let done = tokio::time::timeout(within, rx.wait_for(|d| *d)).await;
    done.is_ok()
}

/// Asks the guest to stop (a `Stop` frame: it is interrupted at its next epoch tick), waits
/// up to `grace`, then kills the runner's process group.
pub async fn stop(live: &Live, grace: Duration) -> Result<(), String> {
    if live.is_done() {
        return Ok(());
    }
    let pid = {
        let mut st = live.lock();
        st.stop_requested = true;
        st.record.runner.map(|p| p.pid)
    };
    live.wake.notify_one();
    if let Some(stdin) = live.stdin.lock().await.as_mut() {
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            protocol::write_frame_async(stdin, &Request::Stop),
        )
        .await;
    }
    if wait_done(live, grace).await {
        return Ok(());
    }
    if let Some(pid) = pid {
        kill_group(pid, Signal::KILL);
    }
    if wait_done(live, KILL_WAIT).await {
        Ok(())
    } else {
        Err(format!("runner {pid:?} did not end after SIGKILL"))
    }
}

/// Signals a runner's process group (its pid: runners lead their own group).
pub fn kill_group(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process_group(pid, signal);
    }
}
