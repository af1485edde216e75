//! Requests and answers of the request-response protocols: an inbound request goes to the
//! node's work queue unless its peer is over its rate (`429` at once) or the queue is full
//! (`503` at once); an answer or a failure goes to whoever waits for it.

use std::time::Instant;

use libp2p::request_response;
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
        if let request_response::Event::Message { peer, .. } = &event {
            self.last_used.insert(*peer, Instant::now());
        }
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
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
                if let Some(reply) = self.pending_requests.remove(&(on, request_id)) {
                    let _ = reply.send(Err(format!("request to {peer} failed: {error}")));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}
