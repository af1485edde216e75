//! Replay protection for client requests: a request's record must be issued within the
//! allowed skew of this node's clock, and its nonce must not have been seen. Nonces are kept
//! until their record falls out of the skew window (after which the clock check refuses a
//! replay anyway), at most [`MAX_NONCES`]; past that the oldest are dropped, and a replay of
//! one of those still meets the record book, which keeps only a newer revision.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use mesh_protocol::UnixMillis;
use mesh_provider::workload::WorkloadRecord;

use super::Refusal;

/// Nonces remembered at most.
pub const MAX_NONCES: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct Guard {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    by_nonce: HashMap<String, UnixMillis>,
    /// (expiry, nonce), oldest first.
    by_expiry: BTreeSet<(UnixMillis, String)>,
}

impl Guard {
    pub(crate) fn check(
        &self,
        r: &WorkloadRecord,
        now: UnixMillis,
        skew: Duration,
    ) -> Result<(), Refusal> {
        let skew_ms = skew.as_millis() as UnixMillis;
        let age = now as i128 - r.issued_at as i128;
        if age.unsigned_abs() > u128::from(skew_ms) {
            let (dir, by) = if age > 0 {
                ("ago", age as u64)
            } else {
                ("in the future", (-age) as u64)
            };
            return Err(Refusal::Replay(format!(
                "{} revision {} was issued {} {dir}, beyond the {} this node allows (trust file: \
                 replay.maxSkew); apply again, and check the clocks if this repeats",
                r.id,
                r.revision,
                humantime::format_duration(Duration::from_millis(by / 1000 * 1000)),
                humantime::format_duration(skew)
            )));
        }
        if r.nonce.len() < 16 {
            return Err(Refusal::Replay(format!(
                "{} revision {} carries no nonce (a meshctl older than this node?)",
                r.id, r.revision
            )));
        }
        let mut seen = self.seen.lock().expect("replay lock is never poisoned");
        while let Some((expiry, _)) = seen.by_expiry.first() {
            if *expiry > now && seen.by_nonce.len() < MAX_NONCES {
                break;
            }
            let (_, nonce) = seen.by_expiry.pop_first().expect("just seen");
            seen.by_nonce.remove(&nonce);
        }
        if seen.by_nonce.contains_key(&r.nonce) {
            return Err(Refusal::Replay(format!(
                "{} revision {} (nonce {}) was already received",
                r.id, r.revision, r.nonce
            )));
        }
        let expiry = r.issued_at.saturating_add(skew_ms);
        seen.by_nonce.insert(r.nonce.clone(), expiry);
        seen.by_expiry.insert((expiry, r.nonce.clone()));
        Ok(())
    }
}
