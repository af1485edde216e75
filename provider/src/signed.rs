//! The signed envelope every DHT record and heartbeat travels in.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! "MSR1" | u16 key_len | public key (libp2p protobuf encoding) | u16 sig_len | signature | payload (JSON)
//! ```
//!
//! The signature covers `"mesh-record/1\0" || payload`, so a signature made for anything else
//! with the same key never verifies here. The signer's peer id is derived from the public
//! key; verification checks it against the peer id inside the payload and, when given, the
//! one the DHT key names.

use libp2p_identity::{Keypair, PeerId};
use mesh_protocol::UnixMillis;

use crate::envelope;
use crate::record::Record;
use crate::MAX_RECORD_BYTES;

/// Why a record was refused. Refused records are ignored by discovery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("malformed record: {0}")]
    Malformed(String),
    #[error("record of {0} bytes exceeds the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("signature does not verify")]
    BadSignature,
    #[error("record claims peer {claimed} but is signed by {signer}")]
    WrongSigner { claimed: String, signer: String },
    #[error("record expired at {0}")]
    Expired(UnixMillis),
}

/// A verified record and its signer.
#[derive(Debug, Clone, PartialEq)]
pub struct Signed {
    pub signer: PeerId,
    pub record: Record,
}

/// Signs and encodes a record. Fails only when the record is too large.
pub fn encode(keypair: &Keypair, record: &Record) -> Result<Vec<u8>, RecordError> {
    let payload = serde_json::to_vec(record).map_err(|e| RecordError::Malformed(e.to_string()))?;
    let out =
        envelope::seal(envelope::RECORD, keypair, &payload).map_err(RecordError::Malformed)?;
    if out.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge(out.len()));
    }
    Ok(out)
}

/// Decodes and verifies a record: signature, signer = claimed peer (= `expected`, when the
/// DHT key names one), and not expired at `now`.
pub fn verify(
    bytes: &[u8],
    expected: Option<&PeerId>,
    now: UnixMillis,
) -> Result<Signed, RecordError> {
    let signed = verify_signature(bytes, expected)?;
    if signed.record.expires_at() <= now {
        return Err(RecordError::Expired(signed.record.expires_at()));
    }
    Ok(signed)
}

/// [`verify`] without the expiry check: discovery first picks the newest signed record of a
/// provider, then looks at its expiry, so that an older unexpired copy never outlives a newer
/// withdrawal.
pub fn verify_signature(bytes: &[u8], expected: Option<&PeerId>) -> Result<Signed, RecordError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge(bytes.len()));
    }
    let (signer, payload) = envelope::open(envelope::RECORD, bytes).map_err(|e| match e {
        envelope::Refused::Malformed(m) => RecordError::Malformed(m),
        envelope::Refused::BadSignature => RecordError::BadSignature,
    })?;
    let record: Record =
        serde_json::from_slice(payload).map_err(|e| RecordError::Malformed(e.to_string()))?;
    if record.peer_id() != signer.to_string() || expected.is_some_and(|p| *p != signer) {
        return Err(RecordError::WrongSigner {
            claimed: expected.map_or_else(|| record.peer_id().to_string(), |p| p.to_string()),
            signer: signer.to_string(),
        });
    }
    Ok(Signed { signer, record })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{NodeRecord, NodeResources, ProviderRecord};
    use mesh_protocol::Phase;

    fn provider(keypair: &Keypair, expires_at: u64) -> Record {
        Record::Provider(ProviderRecord {
            workload: "default/web".into(),
            version: "sha256:ab".into(),
            peer_id: keypair.public().to_peer_id().to_string(),
            engine: "mock".into(),
            capabilities: vec!["logs".into()],
            resources: Default::default(),
            phase: Phase::Running,
            addresses: vec!["/ip4/127.0.0.1/tcp/1".into()],
            issued_at: 1,
            expires_at,
            withdrawn: false,
            slot: None,
            revision: None,
        })
    }

    #[test]
    fn round_trip() {
        let k = Keypair::generate_ed25519();
        let bytes = encode(&k, &provider(&k, 100)).unwrap();
        let signed = verify(&bytes, Some(&k.public().to_peer_id()), 50).unwrap();
        assert_eq!(signed.record, provider(&k, 100));
        assert!(
            bytes.len() < 1024,
            "records stay small: {} bytes",
            bytes.len()
        );
    }

    #[test]
    fn expired_records_are_refused() {
        let k = Keypair::generate_ed25519();
        let bytes = encode(&k, &provider(&k, 100)).unwrap();
        assert_eq!(verify(&bytes, None, 100), Err(RecordError::Expired(100)));
    }

    #[test]
    fn forged_records_are_refused() {
        let k = Keypair::generate_ed25519();
        let mut bytes = encode(&k, &provider(&k, 100)).unwrap();
        // Change the payload after signing: "mock" -> "mocq".
        let pos = bytes.windows(4).position(|w| w == b"mock").unwrap();
        bytes[pos + 3] = b'q';
        assert_eq!(verify(&bytes, None, 50), Err(RecordError::BadSignature));
    }

    #[test]
    fn a_record_for_another_peer_is_refused() {
        let honest = Keypair::generate_ed25519();
        let thief = Keypair::generate_ed25519();
        // The thief signs a record claiming to be the honest peer.
        let bytes = encode(&thief, &provider(&honest, 100)).unwrap();
        assert!(matches!(
            verify(&bytes, None, 50),
            Err(RecordError::WrongSigner { .. })
        ));
        // The thief's own record under the honest peer's key is refused too.
        let own = encode(&thief, &provider(&thief, 100)).unwrap();
        assert!(matches!(
            verify(&own, Some(&honest.public().to_peer_id()), 50),
            Err(RecordError::WrongSigner { .. })
        ));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for junk in [
            &b""[..],
            b"MSR1",
            b"MSR1\x00\x05abc",
            b"hello world",
            &[0xff; 64],
        ] {
            assert!(verify(junk, None, 0).is_err());
        }
        let k = Keypair::generate_ed25519();
        let node = Record::Node(NodeRecord {
            peer_id: k.public().to_peer_id().to_string(),
            addresses: vec!["x".repeat(MAX_RECORD_BYTES)],
            engines: vec![],
            resources: NodeResources::default(),
            workloads: 0,
            software_version: "0".into(),
            trust: String::new(),
            cordoned: false,
            issued_at: 0,
            expires_at: 1,
        });
        assert!(matches!(encode(&k, &node), Err(RecordError::TooLarge(_))));
    }
}
