//! Errors of the node service, mapped to HTTP statuses by the local API.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mesh_protocol::api::ErrorBody;
use mesh_protocol::WorkloadId;

/// An error with the HTTP status the local API answers with and one human line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }

    pub fn not_found(id: &WorkloadId) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "workload {} not found (meshctl get lists workloads)",
                id.name
            ) + &if id.namespace == mesh_protocol::spec::DEFAULT_NAMESPACE {
                String::new()
            } else {
                format!(" in namespace {}", id.namespace)
            },
        }
    }

    pub fn internal(message: String) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message,
        }
    }

    pub fn unavailable(message: String) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message,
        }
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        tracing::error!(error = %e, "store failure");
        ApiError::internal(e.to_string())
    }
}

impl From<crate::records::Error> for ApiError {
    fn from(e: crate::records::Error) -> Self {
        use crate::records::Error as E;
        let status = match &e {
            E::Stale { .. } => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}
