//! Turning the raw records a DHT lookup returned into the current providers of a workload.
//!
//! A lookup can return several copies of one provider's record: the current one, older
//! renewals, and a withdrawal. Only signature-valid records count; per provider the newest
//! (by its signed `issued_at`) wins; a newest record that is withdrawn or expired removes the
//! provider. Records for another workload, unsigned, forged or signed by someone other than
//! the peer the key names are ignored.

use std::collections::BTreeMap;

use libp2p_identity::PeerId;
use mesh_protocol::UnixMillis;

use crate::record::{ProviderRecord, Record};
use crate::signed::verify_signature;

/// One provider as discovery reports it.
pub type Discovered = ProviderRecord;

/// The current providers of `workload` (`namespace/name`), optionally only those running it
/// on `engine`, sorted by peer id. `raw` pairs each record with the peer its DHT key names.
pub fn newest_per_provider<'a>(
    raw: impl IntoIterator<Item = (Option<PeerId>, &'a [u8])>,
    workload: &str,
    engine: Option<&str>,
    now: UnixMillis,
) -> Vec<Discovered> {
    let mut newest: BTreeMap<String, ProviderRecord> = BTreeMap::new();
    for (expected, bytes) in raw {
        let Ok(signed) = verify_signature(bytes, expected.as_ref()) else {
            continue;
        };
        let Record::Provider(record) = signed.record else {
            continue;
        };
        if record.workload != workload {
            continue;
        }
        match newest.get(&record.peer_id) {
            Some(have) if have.issued_at >= record.issued_at => {}
            _ => {
                newest.insert(record.peer_id.clone(), record);
            }
        }
    }
    newest
        .into_values()
        .filter(|r| !r.withdrawn && r.expires_at > now)
        .filter(|r| engine.is_none_or(|e| r.engine == e))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signed::encode;
    use libp2p_identity::Keypair;
    use mesh_protocol::Phase;

    fn rec(k: &Keypair, engine: &str, issued_at: u64, expires_at: u64, withdrawn: bool) -> Vec<u8> {
        encode(
            k,
            &Record::Provider(ProviderRecord {
                workload: "default/web".into(),
                version: "v".into(),
                peer_id: k.public().to_peer_id().to_string(),
                engine: engine.into(),
                capabilities: vec![],
                resources: Default::default(),
                phase: Phase::Running,
                addresses: vec![],
                issued_at,
                expires_at,
                withdrawn,
                slot: None,
                revision: None,
            }),
        )
        .unwrap()
    }

    #[test]
    fn newest_wins_and_withdrawals_remove() {
        let a = Keypair::generate_ed25519();
        let b = Keypair::generate_ed25519();
        let c = Keypair::generate_ed25519();
        let pa = Some(a.public().to_peer_id());
        let pb = Some(b.public().to_peer_id());
        let pc = Some(c.public().to_peer_id());
        let records = [
            (pa, rec(&a, "mock", 10, 100, false)),
            (pa, rec(&a, "mock", 20, 200, false)), // renewal
            (pb, rec(&b, "podman", 10, 100, false)),
            (pb, rec(&b, "podman", 30, 130, true)), // withdrawn later
            (pc, rec(&c, "mock", 10, 40, false)),   // expired at now=50
        ];
        let found = newest_per_provider(
            records.iter().map(|(p, r)| (*p, r.as_slice())),
            "default/web",
            None,
            50,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].issued_at, 20);
        let none = newest_per_provider(
            records.iter().map(|(p, r)| (*p, r.as_slice())),
            "default/web",
            Some("podman"),
            50,
        );
        assert!(none.is_empty());
    }

    #[test]
    fn forged_and_foreign_records_are_ignored() {
        let a = Keypair::generate_ed25519();
        let b = Keypair::generate_ed25519();
        let good = rec(&a, "mock", 10, 100, false);
        let mut forged = good.clone();
        let n = forged.len();
        forged[n - 3] ^= 1;
        // b's record stored under a's key.
        let misplaced = rec(&b, "mock", 10, 100, false);
        let pa = Some(a.public().to_peer_id());
        let found = newest_per_provider(
            [(pa, forged.as_slice()), (pa, misplaced.as_slice())],
            "default/web",
            None,
            5,
        );
        assert!(found.is_empty());
        let found = newest_per_provider([(pa, good.as_slice())], "default/other", None, 5);
        assert!(found.is_empty());
    }
}
