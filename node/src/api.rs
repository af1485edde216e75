//! The local API, served over the Unix socket and (optionally) loopback HTTP. `docs/api.md`
//! documents every route.

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use mesh_protocol::api::{ApplyAction, ApplyRequest, ApplyResponse, Deployment, EngineInfo, Health, Logs, Status};
use mesh_protocol::spec::DEFAULT_NAMESPACE;
use mesh_protocol::{Event, WorkloadId};
use serde::Deserialize;

use crate::error::ApiError;
use crate::service::Node;

/// Largest request body: a maximal manifest, JSON-escaped, plus room for the envelope.
pub const MAX_REQUEST_BYTES: usize = 2 * mesh_manifests::MAX_MANIFEST_BYTES + 64 * 1024;
/// Events returned by `GET /events` when no limit is given, and the most ever returned.
pub const DEFAULT_EVENTS: usize = 100;
pub const MAX_EVENTS: usize = 1000;

#[derive(Debug, Deserialize)]
struct NsQuery {
    namespace: Option<String>,
    /// `describe`: include events.
    #[serde(default)]
    events: bool,
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    namespace: Option<String>,
    tail: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    name: Option<String>,
    namespace: Option<String>,
    limit: Option<usize>,
}

fn id(name: String, namespace: Option<String>) -> WorkloadId {
    WorkloadId::new(namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()), name)
}

pub fn router(node: Node) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/plugins", get(plugins))
        .route("/deployments", get(list).post(apply))
        .route("/deployments/{name}", get(get_one).delete(delete))
        .route("/deployments/{name}/status", get(status))
        .route("/deployments/{name}/logs", get(logs))
        .route("/events", get(events))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(node)
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such route (see docs/api.md)".to_string(),
    }
}

async fn health(State(node): State<Node>) -> Result<Json<Health>, ApiError> {
    node.health().map(Json)
}

async fn plugins(State(node): State<Node>) -> Json<Vec<EngineInfo>> {
    Json(node.registry().infos())
}

async fn list(State(node): State<Node>) -> Result<Json<Vec<Deployment>>, ApiError> {
    node.list().map(Json)
}

/// 200 when every workload reached Running/Succeeded (or was unchanged), 422 when any failed;
/// the body lists every workload's outcome either way.
async fn apply(
    State(node): State<Node>,
    body: Result<Json<ApplyRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<ApplyResponse>), ApiError> {
    let Json(req) = body.map_err(|e| ApiError {
        status: e.status(),
        message: format!("bad apply request: {}", e.body_text()),
    })?;
    let resp = node.apply(req).await?;
    let failed = resp
        .workloads
        .iter()
        .any(|w| matches!(w.action, ApplyAction::Failed | ApplyAction::RolledBack));
    let status = if failed { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok((status, Json(resp)))
}

async fn get_one(State(node): State<Node>, Path(name): Path<String>, Query(q): Query<NsQuery>) -> Result<Json<Deployment>, ApiError> {
    node.view(&id(name, q.namespace), q.events).map(Json)
}

async fn delete(State(node): State<Node>, Path(name): Path<String>, Query(q): Query<NsQuery>) -> Result<Json<Deployment>, ApiError> {
    node.delete(&id(name, q.namespace)).await.map(Json)
}

async fn status(State(node): State<Node>, Path(name): Path<String>, Query(q): Query<NsQuery>) -> Result<Json<Status>, ApiError> {
    node.status(&id(name, q.namespace)).map(Json)
}

async fn logs(State(node): State<Node>, Path(name): Path<String>, Query(q): Query<LogsQuery>) -> Result<Json<Logs>, ApiError> {
    node.logs(&id(name, q.namespace), q.tail).await.map(Json)
}

async fn events(State(node): State<Node>, Query(q): Query<EventsQuery>) -> Result<Json<Vec<Event>>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_EVENTS).min(MAX_EVENTS);
    let id = q.name.map(|n| id(n, q.namespace));
    node.events(id.as_ref(), limit).map(Json)
}
