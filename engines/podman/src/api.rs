//! Calls to the Podman API: every call is bounded by a timeout, and failures keep the HTTP
//! status the daemon answered with, so that callers can treat "no such object" (404), "already
//! in that state" (304) and "in use" (409) as the outcomes they are.

use std::future::Future;
use std::time::Duration;

use mesh_runtime::Error;

use crate::NAME;

/// Bound on one ordinary API call (inspect, list, start, remove).
pub const API_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on `kube play` (creates every object of the pod).
pub const PLAY_TIMEOUT: Duration = Duration::from_secs(120);

/// Why one API call failed.
#[derive(Debug)]
pub enum CallError {
    /// The daemon answered with an HTTP error status.
    Status {
        what: String,
        code: u16,
        message: String,
    },
    /// The daemon could not be reached, timed out, or answered something unreadable.
    Failed(Error),
}

impl CallError {
    /// The HTTP status, when the daemon answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            CallError::Status { code, .. } => Some(*code),
            CallError::Failed(_) => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Status { what, message, .. } => {
                Error::engine(NAME, format!("{what}: {message}"))
            }
            CallError::Failed(e) => e,
        }
    }
}

/// Runs `fut` (one API call described by `what`) under `limit`.
pub async fn call<T>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = podman_api::Result<T>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(limit, fut).await {
        Err(_) => Err(CallError::Failed(Error::Timeout {
            what: format!("podman {what}"),
            after: limit,
        })),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(podman_api::Error::Fault { code, message })) => Err(CallError::Status {
            what: what.to_string(),
            code: code.as_u16(),
            message: dedupe(message.trim()).to_string(),
        }),
        Ok(Err(e)) => Err(CallError::Failed(Error::engine(
            NAME,
            format!("{what}: {e}"),
        ))),
    }
}

/// podman-api reports an error as `"{message}: {cause}"`, and Podman's message usually ends
/// with its cause already: keep one copy.
fn dedupe(message: &str) -> &str {
    message
        .match_indices(": ")
        .map(|(i, _)| (&message[..i], &message[i + 2..]))
        .find(|(head, cause)| !cause.is_empty() && head.ends_with(cause))
        .map_or(message, |(head, _)| head)
}

/// Like [`call`], with a 404 answer as `None`.
pub async fn call_opt<T>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = podman_api::Result<T>>,
) -> Result<Option<T>, CallError> {
    match call(what, limit, fut).await {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Like [`call`], where 404 (already gone) and 304 (already in that state) count as done.
pub async fn call_idempotent<T>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = podman_api::Result<T>>,
) -> Result<(), CallError> {
    match call(what, limit, fut).await {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.code(), Some(404 | 304)) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::dedupe;

    #[test]
    fn error_cause_is_not_repeated() {
        assert_eq!(
            dedupe("playing YAML file: volume already exists: volume already exists"),
            "playing YAML file: volume already exists"
        );
        assert_eq!(dedupe("no such pod: "), "no such pod: ");
        assert_eq!(dedupe("a: b"), "a: b");
    }
}
