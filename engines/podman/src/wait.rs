//! A Job's exit, asked of Podman as `podman wait` does: `POST
//! /libpod/containers/{id}/wait?condition=exited` answers with the exit code as soon as Podman
//! syncs the container's state, which it does every `interval`. Podman's own `died` event
//! comes only once a sync happened anyway (its cleanup process, spawned by conmon), and its
//! event stream is read from a file it tails: with `curl` on this machine, the init, start and
//! died events of a `/bin/true` container all arrived 140-190 ms after the pod start returned,
//! while a wait issued right after the start returned 54-70 ms after it, with the code
//! (docs/benchmarks.md). The wait is asked for a short while after a Job's pod starts
//! ([`QUICK`]); a longer run is left to the events and the node's poll.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use mesh_runtime::error::{Error, Result};
use tokio::sync::mpsc;

use crate::exits::Exits;
use crate::handle::InstanceData;
use crate::{PodmanEngine, NAME};

/// How long after its start a Job's containers are waited for.
pub(crate) const QUICK: Duration = Duration::from_secs(10);
/// How often Podman syncs the container while it is waited for (its default is 250 ms).
const INTERVAL: &str = "10ms";

/// Waits for one container to exit and returns its exit code.
async fn wait_exited(socket: &Path, id: &str) -> Result<i32> {
    let failed = |e: String| Error::engine(NAME, format!("wait for {id}: {e}"));
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::post(format!(
        "/v4.0.0/libpod/containers/{id}/wait?condition=exited&interval={INTERVAL}"
    ))
    .header("host", "d")
    .body(Empty::<Bytes>::new())
    .map_err(|e| failed(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| failed(e.to_string()));
    let answer = match resp {
        Ok(resp) => {
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| failed(e.to_string()))?
                .to_bytes();
            let text = String::from_utf8_lossy(&body).trim().to_string();
            if status.is_success() {
                text.parse::<i32>()
                    .map_err(|_| failed(format!("unexpected answer {text:?}")))
            } else {
                Err(failed(format!("{status}: {text}")))
            }
        }
        Err(e) => Err(e),
    };
    conn.abort();
    answer
}

/// Waits (up to [`QUICK`]) for the main containers `ids` of `pod` to exit, records each
/// code in `exits` and, once every one exited, tells `stopped` (the node's events) the pod.
pub(crate) async fn watch_job(
    socket: PathBuf,
    pod: String,
    ids: Vec<String>,
    exits: Arc<Exits>,
    stopped: Option<mpsc::Sender<String>>,
) {
    let all = async {
        for id in &ids {
            match wait_exited(&socket, id).await {
                Ok(code) => exits.record(id, code),
                Err(e) => {
                    tracing::debug!(pod = %pod, error = %e, "left to the events");
                    return false;
                }
            }
        }
        true
    };
    let exited = tokio::time::timeout(QUICK, all).await.unwrap_or(false);
    if exited {
        if let Some(stopped) = stopped {
            let _ = stopped.send(pod).await;
        }
    }
}

/// The Job pods being waited for, and where their ends are told; shared by the engine's
/// clones.
#[derive(Debug, Default)]
pub(crate) struct JobWaits {
    inner: Mutex<Waits>,
}

#[derive(Debug, Default)]
struct Waits {
    /// Pod → its wait.
    running: HashMap<String, tokio::task::AbortHandle>,
    /// The node's events channel, once it follows this engine's events (`Engine::watch`).
    stopped: Option<mpsc::Sender<String>>,
}

impl JobWaits {
    fn lock(&self) -> MutexGuard<'_, Waits> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the ends of waited-for Jobs are told from now on.
    pub(crate) fn tell(&self, stopped: mpsc::Sender<String>) {
        self.lock().stopped = Some(stopped);
    }

    /// Stops waiting for a removed pod.
    pub(crate) fn forget(&self, pod: &str) {
        if let Some(wait) = self.lock().running.remove(pod) {
            wait.abort();
        }
    }
}

impl PodmanEngine {
    /// After a Job's pod started: waits for its main containers in the background (see
    /// [`watch_job`]). Long-running pods, and handles from before the ids were kept, are left
    /// to the events.
    pub(crate) fn wait_for_job(&self, data: &InstanceData) {
        if !data.job || data.main_ids.is_empty() {
            return;
        }
        let stopped = self.jobs.lock().stopped.clone();
        let jobs = self.jobs.clone();
        let pod = data.pod.clone();
        let task = tokio::spawn(watch_job(
            self.socket().to_path_buf(),
            data.pod.clone(),
            data.main_ids.clone(),
            self.exits.clone(),
            stopped,
        ));
        let abort = task.abort_handle();
        if let Some(old) = self.jobs.lock().running.insert(pod.clone(), abort) {
            old.abort();
        }
        // The entry goes once the wait ends (unless a newer start replaced it).
        tokio::spawn(async move {
            let _ = task.await;
            let mut waits = jobs.lock();
            if waits.running.get(&pod).is_some_and(|a| a.is_finished()) {
                waits.running.remove(&pod);
            }
        });
    }
}
