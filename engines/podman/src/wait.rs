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
/// Jobs waited for at once: each wait has Podman sync its container every [`INTERVAL`];
/// beyond this many, a Job's end is left to the events.
const MAX_WAITS: usize = 8;
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
    /// No waits at all (tests of the events alone).
    off: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct Waits {
    /// Pod → its wait (at most [`MAX_WAITS`]).
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

    /// Turns the waits off: Jobs end through the events alone.
    pub(crate) fn turn_off(&self) {
        self.off.store(true, std::sync::atomic::Ordering::Relaxed);
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
        let off = self.jobs.off.load(std::sync::atomic::Ordering::Relaxed);
        if off || !data.job || data.main_ids.is_empty() {
            return;
        }
        let mut waits = self.jobs.lock();
        // Finished waits go here (and a removed pod's in `forget`).
        waits.running.retain(|_, wait| !wait.is_finished());
        if waits.running.len() >= MAX_WAITS && !waits.running.contains_key(&data.pod) {
            tracing::debug!(pod = %data.pod, "enough Jobs waited for: left to the events");
            return;
        }
        let task = tokio::spawn(watch_job(
            self.socket().to_path_buf(),
            data.pod.clone(),
            data.main_ids.clone(),
            self.exits.clone(),
            waits.stopped.clone(),
        ));
        if let Some(old) = waits.running.insert(data.pod.clone(), task.abort_handle()) {
            old.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(pod: &str) -> InstanceData {
        InstanceData {
            pod: pod.into(),
            job: true,
            main_ids: vec![format!("{pod}-work")],
            ..InstanceData::default()
        }
    }

    #[tokio::test]
    async fn at_most_eight_jobs_are_waited_for_at_once() {
        // A "Podman" that takes connections and never answers: every wait stays open.
        let socket = std::env::temp_dir().join(format!("mesh-wait-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let engine = PodmanEngine::connect(&socket);
        let waiting = |engine: &PodmanEngine| engine.jobs.lock().running.len();
        for i in 0..10 {
            engine.wait_for_job(&job(&format!("p{i}")));
        }
        assert_eq!(waiting(&engine), MAX_WAITS);
        assert!(
            !engine.jobs.lock().running.contains_key("p9"),
            "left to the events"
        );
        // A long-running pod is never waited for.
        let mut service = job("svc");
        service.job = false;
        engine.jobs.forget("p0");
        engine.wait_for_job(&service);
        assert_eq!(waiting(&engine), MAX_WAITS - 1);
        engine.wait_for_job(&job("p9"));
        assert!(engine.jobs.lock().running.contains_key("p9"), "room again");
        for i in 0..10 {
            engine.jobs.forget(&format!("p{i}"));
        }
        assert_eq!(waiting(&engine), 0);
        held.abort();
        let _ = std::fs::remove_file(&socket);
    }
}
