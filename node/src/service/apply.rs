//! Running this node's replica of a workload: intent first, then engine selection and the
//! lifecycle (deploy, update with rollback, or reinstall).

use mesh_protocol::api::{ApplyAction, ApplyOutcome, SignedRecord, VersionRecord};
use mesh_protocol::wire::ReplicaApply;
use mesh_protocol::{Outcome, Phase, Step, WorkloadSpec};
use mesh_runtime::engine::InstallContext;
use mesh_runtime::{now_millis, select, Observer};

use super::{Node, Recorder};
use crate::records;
use crate::service::Error;
use crate::store::{Desired, Observed, Pending, ReplicaRecord};

impl Node {
    /// Runs the replica in slot `req.slot` of the record's workload here: the record is
    /// verified, unsealed with the data key that came with it, parsed as every node parses
    /// it, and checked against the version its signer stated before anything is written. The
    /// record is kept with the desired state, with its data key (this node is one of those
    /// that run the workload, who pass the key on).
    pub async fn apply_replica(&self, req: ReplicaApply) -> Result<ApplyOutcome, Error> {
        let opened = records::open(&req.record)?;
        self.apply_opened(opened, req).await
    }

    /// [`Node::apply_replica`] for a record the caller already verified and opened; its time
    /// to answer is observed (`meshd_apply_duration_seconds{scope="replica"}`).
    pub async fn apply_opened(
        &self,
        opened: records::Opened,
        req: ReplicaApply,
    ) -> Result<ApplyOutcome, Error> {
        let started = std::time::Instant::now();
        let result = self.apply_checked(opened, req).await;
        let outcome = result.as_ref().ok().map(std::slice::from_ref);
        self.inner.metrics.applied(
            crate::metrics::ApplyScope::Replica,
            crate::metrics::apply_outcome(outcome),
            started.elapsed(),
        );
        result
    }

    async fn apply_checked(
        &self,
        opened: records::Opened,
        req: ReplicaApply,
    ) -> Result<ApplyOutcome, Error> {
        if opened.verified.record.id != req.workload {
            return Err(Error::Invalid(format!(
                "the record is of {}, not {}",
                opened.verified.record.id, req.workload
            )));
        }
        let revision = opened.verified.record.revision;
        self.check_policy(&opened.spec, &opened.verified.signer)?;
        self.apply_one(
            opened.spec,
            req.desired_replicas.max(1),
            req.placement,
            (req.record, revision),
            req.slot,
        )
        .await
    }

    /// Host access, engines and caps of `spec` signed by `signer` against this node's trust
    /// policy: a refusal is recorded as an `Authorize` event of the workload and returned
    /// before anything is written or started.
    pub(crate) fn check_policy(
        &self,
        spec: &WorkloadSpec,
        signer: &libp2p::PeerId,
    ) -> Result<(), Error> {
        let Err(refusal) = self.inner.trust.check_spec(spec, signer) else {
            return Ok(());
        };
        tracing::warn!(workload = %spec.id(), %signer, %refusal, "refused by the trust policy");
        self.event(
            &spec.id(),
            &spec.version,
            Step::Authorize,
            Outcome::Failed,
            None,
            refusal.to_string(),
        );
        Err(refusal.into())
    }

    async fn apply_one(
        &self,
        spec: WorkloadSpec,
        replicas: u32,
        placement: Vec<String>,
        (record, revision): (SignedRecord, u64),
        slot: u32,
    ) -> Result<ApplyOutcome, Error> {
        let id = spec.id();
        let lock = self.workload_lock(&id);
        let _guard = lock.lock().await;
        let _slot = self
            .inner
            .deploys
            .acquire()
            .await
            .expect("the deploy semaphore is never closed");
        let store = &self.inner.store;
        let now = now_millis();
        let existing = store.desired(&id)?;
        let mut observed = store.observed(&id)?;

        if let Some(d) = &existing {
            // A record older than the one this replica runs (a replay, or an entry node that
            // has not heard of the newer one) changes nothing.
            if revision < d.revision {
                return Err(records::Error::Stale {
                    id: id.clone(),
                    offered: revision,
                    held: d.revision,
                }
                .into());
            }
            if d.slot != slot && observed.replicas.iter().any(|r| r.handle.is_some()) {
                return Err(Error::Conflict(format!(
                    "{id}: this node already fills slot {} of it; a node runs one replica",
                    d.slot
                )));
            }
            let settled = !observed.replicas.is_empty()
                && observed.replicas.iter().all(|r| {
                    r.version == spec.version
                        && (matches!(r.phase, Phase::Running | Phase::Succeeded)
                            // A job run in progress (running, or waiting to retry).
                            || r.job.as_ref().is_some_and(|j| !j.finished()))
                });
            if d.spec.version == spec.version && settled {
                // The same content: nothing is reinstalled. A new record revision, replica
                // count or placement note is only written down.
                if d.replicas != replicas
                    || d.placement != placement
                    || d.record.as_ref() != Some(&record)
                {
                    let mut d = d.clone();
                    d.replicas = replicas;
                    d.placement = placement;
                    d.record = Some(record);
                    d.revision = revision;
                    store.put_desired(&d)?;
                    store.flush()?;
                }
                return Ok(ApplyOutcome {
                    action: ApplyAction::Unchanged,
                    deployment: self.view(&id, false)?,
                });
            }
        }

        // Record the intent first: a crash from here on is finished at the next start.
        let mut history = existing
            .as_ref()
            .map(|d| d.history.clone())
            .unwrap_or_default();
        if history.first().map(|h| h.version.as_str()) != Some(spec.version.as_str()) {
            history.insert(
                0,
                VersionRecord {
                    version: spec.version.clone(),
                    applied_at: now,
                    reached_running: false,
                },
            );
            history.truncate(crate::store::MAX_VERSIONS_PER_WORKLOAD);
        }
        let desired = Desired {
            spec: spec.clone(),
            replicas,
            created_at: existing.as_ref().map_or(now, |d| d.created_at),
            updated_at: now,
            history,
            placement,
            record: Some(record),
            slot,
            revision,
        };
        store.put_desired(&desired)?;
        store.set_pending(
            &id,
            &Pending::Apply {
                version: spec.version.clone(),
                since: now,
            },
        )?;
        store.flush()?;
        tracing::debug!(workload = %id, "intent stored");

        let action = self
            .converge(&spec, &mut observed, existing.is_some())
            .await?;
        if let (ApplyAction::RolledBack, Some(previous)) = (action, &existing) {
            // The previous version serves again: it is the desired state of this replica
            // again too, or a restart would deploy the version that failed.
            let mut back = previous.clone();
            if let Some(now_desired) = store.desired(&id)? {
                back.history = now_desired.history;
            }
            store.put_desired(&back)?;
        }
        store.clear_pending(&id)?;
        self.notify(&id);
        tracing::debug!(workload = %id, "converged");
        Ok(ApplyOutcome {
            action,
            deployment: self.view(&id, false)?,
        })
    }

    /// Brings this node's replica of `spec` to the spec: selects the engine, then deploys,
    /// updates (with rollback) or reinstalls. Caller holds the workload lock.
    pub(crate) async fn converge(
        &self,
        spec: &WorkloadSpec,
        observed: &mut Observed,
        existed: bool,
    ) -> Result<ApplyAction, Error> {
        let id = spec.id();
        let store = &self.inner.store;
        let started = std::time::Instant::now();
        let policy = self.engine_policy();
        let selection = select(spec, &self.registry().candidates(), &policy);
        let took = started.elapsed();
        let selection = match selection {
            Ok(sel) => {
                let rec = Recorder::replica(self, 0, "");
                rec.step(
                    spec,
                    &sel.engine,
                    Step::Select,
                    Outcome::Ok,
                    took,
                    &sel.reason,
                );
                sel
            }
            Err(no_engine) => {
                let msg = no_engine.to_string();
                self.event(
                    &id,
                    &spec.version,
                    Step::Select,
                    Outcome::Failed,
                    None,
                    msg.clone(),
                );
                // A running older version keeps running: nothing here can replace it.
                if !observed.replicas.iter().any(|r| r.phase == Phase::Running) {
                    observed.replicas = vec![failed_replica(
                        spec,
                        "",
                        "",
                        format!("Select failed: {msg}"),
                    )];
                    store.put_observed(&id, observed)?;
                }
                return Ok(ApplyAction::Failed);
            }
        };
        if spec.runs_to_completion() {
            return self.start_job(spec, &selection, observed, existed).await;
        }

        let ctx = InstallContext {
            node: self.inner.id.clone(),
            replica: 0,
        };
        let rec = Recorder::replica(self, 0, &selection.reason);
        let controller = &self.inner.controller;
        let current = observed
            .replicas
            .iter()
            .find(|r| r.handle.is_some())
            .cloned();
        let (report, action) = match current {
            Some(old) if old.phase == Phase::Running => {
                let handle = old.handle.clone().expect("filtered on handle");
                let old_spec = store
                    .version(&id, &old.version)?
                    .unwrap_or_else(|| spec.clone());
                let update = controller
                    .update(&old_spec, &handle, spec, &selection.engine, &ctx, &rec)
                    .await;
                if update.rolled_back {
                    let mut kept = old.clone();
                    kept.updated_at = now_millis();
                    kept.error = Some(format!(
                        "update to {} failed and was rolled back: {}",
                        mesh_protocol::spec::short_version(&spec.version),
                        update.new.error.clone().unwrap_or_default()
                    ));
                    if let Some(rollback_error) = &update.rollback_error {
                        kept.phase = Phase::Failed;
                        kept.error = Some(format!(
                            "{}; rollback failed too: {rollback_error}",
                            kept.error.unwrap_or_default()
                        ));
                    }
                    observed.replicas = vec![kept];
                    store.put_observed(&id, observed)?;
                    store.flush()?;
                    return Ok(ApplyAction::RolledBack);
                }
                (update.new, ApplyAction::Updated)
            }
            Some(old) => {
                // Not running (failed, exited): replace it outright.
                if let Some(handle) = &old.handle {
                    let old_spec = store
                        .version(&id, &old.version)?
                        .unwrap_or_else(|| spec.clone());
                    if let Err(e) = controller.uninstall(&old_spec, handle, &rec).await {
                        tracing::warn!(workload = %id, error = %e, "could not remove the previous instance");
                    }
                }
                (
                    controller.deploy(spec, &selection.engine, &ctx, &rec).await,
                    ApplyAction::Updated,
                )
            }
            None => {
                let action = if existed {
                    ApplyAction::Updated
                } else {
                    ApplyAction::Created
                };
                (
                    controller.deploy(spec, &selection.engine, &ctx, &rec).await,
                    action,
                )
            }
        };

        let mut replica = ReplicaRecord {
            ordinal: 0,
            phase: report.phase,
            engine: selection.engine.clone(),
            engine_reason: selection.reason.clone(),
            version: spec.version.clone(),
            handle: report.handle.clone(),
            error: report.error.clone(),
            exit_code: None,
            restarts: report.status.as_ref().map_or(0, |s| s.restarts),
            updated_at: now_millis(),
            job: None,
        };
        if let Some(mesh_runtime::InstanceState::Exited { code }) =
            report.status.as_ref().map(|s| &s.state)
        {
            replica.exit_code = Some(*code);
        }
        observed.replicas = vec![replica];
        store.put_observed(&id, observed)?;
        if report.phase != Phase::Failed {
            if let Some(mut d) = store.desired(&id)? {
                if let Some(h) = d.history.iter_mut().find(|h| h.version == spec.version) {
                    h.reached_running = true;
                }
                store.put_desired(&d)?;
            }
        }
        Ok(if report.phase == Phase::Failed {
            ApplyAction::Failed
        } else {
            action
        })
    }
}

/// A replica that never got an instance.
pub(crate) fn failed_replica(
    spec: &WorkloadSpec,
    engine: &str,
    reason: &str,
    error: String,
) -> ReplicaRecord {
    ReplicaRecord {
        ordinal: 0,
        phase: Phase::Failed,
        engine: engine.to_string(),
        engine_reason: reason.to_string(),
        version: spec.version.clone(),
        handle: None,
        job: spec
            .runs_to_completion()
            .then(|| crate::jobs::unplaceable(&error)),
        error: Some(error),
        exit_code: None,
        restarts: 0,
        updated_at: now_millis(),
    }
}
