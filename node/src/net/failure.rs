//! Why a request to a peer got no answer: whether the peer could be reached at all. Liveness
//! needs the difference. A refused dial is what a dead node's address gives; a connection that
//! closed before the answer came from a peer that completed the handshake, and so proved its
//! key: one at its connection limit does exactly that (it accepts the handshake and then drops
//! the connection), and it is alive.

use libp2p::request_response::OutboundFailure;
use libp2p::PeerId;

/// A request that got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// No connection to the peer could be made: the dial was refused or failed.
    NoConnection(String),
    /// The request left, or could have, but no answer came: the connection closed first, the
    /// request timed out, the peer does not speak the protocol, or this node's network task
    /// stopped.
    NoAnswer(String),
}

impl RequestError {
    /// The request-response failure of a request to `peer`, sorted.
    pub(crate) fn of(peer: &PeerId, failure: &OutboundFailure) -> Self {
        let message = format!("request to {peer} failed: {failure}");
        match failure {
            OutboundFailure::DialFailure => Self::NoConnection(message),
            OutboundFailure::Timeout
            | OutboundFailure::ConnectionClosed
            | OutboundFailure::UnsupportedProtocols
            | OutboundFailure::Io(_) => Self::NoAnswer(message),
        }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoConnection(message) | Self::NoAnswer(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for RequestError {}

impl From<RequestError> for String {
    fn from(e: RequestError) -> Self {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_dial_means_the_peer_could_not_be_reached() {
        let peer = PeerId::random();
        assert!(matches!(
            RequestError::of(&peer, &OutboundFailure::DialFailure),
            RequestError::NoConnection(_)
        ));
        for failure in [
            OutboundFailure::ConnectionClosed,
            OutboundFailure::Timeout,
            OutboundFailure::UnsupportedProtocols,
        ] {
            let e = RequestError::of(&peer, &failure);
            assert!(matches!(e, RequestError::NoAnswer(_)), "{failure}");
            assert!(e.to_string().contains(&peer.to_string()), "{e}");
        }
    }
}
