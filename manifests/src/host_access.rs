//! The host access a manifest asks for (host namespaces, privileged containers, added
//! capabilities, devices), read from the raw document. The engines do not give any of it
//! (the fields also warn as not honoured); it is recorded on the spec so a node's trust
//! policy can refuse a workload whose signer is not granted it.

use mesh_protocol::spec::HostAccess;
use serde_yaml::Value;

use crate::node::MapNode;

fn is_true(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true)))
        || matches!(v, Some(Value::String(s)) if s.eq_ignore_ascii_case("true"))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(items)) => items.iter().filter_map(crate::node::scalar_text).collect(),
        Some(v) => crate::node::scalar_text(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// `NET_ADMIN`, `cap_net_admin` and `CAP_NET_ADMIN` are one capability: the name a spec
/// records, and what a node's trust file grants is compared in.
pub fn normalize_capability(name: &str) -> String {
    name.trim()
        .to_ascii_uppercase()
        .trim_start_matches("CAP_")
        .to_string()
}

/// A Kubernetes pod spec: `hostNetwork`, `hostPID`, `hostIPC`, and each container's
/// `securityContext` (`privileged`, `capabilities.add`).
pub(crate) fn pod(pod: &MapNode<'_>) -> HostAccess {
    let mut out = HostAccess {
        network: is_true(pod.map.get("hostNetwork")),
        pid: is_true(pod.map.get("hostPID")),
        ipc: is_true(pod.map.get("hostIPC")),
        ..HostAccess::default()
    };
    for list in ["containers", "initContainers"] {
        let Some(Value::Sequence(containers)) = pod.map.get(list) else {
            continue;
        };
        for c in containers {
            let Some(sc) = c.get("securityContext") else {
                continue;
            };
            out.privileged |= is_true(sc.get("privileged"));
            let added = strings(sc.get("capabilities").and_then(|c| c.get("add")));
            out.merge(HostAccess {
                capabilities: added.iter().map(|c| normalize_capability(c)).collect(),
                ..HostAccess::default()
            });
        }
    }
    out
}

/// A Compose service: `network_mode: host`, `pid: host`, `ipc: host`, `privileged`,
/// `cap_add`, `devices` (short `host:container[:perms]` or long `{source: …}` syntax).
pub(crate) fn compose_service(m: &MapNode<'_>) -> HostAccess {
    let is_host = |key: &str| matches!(m.map.get(key), Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("host"));
    let devices = match m.map.get("devices") {
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|d| match d {
                Value::Mapping(long) => long.get("source").and_then(crate::node::scalar_text),
                short => crate::node::scalar_text(short)
                    .map(|s| s.split(':').next().unwrap_or_default().to_string()),
            })
            .filter(|d| !d.is_empty())
            .collect(),
        _ => Vec::new(),
    };
    HostAccess {
        network: is_host("network_mode"),
        pid: is_host("pid"),
        ipc: is_host("ipc"),
        privileged: is_true(m.map.get("privileged")),
        capabilities: strings(m.map.get("cap_add"))
            .iter()
            .map(|c| normalize_capability(c))
            .collect(),
        devices,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::{parse, ParseOptions};

    #[test]
    fn a_pod_asking_for_host_namespaces_and_privileges_says_so() {
        let specs = parse(
            b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostNetwork: true\n  hostPID: true\n  containers:\n  - name: c\n    image: busybox\n    securityContext:\n      privileged: true\n      capabilities: {add: [NET_ADMIN, cap_sys_time]}\n",
            &ParseOptions::default(),
        )
        .unwrap();
        let host = &specs[0].host;
        assert!(host.network && host.pid && !host.ipc && host.privileged);
        assert_eq!(host.capabilities, ["NET_ADMIN", "SYS_TIME"]);
    }

    #[test]
    fn a_compose_service_asking_for_host_access_says_so() {
        let specs = parse(
            b"name: p\nservices:\n  a:\n    image: busybox\n    network_mode: host\n    ipc: host\n    cap_add: [SYS_ADMIN]\n    devices: ['/dev/fuse:/dev/fuse', {source: /dev/kvm, target: /dev/kvm}]\n",
            &ParseOptions::default(),
        )
        .unwrap();
        let host = &specs[0].host;
        assert!(host.network && host.ipc && !host.pid && !host.privileged);
        assert_eq!(host.capabilities, ["SYS_ADMIN"]);
        assert_eq!(host.devices, ["/dev/fuse", "/dev/kvm"]);
    }

    #[test]
    fn a_plain_workload_asks_for_nothing() {
        let specs = parse(
            b"name: p\nservices:\n  a:\n    image: busybox\n    privileged: false\n",
            &ParseOptions::default(),
        )
        .unwrap();
        assert!(specs[0].host.is_none());
    }
}
