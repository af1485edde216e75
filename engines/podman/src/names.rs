//! Names and labels of the Podman objects an instance consists of.
//!
//! Podman object names are global on a host, so every name an instance creates starts with
//! its pod name, and the pod name embeds the workload version: two versions of a workload (old
//! and new during an update) never share an object.
//!
//! Label values follow the Kubernetes rules where they can (no `/`, alphanumeric at both ends,
//! at most 63 characters); see [`Labels`] for the encoding of each value.

use std::collections::BTreeMap;

use mesh_protocol::WorkloadSpec;
use mesh_runtime::InstallContext;

/// `"true"` on every object the engine creates.
pub const LABEL_MANAGED: &str = "beemesh.io/managed";
/// Always `podman`.
pub const LABEL_ENGINE: &str = "beemesh.io/engine";
/// `<namespace>.<name>` of the workload.
pub const LABEL_WORKLOAD: &str = "beemesh.io/workload";
/// First 63 hex digits of the workload version.
pub const LABEL_VERSION: &str = "beemesh.io/version";
/// Node id of the node that installed the instance.
pub const LABEL_NODE: &str = "beemesh.io/node";
/// Pod name of the instance: what `remove` cleans up by.
pub const LABEL_INSTANCE: &str = "beemesh.io/instance";

/// Longest Kubernetes label value and DNS label (pod names double as host names).
const MAX_LABEL: usize = 63;

/// Lower-case DNS label: `[a-z0-9-]`, alphanumeric at both ends, at most `max` characters,
/// never empty.
pub fn dns_label(input: &str, max: usize) -> String {
    let mapped: String = input
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let mut out = String::with_capacity(mapped.len());
    for c in mapped.chars() {
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    let trimmed: String = out.trim_matches('-').chars().take(max).collect();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    if trimmed.is_empty() {
        "x".to_string()
    } else {
        trimmed
    }
}

/// A label value: `[A-Za-z0-9._-]`, alphanumeric at both ends, at most 63 characters.
pub fn label_value(input: &str) -> String {
    let mapped: String = input
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '-',
        })
        .take(MAX_LABEL)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// Hex digits of a `sha256:<hex>` version (the whole string when it has no prefix).
fn version_hex(version: &str) -> &str {
    version.strip_prefix("sha256:").unwrap_or(version)
}

/// `mesh-<name>-<first 8 hex of version>`, plus `-r<N>` for replica N > 0, as a DNS label.
pub fn pod_name(spec: &WorkloadSpec, replica: u32) -> String {
    let hex: String = version_hex(&spec.version)
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    let hex = if hex.is_empty() { "0".to_string() } else { hex };
    let suffix = match replica {
        0 => format!("-{hex}"),
        n => format!("-{hex}-r{n}"),
    };
    let budget = MAX_LABEL - "mesh-".len() - suffix.len();
    format!("mesh-{}{suffix}", dns_label(&spec.name, budget))
}

/// The `beemesh.io/workload` value: `<namespace>.<name>`. Label values cannot hold the `/` of
/// a workload id; a namespace is a DNS label and never contains `.`, so the first `.` splits
/// the value back into namespace and name. Kept whole even beyond 63 characters (Podman does
/// not limit label length, and filters need the exact value).
pub fn workload_label(spec: &WorkloadSpec) -> String {
    format!("{}.{}", spec.namespace, spec.name)
}

/// The label set of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    pub pod: String,
    pub workload: String,
    pub version: String,
    pub node: String,
}

impl Labels {
    pub fn new(spec: &WorkloadSpec, ctx: &InstallContext) -> Self {
        Self {
            pod: pod_name(spec, ctx.replica),
            workload: workload_label(spec),
            version: label_value(version_hex(&spec.version)),
            node: label_value(&ctx.node),
        }
    }

    /// Labels of the pod (and, through Podman, of its containers).
    pub fn pod_labels(&self) -> BTreeMap<String, String> {
        let mut m = self.volume_labels();
        m.insert(LABEL_VERSION.into(), self.version.clone());
        m.insert(LABEL_NODE.into(), self.node.clone());
        m.insert(LABEL_INSTANCE.into(), self.pod.clone());
        m
    }

    /// Labels of named volumes the instance creates. They carry no instance or version: a
    /// named volume outlives the version that created it and is shared by the next one.
    pub fn volume_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_ENGINE.to_string(), crate::NAME.to_string()),
            (LABEL_WORKLOAD.to_string(), self.workload.clone()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use mesh_protocol::spec::SourceFormat;
    use mesh_protocol::WorkloadKind;

    use super::*;

    fn spec(name: &str) -> WorkloadSpec {
        WorkloadSpec::new(name, "team-a", WorkloadKind::Pod, SourceFormat::Kubernetes).seal()
    }

    #[test]
    fn dns_labels_are_lower_case_and_trimmed() {
        assert_eq!(dns_label("My_App.v2", 63), "my-app-v2");
        assert_eq!(dns_label("--a--b--", 63), "a-b");
        assert_eq!(dns_label("...", 63), "x");
        assert_eq!(dns_label("abcdef-ghi", 7), "abcdef");
    }

    #[test]
    fn pod_name_embeds_name_version_and_replica() {
        let s = spec("web.front");
        let name = pod_name(&s, 0);
        assert_eq!(name, format!("mesh-web-front-{}", &s.version[7..15]));
        assert_eq!(pod_name(&s, 2), format!("{name}-r2"));
        let long = spec(&"a".repeat(200));
        assert!(pod_name(&long, 12).len() <= 63);
    }

    #[test]
    fn label_values_follow_kubernetes_rules() {
        let s = spec("web");
        let ctx = InstallContext {
            node: "12D3Koo/node:1".into(),
            replica: 0,
        };
        let labels = Labels::new(&s, &ctx);
        assert_eq!(labels.workload, "team-a.web");
        assert_eq!(labels.version.len(), 63);
        assert_eq!(labels.node, "12D3Koo-node-1");
        let all = labels.pod_labels();
        assert_eq!(all[LABEL_MANAGED], "true");
        assert_eq!(all[LABEL_ENGINE], "podman");
        assert_eq!(all[LABEL_INSTANCE], labels.pod);
        assert!(all.values().all(|v| !v.contains('/')));
        assert!(!labels.volume_labels().contains_key(LABEL_INSTANCE));
    }
}
