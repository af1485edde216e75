//! What the mesh benches share: the bench's signing user, signed applies, waiting on a
//! condition, and a testnet that goes down when the bench ends or panics.

#![allow(dead_code)] // each bench uses its own subset
#![allow(clippy::unwrap_used)] // a bench: a panic is the failure report

use std::time::{Duration, Instant};

use mesh_node::testnet;
use mesh_protocol::api::ApplyRequest;

/// The bench's user: the nodes trust its key (a testnet trust file), and it signs every apply
/// as meshctl does.
pub fn user() -> &'static libp2p::identity::Keypair {
    static USER: std::sync::OnceLock<libp2p::identity::Keypair> = std::sync::OnceLock::new();
    USER.get_or_init(libp2p::identity::Keypair::generate_ed25519)
}

/// `manifest`, signed by [`user`] as `meshctl apply [--replicas N]` signs it (a new workload:
/// revision 1).
pub fn signed(manifest: String, replicas: Option<u32>) -> ApplyRequest {
    let req = ApplyRequest {
        manifest,
        replicas,
        ..ApplyRequest::default()
    };
    let src = mesh_provider::workload::ManifestSource::of(&req);
    let built =
        mesh_node::records::build(user(), &src, replicas, |_| 0, mesh_runtime::now_millis())
            .expect("the bench's manifest builds");
    ApplyRequest {
        records: built.into_iter().map(|b| b.signed).collect(),
        ..req
    }
}

/// Polls `f` every 20 ms until it gives a value; panics after `timeout`.
pub async fn wait<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops the testnet in this directory when dropped: no meshd outlives the bench.
pub struct Down(pub std::path::PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = testnet::down(&self.0);
    }
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `RssAnon`, `RssFile`); PID may be `self`.
pub fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
