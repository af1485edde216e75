//! What the secrets test captures and how it searches it: every log line of the process, every
//! gossip message a peer on the topic hears, every byte of a node's directory and database,
//! and the forms a secret could take in them (plain, hex, base64 at any alignment, a byte
//! list as `Debug` prints one).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, Multiaddr, PeerId};
use mesh_node::testing::{raw_peer, wait_until};

/// Every log line of every node (they share the process), at TRACE, from every crate.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Installs the process's subscriber (and the `log` bridge) as `meshd` does, at TRACE:
    /// everything goes here.
    pub fn capture() -> Self {
        use tracing_subscriber::util::SubscriberInitExt as _;
        let logs = Logs::default();
        let writer = logs.clone();
        // `sled=trace` too: the cap must hold against a filter that asks for it.
        let filter = tracing_subscriber::EnvFilter::new("trace,sled=trace");
        tracing_subscriber::fmt()
            .with_env_filter(mesh_node::daemon::cap_filter(filter))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
            .try_init()
            .expect("the only subscriber of this test binary");
        logs
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// What the gossip observer heard.
#[derive(Default)]
pub struct Heard {
    pub subscribed: HashSet<PeerId>,
    pub messages: Vec<Vec<u8>>,
}

/// A raw libp2p peer on the nodes' topic, with the nodes' gossip settings, connected to every
/// node: with flood publishing every node sends it what it publishes, and it is in each
/// node's mesh for what they forward. Returns once every node has it as a subscriber.
pub async fn observe_gossip(
    nodes: Vec<Multiaddr>,
) -> (Arc<Mutex<Heard>>, tokio::task::JoinHandle<()>) {
    let config = mesh_node::net::gossip_config()
        .heartbeat_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let behaviour: gossipsub::Behaviour =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config).unwrap();
    let mut swarm = raw_peer(libp2p::identity::Keypair::generate_ed25519(), behaviour);
    let topic = gossipsub::IdentTopic::new(mesh_node::net::GOSSIP_TOPIC);
    swarm.behaviour_mut().subscribe(&topic).unwrap();
    let n = nodes.len();
    for addr in nodes {
        swarm.dial(addr).unwrap();
    }
    let heard = Arc::new(Mutex::new(Heard::default()));
    let sink = heard.clone();
    let pump = tokio::spawn(async move {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(gossipsub::Event::Subscribed { peer_id, .. }) => {
                    sink.lock().unwrap().subscribed.insert(peer_id);
                }
                SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) => {
                    sink.lock().unwrap().messages.push(message.data);
                }
                _ => {}
            }
        }
    });
    wait_until(
        "every node to take the observer on the topic",
        Duration::from_secs(20),
        || async { (heard.lock().unwrap().subscribed.len() == n).then_some(()) },
    )
    .await;
    (heard, pump)
}

/// The forms a value could leak in, each with its name.
pub fn forms(name: &str, bytes: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(plain) = std::str::from_utf8(bytes) {
        out.push((format!("{name} (plain)"), plain.to_string()));
    }
    out.push((format!("{name} (hex)"), hex::encode(bytes)));
    let list: Vec<String> = bytes.iter().map(u8::to_string).collect();
    out.push((format!("{name} (byte list)"), list.join(", ")));
    // Inside a longer base64 text the value may start at any of three offsets: the part of
    // its encoding that does not depend on the bytes around it.
    let engines = [
        ("base64", base64::engine::general_purpose::STANDARD),
        ("base64url", base64::engine::general_purpose::URL_SAFE),
    ];
    for (label, engine) in engines {
        for shift in 0..3 {
            let mut padded = vec![0u8; shift];
            padded.extend_from_slice(bytes);
            let enc = engine.encode(&padded);
            let start = if shift == 0 { 0 } else { 4 };
            let stable = &enc[start..enc.len() - 4];
            out.push((
                format!("{name} ({label}, offset {shift})"),
                stable.to_string(),
            ));
        }
    }
    out
}

/// The names of the needles found in `haystack`.
pub fn found(haystack: &str, needles: &[(String, String)]) -> Vec<String> {
    needles
        .iter()
        .filter(|(_, n)| haystack.contains(n.as_str()))
        .map(|(name, _)| name.clone())
        .collect()
}

/// [`found`] over bytes.
pub fn found_in(bytes: &[u8], needles: &[(String, String)]) -> Vec<String> {
    found(&String::from_utf8_lossy(bytes), needles)
}

/// Every tree of a node's sled database (the node stopped): tree → needles found in it, and
/// how many entries were read.
pub fn scan_db(db: &Path, needles: &[(String, String)]) -> (BTreeMap<String, Vec<String>>, usize) {
    // sled lets go of its lock when its last background write is done, which may be a moment
    // after the node stopped.
    let db = mesh_node::testing::wait_until_blocking(
        "the stopped node's database to open",
        Duration::from_secs(10),
        || match sled::open(db) {
            Ok(db) => Some(db),
            Err(e) if e.to_string().contains("could not acquire lock") => None,
            Err(e) => panic!("the stopped node's database does not open: {e}"),
        },
    );
    let mut hits = BTreeMap::new();
    let mut entries = 0;
    for name in db.tree_names() {
        let tree = db.open_tree(&name).unwrap();
        let mut names = HashSet::new();
        for entry in tree.iter() {
            let (k, v) = entry.unwrap();
            entries += 1;
            names.extend(found_in(&k, needles));
            names.extend(found_in(&v, needles));
        }
        if !names.is_empty() {
            let mut names: Vec<String> = names.into_iter().collect();
            names.sort();
            hits.insert(String::from_utf8_lossy(&name).into_owned(), names);
        }
    }
    (hits, entries)
}

/// Every regular file under `dir` in which a needle occurs (raw bytes).
pub fn scan_files(dir: &Path, needles: &[(String, String)]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                todo.push(path);
            } else if meta.is_file()
                && !found_in(&std::fs::read(&path).unwrap(), needles).is_empty()
            {
                hits.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    hits.sort();
    hits
}
