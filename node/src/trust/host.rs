//! What a workload asks of the host, checked against the signer's grant and the node's own
//! rules before anything is written or started.

use libp2p::PeerId;
use mesh_protocol::spec::VolumeSource;
use mesh_protocol::{annotations, WorkloadSpec};

use super::{Grant, Policy, Refusal};

/// The WASM engine's memory limit when a Function states none (see `mesh-engine-wasm`).
const WASM_DEFAULT_MEMORY: u64 = mesh_engine_wasm::spec::DEFAULT_MEMORY_LIMIT_BYTES;

/// Whether `path` lies under `prefix`, component by component (`/srv` covers `/srv/a`, not
/// `/srvx`). A relative path, or one with `..`, lies under `/` only.
pub(crate) fn under(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
        return false;
    }
    let norm = |p: &str| -> Vec<String> {
        p.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect()
    };
    let (path, prefix) = (norm(path), norm(prefix));
    path.len() >= prefix.len() && path[..prefix.len()] == prefix[..]
}

/// The engine a workload names, if it names one.
fn named_engine(spec: &WorkloadSpec) -> Option<String> {
    spec.annotation(annotations::RUNTIME_ENGINE)
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
}

/// Host access: each thing asked must be granted to the signer.
pub(crate) fn check_grant(spec: &WorkloadSpec, key: &PeerId, grant: &Grant) -> Result<(), Refusal> {
    let refuse = |what: String, rule: &str| Refusal::HostAccess {
        id: spec.id(),
        key: *key,
        name: grant.name.clone(),
        what,
        rule: format!("{}.grants.{rule}", grant.entry),
    };
    let g = &grant.host;
    for v in &spec.volumes {
        if let VolumeSource::HostPath { path } = &v.source {
            if !g.host_paths.iter().any(|p| under(path, p)) {
                let granted = if g.host_paths.is_empty() {
                    "none".to_string()
                } else {
                    g.host_paths.join(", ")
                };
                return Err(refuse(
                    format!("host path {path} (volume {}; granted: {granted})", v.name),
                    "hostPaths",
                ));
            }
        }
    }
    let h = &spec.host;
    if h.network && !g.network {
        return Err(refuse("the host network".into(), "hostNetwork"));
    }
    if h.pid && !g.pid {
        return Err(refuse("the host PID namespace".into(), "hostPID"));
    }
    if h.ipc && !g.ipc {
        return Err(refuse("the host IPC namespace".into(), "hostIPC"));
    }
    if h.privileged && !g.privileged {
        return Err(refuse("privileged containers".into(), "privileged"));
    }
    for c in &h.capabilities {
        if !g.capabilities.contains("ALL") && !g.capabilities.contains(c) {
            return Err(refuse(format!("capability {c}"), "capabilities"));
        }
    }
    for d in &h.devices {
        if !g.devices.iter().any(|p| p == "*" || p == d) {
            return Err(refuse(format!("device {d}"), "devices"));
        }
    }
    if named_engine(spec).as_deref() == Some("process") && !g.process_engine {
        return Err(refuse(
            "the process engine (native commands)".into(),
            "processEngine",
        ));
    }
    Ok(())
}

/// A workload's limits, summed over its containers (`None`: some part is unlimited).
fn limits(spec: &WorkloadSpec) -> (Option<u64>, Option<u64>) {
    if named_engine(spec).as_deref() == Some("process") {
        return (None, None); // the process engine sets no limits
    }
    if let Some(m) = &spec.module {
        return (
            Some(1000),
            Some(m.memory_bytes.unwrap_or(WASM_DEFAULT_MEMORY)),
        );
    }
    if let Some(vm) = &spec.vm {
        return (vm.vcpus.map(|v| u64::from(v) * 1000), vm.memory_bytes);
    }
    let sum = |f: fn(&mesh_protocol::spec::Container) -> Option<u64>| {
        spec.containers
            .iter()
            .map(f)
            .try_fold(0u64, |acc, x| x.map(|x| acc.saturating_add(x)))
    };
    (
        sum(|c| c.resources.limits.cpu_millis),
        sum(|c| c.resources.limits.memory_bytes),
    )
}

/// The node's own caps per workload. (Its engine lists apply at selection: a denied engine
/// is never chosen, and a strict annotation naming one fails there, recorded as an event.)
pub(crate) fn check_node(spec: &WorkloadSpec, policy: &Policy) -> Result<(), Refusal> {
    let refuse = |message: String| Refusal::Node {
        id: spec.id(),
        message,
    };
    let (cpu, memory) = limits(spec);
    if let Some(cap) = policy.max_cpu_millis {
        match cpu {
            None => return Err(refuse(format!(
                "this node caps a workload at {cap}m CPU (trust file: node.maxCpu); state a CPU \
                 limit for every container (resources.limits.cpu, Compose deploy.resources.limits.cpus)"
            ))),
            Some(c) if c > cap => return Err(refuse(format!(
                "asks for {c}m CPU; this node caps a workload at {cap}m (trust file: node.maxCpu)"
            ))),
            Some(_) => {}
        }
    }
    if let Some(cap) = policy.max_memory_bytes {
        match memory {
            None => {
                return Err(refuse(format!(
                "this node caps a workload at {cap} bytes of memory (trust file: node.maxMemory); \
                 state a memory limit for every container (resources.limits.memory, Compose \
                 deploy.resources.limits.memory)"
            )))
            }
            Some(m) if m > cap => {
                return Err(refuse(format!(
                "asks for {m} bytes of memory; this node caps a workload at {cap} (trust file: \
                 node.maxMemory)"
            )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::under;

    #[test]
    fn host_paths_match_by_component() {
        assert!(under("/srv/data/x", "/srv/data"));
        assert!(under("/srv/data", "/srv/data/"));
        assert!(!under("/srv/database", "/srv/data"));
        assert!(!under("/", "/srv"));
        assert!(!under("/srv/data/../../etc", "/srv/data"));
        assert!(!under("data", "/srv"));
        assert!(under("/etc", "/"));
    }
}
