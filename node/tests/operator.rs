//! The operator's view of the binaries: `--version` with the git revision, `meshctl version`
//! with and without a node, `meshctl completion` for each shell, and meshd started from a
//! config file (and refusing a bad one with its file and line).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mesh_node::testing::wait_until_blocking;

const MESHD: &str = env!("CARGO_BIN_EXE_meshd");
const MESHCTL: &str = env!("CARGO_BIN_EXE_meshctl");
const RUNNER: &str = env!("CARGO_BIN_EXE_mesh-wasm-runner");
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `bin` with `args`, its keys in `dir` (never the user's).
fn run(bin: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("MESH_KEY", dir.join("user.key"))
        .env_remove("MESH_CONFIG")
        .env_remove("MESH_NODE")
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .stdin(Stdio::null())
        .output()
        .expect("runs")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn versions_name_the_git_revision() {
    let dir = tempfile::tempdir().unwrap();
    let long = mesh_node::version::LONG;
    assert_eq!(
        stdout(&run(MESHD, dir.path(), &["--version"])),
        format!("meshd {long}\n")
    );
    assert_eq!(
        stdout(&run(MESHCTL, dir.path(), &["--version"])),
        format!("meshctl {long}\n")
    );
    assert!(stdout(&run(RUNNER, dir.path(), &["--version"])).starts_with("mesh-wasm-runner "));
    // No node: meshctl's own version all the same, and success.
    let nowhere = dir.path().join("none.sock");
    let nowhere = nowhere.to_str().unwrap();
    let text = stdout(&run(MESHCTL, dir.path(), &["version", "--node", nowhere]));
    assert!(
        text.starts_with(&format!("meshctl {long}\nnode    not reached: ")),
        "{text}"
    );
    let json = stdout(&run(
        MESHCTL,
        dir.path(),
        &["version", "-o", "json", "--node", nowhere],
    ));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["version"], mesh_node::version::VERSION);
    assert_eq!(v["git"], mesh_node::version::GIT);
    assert!(v["node"].is_null(), "{v}");
}

/// meshd from a config file (data dir, engines, listen address, log filter, a duration),
/// then `meshctl version` reaches it; a flag still wins over the file (`--engines none`
/// would leave no mock engine: the file's `engines` must be overridden by the flag here).
#[test]
fn meshd_runs_from_a_config_file_and_meshctl_version_asks_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let config = dir.path().join("meshd.toml");
    std::fs::write(
        &config,
        format!(
            "data-dir = \"{}\"\nengines = [\"none\"]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n\
             log = \"warn\"\nheartbeat-interval = \"1s\"\n",
            data.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(MESHD)
        .args(["--config", config.to_str().unwrap(), "--engines", "mock"])
        .env("MESH_KEY", dir.path().join("user.key"))
        .env_remove("MESH_DATA_DIR")
        .stdout(Stdio::null())
        .spawn()
        .expect("meshd starts");
    let socket = data.join("meshd.sock");
    let node = socket.to_str().unwrap();
    let engines = wait_until_blocking("meshd to answer", READY_TIMEOUT, || {
        let out = run(MESHCTL, dir.path(), &["engines", "--node", node]);
        out.status.success().then(|| stdout(&out))
    });
    let json = run(
        MESHCTL,
        dir.path(),
        &["version", "-o", "json", "--node", node],
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        engines.contains("mock"),
        "the flag wins over the file: {engines}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(v["node"]["version"], mesh_node::version::LONG, "{v}");
    assert!(
        v["node"]["peer"].as_str().unwrap().starts_with("12D3KooW"),
        "{v}"
    );
}

#[test]
fn meshd_refuses_a_bad_config_file_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("meshd.toml");
    std::fs::write(&config, "mdns = true\nheartbeat-intervall = \"1s\"\n").unwrap();
    let out = Command::new(MESHD)
        .env("MESH_CONFIG", &config)
        .env("MESH_KEY", dir.path().join("user.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let at = format!("{}:2: unknown key `heartbeat-intervall`", config.display());
    assert!(err.starts_with("error: ") && err.contains(&at), "{err}");
}

#[test]
fn completion_scripts_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&run(MESHCTL, dir.path(), &["completion", shell]));
        for word in ["apply", "discover", "testnet"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
        let path = dir.path().join(format!("meshctl.{shell}"));
        std::fs::write(&path, &script).unwrap();
        // Each shell's own syntax check, when the shell is installed.
        let check: &[&str] = match shell {
            "fish" => &["--no-execute"],
            _ => &["-n"],
        };
        match Command::new(shell).args(check).arg(&path).output() {
            Ok(out) => assert!(out.status.success(), "{shell} -n: {out:?}"),
            Err(e) if shell != "bash" => {
                println!("{shell} not installed ({e}): its script's syntax is not checked")
            }
            Err(e) => panic!("bash must be installed: {e}"),
        }
    }
    let help = stdout(&run(MESHCTL, dir.path(), &["completion", "--help"]));
    for shell in ["bash", "zsh", "fish"] {
        assert!(
            help.contains(&format!("meshctl completion {shell} >")),
            "{help}"
        );
    }
}
