//! The local API, served over the Unix socket and (optionally) loopback HTTP. `docs/api.md`
//! documents every route.

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mesh_protocol::api::{
    ApplyAction, ApplyRequest, ApplyResponse, DeleteRequest, Deployment, EngineInfo, ErrorBody,
    Health, Logs, RecordInfo, Status,
};
use mesh_protocol::spec::DEFAULT_NAMESPACE;
use mesh_protocol::wire::{NodeInfo, Provider};
use mesh_protocol::{Event, WorkloadId};
use serde::Deserialize;

use crate::mesh::{self, Mesh};
use crate::service;

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

/// An error as the local API answers it: a status and one human line (`ErrorBody`).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Why this node refused, when it did (counted by `metrics::refused::count_refusals`).
    pub refused: Option<crate::metrics::Reason>,
}

impl ApiError {
    fn bad_request(message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message,
            refused: Some(crate::metrics::Reason::Invalid),
        }
    }
}

/// The HTTP status of each error of the node and the mesh: the one place they are mapped.
/// Peers receive the same status on the wire (`mesh/serve.rs`), so an entry node relays a
/// remote refusal with the status the remote node would have answered.
pub(crate) fn status_of(e: &mesh::Error) -> StatusCode {
    use crate::records::Error as Record;
    use mesh::Error as M;
    use service::Error as S;
    match e {
        M::Node(S::Invalid(_)) => StatusCode::BAD_REQUEST,
        M::Node(S::NotFound(_)) | M::Absent(_) => StatusCode::NOT_FOUND,
        M::Node(S::Conflict(_)) | M::Node(S::Record(Record::Stale { .. })) => StatusCode::CONFLICT,
        M::Node(S::Record(_)) => StatusCode::BAD_REQUEST,
        M::Node(S::Forbidden(_)) => StatusCode::FORBIDDEN,
        M::Node(S::Unavailable(_)) | M::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        M::Node(S::Store(_)) | M::Node(S::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        M::Peer { status, .. } => StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
        M::Unreachable { .. } | M::Unexpected(_) => StatusCode::BAD_GATEWAY,
    }
}

impl From<mesh::Error> for ApiError {
    fn from(e: mesh::Error) -> Self {
        if let mesh::Error::Node(service::Error::Store(store)) = &e {
            tracing::error!(error = %store, "store failure");
        }
        ApiError {
            status: status_of(&e),
            message: e.to_string(),
            refused: crate::metrics::Reason::of(&e),
        }
    }
}

impl From<service::Error> for ApiError {
    fn from(e: service::Error) -> Self {
        mesh::Error::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let refused = crate::metrics::refused::Refused(self.refused);
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        response.extensions_mut().insert(refused);
        response
    }
}

/// The local API; `shutdown` ends the dashboard's open streams (see [`crate::ui`]).
pub fn router(mesh: Mesh, shutdown: tokio_util::sync::CancellationToken) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/plugins", get(plugins))
        .route("/deployments", get(list).post(apply))
        .route("/deployments/{name}", get(get_one).delete(delete))
        .route("/deployments/{name}/status", get(status))
        .route("/deployments/{name}/logs", get(logs))
        .route("/deployments/{name}/outputs", get(output))
        .route("/records/{name}", get(record))
        .route("/records/{name}/history", get(history))
        .route("/events", get(events))
        .route("/events/log", get(event_log))
        .route("/discover/{name}", get(discover))
        .route("/nodes", get(nodes))
        .route("/commands", post(command))
        .route("/metrics", get(crate::metrics::scrape))
        .merge(crate::ui::router(mesh.clone(), shutdown))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(mesh)
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such route (see docs/api.md)".to_string(),
        refused: None,
    }
}

async fn health(State(mesh): State<Mesh>) -> Result<Json<Health>, ApiError> {
    let mut health = mesh.node().health()?;
    health.self_healing = mesh.heals();
    Ok(Json(health))
}

async fn plugins(State(mesh): State<Mesh>) -> Json<Vec<EngineInfo>> {
    Json(mesh.node().registry().infos())
}

async fn list(State(mesh): State<Mesh>) -> Result<Json<Vec<Deployment>>, ApiError> {
    Ok(Json(mesh.list().await?))
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
        refused: Some(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            crate::metrics::Reason::Oversize
        } else {
            crate::metrics::Reason::Invalid
        }),
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
    Ok(Json(mesh.get(&id(name, q.namespace), q.events).await?))
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
    Ok(Json(mesh.delete(&id(name, q.namespace), req.record).await?))
}

async fn record(
    State(mesh): State<Mesh>,
    Path(name): Path<String>,
    Query(q): Query<NsQuery>,
) -> Result<Json<RecordInfo>, ApiError> {
    let id = id(name, q.namespace);
    match mesh.record_info(&id).await {
        Some(info) => Ok(Json(info)),
        None => Err(mesh::Error::not_found(&id).into()),
    }
}

async fn history(
    State(mesh): State<Mesh>,
    Path(name): Path<String>,
    Query(q): Query<NsQuery>,
) -> Json<Vec<mesh_protocol::api::SignedRecord>> {
    Json(mesh.record_history(&id(name, q.namespace)))
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
    Ok(Json(mesh.logs(&id(name, q.namespace), q.tail).await?))
}

/// Events of this node only (each node records the lifecycle of its own replicas).
async fn events(
    State(mesh): State<Mesh>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<Event>>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_EVENTS).min(MAX_EVENTS);
    let id = q.name.map(|n| id(n, q.namespace));
    Ok(Json(mesh.node().events(id.as_ref(), limit)?))
}

#[derive(Debug, Deserialize)]
struct EventLogQuery {
    /// Whose log (default: this node's).
    node: Option<String>,
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

/// `GET /events/log?node=&after=&limit=`: a page of a node's durable event log.
async fn event_log(
    State(mesh): State<Mesh>,
    Query(q): Query<EventLogQuery>,
) -> Result<Json<mesh_protocol::api::EventPage>, ApiError> {
    let limit = q.limit.unwrap_or(crate::mesh::event_log::MAX_EVENT_PAGE);
    Ok(Json(
        mesh.event_page(q.node.as_deref(), q.after, limit).await?,
    ))
}

#[derive(Debug, Deserialize)]
struct OutputQuery {
    namespace: Option<String>,
    /// The node that ran the job (default: this one).
    node: Option<String>,
    path: String,
    #[serde(default)]
    offset: u64,
}

/// `GET /deployments/NAME/outputs?path=&node=&offset=`: a piece of a collected output file.
async fn output(
    State(mesh): State<Mesh>,
    Path(name): Path<String>,
    Query(q): Query<OutputQuery>,
) -> Result<Json<mesh_protocol::api::OutputChunk>, ApiError> {
    let id = id(name, q.namespace);
    Ok(Json(
        mesh.output_chunk(&id, q.node.as_deref(), &q.path, q.offset)
            .await?,
    ))
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

/// `POST /commands`: an operator's signed command (drain, uncordon) for this node or, through
/// it, another.
async fn command(
    State(mesh): State<Mesh>,
    Json(req): Json<mesh_protocol::api::CommandRequest>,
) -> Result<Json<mesh_protocol::api::DrainReport>, ApiError> {
    Ok(Json(mesh.command(req.command).await?))
}

async fn nodes(State(mesh): State<Mesh>, Query(q): Query<EngineQuery>) -> Json<Vec<NodeInfo>> {
    Json(mesh.nodes(q.engine.as_deref()).await)
}
