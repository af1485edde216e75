//! Answering peers (and `meshctl --peer`): each request maps to a mesh-wide operation or to
//! this node's replica.

use libp2p::PeerId;
use mesh_protocol::api::ApplyResponse;
use mesh_protocol::wire::{Request, Response};

use super::Mesh;
use crate::error::ApiError;

fn error(e: ApiError) -> Response {
    Response::Error {
        status: e.status.as_u16(),
        message: e.message,
    }
}

impl Mesh {
    pub(crate) async fn serve(&self, peer: PeerId, request: Request) -> Response {
        let name = request.name();
        tracing::debug!(%peer, request = name, "serving a peer");
        let node = self.node();
        let result: Result<Response, ApiError> = match request {
            Request::Apply(req) => self.apply(*req).await.map(Response::Applied),
            Request::Get { id, events } => self
                .get(&id, events)
                .await
                .map(|d| Response::Deployment(Box::new(d))),
            Request::List => self.list().await.map(Response::Deployments),
            Request::Delete { id } => self
                .delete(&id)
                .await
                .map(|d| Response::Deployment(Box::new(d))),
            Request::Logs { id, tail } => self.logs(&id, tail).await.map(Response::Logs),
            Request::Discover { id, engine } => Ok(Response::Providers(
                self.discover(&id, engine.as_deref()).await,
            )),
            Request::Nodes { engine } => Ok(Response::Nodes(self.nodes(engine.as_deref()).await)),
            Request::Engines => Ok(Response::Engines(node.registry().infos())),
            Request::ApplyReplica(r) => {
                let id = r.workload.clone();
                self.hint_modules(&r.apply);
                match node.apply_replica(*r).await {
                    Ok(outcome) => {
                        // Discoverable before the entry node hears back.
                        self.announce(&id, false).await;
                        Ok(Response::Applied(ApplyResponse {
                            workloads: vec![outcome],
                        }))
                    }
                    Err(e) => Err(e),
                }
            }
            Request::ReplicaGet { id, events } => node
                .view(&id, events)
                .map(|d| Response::Deployment(Box::new(d))),
            Request::ReplicaList => node.list().map(Response::Deployments),
            Request::ReplicaDelete { id } => match node.delete(&id).await {
                Ok(d) => {
                    // Withdrawn before the requester hears back.
                    self.withdraw(&id).await;
                    Ok(Response::Deployment(Box::new(d)))
                }
                Err(e) => Err(e),
            },
            Request::ReplicaLogs { id, tail } => node.logs(&id, tail).await.map(Response::Logs),
            Request::FetchModule { digest, offset } => self.serve_module(&digest, offset).await,
        };
        result.unwrap_or_else(|e| {
            tracing::debug!(%peer, request = name, error = %e, "request failed");
            error(e)
        })
    }
}
