//! Client of the local API, used by `meshctl` and tests: HTTP/1.1 over the node's Unix socket
//! or over TCP (`http://127.0.0.1:PORT`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use mesh_protocol::api::ErrorBody;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bound on one request, apply included (an apply answers once the workload settled).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest answer read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Where the node listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    Tcp(String),
}

impl Target {
    /// `http://host:port` or a socket path.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        if let Some(rest) = s.strip_prefix("http://") {
            let authority = rest.trim_end_matches('/');
            if authority.is_empty() || authority.contains('/') {
                bail!("--node {s:?}: expected http://HOST:PORT");
            }
            return Ok(Target::Tcp(authority.to_string()));
        }
        if s.starts_with("https://") {
            bail!("--node {s:?}: the local API speaks plain HTTP on loopback; use http:// or the socket path");
        }
        Ok(Target::Unix(PathBuf::from(s)))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "{}", p.display()),
            Target::Tcp(a) => write!(f, "http://{a}"),
        }
    }
}

/// A client of one node.
#[derive(Debug, Clone)]
pub struct Client {
    target: Target,
    /// `Authorization` header value, for an HTTP API started with `--http-token`.
    authorization: Option<String>,
}

/// The node answered, refusing: its status (HTTP's, also on the wire) and one-line reason.
/// `meshctl` exits with a status of its own for some (see [`crate::cli::exit_code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    pub status: u16,
    pub message: String,
}

/// The node could not be reached at all (no daemon, wrong address, no answer in time).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// An answer: status and body bytes.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    /// Decodes a success body, or turns an error body into its one-line message.
    pub fn json<T: DeserializeOwned>(self) -> anyhow::Result<T> {
        if !self.status.is_success() {
            return Err(self.refused());
        }
        serde_json::from_slice(&self.body).context("the node answered with an unexpected body")
    }

    /// The answer as a [`Refused`] error.
    pub fn refused(&self) -> anyhow::Error {
        anyhow::Error::new(Refused {
            status: self.status.as_u16(),
            message: self.error_message(),
        })
    }

    pub fn error_message(&self) -> String {
        match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(e) => e.error,
            Err(_) => format!(
                "node answered {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body).trim()
            ),
        }
    }
}

impl Client {
    pub fn new(target: Target) -> Self {
        Self {
            target,
            authorization: None,
        }
    }

    /// Sends `token` with every request (see `meshd --http-token`).
    pub fn with_token(mut self, token: &crate::local_api::Token) -> Self {
        self.authorization = Some(token.header_value());
        self
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends one request and reads the whole answer.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Answer> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.request_inner(method, path, body))
            .await
            .map_err(|_| {
                anyhow::Error::new(Unreachable(format!(
                    "no answer from the node at {} within {:?}",
                    self.target, REQUEST_TIMEOUT
                )))
            })?
    }

    async fn request_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Answer> {
        let unreachable = |e: std::io::Error| {
            anyhow::Error::new(Unreachable(format!(
                "cannot reach meshd at {}: {e} (is meshd running? set --node or MESH_NODE)",
                self.target
            )))
        };
        let (mut sender, host) = match &self.target {
            Target::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(unreachable)?;
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                (sender, "localhost".to_string())
            }
            Target::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(unreachable)?;
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                (sender, addr.clone())
            }
        };
        let has_body = body.is_some();
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        if has_body {
            req = req.header("content-type", "application/json");
        }
        if let Some(auth) = &self.authorization {
            req = req.header("authorization", auth);
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = sender
            .send_request(req)
            .await
            .context("the node closed the connection")?;
        let status = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| anyhow!("reading the answer: {e}"))?
            .to_bytes();
        Ok(Answer { status, body })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.request(Method::GET, path, None).await?.json()
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.request(Method::DELETE, path, None).await?.json()
    }

    /// DELETEs with a JSON body.
    pub async fn delete_with<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let bytes = serde_json::to_vec(body)?;
        self.request(Method::DELETE, path, Some(bytes))
            .await?
            .json()
    }

    /// POSTs JSON; returns the raw answer so callers can read bodies of 4xx answers too.
    pub async fn post<B: Serialize>(&self, path: &str, body: &B) -> anyhow::Result<Answer> {
        let bytes = serde_json::to_vec(body)?;
        self.request(Method::POST, path, Some(bytes)).await
    }
}

/// Percent-encodes a path segment or query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
