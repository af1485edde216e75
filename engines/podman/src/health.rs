//! Health checks the engine runs itself where Podman cannot.
//!
//! Podman runs a container's health check from a systemd timer. On a host without systemd the
//! timer never fires and the container stays `starting` for ever; and Podman 4.3 gives checks
//! made from a liveness probe the on-failure action `restart`, which in a one-container pod
//! cannot restart (the pod's exit policy has stopped its infra container) and leaves the
//! workload dead. So when Podman's own results are overdue, the engine runs the container's
//! check command itself with an exec, which triggers no on-failure action, and keeps the
//! streak in memory with Docker's rules: `starting` until a pass, `healthy` after a pass,
//! `unhealthy` after `retries` consecutive failures outside the start period. Deciding what
//! an unhealthy workload means stays with the lifecycle controller.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt as _;
use podman_api::conn::TtyChunk;
use podman_api::models::InspectContainerData;
use podman_api::opts::{ExecCreateOpts, ExecStartOpts};

use crate::render::shell_join;
use crate::PodmanEngine;

/// Most containers whose streak is remembered; the oldest entry goes first.
const MAX_TRACKED: usize = 1024;
/// Most bytes of check output kept.
const MAX_OUTPUT: usize = 4096;
/// Podman's defaults for a check that states no interval, timeout or retries.
const DEFAULT_INTERVAL_MS: i64 = 30_000;
const DEFAULT_TIMEOUT_MS: i64 = 30_000;
const DEFAULT_RETRIES: u32 = 3;

/// Streaks of the checks the engine ran, by `<container name>@<start time>`.
#[derive(Debug, Default)]
pub(crate) struct OwnChecks {
    streaks: Mutex<HashMap<String, Streak>>,
}

#[derive(Debug, Clone, Default)]
struct Streak {
    last_run_ms: i64,
    failures: u32,
    passed: bool,
    output: String,
}

impl OwnChecks {
    /// Forgets the containers of a removed pod.
    pub(crate) fn forget_pod(&self, pod: &str) {
        let prefix = format!("{pod}-");
        self.lock().retain(|key, _| !key.starts_with(&prefix));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Streak>> {
        self.streaks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A container's check as Podman configured it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Check {
    script: String,
    interval_ms: i64,
    timeout_ms: i64,
    retries: u32,
    start_period_ms: i64,
}

fn check_of(c: &InspectContainerData) -> Option<Check> {
    let hc = c.config.as_ref()?.healthcheck.as_ref()?;
    let test = hc.test.as_ref()?;
    let script = match test.first().map(String::as_str) {
        None | Some("NONE") => return None,
        Some("CMD-SHELL") => test[1..].join(" "),
        Some("CMD") => shell_join(&test[1..]),
        Some(_) => shell_join(test),
    };
    let ms =
        |ns: Option<i64>, default: i64| ns.filter(|&n| n > 0).map_or(default, |n| n / 1_000_000);
    Some(Check {
        script,
        interval_ms: ms(hc.interval, DEFAULT_INTERVAL_MS),
        timeout_ms: ms(hc.timeout, DEFAULT_TIMEOUT_MS),
        retries: hc
            .retries
            .and_then(|r| u32::try_from(r).ok())
            .filter(|&r| r > 0)
            .unwrap_or(DEFAULT_RETRIES),
        start_period_ms: ms(hc.start_period, 0),
    })
}

/// Whether Podman's own timer ran the check recently enough.
fn podman_checks_run(c: &InspectContainerData, check: &Check, now_ms: i64) -> bool {
    let last = c
        .state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.log.as_ref())
        .and_then(|log| log.last())
        .and_then(|l| l.start.as_deref())
        .and_then(mesh_runtime::time::parse_rfc3339_millis);
    last.is_some_and(|at| now_ms - at as i64 <= 2 * check.interval_ms + check.timeout_ms)
}

impl PodmanEngine {
    /// Health status (`starting`, `healthy`, `unhealthy`) and last output of a running
    /// container, from the engine's own check when Podman's are overdue; `None` to use
    /// Podman's.
    pub(crate) async fn own_health(
        &self,
        c: &InspectContainerData,
        now_ms: i64,
    ) -> Option<(String, String)> {
        let check = check_of(c)?;
        if podman_checks_run(c, &check, now_ms) {
            return None;
        }
        let name = c.name.clone()?;
        let started = c
            .state
            .as_ref()
            .and_then(|s| s.started_at)
            .map_or(now_ms, |t| t.timestamp_millis());
        let key = format!("{name}@{started}");
        let mut streak = self.checks.lock().get(&key).cloned().unwrap_or(Streak {
            last_run_ms: started,
            ..Streak::default()
        });
        if now_ms - streak.last_run_ms >= check.interval_ms {
            let (passed, output) = self.exec_check(&name, &check).await;
            streak.last_run_ms = now_ms;
            streak.output = output;
            if passed {
                streak.failures = 0;
                streak.passed = true;
            } else if now_ms - started >= check.start_period_ms {
                streak.failures += 1;
            }
            let mut streaks = self.checks.lock();
            if streaks.len() >= MAX_TRACKED && !streaks.contains_key(&key) {
                let oldest = streaks
                    .iter()
                    .min_by_key(|(_, s)| s.last_run_ms)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    streaks.remove(&oldest);
                }
            }
            streaks.insert(key, streak.clone());
        }
        let status = if streak.failures >= check.retries {
            "unhealthy"
        } else if streak.passed {
            "healthy"
        } else {
            "starting"
        };
        Some((status.to_string(), streak.output))
    }

    /// Runs the check command in the container: whether it passed, and its output.
    async fn exec_check(&self, container: &str, check: &Check) -> (bool, String) {
        let containers = self.podman.containers();
        let target = containers.get(container);
        let create = ExecCreateOpts::builder()
            .command(["/bin/sh", "-c", check.script.as_str()])
            .attach_stdout(true)
            .attach_stderr(true)
            .build();
        let start = ExecStartOpts::builder().build();
        let run = async {
            let exec = target.create_exec(&create).await?;
            let mut output = Vec::new();
            if let Some(mut stream) = exec.start(&start).await? {
                while let Some(chunk) = stream.next().await {
                    if let TtyChunk::StdOut(b) | TtyChunk::StdErr(b) = chunk? {
                        output.extend_from_slice(
                            &b[..b.len().min(MAX_OUTPUT.saturating_sub(output.len()))],
                        );
                    }
                }
            }
            // The output ends slightly before Podman records the exit code.
            let mut code = None;
            for _ in 0..50 {
                let info = exec.inspect().await?;
                if info.get("Running").and_then(|r| r.as_bool()) == Some(false) {
                    code = info.get("ExitCode").and_then(|c| c.as_i64());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, podman_api::Error>((code, String::from_utf8_lossy(&output).trim().to_string()))
        };
        let limit = Duration::from_millis(u64::try_from(check.timeout_ms).unwrap_or(0))
            + Duration::from_secs(5);
        match tokio::time::timeout(limit, run).await {
            Ok(Ok((Some(0), output))) => (true, output),
            Ok(Ok((code, output))) if output.is_empty() => {
                (false, format!("check failed with exit code {code:?}"))
            }
            Ok(Ok((_, output))) => (false, output),
            Ok(Err(e)) => (false, format!("cannot run the check: {e}")),
            Err(_) => (false, format!("check timed out after {limit:?}")),
        }
    }
}
