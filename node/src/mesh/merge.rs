//! One deployment view from a workload record and the reports of the nodes that run it,
//! and the small conversions between peers' answers and API errors.

use libp2p::PeerId;
use mesh_protocol::api::{ApplyAction, Deployment, Replica};
use mesh_protocol::wire::{Provider, Response};
use mesh_protocol::{Phase, WorkloadId, WorkloadKind, WorkloadSpec};
use mesh_provider::newest_per_provider;
use mesh_provider::record::NodeRecord;
use mesh_provider::workload::Verified;
use mesh_runtime::{now_millis, Candidate};

use super::Error;
use crate::view::overall_phase;

/// An error answer from a peer, as an API error.
pub(crate) fn from_response(peer: &PeerId, r: Result<Response, String>) -> Result<Response, Error> {
    match r {
        Ok(Response::Error { status, message }) => Err(Error::Peer { status, message }),
        Ok(other) => Ok(other),
        Err(reason) => Err(Error::Unreachable {
            peer: *peer,
            reason,
        }),
    }
}

/// The last six characters of a peer id: enough to tell nodes apart in notes and log lines.
pub(crate) fn short_id(peer: &PeerId) -> String {
    let s = peer.to_string();
    s[s.len().saturating_sub(6)..].to_string()
}

pub(crate) fn unexpected(peer: &PeerId) -> Error {
    Error::Unexpected(*peer)
}

/// Engine candidates of a peer as selection sees them.
pub(crate) fn candidates_of(record: &NodeRecord) -> Vec<Candidate> {
    record
        .engines
        .iter()
        .map(|e| Candidate {
            name: e.name.clone(),
            healthy: e.healthy,
            detail: if e.healthy {
                String::new()
            } else {
                "unhealthy".to_string()
            },
            kinds: WorkloadKind::ALL
                .iter()
                .copied()
                .filter(|k| e.kinds.iter().any(|n| n == k.as_str()))
                .collect(),
        })
        .collect()
}

/// One deployment from the replicas several nodes reported.
pub fn merge(mut parts: Vec<Deployment>) -> Option<Deployment> {
    parts.sort_by_key(|d| std::cmp::Reverse(d.updated_at));
    let mut base = parts.first()?.clone();
    base.replicas = parts
        .iter()
        .flat_map(|d| d.replicas.iter().cloned())
        .collect();
    base.replicas
        .sort_by(|a, b| (a.slot, &a.node).cmp(&(b.slot, &b.node)));
    base.desired_replicas = parts.iter().map(|d| d.desired_replicas).max().unwrap_or(1);
    base.phase = overall_phase(&base.replicas);
    base.error = base.replicas.iter().find_map(|r| r.error.clone());
    if let Some(first) = base.replicas.first() {
        base.engine = first.engine.clone();
        base.engine_reason = first.engine_reason.clone();
    }
    let mut events: Vec<_> = parts.into_iter().flat_map(|d| d.events).collect();
    events.sort_by_key(|e| (e.at, e.seq));
    base.events = events;
    Some(base)
}

pub(crate) fn combine_actions(actions: &[ApplyAction]) -> ApplyAction {
    if actions.contains(&ApplyAction::Failed) {
        ApplyAction::Failed
    } else if actions.contains(&ApplyAction::RolledBack) {
        ApplyAction::RolledBack
    } else if actions.iter().all(|a| *a == ApplyAction::Unchanged) {
        ApplyAction::Unchanged
    } else if actions
        .iter()
        .all(|a| matches!(a, ApplyAction::Created | ApplyAction::Unchanged))
    {
        ApplyAction::Created
    } else {
        ApplyAction::Updated
    }
}

/// Providers of a workload from the copies of its records the gossip cache holds (see
/// [`Mesh::cache_is_warm`]).
pub(crate) fn cached_providers(
    id: &WorkloadId,
    heard: &[(PeerId, Vec<u8>)],
    engine: Option<&str>,
) -> Vec<Provider> {
    let workload = id.to_string();
    let raw = heard.iter().map(|(peer, r)| (Some(*peer), r.as_slice()));
    newest_per_provider(raw, &workload, engine, now_millis())
}

/// The view of a replica that could not be reached or run.
pub(crate) fn failed_part(
    spec: &WorkloadSpec,
    desired: u32,
    notes: &[String],
    peer: &str,
    engine: &str,
    error: String,
) -> Deployment {
    let now = now_millis();
    Deployment {
        name: spec.name.clone(),
        namespace: spec.namespace.clone(),
        kind: spec.kind,
        version: spec.version.clone(),
        engine: engine.to_string(),
        engine_reason: String::new(),
        phase: Phase::Failed,
        error: Some(error.clone()),
        desired_replicas: desired,
        revision: None,
        submitter: None,
        replicas: vec![Replica {
            node: peer.to_string(),
            phase: Phase::Failed,
            engine: engine.to_string(),
            engine_reason: String::new(),
            version: spec.version.clone(),
            error: Some(error),
            instance: None,
            exit_code: None,
            restarts: 0,
            updated_at: now,
            slot: None,
            job: None,
        }],
        placement: notes.to_vec(),
        warnings: spec.warnings.clone(),
        resources: spec.resources,
        annotations: spec.annotations.clone(),
        created_at: now,
        updated_at: now,
        history: Vec::new(),
        events: Vec::new(),
    }
}

/// The deployment a record describes when no node that runs it answered: what the mesh wants
/// (the record) and what the signed provider records say runs (`providers`).
pub(crate) fn from_record(v: &Verified, providers: &[Provider]) -> Deployment {
    let r = &v.record;
    let mut replicas: Vec<Replica> = providers
        .iter()
        .map(|p| Replica {
            node: p.peer_id.clone(),
            phase: p.phase,
            engine: p.engine.clone(),
            engine_reason: String::new(),
            version: p.version.clone(),
            error: None,
            instance: None,
            exit_code: None,
            restarts: 0,
            updated_at: p.issued_at,
            slot: p.slot,
            job: None,
        })
        .collect();
    replicas.sort_by_key(|rep| (rep.slot, rep.node.clone()));
    let first = replicas.first();
    Deployment {
        name: r.id.name.clone(),
        namespace: r.id.namespace.clone(),
        kind: r.kind,
        version: r.spec_version.clone(),
        engine: first.map(|p| p.engine.clone()).unwrap_or_default(),
        engine_reason: String::new(),
        phase: if r.tombstone {
            Phase::Deleted
        } else {
            overall_phase(&replicas)
        },
        error: None,
        desired_replicas: r.replicas.count().unwrap_or(replicas.len() as u32),
        revision: Some(r.revision),
        submitter: Some(r.submitter.clone()),
        replicas,
        placement: Vec::new(),
        warnings: Vec::new(),
        resources: Default::default(),
        annotations: Default::default(),
        created_at: r.issued_at,
        updated_at: r.issued_at,
        history: Vec::new(),
        events: Vec::new(),
    }
}

/// Stamps a view with the record that describes the workload: the mesh's desired state
/// wins over what any one node reported.
pub(crate) fn with_record(mut d: Deployment, v: &Verified) -> Deployment {
    let r = &v.record;
    d.revision = Some(r.revision);
    d.submitter = Some(r.submitter.clone());
    d.kind = r.kind;
    d.version = r.spec_version.clone();
    if let Some(n) = r.replicas.count() {
        d.desired_replicas = n;
    }
    d
}
