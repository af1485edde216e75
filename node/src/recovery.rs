//! Keeping the store and the engines in agreement: re-adoption after a restart and the
//! periodic monitor that notices instances that exited or vanished (and, for jobs, collects
//! them and starts retries: see `crate::jobs`).

use std::time::Duration;

use futures::StreamExt as _;

use mesh_protocol::{Outcome, Phase, Step, WorkloadId};
use mesh_runtime::{now_millis, InstanceState, InstanceStatus, Recovered};
use tokio_util::sync::CancellationToken;

use crate::service::Error;
use crate::service::Node;
use crate::store::{Desired, Pending, ReplicaRecord};

/// Workloads the monitor looks at concurrently (a job's collect or retry takes a while).
pub const MONITOR_CONCURRENCY: usize = 8;

/// What an observed instance status means for its replica.
fn apply_status(replica: &mut ReplicaRecord, status: &InstanceStatus, runs_to_completion: bool) {
    replica.restarts = status.restarts;
    match &status.state {
        InstanceState::Running | InstanceState::Created => {
            replica.phase = Phase::Running;
            replica.error = None;
        }
        InstanceState::Exited { code } => {
            replica.exit_code = Some(*code);
            if *code == 0 && runs_to_completion {
                replica.phase = Phase::Succeeded;
                replica.error = None;
            } else {
                replica.phase = Phase::Failed;
                replica.error = Some(format!("exited with code {code}"));
            }
        }
        InstanceState::Failed { reason } => {
            replica.phase = Phase::Failed;
            replica.error = Some(reason.clone());
        }
        InstanceState::Missing => {
            replica.phase = Phase::Failed;
            replica.error = Some("the engine no longer knows the instance".to_string());
        }
    }
    replica.updated_at = now_millis();
}

impl Node {
    /// Finishes what a crash interrupted and re-adopts every instance through `recover`.
    /// Called once at start, after the first fingerprint of the engines.
    pub async fn recover_all(&self) -> Result<RecoverySummary, Error> {
        let mut summary = RecoverySummary::default();
        for (id, pending) in self.store().list_pending()? {
            if let Pending::Delete { .. } = pending {
                tracing::info!(workload = %id, "finishing an interrupted delete");
                self.finish_delete(&id).await?;
                summary.deleted += 1;
            }
        }
        for desired in self.store().list_desired()? {
            let id = desired.spec.id();
            match self.recover_one(&id).await {
                Ok(Outcome::Ok) => summary.adopted += 1,
                Ok(Outcome::Failed) => summary.redeployed += 1,
                Err(e) => {
                    tracing::error!(workload = %id, error = %e, "recovery failed");
                    summary.failed += 1;
                }
            }
        }
        Ok(summary)
    }

    /// `Ok` when the instances were adopted, `Failed` when the workload had to be (re)deployed.
    async fn recover_one(&self, id: &WorkloadId) -> Result<Outcome, Error> {
        let lock = self.workload_lock(id);
        let _guard = lock.lock().await;
        let store = self.store();
        let Some(desired) = store.desired(id)? else {
            return Ok(Outcome::Ok);
        };
        let spec = desired.spec.clone();
        let interrupted = store.list_pending()?.iter().any(|(p, _)| p == id);
        let mut observed = store.observed(id)?;
        let mut needs_deploy = observed.replicas.is_empty();
        let mut kept = Vec::new();
        for mut replica in std::mem::take(&mut observed.replicas) {
            if replica.job.is_some() {
                let replica_spec = store
                    .version(id, &replica.version)?
                    .unwrap_or_else(|| spec.clone());
                match self
                    .recover_job(&replica_spec, replica, &spec.version, interrupted)
                    .await?
                {
                    Some(r) => kept.push(r),
                    None => needs_deploy = true,
                }
                continue;
            }
            let Some(handle) = replica.handle.clone() else {
                // Failed before anything was installed: retried only if the apply was cut short.
                if replica.phase == Phase::Failed && !interrupted {
                    kept.push(replica);
                } else {
                    needs_deploy = true;
                }
                continue;
            };
            let replica_spec = store
                .version(id, &replica.version)?
                .unwrap_or_else(|| spec.clone());
            match self
                .controller()
                .recover(
                    &replica_spec,
                    &handle,
                    &crate::service::Recorder::quiet(store),
                )
                .await
            {
                Ok(Recovered::Adopted(status)) => {
                    self.event(
                        id,
                        &replica.version,
                        Step::Recover,
                        Outcome::Ok,
                        Some(&handle.engine),
                        format!(
                            "re-adopted instance {} ({:?})",
                            handle.instance, status.state
                        ),
                    );
                    if !replica.phase.is_settled() {
                        if replica.version == spec.version {
                            // Caught mid-deploy: carry the lifecycle on from where it stopped.
                            let rec = crate::service::Recorder::replica(
                                self,
                                replica.ordinal,
                                &replica.engine_reason,
                            );
                            let report =
                                self.controller().resume(&replica_spec, &handle, &rec).await;
                            replica.phase = report.phase;
                            replica.error = report.error;
                            replica.updated_at = mesh_runtime::now_millis();
                            kept.push(replica);
                        } else {
                            // A half-made instance of a version no longer wanted: remove it.
                            let _ = self
                                .controller()
                                .uninstall(
                                    &replica_spec,
                                    &handle,
                                    &crate::service::Recorder::quiet(store),
                                )
                                .await;
                            needs_deploy = true;
                        }
                        continue;
                    }
                    if matches!(replica.phase, Phase::Running | Phase::Unknown) {
                        apply_status(&mut replica, &status, replica_spec.runs_to_completion());
                    }
                    needs_deploy |= replica.version != spec.version;
                    kept.push(replica);
                }
                Ok(Recovered::Gone) => {
                    self.event(
                        id,
                        &replica.version,
                        Step::Recover,
                        Outcome::Failed,
                        Some(&handle.engine),
                        format!("instance {} is gone; reinstalling", handle.instance),
                    );
                    needs_deploy = true;
                }
                Err(e) => {
                    replica.phase = Phase::Unknown;
                    replica.error = Some(format!("cannot recover: {e}"));
                    self.event(
                        id,
                        &replica.version,
                        Step::Recover,
                        Outcome::Failed,
                        Some(&handle.engine),
                        e.to_string(),
                    );
                    kept.push(replica);
                }
            }
        }
        observed.replicas = kept;
        store.put_observed(id, &observed)?;
        if needs_deploy {
            self.converge(&spec, &mut observed, true).await?;
        }
        store.clear_pending(id)?;
        store.flush()?;
        self.notify(id);
        Ok(if needs_deploy {
            Outcome::Failed
        } else {
            Outcome::Ok
        })
    }

    /// Polls the status of every running replica once; records exits and disappearances, and
    /// advances job runs. Workloads are looked at concurrently, up to [`MONITOR_CONCURRENCY`].
    pub async fn monitor_once(&self) -> Result<(), Error> {
        let list = self.store().list_desired()?;
        let results: Vec<Result<(), Error>> = futures::stream::iter(list)
            .map(|desired| self.monitor_workload(desired, None))
            .buffer_unordered(MONITOR_CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Looks at one workload's replicas. The poll (`wait` None) skips a workload being
    /// applied or deleted (it is looked at next time); an engine's event waits up to `wait`
    /// for that to end, so an exit reported while the apply that started it is still
    /// answering is recorded then, not a poll period later.
    pub(crate) async fn monitor_workload(
        &self,
        desired: Desired,
        wait: Option<std::time::Duration>,
    ) -> Result<(), Error> {
        let id = desired.spec.id();
        let lock = self.workload_lock(&id);
        let _guard = match wait {
            None => match lock.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(()),
            },
            Some(wait) => match tokio::time::timeout(wait, lock.lock()).await {
                Ok(guard) => guard,
                Err(_) => return Ok(()),
            },
        };
        let mut observed = self.store().observed(&id)?;
        let mut changed = false;
        for replica in observed.replicas.iter_mut() {
            if replica.job.is_some() {
                let spec = self
                    .store()
                    .version(&id, &replica.version)?
                    .unwrap_or_else(|| desired.spec.clone());
                changed |= self.advance_job(&spec, replica).await?;
                continue;
            }
            if !matches!(replica.phase, Phase::Running | Phase::Unknown) {
                continue;
            }
            let Some(handle) = replica.handle.clone() else {
                continue;
            };
            let Some(engine) = self.registry().get(&handle.engine) else {
                continue;
            };
            let before = (replica.phase, replica.error.clone(), replica.restarts);
            match engine.status(&handle).await {
                Ok(status) => apply_status(replica, &status, desired.spec.runs_to_completion()),
                Err(e) => {
                    replica.phase = Phase::Unknown;
                    replica.error = Some(format!("engine {} unreachable: {e}", handle.engine));
                }
            }
            if (replica.phase, replica.error.clone(), replica.restarts) != before {
                changed = true;
                let outcome = if replica.phase == Phase::Failed || replica.phase == Phase::Unknown {
                    Outcome::Failed
                } else {
                    Outcome::Ok
                };
                let message = replica
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("now {}", replica.phase));
                self.event(
                    &id,
                    &replica.version,
                    Step::Exit,
                    outcome,
                    Some(&handle.engine),
                    message,
                );
            }
        }
        changed |= self.restart_if_due(&desired, &mut observed).await?;
        if changed {
            self.store().put_observed(&id, &observed)?;
            self.notify(&id);
        }
        Ok(())
    }

    /// Runs [`Node::monitor_once`] every `period` until cancelled.
    pub async fn run_monitor(self, period: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.monitor_once().await {
                        tracing::warn!(error = %e, "monitor pass failed");
                    }
                }
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// Counts of what [`Node::recover_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoverySummary {
    pub adopted: usize,
    pub redeployed: usize,
    pub deleted: usize,
    pub failed: usize,
}
