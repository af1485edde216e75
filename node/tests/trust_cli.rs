//! Trust through the real binaries: `meshctl testnet up` writes a trust file for its user's
//! key and nothing else runs; `meshctl nodes` shows each node's trust; a key the nodes do not
//! trust gets one clear line; `meshctl history` and `meshctl rollback` bring an earlier
//! revision back; `meshd` reloads its trust file on SIGHUP.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mesh_node::testing::wait_until_blocking;

const MESHD: &str = env!("CARGO_BIN_EXE_meshd");
const MESHCTL: &str = env!("CARGO_BIN_EXE_meshctl");

fn ctl(key: &Path, args: &[&str]) -> Output {
    Command::new(MESHCTL)
        .env("MESH_KEY", key)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "meshctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(out: Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap()
}

fn pod() -> String {
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n".into()
}

struct Down(PathBuf, PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = ctl(
            &self.1,
            &["testnet", "down", "--dir", self.0.to_str().unwrap()],
        );
    }
}

/// `meshctl testnet up` of `nodes` mock nodes in `net`, as the user of `key`: the testnet's
/// guard (it stops the nodes when dropped) and what meshctl printed.
fn testnet_up(key: &Path, net: &Path, nodes: &str, more: &[&str]) -> (Down, String) {
    let dir = net.to_str().unwrap();
    let mut args = vec!["testnet", "up", "--nodes", nodes, "--dir", dir];
    args.extend(["--engines", "mock", "--meshd", MESHD]);
    args.extend(more);
    let printed = ok(ctl(key, &args));
    (Down(net.to_path_buf(), key.to_path_buf()), printed)
}

#[test]
fn a_testnet_trusts_its_users_key_and_rolls_back_a_signed_revision() {
    let dir = tempfile::tempdir().unwrap();
    let (me, stranger) = (dir.path().join("me.key"), dir.path().join("stranger.key"));
    let net = dir.path().join("net");
    let _down = testnet_up(&me, &net, "2", &[]).0;
    let trust = std::fs::read_to_string(net.join("trust.yaml")).unwrap();
    let my_id = json(ctl(&me, &["key", "show", "-o", "json"]))["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(trust.contains(&my_id), "{trust}");
    let sock = net.join("node-0/meshd.sock");
    let node = ["--node", sock.to_str().unwrap()];
    wait_until_blocking("both nodes known", Duration::from_secs(30), || {
        let nodes = json(ctl(&me, &[&node[..], &["nodes", "-o", "json"]].concat()));
        let nodes = nodes.as_array().unwrap().clone();
        (nodes.len() == 2).then_some(())
    });
    let nodes = json(ctl(&me, &[&node[..], &["nodes", "-o", "json"]].concat()));
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["trust"] == "file"),
        "{nodes}"
    );

    let file = dir.path().join("hello.yaml");
    std::fs::write(&file, pod()).unwrap();
    let f = file.to_str().unwrap();
    let stranger_id = json(ctl(&stranger, &["key", "show", "-o", "json"]))["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    // A key the nodes do not trust: one line, naming it, exit 1, nothing deployed.
    let out = ctl(&stranger, &[&node[..], &["apply", "-f", f]].concat());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("is not trusted by this node"), "{err}");
    assert!(err.contains(&stranger_id), "{err}");
    assert!(
        json(ctl(&me, &[&node[..], &["get", "-o", "json"]].concat()))
            .as_array()
            .unwrap()
            .is_empty()
    );

    ok(ctl(
        &me,
        &[&node[..], &["apply", "-f", f, "--replicas", "1"]].concat(),
    ));
    ok(ctl(
        &me,
        &[&node[..], &["apply", "-f", f, "--replicas", "2"]].concat(),
    ));
    let rolled = json(ctl(
        &me,
        &[&node[..], &["rollback", "hello", "-o", "json"]].concat(),
    ));
    let d = &rolled["workloads"][0]["deployment"];
    assert_eq!(
        (d["revision"].as_u64(), d["desired_replicas"].as_u64()),
        (Some(3), Some(1)),
        "{rolled}"
    );
    let history = json(ctl(
        &me,
        &[&node[..], &["history", "hello", "-o", "json"]].concat(),
    ));
    let revs: Vec<(u64, Option<u64>)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["revision"].as_u64().unwrap(), r["rollback_to"].as_u64()))
        .collect();
    assert_eq!(revs, [(1, None), (2, None), (3, Some(1))]);
    let table = ok(ctl(&me, &[&node[..], &["history", "hello"]].concat()));
    assert!(table.contains("rollback to 1"), "{table}");
    // The stranger may not roll it back either.
    let out = ctl(
        &stranger,
        &[&node[..], &["rollback", "hello", "--to-revision", "2"]].concat(),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not trusted"));
}

#[test]
fn meshd_reloads_its_trust_file_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (me, other) = (dir.path().join("me.key"), dir.path().join("other.key"));
    let id = |k: &Path| {
        json(ctl(k, &["key", "show", "-o", "json"]))["key_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let entry = |k: &str| format!("- key: {k}\n  roles: [deploy]\n");
    let trust = dir.path().join("trust.yaml");
    std::fs::write(&trust, format!("keys:\n{}", entry(&id(&me)))).unwrap();
    let log = dir.path().join("meshd.log");
    let data = dir.path().join("data");
    let mut meshd = Command::new(MESHD)
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--engines",
            "mock",
            "--log",
            "info",
        ])
        .args([
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--trust-file",
            trust.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let sock = data.join("meshd.sock");
    let node = ["--node", sock.to_str().unwrap()];
    wait_until_blocking("meshd to answer", Duration::from_secs(30), || {
        ctl(&me, &[&node[..], &["engines"]].concat())
            .status
            .success()
            .then_some(())
    });
    let file = dir.path().join("hello.yaml");
    std::fs::write(&file, pod()).unwrap();
    let apply = [&node[..], &["apply", "-f", file.to_str().unwrap()]].concat();
    let out = ctl(&other, &apply);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not trusted"));

    std::fs::write(
        &trust,
        format!("keys:\n{}{}", entry(&id(&me)), entry(&id(&other))),
    )
    .unwrap();
    Command::new("kill")
        .args(["-HUP", &meshd.id().to_string()])
        .status()
        .unwrap();
    wait_until_blocking(
        "the SIGHUP reload in the log",
        Duration::from_secs(10),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines()
                .any(|l| l.contains("trust file reloaded") && l.contains("SIGHUP"))
                .then_some(())
        },
    );
    ok(ctl(&other, &apply));
    assert!(meshd.try_wait().unwrap().is_none(), "meshd survived SIGHUP");
    meshd.kill().unwrap();
    meshd.wait().unwrap();
}

#[test]
fn a_trust_any_testnet_says_so_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let me = dir.path().join("me.key");
    let net = dir.path().join("net");
    let (_down, up) = testnet_up(&me, &net, "1", &["--trust-any"]);
    assert!(!up.contains("nothing else"), "{up}");
    assert!(
        !net.join("trust.yaml").exists(),
        "no trust file for a --trust-any testnet"
    );
    let sock = net.join("node-0/meshd.sock");
    let table = ok(ctl(&me, &["--node", sock.to_str().unwrap(), "nodes"]));
    assert!(table.contains("ANY KEY (--trust-any)"), "{table}");
    let log = std::fs::read_to_string(net.join("node-0/meshd.log")).unwrap();
    assert!(log.contains("TRUST-ANY"), "{log}");
}
