//! `GET /metrics`: reads what is cheaper to read than to maintain (engine health, connected
//! peers, workloads by phase and engine, the event log's dropped count), sets those gauges,
//! and encodes the registry as OpenMetrics text.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mesh_protocol::api::{Deployment, EngineInfo};

use super::{EngineLabels, Metrics, WorkloadLabels};
use crate::mesh::Mesh;

/// The content type of the OpenMetrics text exposition (what `encode` writes).
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label sets of the workloads gauge seen by earlier scrapes: one whose workloads are all
/// gone reads 0 rather than vanishing.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    workloads: HashSet<WorkloadLabels>,
}

/// What a scrape reads from the node.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) engines: Vec<EngineInfo>,
    pub(crate) connected_peers: usize,
    pub(crate) gossip_mesh_peers: usize,
    pub(crate) deployments: Vec<Deployment>,
    pub(crate) event_log_dropped: u64,
}

impl Metrics {
    /// Sets the scrape-time gauges from `snapshot` and encodes every metric.
    pub(crate) fn render(&self, snapshot: &Snapshot) -> Result<String, std::fmt::Error> {
        let mut seen = self
            .scraping
            .lock()
            .expect("the scrape lock is never poisoned");
        for engine in &snapshot.engines {
            let labels = EngineLabels {
                engine: engine.name.clone(),
            };
            self.engine_healthy
                .get_or_create(&labels)
                .set(i64::from(engine.healthy));
        }
        self.connected_peers
            .set(i64::try_from(snapshot.connected_peers).unwrap_or(i64::MAX));
        self.gossip_mesh_peers
            .set(i64::try_from(snapshot.gossip_mesh_peers).unwrap_or(i64::MAX));
        let mut counts: BTreeMap<(&'static str, &str), i64> = BTreeMap::new();
        for d in &snapshot.deployments {
            *counts.entry((d.phase.as_str(), &d.engine)).or_default() += 1;
        }
        for labels in &seen.workloads {
            if !counts.contains_key(&(labels.phase, labels.engine.as_str())) {
                self.workloads.get_or_create(labels).set(0);
            }
        }
        for ((phase, engine), n) in counts {
            let labels = WorkloadLabels {
                phase,
                engine: engine.to_string(),
            };
            self.workloads.get_or_create(&labels).set(n);
            seen.workloads.insert(labels);
        }
        // The store's count only grows: the counter is set to it.
        self.event_log_dropped
            .inner()
            .store(snapshot.event_log_dropped, Ordering::Relaxed);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, self.registry())?;
        Ok(out)
    }
}

/// `GET /metrics`.
pub async fn scrape(State(mesh): State<Mesh>) -> Response {
    let node = mesh.node();
    let deployments = match node.list() {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot list workloads");
            Vec::new()
        }
    };
    let snapshot = Snapshot {
        engines: node.registry().infos(),
        connected_peers: mesh.net().connected_peers().await.len(),
        gossip_mesh_peers: mesh.net().gossip_mesh_peers().await.len(),
        deployments,
        event_log_dropped: node.store().events_dropped(),
    };
    match node.metrics().render(&snapshot) {
        Ok(body) => ([(CONTENT_TYPE, CONTENT_TYPE_OPENMETRICS)], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the metrics: {e}"),
        )
            .into_response(),
    }
}
