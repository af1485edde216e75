//! The connection manager: which connections a node closes, and when.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use libp2p::request_response::OutboundRequestId;
use libp2p::PeerId;
use mesh_protocol::wire::{Request, Response};

use super::{
    peer_of, EventLoop, CLOSEST_PEERS_REUSE, CONNECTIONS_HIGH_WATER, CONNECTIONS_LOW_WATER,
    TRIM_PERIOD,
};

/// How long a peer's [`Request::Closing`] covers the close that follows it.
const CLOSING_NOTICE: Duration = Duration::from_secs(5);

impl EventLoop {
    /// How often connections are counted, and how long a used peer is protected from trimming:
    /// [`TRIM_PERIOD`], or the idle timeout if shorter.
    pub(super) fn trim_period(&self) -> Duration {
        TRIM_PERIOD.min(self.idle_timeout)
    }

    /// Connected peers whose connections may be closed: neither gossip mesh peers nor
    /// bootstrap peers, and no request in flight with them either way.
    fn trimmable(&self) -> Vec<PeerId> {
        let mesh: HashSet<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_mesh_peers()
            .copied()
            .collect();
        let bootstrap: HashSet<PeerId> = self.bootstrap.iter().filter_map(peer_of).collect();
        self.swarm
            .connected_peers()
            .filter(|p| !mesh.contains(p) && !bootstrap.contains(p) && !self.in_flight.busy(p))
            .copied()
            .collect()
    }

    /// A connection manager. Gossipsub keeps a stream open to every peer it ever met, so
    /// connections never idle out on their own, and a node would end up connected to the
    /// whole mesh. Connections to [`Self::trimmable`] peers are closed once unused for the
    /// idle timeout; above the high-water mark, the least recently used of those unused for a
    /// period are closed too, down to the low-water mark. Closed peers stay in the routing
    /// table and are dialled again when needed.
    pub(super) fn trim_connections(&mut self) {
        let now = Instant::now();
        let blocked = &mut self.swarm.behaviour_mut().blocked;
        let cut = &self.cut;
        self.blocked_until.retain(|peer, until| {
            let keep = *until > now;
            if !keep && !cut.contains(peer) {
                blocked.unblock_peer(*peer);
            }
            keep
        });
        self.rate.prune(now);
        self.closing_announced
            .retain(|_, at| now.duration_since(*at) < CLOSING_NOTICE);
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        self.last_used.retain(|p, _| connected.contains(p));
        self.closest
            .retain(|_, (found, _)| found.elapsed() < CLOSEST_PEERS_REUSE);
        let trimmable = self.trimmable();
        let now = Instant::now();
        let mut candidates: Vec<(Duration, PeerId)> = trimmable
            .iter()
            .map(|p| {
                let used = self.last_used.get(p).copied().unwrap_or(now);
                (now.duration_since(used), *p)
            })
            .filter(|(unused, _)| *unused >= self.trim_period())
            .collect();
        // Longest unused first.
        candidates.sort_by(|a, b| b.cmp(a));
        let idle = candidates
            .iter()
            .take_while(|(unused, _)| *unused >= self.idle_timeout)
            .count();
        let excess = connected.len().saturating_sub(CONNECTIONS_LOW_WATER);
        let closing = if connected.len() > CONNECTIONS_HIGH_WATER {
            idle.max(excess.min(candidates.len()))
        } else {
            idle
        };
        if closing == 0 {
            return;
        }
        tracing::debug!(
            connected = connected.len(),
            trimmable = trimmable.len(),
            idle,
            closing,
            "closing connections"
        );
        for (_, peer) in candidates.into_iter().take(closing) {
            self.close(peer);
        }
    }

    /// Trims at once, rather than at the next period, when a new connection took the node
    /// above the high-water mark: a node many peers dial at once (a bootstrap node, the
    /// closest peer of a popular key) would otherwise hold all of them for up to a period. At
    /// most once a second.
    pub(super) fn trim_if_crowded(&mut self) {
        let now = Instant::now();
        if self.swarm.network_info().num_peers() > CONNECTIONS_HIGH_WATER
            && !matches!(self.trimmed_at, Some(at) if now.duration_since(at) < Duration::from_secs(1))
        {
            self.trimmed_at = Some(now);
            self.trim_connections();
        }
    }

    /// A request to a peer this node is not connected to needs a new connection. At the
    /// connection limit (`--max-connections`) the dial would be refused, so the least
    /// recently used connection that may be trimmed (not to a gossip mesh or bootstrap peer,
    /// no request in flight) is closed first, however recently it was used.
    pub(super) fn make_room_for(&mut self, peer: &PeerId) {
        let established = self
            .swarm
            .network_info()
            .connection_counters()
            .num_established();
        if self.swarm.is_connected(peer) || established < self.max_connections {
            return;
        }
        let now = Instant::now();
        let oldest = self
            .trimmable()
            .into_iter()
            .min_by_key(|p| self.last_used.get(p).copied().unwrap_or(now));
        if let Some(oldest) = oldest {
            tracing::debug!(%peer, closing = %oldest, established, "at the connection limit: closing the least recently used connection");
            self.close(oldest);
        }
    }

    /// Closes the connections to `peer`, announcing it first ([`Request::Closing`]): to the
    /// peer, a connection closed without notice is a peer lost, which it suspects and probes
    /// at once (to find a killed node within milliseconds); and the probe dials this node
    /// again. Announced, the close costs one round trip and nothing after it. The request
    /// counts as in flight, so the peer is not picked twice; the connections close when the
    /// answer (or a failure) arrives, unless another request is in flight by then.
    pub(super) fn close(&mut self, peer: PeerId) {
        self.in_flight.start(peer);
        let id = self
            .swarm
            .behaviour_mut()
            .rpc
            .send_request(&peer, Request::Closing);
        self.closing.insert(id, peer);
    }

    /// The answer to (or the failure of) a [`Request::Closing`] this node sent: `true` when
    /// `id` was one.
    pub(super) fn on_closing_answered(&mut self, id: &OutboundRequestId) -> bool {
        let Some(peer) = self.closing.remove(id) else {
            return false;
        };
        if !self.in_flight.busy(&peer) {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        true
    }

    /// A peer announced it closes its connection with this node: noted, answered.
    pub(super) fn on_closing_announced(
        &mut self,
        peer: PeerId,
        channel: libp2p::request_response::ResponseChannel<Response>,
    ) {
        self.closing_announced.insert(peer, Instant::now());
        let _ = self
            .swarm
            .behaviour_mut()
            .rpc
            .send_response(channel, Response::Closing);
    }

    /// Whether the last connection with `peer`, just closed, was closed as `peer` announced
    /// (lately). Forgets the announcement.
    pub(super) fn closing_announced(&mut self, peer: &PeerId) -> bool {
        self.closing_announced
            .remove(peer)
            .is_some_and(|at| at.elapsed() < CLOSING_NOTICE)
    }
}
