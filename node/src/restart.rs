//! Restart policy and drift for long-running workloads. The monitor ([`crate::recovery`])
//! notices a replica that stopped behind the node's back — its process exited, its container
//! was removed by hand, its WASM instance trapped — and this module decides, from the
//! workload's restart policy, whether and when it is installed again:
//!
//! - `Always` (the default) and Compose's `unless-stopped`: every stop;
//! - `OnFailure`: a non-zero exit or a vanished instance, not an exit 0;
//! - `Never`: it stays Failed.
//!
//! The first restart after a run that lasted is immediate (drift is repaired at once); each
//! further consecutive failure doubles the pause, from `restart_backoff_base` (10 s) up to
//! `restart_backoff_max` (5 min), as Kubernetes does. While it waits the replica is
//! `CrashLoopBackOff`, with the next attempt's time and the last error. A replica that then
//! runs for [`STABLE_AFTER`] starts afresh. The counters are kept in the store beside the
//! replica, so a node restart neither forgets the backoff nor restarts a crash loop at once.

use std::time::Duration;

use mesh_protocol::spec::RestartPolicy;
use mesh_protocol::{Outcome, Phase, Step};
use mesh_runtime::now_millis;
use serde::{Deserialize, Serialize};

use crate::service::{Error, Node};
use crate::store::{Desired, Observed};

/// A replica that has run this long since its last restart is no longer in a crash loop.
pub const STABLE_AFTER: Duration = Duration::from_secs(600);

/// Restarts of a long-running replica by its node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartState {
    /// Failures in a row (reset once a restart ran for [`STABLE_AFTER`]).
    pub failures: u32,
    /// Restarts by the node over the replica's life.
    pub total: u32,
    /// When the next restart is due (Unix ms), while in `CrashLoopBackOff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
    /// When the node last restarted it (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<u64>,
}

impl RestartState {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Whether `policy` restarts a replica that stopped with `exit_code` (`None`: it vanished or
/// its engine reported it failed).
pub fn wanted(policy: RestartPolicy, exit_code: Option<i32>) -> bool {
    match policy {
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure => exit_code != Some(0),
        RestartPolicy::Never => false,
    }
}

/// The pause before restart number `failures` in a row: none for the first, then `base`
/// doubling per failure, at most `max`.
pub fn backoff(failures: u32, base: Duration, max: Duration) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(failures - 2).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

impl Node {
    /// After the monitor's look at a long-running replica: restarts it when its policy says
    /// so and its backoff is over, or puts it in `CrashLoopBackOff` until then. Caller holds
    /// the workload lock. Returns whether `observed` changed.
    pub(crate) async fn restart_if_due(
        &self,
        desired: &Desired,
        observed: &mut Observed,
    ) -> Result<bool, Error> {
        let spec = &desired.spec;
        if spec.runs_to_completion() {
            return Ok(false);
        }
        let Some(replica) = observed.current().cloned() else {
            return Ok(false);
        };
        let now = now_millis();
        let state = &mut observed.restart;
        if replica.phase == Phase::Running {
            let stable = state
                .restarted_at
                .is_some_and(|at| now.saturating_sub(at) >= STABLE_AFTER.as_millis() as u64);
            // Running again (an apply reinstalled it, or a restart took): no restart pending;
            // a long enough run ends the crash loop.
            let pending = state.retry_at.take().is_some();
            if stable && state.failures > 0 {
                state.failures = 0;
                return Ok(true);
            }
            return Ok(pending);
        }
        let stopped = matches!(replica.phase, Phase::Failed | Phase::CrashLoopBackOff);
        // Only what ran: a replica that never deployed is the apply's failure to report (but
        // a restart that failed to deploy is part of the crash loop).
        let ran = replica.handle.is_some() || state.total > 0;
        if !stopped || !ran || !wanted(spec.restart_policy, replica.exit_code) {
            return Ok(false);
        }
        let reason = replica
            .error
            .clone()
            .unwrap_or_else(|| "stopped".to_string());
        let due = match state.retry_at {
            Some(at) => now >= at,
            None => {
                state.failures += 1;
                let config = self.controller().config();
                let pause = backoff(
                    state.failures,
                    config.restart_backoff_base,
                    config.restart_backoff_max,
                );
                if pause.is_zero() {
                    true
                } else {
                    state.retry_at = Some(now + pause.as_millis() as u64);
                    let message = format!(
                        "back-off {}: restart {} of a replica that keeps failing ({reason})",
                        humantime::format_duration(pause),
                        state.total + 1
                    );
                    if let Some(r) = observed.replicas.first_mut() {
                        r.phase = Phase::CrashLoopBackOff;
                        r.error = Some(message.clone());
                    }
                    self.event(
                        &spec.id(),
                        &replica.version,
                        Step::Retry,
                        Outcome::Failed,
                        Some(&replica.engine),
                        message,
                    );
                    false
                }
            }
        };
        if !due {
            return Ok(state.retry_at.is_some());
        }
        state.retry_at = None;
        state.total += 1;
        state.restarted_at = Some(now);
        let total = state.total;
        self.event(
            &spec.id(),
            &replica.version,
            Step::Retry,
            Outcome::Ok,
            Some(&replica.engine),
            format!(
                "restarting ({:?} policy, restart {total}): {reason}",
                spec.restart_policy
            ),
        );
        tracing::info!(workload = %spec.id(), restart = total, %reason, "restarting a replica that stopped");
        self.converge(spec, observed, true).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_says_which_stops_restart() {
        use RestartPolicy::*;
        assert!(wanted(Always, Some(0)) && wanted(Always, None));
        assert!(wanted(UnlessStopped, Some(3)));
        assert!(wanted(OnFailure, Some(1)) && wanted(OnFailure, None));
        assert!(!wanted(OnFailure, Some(0)));
        assert!(!wanted(Never, Some(1)) && !wanted(Never, None));
    }

    #[test]
    fn the_first_restart_is_immediate_then_the_pause_doubles_up_to_the_cap() {
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(300));
        let pauses: Vec<u64> = (1..=8).map(|n| backoff(n, base, max).as_secs()).collect();
        assert_eq!(pauses, vec![0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(u32::MAX, base, max), max);
    }
}
