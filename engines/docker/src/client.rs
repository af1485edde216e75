//! The connection to the daemon: created lazily (a node may start before its daemon), the
//! API version negotiated once per connection, errors turned into `runtime::Error`.
//!
//! Podman's Docker-compatible API is the same protocol with one gap that matters here: Podman
//! runs health checks from systemd timers, so on a host without systemd a container's health
//! never leaves `starting`. [`Client::drive_health`] fills that gap by asking Podman's own
//! endpoint (`GET /v<version>/libpod/containers/<id>/healthcheck`) to run the check, which is
//! what the timer would have done.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::{ClientVersion, Docker};
use mesh_runtime::error::Error;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::raw;

/// Client-side timeout of one ordinary API request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one health-check run requested from Podman.
const PODMAN_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a health run is remembered (longer than any sensible check interval).
const HEALTH_RUN_MEMORY: Duration = Duration::from_secs(600);
/// The API spoken when the daemon does not say (Docker 20.10, Podman 4's compat layer).
const OLDEST_API: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// A negotiated connection.
#[derive(Debug, Clone)]
pub struct Connection {
    pub docker: Docker,
    /// The daemon's own version (`20.10.24`, `4.3.1`).
    pub version: String,
    /// `Some(version)` when the daemon is Podman (its libpod API version).
    pub podman: Option<String>,
}

/// What answers on the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    /// Docker API version it speaks (`1.41`).
    pub api: String,
    /// Its own version (`20.10.24`, `4.3.1`).
    pub version: String,
    /// `Some(libpod API version)` when it is Podman.
    pub podman: Option<String>,
}

/// Lazily connected daemon client, shared by all operations of one engine.
#[derive(Debug)]
pub struct Client {
    engine: String,
    socket: PathBuf,
    conn: Mutex<Option<Connection>>,
    /// When each container's health check was last run on Podman's behalf.
    health_runs: std::sync::Mutex<HashMap<String, Instant>>,
}

impl Client {
    pub fn new(engine: &str, socket: &Path) -> Self {
        Self {
            engine: engine.to_string(),
            socket: socket.to_path_buf(),
            conn: Mutex::new(None),
            health_runs: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The connection, negotiating it first if needed. A failed attempt is not cached, so
    /// a daemon that comes up later is found by the next call.
    pub async fn get(&self) -> Result<Connection, Error> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = self.negotiate().await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// The bollard client.
    pub async fn docker(&self) -> Result<Docker, Error> {
        Ok(self.get().await?.docker)
    }

    /// Forgets the connection (after the daemon became unreachable) so the next call
    /// negotiates again with whatever daemon answers then.
    pub async fn reset(&self) {
        *self.conn.lock().await = None;
    }

    /// Who answers on the socket: `GET /_ping` (unversioned, cheap) and its headers; the
    /// slower `GET /version` (Podman collects its components' versions) only when a
    /// header is missing.
    pub async fn probe(&self) -> Result<Daemon, Error> {
        let path = self.socket.display().to_string();
        let unreachable = |e: std::io::Error| self.err(format!("cannot reach {path}: {e}"));
        let ping = raw::get(&self.socket, "/_ping", REQUEST_TIMEOUT)
            .await
            .map_err(unreachable)?;
        if ping.status != 200 {
            return Err(self.err(format!("{path}: GET /_ping answered HTTP {}", ping.status)));
        }
        let podman = ping.header("libpod-api-version").map(str::to_string);
        // `Server: Docker/20.10.24 (linux)` or `Server: Libpod/4.3.1 (linux)`.
        let server = ping
            .header("server")
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.split_once('/'))
            .map(|(_, v)| v.to_string());
        if let (Some(api), Some(version)) = (ping.header("api-version"), server) {
            return Ok(Daemon {
                api: api.to_string(),
                version,
                podman,
            });
        }
        let answer = raw::get(&self.socket, "/version", REQUEST_TIMEOUT)
            .await
            .map_err(unreachable)?;
        let version: raw::Version = serde_json::from_slice(&answer.body)
            .map_err(|e| self.err(format!("{path}: unreadable /version answer: {e}")))?;
        let podman = podman.or_else(|| {
            let components = version.components.iter().flatten();
            let mut podman = components.filter(|c| c.name.to_ascii_lowercase().contains("podman"));
            podman.next().map(|c| c.version.clone())
        });
        Ok(Daemon {
            api: version.api_version,
            version: version.version,
            podman,
        })
    }

    async fn negotiate(&self) -> Result<Connection, Error> {
        let path = self.socket.display().to_string();
        // The unversioned ping tells the API range the daemon speaks (a versioned path below
        // its minimum would be refused); then use the newest API both sides speak.
        let daemon = self.probe().await?;
        let chosen = match parse_api(&daemon.api) {
            Some(v) if v < *bollard::API_DEFAULT_VERSION => v,
            Some(_) => *bollard::API_DEFAULT_VERSION,
            None => OLDEST_API,
        };
        let docker = Docker::connect_with_unix(&path, REQUEST_TIMEOUT.as_secs(), &chosen)
            .map_err(|e| self.err(format!("cannot connect to {path}: {e}")))?;
        Ok(Connection {
            docker,
            version: daemon.version,
            podman: daemon.podman,
        })
    }

    /// `runtime::Error::Engine` for this engine.
    pub fn err(&self, message: impl Into<String>) -> Error {
        Error::engine(&self.engine, message)
    }

    /// Maps a daemon error, naming what was being done.
    pub fn api(&self, what: &str, e: bollard::errors::Error) -> Error {
        self.err(format!("{what}: {}", describe(&e)))
    }

    /// Whether the engine should run container `id`'s health check on Podman's behalf now:
    /// only against Podman, and at most once per `interval`.
    pub fn health_due(&self, conn: &Connection, id: &str, interval: Duration) -> bool {
        if conn.podman.is_none() {
            return false;
        }
        let now = Instant::now();
        let mut runs = self
            .health_runs
            .lock()
            .expect("health run map is never poisoned");
        runs.retain(|_, at| now.duration_since(*at) < HEALTH_RUN_MEMORY);
        match runs.get(id) {
            Some(at) if now.duration_since(*at) < interval => false,
            _ => {
                runs.insert(id.to_string(), now);
                true
            }
        }
    }

    /// Asks Podman to run the health check of container `id` now. A no-op against Docker,
    /// whose daemon runs checks itself. Failures are only logged: health is then read as is.
    pub async fn drive_health(&self, conn: &Connection, id: &str) {
        let Some(api) = &conn.podman else { return };
        let path = format!("/v{api}/libpod/containers/{id}/healthcheck");
        match raw::get(&self.socket, &path, PODMAN_HEALTH_TIMEOUT).await {
            Ok(answer) => {
                tracing::trace!(
                    container = id,
                    status = answer.status,
                    "podman health check run"
                )
            }
            Err(e) => {
                tracing::debug!(container = id, error = %e, "podman health check request failed")
            }
        }
    }

    /// `GET /v<api><path>` read leniently (see [`raw`]); `Ok(None)` on 404.
    pub async fn read<T: DeserializeOwned>(
        &self,
        conn: &Connection,
        path: &str,
        what: &str,
    ) -> Result<Option<T>, Error> {
        let full = format!("/v{}{path}", conn.docker.client_version());
        let mut attempt = 0;
        let raw::Answer { status, body, .. } = loop {
            let answer = raw::get(&self.socket, &full, REQUEST_TIMEOUT)
                .await
                .map_err(|e| self.err(format!("{what}: {e}")))?;
            // Podman answers 500 "read /proc/PID/cgroup: no such process" when it inspects a
            // container whose process ended between its lookup and the read: asked again,
            // it answers with the exited container.
            let vanished_process = answer.status == 500
                && String::from_utf8_lossy(&answer.body).contains("no such process");
            if vanished_process && attempt < INSPECT_RETRIES {
                attempt += 1;
                tokio::time::sleep(INSPECT_RETRY_PAUSE * attempt).await;
                continue;
            }
            break answer;
        };
        match status {
            200 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| self.err(format!("{what}: unreadable answer: {e}"))),
            404 => Ok(None),
            code => {
                let message = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| {
                        v.get("message")
                            .and_then(|m| m.as_str())
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
                Err(self.err(format!("{what}: {message} (HTTP {code})")))
            }
        }
    }
}

/// Times a read is asked again after Podman's "no such process" (see [`Client::read`]), and
/// the pause before the first retry (growing with each).
const INSPECT_RETRIES: u32 = 3;
const INSPECT_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

fn parse_api(raw: &str) -> Option<ClientVersion> {
    let (major, minor) = raw.trim().split_once('.')?;
    Some(ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    })
}

/// The daemon's own words for an error.
pub fn describe(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => {
            format!("{} (HTTP {status_code})", message.trim())
        }
        other => other.to_string(),
    }
}

/// HTTP status of a daemon error, if it was one.
pub fn status_code(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    status_code(e) == Some(404)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_parse() {
        let v = parse_api("1.41").expect("valid");
        assert_eq!((v.major_version, v.minor_version), (1, 41));
        assert!(parse_api("garbage").is_none());
        assert!(parse_api("1.53").expect("valid") >= *bollard::API_DEFAULT_VERSION);
    }

    #[test]
    fn daemon_errors_read_as_one_line() {
        let e = bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message: "No such image: x\n".into(),
        };
        assert_eq!(describe(&e), "No such image: x (HTTP 404)");
        assert!(is_not_found(&e));
    }
}
