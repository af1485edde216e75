//! A per-peer request rate limit: a token bucket per peer, refilled at `rate` requests per
//! second up to `burst`. A request without a token is answered at once with 429 and never
//! reaches the node's work queue, so one peer cannot crowd out the others.
//!
//! Hand-written rather than `governor`: the buckets live in the swarm task alone (no
//! concurrent access to design for), and the whole is a few lines of arithmetic.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// Default sustained requests per second per peer. Generous for a node's own traffic (an
/// apply's replica requests, module chunks, read fan-out); a flood is cut to it.
pub const DEFAULT_RATE: u32 = 100;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
pub(crate) struct RateLimits {
    rate: f64,
    burst: f64,
    buckets: HashMap<PeerId, Bucket>,
}

impl RateLimits {
    /// `rate` requests per second per peer, bursts of twice that. 0 turns the limit off.
    pub(crate) fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(rate) * 2.0,
            buckets: HashMap::new(),
        }
    }

    /// Takes a token of `peer`'s bucket, if there is one.
    pub(crate) fn allow(&mut self, peer: PeerId, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let (rate, burst) = (self.rate, self.burst);
        let b = self.buckets.entry(peer).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets buckets that have been full for a while (peers gone quiet).
    pub(crate) fn prune(&mut self, now: Instant) {
        let full_after = Duration::from_secs_f64(if self.rate > 0.0 {
            self.burst / self.rate
        } else {
            0.0
        });
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.at) < full_after);
    }

    /// The sustained rate, for the refusal's message.
    pub(crate) fn rate(&self) -> u32 {
        self.rate as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds_per_peer() {
        let mut r = RateLimits::new(10);
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        assert_eq!(
            (0..25).filter(|_| r.allow(a, t0)).count(),
            20,
            "a burst of 2× the rate"
        );
        assert!(r.allow(b, t0), "another peer has its own bucket");
        assert!(!r.allow(a, t0 + Duration::from_millis(50)));
        assert!(
            r.allow(a, t0 + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        r.prune(t0 + Duration::from_secs(10));
        assert!(r.buckets.is_empty());
        let mut off = RateLimits::new(0);
        assert!((0..10_000).all(|_| off.allow(a, t0)));
    }
}
