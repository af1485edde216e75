//! The real binaries: `meshd` killed with SIGKILL and restarted keeps every workload, and
//! `meshctl` behaves as a command-line tool should (exit codes, one-line errors, -o json).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use mesh_node::testing::wait_until_blocking;

const MESHD: &str = env!("CARGO_BIN_EXE_meshd");
const MESHCTL: &str = env!("CARGO_BIN_EXE_meshctl");
const READY_TIMEOUT: Duration = Duration::from_secs(30);

struct Meshd {
    child: Child,
    socket: PathBuf,
}

impl Meshd {
    fn start(dir: &Path) -> Self {
        Self::start_logging(dir, "warn", Stdio::inherit())
    }

    /// [`Meshd::start`] logging at `level` to `stderr`.
    fn start_logging(dir: &Path, level: &str, stderr: impl Into<Stdio>) -> Self {
        Self::start_with(dir, level, stderr, &[])
    }

    /// [`Meshd::start_logging`] with more arguments.
    fn start_with(dir: &Path, level: &str, stderr: impl Into<Stdio>, args: &[&str]) -> Self {
        let socket = dir.join("meshd.sock");
        let child = Command::new(MESHD)
            .args(["--data-dir", dir.to_str().unwrap(), "--engines", "mock"])
            .args(["--log", level])
            .args(args)
            // The owner's key: the node trusts what meshctl signs with it, and nothing else.
            .env("MESH_KEY", dir.join("user.key"))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("meshd starts");
        let meshd = Self { child, socket };
        wait_until_blocking("meshd to answer /health", READY_TIMEOUT, || {
            meshd.ctl(&["engines"]).status.success().then_some(())
        });
        meshd
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(MESHCTL)
            .arg("--node")
            .arg(&self.socket)
            // The signing key lives beside the node, never in the user's home.
            .env("MESH_KEY", self.socket.with_file_name("user.key"))
            .args(args)
            .output()
            .expect("meshctl runs")
    }

    /// SIGTERM, and the exit awaited: it must be a success.
    fn terminate(&mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = wait_until_blocking("meshd to exit", READY_TIMEOUT, || {
            self.child.try_wait().unwrap()
        });
        assert!(status.success(), "{status}");
    }

    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Meshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_string()
}

fn pod(name: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    beemesh.io/runtime-engine: mock\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "meshctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("-o json prints JSON")
}

/// Instances the mock engine holds on disk, with how many times each was started.
fn mock_instances(dir: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> =
        mesh_runtime::mock::MockEngine::stored_instances(&dir.join("mock"))
            .unwrap()
            .into_iter()
            .map(|i| (i.id, u64::from(i.starts)))
            .collect();
    out.sort();
    out
}

/// Three workloads, `kill -9` of meshd, restart: all three are Running again, re-adopted
/// through `recover` (same instances, none started twice), none duplicated.
#[test]
fn kill_9_and_restart_readopts_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let meshd = Meshd::start(dir.path());
    for name in ["alpha", "beta", "gamma"] {
        let f = write(files.path(), &format!("{name}.yaml"), &pod(name));
        let out = meshd.ctl(&["apply", "-f", &f]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let before = mock_instances(dir.path());
    assert_eq!(before.len(), 3);
    assert!(before.iter().all(|(_, starts)| *starts == 1));
    meshd.kill9();

    let meshd = Meshd::start(dir.path());
    let list = json(&meshd.ctl(&["get", "-o", "json"]));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    for d in list {
        assert_eq!(d["phase"], "Running", "{d}");
        assert_eq!(d["replicas"].as_array().unwrap().len(), 1, "{d}");
    }
    assert_eq!(
        mock_instances(dir.path()),
        before,
        "same instances, none restarted or added"
    );
    let events = json(&meshd.ctl(&["events", "alpha", "-o", "json"]));
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["step"] == "Recover" && e["outcome"] == "ok"),
        "{events}"
    );
}

/// A Job whose run ended (Succeeded, stored) but whose instance was not removed yet when
/// meshd was killed: the restarted node removes the instance and keeps the run as it was.
#[test]
fn a_finished_job_killed_before_its_teardown_loses_its_instance_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let meshd = Meshd::start(dir.path());
    // Its removal takes 8 s, in which meshd is killed.
    let f = write(
        files.path(),
        "job.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: once\n  annotations:\n    beemesh.io/runtime-engine: mock\n    beemesh.io/mock-exit-after-ms: \"10\"\n    beemesh.io/mock-remove-delay-ms: \"8000\"\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: main\n        image: localhost/mesh-test:latest\n",
    );
    assert!(meshd.ctl(&["apply", "-f", &f]).status.success());
    wait_until_blocking("the job to succeed", READY_TIMEOUT, || {
        let d = json(&meshd.ctl(&["get", "once", "-o", "json"]));
        (d["phase"] == "Succeeded").then_some(())
    });
    assert_eq!(mock_instances(dir.path()).len(), 1, "not removed yet");
    meshd.kill9();

    let meshd = Meshd::start(dir.path());
    wait_until_blocking("the instance to be removed", READY_TIMEOUT, || {
        mock_instances(dir.path()).is_empty().then_some(())
    });
    let d = wait_until_blocking("the replica to let go of it", READY_TIMEOUT, || {
        let d = json(&meshd.ctl(&["get", "once", "-o", "json"]));
        d["replicas"][0]["instance"].is_null().then_some(d)
    });
    assert_eq!(d["phase"], "Succeeded", "{d}");
    assert_eq!(d["replicas"][0]["job"]["attempts"], 1, "not run again: {d}");
    assert!(d["replicas"][0]["error"].is_null(), "{d}");
}

/// `meshctl` errors: one line on stderr, non-zero exit, nothing on stdout.
#[test]
fn meshctl_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let meshd = Meshd::start(dir.path());

    let bad = write(
        files.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n  - name: c\n",
    );
    let out = meshd.ctl(&["apply", "-f", &bad]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("spec.containers[0].image"), "{err}");
    assert!(out.stdout.is_empty());

    let out = meshd.ctl(&["get", "nothing"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: workload nothing not found (meshctl get lists workloads)"
    );

    let out = meshd.ctl(&["apply", "-f", "/does/not/exist.yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /does/not/exist.yaml"));

    let out = Command::new(MESHCTL)
        .args(["--node", "/nonexistent/meshd.sock", "get"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot reach meshd at /nonexistent/meshd.sock"));

    // A workload that fails makes apply exit non-zero but still prints the outcome.
    let failing = pod("boom").replace(
        "    beemesh.io/runtime-engine: mock\n",
        "    beemesh.io/runtime-engine: mock\n    beemesh.io/mock-start-error: kaboom\n",
    );
    let f = write(files.path(), "boom.yaml", &failing);
    let out = meshd.ctl(&["apply", "-f", &f, "-o", "json"]);
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["workloads"][0]["action"], "failed");
}

/// A Compose file named by its stem, read from stdin with --name, described and deleted.
#[test]
fn compose_apply_describe_delete() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let meshd = Meshd::start(dir.path());
    let compose = "x-beemesh:\n  annotations:\n    beemesh.io/runtime-engine: mock\nservices:\n  web:\n    image: localhost/mesh-test:latest\n    ports: [\"8080:80\"]\n  db:\n    image: localhost/mesh-test:latest\n";
    let f = write(files.path(), "shop.yaml", compose);
    let out = meshd.ctl(&["apply", "-f", &f]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("WORKLOAD"), "{table}");
    assert!(
        table.contains("default/shop") && table.contains("created") && table.contains("Running"),
        "{table}"
    );

    let d = json(&meshd.ctl(&["get", "shop", "-o", "json"]));
    assert_eq!(d["kind"], "Compose");
    assert_eq!(d["engine"], "mock");

    let out = meshd.ctl(&["describe", "shop"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Engine reason:")
            && text.contains("annotation beemesh.io/runtime-engine=mock"),
        "{text}"
    );
    assert!(text.contains("HealthCheck"), "{text}");

    let out = meshd.ctl(&["get", "shop", "-o", "yaml"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("name: shop"));

    let out = meshd.ctl(&["delete", "shop"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "default/shop deleted (1 replica)"
    );
    assert!(mock_instances(dir.path()).is_empty());
}

/// SIGTERM: meshd leaves the mesh (withdraws, flushes), exits 0, and its workloads keep
/// running: a restart re-adopts them without starting any twice.
#[test]
fn sigterm_leaves_the_mesh_and_leaves_workloads_running() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let log = dir.path().join("meshd.log");
    let mut meshd = Meshd::start_logging(dir.path(), "info", std::fs::File::create(&log).unwrap());
    let f = write(files.path(), "alpha.yaml", &pod("alpha"));
    assert!(meshd.ctl(&["apply", "-f", &f]).status.success());
    meshd.terminate();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("left the mesh"), "{text}");
    let before = mock_instances(dir.path());
    assert_eq!(before.len(), 1);
    drop(meshd);
    let meshd = Meshd::start(dir.path());
    let list = json(&meshd.ctl(&["get", "-o", "json"]));
    assert_eq!(list[0]["phase"], "Running", "{list}");
    assert_eq!(
        mock_instances(dir.path()),
        before,
        "re-adopted, not started again"
    );
}

/// `--stop-workloads-on-exit`: SIGTERM stops the instances too; the node keeps what it was
/// asked to run, and its next start installs them again.
#[test]
fn stop_workloads_on_exit_stops_them_and_the_next_start_brings_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut meshd = Meshd::start_with(
        dir.path(),
        "warn",
        Stdio::inherit(),
        &["--stop-workloads-on-exit"],
    );
    let f = write(files.path(), "alpha.yaml", &pod("alpha"));
    assert!(meshd.ctl(&["apply", "-f", &f]).status.success());
    assert_eq!(mock_instances(dir.path()).len(), 1);
    meshd.terminate();
    assert!(
        mock_instances(dir.path()).is_empty(),
        "the instance was not stopped"
    );
    drop(meshd);
    let meshd = Meshd::start(dir.path());
    let list = json(&meshd.ctl(&["get", "-o", "json"]));
    assert_eq!(list[0]["phase"], "Running", "{list}");
    let again = mock_instances(dir.path());
    assert_eq!(again.len(), 1, "installed again: {again:?}");
    assert_eq!(again[0].1, 1, "a new instance, started once");
}
