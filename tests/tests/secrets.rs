//! Confidentiality of secrets (issue 11, item 9): a workload's Secret values reach only the
//! nodes that run it (and the node that took the apply, in memory), never a DHT record, a
//! gossip message, a log line, an event, `describe` output or a record in any node's book.
//!
//! A 5-node mesh logs at TRACE into one buffer, a peer on the gossip topic records every
//! message, and the nodes' DHT stores, books, events, `describe` answers, databases and
//! directories are read whole; the secret, in every form it could take, and the workload's
//! data key are found only where a replica runs. This test is alone in its binary: it installs
//! the process's only tracing subscriber.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

#[path = "secrets_support/mod.rs"]
mod secrets_support;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use base64::Engine as _;
use libp2p::identity::Keypair;
use libp2p::Multiaddr;
use mesh_node::testing::{self, wait_until, TestNet};
use mesh_protocol::api::ApplyAction;
use mesh_protocol::spec::ConfigKind;
use mesh_protocol::{Phase, WorkloadId};
use mesh_provider::record::Record;
use mesh_provider::workload::{self, DataKey, Source};
use mesh_provider::{keys, signed};
use secrets_support::{forms, found, found_in, observe_gossip, scan_db, scan_files, Logs};

/// A Secret (one value as `stringData`, the same as base64 `data`) and a Deployment of two
/// replicas that takes it as an environment variable and a volume.
const MANIFEST: &str = r#"apiVersion: v1
kind: Secret
metadata:
  name: vault-creds
stringData:
  password: SECRET
data:
  token: BASE64
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: vault
spec:
  replicas: 2
  selector:
    matchLabels: {app: vault}
  template:
    metadata:
      labels: {app: vault}
      annotations:
        beemesh.io/runtime-engine: mock
    spec:
      containers:
      - name: main
        image: localhost/mesh-test:latest
        env:
        - name: PASSWORD
          valueFrom: {secretKeyRef: {name: vault-creds, key: password}}
        volumeMounts:
        - {name: creds, mountPath: /run/creds}
      volumes:
      - {name: creds, secret: {secretName: vault-creds}}
"#;

fn manifest(secret: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    MANIFEST.replace("SECRET", secret).replace("BASE64", &b64)
}

fn id() -> WorkloadId {
    WorkloadId::new("default", "vault")
}

/// Running provider records of `id` heard on gossip, per signer: when each was issued (two
/// mean a renewal round went by after the replica ran).
fn provider_rounds(messages: &[Vec<u8>]) -> BTreeMap<String, HashSet<u64>> {
    let mut rounds: BTreeMap<String, HashSet<u64>> = BTreeMap::new();
    for m in messages {
        if let Ok(s) = signed::verify_signature(m, None) {
            if let Record::Provider(p) = s.record {
                if p.workload == id().to_string() && p.phase == Phase::Running && !p.withdrawn {
                    rounds.entry(p.peer_id).or_default().insert(p.issued_at);
                }
            }
        }
    }
    rounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_reach_only_the_nodes_that_run_the_workload() {
    let logs = Logs::capture();
    let started = Instant::now();
    // Node 0 takes the apply and runs nothing; two of nodes 1-4 run the replicas. Renewals
    // (node and provider records, record republish) every 2 s.
    let net = TestNet::start(5, |i, c| {
        c.mesh.provider_ttl = Duration::from_secs(6);
        if i == 0 {
            c.extra_engines.clear();
        }
    })
    .await;
    net.wait_connected(Duration::from_secs(30)).await;
    let addrs: Vec<Multiaddr> = net
        .nodes
        .iter()
        .map(|n| n.daemon().addresses[0].parse().unwrap())
        .collect();
    let (heard, observer) = observe_gossip(addrs).await;

    let user = Keypair::generate_ed25519();
    let secret = format!("s3cr3t-{}", workload::new_nonce());
    let data_key = DataKey::derive(&user, &id()).unwrap();
    let mut needles = forms("secret", secret.as_bytes());
    needles.extend(forms("data key", data_key.as_bytes()));
    let entry = &net.node(0).daemon().mesh;
    let req = testing::signed_apply(entry, &user, &manifest(&secret), 2).await;
    let sealed = workload::verify(&req.records[0].bytes).unwrap();
    assert!(matches!(sealed.record.source, Source::Sealed(_)));
    assert_eq!(
        req.records[0].data_key.as_deref(),
        Some(data_key.as_bytes())
    );

    let resp = entry.apply(req).await.unwrap();
    let outcome = &resp.workloads[0];
    assert_eq!(outcome.action, ApplyAction::Created, "{outcome:?}");
    assert_eq!(outcome.deployment.replicas.len(), 2, "{outcome:?}");
    let runners: Vec<usize> = (0..5)
        .filter(|i| !net.node(*i).mock.instances().is_empty())
        .collect();
    assert_eq!(runners.len(), 2, "two nodes run a replica: {runners:?}");
    assert!(!runners.contains(&0), "the entry node runs nothing");
    for &i in &runners {
        // Sanity: where it runs, the engine got the secret (so the search can find it).
        let spec = &net.node(i).mock.instances()[0].spec;
        let creds = spec.config.iter().find(|c| c.kind == ConfigKind::Secret);
        let creds = creds.unwrap();
        assert_eq!(
            (&creds.data["password"], &creds.data["token"]),
            (&secret, &secret)
        );
    }

    // The record has gone everywhere: the observer heard it, every book holds it, the DHT
    // keeps it (a holder's republish round), and each runner renewed its provider record.
    let runner_ids: Vec<String> = runners
        .iter()
        .map(|i| net.node(*i).daemon().mesh.net().local_peer_id().to_string())
        .collect();
    let record_key = keys::record(&id());
    wait_until(
        "the record and a renewal round everywhere",
        Duration::from_secs(30),
        || async {
            let messages = heard.lock().unwrap().messages.clone();
            let gossiped = messages.iter().any(|m| {
                workload::is_workload_record(m)
                    && workload::verify(m).is_ok_and(|v| v.record.id == id())
            });
            let rounds = provider_rounds(&messages);
            let renewed = runner_ids
                .iter()
                .all(|r| rounds.get(r).is_some_and(|issues| issues.len() >= 2));
            let booked = net
                .nodes
                .iter()
                .all(|n| n.daemon().mesh.records().get(&id()).is_some());
            let mut in_dht = false;
            for n in &net.nodes {
                in_dht |= n
                    .daemon()
                    .mesh
                    .net()
                    .stored_record(record_key.clone())
                    .await
                    .is_some();
            }
            (gossiped && renewed && booked && in_dht).then_some(())
        },
    )
    .await;

    // Everything a node shows or keeps while it runs.
    let mut dht_records = 0;
    let mut dht_with_record = 0;
    let mut shown = Vec::new();
    for (i, node) in net.nodes.iter().enumerate() {
        let mesh = &node.daemon().mesh;
        for (key, value) in mesh.net().stored_records().await {
            dht_records += 1;
            dht_with_record += usize::from(key == record_key);
            let hits = [found_in(&key, &needles), found_in(&value, &needles)].concat();
            assert!(
                hits.is_empty(),
                "node {i}: DHT record {:?} holds {hits:?}",
                String::from_utf8_lossy(&key)
            );
        }
        let mut book: Vec<_> = mesh.records().list().into_iter().map(|v| v.bytes).collect();
        assert_eq!(
            book.len(),
            1,
            "node {i}: the book holds the workload's record"
        );
        book.extend(mesh.record_history(&id()).into_iter().map(|s| s.bytes));
        for bytes in &book {
            let hits = found_in(bytes, &needles);
            assert!(
                hits.is_empty(),
                "node {i}: a record in the book holds {hits:?}"
            );
        }
        let described = mesh.get(&id(), true).await.unwrap();
        assert_eq!(described.replicas.len(), 2, "node {i}: {described:?}");
        shown.push((
            format!("node {i}: describe"),
            serde_json::to_string(&described).unwrap(),
        ));
        shown.push((
            format!("node {i}: list"),
            serde_json::to_string(&mesh.list().await.unwrap()).unwrap(),
        ));
        shown.push((
            format!("node {i}: record info"),
            serde_json::to_string(&mesh.record_info(&id()).await).unwrap(),
        ));
        // A node keeps events of the replicas it runs only.
        let events = node.daemon().node.events(None, 10_000).unwrap();
        assert_eq!(
            !events.is_empty(),
            runners.contains(&i),
            "node {i}: {events:?}"
        );
        shown.push((
            format!("node {i}: events"),
            serde_json::to_string(&events).unwrap(),
        ));
    }
    shown.push((
        "apply response".into(),
        serde_json::to_string(&resp).unwrap(),
    ));
    for (what, text) in &shown {
        let hits = found(text, &needles);
        assert!(hits.is_empty(), "{what} shows {hits:?}: {text}");
    }
    let blind: Vec<&str> = shown
        .iter()
        .filter(|(what, t)| !(t.contains("vault") || (what.ends_with("events") && t == "[]")))
        .map(|(what, _)| what.as_str())
        .collect();
    assert!(
        blind.is_empty(),
        "views that do not name the workload: {blind:?}"
    );
    assert!(dht_with_record >= 1, "the DHT holds the workload record");

    let messages = heard.lock().unwrap().messages.clone();
    observer.abort();
    for (n, m) in messages.iter().enumerate() {
        let hits = found_in(m, &needles);
        assert!(hits.is_empty(), "gossip message {n} holds {hits:?}");
    }

    // Every byte each node keeps, read once it stopped: the secret (and its data key) only in
    // the desired state of the two runners and in what their engine got.
    let mut db_entries = 0;
    for (i, node) in net.nodes.into_iter().enumerate() {
        let dir = node.stop().await;
        let (trees, entries) = scan_db(&dir.path().join("db"), &needles);
        db_entries += entries;
        let files = scan_files(dir.path(), &needles);
        if runners.contains(&i) {
            let where_: Vec<&str> = trees.keys().map(String::as_str).collect();
            assert_eq!(
                where_,
                ["desired", "versions"],
                "node {i} (runs it): {trees:?}"
            );
            assert!(
                trees["desired"].iter().any(|n| n == "secret (plain)"),
                "{trees:?}"
            );
            assert!(
                trees["desired"]
                    .iter()
                    .any(|n| n == "data key (base64, offset 0)"),
                "{trees:?}"
            );
            assert!(
                !trees["versions"].iter().any(|n| n.starts_with("data key")),
                "{trees:?}"
            );
            assert!(
                files
                    .iter()
                    .all(|f| f.starts_with("db") || f.starts_with("mock")),
                "node {i}: {files:?}"
            );
            assert!(
                files.iter().any(|f| f.starts_with("mock")),
                "node {i}: {files:?}"
            );
        } else {
            assert!(trees.is_empty(), "node {i} (runs nothing) keeps {trees:?}");
            assert!(
                files.is_empty(),
                "node {i} (runs nothing) keeps it in {files:?}"
            );
        }
    }

    let text = logs.text();
    let lines = text.lines().count();
    let hits = found(&text, &needles);
    if !hits.is_empty() {
        let leaking: Vec<&str> = text
            .lines()
            .filter(|l| !found(l, &needles).is_empty())
            .take(5)
            .collect();
        panic!("the logs hold {hits:?}: {leaking:#?}");
    }
    assert!(
        lines > 1000 && text.contains("default/vault") && text.contains("TRACE libp2p_gossipsub"),
        "the logs are captured ({lines} lines)"
    );
    eprintln!(
        "secrets: {lines} log lines ({} bytes), {} gossip messages ({} workload records), \
         {dht_records} DHT records ({dht_with_record} copies of the workload record), \
         {db_entries} database entries, in {:?}",
        text.len(),
        messages.len(),
        messages
            .iter()
            .filter(|m| workload::is_workload_record(m))
            .count(),
        started.elapsed()
    );
}
