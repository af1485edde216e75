//! The read-only dashboard at `GET /ui`: the mesh's nodes, its workloads with their replica
//! slots, and the live event stream, in one page served from the binary (no build step, no
//! network access beyond this node). The page reads one server-sent-event stream,
//! `GET /ui/stream` ([`stream`]); it adds no route that changes anything.
//!
//! Both routes are part of the local API's router, so they sit behind whatever guards it: the
//! socket's file mode, and on the HTTP listener the `--http-token` bearer check.
//!
//! # Layout
//!
//! - this module: the routes, the embedded assets and the bound on open streams;
//! - [`stream`]: what the stream sends (snapshots of nodes and workloads, every node's events).

mod stream;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::api::ApiError;
use crate::mesh::Mesh;

pub use stream::{BACKLOG, SNAPSHOT_EVERY};

/// Dashboard streams open at once on one node; one more is answered 503.
pub const MAX_STREAMS: usize = 16;
/// Comment lines sent on an idle stream, so that proxies and the browser keep it open.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Scripts and styles from this node only, no inline code, no frames: the page shows data
/// from the mesh (workload names, event messages) and must never run any of it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[derive(Clone)]
struct Ui {
    mesh: Mesh,
    /// Ends every open stream, so that the API's graceful shutdown is not held up by them.
    shutdown: CancellationToken,
    streams: Arc<Semaphore>,
}

/// The dashboard's routes, to merge into the local API's router.
pub fn router<S>(mesh: Mesh, shutdown: CancellationToken) -> Router<S> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/app.js", get(app_js))
        .route("/ui/style.css", get(style_css))
        .route("/ui/stream", get(events))
        .with_state(Ui {
            mesh,
            shutdown,
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        })
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        body,
    )
}

async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style_css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// `GET /ui/stream`: a snapshot at once, then events as they happen and a snapshot every
/// [`SNAPSHOT_EVERY`] (sooner after a local event), until the client leaves or the node stops.
async fn events(State(ui): State<Ui>) -> Result<impl IntoResponse, ApiError> {
    let permit = ui
        .streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("{MAX_STREAMS} dashboard streams are already open on this node"),
            refused: Some(crate::metrics::Reason::Busy),
        })?;
    let follow = stream::Follow::new(ui.mesh, ui.shutdown, permit);
    Ok(Sse::new(follow.into_stream()).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
