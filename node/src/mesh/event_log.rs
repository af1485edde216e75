//! Every node's durable event log, readable from any node: a page of this node's log, or of
//! another's, asked of it (see `meshctl events -w`).

use libp2p::PeerId;
use mesh_protocol::api::EventPage;
use mesh_protocol::wire::{Request, Response};

use super::merge::unexpected;
use super::{Error, Mesh};

/// Events in one page at most.
pub const MAX_EVENT_PAGE: usize = 500;

impl Mesh {
    /// Up to `limit` events after `after` from the log of `node` (this node when `None`).
    pub async fn event_page(
        &self,
        node: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<EventPage, Error> {
        let limit = limit.clamp(1, MAX_EVENT_PAGE);
        let me = self.peer_id();
        let target = self.node_named(node)?;
        if target == me {
            return Ok(self
                .inner
                .node
                .store()
                .event_page(&me.to_string(), after, limit)?);
        }
        let request = Request::EventLog {
            node: None,
            after,
            limit: limit as u32,
        };
        match self.ask(target, request).await? {
            Response::EventLog(page) => Ok(page),
            _ => Err(unexpected(&target)),
        }
    }
}

impl Mesh {
    /// The node a request names (`None`: this one); a name that is not a peer id is `400`.
    pub(crate) fn node_named(&self, node: Option<&str>) -> Result<PeerId, Error> {
        match node {
            None => Ok(self.peer_id()),
            Some(n) => n
                .parse::<PeerId>()
                .map_err(|_| Error::invalid(format!("{n:?} is not a node id"))),
        }
    }
}
