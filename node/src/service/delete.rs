//! Removing this node's replica of a workload: intent first, then uninstall, then forget.

use mesh_protocol::api::Deployment;
use mesh_protocol::{Phase, WorkloadId};
use mesh_runtime::now_millis;

use super::{Node, Recorder};
use crate::service::Error;
use crate::store::Pending;

impl Node {
    /// `DELETE /deployments/{name}`: uninstalls every replica on this node and forgets it.
    pub async fn delete(&self, id: &WorkloadId) -> Result<Deployment, Error> {
        let lock = self.workload_lock(id);
        let _guard = lock.lock().await;
        let store = &self.inner.store;
        if store.desired(id)?.is_none() {
            return Err(Error::NotFound(id.clone()));
        }
        let view = self.view(id, false)?;
        self.remove(id).await?;
        Ok(Deployment {
            phase: Phase::Deleted,
            ..view
        })
    }

    /// Removes this node's replica of `id` if the record it runs is older than `revision` (a
    /// tombstone's); checked under the workload lock. Returns whether it removed one.
    pub async fn delete_superseded(&self, id: &WorkloadId, revision: u64) -> Result<bool, Error> {
        let lock = self.workload_lock(id);
        let _guard = lock.lock().await;
        let Some(desired) = self.inner.store.desired(id)? else {
            return Ok(false);
        };
        if desired.revision >= revision {
            return Ok(false);
        }
        self.remove(id).await?;
        Ok(true)
    }

    /// Stops and removes every instance this node runs, keeping what it was asked to run
    /// (`meshd --stop-workloads-on-exit`): at the next start recovery finds the instances
    /// gone and installs them again. Returns how many instances it stopped.
    pub async fn stop_all(&self) -> usize {
        let mut stopped = 0;
        for desired in self.inner.store.list_desired().unwrap_or_default() {
            let id = desired.spec.id();
            let lock = self.workload_lock(&id);
            let _guard = lock.lock().await;
            let Ok(observed) = self.inner.store.observed(&id) else {
                continue;
            };
            for replica in &observed.replicas {
                let Some(handle) = &replica.handle else {
                    continue;
                };
                let spec = self
                    .inner
                    .store
                    .version(&id, &replica.version)
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| desired.spec.clone());
                let rec = Recorder::quiet(&self.inner.store);
                match self.inner.controller.uninstall(&spec, handle, &rec).await {
                    Ok(()) => {
                        stopped += 1;
                        self.event(
                            &id,
                            &replica.version,
                            mesh_protocol::Step::Uninstall,
                            mesh_protocol::Outcome::Ok,
                            Some(&handle.engine),
                            "stopped as meshd exited (--stop-workloads-on-exit); installed again \
                             at its next start"
                                .to_string(),
                        );
                    }
                    Err(e) => tracing::warn!(workload = %id, error = %e, "cannot stop an instance"),
                }
            }
        }
        let _ = self.inner.store.flush();
        stopped
    }

    /// Removes this node's replica of `id` if it still fills slot `slot` (the healer gives up
    /// a slot held twice); checked under the workload lock. Returns whether it removed one.
    pub async fn delete_slot(&self, id: &WorkloadId, slot: u32) -> Result<bool, Error> {
        let lock = self.workload_lock(id);
        let _guard = lock.lock().await;
        match self.inner.store.desired(id)? {
            Some(d) if d.slot == slot => {
                self.remove(id).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The intent first (flushed, so a crash is finished at the next start), then the
    /// removal, then the announcer is told. Caller holds the workload lock.
    async fn remove(&self, id: &WorkloadId) -> Result<(), Error> {
        let store = &self.inner.store;
        store.set_pending(
            id,
            &Pending::Delete {
                since: now_millis(),
            },
        )?;
        store.flush()?;
        self.finish_delete(id).await?;
        self.notify(id);
        Ok(())
    }

    /// Uninstalls what is left of a workload and removes it from the store.
    pub(crate) async fn finish_delete(&self, id: &WorkloadId) -> Result<(), Error> {
        let store = &self.inner.store;
        let desired = store.desired(id)?;
        let observed = store.observed(id)?;
        for replica in &observed.replicas {
            let Some(handle) = &replica.handle else {
                continue;
            };
            let spec = match store.version(id, &replica.version)? {
                Some(s) => s,
                None => match &desired {
                    Some(d) => d.spec.clone(),
                    None => continue,
                },
            };
            let rec = Recorder::replica(self, replica.ordinal, &replica.engine_reason);
            self.inner
                .controller
                .uninstall(&spec, handle, &rec)
                .await
                .map_err(|e| Error::Internal(format!("cannot remove {id}: {e}")))?;
        }
        store.remove_workload(id)?;
        store.flush()?;
        Ok(())
    }
}
