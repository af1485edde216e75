//! Requests and answers of the request-response protocols: an inbound request goes to the
//! node's work queue unless its peer is over its rate (`429` at once) or the queue is full
//! (`503` at once); an answer or a failure goes to whoever waits for it.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::{request_response, PeerId};
use mesh_protocol::wire::{Request, Response};
use tokio::sync::mpsc;

use super::EventLoop;
use crate::metrics::Reason;
use crate::net::{Channel, Event};

impl EventLoop {
    pub(super) fn on_rpc(
        &mut self,
        on: Channel,
        event: request_response::Event<Request, Response>,
    ) {
        match &event {
            request_response::Event::Message { peer, message, .. } => {
                self.last_used.insert(*peer, Instant::now());
                match message {
                    request_response::Message::Request { .. } => self.in_flight.start(*peer),
                    request_response::Message::Response { .. } => self.in_flight.end(peer),
                }
            }
            request_response::Event::OutboundFailure { peer, .. }
            | request_response::Event::InboundFailure { peer, .. }
            | request_response::Event::ResponseSent { peer, .. } => self.in_flight.end(peer),
        }
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    if on == Channel::Rpc && request == Request::Closing {
                        return self.on_closing_announced(peer, channel);
                    }
                    if !self.rate.allow(peer, Instant::now()) {
                        tracing::debug!(%peer, "request over the peer's rate limit");
                        self.metrics.refused(Reason::RateLimited);
                        let limited = Response::Error {
                            status: 429,
                            message: format!(
                                "rate limited: more than {} requests per second from peer {peer}",
                                self.rate.rate()
                            ),
                        };
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .rpc
                            .send_response(channel, limited);
                        return;
                    }
                    if let Err(mpsc::error::TrySendError::Full(Event::Inbound {
                        channel, ..
                    })) = self.events.try_send(Event::Inbound {
                        peer,
                        request,
                        channel,
                    }) {
                        self.metrics.refused(Reason::Busy);
                        let busy = Response::Error {
                            status: 503,
                            message: "node busy: too many requests in flight".to_string(),
                        };
                        let _ = self.swarm.behaviour_mut().rpc.send_response(channel, busy);
                    }
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if on == Channel::Rpc && self.on_closing_answered(&request_id) {
                        return;
                    }
                    if let Some(reply) = self.pending_requests.remove(&(on, request_id)) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            } => {
                if on == Channel::Rpc && self.on_closing_answered(&request_id) {
                    return;
                }
                if let Some(reply) = self.pending_requests.remove(&(on, request_id)) {
                    let _ = reply.send(Err(crate::net::RequestError::of(&peer, &error)));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}

/// Requests in flight with each peer, sent or received: a request counts from the moment it is
/// sent or arrives until its answer arrives or is sent, or it fails (a closed connection fails
/// every request on it, so nothing is left counted).
#[derive(Debug, Default)]
pub(super) struct InFlight(HashMap<PeerId, u32>);

impl InFlight {
    pub(super) fn start(&mut self, peer: PeerId) {
        *self.0.entry(peer).or_default() += 1;
    }

    pub(super) fn end(&mut self, peer: &PeerId) {
        if let Some(n) = self.0.get_mut(peer) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(peer);
            }
        }
    }

    pub(super) fn busy(&self, peer: &PeerId) -> bool {
        self.0.contains_key(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_busy_until_each_of_its_requests_ended() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut in_flight = InFlight::default();
        in_flight.start(a);
        in_flight.start(a);
        in_flight.start(b);
        in_flight.end(&a);
        assert!(
            in_flight.busy(&a),
            "one of a's two requests is still in flight"
        );
        in_flight.end(&a);
        in_flight.end(&b);
        assert!(!in_flight.busy(&a) && !in_flight.busy(&b));
        // An end without a start (a failure of a request sent before a restart of the count)
        // does not underflow or mark the peer busy.
        in_flight.end(&a);
        assert!(!in_flight.busy(&a));
    }
}
