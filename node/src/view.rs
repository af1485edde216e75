//! Turns stored records into the `Deployment` shown by the API and `meshctl`.

use mesh_protocol::api::{Deployment, Replica};
use mesh_protocol::{Event, Phase};

use crate::store::{Desired, Observed};

/// Overall phase of a workload from its replicas: Running when all run, Failed when any
/// failed, otherwise the least advanced phase.
pub fn overall_phase(replicas: &[Replica]) -> Phase {
    if replicas.is_empty() {
        return Phase::Pending;
    }
    if replicas.iter().any(|r| r.phase == Phase::Failed) {
        return Phase::Failed;
    }
    if replicas.iter().any(|r| r.phase == Phase::CrashLoopBackOff) {
        return Phase::CrashLoopBackOff;
    }
    if replicas.iter().all(|r| r.phase == replicas[0].phase) {
        return replicas[0].phase;
    }
    if replicas
        .iter()
        .all(|r| matches!(r.phase, Phase::Running | Phase::Succeeded))
    {
        return Phase::Running;
    }
    replicas
        .iter()
        .map(|r| r.phase)
        .find(|p| !p.is_settled())
        .unwrap_or(Phase::Unknown)
}

pub fn deployment(
    node: &str,
    desired: &Desired,
    observed: &Observed,
    events: Vec<Event>,
) -> Deployment {
    let spec = &desired.spec;
    let replicas: Vec<Replica> = observed
        .replicas
        .iter()
        .map(|r| Replica {
            node: node.to_string(),
            phase: r.phase,
            engine: r.engine.clone(),
            engine_reason: r.engine_reason.clone(),
            version: r.version.clone(),
            error: r.error.clone(),
            instance: r.handle.as_ref().map(|h| h.instance.clone()),
            exit_code: r.exit_code,
            restarts: r.restarts + observed.restart.total,
            updated_at: r.updated_at,
            slot: Some(desired.slot),
            job: r.job.clone(),
        })
        .collect();
    let phase = overall_phase(&replicas);
    let first = replicas.first();
    Deployment {
        name: spec.name.clone(),
        namespace: spec.namespace.clone(),
        kind: spec.kind,
        version: spec.version.clone(),
        engine: first.map(|r| r.engine.clone()).unwrap_or_default(),
        engine_reason: first.map(|r| r.engine_reason.clone()).unwrap_or_default(),
        phase,
        error: replicas.iter().find_map(|r| r.error.clone()),
        desired_replicas: desired.replicas,
        revision: None,
        submitter: None,
        placement: desired.placement.clone(),
        warnings: spec.warnings.clone(),
        resources: spec.resources,
        annotations: spec.annotations.clone(),
        created_at: desired.created_at,
        updated_at: desired.updated_at.max(first.map_or(0, |r| r.updated_at)),
        history: desired.history.clone(),
        replicas,
        events,
    }
}
