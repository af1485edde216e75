//! Instance status as the engine reports it: from the live supervision state of runners this
//! engine value started, or from the files the runner keeps for instances adopted after a
//! node restart (record + status file + whether the recorded runner process still exists),
//! and what a run's end means (final event or exit status → instance state; restart policy).

use std::io;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use mesh_protocol::spec::RestartPolicy;
use mesh_runtime::engine::{Health, InstanceState, InstanceStatus, Recovered};
use rustix::process::Signal;

use crate::logs;
use crate::protocol::Event;
use crate::state::{self, Paths, Proc, Record, RunPhase, RunStatus};
use crate::supervise::{kill_group, Run, KILLED_CODE, STOPPED_CODE};
use crate::StartInfo;

/// How often a detached runner is checked while waiting for it to end.
const DETACHED_POLL: Duration = Duration::from_millis(20);

fn start_detail(info: Option<StartInfo>) -> String {
    match info {
        Some(StartInfo {
            compile_ms,
            cached: true,
        }) => {
            format!("running (module loaded from the compile cache in {compile_ms:.1} ms)")
        }
        Some(StartInfo { compile_ms, .. }) => {
            format!("running (module compiled in {compile_ms:.1} ms)")
        }
        None => "running".to_string(),
    }
}

/// Status of an instance whose runner this engine value supervises.
pub fn live_status(run: &Run, info: Option<StartInfo>, starts: u32) -> InstanceStatus {
    let restarts = starts.saturating_sub(1);
    let (state, health, detail) = match run {
        Run::Starting => (
            InstanceState::Running,
            Health::Starting,
            "compiling the module".to_string(),
        ),
        Run::Running => (InstanceState::Running, Health::NoCheck, start_detail(info)),
        Run::Backoff { reason } => (
            InstanceState::Running,
            Health::Unhealthy {
                reason: reason.clone(),
            },
            format!("crashed: {reason}"),
        ),
        Run::Done { state, detail } => (state.clone(), Health::NoCheck, detail.clone()),
    };
    InstanceStatus {
        state,
        health,
        restarts,
        detail,
    }
}

/// The state a final status file records, if it is final.
fn final_state(st: &RunStatus) -> Option<(InstanceState, String)> {
    let message = st.message.clone().unwrap_or_default();
    Some(match st.phase {
        RunPhase::Running => return None,
        RunPhase::Exited => {
            let code = st.code.unwrap_or(0);
            (
                InstanceState::Exited { code },
                format!("exited with code {code}"),
            )
        }
        RunPhase::Trapped | RunPhase::Killed | RunPhase::Failed => (
            InstanceState::Failed {
                reason: message.clone(),
            },
            message,
        ),
        RunPhase::Stopped => {
            let code = st.code.unwrap_or(STOPPED_CODE);
            let detail = if code == KILLED_CODE {
                "killed after the stop grace period"
            } else {
                "stopped by the node"
            };
            (InstanceState::Exited { code }, detail.to_string())
        }
    })
}

/// The runner's status file, if it belongs to `runner`.
fn current_status(runner: Proc, paths: &Paths) -> Option<RunStatus> {
    state::read_json::<RunStatus>(&paths.status())
        .ok()
        .flatten()
        .filter(|s| s.pid == runner.pid)
}

fn status(state: InstanceState, health: Health, record: &Record, detail: String) -> InstanceStatus {
    InstanceStatus {
        state,
        health,
        restarts: record.starts.saturating_sub(1),
        detail,
    }
}

/// What the files say about an instance no task of this engine value supervises. `None`
/// when the runner is dead and left no final status (nothing is known).
fn from_files(record: &Record, paths: &Paths) -> Option<InstanceStatus> {
    let Some(runner) = record.runner else {
        return Some(status(
            InstanceState::Created,
            Health::NoCheck,
            record,
            "installed, not started".to_string(),
        ));
    };
    let recorded = current_status(runner, paths);
    if let Some((state, detail)) = recorded.as_ref().and_then(final_state) {
        return Some(status(state, Health::NoCheck, record, detail));
    }
    if !runner.alive() {
        return None;
    }
    Some(match recorded {
        Some(st) => status(
            InstanceState::Running,
            Health::NoCheck,
            record,
            format!(
                "{} (adopted runner pid {})",
                start_detail(info_of(&st)),
                runner.pid
            ),
        ),
        None => status(
            InstanceState::Running,
            Health::Starting,
            record,
            format!("compiling the module (adopted runner pid {})", runner.pid),
        ),
    })
}

fn info_of(st: &RunStatus) -> Option<StartInfo> {
    Some(StartInfo {
        compile_ms: st.compile_ms?,
        cached: st.cached?,
    })
}

/// Status of an adopted (or never started) instance, from its files.
pub fn file_status(record: &Record, paths: &Paths) -> InstanceStatus {
    from_files(record, paths).unwrap_or_else(|| {
        let reason = "runner died without recording how the guest ended".to_string();
        status(
            InstanceState::Failed {
                reason: reason.clone(),
            },
            Health::NoCheck,
            record,
            reason,
        )
    })
}

/// Recovery after a node restart: a live runner (same pid and start time) is adopted with
/// the status it recorded; a dead one is reported from its recorded end; a dead one that
/// recorded nothing is gone.
pub fn recover(record: &Record, paths: &Paths) -> Recovered {
    match from_files(record, paths) {
        Some(st) => Recovered::Adopted(st),
        None => Recovered::Gone,
    }
}

/// Stops a runner this engine value has no pipe to: SIGTERM to its group (the runner ends
/// at once), up to `grace` for it to go, then SIGKILL. Records the stop.
pub async fn stop_detached(runner: Proc, grace: Duration, paths: &Paths) -> Result<(), String> {
    kill_group(runner.pid, Signal::TERM);
    let code = if wait_gone(runner, grace).await {
        STOPPED_CODE
    } else {
        kill_group(runner.pid, Signal::KILL);
        if !wait_gone(runner, super::supervise::KILL_WAIT).await {
            return Err(format!("runner {} did not end after SIGKILL", runner.pid));
        }
        KILLED_CODE
    };
    if current_status(runner, paths)
        .and_then(|s| final_state(&s))
        .is_none()
    {
        let st = RunStatus {
            phase: RunPhase::Stopped,
            pid: runner.pid,
            code: Some(code),
            message: None,
            compile_ms: None,
            cached: None,
            at: crate::logs::now_millis(),
        };
        state::write_json(&paths.status(), &st).map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn wait_gone(runner: Proc, within: Duration) -> bool {
    let until = Instant::now() + within;
    loop {
        if !runner.alive() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(DETACHED_POLL).await;
    }
}

/// The instance state after a run, and the status to record when the runner could not.
pub fn outcome(
    last: Option<Event>,
    status: io::Result<ExitStatus>,
    stopped: bool,
    pid: u32,
) -> (InstanceState, String, Option<RunStatus>) {
    use std::os::unix::process::ExitStatusExt;
    let recorded = |phase, code, message: &str| RunStatus {
        phase,
        pid,
        code,
        message: Some(message.to_string()),
        compile_ms: None,
        cached: None,
        at: logs::now_millis(),
    };
    match last {
        Some(Event::Exited { code }) => (
            InstanceState::Exited { code },
            format!("exited with code {code}"),
            None,
        ),
        Some(Event::Trapped { message }) => (
            InstanceState::Failed {
                reason: message.clone(),
            },
            message,
            None,
        ),
        Some(Event::Failed { message }) => (
            InstanceState::Failed {
                reason: message.clone(),
            },
            message,
            None,
        ),
        Some(_) => (
            InstanceState::Exited { code: STOPPED_CODE },
            "stopped by the node".to_string(),
            None,
        ),
        None => {
            let (signal, code) = match &status {
                Ok(s) => (s.signal(), s.code()),
                Err(_) => (None, None),
            };
            if stopped {
                let detail = "killed after the stop grace period".to_string();
                let st = recorded(RunPhase::Stopped, Some(KILLED_CODE), &detail);
                return (
                    InstanceState::Exited { code: KILLED_CODE },
                    detail,
                    Some(st),
                );
            }
            let reason = match (signal, code, status) {
                (Some(sig), _, _) => format!("runner killed by signal {sig}"),
                (None, Some(c), _) => {
                    format!("runner exited with code {c} without reporting how the guest ended")
                }
                (_, _, Err(e)) => format!("runner lost: {e}"),
                _ => "runner ended without reporting how the guest ended".to_string(),
            };
            let st = recorded(RunPhase::Killed, None, &reason);
            (
                InstanceState::Failed {
                    reason: reason.clone(),
                },
                reason,
                Some(st),
            )
        }
    }
}

/// Whether the restart policy restarts a long-running Function after this outcome.
pub fn should_restart(
    policy: RestartPolicy,
    runs_to_completion: bool,
    state: &InstanceState,
) -> bool {
    if runs_to_completion {
        return false;
    }
    match policy {
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure => !matches!(state, InstanceState::Exited { code: 0 }),
        RestartPolicy::Never => false,
    }
}
