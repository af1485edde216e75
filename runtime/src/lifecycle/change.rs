//! What the controller does to a workload that exists: replace it with a new version (with
//! rollback to the last-known-good one), uninstall it, and recover it after a node restart.

use super::*;

impl Controller {
    /// Replaces `old` with `new_spec`: stop the old instance, deploy the new one; when the new
    /// one fails, remove it and start the old one again (rollback to last-known-good).
    pub async fn update(
        &self,
        old_spec: &WorkloadSpec,
        old: &Handle,
        new_spec: &WorkloadSpec,
        new_engine: &str,
        ctx: &InstallContext,
        obs: &dyn Observer,
    ) -> UpdateReport {
        let old_engine = match self.engine(&old.engine) {
            Ok(e) => e,
            Err(err) => {
                return UpdateReport {
                    new: DeployReport::failed(Step::Update, &err, None),
                    rolled_back: false,
                    rollback_error: None,
                }
            }
        };
        let grace = self.config.stop_grace;
        if let Err(err) = self
            .step(
                obs,
                old_spec,
                &old.engine,
                Step::Update,
                old_engine.stop(old, grace),
            )
            .await
        {
            return UpdateReport {
                new: DeployReport::failed(Step::Update, &err, None),
                rolled_back: false,
                rollback_error: None,
            };
        }
        let new = self.deploy(new_spec, new_engine, ctx, obs).await;
        if new.phase != Phase::Failed {
            // The old instance is replaced; a failure to remove it is reported, not fatal.
            let _ = self
                .step(
                    obs,
                    old_spec,
                    &old.engine,
                    Step::Uninstall,
                    old_engine.remove(old),
                )
                .await;
            return UpdateReport {
                new,
                rolled_back: false,
                rollback_error: None,
            };
        }
        if let Some(h) = &new.handle {
            let _ = self.uninstall(new_spec, h, obs).await;
        }
        let rollback = async {
            old_engine.start(old).await?;
            self.health_check(old_engine.as_ref(), old_spec, old)
                .await
                .map(|_| ())
        };
        let rollback_error = self
            .step(obs, old_spec, &old.engine, Step::Rollback, rollback)
            .await
            .err()
            .map(|e| e.to_string());
        UpdateReport {
            new,
            rolled_back: true,
            rollback_error,
        }
    }

    /// Stop (with the grace period) then remove. Idempotent.
    pub async fn uninstall(
        &self,
        spec: &WorkloadSpec,
        handle: &Handle,
        obs: &dyn Observer,
    ) -> Result<()> {
        let engine = self.engine(&handle.engine)?;
        let grace = self.config.stop_grace;
        let work = async {
            engine.stop(handle, grace).await?;
            engine.remove(handle).await
        };
        self.step(obs, spec, &handle.engine, Step::Uninstall, work)
            .await
    }

    /// Re-attaches to an instance after a node restart.
    pub async fn recover(
        &self,
        spec: &WorkloadSpec,
        handle: &Handle,
        obs: &dyn Observer,
    ) -> Result<Recovered> {
        let engine = self.engine(&handle.engine)?;
        self.step(
            obs,
            spec,
            &handle.engine,
            Step::Recover,
            engine.recover(handle),
        )
        .await
    }
}
