//! WASM modules across the mesh. A node that holds a module (bundled into an apply it took,
//! or fetched) provides its DHT key `/mesh/1/module/sha256:<hex>` and serves it in chunks
//! over request-response. A node that lacks one fetches it during the wasm engine's Fetch
//! phase through [`MeshFetcher`]: from the nodes the apply named first, then from the DHT's
//! providers; the engine verifies every download against the digest (see
//! `mesh_engine_wasm::fetch`), so a provider that sends partial or corrupt bytes is skipped.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use async_trait::async_trait;
use libp2p::{Multiaddr, PeerId};
use mesh_engine_wasm::{Digest, ModuleFetcher};
use mesh_protocol::api::{ApplyRequest, BundledModule, MAX_MODULE_BYTES};
use mesh_protocol::wire::{Request, Response, MODULE_CHUNK_BYTES};
use mesh_provider::keys;

use super::peers::PeerTable;
use super::Error;
use super::Mesh;
use crate::net;

/// Hints kept per digest: nodes an apply named as holding the module.
pub const MAX_HINTS: usize = 1024;

impl Mesh {
    /// At the entry node: stores the modules an apply bundles, provides them, and rewrites
    /// the apply so that it carries digests and this node as provider instead of the bytes
    /// (what the nodes chosen by placement receive).
    pub(crate) async fn take_modules(&self, mut req: ApplyRequest) -> Result<ApplyRequest, Error> {
        if req.modules.is_empty() {
            return Ok(req);
        }
        let stored = self.inner.node.store_modules(&req).await?;
        for digest in &stored {
            self.provide_module(digest).await;
        }
        let me = self.addresses().await;
        for m in &mut req.modules {
            if m.bytes.take().is_some() {
                m.providers = me.clone();
            }
        }
        Ok(req)
    }

    /// Announces that this node holds `digest`.
    pub(crate) async fn provide_module(&self, digest: &Digest) {
        if let Err(e) = self.provide(keys::module(&digest.to_string()), false).await {
            tracing::debug!(module = %digest, error = %e, "module provider entry not replicated yet");
        }
    }

    /// Announces every module in the store (at start and with each renewal).
    pub(crate) async fn provide_modules(&self) {
        let Some(store) = self.inner.node.module_store().cloned() else {
            return;
        };
        let digests = tokio::task::spawn_blocking(move || store.list())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        for digest in digests {
            self.provide_module(&digest).await;
        }
    }

    /// Remembers which nodes an apply named as holding its modules.
    pub(crate) fn hint_modules(&self, modules: &[BundledModule]) {
        let mut hints = self
            .inner
            .module_hints
            .lock()
            .expect("hints lock is never poisoned");
        if hints.len() >= MAX_HINTS {
            hints.clear();
        }
        for m in modules {
            if !m.providers.is_empty() {
                hints.insert(m.digest.clone(), m.providers.clone());
            }
        }
    }

    /// A chunk of a stored module, for a peer.
    pub(crate) async fn serve_module(&self, digest: &str, offset: u64) -> Result<Response, Error> {
        let digest = Digest::parse(digest).map_err(|e| Error::invalid(e.to_string()))?;
        let path = self
            .inner
            .node
            .module_store()
            .and_then(|s| s.get(&digest))
            .ok_or_else(|| Error::Absent(format!("module {digest} is not on this node")))?;
        let (total, bytes) = read_piece(path, offset)
            .await
            .map_err(|e| Error::internal(format!("cannot read module {digest}: {e}")))?;
        Ok(Response::ModuleChunk {
            total,
            offset,
            bytes,
        })
    }
}

/// Up to [`MODULE_CHUNK_BYTES`] of the file at `path` from `offset`, with the file's size, read
/// off the runtime's threads: a piece of a module, or of a job's output file, for a peer.
pub(crate) async fn read_piece(
    path: std::path::PathBuf,
    offset: u64,
) -> std::io::Result<(u64, Vec<u8>)> {
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let total = file.metadata()?.len();
        file.seek(SeekFrom::Start(offset.min(total)))?;
        let mut bytes = Vec::new();
        file.take(MODULE_CHUNK_BYTES as u64)
            .read_to_end(&mut bytes)?;
        Ok((total, bytes))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The wasm engine's way to modules on other nodes. Made before the engines and the mesh,
/// from what both share: the network client, the mesh's peer table (for addresses) and the
/// module hints the mesh records as applies arrive.
#[derive(Debug)]
pub struct MeshFetcher {
    net: net::Client,
    peers: Arc<PeerTable>,
    hints: Arc<Hints>,
}

impl MeshFetcher {
    pub fn new(net: net::Client, peers: Arc<PeerTable>, hints: Arc<Hints>) -> Arc<Self> {
        Arc::new(Self { net, peers, hints })
    }
}

/// A provider as [`MeshFetcher::providers`] names it: a multiaddr ending in `/p2p/<id>`, or
/// a bare peer id.
fn parse_provider(provider: &str) -> Option<(PeerId, Vec<Multiaddr>)> {
    if let Ok(peer) = provider.parse::<PeerId>() {
        return Some((peer, Vec::new()));
    }
    let addr: Multiaddr = provider.parse().ok()?;
    let peer = addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
        _ => None,
    })?;
    Some((peer, vec![addr]))
}

#[async_trait]
impl ModuleFetcher for MeshFetcher {
    async fn providers(&self, digest: &Digest) -> Vec<String> {
        let me = self.net.local_peer_id();
        let key = digest.to_string();
        let hinted: Vec<String> = self
            .hints
            .lock()
            .expect("hints lock is never poisoned")
            .get(&key)
            .cloned()
            .unwrap_or_default();
        let mut seen = vec![me];
        let mut out = Vec::new();
        for h in hinted {
            if let Some((peer, _)) = parse_provider(&h) {
                // One address per peer is enough: the first is the one the entry node listed.
                if !seen.contains(&peer) {
                    seen.push(peer);
                    out.push(h);
                }
            }
        }
        let mut found: Vec<PeerId> = self
            .net
            .get_providers(keys::module(&key))
            .await
            .into_iter()
            .filter(|p| !seen.contains(p))
            .collect();
        found.sort();
        out.extend(found.iter().map(PeerId::to_string));
        out
    }

    async fn download(&self, provider: &str, digest: &Digest) -> Result<Vec<u8>, String> {
        let (peer, mut addrs) =
            parse_provider(provider).ok_or_else(|| format!("bad provider {provider:?}"))?;
        if addrs.is_empty() {
            addrs = self.peers.addrs_of(&peer);
        }
        let mut bytes: Vec<u8> = Vec::new();
        loop {
            let request = Request::FetchModule {
                digest: digest.to_string(),
                offset: bytes.len() as u64,
            };
            let answer = self.net.request(peer, addrs.clone(), request).await?;
            let (total, offset, chunk) = match answer {
                Response::ModuleChunk {
                    total,
                    offset,
                    bytes,
                } => (total, offset, bytes),
                Response::Error { message, .. } => return Err(message),
                _ => return Err("unexpected answer".to_string()),
            };
            if total > MAX_MODULE_BYTES as u64 {
                return Err(format!(
                    "announces a {total}-byte module; at most {MAX_MODULE_BYTES}"
                ));
            }
            if offset != bytes.len() as u64 || chunk.len() > MODULE_CHUNK_BYTES {
                return Err("sent a chunk that does not fit".to_string());
            }
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 >= total {
                bytes.truncate(total as usize);
                return Ok(bytes);
            }
            if chunk.is_empty() {
                return Err(format!("stopped after {} of {total} bytes", bytes.len()));
            }
        }
    }
}

/// Hints by digest.
pub type Hints = std::sync::Mutex<HashMap<String, Vec<String>>>;
