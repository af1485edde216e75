//! What the node service (and its jobs and recovery) can fail with. The local API turns each
//! into an HTTP status in one place (`api.rs`); the mesh turns them into wire answers in one
//! place (`mesh/serve.rs`), through [`crate::mesh::Error`].

use mesh_protocol::spec::DEFAULT_NAMESPACE;
use mesh_protocol::WorkloadId;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request cannot be carried out as asked: a bad manifest, module or argument.
    #[error("{0}")]
    Invalid(String),
    #[error("{}", not_found(.0))]
    NotFound(WorkloadId),
    /// A newer state of the workload is held than the one the request was made against.
    #[error("{0}")]
    Conflict(String),
    /// Something this node needs is not available now (an engine's logs, a busy resource);
    /// trying again may work.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Record(#[from] crate::records::Error),
    /// This node's trust policy refuses the signer, or what the workload asks of the host.
    #[error(transparent)]
    Forbidden(Box<crate::trust::Refusal>),
    /// A failure of this node itself: a task that died, a file it cannot remove.
    #[error("{0}")]
    Internal(String),
}

fn not_found(id: &WorkloadId) -> String {
    let mut message = format!(
        "workload {} not found (meshctl get lists workloads)",
        id.name
    );
    if id.namespace != DEFAULT_NAMESPACE {
        message += &format!(" in namespace {}", id.namespace);
    }
    message
}

impl From<crate::records::book::OfferError> for Error {
    fn from(e: crate::records::book::OfferError) -> Self {
        match e {
            crate::records::book::OfferError::Refused(r) => Error::Forbidden(r),
            crate::records::book::OfferError::Store(s) => Error::Store(s),
        }
    }
}

impl From<crate::trust::Refusal> for Error {
    fn from(r: crate::trust::Refusal) -> Self {
        Error::Forbidden(Box::new(r))
    }
}
