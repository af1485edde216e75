//! Podman's events API (`GET /libpod/events?stream=true`), followed so that the node learns at
//! once when a container of one of its pods dies or is removed (by hand, say), rather than at
//! its next poll.

use futures::StreamExt;
use mesh_runtime::error::{Error, Result};
use podman_api::opts::EventsOpts;
use podman_api::Podman;

use crate::names::LABEL_INSTANCE;
use crate::NAME;

/// Container events that mean an instance stopped: its process ended, or it was removed.
const STOPPED: [&str; 2] = ["died", "remove"];

/// Sends the instance (pod) name of every container of this node's that died or was removed,
/// until the stream ends or `stopped` is closed.
pub async fn watch(podman: &Podman, stopped: tokio::sync::mpsc::Sender<String>) -> Result<()> {
    let opts = EventsOpts::builder()
        .stream(true)
        .filters([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "event".to_string(),
                STOPPED.iter().map(|e| e.to_string()).collect(),
            ),
            // No `label` filter: Podman 4 matches a label given by key alone to nothing; the
            // instance label is looked for below instead.
        ])
        .build();
    let mut events = podman.events(&opts);
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| Error::engine(NAME, format!("events: {e}")))?;
        // The action is checked again: older versions ignore an `event` filter they do not
        // know.
        if !STOPPED.contains(&event.action.as_str()) {
            continue;
        }
        if let Some(instance) = event.actor.attributes.get(LABEL_INSTANCE) {
            if stopped.send(instance.clone()).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}
