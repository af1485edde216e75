//! `scripts/demo.sh`, the README's first command, exits 0 and shows real work, on this
//! machine as it is (Podman and Docker when their daemons answer; CI requires them) and with
//! no container daemon at all (their sockets pointed at nothing). It runs with the binaries
//! this test was built with (`MESH_DEMO_BIN`) rather than building them again.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::Command;

mod cli_support;
use cli_support::{key_path, MESHD};

/// Runs the demo with `env`; returns what it printed, after checking it exited 0 and showed
/// what runs everywhere: the WASM function's output, both ticker replicas' lines, healing.
fn demo(env: &[(&str, &str)]) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bin = Path::new(MESHD).parent().unwrap();
    let out = Command::new("bash")
        .arg(repo.join("scripts/demo.sh"))
        .env("MESH_DEMO_BIN", bin)
        .env("MESH_KEY", key_path().join("user.key"))
        .env("TMPDIR", tmp.path())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the demo failed:\n{text}");
    // Every node it started is gone, the one it started again by hand included.
    let left = leftover_processes(tmp.path());
    assert!(left.is_empty(), "processes left running: {left:#?}\n{text}");
    for shown in [
        "hello from a WASM function",
        "hello-wasm  default    Function  Succeeded  wasm",
        "discover ticker --engine process",
        "replacement Running, seen",
        "exactly 2 remain",
    ] {
        assert!(
            text.contains(shown),
            "the demo did not show {shown:?}:\n{text}"
        );
    }
    // logs -f showed both replicas, each prefixed by its node.
    let sources: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("[…") && l.contains("/tick] tick "))
        .filter_map(|l| l.split(']').next())
        .collect();
    assert_eq!(sources.len(), 2, "logs -f of two replicas:\n{text}");
    // Nothing is left running: every demo workload deleted before the mesh stopped.
    assert!(
        text.contains("no workloads (meshctl apply -f FILE deploys one)"),
        "{text}"
    );
    text
}

/// Processes whose command line names a path under `dir`, or that run in a directory under
/// it (the process engine's workloads run in their node's data directory).
fn leftover_processes(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
            (cmd.contains(&needle) || cwd.starts_with(dir))
                .then(|| format!("{cmd} (in {})", cwd.display()))
        })
        .collect()
}

fn required(engine: &str) -> bool {
    std::env::var("MESH_REQUIRE_ENGINES")
        .unwrap_or_default()
        .split(',')
        .any(|e| e.trim() == engine)
}

#[test]
fn the_demo_runs_real_work_with_the_container_daemons_of_this_machine() {
    let text = demo(&[]);
    // Where the daemons are required (CI), the Pod ran on Podman and the project on Docker.
    if required("podman") {
        assert!(
            text.contains("default/web  created  Running  podman"),
            "{text}"
        );
    }
    if required("docker") {
        assert!(
            text.contains("default/cache  created  Running  docker"),
            "{text}"
        );
    }
}

#[test]
fn without_container_daemons_the_demo_says_so_and_shows_the_reason() {
    let text = demo(&[
        ("CONTAINER_HOST", "unix:///nonexistent/podman.sock"),
        ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
    ]);
    assert!(
        text.contains("No Podman or Docker daemon answers here"),
        "{text}"
    );
    assert!(
        text.contains("Kubernetes manifest implies podman, but podman is not available"),
        "{text}"
    );
    assert!(
        text.contains("Compose file implies docker, but docker is not available"),
        "{text}"
    );
    assert!(!text.contains("created  Running  mock"), "{text}");
}
