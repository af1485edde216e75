//! Errors of engines and of the lifecycle controller.

use std::time::Duration;

/// `runtime::Error`: what an engine or the controller reports. Messages are one human line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An optional operation the engine does not offer (see its capabilities).
    #[error("engine {engine} does not support {operation}")]
    Unsupported {
        engine: String,
        operation: &'static str,
    },
    /// The engine's daemon cannot be reached or answered with an error.
    #[error("engine {engine}: {message}")]
    Engine { engine: String, message: String },
    /// The instance a handle points to does not exist (any more).
    #[error("engine {engine}: instance {instance} not found")]
    NotFound { engine: String, instance: String },
    /// The spec cannot run on this engine (missing image, kind not supported, …).
    #[error("{0}")]
    Invalid(String),
    #[error("{what} timed out after {after:?}")]
    Timeout { what: String, after: Duration },
    /// A declared output file is missing, too large or not a regular file.
    #[error("{0}")]
    Output(String),
    /// No engine of that name is registered on this node.
    #[error("no engine named {0} on this node")]
    UnknownEngine(String),
}

impl Error {
    pub fn engine(engine: &str, message: impl Into<String>) -> Self {
        Error::Engine {
            engine: engine.to_string(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
