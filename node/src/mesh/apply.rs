//! Apply, end to end, at the entry node: each workload's signed record is verified and
//! opened, compared with the record the mesh holds, adopted and published when it asks for
//! something new, and its replica slots are planned ([`mesh_provider::plan`]) and carried out:
//! empty slots filled at once, holders of an older version updated one at a time, surplus
//! slots retired. Holders already running the wanted version hear nothing: re-applying the
//! same file restarts nothing.

use futures::future::join_all;
use libp2p::PeerId;
use mesh_protocol::api::{
    ApplyAction, ApplyOutcome, ApplyRequest, ApplyResponse, BundledModule, Deployment, SignedRecord,
};
use mesh_protocol::wire::{Provider, ReplicaApply, Request, Response};
use mesh_protocol::{Phase, WorkloadId, WorkloadSpec};
use mesh_provider::plan::{plan, Holder, Plan};
use mesh_provider::workload::{self, ManifestSource, Verified};
use mesh_runtime::now_millis;
use tracing::Instrument;

use super::announce::Spread;
use super::merge::{
    combine_actions, failed_part, from_record, merge, short_id, unexpected, with_record,
};
use super::Error;
use super::Mesh;
use crate::records::{self, Opened};

/// A replica's answer, or why there is none.
type Outcome = Result<ApplyOutcome, Error>;

/// The record an apply carries out, what it changed, and the signed form sent to replicas.
type Adopted = (Verified, Change, SignedRecord);

/// A fresh correlation id: `KIND-` and 8 hex digits.
pub(crate) fn new_correlation(kind: &str) -> String {
    let nonce = mesh_provider::workload::new_nonce();
    format!("{kind}-{}", &nonce[..8])
}

/// What an apply did to the mesh's record of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// No record, or a tombstone: the workload is new.
    Created,
    /// A new desired state replaced the record.
    Updated,
    /// The record already asked for this.
    Same,
}

impl Mesh {
    /// Applies a manifest to the mesh and answers with every replica's real outcome. The
    /// work is the node's own: a client that hangs up mid-apply cancels nothing. Its time to
    /// answer is observed (`meshd_apply_duration_seconds{scope="mesh"}`).
    ///
    /// Every apply has a correlation id (`apply-` and 8 hex digits), answered to the client:
    /// this node's work runs in an `apply` span with it, and each replica request carries it,
    /// so the nodes that start replicas log theirs in the same span.
    pub async fn apply(&self, req: ApplyRequest) -> Result<ApplyResponse, Error> {
        if req.replicas == Some(0) {
            return Err(Error::invalid("--replicas must be at least 1".to_string()));
        }
        let cid = new_correlation("apply");
        let span = tracing::info_span!("apply", correlation = %cid);
        let mesh = self.clone();
        let work = {
            let cid = cid.clone();
            async move { mesh.apply_owned(req, cid).await }.instrument(span)
        };
        let started = std::time::Instant::now();
        let result = self.inner.owned.run(work).await;
        let outcome = result.as_ref().ok().map(|r| r.workloads.as_slice());
        self.node().metrics().applied(
            crate::metrics::ApplyScope::Mesh,
            crate::metrics::apply_outcome(outcome),
            started.elapsed(),
        );
        let mut resp = result?;
        resp.correlation = Some(cid);
        Ok(resp)
    }

    async fn apply_owned(&self, req: ApplyRequest, cid: String) -> Result<ApplyResponse, Error> {
        tracing::debug!("apply received");
        // Every record is opened before anything is stored, published or started: one bad
        // record refuses the whole apply.
        let signed_here = req.records.is_empty();
        let opened: Vec<(Opened, SignedRecord)> = if signed_here {
            self.sign_for(&req)?
        } else {
            req.records
                .iter()
                .map(|s| Ok((records::open(s)?, s.clone())))
                .collect::<Result<_, records::Error>>()?
        };
        // A stale, replayed or unauthorised record refuses the whole apply before any
        // workload of it changes, any module is stored or any record forwarded.
        let book = &self.inner.records;
        for (o, _) in &opened {
            let id = &o.verified.record.id;
            let held = self.record(id).await;
            compare(held.clone(), &o.verified)?;
            if !signed_here {
                book.trust().check_fresh(&o.verified, now_millis())?;
            }
            book.trust()
                .authorise(&o.verified, held.as_ref(), |r| book.known_version(id, r))?;
            // What it asks of the host, against this node's policy too: the nodes of a mesh
            // usually share one trust file, and a refusal here changes nothing anywhere.
            self.node().check_policy(&o.spec, &o.verified.signer)?;
        }
        let req = self.take_modules(req).await?;
        tracing::info!(
            workloads = opened.len(),
            no_wait = req.no_wait,
            "apply accepted"
        );
        let mut workloads = Vec::with_capacity(opened.len());
        for (o, s) in opened {
            let turn = self.workload_lock(&o.verified.record.id).lock_owned().await;
            let adopted = self.adopt(&o, s).await?;
            if !req.no_wait {
                workloads.push(self.carry_out(o, adopted, &req.modules, &cid).await);
                continue;
            }
            // --no-wait: the record is kept (durable) before the answer; the replicas are
            // placed and started after it, under the workload's lock, as a waiting apply's are.
            workloads.push(ApplyOutcome {
                action: ApplyAction::Accepted,
                deployment: with_record(from_record(&adopted.0, &[]), &adopted.0),
            });
            let (mesh, modules, cid) = (self.clone(), req.modules.clone(), cid.clone());
            let work = async move {
                let _turn = turn;
                mesh.carry_out(o, adopted, &modules, &cid).await;
            };
            self.inner
                .owned
                .spawn(work.instrument(tracing::Span::current()));
        }
        Ok(ApplyResponse {
            workloads,
            correlation: None,
        })
    }

    /// Records for an apply that came without any (a local API client that signs nothing):
    /// made and signed by this node.
    fn sign_for(&self, req: &ApplyRequest) -> Result<Vec<(Opened, SignedRecord)>, Error> {
        let src = ManifestSource::of(req);
        let built = records::build(
            &self.inner.keypair,
            &src,
            req.replicas,
            |id| self.inner.records.revision(id),
            now_millis(),
        )?;
        Ok(built.into_iter().map(|b| (b.opened, b.signed)).collect())
    }

    /// The record this apply carries out, kept (durable) when it asks for something new;
    /// under the workload's lock.
    async fn adopt(&self, opened: &Opened, signed: SignedRecord) -> Result<Adopted, Error> {
        let id = &opened.verified.record.id;
        let (effective, change) = compare(self.record(id).await, &opened.verified)?;
        let signed = match change {
            // The same desired state: the record held stays (nothing to publish).
            Change::Same => SignedRecord {
                bytes: effective.bytes.clone(),
                data_key: signed.data_key,
            },
            Change::Created | Change::Updated => {
                self.keep(&opened.verified)?;
                signed
            }
        };
        Ok((effective, change, signed))
    }

    /// Plans the workload's slots and carries the plan out; under the workload's lock.
    async fn carry_out(
        &self,
        opened: Opened,
        (effective, change, signed): Adopted,
        modules: &[BundledModule],
        cid: &str,
    ) -> ApplyOutcome {
        let id = opened.verified.record.id.clone();
        let spec = &opened.spec;
        let holders = self.slot_holders(&id).await;
        let candidates = self.candidates(spec).await;
        let plan = plan(
            &id.to_string(),
            effective.record.replicas,
            &effective.record.spec_version,
            spec.resources,
            &candidates,
            &holders.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>(),
        );
        tracing::debug!(workload = %id, ?plan, "apply plan");
        let kept: Vec<Provider> = holders
            .iter()
            .filter(|(h, _)| plan.keep.iter().any(|(s, p)| *s == h.slot && *p == h.peer))
            .map(|(_, p)| p.clone())
            .collect();
        let desired = effective
            .record
            .replicas
            .count()
            .unwrap_or((plan.keep.len() + plan.update.len() + plan.add.len()) as u32);
        let replica = |slot: u32| ReplicaApply {
            correlation: Some(cid.to_string()),
            record: signed.clone(),
            workload: id.clone(),
            slot,
            desired_replicas: desired,
            modules: modules.to_vec(),
            placement: plan.notes.clone(),
            entry: self.peer_id().to_string(),
        };

        // Empty slots at once; then the rollout, one holder at a time, stopping at the first
        // that fails (it rolled back to the old version, which keeps serving).
        let adds = plan
            .add
            .iter()
            .map(|(slot, peer, _)| self.run_replica(*peer, replica(*slot)));
        // Every node learns the new desired state on gossip once the new slots answered. Every
        // node that hears a record verifies and stores it: published beside the requests, that
        // fan-out kept every core of a machine running many nodes busy while the targets
        // waited for one (the mesh benchmark's trace, docs/benchmarks.md). The record is
        // durable here and on each target before it is published.
        let added = join_all(adds).await;
        if change != Change::Same {
            self.inner.net.publish(opened.verified.bytes.clone()).await;
        }
        let mut results: Vec<(PeerId, String, Outcome)> = plan
            .add
            .iter()
            .map(|(_, p, e)| (*p, e.clone()))
            .zip(added)
            .map(|((p, e), r)| (p, e, r))
            .collect();
        let mut notes = plan.notes.clone();
        // Holders of another version, a batch at a time (one by default; the Deployment's
        // strategy may say more, or all for Recreate); a batch with a failure ends the rollout.
        let batch = spec.rollout.map_or(1, |r| r.batch(desired as usize));
        let mut done = 0;
        for chunk in plan.update.chunks(batch) {
            let runs = chunk
                .iter()
                .map(|(slot, peer)| self.run_replica(*peer, replica(*slot)));
            let outcomes = join_all(runs).await;
            done += chunk.len();
            let mut failed = false;
            for ((_, peer), outcome) in chunk.iter().zip(outcomes) {
                failed |= !matches!(&outcome, Ok(o) if matches!(o.action, ApplyAction::Updated | ApplyAction::Unchanged | ApplyAction::Created));
                results.push((*peer, String::new(), outcome));
            }
            if failed && done < plan.update.len() {
                let slots: Vec<String> = chunk.iter().map(|(s, _)| s.to_string()).collect();
                notes.push(format!(
                    "rollout stopped at slot {}: {} replica(s) keep the previous version",
                    slots.join(", "),
                    plan.update.len() - done
                ));
                break;
            }
        }
        for (_, peer) in &plan.retire {
            if let Err(e) = self.delete_replica(*peer, &id, &signed.bytes).await {
                if !e.is_not_found() {
                    notes.push(format!(
                        "could not retire the replica on …{}: {e}",
                        short_id(peer)
                    ));
                }
            }
        }
        let done = self.outcome(&effective, spec, &plan, kept, results, notes, change);
        tracing::info!(workload = %id, action = ?done.action, phase = ?done.deployment.phase, "apply done");
        done
    }

    /// Runs one replica on `peer` (this node included) and announces it.
    pub(crate) async fn run_replica(&self, peer: PeerId, r: ReplicaApply) -> Outcome {
        // With `--log mesh_node::mesh=debug`, these lines and the target's time an apply's
        // steps across nodes (the mesh benchmark's trace, `MESH_BENCH_TRACE`).
        tracing::debug!(workload = %r.workload, slot = r.slot, target = %peer, "replica sent");
        if peer == self.peer_id() {
            let id = r.workload.clone();
            let outcome = self.inner.node.apply_replica(r).await?;
            tracing::debug!("replica applied");
            // In this node's cache at once (the answer shows it); gossiped and put into the
            // DHT in the background, as a remote target spreads after its answer (the WASM
            // bench's trace: the spread took 0.3 ms of a local apply's 4, up to 1.1).
            if let Some(bytes) = self.announce_with(&id, false, Spread::Later).await {
                let mesh = self.clone();
                let spread = async move { mesh.spread_later(&bytes).await };
                self.inner
                    .owned
                    .spawn(spread.instrument(tracing::Span::current()));
            }
            tracing::debug!("replica announced");
            return Ok(outcome);
        }
        let answer = self.ask(peer, Request::ApplyReplica(Box::new(r))).await;
        tracing::debug!(target = %peer, ok = answer.is_ok(), "replica answered");
        match answer? {
            Response::ReplicaApplied { outcome, provider } => {
                // The replica's signed provider record: this node knows the slot is filled
                // before gossip brings it, so an apply right after this one sees it.
                if let Some(bytes) = provider {
                    self.on_gossip(Some(peer), &bytes);
                }
                Ok(*outcome)
            }
            _ => Err(unexpected(&peer)),
        }
    }

    /// Slots of `id` and who fills them, from the signed provider records (the gossip cache
    /// on a warm node, the DHT as well otherwise) and this node's own store.
    pub(crate) async fn slot_holders(&self, id: &WorkloadId) -> Vec<(Holder, Provider)> {
        // A warm node heard every provider on gossip: no DHT lookup (for a new workload it
        // would walk to the key's closest peers and find nobody).
        let providers = if self.cache_is_warm() {
            self.cached_providers_of(id)
        } else {
            self.providers_of(id, None).await
        };
        self.holders_among(id, providers)
    }

    /// Slots of `id` and who fills them, from `providers` and this node's own store.
    pub(crate) fn holders_among(
        &self,
        id: &WorkloadId,
        providers: Vec<Provider>,
    ) -> Vec<(Holder, Provider)> {
        let mut out: Vec<(Holder, Provider)> = providers
            .into_iter()
            .filter_map(|p| {
                let holder = Holder {
                    slot: p.slot?,
                    peer: p.peer_id.parse().ok()?,
                    version: p.version.clone(),
                    running: p.phase.is_healthy(),
                };
                Some((holder, p))
            })
            .collect();
        // For this node, its own store is the truth (its announcement may lag a job's end).
        // A slot whose holder is confirmed dead is empty (its record has not expired yet).
        let me = self.peer_id();
        out.retain(|(h, _)| h.peer != me && !self.inner.liveness.is_dead(&h.peer));
        out.extend(self.local_holder(id));
        out
    }

    /// This node's replica of `id` as a slot holder, when it runs one.
    pub(crate) fn local_holder(&self, id: &WorkloadId) -> Option<(Holder, Provider)> {
        let store = self.inner.node.store();
        let desired = store.desired(id).ok()??;
        let replica = store.observed(id).ok()?.current()?.clone();
        let me = self.peer_id();
        let provider = Provider {
            peer_id: me.to_string(),
            workload: id.to_string(),
            engine: replica.engine.clone(),
            version: replica.version.clone(),
            phase: replica.phase,
            capabilities: Vec::new(),
            resources: desired.spec.resources,
            addresses: Vec::new(),
            issued_at: replica.updated_at,
            expires_at: u64::MAX,
            withdrawn: false,
            slot: Some(desired.slot),
            revision: Some(desired.revision),
        };
        let holder = Holder {
            slot: desired.slot,
            peer: me,
            version: replica.version,
            running: replica.phase.is_healthy(),
        };
        Some((holder, provider))
    }

    /// The apply's answer for one workload: the record's view, with the replicas that were
    /// kept and the outcome of every replica asked to change.
    #[allow(clippy::too_many_arguments)]
    fn outcome(
        &self,
        record: &Verified,
        spec: &WorkloadSpec,
        plan: &Plan,
        kept: Vec<Provider>,
        results: Vec<(PeerId, String, Outcome)>,
        notes: Vec<String>,
        change: Change,
    ) -> ApplyOutcome {
        let desired = record.record.replicas.count().unwrap_or(0);
        let mut actions = Vec::new();
        let mut parts: Vec<Deployment> = vec![from_record(record, &kept)];
        for (peer, engine, result) in results {
            match result {
                Ok(o) => {
                    actions.push(o.action);
                    parts.push(o.deployment);
                }
                Err(e) => {
                    actions.push(ApplyAction::Failed);
                    let peer = peer.to_string();
                    parts.push(failed_part(
                        spec,
                        desired,
                        &notes,
                        &peer,
                        &engine,
                        e.to_string(),
                    ));
                }
            }
        }
        let mut deployment = with_record(merge(parts).expect("at least the record's part"), record);
        deployment.placement = notes.clone();
        if deployment.replicas.is_empty() {
            deployment.phase = Phase::Failed;
            deployment.error = Some(format!(
                "no node can run {} {}: {}",
                spec.kind,
                record.record.id,
                notes.join("; ")
            ));
            actions.push(ApplyAction::Failed);
        }
        let action = match (change, actions.is_empty()) {
            // Nothing was asked of any replica: only a new record or a retirement is a change.
            (Change::Same, true) if plan.retire.is_empty() => ApplyAction::Unchanged,
            (Change::Created, true) => ApplyAction::Created,
            (_, true) => ApplyAction::Updated,
            (Change::Created, false) => match combine_actions(&actions) {
                ApplyAction::Updated | ApplyAction::Unchanged => ApplyAction::Created,
                other => other,
            },
            (Change::Updated, false) => match combine_actions(&actions) {
                ApplyAction::Created | ApplyAction::Unchanged => ApplyAction::Updated,
                other => other,
            },
            (Change::Same, false) => match combine_actions(&actions) {
                ApplyAction::Created => ApplyAction::Updated,
                other => other,
            },
        };
        ApplyOutcome { action, deployment }
    }
}

/// How an offered record compares with the one the mesh holds: the same desired state keeps
/// the record held; a record that supersedes it (or the first) is new; anything else is stale.
fn compare(
    held: Option<Verified>,
    offered: &Verified,
) -> Result<(Verified, Change), records::Error> {
    match held {
        Some(h) if !h.record.tombstone && h.record.same_desire(&offered.record) => {
            Ok((h, Change::Same))
        }
        Some(h) if !workload::supersedes(offered, &h) => Err(records::Error::Stale {
            id: offered.record.id.clone(),
            offered: offered.record.revision,
            held: h.record.revision,
        }),
        Some(h) if !h.record.tombstone => Ok((offered.clone(), Change::Updated)),
        _ => Ok((offered.clone(), Change::Created)),
    }
}
