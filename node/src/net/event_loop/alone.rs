//! A node whose routing table holds no peer (alone: no peer ever entered it) answers
//! Kademlia commands from its own store instead of starting a lookup. The lookup would ask
//! nobody and end at once, yet starting one walks all 256 buckets of the table, and
//! libp2p-kad 0.49's `ClosestIter` moves its K-entry buffer for each: 11 % of a lone
//! `meshd`'s CPU under the WASM bench's apply loop (`perf`, docs/benchmarks.md), paid on every
//! apply (its record, its announcement, its provider key) and on every
//! `GET /deployments/NAME` (the providers, then their records). What is answered is what the
//! lookup's first step reports: the unexpired local copies. (A node cut off from peers it had
//! keeps them in its table, and still looks up.)

use std::collections::HashSet;
use std::time::Instant;

use libp2p::kad::store::RecordStore;
use libp2p::kad::{ProviderRecord, RecordKey};
use libp2p::PeerId;

use super::EventLoop;
use crate::net::FoundRecord;

impl EventLoop {
    /// Whether the routing table names no peer: a lookup would find nobody.
    pub(super) fn alone(&mut self) -> bool {
        self.swarm.behaviour_mut().kad.kbuckets().next().is_none()
    }

    /// The local copy of `key` unless it expired (then it is dropped, as `get_record` does).
    pub(super) fn local_records(&mut self, key: &[u8]) -> Vec<FoundRecord> {
        let key = RecordKey::new(&key);
        let store = self.swarm.behaviour_mut().kad.store_mut();
        let Some(record) = store.get(&key) else {
            return Vec::new();
        };
        if record.is_expired(Instant::now()) {
            store.remove(&key);
            return Vec::new();
        }
        vec![record.into_owned().value]
    }

    /// The providers of `key` this node knows of, unexpired (the expired are dropped, as
    /// `get_providers` does).
    pub(super) fn local_providers(&mut self, key: &[u8]) -> HashSet<PeerId> {
        let key = RecordKey::new(&key);
        let store = self.swarm.behaviour_mut().kad.store_mut();
        let now = Instant::now();
        let mut found = HashSet::new();
        for p in store.providers(&key) {
            if p.is_expired(now) {
                store.remove_provider(&key, &p.provider);
            } else {
                found.insert(p.provider);
            }
        }
        found
    }

    /// Records this node as a provider of `key`, as `start_providing` does before its lookup
    /// (without addresses: Kademlia adds the node's own when it hands the record out). The
    /// node's own renewal (`mesh::announce`) provides it again later, as it would after a
    /// lookup that reached nobody.
    pub(super) fn provide_locally(&mut self, key: &[u8]) -> Result<(), String> {
        let local = *self.swarm.local_peer_id();
        let record = ProviderRecord::new(RecordKey::new(&key), local, Vec::new());
        self.swarm
            .behaviour_mut()
            .kad
            .store_mut()
            .add_provider(record)
            .map_err(|e| format!("cannot provide: {e:?}"))
    }

    /// Kademlia queries under way (for tests).
    #[cfg(test)]
    fn queries(&mut self) -> usize {
        self.swarm.behaviour_mut().kad.iter_queries().count()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use libp2p::identity::Keypair;
    use tokio::sync::oneshot;
    use tokio_util::sync::CancellationToken;

    use libp2p::kad;

    use super::*;
    use crate::net::{Command, NetConfig};

    fn lone() -> EventLoop {
        let config = NetConfig::new(Keypair::generate_ed25519());
        let (_client, _events, event_loop) =
            crate::net::new(config, CancellationToken::new()).expect("a lone network");
        event_loop
    }

    fn put(el: &mut EventLoop, key: &[u8], value: &[u8], expires: Instant) {
        let (reply, mut rx) = oneshot::channel();
        el.on_command(Command::PutRecord {
            key: key.to_vec(),
            value: value.to_vec(),
            expires,
            replicated: true,
            reply,
        });
        assert_eq!(rx.try_recv().expect("answered at once"), Ok(()));
    }

    fn get(el: &mut EventLoop, key: &[u8]) -> Vec<FoundRecord> {
        let (reply, mut rx) = oneshot::channel();
        el.on_command(Command::GetRecords {
            key: key.to_vec(),
            reply,
        });
        rx.try_recv().expect("answered at once, without a lookup")
    }

    #[tokio::test]
    async fn a_lone_node_answers_from_its_store_without_starting_a_lookup() {
        let mut el = lone();
        assert!(el.alone());
        let later = Instant::now() + Duration::from_secs(60);
        put(&mut el, b"k", b"v", later);
        assert_eq!(get(&mut el, b"k"), vec![b"v".to_vec()]);
        assert!(get(&mut el, b"other").is_empty());

        // An expired copy is not handed out, and is dropped.
        put(
            &mut el,
            b"old",
            b"v",
            Instant::now() - Duration::from_secs(1),
        );
        assert!(get(&mut el, b"old").is_empty());
        let store = el.swarm.behaviour_mut().kad.store_mut();
        assert!(store.get(&RecordKey::new(&b"old")).is_none(), "dropped");

        let (reply, mut rx) = oneshot::channel();
        el.on_command(Command::StartProviding {
            key: b"w".to_vec(),
            replicated: true,
            reply,
        });
        assert_eq!(rx.try_recv().expect("answered at once"), Ok(()));
        let (reply, mut rx) = oneshot::channel();
        el.on_command(Command::GetProviders {
            key: b"w".to_vec(),
            reply,
        });
        let me = *el.swarm.local_peer_id();
        assert_eq!(
            rx.try_recv().expect("answered at once"),
            HashSet::from([me])
        );
        assert_eq!(el.queries(), 0, "no lookup was started");
    }

    #[tokio::test]
    async fn the_nearest_peers_by_hand_are_kademlias_closest() {
        let mut el = lone();
        for _ in 0..40 {
            let peer = Keypair::generate_ed25519().public().to_peer_id();
            el.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, "/ip4/127.0.0.1/tcp/9".parse().expect("multiaddr"));
        }
        for key in [b"a".as_slice(), b"workload/default/web", b"z"] {
            let target = kad::KBucketKey::from(RecordKey::new(&key));
            let kademlias: Vec<PeerId> = el
                .swarm
                .behaviour_mut()
                .kad
                .get_closest_local_peers(&target)
                .take(3)
                .map(|k| *k.preimage())
                .collect();
            assert_eq!(kademlias.len(), 3);
            assert_eq!(el.nearest_in_table(&target, 3), kademlias);
        }
    }

    #[tokio::test]
    async fn a_node_with_a_peer_in_its_routing_table_still_looks_up() {
        let mut el = lone();
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        el.swarm
            .behaviour_mut()
            .kad
            .add_address(&peer, "/ip4/127.0.0.1/tcp/9".parse().expect("multiaddr"));
        assert!(!el.alone());
        let (reply, mut rx) = oneshot::channel();
        el.on_command(Command::GetRecords {
            key: b"k".to_vec(),
            reply,
        });
        assert!(rx.try_recv().is_err(), "the lookup answers later");
        assert_eq!(el.queries(), 1);
    }
}
