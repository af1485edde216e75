//! Where `meshctl` sends its commands: a node's local API (socket or loopback HTTP), or any
//! node of the mesh over libp2p (`--peer MULTIADDR`), with no local daemon.

use anyhow::{anyhow, bail, Context};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use mesh_protocol::api::{
    ApplyRequest, ApplyResponse, CommandRequest, DeleteRequest, Deployment, DrainReport,
    EngineInfo, EventPage, Logs, OutputChunk, RecordInfo, SignedRecord,
};
use mesh_protocol::wire::{NodeInfo, Provider, Request, Response};
use mesh_protocol::{Event, WorkloadId};
use tokio_util::sync::CancellationToken;

use crate::client::{encode, Client, Refused, Unreachable};
use crate::net;

/// A node reached over libp2p by an ephemeral identity.
#[derive(Debug)]
pub struct PeerClient {
    net: net::Client,
    peer: PeerId,
    addr: Multiaddr,
    stop: CancellationToken,
    /// Whether a mesh key was given (to hint at it when a dial fails).
    private: bool,
}

impl Drop for PeerClient {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl PeerClient {
    /// Starts a throwaway swarm (no listener) and dials the node.
    pub async fn connect(
        addr: &str,
        mesh_key: Option<libp2p::pnet::PreSharedKey>,
    ) -> anyhow::Result<Self> {
        let addr: Multiaddr = addr
            .parse()
            .with_context(|| format!("--peer {addr:?} is not a multiaddr"))?;
        let peer = addr
            .iter()
            .find_map(|p| match p {
                Protocol::P2p(peer) => Some(peer),
                _ => None,
            })
            .ok_or_else(|| {
                anyhow!("--peer {addr} needs the node's peer id: …/p2p/12D3KooW… (meshd prints it at start and writes it to DATA_DIR/node.json)")
            })?;
        let mut config = net::NetConfig::new(libp2p::identity::Keypair::generate_ed25519());
        config.listen.clear();
        let private = mesh_key.is_some();
        config.mesh_key = mesh_key;
        let stop = CancellationToken::new();
        let (client, mut events, event_loop) =
            net::new(config, stop.clone()).map_err(|e| anyhow!(e))?;
        tokio::spawn(event_loop.run());
        // This client is no node: it answers any request at once that it serves nothing, so a
        // node asking it (for a node record, say) does not wait for a timeout.
        let responder = client.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let net::Event::Inbound { channel, .. } = event {
                    let no = Response::Error {
                        status: 404,
                        message: "meshctl serves nothing".to_string(),
                    };
                    responder.respond(channel, no).await;
                }
            }
        });
        client.dial(addr.clone()).await.map_err(|e| anyhow!(e))?;
        Ok(Self {
            net: client,
            peer,
            addr,
            stop,
            private,
        })
    }

    async fn ask(&self, request: Request) -> anyhow::Result<Response> {
        match self
            .net
            .request(self.peer, vec![self.addr.clone()], request)
            .await
        {
            Ok(Response::Error { status, message }) => {
                Err(anyhow::Error::new(Refused { status, message }))
            }
            Ok(r) => Ok(r),
            Err(e) if !self.private && e.contains("dial") => {
                Err(anyhow::Error::new(Unreachable(format!(
                    "cannot reach {}: {e} (a private mesh needs its key: --mesh-key FILE)",
                    self.addr
                ))))
            }
            Err(e) => Err(anyhow::Error::new(Unreachable(format!(
                "cannot reach {}: {e}",
                self.addr
            )))),
        }
    }
}

fn unexpected() -> anyhow::Error {
    anyhow!("the node answered with an unexpected message")
}

/// The node `meshctl` talks to.
#[derive(Debug)]
pub enum Backend {
    Local(Client),
    Peer(PeerClient),
}

fn path_of_record(id: &WorkloadId) -> String {
    format!(
        "/records/{}?namespace={}",
        encode(&id.name),
        encode(&id.namespace)
    )
}

fn path_of(id: &WorkloadId, suffix: &str) -> String {
    format!(
        "/deployments/{}{suffix}?namespace={}",
        encode(&id.name),
        encode(&id.namespace)
    )
}

impl Backend {
    /// The apply's outcome, even when a workload failed (the caller sets the exit status).
    pub async fn apply(&self, req: ApplyRequest) -> anyhow::Result<ApplyResponse> {
        match self {
            Backend::Local(c) => {
                let answer = c.post("/deployments", &req).await?;
                if !(answer.status.is_success()
                    || answer.status == hyper::StatusCode::UNPROCESSABLE_ENTITY)
                {
                    return Err(answer.refused());
                }
                serde_json::from_slice(&answer.body)
                    .context("the node answered with an unexpected body")
            }
            Backend::Peer(p) => match p.ask(Request::Apply(Box::new(req))).await? {
                Response::Applied(r) => Ok(r),
                _ => Err(unexpected()),
            },
        }
    }

    pub async fn get(&self, id: &WorkloadId, events: bool) -> anyhow::Result<Deployment> {
        match self {
            Backend::Local(c) => {
                let mut path = path_of(id, "");
                if events {
                    path.push_str("&events=true");
                }
                c.get(&path).await
            }
            Backend::Peer(p) => match p
                .ask(Request::Get {
                    id: id.clone(),
                    events,
                })
                .await?
            {
                Response::Deployment(d) => Ok(*d),
                _ => Err(unexpected()),
            },
        }
    }

    pub async fn list(&self) -> anyhow::Result<Vec<Deployment>> {
        match self {
            Backend::Local(c) => c.get("/deployments").await,
            Backend::Peer(p) => match p.ask(Request::List).await? {
                Response::Deployments(d) => Ok(d),
                _ => Err(unexpected()),
            },
        }
    }

    /// Deletes with the signed `tombstone`.
    pub async fn delete(
        &self,
        id: &WorkloadId,
        tombstone: SignedRecord,
    ) -> anyhow::Result<Deployment> {
        match self {
            Backend::Local(c) => {
                let body = DeleteRequest {
                    record: Some(tombstone),
                };
                c.delete_with(&path_of(id, ""), &body).await
            }
            Backend::Peer(p) => match p
                .ask(Request::Delete {
                    id: id.clone(),
                    record: Some(tombstone),
                })
                .await?
            {
                Response::Deployment(d) => Ok(*d),
                _ => Err(unexpected()),
            },
        }
    }

    /// The workload record the node holds for `id` (tombstones included), if any.
    pub async fn record(&self, id: &WorkloadId) -> anyhow::Result<Option<RecordInfo>> {
        match self {
            Backend::Local(c) => {
                let answer = c
                    .request(hyper::Method::GET, &path_of_record(id), None)
                    .await?;
                if answer.status == hyper::StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                answer.json().map(Some)
            }
            Backend::Peer(p) => match p.ask(Request::Record { id: id.clone() }).await? {
                Response::Record(r) => Ok(r),
                _ => Err(unexpected()),
            },
        }
    }

    /// The earlier records of `id` the node kept, oldest first, each verified here.
    pub async fn history(
        &self,
        id: &WorkloadId,
    ) -> anyhow::Result<Vec<mesh_provider::workload::Verified>> {
        let signed: Vec<mesh_protocol::api::SignedRecord> = match self {
            Backend::Local(c) => {
                let path = format!(
                    "/records/{}/history?namespace={}",
                    encode(&id.name),
                    encode(&id.namespace)
                );
                c.request(hyper::Method::GET, &path, None).await?.json()?
            }
            Backend::Peer(p) => match p.ask(Request::History { id: id.clone() }).await? {
                Response::History(h) => h,
                _ => return Err(unexpected()),
            },
        };
        signed
            .iter()
            .map(|s| {
                mesh_provider::workload::verify(&s.bytes).map_err(|e| {
                    anyhow::anyhow!("the node sent a record that does not verify: {e}")
                })
            })
            .collect()
    }

    pub async fn logs(&self, id: &WorkloadId, tail: Option<usize>) -> anyhow::Result<Logs> {
        match self {
            Backend::Local(c) => {
                let mut path = path_of(id, "/logs");
                if let Some(n) = tail {
                    path.push_str(&format!("&tail={n}"));
                }
                c.get(&path).await
            }
            Backend::Peer(p) => match p
                .ask(Request::Logs {
                    id: id.clone(),
                    tail,
                })
                .await?
            {
                Response::Logs(l) => Ok(l),
                _ => Err(unexpected()),
            },
        }
    }

    pub async fn discover(
        &self,
        id: &WorkloadId,
        engine: Option<&str>,
    ) -> anyhow::Result<Vec<Provider>> {
        match self {
            Backend::Local(c) => {
                let mut path = format!(
                    "/discover/{}?namespace={}",
                    encode(&id.name),
                    encode(&id.namespace)
                );
                if let Some(e) = engine {
                    path.push_str(&format!("&engine={}", encode(e)));
                }
                c.get(&path).await
            }
            Backend::Peer(p) => {
                let req = Request::Discover {
                    id: id.clone(),
                    engine: engine.map(str::to_string),
                };
                match p.ask(req).await? {
                    Response::Providers(list) => Ok(list),
                    _ => Err(unexpected()),
                }
            }
        }
    }

    pub async fn nodes(&self, engine: Option<&str>) -> anyhow::Result<Vec<NodeInfo>> {
        match self {
            Backend::Local(c) => {
                let path = match engine {
                    Some(e) => format!("/nodes?engine={}", encode(e)),
                    None => "/nodes".to_string(),
                };
                c.get(&path).await
            }
            Backend::Peer(p) => {
                let req = Request::Nodes {
                    engine: engine.map(str::to_string),
                };
                match p.ask(req).await? {
                    Response::Nodes(list) => Ok(list),
                    _ => Err(unexpected()),
                }
            }
        }
    }

    pub async fn engines(&self) -> anyhow::Result<Vec<EngineInfo>> {
        match self {
            Backend::Local(c) => c.get("/plugins").await,
            Backend::Peer(p) => match p.ask(Request::Engines).await? {
                Response::Engines(list) => Ok(list),
                _ => Err(unexpected()),
            },
        }
    }

    /// A page of `node`'s durable event log: events after `after`.
    pub async fn event_page(
        &self,
        node: &str,
        after: u64,
        limit: usize,
    ) -> anyhow::Result<EventPage> {
        match self {
            Backend::Local(c) => {
                c.get(&format!(
                    "/events/log?node={}&after={after}&limit={limit}",
                    encode(node)
                ))
                .await
            }
            Backend::Peer(p) => {
                let req = Request::EventLog {
                    node: Some(node.to_string()),
                    after,
                    limit: limit as u32,
                };
                match p.ask(req).await? {
                    Response::EventLog(page) => Ok(page),
                    _ => Err(unexpected()),
                }
            }
        }
    }

    /// A piece of output file `path` of job `id` that ran on `node`, from `offset`.
    pub async fn output_chunk(
        &self,
        id: &WorkloadId,
        node: &str,
        path: &str,
        offset: u64,
    ) -> anyhow::Result<OutputChunk> {
        match self {
            Backend::Local(c) => {
                let mut url = path_of(id, "/outputs");
                url.push_str(&format!(
                    "&node={}&path={}&offset={offset}",
                    encode(node),
                    encode(path)
                ));
                c.get(&url).await
            }
            Backend::Peer(p) => {
                let req = Request::Output {
                    id: id.clone(),
                    node: Some(node.to_string()),
                    path: path.to_string(),
                    offset,
                };
                match p.ask(req).await? {
                    Response::Output(chunk) => Ok(chunk),
                    _ => Err(unexpected()),
                }
            }
        }
    }

    /// Sends an operator's signed command (drain, uncordon); the node forwards it to the
    /// node it names.
    pub async fn command(&self, command: Vec<u8>) -> anyhow::Result<DrainReport> {
        match self {
            Backend::Local(c) => {
                let answer = c.post("/commands", &CommandRequest { command }).await?;
                if !answer.status.is_success() {
                    return Err(answer.refused());
                }
                serde_json::from_slice(&answer.body)
                    .context("the node answered with an unexpected body")
            }
            Backend::Peer(p) => match p.ask(Request::Command { command }).await? {
                Response::Drained(r) => Ok(r),
                _ => Err(unexpected()),
            },
        }
    }

    pub async fn events(
        &self,
        id: Option<&WorkloadId>,
        limit: usize,
    ) -> anyhow::Result<Vec<Event>> {
        match self {
            Backend::Local(c) => {
                let mut path = format!("/events?limit={limit}");
                if let Some(id) = id {
                    path.push_str(&format!(
                        "&name={}&namespace={}",
                        encode(&id.name),
                        encode(&id.namespace)
                    ));
                }
                c.get(&path).await
            }
            Backend::Peer(_) => {
                bail!("events are kept per node: use the node's local API (--node)")
            }
        }
    }
}
