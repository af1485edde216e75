//! DHT keys. Every key is versioned (`/1/`) so that a future record format can live beside
//! this one.

use libp2p_identity::PeerId;
use mesh_protocol::WorkloadId;

/// Kademlia *provider* key of a workload: every node running a replica provides it, so that
/// `get_providers` lists the candidates whose metadata records are then read.
pub fn workload(id: &WorkloadId) -> Vec<u8> {
    format!("/mesh/1/workload/{}/{}", id.namespace, id.name).into_bytes()
}

/// Kademlia *record* key of a workload's record (its signed desired state); one per
/// workload, written by whoever holds its newest revision, kept only when newer.
pub fn record(id: &WorkloadId) -> Vec<u8> {
    format!("/mesh/1/record/{}/{}", id.namespace, id.name).into_bytes()
}

/// The workload a record key names.
pub fn workload_of_record(key: &[u8]) -> Option<WorkloadId> {
    let rest = std::str::from_utf8(key)
        .ok()?
        .strip_prefix("/mesh/1/record/")?;
    let (ns, name) = rest.split_once('/')?;
    Some(WorkloadId::new(ns, name))
}

/// Kademlia *record* key of one provider's metadata for one workload.
pub fn provider(id: &WorkloadId, peer: &PeerId) -> Vec<u8> {
    format!("/mesh/1/provider/{}/{}/{peer}", id.namespace, id.name).into_bytes()
}

/// Kademlia *record* key of a node's capability record.
pub fn node(peer: &PeerId) -> Vec<u8> {
    format!("/mesh/1/node/{peer}").into_bytes()
}

/// Kademlia *provider* key every node provides, to list the mesh's nodes.
pub fn all_nodes() -> Vec<u8> {
    b"/mesh/1/nodes".to_vec()
}

/// Kademlia *provider* key of the nodes that have a healthy engine of this name.
pub fn engine(name: &str) -> Vec<u8> {
    format!("/mesh/1/engine/{name}").into_bytes()
}

/// Kademlia *provider* key of a content-addressed module (`sha256:<hex>`): every node that
/// holds the module provides it, and serves it over request-response.
pub fn module(digest: &str) -> Vec<u8> {
    format!("/mesh/1/module/{digest}").into_bytes()
}

/// The peer a per-provider or node record key names, to check it against the signer.
pub fn signer_of(key: &[u8]) -> Option<PeerId> {
    let s = std::str::from_utf8(key).ok()?;
    if !(s.starts_with("/mesh/1/provider/") || s.starts_with("/mesh/1/node/")) {
        return None;
    }
    s.rsplit('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_name_their_signer() {
        let peer = libp2p_identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let id = WorkloadId::new("default", "web");
        assert_eq!(signer_of(&provider(&id, &peer)), Some(peer));
        assert_eq!(signer_of(&node(&peer)), Some(peer));
        assert_eq!(signer_of(&workload(&id)), None);
        assert_eq!(signer_of(&module("sha256:00")), None);
        assert_ne!(provider(&id, &peer), workload(&id));
        assert_eq!(workload_of_record(&record(&id)), Some(id.clone()));
        assert_eq!(signer_of(&record(&id)), None);
        assert_eq!(workload_of_record(&workload(&id)), None);
    }
}
