//! What the tests that drive real `meshd` and `meshctl` processes share: the binaries, a
//! signing key in a temporary directory, and a fast testnet of mock nodes.

#![allow(dead_code)] // each test binary uses its part
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mesh_node::testnet;

pub const MESHD: &str = env!("CARGO_BIN_EXE_meshd");
pub const MESHCTL: &str = env!("CARGO_BIN_EXE_meshctl");

/// The signing key of these tests' meshctl runs: in a temporary directory, never in the
/// user's home; made once, before any test reads it (tests run in parallel).
pub fn key_path() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        mesh_node::cli::key::load(&dir.path().join("user.key")).unwrap();
        dir
    })
    .path()
}

pub fn ctl(args: &[&str]) -> Output {
    Command::new(MESHCTL)
        .env("MESH_KEY", key_path().join("user.key"))
        .args(args)
        .output()
        .unwrap()
}

pub fn json(out: Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "meshctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn sock(node: &testnet::TestnetNode) -> &str {
    node.api_socket.to_str().unwrap()
}

/// `nodes` meshd processes (mock engine; `first_engines` for node 0 if given) with short
/// rounds (provider TTL 3 s, heartbeats every 500 ms), trusting these tests' key, as
/// `meshctl testnet up` does.
pub fn fast_testnet(dir: &Path, nodes: usize, first_engines: Option<&str>) -> testnet::Testnet {
    testnet_with(dir, nodes, "mock", first_engines, &["--log=warn"])
}

/// [`fast_testnet`] with these engines and these extra meshd arguments.
pub fn testnet_with(
    dir: &Path,
    nodes: usize,
    engines: &str,
    first_engines: Option<&str>,
    extra: &[&str],
) -> testnet::Testnet {
    let mut extra_args: Vec<String> = vec![
        "--provider-ttl=3s".into(),
        "--heartbeat-interval=500ms".into(),
    ];
    extra_args.extend(extra.iter().map(|a| a.to_string()));
    testnet::up(&testnet::Options {
        dir: dir.to_path_buf(),
        nodes,
        engines: Some(engines.into()),
        meshd: MESHD.into(),
        extra_args,
        first_engines: first_engines.map(str::to_string),
        trust_key: Some(
            mesh_node::cli::key::load(&key_path().join("user.key"))
                .unwrap()
                .public()
                .to_peer_id(),
        ),
    })
    .unwrap()
}

/// Stops the testnet in its directory when dropped (a failing test leaves no process).
pub struct Down<'a>(pub &'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = testnet::down(self.0);
    }
}

/// A meshctl that runs until killed, its stdout lines arriving on a channel.
pub struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Streaming {
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(MESHCTL)
            .env("MESH_KEY", key_path().join("user.key"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Reads lines until `done` says so of all read so far; panics after `timeout`.
    pub fn until(&self, timeout: Duration, mut done: impl FnMut(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while !done(&seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("timed out after {timeout:?}; read: {seen:#?}"),
            }
        }
        seen
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
