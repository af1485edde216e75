//! Answering peers (and `meshctl --peer`): each request maps to a mesh-wide operation or to
//! this node's replica. Applies and deletes run as the node's own work (see [`super::owned`]):
//! a requester that goes away cancels nothing.

use libp2p::PeerId;
use mesh_protocol::wire::{Request, Response};
use mesh_provider::record::Record;
use mesh_provider::signed;

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
            Request::Delete { id, record } => self
                .delete(&id, record)
                .await
                .map(|d| Response::Deployment(Box::new(d))),
            Request::Record { id } => Ok(Response::Record(self.record_info(&id).await)),
            Request::Logs { id, tail } => self.logs(&id, tail).await.map(Response::Logs),
            Request::Discover { id, engine } => Ok(Response::Providers(
                self.discover(&id, engine.as_deref()).await,
            )),
            Request::Nodes { engine } => Ok(Response::Nodes(self.nodes(engine.as_deref()).await)),
            Request::Engines => Ok(Response::Engines(node.registry().infos())),
            Request::NodeRecord => {
                let validity = self.config().heartbeat_validity();
                let record = Record::Node(self.node_record(validity).await);
                signed::encode(&self.inner.keypair, &record)
                    .map(Response::Signed)
                    .map_err(|e| ApiError::internal(format!("cannot sign the node record: {e}")))
            }
            Request::ApplyReplica(r) => {
                self.hint_modules(&r.modules);
                let mesh = self.clone();
                self.inner
                    .owned
                    .run(async move {
                        let id = r.workload.clone();
                        let outcome = mesh.node().apply_replica(*r).await?;
                        // Discoverable before the entry node hears back.
                        let provider = mesh.announce(&id, false).await;
                        Ok(Response::ReplicaApplied {
                            outcome: Box::new(outcome),
                            provider,
                        })
                    })
                    .await
            }
            Request::ReplicaGet { id, events } => node
                .view(&id, events)
                .map(|d| Response::Deployment(Box::new(d))),
            Request::ReplicaList => node.list().map(Response::Deployments),
            Request::ReplicaDelete { id } => {
                let mesh = self.clone();
                self.inner
                    .owned
                    .run(async move {
                        let d = mesh.node().delete(&id).await?;
                        // Withdrawn before the requester hears back.
                        mesh.withdraw(&id).await;
                        Ok(Response::Deployment(Box::new(d)))
                    })
                    .await
            }
            Request::ReplicaLogs { id, tail } => node.logs(&id, tail).await.map(Response::Logs),
            Request::FetchModule { digest, offset } => self.serve_module(&digest, offset).await,
        };
        result.unwrap_or_else(|e| {
            tracing::debug!(%peer, request = name, error = %e, "request failed");
            error(e)
        })
    }
}
