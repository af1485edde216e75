//! Lifecycle steps of this node's replicas as stored events, and engine handles persisted as
//! soon as they exist (so a crash right after an install still finds the instance).

use std::time::Duration;

use mesh_protocol::{Event, Outcome, Phase, Step, WorkloadSpec};
use mesh_runtime::{now_millis, Handle, Observer};

use crate::store::{ReplicaRecord, Store};

/// Records lifecycle steps as stored events and persists handles as soon as they exist.
pub(crate) struct Recorder<'a> {
    pub(crate) store: &'a Store,
    pub(crate) ordinal: u32,
    pub(crate) reason: &'a str,
}

impl Observer for Recorder<'_> {
    fn step(
        &self,
        spec: &WorkloadSpec,
        engine: &str,
        step: Step,
        outcome: Outcome,
        took: Duration,
        message: &str,
    ) {
        let event = Event {
            seq: 0,
            at: now_millis(),
            workload: spec.id().to_string(),
            version: spec.version.clone(),
            step,
            outcome,
            duration_us: took.as_micros() as u64,
            engine: Some(engine.to_string()),
            message: message.to_string(),
            correlation: None,
        };
        tracing::debug!(workload = %event.workload, %step, ?outcome, us = event.duration_us, %message, "lifecycle step");
        if let Err(e) = self.store.append_event(event) {
            tracing::error!(error = %e, "cannot record event");
        }
    }

    fn installed(&self, spec: &WorkloadSpec, handle: &Handle) {
        let id = spec.id();
        let result = self.store.observed(&id).and_then(|mut obs| {
            let record = ReplicaRecord {
                ordinal: self.ordinal,
                phase: Phase::Installing,
                engine: handle.engine.clone(),
                engine_reason: self.reason.to_string(),
                version: spec.version.clone(),
                handle: Some(handle.clone()),
                error: None,
                exit_code: None,
                restarts: 0,
                updated_at: now_millis(),
                job: None,
            };
            // An update keeps the old replica until it is replaced: store the new one beside it.
            obs.replicas
                .retain(|r| !(r.ordinal == self.ordinal && r.version == spec.version));
            obs.replicas.push(record);
            self.store.put_observed(&id, &obs)?;
            self.store.flush()
        });
        if let Err(e) = result {
            tracing::error!(workload = %id, error = %e, "cannot persist handle");
        }
    }
}
