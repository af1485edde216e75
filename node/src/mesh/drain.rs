//! Drain and uncordon: an operator's signed command to one node (`meshctl drain NODE`,
//! `meshctl uncordon NODE`).
//!
//! The command is a `NodeCommand` record signed by the operator's key: the node it names
//! checks the signature, that the key is an admin in its trust file, and that the command is
//! fresh (nonce and clock skew, as for applies); another node forwards it to the node named.
//!
//! A drain cordons the node first (flushed, and told at once in a heartbeat, so placement
//! everywhere stops choosing it), then moves each replica it runs: the same slot is placed on
//! another node with the apply's plan and placement, and only once that replica answers
//! Running is this node's copy removed. A slot is never empty meanwhile (it is briefly held
//! twice; the healer counts a cordoned holder as the one to go). Replicas of a workload that
//! runs on every node, and jobs, stay. Uncordon lets the node take replicas again.

use libp2p::PeerId;
use mesh_protocol::api::{DrainReport, Left, Moved};
use mesh_protocol::wire::{Request, Response};
use mesh_protocol::{Outcome, Step};
use mesh_provider::{signed, NodeAction, NodeCommand, Record};
use mesh_runtime::now_millis;

use super::merge::short_id;
use super::{Error, Mesh};
use crate::records;
use crate::store::Desired;

impl Mesh {
    /// Carries out a signed command here, or forwards it to the node it names; the work is
    /// the node's own (a client that hangs up stops no drain halfway).
    pub async fn command(&self, bytes: Vec<u8>) -> Result<DrainReport, Error> {
        let mesh = self.clone();
        self.inner
            .owned
            .run(async move { mesh.run_command(&bytes).await })
            .await
    }

    async fn run_command(&self, bytes: &[u8]) -> Result<DrainReport, Error> {
        let signed = signed::verify(bytes, None, now_millis())
            .map_err(|e| Error::invalid(format!("command: {e}")))?;
        let Record::Command(command) = signed.record else {
            return Err(Error::invalid("not a command record".to_string()));
        };
        let target: PeerId = command
            .node
            .parse()
            .map_err(|_| Error::invalid(format!("command: {:?} is not a node id", command.node)))?;
        if target != self.peer_id() {
            return match self
                .ask(
                    target,
                    Request::Command {
                        command: bytes.to_vec(),
                    },
                )
                .await?
            {
                Response::Drained(report) => Ok(report),
                _ => Err(super::merge::unexpected(&target)),
            };
        }
        let what = match command.action {
            NodeAction::Drain => "drain this node",
            NodeAction::Uncordon => "uncordon this node",
        };
        let trust = self.inner.records.trust();
        trust.authorise_admin(&signed.signer, what)?;
        trust.check_fresh_command(what, &command.nonce, command.issued_at, now_millis())?;
        tracing::info!(by = %signed.signer, action = ?command.action, "operator command");
        match command.action {
            NodeAction::Drain => self.drain().await,
            NodeAction::Uncordon => self.uncordon().await,
        }
    }

    /// Signs a command for `node` with `key` (what `meshctl` sends).
    pub fn sign_command(
        key: &libp2p::identity::Keypair,
        node: PeerId,
        action: NodeAction,
        now: u64,
    ) -> Result<Vec<u8>, String> {
        let command = NodeCommand {
            peer_id: key.public().to_peer_id().to_string(),
            node: node.to_string(),
            action,
            nonce: mesh_provider::workload::new_nonce(),
            issued_at: now,
            expires_at: now + 5 * 60 * 1000,
        };
        signed::encode(key, &Record::Command(command)).map_err(|e| e.to_string())
    }

    async fn set_cordoned(&self, cordoned: bool) -> Result<(), Error> {
        self.inner.node.store().set_cordoned(cordoned)?;
        // Told at once rather than at the next heartbeat: placement elsewhere reads it.
        self.heartbeat().await;
        Ok(())
    }

    /// Takes new replicas again.
    pub async fn uncordon(&self) -> Result<DrainReport, Error> {
        self.set_cordoned(false).await?;
        self.mesh_event(
            Step::Heal,
            "",
            "",
            Outcome::Ok,
            "uncordoned: takes new replicas again".into(),
        );
        Ok(DrainReport {
            node: self.peer_id().to_string(),
            cordoned: false,
            ..DrainReport::default()
        })
    }

    /// Cordons this node and moves every replica it runs elsewhere, each new one running
    /// before the old one goes.
    pub async fn drain(&self) -> Result<DrainReport, Error> {
        self.set_cordoned(true).await?;
        self.mesh_event(Step::Heal, "", "", Outcome::Ok, "cordoned: draining".into());
        let mut report = DrainReport {
            node: self.peer_id().to_string(),
            cordoned: true,
            ..DrainReport::default()
        };
        for desired in self.inner.node.store().list_desired()? {
            let workload = desired.spec.id().to_string();
            match self.move_replica(&desired).await {
                Ok(to) => report.moved.push(Moved {
                    workload,
                    slot: desired.slot,
                    to: to.to_string(),
                }),
                Err(why) => report.left.push(Left { workload, why }),
            }
        }
        Ok(report)
    }

    /// Places this node's slot of `desired` on another node, then removes it here.
    async fn move_replica(&self, desired: &Desired) -> Result<PeerId, String> {
        let id = desired.spec.id();
        if desired.spec.runs_to_completion() {
            return Err("a job: it runs to completion here".into());
        }
        // The record the mesh holds now (this replica may run an older revision of the same
        // content, kept because nothing changed for it), with its key when sealed.
        let Some(held) = self.inner.records.get(&id).filter(|v| !v.record.tombstone) else {
            return Err("the mesh holds no live record of it".into());
        };
        let (signed, opened) = self.open_held(&held).map_err(|e| match e {
            records::Error::NoKey(_) => format!(
                "its manifest is sealed and this node holds no data key for revision {}: apply \
                 it again",
                held.record.revision
            ),
            e => e.to_string(),
        })?;
        if opened.verified.record.replicas.count().is_none() {
            return Err("it runs on every node".into());
        }
        let lock = self.workload_lock(&id);
        let _turn = lock.lock().await;
        let me = self.peer_id();
        // Candidates other than this node (cordoned: it reports itself unable).
        let candidates = self.candidates(&opened.spec).await;
        // This node's slot counts as empty, so the plan places it.
        let holders: Vec<_> = self
            .slot_holders(&id)
            .await
            .into_iter()
            .map(|(h, _)| h)
            .filter(|h| h.peer != me && h.slot != desired.slot)
            .collect();
        let placed = self
            .place_slots(&signed, &opened, &candidates, &holders, &[desired.slot])
            .await
            .pop()
            .map(|(_, p)| p)
            .expect("one result per slot asked")
            .map_err(|notes| format!("no other node can take it: {notes}"))?;
        let target = &placed.target;
        let outcome = placed
            .outcome
            .map_err(|e| format!("…{} could not take it: {e}", short_id(target)))?;
        if !outcome.deployment.phase.is_healthy() {
            return Err(format!(
                "…{} did not get it running ({:?}); it stays here",
                short_id(target),
                outcome.deployment.phase
            ));
        }
        self.inner
            .node
            .delete_slot(&id, desired.slot)
            .await
            .map_err(|e| format!("moved to …{}, but not removed here: {e}", short_id(target)))?;
        self.mesh_event(
            Step::Heal,
            &id.to_string(),
            &desired.spec.version,
            Outcome::Ok,
            format!(
                "slot {} moved to …{}: this node is drained",
                desired.slot,
                short_id(target)
            ),
        );
        self.withdraw(&id).await;
        Ok(*target)
    }
}
