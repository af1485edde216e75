//! Probing suspects (see [`super::liveness`]): the task that suspects silent peers and runs
//! probe rounds, the answers to peers' pings and indirect probes, and liveness events.

use std::time::Duration;

use futures::future::{join_all, BoxFuture};
use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use mesh_protocol::wire::{PingProof, Request, Response, PING_CONTEXT};
use mesh_protocol::{Event, Outcome, Step};
use mesh_provider::{signed, Record, Suspicion};
use mesh_runtime::now_millis;
use tokio_util::sync::CancellationToken;

use super::liveness::{judge, Answer, Status, Verdict};
use super::{Mesh, MeshConfig, HEARTBEAT_SLACK};
use crate::net::RequestError;

/// Peers asked to probe a suspect on this node's behalf.
pub const INDIRECT_PROBES: usize = 2;

impl MeshConfig {
    /// How long a peer that is silent (not refusing) stays suspect before it is dead: as long
    /// as a heartbeat stays valid.
    pub fn suspicion_timeout(&self) -> Duration {
        self.heartbeat_validity()
    }

    /// How long a ping waits for its answer.
    pub fn probe_timeout(&self) -> Duration {
        (self.heartbeat_interval / 2).clamp(Duration::from_millis(250), Duration::from_secs(2))
    }

    /// How often suspects are probed again and silences looked for.
    pub fn probe_period(&self) -> Duration {
        (self.heartbeat_interval / 2).clamp(Duration::from_millis(100), Duration::from_secs(1))
    }
}

impl Mesh {
    /// Each period (and at once when a connection is lost): peers silent too long become
    /// suspect, and every suspect without a probe round running gets one. The rounds run
    /// inside this task, so none outlives the node.
    pub(crate) async fn run_liveness(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.inner.config.probe_period());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rounds: FuturesUnordered<BoxFuture<'static, ()>> = FuturesUnordered::new();
        loop {
            tokio::select! {
                _ = tick.tick() => self.liveness_round(&mut rounds),
                _ = self.inner.probe_now.notified() => self.liveness_round(&mut rounds),
                Some(()) = rounds.next(), if !rounds.is_empty() => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    fn liveness_round(&self, rounds: &mut FuturesUnordered<BoxFuture<'static, ()>>) {
        let config = &self.inner.config;
        let multiplier = self.inner.health.multiplier(std::time::Instant::now());
        for (peer, at, validity) in self.inner.peers.heard() {
            let quiet = at.elapsed();
            // Judged by the peer's own period (it grows with the mesh), and by this node's
            // health (see `health`). Long gone (its entry about to be forgotten): nothing to
            // decide any more.
            let silence = silence(super::heartbeat_period_of(validity)) * multiplier;
            if quiet > silence && quiet < validity * 10 {
                let why = format!(
                    "no heartbeat for {}",
                    humantime::format_duration(secs(quiet))
                );
                self.suspect(peer, &why);
            }
        }
        self.inner.liveness.prune(config.heartbeat_validity() * 20);
        for (peer, suspect_for) in self.inner.liveness.take_probes() {
            let mesh = self.clone();
            rounds.push(Box::pin(async move {
                mesh.probe_round(peer, suspect_for).await
            }));
        }
    }

    /// A peer this node heard from lost its last connection on an error (see
    /// [`crate::net::Event::PeerGone`]): suspect, probed at once.
    pub(crate) fn on_peer_gone(&self, peer: PeerId) {
        // A node of the mesh: heard by heartbeat, or announcing a replica (a node that dies
        // before its first heartbeat reached anyone). Others are clients (`meshctl --peer`).
        if self.inner.peers.issued_at(&peer).is_none() && !self.inner.providers.knows(&peer) {
            return;
        }
        if self.suspect(peer, "its connection was lost") {
            self.inner.probe_now.notify_one();
        }
    }

    /// Tells the mesh this node found `peer` dead ([`Suspicion`]): the nodes not connected
    /// to it, which would notice only as its heartbeats stop (two periods and more), probe
    /// it at once instead.
    async fn spread_suspicion(&self, peer: PeerId) {
        let now = now_millis();
        let suspicion = Suspicion {
            peer_id: self.peer_id().to_string(),
            suspect: peer.to_string(),
            issued_at: now,
            expires_at: now + self.inner.config.heartbeat_validity().as_millis() as u64,
            heard_at: self.inner.peers.issued_at(&peer),
        };
        match signed::encode(&self.inner.keypair, &Record::Suspicion(suspicion)) {
            Ok(bytes) => self.inner.net.publish(bytes).await,
            Err(e) => tracing::error!(error = %e, "cannot sign a suspicion"),
        }
    }

    /// A peer's word that it found a suspect dead: a reason to suspect it and probe it at
    /// once, unless it is this node, or one this node does not know as a node of the mesh, or
    /// this node holds a heartbeat of it signed after the newest the signer had (the signer
    /// missed life that this node saw: its verdict rests on older news than this node's).
    ///
    /// Without that last rule, 100 in-process nodes forming a mesh on 2 cores fell into a
    /// storm: nodes whose heartbeats arrived late to a busy node were found dead there, each
    /// verdict made every node suspect and probe them at once, the probes loaded the process
    /// further and made more verdicts (33 385 suspicions from gossip in 100 s, 8 380 deaths).
    pub(crate) fn on_suspicion(&self, signer: &PeerId, suspicion: &Suspicion) {
        let Ok(peer) = suspicion.suspect.parse::<PeerId>() else {
            return;
        };
        let mine = self.inner.peers.issued_at(&peer);
        if peer == self.peer_id() || (mine.is_none() && !self.inner.providers.knows(&peer)) {
            return;
        }
        if let (Some(mine), Some(theirs)) = (mine, suspicion.heard_at) {
            if mine > theirs {
                tracing::debug!(%peer, %signer, "a suspicion older than this node's news of the peer: ignored");
                return;
            }
        }
        if self.suspect(peer, &format!("peer {signer} found it dead")) {
            self.inner.probe_now.notify_one();
        }
    }

    fn suspect(&self, peer: PeerId, why: &str) -> bool {
        if !self.inner.liveness.suspect(peer, now_millis()) {
            return false;
        }
        tracing::info!(%peer, reason = why, "peer suspect");
        self.liveness_event(
            Outcome::Failed,
            format!("peer {peer} suspect: {why}; probing it"),
        );
        true
    }

    /// A heartbeat arrived: a suspect or dead peer that signed it since is alive.
    pub(crate) fn on_heartbeat(&self, peer: &PeerId, issued_at: u64) {
        if let Some(was) = self.inner.liveness.heard(peer, issued_at) {
            self.alive_again(peer, was, "a new heartbeat");
        }
    }

    fn alive_again(&self, peer: &PeerId, was: Status, how: &str) {
        tracing::info!(%peer, was = was.as_str(), how, "peer alive");
        // A suspicion that ended with the peer alive. (A dead peer's new heartbeat may come
        // from a restart, which is no false alarm.)
        if was == Status::Suspect {
            self.inner.health.false_alarm(std::time::Instant::now());
        }
        self.liveness_event(
            Outcome::Ok,
            format!("peer {peer} alive ({} until {how})", was.as_str()),
        );
        self.inner.heal_now.notify_one();
    }

    /// Pings `peer` directly and, unless it answers, through [`INDIRECT_PROBES`] other alive
    /// peers; then judges.
    async fn probe_round(&self, peer: PeerId, suspect_for: Duration) {
        let direct = self.ping(peer).await;
        let indirect = if direct == Answer::Alive {
            Vec::new()
        } else {
            let helpers = self.helpers(peer);
            let asks = helpers.iter().map(|h| self.probe_through(*h, peer));
            join_all(asks).await
        };
        let timeout = self.suspicion_timeout();
        let verdict = judge(direct, &indirect, suspect_for, timeout);
        let liveness = &self.inner.liveness;
        match verdict {
            Verdict::Alive => {
                if let Some(was) = liveness.answered(&peer) {
                    self.alive_again(&peer, was, "it answered a probe");
                }
            }
            Verdict::Dead => {
                if liveness.confirm(&peer, now_millis()) {
                    let why = if suspect_for >= timeout {
                        format!(
                            "silent for {} of suspicion",
                            humantime::format_duration(secs(suspect_for))
                        )
                    } else {
                        format!(
                            "unreachable from here and from {} other peer(s)",
                            indirect.len()
                        )
                    };
                    tracing::warn!(%peer, reason = %why, "peer dead");
                    self.liveness_event(Outcome::Failed, format!("peer {peer} dead: {why}"));
                    self.inner.heal_now.notify_one();
                    self.spread_suspicion(peer).await;
                }
            }
            Verdict::StillSuspect => {}
        }
        liveness.probed(&peer);
    }

    /// How long a silent suspect stays suspect before it is dead: the configured timeout,
    /// times this node's health multiplier.
    fn suspicion_timeout(&self) -> Duration {
        self.inner.config.suspicion_timeout()
            * self.inner.health.multiplier(std::time::Instant::now())
    }

    /// Up to [`INDIRECT_PROBES`] alive peers other than `target`, a different pair each round
    /// (a rotation through the fresh peers, so one bad helper cannot keep a peer suspect).
    fn helpers(&self, target: PeerId) -> Vec<PeerId> {
        let me = self.peer_id();
        let mut alive: Vec<PeerId> = self
            .alive_peers()
            .into_iter()
            .filter(|p| *p != target && *p != me)
            .collect();
        if alive.is_empty() {
            return alive;
        }
        let start = self
            .inner
            .probe_rotation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % alive.len();
        alive.rotate_left(start);
        alive.truncate(INDIRECT_PROBES);
        alive
    }

    /// Peers with a fresh heartbeat that this node neither suspects nor holds dead.
    pub(crate) fn alive_peers(&self) -> Vec<PeerId> {
        self.inner
            .peers
            .fresh_ids(now_millis())
            .into_iter()
            .filter(|p| self.inner.liveness.status(p) == Status::Alive)
            .collect()
    }

    /// Pings `peer` with a fresh nonce: a proof signed by it in time, an error before the
    /// timeout (refused, reset), or silence (a forged or wrong proof counts as silence).
    pub(crate) async fn ping(&self, peer: PeerId) -> Answer {
        let nonce = nonce();
        let (answer, proof) = self.ping_with(peer, nonce.clone()).await;
        match proof {
            Some(p) if proves(&p, &peer, &nonce) => Answer::Alive,
            Some(_) => {
                tracing::debug!(%peer, "ping answered with a proof that does not verify");
                Answer::Silent
            }
            None => answer,
        }
    }

    /// Sends `Ping { nonce }` and returns the answer with the proof as received (unchecked).
    async fn ping_with(&self, peer: PeerId, nonce: Vec<u8>) -> (Answer, Option<PingProof>) {
        let addrs = self.addrs_of(&peer);
        let request = self
            .inner
            .net
            .send_request(peer, addrs, Request::Ping { nonce });
        match tokio::time::timeout(self.inner.config.probe_timeout(), request).await {
            Ok(Ok(Response::Pong(proof))) => (Answer::Alive, Some(proof)),
            Ok(Ok(_)) => (Answer::Silent, None),
            // Refused: what a dead node's address answers.
            Ok(Err(e @ RequestError::NoConnection(_))) => {
                tracing::debug!(%peer, error = %e, "ping failed");
                (Answer::Unreachable, None)
            }
            // The connection closed before the answer: a peer at its connection limit accepts
            // the handshake (proving its key) and then drops the connection. Not a refusal;
            // the next round asks again, and its heartbeats clear it meanwhile.
            Ok(Err(e @ RequestError::NoAnswer(_))) => {
                tracing::debug!(%peer, error = %e, "ping unanswered");
                (Answer::Silent, None)
            }
            Err(_) => (Answer::Silent, None),
        }
    }

    /// Asks `helper` to ping `target` with a nonce of this node's: the helper relays the
    /// target's signed answer, so it cannot vouch for a dead node. A helper that does not
    /// answer in time, or relays no good proof, counts as silent; its word that the target
    /// refused counts only alongside this node's own failed ping (see `judge`).
    async fn probe_through(&self, helper: PeerId, target: PeerId) -> Answer {
        let nonce = nonce();
        let request = Request::Probe {
            peer: target.to_string(),
            nonce: nonce.clone(),
        };
        let wait = self.inner.config.probe_timeout() * 2;
        match tokio::time::timeout(wait, self.ask(helper, request)).await {
            Ok(Ok(Response::Probed { proof: Some(p), .. })) if proves(&p, &target, &nonce) => {
                Answer::Alive
            }
            Ok(Ok(Response::Probed {
                proof: None,
                unreachable: true,
            })) => Answer::Unreachable,
            _ => Answer::Silent,
        }
    }

    /// Answers a peer's [`Request::Ping`]: this node's signature over the nonce.
    pub(crate) fn serve_ping(&self, nonce: &[u8]) -> Response {
        if nonce.len() > MAX_NONCE {
            return Response::Error {
                status: 400,
                message: format!("ping: a nonce of at most {MAX_NONCE} bytes"),
            };
        }
        let message = [PING_CONTEXT, nonce].concat();
        match self.inner.keypair.sign(&message) {
            Ok(signature) => Response::Pong(PingProof {
                key: self.inner.keypair.public().encode_protobuf(),
                signature,
            }),
            Err(e) => Response::Error {
                status: 500,
                message: format!("cannot sign a ping: {e}"),
            },
        }
    }

    /// Answers a peer's [`Request::Probe`]: the target's own proof for the asker's nonce.
    pub(crate) async fn serve_probe(&self, target: &str, nonce: Vec<u8>) -> Response {
        let Ok(target) = target.parse::<PeerId>() else {
            return Response::Error {
                status: 400,
                message: format!("probe: {target:?} is not a peer id"),
            };
        };
        if nonce.len() > MAX_NONCE {
            return Response::Error {
                status: 400,
                message: format!("probe: a nonce of at most {MAX_NONCE} bytes"),
            };
        }
        if target == self.peer_id() {
            return match self.serve_ping(&nonce) {
                Response::Pong(p) => Response::Probed {
                    proof: Some(p),
                    unreachable: false,
                },
                other => other,
            };
        }
        let (answer, proof) = self.ping_with(target, nonce).await;
        Response::Probed {
            proof,
            unreachable: answer == Answer::Unreachable,
        }
    }

    fn liveness_event(&self, outcome: Outcome, message: String) {
        self.mesh_event(Step::Liveness, "", "", outcome, message);
    }

    /// Records an event of the mesh layer (liveness, healing) in the node's event log.
    pub(crate) fn mesh_event(
        &self,
        step: Step,
        workload: &str,
        version: &str,
        outcome: Outcome,
        message: String,
    ) {
        let event = Event {
            seq: 0,
            at: now_millis(),
            workload: workload.to_string(),
            version: version.to_string(),
            step,
            outcome,
            duration_us: 0,
            engine: None,
            message,
            correlation: None,
        };
        if let Err(e) = self.inner.node.store().append_event(event) {
            tracing::warn!(error = %e, "cannot record a mesh event");
        }
    }
}

/// Whole seconds (for messages), at least the milliseconds under one.
fn secs(d: Duration) -> Duration {
    if d < Duration::from_secs(1) {
        Duration::from_millis(d.as_millis() as u64)
    } else {
        Duration::from_secs(d.as_secs())
    }
}

/// Longest nonce a ping may carry.
const MAX_NONCE: usize = 64;

/// A fresh ping nonce: 16 random bytes.
fn nonce() -> Vec<u8> {
    mesh_provider::workload::new_nonce().into_bytes()
}

/// Silence after which a peer heartbeating every `period` is suspect: two heartbeats missed,
/// plus slack.
fn silence(period: Duration) -> Duration {
    period * 2 + HEARTBEAT_SLACK
}

/// Whether `proof` is `peer`'s signature over `nonce`.
fn proves(proof: &PingProof, peer: &PeerId, nonce: &[u8]) -> bool {
    let Ok(key) = libp2p::identity::PublicKey::try_decode_protobuf(&proof.key) else {
        return false;
    };
    key.to_peer_id() == *peer && key.verify(&[PING_CONTEXT, nonce].concat(), &proof.signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    fn proof(key: &Keypair, nonce: &[u8]) -> PingProof {
        PingProof {
            key: key.public().encode_protobuf(),
            signature: key.sign(&[PING_CONTEXT, nonce].concat()).unwrap(),
        }
    }

    #[test]
    fn only_the_peers_own_signature_over_this_nonce_proves_it_alive() {
        let (peer, other) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let id = peer.public().to_peer_id();
        let n = nonce();
        assert!(proves(&proof(&peer, &n), &id, &n));
        // Another nonce (a replayed answer), another key (a helper vouching), a key swapped
        // in under a good signature, garbage: none proves anything.
        assert!(!proves(&proof(&peer, &nonce()), &id, &n));
        assert!(!proves(&proof(&other, &n), &id, &n));
        let mut swapped = proof(&peer, &n);
        swapped.key = other.public().encode_protobuf();
        assert!(!proves(&swapped, &id, &n));
        let garbage = PingProof {
            key: vec![1, 2, 3],
            signature: vec![4],
        };
        assert!(!proves(&garbage, &id, &n));
        // A signature made for something else than a ping.
        let bare = PingProof {
            key: peer.public().encode_protobuf(),
            signature: peer.sign(&n).unwrap(),
        };
        assert!(!proves(&bare, &id, &n));
    }
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod suspicion_tests;
