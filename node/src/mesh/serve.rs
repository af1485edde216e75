//! Answering peers (and `meshctl --peer`): each request maps to a mesh-wide operation or to
//! this node's replica. Applies and deletes run as the node's own work (see [`super::owned`]):
//! a requester that goes away cancels nothing.

use libp2p::PeerId;
use mesh_protocol::wire::{Request, Response};
use mesh_provider::record::Record;
use mesh_provider::{signed, workload};
use mesh_runtime::now_millis;

use super::announce::Spread;
use super::Error;
use super::Mesh;
use crate::records::{self, book::Offer};

/// An error as a peer receives it: the status the local API would answer with (the wire
/// carries HTTP codes), and the message.
fn error(e: Error) -> Response {
    Response::Error {
        status: crate::api::status_of(&e).as_u16(),
        message: e.to_string(),
    }
}

/// Requests that run as the node's own work (bounded by its owner, not by inbound slots).
pub(crate) fn is_owned(request: &Request) -> bool {
    matches!(
        request,
        Request::Apply(_)
            | Request::Delete { .. }
            | Request::ApplyReplica(_)
            | Request::ReplicaDelete { .. }
            | Request::Command { .. }
    )
}

impl Mesh {
    /// Verifies a record a peer sent about workload `id` and offers it to the book. One
    /// older than the record held (or superseded by a tombstone) is refused as stale.
    async fn take_current(
        &self,
        id: &mesh_protocol::WorkloadId,
        signed: &mesh_protocol::api::SignedRecord,
    ) -> Result<workload::Verified, Error> {
        let v = workload::verify_at(&signed.bytes, now_millis()).map_err(records::Error::from)?;
        if v.record.id != *id {
            return Err(Error::invalid(format!(
                "the record is of {}, not {id}",
                v.record.id
            )));
        }
        match self.inner.records.offer(v.clone(), now_millis())? {
            Offer::Adopted | Offer::Same => Ok(v),
            Offer::Older { held } => Err(records::Error::Stale {
                id: id.clone(),
                offered: v.record.revision,
                held,
            }
            .into()),
        }
    }

    /// Sends a peer its answer; then spreads the replica's provider record the answer carries
    /// (see [`Spread::Later`]): gossip, which every node verifies and stores, and the DHT's
    /// replication to the key's closest peers. On a machine running many nodes that work,
    /// done first, kept the entry node waiting for a core (the mesh benchmark's trace,
    /// docs/benchmarks.md).
    pub(crate) async fn answer(
        &self,
        channel: libp2p::request_response::ResponseChannel<Response>,
        response: Response,
    ) {
        let provider = match &response {
            Response::ReplicaApplied {
                provider: Some(bytes),
                ..
            } => Some(bytes.clone()),
            _ => None,
        };
        self.inner.net.respond(channel, response).await;
        if let Some(bytes) = provider {
            self.spread_later(&bytes).await;
        }
    }

    pub(crate) async fn serve(&self, peer: PeerId, request: Request) -> Response {
        let name = request.name();
        tracing::debug!(%peer, request = name, "serving a peer");
        let node = self.node();
        let result: Result<Response, Error> = match request {
            // Over the network only signed requests are taken: a node signs for the clients of
            // its own local API, never for a peer.
            Request::Apply(req) if req.records.is_empty() => Err(Error::invalid(
                "an apply from a peer must carry the workload records signed by its submitter \
                 (meshctl apply signs them)"
                    .to_string(),
            )),
            Request::Apply(req) => self.apply(*req).await.map(Response::Applied),
            Request::Get { id, events } => self
                .get(&id, events)
                .await
                .map(|d| Response::Deployment(Box::new(d))),
            Request::List => self.list().await.map(Response::Deployments),
            Request::Delete { record: None, .. } => Err(Error::invalid(
                "a delete from a peer must carry a tombstone signed by its submitter \
                 (meshctl delete signs it)"
                    .to_string(),
            )),
            Request::Delete { id, record } => self
                .delete(&id, record)
                .await
                .map(|d| Response::Deployment(Box::new(d))),
            Request::Record { id } => Ok(Response::Record(self.record_info(&id).await)),
            Request::History { id } => Ok(Response::History(self.record_history(&id))),
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
                    .map_err(|e| Error::internal(format!("cannot sign the node record: {e}")))
            }
            Request::Command { command } => self.command(command).await.map(Response::Drained),
            Request::EventLog { node, after, limit } => self
                .event_page(node.as_deref(), after, limit as usize)
                .await
                .map(Response::EventLog),
            Request::Output {
                id,
                node,
                path,
                offset,
            } => self
                .output_chunk(&id, node.as_deref(), &path, offset)
                .await
                .map(Response::Output),
            Request::Ping { nonce } => Ok(self.serve_ping(&nonce)),
            Request::Probe { peer, nonce } => Ok(self.serve_probe(&peer, nonce).await),
            // The network task answers it itself (see `net::event_loop::trim`).
            Request::Closing => Ok(Response::Closing),
            Request::ApplyReplica(r) => {
                self.hint_modules(&r.modules);
                let mesh = self.clone();
                // The entry node's correlation id: this node's part of the apply is logged
                // in a span with the same id.
                let span = tracing::info_span!(
                    "apply",
                    correlation = %r.correlation.as_deref().unwrap_or("-"),
                    workload = %r.workload,
                    slot = r.slot
                );
                self.inner
                    .owned
                    .run(tracing::Instrument::instrument(async move {
                        let id = r.workload.clone();
                        tracing::debug!("replica received");
                        // The book learns the record first: one older than (or deleted by) a
                        // record this node holds is refused, whoever sends it.
                        let current = mesh.take_current(&id, &r.record).await?;
                        // Verified once: opened from what take_current checked.
                        let opened = records::open_verified(current, r.record.data_key.as_deref())?;
                        let outcome = mesh.node().apply_opened(opened, *r).await?;
                        let empty = mesh.unplaced_now(&id);
                        mesh.placed_here(&id, peer, empty);
                        tracing::info!(action = ?outcome.action, phase = ?outcome.deployment.phase, "replica applied");
                        // Discoverable before the entry node hears back: kept here and sent
                        // with the answer, gossiped right after it (see `answer`).
                        let provider = mesh.announce_with(&id, false, Spread::Later).await;
                        tracing::debug!("replica announced");
                        Ok(Response::ReplicaApplied {
                            outcome: Box::new(outcome),
                            provider,
                        })
                    }, span))
                    .await
            }
            Request::ReplicaGet { id, events } => node
                .view(&id, events)
                .map(|d| Response::Deployment(Box::new(d)))
                .map_err(Error::from),
            Request::ReplicaList => node.list().map(Response::Deployments).map_err(Error::from),
            Request::ReplicaDelete { id, record } => {
                let mesh = self.clone();
                self.inner
                    .owned
                    .run(async move {
                        let current = mesh.take_current(&id, &record).await?;
                        let runs = mesh.node().store().desired(&id)?.map_or(0, |d| d.revision);
                        if current.record.revision < runs {
                            return Err(records::Error::Stale {
                                id: id.clone(),
                                offered: current.record.revision,
                                held: runs,
                            }
                            .into());
                        }
                        let d = mesh.node().delete(&id).await?;
                        // Withdrawn before the requester hears back.
                        mesh.withdraw(&id).await;
                        Ok(Response::Deployment(Box::new(d)))
                    })
                    .await
            }
            Request::ReplicaLogs { id, tail } => node
                .logs(&id, tail)
                .await
                .map(Response::Logs)
                .map_err(Error::from),
            Request::FetchModule { digest, offset } => self.serve_module(&digest, offset).await,
        };
        result.unwrap_or_else(|e| {
            if let Some(reason) = crate::metrics::Reason::of(&e) {
                node.metrics().refused(reason);
            }
            tracing::debug!(%peer, request = name, error = %e, "request failed");
            error(e)
        })
    }
}
