//! Requests in flight on both request-response protocols at once each get their own answer.
//!
//! A node talks to a peer over two protocols (`/mesh/deploy/1` for applies, `/mesh/rpc/1` for
//! everything else), and each protocol numbers its requests from the same start. When both
//! shared one table of pending replies keyed by request id, a deploy and a module fetch in
//! flight together overwrote each other's reply: one caller got the other's answer, the other
//! "the network task has stopped". Here 500 requests, half on each protocol, go out at once
//! and every caller must get the answer to its own request.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use futures::future::join_all;
use libp2p::identity::Keypair;
use mesh_node::net::{self, Event, NetConfig};
use mesh_protocol::api::SignedRecord;
use mesh_protocol::wire::{ReplicaApply, Request, Response};
use mesh_protocol::WorkloadId;
use tokio_util::sync::CancellationToken;

const REQUESTS: usize = 500;

/// Starts a bare network task (no node service) and returns its client and events.
fn start(shutdown: &CancellationToken) -> (net::Client, tokio::sync::mpsc::Receiver<Event>) {
    let mut config = NetConfig::new(Keypair::generate_ed25519());
    // 500 requests from one peer at once: this test is about answers, not rate limits.
    config.peer_request_rate = 0;
    let (client, events, event_loop) = net::new(config, shutdown.clone()).unwrap();
    tokio::spawn(event_loop.run());
    (client, events)
}

/// The name a request carries, echoed back by the responder.
fn tag_of(request: &Request) -> String {
    match request {
        Request::ApplyReplica(r) => format!("deploy:{}", r.workload),
        Request::Get { id, .. } => format!("rpc:{id}"),
        other => format!("unexpected:{}", other.name()),
    }
}

fn request(i: usize) -> Request {
    let id = WorkloadId::new("default", format!("w{i}"));
    if i.is_multiple_of(2) {
        Request::ApplyReplica(Box::new(ReplicaApply {
            correlation: None,
            record: SignedRecord::default(),
            workload: id,
            slot: 0,
            desired_replicas: 1,
            modules: Vec::new(),
            placement: Vec::new(),
            entry: String::new(),
        }))
    } else {
        Request::Get { id, events: false }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deploy_and_rpc_requests_each_get_their_own_answer() {
    let shutdown = CancellationToken::new();
    let (server, mut inbound) = start(&shutdown);
    let (client, _events) = start(&shutdown);

    // The server answers every request with the tag of the request it answers, after a short
    // delay so that many requests of both protocols are in flight at once.
    let responder = server.clone();
    tokio::spawn(async move {
        while let Some(event) = inbound.recv().await {
            if let Event::Inbound {
                request, channel, ..
            } = event
            {
                let responder = responder.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let response = Response::Error {
                        status: 299,
                        message: tag_of(&request),
                    };
                    responder.respond(channel, response).await;
                });
            }
        }
    });

    let mut addrs = server.listen_addrs().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while addrs.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
        addrs = server.listen_addrs().await;
    }
    assert!(!addrs.is_empty(), "the server never listened");
    let peer = server.local_peer_id();

    let asks = (0..REQUESTS).map(|i| {
        let client = client.clone();
        let addrs = addrs.clone();
        async move {
            let req = request(i);
            let want = tag_of(&req);
            let got =
                tokio::time::timeout(Duration::from_secs(60), client.request(peer, addrs, req))
                    .await
                    .expect("every request is answered within 60 s");
            (want, got)
        }
    });
    let results = join_all(asks).await;
    let mut wrong = Vec::new();
    for (want, got) in &results {
        match got {
            Ok(Response::Error {
                status: 299,
                message,
            }) if message == want => {}
            other => wrong.push(format!("{want}: {other:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {REQUESTS} requests got someone else's answer or none, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(3)]
    );
    shutdown.cancel();
}
