//! Why a node refused a request, for `meshd_refused_requests_total{reason}`.
//!
//! Counted where the refusal is answered, once per request: the local API (a layer reading
//! the reason its error answer carries, [`count_refusals`]), a peer's request
//! (`mesh/serve.rs`), and the network task (rate limit, full queue, gossip and DHT records
//! that do not verify, connections denied). A refusal a peer answered and this node relays is
//! the peer's, not counted here.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

use super::Metrics;
use crate::mesh;

/// Why a request was refused; [`Reason::as_str`] is its label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Signed by a key this node's trust file does not list.
    Untrusted,
    /// A trusted key asking what its entry does not grant (namespace, owner, host access,
    /// admin, rollback).
    Forbidden,
    /// A request seen before, or signed too far from this node's clock.
    Replay,
    /// A record older than the one held (a downgrade).
    Stale,
    /// A signature that does not verify, or names another signer.
    BadSignature,
    /// A malformed request, manifest or record.
    Invalid,
    /// A body or record over its size limit.
    Oversize,
    /// A newer state is held than the one the request was made against.
    Conflict,
    /// This node runs as many applies and deletes, or queues as many peer requests, as it
    /// takes.
    Busy,
    /// A peer over its request rate.
    RateLimited,
    /// A gossip message that does not verify (its sender is scored down).
    BadGossip,
    /// A record a peer put into this node's DHT store that does not verify or is not
    /// authorised.
    DhtRecord,
    /// An incoming connection denied (a peer not in `--allow-peer`, a blocked peer,
    /// connection or memory limits).
    ConnectionDenied,
}

impl Reason {
    pub const ALL: [Reason; 13] = [
        Reason::Untrusted,
        Reason::Forbidden,
        Reason::Replay,
        Reason::Stale,
        Reason::BadSignature,
        Reason::Invalid,
        Reason::Oversize,
        Reason::Conflict,
        Reason::Busy,
        Reason::RateLimited,
        Reason::BadGossip,
        Reason::DhtRecord,
        Reason::ConnectionDenied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Untrusted => "untrusted",
            Reason::Forbidden => "forbidden",
            Reason::Replay => "replay",
            Reason::Stale => "stale",
            Reason::BadSignature => "bad_signature",
            Reason::Invalid => "invalid",
            Reason::Oversize => "oversize",
            Reason::Conflict => "conflict",
            Reason::Busy => "busy",
            Reason::RateLimited => "rate_limited",
            Reason::BadGossip => "bad_gossip",
            Reason::DhtRecord => "dht_record",
            Reason::ConnectionDenied => "connection_denied",
        }
    }

    /// Why this node refused, when `e` is a refusal of its own (not a failure, not a peer's
    /// answer relayed).
    pub fn of(e: &mesh::Error) -> Option<Reason> {
        use crate::records::Error as Record;
        use crate::service::Error as S;
        use crate::trust::Refusal;
        use mesh::Error as M;
        use mesh_provider::workload::Error as W;
        Some(match e {
            M::Node(S::Forbidden(r)) => match **r {
                Refusal::Untrusted { .. } => Reason::Untrusted,
                Refusal::Replay(_) => Reason::Replay,
                _ => Reason::Forbidden,
            },
            M::Node(S::Record(Record::Stale { .. })) => Reason::Stale,
            M::Node(S::Record(Record::Record(W::BadSignature | W::WrongSigner { .. }))) => {
                Reason::BadSignature
            }
            M::Node(S::Record(Record::Record(W::TooLarge(_)))) => Reason::Oversize,
            M::Node(S::Record(_)) | M::Node(S::Invalid(_)) => Reason::Invalid,
            M::Node(S::Conflict(_)) => Reason::Conflict,
            M::Busy(_) => Reason::Busy,
            _ => return None,
        })
    }

    /// The reason of a local API answer refused before any handler ran (an extractor's
    /// rejection), from its status.
    fn of_status(status: StatusCode) -> Option<Reason> {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => Some(Reason::Oversize),
            StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => Some(Reason::Invalid),
            _ => None,
        }
    }
}

/// What an error answer of the local API (`api::ApiError`) carries as an extension: why this
/// node refused, or `None` when the error is no refusal of its own (not found, a failure, a
/// peer's refusal relayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub Option<Reason>);

/// Counts the local API's refusals: an error answer carries [`Refused`]; an extractor's
/// rejection (a body over the limit, JSON that does not parse) is read from its status.
pub async fn count_refusals(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let reason = response
        .extensions()
        .get::<Refused>()
        .map_or_else(|| Reason::of_status(response.status()), |r| r.0);
    if let Some(reason) = reason {
        metrics.refused(reason);
    }
    response
}
