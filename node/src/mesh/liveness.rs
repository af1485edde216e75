//! Liveness of peers, the SWIM way: a peer whose connection broke, or whose heartbeats
//! stopped, becomes *suspect*; it is probed directly and, through two other peers, indirectly;
//! an answer (or a new heartbeat) clears it, and it is confirmed *dead* only when nobody
//! reaches it. Slots move only off dead peers (see [`super::heal`]).
//!
//! Two kinds of failure are told apart. A peer that *refuses* (its process is gone: the
//! dial is refused, the connection resets) to this node and to both helpers is dead at once.
//! A peer that is merely *silent* (a paused process, a stalled machine, a lossy link) stays
//! suspect for the suspicion timeout, probed every period, so a slow node that answers in
//! the meantime is never declared dead.
//!
//! This file is the table and the judgement (sans-IO); [`super::probe`] sends the probes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use mesh_protocol::UnixMillis;

/// What this node believes of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Alive,
    Suspect,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Alive => "alive",
            Status::Suspect => "suspect",
            Status::Dead => "dead",
        }
    }
}

/// The answer of one probe (direct, or relayed by a helper).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The peer answered.
    Alive,
    /// The peer could not be reached at all: dial refused, connection reset.
    Unreachable,
    /// No answer in time: the peer may be slow, or the helper.
    Silent,
}

/// What a probe round concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Alive,
    Dead,
    StillSuspect,
}

/// Judges a probe round: any answer clears the peer; refusals from every prober confirm it
/// dead; otherwise it stays suspect until it has been suspect for `suspicion`.
pub fn judge(
    direct: Answer,
    indirect: &[Answer],
    suspect_for: Duration,
    suspicion: Duration,
) -> Verdict {
    let answered = direct == Answer::Alive || indirect.contains(&Answer::Alive);
    let refused =
        direct == Answer::Unreachable && indirect.iter().all(|a| *a == Answer::Unreachable);
    if answered {
        Verdict::Alive
    } else if refused || suspect_for >= suspicion {
        Verdict::Dead
    } else {
        Verdict::StillSuspect
    }
}

#[derive(Debug)]
struct Entry {
    status: Status,
    /// When the status began, on this node's clocks.
    since: Instant,
    since_ms: UnixMillis,
    /// A probe round is running.
    probing: bool,
}

/// The liveness of every peer this node suspected at least once (others are alive).
#[derive(Debug, Default)]
pub struct Liveness {
    entries: Mutex<HashMap<PeerId, Entry>>,
}

impl Liveness {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, Entry>> {
        self.entries
            .lock()
            .expect("liveness lock is never poisoned")
    }

    pub fn status(&self, peer: &PeerId) -> Status {
        self.entries().get(peer).map_or(Status::Alive, |e| e.status)
    }

    pub fn is_dead(&self, peer: &PeerId) -> bool {
        self.status(peer) == Status::Dead
    }

    /// An alive peer becomes suspect; true if it was alive.
    pub fn suspect(&self, peer: PeerId, now_ms: UnixMillis) -> bool {
        let mut entries = self.entries();
        if entries
            .get(&peer)
            .is_some_and(|e| e.status != Status::Alive)
        {
            return false;
        }
        entries.insert(
            peer,
            Entry {
                status: Status::Suspect,
                since: Instant::now(),
                since_ms: now_ms,
                probing: false,
            },
        );
        true
    }

    /// A heartbeat of `peer` signed at `issued_ms`: one signed after the suspicion (or the
    /// death) began clears it. Returns the status it had, when it was not alive.
    pub fn heard(&self, peer: &PeerId, issued_ms: UnixMillis) -> Option<Status> {
        let mut entries = self.entries();
        let e = entries.get(peer)?;
        if e.status == Status::Alive || issued_ms <= e.since_ms {
            return None;
        }
        let was = e.status;
        entries.remove(peer);
        Some(was)
    }

    /// The peer answered a probe: alive. Returns the status it had, when it was not alive.
    pub fn answered(&self, peer: &PeerId) -> Option<Status> {
        let mut entries = self.entries();
        let was = entries.get(peer).map(|e| e.status)?;
        entries.remove(peer);
        (was != Status::Alive).then_some(was)
    }

    /// A suspect is confirmed dead; true if it was suspect.
    pub fn confirm(&self, peer: &PeerId, now_ms: UnixMillis) -> bool {
        let mut entries = self.entries();
        match entries.get_mut(peer) {
            Some(e) if e.status == Status::Suspect => {
                e.status = Status::Dead;
                e.since = Instant::now();
                e.since_ms = now_ms;
                true
            }
            _ => false,
        }
    }

    /// Suspects no probe round is running for, each with how long it has been suspect;
    /// they are marked as being probed until [`Liveness::probed`].
    pub fn take_probes(&self) -> Vec<(PeerId, Duration)> {
        let mut entries = self.entries();
        entries
            .iter_mut()
            .filter(|(_, e)| e.status == Status::Suspect && !e.probing)
            .map(|(p, e)| {
                e.probing = true;
                (*p, e.since.elapsed())
            })
            .collect()
    }

    /// A probe round for `peer` ended.
    pub fn probed(&self, peer: &PeerId) {
        if let Some(e) = self.entries().get_mut(peer) {
            e.probing = false;
        }
    }

    /// Forgets peers dead for longer than `after` (their records have expired by then).
    pub fn prune(&self, after: Duration) {
        self.entries()
            .retain(|_, e| e.status != Status::Dead || e.since.elapsed() < after);
    }
}

#[cfg(test)]
#[path = "liveness_tests.rs"]
mod tests;
