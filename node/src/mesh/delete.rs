//! Delete from any node: a signed tombstone becomes the workload's record (published, so
//! every node learns it and a late replica cannot resurrect the workload), and the nodes that
//! run it are told to remove their replicas; a node that missed that removes its replica when
//! the tombstone reaches it.

use futures::future::join_all;
use libp2p::PeerId;
use mesh_protocol::api::{Deployment, SignedRecord};
use mesh_protocol::wire::{Request, Response};
use mesh_protocol::{Phase, WorkloadId, WorkloadKind};
use mesh_provider::workload;
use mesh_runtime::now_millis;

use super::merge::{merge, unexpected};
use super::Error;
use super::Mesh;
use crate::records;

impl Mesh {
    /// Deletes a workload from the mesh with `tombstone` (signed by this node when absent).
    /// The work is the node's own: a client that hangs up cancels nothing.
    pub async fn delete(
        &self,
        id: &WorkloadId,
        tombstone: Option<SignedRecord>,
    ) -> Result<Deployment, Error> {
        let mesh = self.clone();
        let id = id.clone();
        self.inner
            .owned
            .run(async move { mesh.delete_owned(&id, tombstone).await })
            .await
    }

    async fn delete_owned(
        &self,
        id: &WorkloadId,
        tombstone: Option<SignedRecord>,
    ) -> Result<Deployment, Error> {
        let lock = self.workload_lock(id);
        let _turn = lock.lock().await;
        let held = self.record(id).await;
        let local = self.inner.node.store().desired(id)?;
        let live = held.as_ref().filter(|h| !h.record.tombstone);
        if live.is_none() && local.is_none() {
            return Err(Error::not_found(id));
        }
        let held_revision = held.as_ref().map_or(0, |h| h.record.revision);
        let tombstone = match tombstone {
            Some(signed) => {
                let v = workload::verify_at(&signed.bytes, now_millis())
                    .map_err(records::Error::from)?;
                if !v.record.tombstone || v.record.id != *id {
                    return Err(Error::invalid(format!(
                        "the record sent with the delete is not a tombstone of {id}"
                    )));
                }
                if v.record.revision <= held_revision {
                    return Err(records::Error::Stale {
                        id: id.clone(),
                        offered: v.record.revision,
                        held: held_revision,
                    }
                    .into());
                }
                self.inner.records.trust().check_fresh(&v, now_millis())?;
                v
            }
            None => {
                let kind = live
                    .map(|h| h.record.kind)
                    .or(local.as_ref().map(|d| d.spec.kind))
                    .unwrap_or(WorkloadKind::Pod);
                let signed = records::build_tombstone(
                    &self.inner.keypair,
                    id,
                    kind,
                    held_revision,
                    now_millis(),
                )?;
                workload::verify(&signed.bytes).map_err(records::Error::from)?
            }
        };
        // Kept first (a replica asked to run it from now on is refused), told to the holders,
        // then published: every other node learns it, and a holder that could not be reached
        // removes its replica when the tombstone reaches it.
        self.keep(&tombstone)?;
        let holders = self.holders(id).await?;
        let results = join_all(
            holders
                .into_iter()
                .map(|peer| self.delete_replica(peer, id, &tombstone.bytes)),
        )
        .await;
        self.publish_record(&tombstone).await;
        let mut parts = Vec::new();
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(d) => parts.push(d),
                Err(e) if e.is_not_found() => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        if let Some(e) = errors.first() {
            return Err(Error::unavailable(format!(
                "deleted from the mesh's records, but a replica could not be removed yet (its node \
                 removes it when the tombstone reaches it): {e}"
            )));
        }
        let mut d = match merge(parts) {
            Some(d) => d,
            None => match live {
                Some(h) => super::merge::from_record(h, &[]),
                None => return Err(Error::not_found(id)),
            },
        };
        d.phase = Phase::Deleted;
        for r in d.replicas.iter_mut() {
            r.phase = Phase::Deleted;
        }
        Ok(d)
    }

    /// Removes the replica on `peer` (this node included) and withdraws its announcement.
    /// `record` is the workload's current signed record (a tombstone, or the record the
    /// replica is surplus to), sent without any data key: the peer checks it before it removes
    /// anything.
    pub(crate) async fn delete_replica(
        &self,
        peer: PeerId,
        id: &WorkloadId,
        record: &[u8],
    ) -> Result<Deployment, Error> {
        if peer == self.peer_id() {
            let d = self.inner.node.delete(id).await?;
            self.withdraw(id).await;
            return Ok(d);
        }
        match self
            .ask(
                peer,
                Request::ReplicaDelete {
                    id: id.clone(),
                    record: SignedRecord {
                        bytes: record.to_vec(),
                        data_key: None,
                    },
                },
            )
            .await?
        {
            Response::Deployment(d) => Ok(*d),
            _ => Err(unexpected(&peer)),
        }
    }
}
