//! Exits and drift from the engines' own events: each engine that has them is followed
//! (Podman's and Docker's events APIs, the WASM runner's final frame, the process engine's
//! reaper), and an instance it reports stopped, dead or removed has its workload looked at at
//! once by the monitor (see [`crate::recovery`]), which records the exit (a job's end, too)
//! and restarts it per its policy ([`crate::restart`]). Engines without events (and events
//! missed while a daemon restarts) are caught by the monitor's polling.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use mesh_runtime::{Engine, Error as EngineError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::service::Node;

/// Pause before following an engine's events again after the stream ended or failed (its
/// daemon restarted, or is down); doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How long an event waits for its workload's apply or delete to finish before it is left to
/// the monitor's poll.
const EVENT_LOCK_WAIT: Duration = Duration::from_secs(30);

/// Follows one engine's events until it has none or the node stops.
async fn follow(engine: Arc<dyn Engine>, stopped: mpsc::Sender<String>, stop: CancellationToken) {
    let mut pause = RETRY_FIRST;
    loop {
        let ended = tokio::select! {
            r = engine.watch(stopped.clone()) => r,
            _ = stop.cancelled() => return,
        };
        match ended {
            Err(EngineError::Unsupported { .. }) => return,
            Err(e) => {
                tracing::debug!(engine = engine.name(), error = %e, "engine events interrupted")
            }
            Ok(()) => tracing::debug!(engine = engine.name(), "engine events ended"),
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => return,
        }
        pause = (pause * 2).min(RETRY_MAX);
    }
}

impl Node {
    /// Follows every engine's events until `stop`; runs inside one task, so nothing outlives
    /// the node.
    pub async fn run_engine_events(self, stop: CancellationToken) {
        let (tx, mut rx) = mpsc::channel::<String>(256);
        let registry = self.registry().clone();
        let mut followers: FuturesUnordered<BoxFuture<'static, ()>> = registry
            .names()
            .filter_map(|name| registry.get(name).cloned())
            .map(|engine| -> BoxFuture<'static, ()> {
                Box::pin(follow(engine, tx.clone(), stop.clone()))
            })
            .collect();
        drop(tx);
        // Each event is handled on its own: one waiting for its workload's apply to answer
        // does not hold up the others.
        let mut handling: FuturesUnordered<BoxFuture<'static, ()>> = FuturesUnordered::new();
        loop {
            tokio::select! {
                Some(instance) = rx.recv() => {
                    let node = self.clone();
                    handling.push(Box::pin(async move { node.instance_stopped(&instance).await }));
                }
                Some(()) = handling.next(), if !handling.is_empty() => {}
                Some(()) = followers.next(), if !followers.is_empty() => {}
                _ = stop.cancelled() => return,
                else => return,
            }
        }
    }

    /// An engine said `instance` stopped: the workload it belongs to, if this node runs it,
    /// is looked at now.
    async fn instance_stopped(&self, instance: &str) {
        let Ok(list) = self.store().list_desired() else {
            return;
        };
        for desired in list {
            let id = desired.spec.id();
            let ours = self.store().observed(&id).is_ok_and(|o| {
                o.replicas
                    .iter()
                    .any(|r| r.handle.as_ref().is_some_and(|h| h.instance == instance))
            });
            if ours {
                tracing::debug!(workload = %id, instance, "engine reports the instance stopped");
                if let Err(e) = self.monitor_workload(desired, Some(EVENT_LOCK_WAIT)).await {
                    tracing::warn!(workload = %id, error = %e, "cannot look at a stopped instance");
                }
                return;
            }
        }
    }
}
