//! What a mesh-wide operation can fail with: the node service's errors, and what peers
//! answer or fail to. The local API maps these to HTTP statuses in `api.rs`; peers get them
//! as wire answers from `serve.rs`.

use libp2p::PeerId;
use mesh_protocol::WorkloadId;

use crate::service;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Node(#[from] service::Error),
    /// A peer answered with an error: its status (an HTTP code, as on the wire) and message.
    #[error("{message}")]
    Peer { status: u16, message: String },
    #[error("peer {peer} unreachable: {reason}")]
    Unreachable { peer: PeerId, reason: String },
    #[error("peer {0} answered with an unexpected message")]
    Unexpected(PeerId),
    /// This node runs as many applies and deletes as it takes; try again shortly.
    #[error("node busy: {0} applies and deletes in progress; try again shortly")]
    Busy(usize),
    /// What was asked is not on this node (a module a peer asked for).
    #[error("{0}")]
    Absent(String),
}

impl Error {
    pub fn invalid(message: String) -> Self {
        service::Error::Invalid(message).into()
    }

    pub fn not_found(id: &WorkloadId) -> Self {
        service::Error::NotFound(id.clone()).into()
    }

    pub fn internal(message: String) -> Self {
        service::Error::Internal(message).into()
    }

    pub fn unavailable(message: String) -> Self {
        service::Error::Unavailable(message).into()
    }

    /// Whether the workload (or replica) asked about does not exist, here or on the peer
    /// that answered.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::Node(service::Error::NotFound(_)) | Error::Peer { status: 404, .. }
        )
    }
}

impl From<crate::store::Error> for Error {
    fn from(e: crate::store::Error) -> Self {
        service::Error::Store(e).into()
    }
}

impl From<crate::records::Error> for Error {
    fn from(e: crate::records::Error) -> Self {
        service::Error::Record(e).into()
    }
}

impl From<crate::records::book::OfferError> for Error {
    fn from(e: crate::records::book::OfferError) -> Self {
        Error::Node(e.into())
    }
}

impl From<crate::trust::Refusal> for Error {
    fn from(e: crate::trust::Refusal) -> Self {
        Error::Node(e.into())
    }
}
