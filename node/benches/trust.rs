//! What trust costs: signing and verifying a workload record per apply (µs), and apply
//! latency through a 3-node mesh of real `meshd` processes whose nodes check every record
//! against a trust file, side by side with the same mesh started `--trust-any`. The two
//! meshes run at once and take turns, so the machine's drift hits both alike. Writes its
//! figures into `docs/benchmarks.md` between the `trust` markers.
//!
//! Run: `cargo bench -p mesh-node --bench trust` (`MESH_BENCH_ROUNDS` rounds of 20 applies
//! per mesh, default 10).

#![allow(clippy::unwrap_used)] // a bench: a panic is the failure report

use std::path::Path;
use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use mesh_node::client::{Client, Target};
use mesh_node::{records, testnet};
use mesh_protocol::api::{ApplyRequest, ApplyResponse, SignedRecord};
use mesh_protocol::wire::NodeInfo;
use mesh_provider::workload::{self, ManifestSource};

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[(((sorted.len() as f64 - 1.0) * p).round() as usize).min(sorted.len() - 1)]
}

fn manifest(name: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n")
}

fn signed(user: &Keypair, name: &str) -> Vec<SignedRecord> {
    let src = ManifestSource {
        manifest: manifest(name),
        ..Default::default()
    };
    records::build(user, &src, None, |_| 0, mesh_runtime::now_millis())
        .unwrap()
        .into_iter()
        .map(|b| b.signed)
        .collect()
}

/// Mean µs of `f` over `n` calls.
fn mean_us(n: u32, mut f: impl FnMut(u32)) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

struct Down(std::path::PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = testnet::down(&self.0);
    }
}

/// A 3-node testnet whose entry node runs nothing (every apply lands on a remote node).
fn start(meshd: &Path, trust: Option<&Keypair>, dir: &Path) -> (testnet::Testnet, Down) {
    let mut extra_args = vec!["--log".to_string(), "warn".to_string()];
    if trust.is_none() {
        extra_args.push("--trust-any".into());
    }
    let opts = testnet::Options {
        dir: dir.to_path_buf(),
        nodes: 3,
        engines: Some("mock".into()),
        meshd: meshd.to_path_buf(),
        extra_args,
        first_engines: Some("none".into()),
        trust_key: trust.map(|k| k.public().to_peer_id()),
    };
    let net = testnet::up(&opts).unwrap();
    (net, Down(dir.to_path_buf()))
}

async fn ready(entry: &Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let nodes: Vec<NodeInfo> = entry.get("/nodes?engine=mock").await.unwrap_or_default();
        if nodes.len() >= 2 {
            return;
        }
        assert!(Instant::now() < deadline, "the mesh did not form in 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn apply(entry: &Client, records: Vec<SignedRecord>) -> Duration {
    let req = ApplyRequest {
        records,
        ..ApplyRequest::default()
    };
    let t = Instant::now();
    let answer = entry.post("/deployments", &req).await.unwrap();
    let took = t.elapsed();
    assert!(answer.status.is_success(), "{}", answer.error_message());
    let _: ApplyResponse = serde_json::from_slice(&answer.body).unwrap();
    took
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds: usize = std::env::var("MESH_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 1 } else { 10 });
    let user = Keypair::generate_ed25519();

    // Signing and verifying one record, and opening it as a node does (verify, parse,
    // check the stated version).
    let n = if quick { 200 } else { 5000 };
    let src = ManifestSource {
        manifest: manifest("web"),
        ..Default::default()
    };
    let built = records::build(&user, &src, None, |_| 0, 0)
        .unwrap()
        .remove(0);
    let sign_us = mean_us(n, |_| {
        workload::encode(&user, built.opened.verified.record.clone()).unwrap();
    });
    let build_us = mean_us(n, |i| {
        records::build(&user, &src, None, |_| u64::from(i), 0).unwrap();
    });
    let verify_us = mean_us(n, |_| {
        workload::verify(&built.signed.bytes).unwrap();
    });
    let open_us = mean_us(n, |_| {
        records::open(&built.signed).unwrap();
    });

    let meshd = Path::new(env!("CARGO_BIN_EXE_meshd"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (dir_on, dir_any) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (on, _down_on) = start(meshd, Some(&user), dir_on.path());
    let (any, _down_any) = start(meshd, None, dir_any.path());
    let client =
        |net: &testnet::Testnet| Client::new(Target::Unix(net.nodes[0].api_socket.clone()));
    let (c_on, c_any) = (client(&on), client(&any));
    let (mut t_on, mut t_any) = (Vec::new(), Vec::new());
    rt.block_on(async {
        ready(&c_on).await;
        ready(&c_any).await;
        // A warm-up apply on each, not counted.
        apply(&c_on, signed(&user, "warm")).await;
        apply(&c_any, signed(&user, "warm")).await;
        for round in 0..rounds {
            for i in 0..20 {
                let name = format!("r{round}-{i}");
                // Alternate which mesh goes first.
                if (round + i) % 2 == 0 {
                    t_on.push(apply(&c_on, signed(&user, &name)).await);
                    t_any.push(apply(&c_any, signed(&user, &name)).await);
                } else {
                    t_any.push(apply(&c_any, signed(&user, &name)).await);
                    t_on.push(apply(&c_on, signed(&user, &name)).await);
                }
            }
        }
    });
    t_on.sort();
    t_any.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (p50_on, p50_any) = (ms(pct(&t_on, 0.5)), ms(pct(&t_any, 0.5)));
    let (p99_on, p99_any) = (ms(pct(&t_on, 0.99)), ms(pct(&t_any, 0.99)));
    let ratio = p50_on / p50_any;
    let body = format!(
        "Signing and verifying a one-Pod workload record (ed25519, release build, mean of {n} calls), and\n\
         apply→Running through the entry node's local API of a 3-node mesh of real `meshd` processes (mock engine; the\n\
         entry node runs nothing, so each apply crosses to a remote node, whose book and replica check the record again).\n\
         Two meshes run at once, one whose nodes authorise every record against a trust file and one started\n\
         `--trust-any`, taking turns apply by apply ({} applies each). {} cores.\n\n\
         | step | µs |\n|---|---:|\n\
         | sign a record (`workload::encode`) | {sign_us:.1} |\n\
         | build a record as meshctl does (parse, digest, sign) | {build_us:.1} |\n\
         | verify a record (`workload::verify`) | {verify_us:.1} |\n\
         | open a record as a node does (verify, parse, check the version) | {open_us:.1} |\n\n\
         | mesh | apply p50 ms | apply p99 ms |\n|---|---:|---:|\n\
         | trust file (every record authorised) | {p50_on:.2} | {p99_on:.2} |\n\
         | `--trust-any` (anchor) | {p50_any:.2} | {p99_any:.2} |\n\
         | ratio trust / any (target ≤ 1.05) | {ratio:.3} | {:.3} |\n\n\
         Per apply the records are signed once by meshctl and verified by each node that holds them (entry, holder:\n\
         about {:.0} µs of verification in a {p50_on:.1} ms apply, {:.1} %); authorisation itself is a lookup of the\n\
         signer in the trust file's table.\n",
        t_on.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        p99_on / p99_any,
        2.0 * verify_us,
        2.0 * verify_us / (p50_on * 1e3) * 100.0,
    );
    print!("{body}");
    if quick {
        println!("(quick run: docs/benchmarks.md not updated)");
        return;
    }
    mesh_node::testing::update_benchmark_section("trust", &body).unwrap();
}
