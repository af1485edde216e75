//! The trust file (`meshd --trust-file`): which keys this node accepts, in which roles and
//! namespaces, with what host access, and the node's own limits. YAML; unknown keys are
//! refused so that a typo never silently grants or drops a rule.
//!
//! ```yaml
//! keys:
//!   - key: 12D3KooW…            # `meshctl key show` prints it
//!     name: ops                  # shown in refusals
//!     roles: [admin]             # deploy: create and change its own workloads;
//!                                # admin: also change or delete anyone's
//!     namespaces: ["*"]          # default: [default]
//!     grants:                    # host access this key may ask for (default: none)
//!       hostPaths: [/srv/data]   # hostPath volumes and bind mounts under these only
//!       hostNetwork: false
//!       hostPID: false
//!       hostIPC: false
//!       privileged: false
//!       capabilities: [NET_BIND_SERVICE]   # or [ALL]
//!       devices: [/dev/fuse]     # or ["*"]
//!       processEngine: false     # run native commands (the process engine)
//! node:
//!   engines: {allow: [podman, wasm], deny: [docker]}
//!   maxCpu: "2"                  # per workload; a workload must state limits within it
//!   maxMemory: 4Gi
//! replay:
//!   maxSkew: 5m                  # how far a request's clock may be from this node's
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use libp2p::PeerId;
use serde::Deserialize;

use super::{Grant, HostGrant, Policy, Role};

/// Default clock skew allowed between a request's signer and this node.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
    #[serde(default)]
    node: NodeRules,
    #[serde(default)]
    replay: ReplayRules,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    key: String,
    #[serde(default)]
    name: Option<String>,
    roles: Vec<Role>,
    #[serde(default)]
    namespaces: Option<Vec<String>>,
    #[serde(default)]
    grants: Grants,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Grants {
    #[serde(default)]
    host_paths: Vec<String>,
    #[serde(default)]
    host_network: bool,
    #[serde(default, rename = "hostPID")]
    host_pid: bool,
    #[serde(default, rename = "hostIPC")]
    host_ipc: bool,
    #[serde(default)]
    privileged: bool,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    devices: Vec<String>,
    #[serde(default)]
    process_engine: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NodeRules {
    #[serde(default)]
    engines: EngineRules,
    #[serde(default)]
    max_cpu: Option<serde_yaml::Value>,
    #[serde(default)]
    max_memory: Option<serde_yaml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineRules {
    #[serde(default)]
    allow: Option<Vec<String>>,
    #[serde(default)]
    deny: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReplayRules {
    #[serde(default)]
    max_skew: Option<String>,
}

/// Reads and checks a trust file. Every error names the file and the entry.
pub fn load(path: &Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the trust file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| anyhow::anyhow!("trust file {}: {e}", path.display()))
}

fn scalar(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses a trust file's text.
pub fn parse(text: &str) -> anyhow::Result<Policy> {
    use anyhow::{anyhow, bail};
    let file: TrustFile = serde_yaml::from_str(text).map_err(|e| anyhow!("{e}"))?;
    let mut keys = HashMap::new();
    for (i, entry) in file.keys.into_iter().enumerate() {
        let at = format!("keys[{i}]");
        let peer: PeerId = entry.key.trim().parse().map_err(|e| {
            anyhow!(
                "{at}.key {:?} is not a key id (meshctl key show prints one): {e}",
                entry.key
            )
        })?;
        if entry.roles.is_empty() {
            bail!("{at}.roles is empty: give deploy or admin");
        }
        let namespaces = entry
            .namespaces
            .unwrap_or_else(|| vec![mesh_protocol::spec::DEFAULT_NAMESPACE.to_string()]);
        if namespaces.is_empty() {
            bail!("{at}.namespaces is empty: list namespaces, or \"*\" for all");
        }
        for p in &entry.grants.host_paths {
            if !p.starts_with('/') || p.split('/').any(|c| c == "..") {
                bail!("{at}.grants.hostPaths: {p:?} is not an absolute path without '..'");
            }
        }
        let grant = Grant {
            name: entry.name.unwrap_or_else(|| at.clone()),
            entry: at.clone(),
            roles: entry.roles.into_iter().collect::<BTreeSet<_>>(),
            namespaces,
            host: HostGrant {
                host_paths: entry.grants.host_paths,
                network: entry.grants.host_network,
                pid: entry.grants.host_pid,
                ipc: entry.grants.host_ipc,
                privileged: entry.grants.privileged,
                capabilities: entry
                    .grants
                    .capabilities
                    .iter()
                    .map(|c| mesh_manifests::normalize_capability(c))
                    .collect(),
                devices: entry.grants.devices,
                process_engine: entry.grants.process_engine,
            },
        };
        if keys.insert(peer, grant).is_some() {
            bail!("{at}.key {peer} is listed twice");
        }
    }
    let max_cpu_millis = match &file.node.max_cpu {
        None => None,
        Some(v) => {
            let s = scalar(v)
                .ok_or_else(|| anyhow!("node.maxCpu must be a quantity like 2 or 500m"))?;
            Some(
                mesh_manifests::quantity::parse_cpu_millis(&s)
                    .map_err(|e| anyhow!("node.maxCpu {s:?}: {e}"))?,
            )
        }
    };
    let max_memory_bytes = match &file.node.max_memory {
        None => None,
        Some(v) => {
            let s =
                scalar(v).ok_or_else(|| anyhow!("node.maxMemory must be a quantity like 512Mi"))?;
            Some(
                mesh_manifests::quantity::parse_memory_bytes(&s)
                    .map_err(|e| anyhow!("node.maxMemory {s:?}: {e}"))?,
            )
        }
    };
    let max_skew = match &file.replay.max_skew {
        None => DEFAULT_MAX_SKEW,
        Some(s) => humantime::parse_duration(s)
            .map_err(|e| anyhow!("replay.maxSkew {s:?}: {e} (e.g. 5m, 90s)"))?,
    };
    let engine = |n: &String| n.trim().to_ascii_lowercase();
    Ok(Policy {
        any: false,
        keys,
        engines: mesh_runtime::select::Policy {
            allowed: file
                .node
                .engines
                .allow
                .map(|a| a.iter().map(engine).collect()),
            denied: file.node.engines.deny.iter().map(engine).collect(),
        },
        max_cpu_millis,
        max_memory_bytes,
        max_skew,
    })
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
