//! Lenient reads of the daemon API over the Unix socket, for the two answers whose typed
//! bollard models break against Podman's compatibility layer: container list and container
//! inspect. Podman reports states Docker never does (`stopped` while an exited container is
//! being cleaned up, `configured`), which fail bollard's closed enums; here every field is
//! optional and states are plain strings. Also carries Podman's own health-check endpoint.
//!
//! The requests are HTTP/1.0 (one request per connection, the answer delimited by the
//! close), which every daemon serves without chunked encoding.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Bound on the size of one answer (a container list of a busy host stays far below).
pub const MAX_ANSWER_BYTES: u64 = 16 * 1024 * 1024;

/// A daemon's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` on the daemon at `socket`.
pub async fn get(socket: &Path, path: &str, timeout: Duration) -> std::io::Result<Answer> {
    let attempt = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await?;
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: daemon\r\nAccept: application/json\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream
            .take(MAX_ANSWER_BYTES)
            .read_to_end(&mut answer)
            .await?;
        parse_answer(&answer)
    };
    tokio::time::timeout(timeout, attempt).await.map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("GET {path}: no answer within {timeout:?}"),
        )
    })?
}

fn parse_answer(answer: &[u8]) -> std::io::Result<Answer> {
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no HTTP status"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: answer[split + 4..].to_vec(),
    })
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /version`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Version {
    pub version: String,
    pub api_version: String,
    pub components: Option<Vec<Component>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Component {
    pub name: String,
    pub version: String,
}

/// One entry of `GET /containers/json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Summary {
    pub id: String,
    pub names: Option<Vec<String>>,
    pub labels: Option<HashMap<String, String>>,
}

/// `GET /containers/{id}/json`, the fields the engine reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Inspect {
    pub id: String,
    pub name: String,
    pub restart_count: i64,
    pub state: State,
    pub config: Config,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct State {
    /// `created`, `running`, `exited`, … as the daemon spells it (see [`State::phase`]).
    pub status: String,
    pub exit_code: i64,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub started_at: String,
    pub health: Option<HealthState>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthState {
    pub status: String,
    pub log: Option<Vec<HealthResult>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthResult {
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Config {
    pub healthcheck: Option<HealthConfig>,
    pub labels: Option<HashMap<String, String>>,
}

/// Durations in nanoseconds, as the API gives them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    pub test: Option<Vec<String>>,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub retries: Option<i64>,
    pub start_period: Option<i64>,
}

/// A container's state, normalised across daemons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Created,
    Running,
    /// Restart policy at work after an exit.
    Restarting,
    /// Exited, dead, or (Podman) stopped.
    Exited,
    /// Paused, removing, or a state this engine does not know.
    Other,
}

impl State {
    pub fn phase(&self) -> Phase {
        match self.status.to_ascii_lowercase().as_str() {
            "created" | "configured" | "initialized" => Phase::Created,
            "running" | "stopping" => Phase::Running,
            "restarting" => Phase::Restarting,
            "exited" | "dead" | "stopped" => Phase::Exited,
            _ => Phase::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_podman_states_parse() {
        let answer = parse_answer(
            b"HTTP/1.0 200 OK\r\nApi-Version: 1.41\r\nServer: Libpod/4.3.1 (linux)\r\n\r\n{\"a\":1}",
        )
        .expect("valid");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, b"{\"a\":1}".to_vec());
        assert_eq!(answer.header("api-version"), Some("1.41"));
        assert_eq!(answer.header("server"), Some("Libpod/4.3.1 (linux)"));
        assert!(parse_answer(b"garbage").is_err());

        let podman = br#"{"Id":"abc","Name":"/x","RestartCount":2,"State":{"Status":"stopped","ExitCode":3,
            "OOMKilled":false,"Health":{"Status":"healthy","Log":null}},"Config":{"Labels":null,"Healthcheck":null}}"#;
        let inspect: Inspect = serde_json::from_slice(podman).expect("lenient");
        assert_eq!(inspect.state.phase(), Phase::Exited);
        assert_eq!(inspect.state.exit_code, 3);
        assert_eq!(inspect.restart_count, 2);
        assert_eq!(
            encode("{\"label\":[\"a=b/c\"]}"),
            "%7B%22label%22%3A%5B%22a%3Db%2Fc%22%5D%7D"
        );
    }
}
