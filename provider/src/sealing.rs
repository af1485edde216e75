//! Sealing a workload's manifest: XChaCha20-Poly1305 under a per-workload data key.
//!
//! The data key is derived from the submitter's signing key and the workload id (the SHA-256
//! of an ed25519 signature, which is deterministic, over a domain-separated message), so a
//! re-apply of the same file by the same user seals under the same key and keys the same
//! spec version: an unchanged apply stays `unchanged`. Nonces are random (24 bytes, safe
//! at random for XChaCha), so the same plaintext never gives the same ciphertext twice.
//!
//! The key itself never enters a published record: `meshctl` hands it to its entry node, and
//! nodes pass it point-to-point, over the encrypted libp2p channel, to the nodes they place
//! replicas on.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use libp2p_identity::Keypair;
use mesh_protocol::WorkloadId;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::workload::ManifestSource;

const KEY_DOMAIN: &[u8] = b"mesh-data-key/1\0";
const AAD_DOMAIN: &[u8] = b"mesh-sealed-source/1\0";

/// A workload's 32-byte data key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataKey(#[serde(with = "mesh_protocol::b64")] Vec<u8>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(…)")
    }
}

impl DataKey {
    /// The key `keypair`'s owner uses for `id`.
    pub fn derive(keypair: &Keypair, id: &WorkloadId) -> Result<Self, SealError> {
        let mut msg = KEY_DOMAIN.to_vec();
        msg.extend_from_slice(id.to_string().as_bytes());
        let signature = keypair
            .sign(&msg)
            .map_err(|e| SealError::Key(e.to_string()))?;
        Ok(Self(Sha256::digest(&signature).to_vec()))
    }

    /// A key from its bytes (as passed between nodes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        if bytes.len() != 32 {
            return Err(SealError::Key(format!(
                "a data key has 32 bytes, not {}",
                bytes.len()
            )));
        }
        Ok(Self(bytes.to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new_from_slice(&self.0).expect("a data key always has 32 bytes")
    }
}

/// A sealed [`ManifestSource`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    #[serde(with = "mesh_protocol::b64")]
    pub nonce: Vec<u8>,
    #[serde(with = "mesh_protocol::b64")]
    pub ciphertext: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("data key: {0}")]
    Key(String),
    #[error("the sealed manifest does not open with this data key (wrong key or altered)")]
    Open,
    #[error("sealed manifest: {0}")]
    Malformed(String),
}

/// The workload id binds a sealed manifest to its record: a ciphertext moved into another
/// workload's record does not open.
fn aad(id: &WorkloadId) -> Vec<u8> {
    let mut aad = AAD_DOMAIN.to_vec();
    aad.extend_from_slice(id.to_string().as_bytes());
    aad
}

/// Seals `source` for workload `id`.
pub fn seal(key: &DataKey, id: &WorkloadId, source: &ManifestSource) -> Sealed {
    let plain = serde_json::to_vec(source).expect("a manifest source always serialises");
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ciphertext = key
        .cipher()
        .encrypt(
            &nonce,
            chacha20poly1305::aead::Payload {
                msg: &plain,
                aad: &aad(id),
            },
        )
        .expect("encryption of an in-memory buffer cannot fail");
    Sealed {
        nonce: nonce.to_vec(),
        ciphertext,
    }
}

/// Opens a sealed source of workload `id`.
pub fn open(key: &DataKey, id: &WorkloadId, sealed: &Sealed) -> Result<ManifestSource, SealError> {
    if sealed.nonce.len() != 24 {
        return Err(SealError::Malformed(format!(
            "nonce of {} bytes, not 24",
            sealed.nonce.len()
        )));
    }
    let nonce = XNonce::from_slice(&sealed.nonce);
    let plain = key
        .cipher()
        .decrypt(
            nonce,
            chacha20poly1305::aead::Payload {
                msg: &sealed.ciphertext,
                aad: &aad(id),
            },
        )
        .map_err(|_| SealError::Open)?;
    serde_json::from_slice(&plain).map_err(|e| SealError::Malformed(e.to_string()))
}
