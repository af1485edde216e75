//! The signed envelope every record travels in (provider and node records, workload records),
//! each kind with its own magic and signature domain. Integers big-endian:
//!
//! ```text
//! MAGIC (4 bytes) | u16 key_len | public key (libp2p protobuf encoding) | u16 sig_len | signature | payload
//! ```
//!
//! The signature covers `domain || payload`, so a signature made for one kind (or anything
//! else with the same key) never verifies as another. The payload is checked as received,
//! never re-encoded.

use libp2p_identity::{Keypair, PeerId, PublicKey};

/// One kind of envelope: its magic and its signature domain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kind {
    pub(crate) magic: &'static [u8; 4],
    pub(crate) domain: &'static [u8],
}

/// Provider and node records (`mesh-record/1`).
pub(crate) const RECORD: Kind = Kind {
    magic: b"MSR1",
    domain: b"mesh-record/1\0",
};

/// Workload records (`mesh-workload/1`).
pub(crate) const WORKLOAD: Kind = Kind {
    magic: b"MWR1",
    domain: b"mesh-workload/1\0",
};

/// Why an envelope did not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    Malformed(String),
    BadSignature,
}

/// Signs `payload` with `keypair` and wraps it.
pub(crate) fn seal(kind: Kind, keypair: &Keypair, payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut msg = kind.domain.to_vec();
    msg.extend_from_slice(payload);
    let signature = keypair.sign(&msg).map_err(|e| e.to_string())?;
    let key = keypair.public().encode_protobuf();
    let mut out = Vec::with_capacity(8 + key.len() + signature.len() + payload.len());
    out.extend_from_slice(kind.magic);
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(&key);
    out.extend_from_slice(&(signature.len() as u16).to_be_bytes());
    out.extend_from_slice(&signature);
    out.extend_from_slice(payload);
    Ok(out)
}

fn read_chunk<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], Refused> {
    let truncated = || Refused::Malformed("truncated".into());
    let (len, rest) = bytes.split_first_chunk::<2>().ok_or_else(truncated)?;
    let len = u16::from_be_bytes(*len) as usize;
    let chunk = rest.get(..len).ok_or_else(truncated)?;
    *bytes = &rest[len..];
    Ok(chunk)
}

/// Checks the signature of an envelope of `kind`; returns the signer and the payload.
pub(crate) fn open(kind: Kind, bytes: &[u8]) -> Result<(PeerId, &[u8]), Refused> {
    let mut rest = bytes
        .strip_prefix(kind.magic.as_slice())
        .ok_or_else(|| Refused::Malformed("not a mesh record of this kind".into()))?;
    let key = read_chunk(&mut rest)?;
    let signature = read_chunk(&mut rest)?;
    let public = PublicKey::try_decode_protobuf(key)
        .map_err(|e| Refused::Malformed(format!("public key: {e}")))?;
    let mut msg = kind.domain.to_vec();
    msg.extend_from_slice(rest);
    if !public.verify(&msg, signature) {
        return Err(Refused::BadSignature);
    }
    Ok((public.to_peer_id(), rest))
}
