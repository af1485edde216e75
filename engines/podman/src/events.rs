//! Podman's events API (`GET /libpod/events?stream=true`), followed so that the node learns at
//! once when a container of one of its pods dies or is removed (by hand, say), rather than at
//! its next poll. The exit code a `died` event carries is kept (see `exits`).

use futures::StreamExt;
use mesh_runtime::error::{Error, Result};
use podman_api::opts::EventsOpts;
use podman_api::Podman;

use crate::exits::Exits;
use crate::names::LABEL_INSTANCE;
use crate::NAME;

/// Container events that mean an instance stopped: its process ended, or it was removed.
const STOPPED: [&str; 2] = ["died", "remove"];

/// Attribute of a `died` event with the container's exit code.
const EXIT_CODE: &str = "containerExitCode";

/// Sends the instance (pod) name of every container of this node's that died or was removed,
/// until the stream ends or `stopped` is closed; a `died` event's exit code is recorded in
/// `exits` before its instance is sent.
pub async fn watch(
    podman: &Podman,
    exits: &Exits,
    stopped: tokio::sync::mpsc::Sender<String>,
) -> Result<()> {
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
        let attributes = &event.actor.attributes;
        if let Some(instance) = attributes.get(LABEL_INSTANCE) {
            if event.action == "died" {
                let code = attributes
                    .get(EXIT_CODE)
                    .and_then(|c| c.parse::<i32>().ok());
                if let Some(code) = code {
                    exits.record(&event.actor.id, code);
                }
            }
            if stopped.send(instance.clone()).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}
