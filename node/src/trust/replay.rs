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
        let what = format!("{} revision {}", r.id, r.revision);
        self.check_request(&what, &r.nonce, r.issued_at, now, skew)
    }

    /// The same check for any signed request (`what` names it in a refusal).
    pub(crate) fn check_request(
        &self,
        what: &str,
        nonce: &str,
        issued_at: UnixMillis,
        now: UnixMillis,
        skew: Duration,
    ) -> Result<(), Refusal> {
        let skew_ms = skew.as_millis() as UnixMillis;
        let age = now as i128 - issued_at as i128;
        if age.unsigned_abs() > u128::from(skew_ms) {
            let (dir, by) = if age > 0 {
                ("ago", age as u64)
            } else {
                ("in the future", (-age) as u64)
            };
            return Err(Refusal::Replay(format!(
                "{what} was issued {} {dir}, beyond the {} this node allows (trust file: \
                 replay.maxSkew); send it again, and check the clocks if this repeats",
                humantime::format_duration(Duration::from_millis(by / 1000 * 1000)),
                humantime::format_duration(skew)
            )));
        }
        if nonce.len() < 16 {
            return Err(Refusal::Replay(format!(
                "{what} carries no nonce (a meshctl older than this node?)"
            )));
        }
        let mut seen = self.seen.lock().expect("replay lock is never poisoned");
        while let Some((expiry, _)) = seen.by_expiry.first() {
            if *expiry > now && seen.by_nonce.len() < MAX_NONCES {
                break;
            }
            let (_, old) = seen.by_expiry.pop_first().expect("just seen");
            seen.by_nonce.remove(&old);
        }
        if seen.by_nonce.contains_key(nonce) {
            return Err(Refusal::Replay(format!(
                "{what} (nonce {nonce}) was already received"
            )));
        }
        let expiry = issued_at.saturating_add(skew_ms);
        seen.by_nonce.insert(nonce.to_string(), expiry);
        seen.by_expiry.insert((expiry, nonce.to_string()));
        Ok(())
    }
}
