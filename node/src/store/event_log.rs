//! The node's durable event log: every event it records (lifecycle steps, restarts, liveness,
//! healing), in the order of its per-node sequence number, for `meshctl events -w` on any
//! node. Bounded: beyond [`MAX_EVENT_LOG`] the oldest are dropped, and a counter of what was
//! dropped is kept, so a reader that fell behind learns how many it missed.
//!
//! The log's length is kept in memory ([`Store`]'s `event_log_len`), counted once when the
//! store opens. sled's `Tree::len` walks every entry: called at each trim, it cost 2–4 ms
//! once every 64 events with a full log, and `perf` of a node taking applies put 9.5 % of its
//! samples in that walk; those applies were the single-node bench's p99.

use std::sync::atomic::Ordering;

use mesh_protocol::api::EventPage;
use mesh_protocol::Event;

use super::{decode, encode, Result, Store};

/// Events the log keeps.
pub const MAX_EVENT_LOG: usize = 10_000;
/// The log is trimmed once every this many events, not on each.
const TRIM_EVERY: u64 = 64;

const DROPPED: &[u8] = b"event_log_dropped";

impl Store {
    /// Appends `event` (its sequence number assigned) to the log; trims the oldest.
    pub(super) fn log_event(&self, event: &Event) -> Result<()> {
        if self
            .event_log
            .insert(event.seq.to_be_bytes(), encode(event))?
            .is_none()
        {
            self.event_log_len.fetch_add(1, Ordering::Relaxed);
        }
        if event.seq.is_multiple_of(TRIM_EVERY) {
            self.trim_event_log()?;
        }
        self.newest_event.send_replace(event.seq);
        Ok(())
    }

    /// Changes whenever an event is logged (to its sequence number): a live follower (the
    /// dashboard's stream) waits on it, then reads the page after its cursor. Never blocks the
    /// writer, however slow the follower.
    pub fn watch_events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.newest_event.subscribe()
    }

    fn trim_event_log(&self) -> Result<()> {
        let excess = self.event_log_len().saturating_sub(MAX_EVENT_LOG);
        if excess == 0 {
            return Ok(());
        }
        let oldest: Vec<sled::IVec> = self
            .event_log
            .iter()
            .keys()
            .take(excess)
            .collect::<std::result::Result<_, _>>()?;
        for k in &oldest {
            if self.event_log.remove(k)?.is_some() {
                self.event_log_len.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let dropped = self.events_dropped() + oldest.len() as u64;
        self.node_state.insert(DROPPED, &dropped.to_be_bytes())?;
        Ok(())
    }

    /// Events in the log now.
    pub fn event_log_len(&self) -> usize {
        self.event_log_len.load(Ordering::Relaxed)
    }

    /// Events dropped from the log so far, oldest first.
    pub fn events_dropped(&self) -> u64 {
        match self.node_state.get(DROPPED) {
            Ok(Some(v)) if v.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&v);
                u64::from_be_bytes(b)
            }
            _ => 0,
        }
    }

    /// Up to `limit` events with a sequence number above `after`, oldest first.
    pub fn event_page(&self, node: &str, after: u64, limit: usize) -> Result<EventPage> {
        let mut events = Vec::new();
        for entry in self
            .event_log
            .range((after.saturating_add(1)).to_be_bytes()..)
            .take(limit)
        {
            let (k, v) = entry?;
            events.push(decode::<Event>(&k, &v)?);
        }
        let first = match self.event_log.first()? {
            Some((k, v)) => decode::<Event>(&k, &v)?.seq,
            None => 0,
        };
        let last = match self.event_log.last()? {
            Some((k, v)) => decode::<Event>(&k, &v)?.seq,
            None => 0,
        };
        Ok(EventPage {
            node: node.to_string(),
            events,
            first,
            last,
            dropped: self.events_dropped(),
        })
    }
}
