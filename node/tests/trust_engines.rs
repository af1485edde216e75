//! Host access is refused before anything starts, against real engines: a `hostPath` of `/`
//! from a key not granted host access never reaches Podman, and the process engine runs
//! native commands only for a key granted it. Each refusal is a 403 naming the key and the
//! rule, recorded as an `Authorize` event; the node stores nothing and stays up. The Podman
//! test skips with a printed reason when Podman is absent, and fails instead when
//! `MESH_REQUIRE_ENGINES` names it (CI sets `podman,docker`).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use libp2p::identity::Keypair;
use mesh_node::testing::{signed_apply, wait_until, TestNode};
use mesh_protocol::{Outcome, Phase, Step, WorkloadId};
use mesh_runtime::Engine;

fn trust_file(dir: &std::path::Path, entries: &[(&Keypair, &str)]) -> std::path::PathBuf {
    let mut text = "keys:\n".to_string();
    for (key, grants) in entries {
        text += &format!(
            "- key: {}\n  roles: [deploy]\n  grants: {{{grants}}}\n",
            key.public().to_peer_id()
        );
    }
    let path = dir.join("trust.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The refusal of `manifest` signed by `key`: a 403 through the local API that names the key
/// and the rule, an `Authorize` event, and no desired state.
async fn refused(node: &TestNode, key: &Keypair, manifest: &str, rule: &str) {
    let mesh = &node.daemon().mesh;
    let req = signed_apply(mesh, key, manifest, 1).await;
    let id = mesh_node::records::parse_source(&mesh_provider::workload::ManifestSource::of(&req))
        .unwrap()[0]
        .id();
    let answer = node.client().post("/deployments", &req).await.unwrap();
    let message = answer.error_message();
    assert_eq!(answer.status.as_u16(), 403, "{message}");
    assert!(
        message.contains(&key.public().to_peer_id().to_string()),
        "{message}"
    );
    assert!(message.contains(rule), "{message}");
    let events = node.daemon().node.events(Some(&id), 10).unwrap();
    assert!(
        events.iter().any(|e| e.step == Step::Authorize
            && e.outcome == Outcome::Failed
            && e.message.contains(rule)),
        "{events:#?}"
    );
    assert!(node.daemon().node.store().desired(&id).unwrap().is_none());
    assert!(
        node.daemon().mesh.records().get(&id).is_none(),
        "no record kept"
    );
    // Still serving.
    assert!(node
        .client()
        .get::<serde_json::Value>("/health")
        .await
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_engine_runs_only_for_a_key_granted_it() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, carol) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let trust = trust_file(dir.path(), &[(&alice, ""), (&carol, "processEngine: true")]);
    let marker = dir.path().join("ran");
    let node = TestNode::start_with(|c| {
        c.trust = mesh_node::trust::Source::File(trust);
        let engine = mesh_engine_process::ProcessEngine::new(c.data_dir.join("process")).unwrap();
        c.extra_engines.push(Arc::new(engine));
    })
    .await;
    let manifest = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    beemesh.io/runtime-engine: process\nspec:\n  containers:\n  - name: main\n    image: sh\n    command: [sh, -c, 'touch {} && exec sleep 60']\n",
            marker.display()
        )
    };
    refused(&node, &alice, &manifest("alices"), "the process engine").await;
    assert!(
        !marker.exists(),
        "the command ran for a key not granted the process engine"
    );

    let mesh = &node.daemon().mesh;
    let resp = mesh
        .apply(signed_apply(mesh, &carol, &manifest("carols"), 1).await)
        .await
        .unwrap();
    assert_eq!(resp.workloads[0].deployment.phase, Phase::Running);
    wait_until(
        "the granted command to run",
        Duration::from_secs(10),
        || async { marker.exists().then_some(()) },
    )
    .await;
    mesh.delete(&WorkloadId::new("default", "carols"), None)
        .await
        .unwrap();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_path_of_root_from_a_key_not_granted_it_never_reaches_podman() {
    let probe = mesh_engine_podman::PodmanEngine::connect(
        &mesh_engine_podman::PodmanEngine::default_socket(None),
    )
    .fingerprint()
    .await;
    let up = if probe.healthy {
        Ok(())
    } else {
        Err(probe.detail)
    };
    if !mesh_runtime::testing::engine_available("podman", up) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (alice, ops) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let scratch = dir.path().join("data");
    std::fs::create_dir_all(&scratch).unwrap();
    let trust = trust_file(
        dir.path(),
        &[
            (&alice, ""),
            (&ops, &format!("hostPaths: [{}]", scratch.display())),
        ],
    );
    let node = TestNode::start_with(|c| {
        c.trust = mesh_node::trust::Source::File(trust);
        c.engines = Some(vec!["podman".into()]);
        c.extra_engines.clear();
        c.controller.health_timeout = Duration::from_secs(60);
    })
    .await;
    let name = format!("hostroot-{}", std::process::id() % 100_000);
    let pod = |path: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n    command: [sleep, '60']\n    volumeMounts: [{{name: host, mountPath: /host}}]\n  volumes:\n  - name: host\n    hostPath: {{path: {path}}}\n"
        )
    };
    let containers = || {
        let o = Command::new("podman")
            .args([
                "ps",
                "-a",
                "-q",
                "--filter",
                &format!("label=beemesh.io/workload=default.{name}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    refused(
        &node,
        &alice,
        &pod("/"),
        "host path / (volume host; granted: none)",
    )
    .await;
    // Granted a prefix: the root is still refused, a path under the prefix runs in Podman.
    refused(&node, &ops, &pod("/"), "hostPaths").await;
    assert_eq!(containers(), "", "nothing reached Podman");
    let mesh = &node.daemon().mesh;
    let resp = mesh
        .apply(signed_apply(mesh, &ops, &pod(scratch.to_str().unwrap()), 1).await)
        .await
        .unwrap();
    assert_eq!(
        resp.workloads[0].deployment.phase,
        Phase::Running,
        "{resp:#?}"
    );
    assert_ne!(containers(), "");
    mesh.delete(&WorkloadId::new("default", &name), None)
        .await
        .unwrap();
    assert_eq!(containers(), "", "cleaned up");
    node.stop().await;
}
