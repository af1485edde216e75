//! Local testnets: N `meshd` processes on loopback, each in its own data dir, bootstrapped
//! to the first (and to its predecessor), described in `DIR/testnet.json`. Used by
//! `meshctl testnet`, the multi-process tests and the mesh benchmark.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::identity::{read_node_file, NodeFile};

/// File describing a running testnet.
pub const TESTNET_FILE: &str = "testnet.json";
/// The trust file every node of a testnet is started with (see [`Options::trust_key`]).
pub const TRUST_FILE: &str = "trust.yaml";
/// How long a node may take to write its `node.json`.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `down` waits after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestnetNode {
    pub index: usize,
    pub dir: PathBuf,
    pub pid: u32,
    pub peer_id: String,
    pub api_socket: PathBuf,
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Testnet {
    pub dir: PathBuf,
    pub nodes: Vec<TestnetNode>,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub nodes: usize,
    /// `--engines` for every node (`None`: detect).
    pub engines: Option<String>,
    /// The `meshd` binary.
    pub meshd: PathBuf,
    /// More `meshd` arguments for every node.
    pub extra_args: Vec<String>,
    /// `--engines` of the first node when it differs (e.g. `none` for a pure entry node).
    pub first_engines: Option<String>,
    /// The key the nodes trust (the starting user's): written to `DIR/trust.yaml` as admin of
    /// every namespace with all host access (the process engine included), which every node
    /// is started with. `None`: the nodes' own default (their owner's key), or what
    /// `extra_args` says (`--trust-any`, `--trust-file`).
    pub trust_key: Option<libp2p::PeerId>,
}

/// The trust file of a testnet: `key` only, as admin with all host access.
pub fn trust_file(key: &libp2p::PeerId) -> String {
    format!(
        "# Written by meshctl testnet up: the nodes of this testnet run what this key signs,\n\
         # and nothing else.\n\
         keys:\n\
         - key: {key}\n  name: testnet operator\n  roles: [deploy, admin]\n  namespaces: [\"*\"]\n  \
         grants:\n    hostPaths: [/]\n    hostNetwork: true\n    hostPID: true\n    hostIPC: true\n    \
         privileged: true\n    capabilities: [ALL]\n    devices: [\"*\"]\n    processEngine: true\n"
    )
}

/// The `meshd` next to the running executable, else `meshd` on PATH.
pub fn default_meshd() -> PathBuf {
    std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("meshd"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("meshd"))
}

/// Default directory: `$TMPDIR/mesh-testnet`.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join("mesh-testnet")
}

/// Whether a process is running (and not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("meshd.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

fn start_node(
    opts: &Options,
    index: usize,
    bootstrap: &[String],
) -> anyhow::Result<(std::process::Child, PathBuf)> {
    let dir = opts.dir.join(format!("node-{index}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _ = std::fs::remove_file(dir.join(crate::identity::NODE_FILE));
    let log = std::fs::File::create(dir.join("meshd.log"))?;
    let mut cmd = Command::new(&opts.meshd);
    cmd.arg("--data-dir")
        .arg(&dir)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"]);
    let engines = match index {
        0 => opts.first_engines.as_ref().or(opts.engines.as_ref()),
        _ => opts.engines.as_ref(),
    };
    if let Some(engines) = engines {
        cmd.args(["--engines", engines]);
    }
    for b in bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    if opts.trust_key.is_some() {
        cmd.arg("--trust-file").arg(opts.dir.join(TRUST_FILE));
    }
    cmd.args(&opts.extra_args);
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Its own process group: the testnet outlives the meshctl that started it, and a Ctrl-C
    // in that terminal does not reach it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", opts.meshd.display()))?;
    Ok((child, dir))
}

fn wait_ready(child: &mut std::process::Child, dir: &Path) -> anyhow::Result<NodeFile> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Ok(file) = read_node_file(dir) {
            if file.pid == child.id() && !file.addresses.is_empty() {
                return Ok(file);
            }
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "meshd in {} exited ({status}): {}",
                dir.display(),
                log_tail(dir)
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "meshd in {} not ready within {START_TIMEOUT:?}: {}",
                dir.display(),
                log_tail(dir)
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Starts the testnet and returns once every node has written its `node.json`.
pub fn up(opts: &Options) -> anyhow::Result<Testnet> {
    if opts.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    std::fs::create_dir_all(&opts.dir)
        .with_context(|| format!("cannot create {}", opts.dir.display()))?;
    if let Ok(existing) = read(&opts.dir) {
        if existing.nodes.iter().any(|n| alive(n.pid)) {
            bail!(
                "a testnet is already running in {} (meshctl testnet down --dir {})",
                opts.dir.display(),
                opts.dir.display()
            );
        }
    }
    if let Some(key) = &opts.trust_key {
        std::fs::write(opts.dir.join(TRUST_FILE), trust_file(key))
            .with_context(|| format!("cannot write {}", opts.dir.join(TRUST_FILE).display()))?;
    }
    let mut nodes = Vec::with_capacity(opts.nodes);
    let record = |index: usize, dir: PathBuf, file: NodeFile| TestnetNode {
        index,
        dir,
        pid: file.pid,
        peer_id: file.peer_id,
        api_socket: PathBuf::from(file.api_socket),
        addresses: file.addresses,
    };
    let (mut first, dir0) = start_node(opts, 0, &[])?;
    let file0 = wait_ready(&mut first, &dir0)?;
    let seed = file0.addresses[0].clone();
    nodes.push(record(0, dir0, file0));
    // The rest start together, each bootstrapped to the first node.
    let mut started = Vec::new();
    for index in 1..opts.nodes {
        started.push((index, start_node(opts, index, std::slice::from_ref(&seed))?));
    }
    for (index, (mut child, dir)) in started {
        let file = wait_ready(&mut child, &dir)?;
        nodes.push(record(index, dir, file));
    }
    let testnet = Testnet {
        dir: opts.dir.clone(),
        nodes,
    };
    std::fs::write(
        opts.dir.join(TESTNET_FILE),
        serde_json::to_vec_pretty(&testnet)?,
    )?;
    Ok(testnet)
}

/// Reads `DIR/testnet.json`.
pub fn read(dir: &Path) -> anyhow::Result<Testnet> {
    let path = dir.join(TESTNET_FILE);
    let bytes = std::fs::read(&path)
        .with_context(|| format!("no testnet in {} (meshctl testnet up)", dir.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a testnet file", path.display()))
}

/// Stops every node (SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]) and removes the file.
/// Returns how many nodes were running.
pub fn down(dir: &Path) -> anyhow::Result<usize> {
    let testnet = read(dir)?;
    let running: Vec<u32> = testnet
        .nodes
        .iter()
        .map(|n| n.pid)
        .filter(|p| alive(*p))
        .collect();
    for pid in &running {
        signal(*pid, "-TERM");
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while running.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in running.iter().filter(|p| alive(**p)) {
        signal(*pid, "-KILL");
    }
    std::fs::remove_file(dir.join(TESTNET_FILE))?;
    Ok(running.len())
}

/// Kills one node with SIGKILL (tests of crash behaviour).
pub fn kill9(node: &TestnetNode) {
    signal(node.pid, "-KILL");
}
