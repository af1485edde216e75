#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use super::*;
use libp2p::identity::Keypair;
use mesh_protocol::WorkloadKind;
use mesh_provider::workload::{encode, new_nonce, WorkloadRecord};

fn record(key: &Keypair, ns: &str, revision: u64, tombstone: bool) -> Verified {
    let mut r = WorkloadRecord::tombstone(
        WorkloadId::new(ns, "web"),
        revision,
        WorkloadKind::Pod,
        1_000,
    );
    r.tombstone = tombstone;
    r.spec_version = format!("sha256:{revision}");
    encode(key, r).unwrap()
}

fn policy(text: &str) -> Trust {
    Trust::new(
        Source::Fixed(file::parse(text).unwrap()),
        Keypair::generate_ed25519().public().to_peer_id(),
    )
    .unwrap()
}

fn entry(key: &Keypair, roles: &str, namespaces: &str) -> String {
    format!(
        "- key: {}\n  roles: [{roles}]\n  namespaces: [{namespaces}]\n",
        key.public().to_peer_id()
    )
}

#[test]
fn signers_are_checked_for_trust_namespace_and_ownership() {
    let (alice, bob, admin, stranger) = (
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
    );
    let t = policy(&format!(
        "keys:\n{}{}{}",
        entry(&alice, "deploy", "default, web"),
        entry(&bob, "deploy", "default"),
        entry(&admin, "admin", "'*'")
    ));
    let none = |_| None;
    t.authorise(&record(&alice, "web", 1, false), None, none)
        .unwrap();
    let e = t
        .authorise(&record(&stranger, "default", 1, false), None, none)
        .unwrap_err();
    assert!(matches!(e, Refusal::Untrusted { key } if key == stranger.public().to_peer_id()));
    assert!(e.to_string().contains("not trusted"), "{e}");
    let e = t
        .authorise(&record(&bob, "web", 1, false), None, none)
        .unwrap_err();
    assert!(e.to_string().contains("may not use namespace web"), "{e}");
    assert!(e.to_string().contains("keys[1].namespaces"), "{e}");

    // Alice's workload: bob may neither change nor delete it; alice and the admin may.
    let held = record(&alice, "default", 1, false);
    for v in [
        record(&bob, "default", 2, false),
        record(&bob, "default", 2, true),
    ] {
        let e = t.authorise(&v, Some(&held), none).unwrap_err();
        assert!(matches!(e, Refusal::NotOwner { .. }), "{e}");
        assert!(e.to_string().contains("admin role"), "{e}");
    }
    t.authorise(&record(&alice, "default", 2, true), Some(&held), none)
        .unwrap();
    t.authorise(&record(&admin, "default", 2, false), Some(&held), none)
        .unwrap();
    // Deleted: anyone trusted in the namespace may create it anew.
    let gone = record(&alice, "default", 2, true);
    t.authorise(&record(&bob, "default", 3, false), Some(&gone), none)
        .unwrap();
}

#[test]
fn the_nodes_own_key_is_an_admin_without_host_access_and_any_trusts_all() {
    let node = Keypair::generate_ed25519();
    let t = Trust::new(
        Source::Fixed(file::parse("{}").unwrap()),
        node.public().to_peer_id(),
    )
    .unwrap();
    t.authorise(&record(&node, "prod", 1, false), None, |_| None)
        .unwrap();
    assert_eq!(t.mode(), "owner");
    let any = Trust::any(node.public().to_peer_id());
    any.authorise(
        &record(&Keypair::generate_ed25519(), "x", 1, false),
        None,
        |_| None,
    )
    .unwrap();
    assert_eq!(any.mode(), "any");
}

#[test]
fn a_rollback_must_bring_back_a_revision_this_node_knows() {
    let key = Keypair::generate_ed25519();
    let t = Trust::any(key.public().to_peer_id());
    let held = record(&key, "default", 3, false);
    let mut r =
        WorkloadRecord::tombstone(WorkloadId::new("default", "web"), 4, WorkloadKind::Pod, 1);
    r.tombstone = false;
    r.spec_version = "sha256:1".into();
    r.rollback_to = Some(1);
    let rollback = encode(&key, r.clone()).unwrap();
    let known = |rev: u64| (rev == 1).then(|| "sha256:1".to_string());
    t.authorise(&rollback, Some(&held), known).unwrap();
    let e = t.authorise(&rollback, Some(&held), |_| None).unwrap_err();
    assert!(e.to_string().contains("does not know that revision"), "{e}");
    let e = t
        .authorise(&rollback, Some(&held), |_| Some("sha256:other".to_string()))
        .unwrap_err();
    assert!(e.to_string().contains("its content is sha256:other"), "{e}");
    r.rollback_to = Some(4);
    let forward = encode(&key, r).unwrap();
    assert!(t.authorise(&forward, Some(&held), known).is_err());
    // Without history (the DHT): the content is left to the books, the shape is not.
    t.authorise_without_history(&rollback, Some(&held)).unwrap();
    assert!(t.authorise_without_history(&forward, Some(&held)).is_err());
    // A node that never held the workload has nothing to roll back from.
    t.authorise(&rollback, None, |_| None).unwrap();
}

#[test]
fn replays_and_skewed_requests_are_refused() {
    let key = Keypair::generate_ed25519();
    let t = Trust::any(key.public().to_peer_id());
    let now = 10_000_000;
    let mut r =
        WorkloadRecord::tombstone(WorkloadId::new("default", "web"), 1, WorkloadKind::Pod, now);
    let fresh = encode(&key, r.clone()).unwrap();
    t.check_fresh(&fresh, now).unwrap();
    let e = t.check_fresh(&fresh, now + 1).unwrap_err();
    assert!(e.to_string().contains("already received"), "{e}");
    r.nonce = new_nonce();
    r.issued_at = now - 6 * 60 * 1000;
    let e = t
        .check_fresh(&encode(&key, r.clone()).unwrap(), now)
        .unwrap_err();
    assert!(e.to_string().contains("ago, beyond the 5m"), "{e}");
    r.issued_at = now + 6 * 60 * 1000;
    let e = t
        .check_fresh(&encode(&key, r.clone()).unwrap(), now)
        .unwrap_err();
    assert!(e.to_string().contains("in the future"), "{e}");
    r.issued_at = now;
    r.nonce = String::new();
    let e = t.check_fresh(&encode(&key, r).unwrap(), now).unwrap_err();
    assert!(e.to_string().contains("no nonce"), "{e}");
}

fn spec(manifest: &str) -> WorkloadSpec {
    mesh_manifests::parse(manifest.as_bytes(), &Default::default())
        .unwrap()
        .remove(0)
}

const HOST_ROOT: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: busybox, volumeMounts: [{name: root, mountPath: /host}]}\n  volumes:\n  - {name: root, hostPath: {path: /}}\n";

#[test]
fn host_access_needs_a_grant() {
    let (plain, granted) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let t = policy(&format!(
        "keys:\n{}{}  grants: {{hostPaths: [/srv], hostNetwork: true, capabilities: [NET_ADMIN], processEngine: true}}\n",
        entry(&plain, "deploy", "default"),
        entry(&granted, "deploy", "default")
    ));
    let (p, g) = (plain.public().to_peer_id(), granted.public().to_peer_id());
    let e = t.check_spec(&spec(HOST_ROOT), &p).unwrap_err();
    assert!(
        e.to_string()
            .contains("is not granted host path / (volume root; granted: none)"),
        "{e}"
    );
    assert!(e.to_string().contains("keys[0].grants.hostPaths"), "{e}");
    let e = t.check_spec(&spec(HOST_ROOT), &g).unwrap_err();
    assert!(e.to_string().contains("granted: /srv"), "{e}");
    t.check_spec(
        &spec(&HOST_ROOT.replace("path: /}", "path: /srv/data}")),
        &g,
    )
    .unwrap();

    let net = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostNetwork: true\n  containers:\n  - {name: c, image: busybox, securityContext: {capabilities: {add: [NET_ADMIN]}}}\n";
    let e = t.check_spec(&spec(net), &p).unwrap_err();
    assert!(e.to_string().contains("the host network"), "{e}");
    t.check_spec(&spec(net), &g).unwrap();
    let e = t
        .check_spec(&spec(&net.replace("NET_ADMIN", "SYS_ADMIN")), &g)
        .unwrap_err();
    assert!(e.to_string().contains("capability SYS_ADMIN"), "{e}");

    let process = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {beemesh.io/runtime-engine: process}}\nspec:\n  containers:\n  - {name: c, image: sh, command: [sleep, '1']}\n";
    let e = t.check_spec(&spec(process), &p).unwrap_err();
    assert!(e.to_string().contains("the process engine"), "{e}");
    t.check_spec(&spec(process), &g).unwrap();
    let e = t
        .check_spec(
            &spec(process),
            &Keypair::generate_ed25519().public().to_peer_id(),
        )
        .unwrap_err();
    assert!(matches!(e, Refusal::Untrusted { .. }));
}

#[test]
fn caps_need_stated_limits_within_them() {
    let key = Keypair::generate_ed25519();
    let t = policy(&format!(
        "keys:\n{}  grants: {{processEngine: true}}\nnode: {{maxCpu: 1, maxMemory: 256Mi}}\n",
        entry(&key, "deploy", "default")
    ));
    let k = key.public().to_peer_id();
    let pod = |limits: &str| {
        spec(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - {{name: c, image: busybox{limits}}}\n"))
    };
    let e = t.check_spec(&pod(""), &k).unwrap_err();
    assert!(e.to_string().contains("state a CPU limit"), "{e}");
    let e = t
        .check_spec(&pod(", resources: {limits: {cpu: 2, memory: 64Mi}}"), &k)
        .unwrap_err();
    assert!(e.to_string().contains("asks for 2000m CPU"), "{e}");
    let e = t
        .check_spec(&pod(", resources: {limits: {cpu: 500m, memory: 1Gi}}"), &k)
        .unwrap_err();
    assert!(e.to_string().contains("node.maxMemory"), "{e}");
    t.check_spec(
        &pod(", resources: {limits: {cpu: 500m, memory: 128Mi}}"),
        &k,
    )
    .unwrap();
}
