//! Who can reach the local API: the socket is private to meshd's user (or shared with one
//! group), an HTTP API off loopback needs a token, a request without the token reaches
//! nothing, and garbage on the socket leaves the node up.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use hyper::{Method, StatusCode};
use mesh_node::client::{Client, Target};
use mesh_node::local_api::Token;
use mesh_node::testing::TestNode;
use mesh_node::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_api_socket_is_private_to_meshds_user() {
    let node = TestNode::start().await;
    assert_eq!(mode(&node.daemon().socket), 0o600);
    // Nothing is left of the name it was bound under.
    let leftovers: Vec<_> = std::fs::read_dir(node.dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".new"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    node.stop().await;
}

#[tokio::test]
async fn api_group_opens_the_socket_to_that_group_only() {
    let gid = nix::unistd::getegid();
    let group = nix::unistd::Group::from_gid(gid)
        .unwrap()
        .expect("the test's group has a name");
    let node = TestNode::start_with(|c| c.api_group = Some(group.name.clone())).await;
    let socket = &node.daemon().socket;
    assert_eq!(mode(socket), 0o660);
    assert_eq!(std::fs::metadata(socket).unwrap().gid(), gid.as_raw());
    node.stop().await;

    // A group that does not exist stops the node before it serves anything.
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.engines = Some(Vec::new());
    config.api_group = Some("no-such-group-of-mesh".into());
    let e = mesh_node::start(config, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("no such group"), "{e:#}");
}

#[tokio::test]
async fn an_http_api_with_a_token_answers_only_requests_that_carry_it() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let node = TestNode::start_with(|c| {
        c.http = Some("127.0.0.1:0".parse().unwrap());
        c.http_token = Some(token_file.clone());
    })
    .await;
    let addr = node.daemon().http.unwrap().to_string();
    let bare = Client::new(Target::Tcp(addr.clone()));
    let answer = bare.request(Method::GET, "/health", None).await.unwrap();
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.error_message().contains("--token-file"));
    // Not even an apply gets through.
    let answer = bare
        .request(Method::POST, "/deployments", Some(b"{}".to_vec()))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(node.daemon().node.list().unwrap().is_empty());

    let wrong_file = dir.path().join("wrong");
    std::fs::write(&wrong_file, "ffffffffffffffffffffffffffffffff").unwrap();
    let wrong = bare.clone().with_token(&Token::load(&wrong_file).unwrap());
    let answer = wrong.request(Method::GET, "/health", None).await.unwrap();
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    let right = bare.with_token(&Token::load(&token_file).unwrap());
    let answer = right.request(Method::GET, "/health", None).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    // The socket stays as it was: its file mode is its protection.
    let answer = node
        .client()
        .request(Method::GET, "/health", None)
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    node.stop().await;
}

#[tokio::test]
async fn an_http_api_off_loopback_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.engines = Some(Vec::new());
    config.http = Some("0.0.0.0:0".parse().unwrap());
    let e = mesh_node::start(config, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("--http-token"), "{e}");
    assert!(
        !dir.path().join("meshd.sock").exists(),
        "refused before it served anything"
    );

    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let node = TestNode::start_with(|c| {
        c.http = Some("0.0.0.0:0".parse().unwrap());
        c.http_token = Some(token_file.clone());
    })
    .await;
    let port = node.daemon().http.unwrap().port();
    let client = Client::new(Target::Tcp(format!("127.0.0.1:{port}")))
        .with_token(&Token::load(&token_file).unwrap());
    let answer = client.request(Method::GET, "/health", None).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    node.stop().await;
}

#[tokio::test]
async fn garbage_on_the_api_socket_gets_an_error_and_the_node_stays_up() {
    let node = TestNode::start().await;
    let socket = node.daemon().socket.clone();
    for garbage in [
        b"\x00\x01\x02\xff\xfe garbage\r\n\r\n".to_vec(),
        b"POST /deployments HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n{\"a\":[1,".to_vec(),
        vec![b'A'; 128 * 1024],
    ] {
        let mut stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
        let _ = stream.write_all(&garbage).await;
        let _ = stream.shutdown().await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("the node answers or closes");
        let text = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || text.starts_with("HTTP/1.1 4"),
            "{text}"
        );
    }
    let health = node
        .client()
        .request(Method::GET, "/health", None)
        .await
        .unwrap();
    assert_eq!(health.status, StatusCode::OK);
    assert!(node.daemon().node.list().unwrap().is_empty());
    node.stop().await;
}
