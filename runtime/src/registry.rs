//! Engines registered on a node, by name, with the latest fingerprint of each.
//!
//! Availability is a periodic fingerprint, not a one-shot check: [`Registry::refresh`] probes
//! every engine (each probe bounded by [`FINGERPRINT_TIMEOUT`]) and
//! [`Registry::run_fingerprints`] repeats it until cancelled.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_protocol::api::EngineInfo;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, Fingerprint};
use crate::now_millis;
use crate::select::Candidate;

/// Bound on one fingerprint probe: a hung daemon counts as unhealthy.
pub const FINGERPRINT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
struct Probe {
    fingerprint: Fingerprint,
    checked_at: u64,
}

/// Engines by name. Cheap to share (`Arc<Registry>`); no global state.
#[derive(Debug, Default)]
pub struct Registry {
    engines: BTreeMap<String, Arc<dyn Engine>>,
    probes: Mutex<BTreeMap<String, Probe>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an engine; a second engine with the same name replaces the first.
    pub fn register(&mut self, engine: Arc<dyn Engine>) {
        self.engines.insert(engine.name().to_string(), engine);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Engine>> {
        self.engines.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.engines.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.engines.is_empty()
    }

    /// Probes every engine once, concurrently, and records the results.
    pub async fn refresh(&self) {
        let probes = self.engines.iter().map(|(name, engine)| async move {
            let fingerprint =
                match tokio::time::timeout(FINGERPRINT_TIMEOUT, engine.fingerprint()).await {
                    Ok(fp) => fp,
                    Err(_) => Fingerprint::unhealthy(format!(
                        "no answer within {}",
                        mesh_protocol::duration::format(FINGERPRINT_TIMEOUT)
                    )),
                };
            (name.clone(), fingerprint)
        });
        let results = futures::future::join_all(probes).await;
        let now = now_millis();
        let mut map = self.probes.lock().expect("probe lock is never poisoned");
        for (name, fingerprint) in results {
            if map.get(&name).map(|p| p.fingerprint.healthy) != Some(fingerprint.healthy) {
                tracing::info!(engine = %name, healthy = fingerprint.healthy, detail = %fingerprint.detail, "engine health changed");
            }
            map.insert(
                name,
                Probe {
                    fingerprint,
                    checked_at: now,
                },
            );
        }
    }

    /// Repeats [`Registry::refresh`] every `period` until `stop` is set.
    pub async fn run_fingerprints(self: Arc<Self>, period: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.refresh().await,
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Latest fingerprint of an engine (`None` before the first probe).
    pub fn fingerprint(&self, name: &str) -> Option<Fingerprint> {
        let map = self.probes.lock().expect("probe lock is never poisoned");
        map.get(name).map(|p| p.fingerprint.clone())
    }

    /// The engines as engine selection sees them.
    pub fn candidates(&self) -> Vec<Candidate> {
        let map = self.probes.lock().expect("probe lock is never poisoned");
        self.engines
            .iter()
            .map(|(name, engine)| {
                let probe = map.get(name);
                Candidate {
                    name: name.clone(),
                    healthy: probe.is_some_and(|p| p.fingerprint.healthy),
                    detail: probe.map_or_else(
                        || "not probed yet".to_string(),
                        |p| p.fingerprint.detail.clone(),
                    ),
                    kinds: engine.kinds().to_vec(),
                }
            })
            .collect()
    }

    /// The engines as `GET /plugins` shows them.
    pub fn infos(&self) -> Vec<EngineInfo> {
        let map = self.probes.lock().expect("probe lock is never poisoned");
        self.engines
            .iter()
            .map(|(name, engine)| {
                let probe = map.get(name);
                EngineInfo {
                    name: name.clone(),
                    healthy: probe.is_some_and(|p| p.fingerprint.healthy),
                    version: probe.and_then(|p| p.fingerprint.version.clone()),
                    capabilities: engine
                        .capabilities()
                        .iter()
                        .map(|c| c.to_string())
                        .collect(),
                    kinds: engine.kinds().to_vec(),
                    detail: probe.map_or_else(
                        || "not probed yet".to_string(),
                        |p| p.fingerprint.detail.clone(),
                    ),
                    checked_at: probe.map_or(0, |p| p.checked_at),
                }
            })
            .collect()
    }
}
