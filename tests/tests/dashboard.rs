//! The read-only dashboard (`GET /ui`, `docs/operations.md`): its page and assets are served
//! on the HTTP API, behind `--http-token` like every route; its stream reports a workload
//! applied after it opened; and in a real browser (headless Chromium) the page shows every
//! node of a 3-node mesh and which nodes run a workload, without a reload.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod browser_support;

use std::net::SocketAddr;
use std::time::Duration;

use mesh_node::testing::{TestNet, TestNode};
use mesh_protocol::api::{ApplyAction, ApplyRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one HTTP exchange, or the wait for a stream's message, may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the page in the browser may take to show what the test waits for.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

fn pod(name: &str, replicas: u32) -> ApplyRequest {
    ApplyRequest {
        manifest: format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n"
        ),
        replicas: Some(replicas),
        ..ApplyRequest::default()
    }
}

fn with_http(c: &mut mesh_node::Config) {
    c.http = Some("127.0.0.1:0".parse().unwrap());
}

fn http_of(node: &TestNode) -> SocketAddr {
    node.daemon().http.expect("the node serves HTTP")
}

/// Sends `GET path` and returns the whole answer, head and body, as text.
async fn get(addr: SocketAddr, path: &str, extra_headers: &str) -> String {
    let exchange = async {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra_headers}\r\n"
        );
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.unwrap();
        String::from_utf8(answer).unwrap()
    };
    tokio::time::timeout(HTTP_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {path} took over {HTTP_TIMEOUT:?}"))
}

/// An open `GET /ui/stream` and everything it sent so far.
struct Stream {
    conn: TcpStream,
    seen: String,
}

impl Stream {
    async fn open(addr: SocketAddr) -> Self {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET /ui/stream HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        Self {
            conn,
            seen: String::new(),
        }
    }

    /// Reads until what the stream sent (from its start) satisfies `done`.
    async fn until(&mut self, what: &str, done: impl Fn(&str) -> bool) {
        let read = async {
            let mut buf = vec![0u8; 64 * 1024];
            while !done(&self.seen) {
                let n = self.conn.read(&mut buf).await.unwrap();
                assert!(n > 0, "the stream ended; it sent:\n{}", self.seen);
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        };
        if tokio::time::timeout(HTTP_TIMEOUT, read).await.is_err() {
            panic!(
                "timed out after {HTTP_TIMEOUT:?} waiting for {what}; the stream sent:\n{}",
                self.seen
            );
        }
    }
}

/// `/ui` is an HTML page whose script and style come from the node itself; the stream starts
/// with a snapshot, then reports the lifecycle events of a workload applied after it opened,
/// and a snapshot that lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_and_its_stream_reports_a_new_workload() {
    let node = TestNode::start_with(with_http).await;
    let addr = http_of(&node);

    let page = get(addr, "/ui", "").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("content-type: text/html"), "{page}");
    assert!(page.contains(r#"<script src="ui/app.js""#), "{page}");
    let script = get(addr, "/ui/app.js", "").await;
    assert!(script.starts_with("HTTP/1.1 200"), "{script}");
    assert!(script.contains("content-type: text/javascript"), "{script}");
    assert!(
        script.contains("new EventSource(\"ui/stream\")"),
        "{script}"
    );
    let style = get(addr, "/ui/style.css", "").await;
    assert!(style.contains("content-type: text/css"), "{style}");

    let mut stream = Stream::open(addr).await;
    stream
        .until("the first snapshot", |s| s.contains("event: snapshot"))
        .await;
    assert!(stream.seen.starts_with("HTTP/1.1 200"), "{}", stream.seen);
    assert!(stream.seen.contains("content-type: text/event-stream"));
    assert!(!stream.seen.contains("sse-web"), "{}", stream.seen);

    let resp = node.daemon().mesh.apply(pod("sse-web", 1)).await.unwrap();
    assert_eq!(resp.workloads[0].action, ApplyAction::Created);
    stream
        .until("the workload's events", |s| {
            s.contains("event: events") && s.contains(r#""workload":"default/sse-web""#)
        })
        .await;
    stream
        .until("a snapshot that lists it", |s| {
            s.split("event: snapshot")
                .skip(1)
                .any(|snap| snap.contains(r#""name":"sse-web""#))
        })
        .await;
    node.stop().await;
}

/// With `--http-token`, the dashboard answers only a request that carries the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_needs_the_http_token_when_there_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let token = "0123456789abcdef0123456789abcdef";
    std::fs::write(&token_file, token).unwrap();
    let node = TestNode::start_with(|c| {
        with_http(c);
        c.http_token = Some(token_file.clone());
    })
    .await;
    let addr = http_of(&node);
    for path in ["/ui", "/ui/stream", "/ui/app.js"] {
        let refused = get(addr, path, "").await;
        assert!(refused.starts_with("HTTP/1.1 401"), "{path}: {refused}");
    }
    let page = get(addr, "/ui", &format!("Authorization: Bearer {token}\r\n")).await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    node.stop().await;
}

/// The table row of workload `name` in the dashboard's DOM.
fn workload_row<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let start = dom.find(&format!(r#"data-workload="default/{name}""#))?;
    let end = start + dom[start..].find("</tr>")?;
    Some(&dom[start..end])
}

/// Three nodes, each serving HTTP; a workload with two replicas is applied on node 0 after the
/// page opened on node 1. Headless Chromium shows, without a reload, all three nodes (their
/// ids, and their short forms as text) and the workload's row naming both nodes that run it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_every_node_and_where_a_new_workload_runs() {
    let Some(chromium) = browser_support::chromium() else {
        return;
    };
    let net = TestNet::start(3, |_, c| with_http(c)).await;
    net.wait_connected(Duration::from_secs(30)).await;
    let ids: Vec<String> = net
        .nodes
        .iter()
        .map(|n| n.daemon().node.id().to_string())
        .collect();

    let mut browser = browser_support::Browser::launch(&chromium).await;
    let url = format!("http://{}/ui", http_of(net.node(1)));
    let page = browser.open(&url).await;
    // The page is live before the workload exists.
    browser
        .dom_until(&page, "the page to list three nodes", PAGE_TIMEOUT, |dom| {
            ids.iter().all(|id| dom.contains(id.as_str()))
        })
        .await;

    let resp = net
        .node(0)
        .daemon()
        .mesh
        .apply(pod("dash-web", 2))
        .await
        .unwrap();
    let placed: Vec<String> = resp.workloads[0]
        .deployment
        .replicas
        .iter()
        .map(|r| r.node.clone())
        .collect();
    assert_eq!(placed.len(), 2, "{resp:?}");

    let dom = browser
        .dom_until(
            &page,
            "the page to show dash-web on both its nodes",
            PAGE_TIMEOUT,
            |dom| {
                workload_row(dom, "dash-web").is_some_and(|row| {
                    row.contains("Running") && placed.iter().all(|p| row.contains(p.as_str()))
                })
            },
        )
        .await;
    for id in &ids {
        let short = format!("…{}", &id[id.len() - 12..]);
        assert!(
            dom.contains(&format!(">{short}<")),
            "{short} not shown:\n{dom}"
        );
    }
    assert!(dom.contains(r#"data-state="live""#), "{dom}");
    // The stream's events reached the page too (node 0 ran the apply's lifecycle).
    assert!(dom.contains("default/dash-web</td>"), "{dom}");

    browser.close().await;
    net.stop().await;
}
