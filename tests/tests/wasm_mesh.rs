#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! Functions through real nodes (in-process `meshd`s on loopback, the wasm engine in its
//! runner process): a module bundled into an
//! apply on one node runs on another that fetches and verifies it; a provider holding corrupt
//! bytes is skipped; output reaches the logs API; each failure mode ends in a Failed workload
//! with its reason while the node keeps serving.

#[path = "wasm_support/mod.rs"]
mod wasm_support;

use std::path::Path;

use mesh_engine_wasm::Digest;
use mesh_node::daemon::Config;
use mesh_node::testing::{wait_until, TestNet, TestNode};
use mesh_protocol::api::{ApplyRequest, BundledModule, Deployment};
use mesh_protocol::wire::{ReplicaApply, Request, Response};
use mesh_protocol::{Phase, WorkloadId};
use wasm_support::*;

/// A node with the wasm engine only (no mock), or with no engine at all.
fn engines(c: &mut Config, wasm: bool) {
    c.extra_engines.clear();
    c.engines = Some(if wasm {
        vec!["wasm".into()]
    } else {
        Vec::new()
    });
    c.wasm_runner = Some(runner());
}

fn function(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: beemesh.io/v1\nkind: Function\nmetadata:\n  name: {name}\nspec:\n  module: ./hello.wasm\n  args: [alpha, beta]\n  env:\n    GREETING: hi\n{extra}"
    )
}

/// What `meshctl apply` sends for a manifest naming `./hello.wasm`.
fn apply(manifest: String, bytes: &[u8]) -> ApplyRequest {
    ApplyRequest {
        manifest,
        modules: vec![BundledModule {
            path: "./hello.wasm".into(),
            digest: Digest::of(bytes).to_string(),
            bytes: Some(bytes.to_vec()),
            providers: Vec::new(),
        }],
        ..ApplyRequest::default()
    }
}

/// The workload record `meshctl` would sign for `req` (one workload, revision 1).
fn signed_record(req: &ApplyRequest) -> mesh_protocol::api::SignedRecord {
    let src = mesh_provider::workload::ManifestSource::of(req);
    let user = libp2p::identity::Keypair::generate_ed25519();
    let built =
        mesh_node::records::build(&user, &src, Some(1), |_| 0, mesh_runtime::now_millis()).unwrap();
    built.into_iter().next().unwrap().signed
}

fn id(name: &str) -> WorkloadId {
    WorkloadId::new("default", name)
}

async fn settled(node: &TestNode, name: &str) -> Deployment {
    let mesh = node.daemon().mesh.clone();
    wait_until("the workload to settle", WAIT, || {
        let mesh = mesh.clone();
        async move {
            let d = mesh.get(&id(name), false).await.ok()?;
            matches!(d.phase, Phase::Succeeded | Phase::Failed).then_some(d)
        }
    })
    .await
}

fn module_file(data_dir: &Path, digest: &Digest) -> std::path::PathBuf {
    data_dir.join("wasm/modules/sha256").join(digest.hex())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_module_applied_on_a_runs_on_b_after_a_verified_fetch() {
    let net = TestNet::start(2, |i, c| engines(c, i == 1)).await;
    net.wait_connected(WAIT).await;
    let (a, b) = (net.node(0), net.node(1));
    let bytes = wat::parse_str(HELLO).unwrap();
    let digest = Digest::of(&bytes);
    assert!(!module_file(b.dir.path(), &digest).exists());

    let resp = a
        .daemon()
        .mesh
        .apply(apply(function("hello", ""), &bytes))
        .await
        .unwrap();
    let d = &resp.workloads[0].deployment;
    assert_eq!(d.replicas.len(), 1, "{d:?}");
    assert_eq!(d.replicas[0].node, b.daemon().node.id(), "only B runs wasm");
    assert_eq!(d.replicas[0].engine, "wasm");

    let d = settled(a, "hello").await;
    assert_eq!(d.phase, Phase::Succeeded, "{d:?}");
    assert_eq!(d.replicas[0].exit_code, Some(0));
    // B fetched the module from A and stored exactly the bundled bytes.
    assert_eq!(
        std::fs::read(module_file(b.dir.path(), &digest)).unwrap(),
        bytes
    );
    assert_eq!(
        std::fs::read(module_file(a.dir.path(), &digest)).unwrap(),
        bytes
    );

    // Output is in the logs, from any node: argv[0] is the workload's name.
    let logs = a.daemon().mesh.logs(&id("hello"), None).await.unwrap();
    let text: Vec<&str> = logs.lines.iter().map(|l| l.line.as_str()).collect();
    assert!(text.contains(&"hello alpha beta"), "{text:?}");
    assert!(text.contains(&"GREETING=hi"), "{text:?}");
    assert!(text.contains(&"done"), "{text:?}");

    // The running version is sealed over the digest, not the path.
    let desc = b.daemon().node.view(&id("hello"), true).unwrap();
    assert!(desc
        .events
        .iter()
        .any(|e| e.message.contains("fetch") || format!("{:?}", e.step).contains("Fetch")));
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_with_corrupt_bytes_is_skipped_for_a_good_one() {
    let bytes = wat::parse_str(HELLO).unwrap();
    let digest = Digest::of(&bytes);
    let mut corrupt = bytes.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x55;
    // A holds the module, C holds corrupt bytes under its name (disk rot, or a liar); both
    // provide it from the start. B runs wasm and has nothing.
    let net = TestNet::start(3, |i, c| {
        engines(c, i == 1);
        let content = match i {
            0 => &bytes,
            2 => &corrupt,
            _ => return,
        };
        let file = module_file(&c.data_dir, &digest);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    })
    .await;
    net.wait_connected(WAIT).await;
    let (a, b, c) = (net.node(0), net.node(1), net.node(2));

    // Played entry node: place the replica on B, naming C first, then A, as holders.
    let mut req = apply(function("picky", ""), &bytes);
    req.modules[0].bytes = None;
    req.modules[0].providers = vec![
        c.daemon().addresses[0].clone(),
        a.daemon().addresses[0].clone(),
    ];
    let b_peer = b.daemon().addresses[0]
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let answer = a
        .daemon()
        .mesh
        .net()
        .request(
            b_peer,
            b.daemon()
                .addresses
                .iter()
                .map(|x| x.parse().unwrap())
                .collect(),
            Request::ApplyReplica(Box::new(ReplicaApply {
                correlation: None,
                record: signed_record(&req),
                workload: id("picky"),
                slot: 0,
                desired_replicas: 1,
                modules: req.modules.clone(),
                placement: Vec::new(),
                entry: "test".into(),
            })),
        )
        .await
        .unwrap();
    assert!(
        matches!(answer, Response::ReplicaApplied { .. }),
        "{answer:?}"
    );

    let d = wait_until("B to finish the job", WAIT, || async {
        let d = b.daemon().node.view(&id("picky"), true).ok()?;
        matches!(d.phase, Phase::Succeeded | Phase::Failed).then_some(d)
    })
    .await;
    assert_eq!(d.phase, Phase::Succeeded, "{d:?}");
    assert_eq!(
        std::fs::read(module_file(b.dir.path(), &digest)).unwrap(),
        bytes
    );
    // C's bytes were refused, not stored: C still holds them and B does not.
    assert_eq!(
        std::fs::read(module_file(c.dir.path(), &digest)).unwrap(),
        corrupt
    );
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_nobody_has_fails_fetch_and_nothing_runs() {
    let node = TestNode::start_with(|c| engines(c, true)).await;
    let digest = Digest::of(b"\0asm never stored");
    let manifest = format!(
        "apiVersion: beemesh.io/v1\nkind: Function\nmetadata:\n  name: orphan\nspec:\n  module: {digest}\n"
    );
    let resp = node
        .daemon()
        .mesh
        .apply(ApplyRequest {
            manifest,
            ..ApplyRequest::default()
        })
        .await;
    let d = match resp {
        Ok(r) => r.workloads[0].deployment.clone(),
        Err(e) => panic!("apply answered an error instead of a Failed workload: {e}"),
    };
    assert_eq!(d.phase, Phase::Failed, "{d:?}");
    let error = d.error.unwrap_or_default();
    assert!(error.contains("no peer announces it"), "{error}");
    node.stop().await;
}

/// Each failure mode: a Failed workload with a precise reason, and the node still serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_failures_end_in_failed_workloads_and_the_node_stays_up() {
    let node = TestNode::start_with(|c| engines(c, true)).await;
    let mesh = node.daemon().mesh.clone();
    let cases: [(&str, &str, &str, &str); 3] = [
        ("trap", TRAP, "", "unreachable"),
        ("spin", SPIN, "  timeout: 300ms\n", "deadline"),
        ("bomb", MEMORY_BOMB, "  memory: 8Mi\n", "memory"),
    ];
    for (name, wat_text, extra, reason) in cases {
        let bytes = wat::parse_str(wat_text).unwrap();
        let manifest = format!(
            "apiVersion: beemesh.io/v1\nkind: Function\nmetadata:\n  name: {name}\nspec:\n  module: ./hello.wasm\n  backoffLimit: 0\n{extra}"
        );
        mesh.apply(apply(manifest, &bytes)).await.unwrap();
        let d = settled(&node, name).await;
        assert_eq!(d.phase, Phase::Failed, "{name}: {d:?}");
        let error = d.replicas[0]
            .error
            .clone()
            .unwrap_or_default()
            .to_lowercase();
        assert!(error.contains(reason), "{name}: {error}");
        assert_eq!(node.daemon().node.health().unwrap().status, "ok");
    }
    node.stop().await;
}

/// A runner killed from outside: the workload turns Failed with the signal named, and the
/// node keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_killed_from_outside_fails_the_workload_and_the_node_stays_up() {
    let node = TestNode::start_with(|c| engines(c, true)).await;
    let mesh = node.daemon().mesh.clone();
    let bytes = wat::parse_str(TICKER).unwrap();
    let manifest = "apiVersion: beemesh.io/v1\nkind: Function\nmetadata:\n  name: ticker\nspec:\n  module: ./hello.wasm\n  restartPolicy: Never\n  runToCompletion: false\n".to_string();
    let resp = mesh.apply(apply(manifest, &bytes)).await.unwrap();
    assert_eq!(resp.workloads[0].deployment.phase, Phase::Running);
    let observed = node.daemon().node.store().observed(&id("ticker")).unwrap();
    let instance = observed.replicas[0]
        .handle
        .as_ref()
        .unwrap()
        .instance
        .clone();
    let record = node
        .dir
        .path()
        .join("wasm/instances")
        .join(&instance)
        .join("instance.json");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    let pid = record["runner"]["pid"].as_i64().unwrap() as i32;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let d = settled(&node, "ticker").await;
    assert_eq!(d.phase, Phase::Failed, "{d:?}");
    let error = d.replicas[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("signal 9") || error.contains("SIGKILL") || error.contains("killed"),
        "{error}"
    );
    assert_eq!(node.daemon().node.health().unwrap().status, "ok");
    node.stop().await;
}

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// `examples/hello.wasm` is `examples/hello.wat` compiled (`MESH_BLESS=1` rewrites it).
#[test]
fn the_example_module_matches_its_source() {
    let compiled = wat::parse_file(examples().join("hello.wat")).unwrap();
    let path = examples().join("hello.wasm");
    if std::env::var_os("MESH_BLESS").is_some() {
        std::fs::write(&path, &compiled).unwrap();
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        compiled,
        "examples/hello.wasm is stale: run this test with MESH_BLESS=1"
    );
}

/// `meshctl apply -f examples/hello-function.yaml` (the CLI's own code, in process) bundles
/// the module next to the manifest; the Function runs and its line is in the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meshctl_bundles_the_module_a_manifest_names_by_path() {
    use clap::Parser;
    let node = TestNode::start_with(|c| engines(c, true)).await;
    let socket = node.daemon().socket.display().to_string();
    // The signing key lives beside the node, never in the user's home.
    let key = node.dir.path().join("user.key").display().to_string();
    let manifest = examples().join("hello-function.yaml");
    let cli = mesh_node::cli::Cli::parse_from([
        "meshctl",
        "--key",
        &key,
        "--node",
        &socket,
        "apply",
        "-f",
        manifest.to_str().unwrap(),
    ]);
    let code = mesh_node::cli::run(cli).await.unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    let d = settled(&node, "hello-wasm").await;
    assert_eq!(d.phase, Phase::Succeeded, "{d:?}");
    let logs = node
        .daemon()
        .mesh
        .logs(&id("hello-wasm"), None)
        .await
        .unwrap();
    assert!(
        logs.lines
            .iter()
            .any(|l| l.line == "hello from a WASM function"),
        "{logs:?}"
    );

    // A manifest naming a file that is not a module is refused before anything is sent.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.wasm"), "not wasm").unwrap();
    let bad = dir.path().join("f.yaml");
    std::fs::copy(&manifest, &bad).unwrap();
    let cli = mesh_node::cli::Cli::parse_from([
        "meshctl",
        "--key",
        &key,
        "--node",
        &socket,
        "apply",
        "-f",
        bad.to_str().unwrap(),
    ]);
    let err = mesh_node::cli::run(cli).await.unwrap_err().to_string();
    assert!(err.contains("not a WebAssembly module"), "{err}");
    node.stop().await;
}
