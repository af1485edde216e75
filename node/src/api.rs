//! The local API, served over the Unix socket and (optionally) loopback HTTP. `docs/api.md`
//! documents every route.

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use mesh_protocol::api::{
    ApplyAction, ApplyRequest, ApplyResponse, DeleteRequest, Deployment, EngineInfo, Health, Logs,
    RecordInfo, Status,
};
use mesh_protocol::spec::DEFAULT_NAMESPACE;
use mesh_protocol::wire::{NodeInfo, Provider};
use mesh_protocol::{Event, WorkloadId};
use serde::Deserialize;

use crate::error::ApiError;
use crate::mesh::Mesh;

/// Largest request body: a maximal manifest, JSON-escaped, plus room for the envelope.
pub const MAX_REQUEST_BYTES: usize = 2 * mesh_manifests::MAX_MANIFEST_BYTES
    + 64 * 1024
    // Bundled modules, base64.
    + mesh_protocol::api::MAX_MODULE_BYTES / 3 * 4
    + 4;
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
    WorkloadId::new(
        namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
        name,
    )
}

pub fn router(mesh: Mesh) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/plugins", get(plugins))
        .route("/deployments", get(list).post(apply))
        .route("/deployments/{name}", get(get_one).delete(delete))
        .route("/deployments/{name}/status", get(status))
        .route("/deployments/{name}/logs", get(logs))
        .route("/records/{name}", get(record))
        .route("/events", get(events))
        .route("/discover/{name}", get(discover))
        .route("/nodes", get(nodes))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(mesh)
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such route (see docs/api.md)".to_string(),
    }
}

async fn health(State(mesh): State<Mesh>) -> Result<Json<Health>, ApiError> {
    mesh.node().health().map(Json)
}

async fn plugins(State(mesh): State<Mesh>) -> Json<Vec<EngineInfo>> {
    Json(mesh.node().registry().infos())
}

async fn list(State(mesh): State<Mesh>) -> Result<Json<Vec<Deployment>>, ApiError> {
    mesh.list().await.map(Json)
}

/// 200 when every workload reached Running/Succeeded (or was unchanged), 422 when any failed;
/// the body lists every workload's outcome either way.
async fn apply(
    State(mesh): State<Mesh>,
    body: Result<Json<ApplyRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<ApplyResponse>), ApiError> {
    let Json(req) = body.map_err(|e| ApiError {
        status: e.status(),
        message: format!("bad apply request: {}", e.body_text()),
    })?;
    let resp = mesh.apply(req).await?;
    let failed = resp
        .workloads
        .iter()
        .any(|w| matches!(w.action, ApplyAction::Failed | ApplyAction::RolledBack));
    let status = if failed {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, Json(resp)))
}

async fn get_one(
    State(mesh): State<Mesh>,
    Path(name): Path<String>,
    Query(q): Query<NsQuery>,
) -> Result<Json<Deployment>, ApiError> {
    mesh.get(&id(name, q.namespace), q.events).await.map(Json)
}

async fn delete(
    State(mesh): State<Mesh>,
    Path(name): Path<String>,
    Query(q): Query<NsQuery>,
    body: axum::body::Bytes,
) -> Result<Json<Deployment>, ApiError> {
    // The body is optional: meshctl sends the signed tombstone; a bare DELETE has the node
    // sign one.
    let req: DeleteRequest = if body.is_empty() {
        DeleteRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("bad delete request: {e}")))?
    };
    mesh.delete(&id(name, q.namespace), req.record)
        .await
        .map(Json)
}

async fn record(
    State(mesh): State<Mesh>,
    Path(name): Path<String>,
    Query(q): Query<NsQuery>,
) -> Result<Json<RecordInfo>, ApiError> {
    let id = id(name, q.namespace);
    match mesh.record_info(&id).await {
        Some(info) => Ok(Json(info)),
        None => Err(ApiError::not_found(&id)),
    }
}

async fn status(
    State(mesh): State<Mesh>,
    Path(name): Path<String>,
    Query(q): Query<NsQuery>,
) -> Result<Json<Status>, ApiError> {
    let d = mesh.get(&id(name, q.namespace), false).await?;
    Ok(Json(Status {
        name: d.name,
        namespace: d.namespace,
        version: d.version,
        phase: d.phase,
        error: d.error,
        replicas: d.replicas,
    }))
}

async fn logs(
    State(mesh): State<Mesh>,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<Logs>, ApiError> {
    mesh.logs(&id(name, q.namespace), q.tail).await.map(Json)
}

/// Events of this node only (each node records the lifecycle of its own replicas).
async fn events(
    State(mesh): State<Mesh>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<Event>>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_EVENTS).min(MAX_EVENTS);
    let id = q.name.map(|n| id(n, q.namespace));
    mesh.node().events(id.as_ref(), limit).map(Json)
}

#[derive(Debug, Deserialize)]
struct EngineQuery {
    engine: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DiscoverQuery {
    namespace: Option<String>,
    engine: Option<String>,
    /// `dht`: always ask the DHT, even when the gossip cache knows the workload.
    source: Option<String>,
}

async fn discover(
    State(mesh): State<Mesh>,
    Path(name): Path<String>,
    Query(q): Query<DiscoverQuery>,
) -> Result<Json<Vec<Provider>>, ApiError> {
    let id = id(name, q.namespace);
    let engine = q.engine.as_deref();
    match q.source.as_deref() {
        None | Some("auto") => Ok(Json(mesh.discover(&id, engine).await)),
        Some("dht") => Ok(Json(mesh.discover_dht(&id, engine).await)),
        Some(other) => Err(ApiError::bad_request(format!(
            "source={other}: expected auto or dht"
        ))),
    }
}

async fn nodes(State(mesh): State<Mesh>, Query(q): Query<EngineQuery>) -> Json<Vec<NodeInfo>> {
    Json(mesh.nodes(q.engine.as_deref()).await)
}
