//! `GET /metrics`: every metric `docs/operations.md` documents is exposed (and nothing
//! undocumented), in the OpenMetrics text format; applies, lifecycle steps and workloads by
//! phase show up after an apply; refusals are counted by reason; on a two-node mesh the
//! connected peers and Kademlia query times show.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hyper::{Method, StatusCode};
use libp2p::identity::Keypair;
use mesh_node::testing::{signed_apply, wait_until, TestNet, TestNode};
use mesh_protocol::api::ApplyRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One sample line: its name, labels and value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: the families its `# TYPE` lines declare, and every sample.
#[derive(Debug)]
struct Scrape {
    families: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq].trim_start_matches(',').to_string();
        let after = &rest[eq + 2..];
        let end = after.find('"').expect("a label value ends with a quote");
        labels.insert(key, after[..end].to_string());
        rest = &after[end + 1..];
    }
    labels
}

fn parse(text: &str) -> Scrape {
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    let mut families = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(decl) = line.strip_prefix("# TYPE ") {
            let (name, kind) = decl.split_once(' ').expect("# TYPE name kind");
            families.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, parse_labels(labels.trim_end_matches('}'))),
            None => (series, BTreeMap::new()),
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|e| panic!("{line}: {e}")),
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Scrape { families, samples }
}

impl Scrape {
    /// The sum of the samples named `name` whose labels include every pair of `with`.
    fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                with.iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// The one sample named `name` with exactly the labels `with`.
    fn one(&self, name: &str, with: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = with
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }
}

async fn scrape(node: &TestNode) -> Scrape {
    let answer = node
        .client()
        .request(Method::GET, "/metrics", None)
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    parse(std::str::from_utf8(&answer.body).unwrap())
}

/// The metric names the "Metrics" section of docs/operations.md lists (first column).
fn documented() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/operations.md"
    ))
    .unwrap();
    let section = doc
        .split("\n## Metrics")
        .nth(1)
        .expect("docs/operations.md has a Metrics section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `meshd_"))
        .map(|l| format!("meshd_{}", &l[..l.find('`').unwrap()]))
        .collect()
}

fn pod(name: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n")
}

/// The exposed family of a documented name: counters are documented as `_total`, the info
/// metric as `_info`, as Prometheus shows them.
fn family_of(name: &str) -> &str {
    name.strip_suffix("_total")
        .or_else(|| name.strip_suffix("_info"))
        .unwrap_or(name)
}

#[tokio::test]
async fn every_documented_metric_is_exposed_and_applies_and_refusals_move_them() {
    let node = TestNode::start_with(|c| c.http = Some("127.0.0.1:0".parse().unwrap())).await;

    // Over loopback HTTP, as Prometheus scrapes it: the OpenMetrics content type.
    let http = node.daemon().http.unwrap();
    let mut stream = tokio::net::TcpStream::connect(http).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let (head, _) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{head}"
    );

    let before = scrape(&node).await;
    assert_eq!(before.families["meshd_refused_requests"], "counter");
    assert_eq!(before.families["meshd_apply_duration_seconds"], "histogram");
    assert_eq!(
        before.one(
            "meshd_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert!(before.one("meshd_start_time_seconds", &[]).unwrap() > 1.6e9);
    assert_eq!(
        before.one("meshd_engine_healthy", &[("engine", "mock")]),
        Some(1.0)
    );
    assert_eq!(before.one("meshd_connected_peers", &[]), Some(0.0));
    assert_eq!(before.one("meshd_gossip_mesh_peers", &[]), Some(0.0));
    assert_eq!(before.one("meshd_event_log_dropped_total", &[]), Some(0.0));
    assert_eq!(before.one("meshd_gossip_dropped_total", &[]), Some(0.0));
    let mesh_ok = [("scope", "mesh"), ("outcome", "ok")];
    assert_eq!(
        before.sum("meshd_apply_duration_seconds_count", &mesh_ok),
        0.0
    );

    let answer = node
        .client()
        .post(
            "/deployments",
            &ApplyRequest {
                manifest: pod("web"),
                ..ApplyRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.error_message());
    let after = scrape(&node).await;
    // Families whose label values are known start at zero; those labelled by what ran (steps,
    // workloads) show once something did: now every one.
    let exposed: BTreeSet<String> = after.families.keys().cloned().collect();
    let documented: BTreeSet<String> = documented()
        .iter()
        .map(|n| family_of(n).to_string())
        .collect();
    assert_eq!(documented, exposed, "documented vs exposed families");
    assert_eq!(
        before.one("meshd_refused_requests_total", &[("reason", "untrusted")]),
        Some(0.0)
    );
    assert_eq!(
        after.sum("meshd_apply_duration_seconds_count", &mesh_ok),
        1.0
    );
    assert_eq!(
        after.sum(
            "meshd_apply_duration_seconds_count",
            &[("scope", "replica"), ("outcome", "ok")]
        ),
        1.0
    );
    let sum = after.sum("meshd_apply_duration_seconds_sum", &mesh_ok);
    assert!(sum > 0.0 && sum < 60.0, "{sum}");
    assert_eq!(
        after.one(
            "meshd_workloads",
            &[("phase", "Running"), ("engine", "mock")]
        ),
        Some(1.0)
    );
    let installs = [("step", "Install"), ("engine", "mock"), ("outcome", "ok")];
    assert!(after.sum("meshd_lifecycle_step_duration_seconds_count", &installs) >= 1.0);

    // A manifest that does not parse is refused as invalid, and counted once.
    assert_eq!(after.sum("meshd_refused_requests_total", &[]), 0.0);
    let bad = node
        .client()
        .post(
            "/deployments",
            &ApplyRequest {
                manifest: "kind: [not a manifest".to_string(),
                ..ApplyRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // A body over the API's limit is refused before it is read whole.
    let huge = vec![b' '; mesh_node::api::MAX_REQUEST_BYTES + 1];
    let oversize = node
        .client()
        .request(Method::POST, "/deployments", Some(huge))
        .await
        .unwrap();
    assert_eq!(oversize.status, StatusCode::PAYLOAD_TOO_LARGE);
    // A deleted workload gone from the workloads gauge reads 0, not an absent series.
    node.client()
        .delete::<serde_json::Value>("/deployments/web")
        .await
        .unwrap();
    let refused = scrape(&node).await;
    assert_eq!(
        refused.one("meshd_refused_requests_total", &[("reason", "invalid")]),
        Some(1.0)
    );
    assert_eq!(
        refused.one("meshd_refused_requests_total", &[("reason", "oversize")]),
        Some(1.0)
    );
    assert_eq!(refused.sum("meshd_refused_requests_total", &[]), 2.0);
    assert_eq!(
        refused.one(
            "meshd_workloads",
            &[("phase", "Running"), ("engine", "mock")]
        ),
        Some(0.0)
    );
    // A failed apply is not an ok one.
    assert_eq!(
        refused.sum("meshd_apply_duration_seconds_count", &mesh_ok),
        1.0
    );
    node.stop().await;
}

#[tokio::test]
async fn untrusted_and_replayed_applies_are_counted_by_reason() {
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.yaml");
    let (alice, stranger) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    std::fs::write(
        &trust,
        format!(
            "keys:\n- key: {}\n  roles: [deploy]\n  namespaces: [default]\n",
            alice.public().to_peer_id()
        ),
    )
    .unwrap();
    let node =
        TestNode::start_with(|c| c.trust = mesh_node::trust::Source::File(trust.clone())).await;
    let mesh = &node.daemon().mesh;
    let client = node.client();

    let theirs = signed_apply(mesh, &stranger, &pod("intruder"), 1).await;
    let answer = client.post("/deployments", &theirs).await.unwrap();
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "{}",
        answer.error_message()
    );
    let ours = signed_apply(mesh, &alice, &pod("web"), 1).await;
    let answer = client.post("/deployments", &ours).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.error_message());
    let again = client.post("/deployments", &ours).await.unwrap();
    assert_eq!(
        again.status,
        StatusCode::FORBIDDEN,
        "{}",
        again.error_message()
    );

    let s = scrape(&node).await;
    let refused = |reason| s.one("meshd_refused_requests_total", &[("reason", reason)]);
    assert_eq!(refused("untrusted"), Some(1.0));
    assert_eq!(refused("replay"), Some(1.0));
    assert_eq!(s.sum("meshd_refused_requests_total", &[]), 2.0);
    let errors = [("scope", "mesh"), ("outcome", "error")];
    assert_eq!(s.sum("meshd_apply_duration_seconds_count", &errors), 2.0);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_node_counts_its_peers_and_dht_query_times() {
    let net = TestNet::start(2, |_, _| {}).await;
    net.wait_connected(Duration::from_secs(30)).await;
    let node = net.node(1);
    let s = wait_until("a finished DHT query", Duration::from_secs(30), || async {
        let s = scrape(node).await;
        (s.sum("meshd_dht_query_duration_seconds_count", &[]) >= 1.0).then_some(s)
    })
    .await;
    assert!(s.one("meshd_connected_peers", &[]).unwrap() >= 1.0);
    // The other node joins this one's gossip mesh at a gossipsub heartbeat.
    wait_until("a gossip mesh peer", Duration::from_secs(30), || async {
        let s = scrape(node).await;
        (s.one("meshd_gossip_mesh_peers", &[]) == Some(1.0)).then_some(())
    })
    .await;
    let kinds: BTreeSet<&str> = s
        .samples
        .iter()
        .filter(|x| x.name == "meshd_dht_query_duration_seconds_count" && x.value > 0.0)
        .map(|x| x.labels["kind"].as_str())
        .collect();
    assert!(
        kinds
            .iter()
            .all(|k| mesh_node::metrics::DHT_QUERY_KINDS.contains(k)),
        "{kinds:?}"
    );
    // Each histogram's +Inf bucket holds every sample.
    for kind in kinds {
        let with = [("kind", kind)];
        let count = s.sum("meshd_dht_query_duration_seconds_count", &with);
        let inf = s.sum(
            "meshd_dht_query_duration_seconds_bucket",
            &[("kind", kind), ("le", "+Inf")],
        );
        assert_eq!(count, inf, "{kind}");
    }
    net.stop().await;
}
