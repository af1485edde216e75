//! Names and labels of everything the engine creates.
//!
//! Labels are the engine's source of truth: an instance can be found, started, inspected and
//! removed from its labels alone, so a node that lost its handles (or a half-finished
//! install) never leaks containers, networks or volumes.

use std::collections::HashMap;

use mesh_protocol::spec::DependencyCondition;
use mesh_protocol::WorkloadSpec;

/// `true` on every object the mesh created.
pub const MANAGED: &str = "beemesh.io/managed";
/// Registry name of the engine that created the object (`docker`, `podman`).
pub const ENGINE: &str = "beemesh.io/engine";
/// `namespace/name` of the workload.
pub const WORKLOAD: &str = "beemesh.io/workload";
/// The workload's `sha256:` version.
pub const VERSION: &str = "beemesh.io/version";
/// Node id of the node that installed it.
pub const NODE: &str = "beemesh.io/node";
/// Container name inside the workload (Compose service, Kubernetes container).
pub const SERVICE: &str = "beemesh.io/service";
/// The instance (project) name: what `Handle::instance` holds.
pub const INSTANCE: &str = "beemesh.io/instance";
/// `init` for Kubernetes init containers, `main` for the others.
pub const ROLE: &str = "beemesh.io/role";
/// Start position within the role (init containers run in this order; main containers start
/// in this order, which is a topological order of `depends_on`).
pub const ORDER: &str = "beemesh.io/order";
/// Compose `depends_on` of the service, `service=condition` comma-separated.
pub const DEPENDS_ON: &str = "beemesh.io/depends-on";
/// On volumes: `instance` (dies with the instance) or `workload` (shared by every instance
/// of the workload on this node, removed when no container uses it any more).
pub const VOLUME_SCOPE: &str = "beemesh.io/volume-scope";
/// `true` on containers of run-to-completion workloads (Jobs).
pub const JOB: &str = "beemesh.io/job";

pub const ROLE_INIT: &str = "init";
pub const ROLE_MAIN: &str = "main";
pub const SCOPE_INSTANCE: &str = "instance";
pub const SCOPE_WORKLOAD: &str = "workload";

/// Lower-case, `[a-z0-9_.-]` only, starting with an alphanumeric: valid in container,
/// network and volume names and as a DNS label.
pub fn sanitise(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let trimmed = trimmed.trim_end_matches('-');
    if trimmed.is_empty() {
        "x".to_string()
    } else {
        trimmed.to_string()
    }
}

/// The version the engine labels and names objects with: `spec.version`, or the computed
/// one when the spec was not sealed.
pub fn version_of(spec: &WorkloadSpec) -> String {
    if spec.version.is_empty() {
        spec.compute_version()
    } else {
        spec.version.clone()
    }
}

/// First 8 hex digits of a version.
pub fn ver8(version: &str) -> &str {
    let hex = version.strip_prefix("sha256:").unwrap_or(version);
    &hex[..hex.len().min(8)]
}

/// `mesh-<name>-<ver8>`, with `-r<replica>` for the second and later replicas on a node so
/// that several replicas of one version never share names. It names the network too.
pub fn project_name(spec: &WorkloadSpec, replica: u32) -> String {
    let version = version_of(spec);
    let base = format!("mesh-{}-{}", sanitise(&spec.name), ver8(&version));
    if replica == 0 {
        base
    } else {
        format!("{base}-r{replica}")
    }
}

/// `<project>-<service>-<index>`.
pub fn container_name(project: &str, service: &str, index: u32) -> String {
    format!("{project}-{}-{index}", sanitise(service))
}

/// Volumes owned by one instance (`emptyDir`, anonymous volumes).
pub fn instance_volume_name(project: &str, volume: &str) -> String {
    format!("{project}-{}", sanitise(volume))
}

/// Named volumes, shared by every version of the workload on this node so that data
/// survives an update (as Compose keeps `<project>_<volume>` across `up`s).
pub fn workload_volume_name(spec: &WorkloadSpec, volume: &str) -> String {
    format!(
        "mesh-{}-{}-{}",
        sanitise(&spec.namespace),
        sanitise(&spec.name),
        sanitise(volume)
    )
}

/// Labels common to every object of one instance.
pub fn base(
    engine: &str,
    spec: &WorkloadSpec,
    node: &str,
    project: &str,
) -> HashMap<String, String> {
    HashMap::from([
        (MANAGED.to_string(), "true".to_string()),
        (ENGINE.to_string(), engine.to_string()),
        (WORKLOAD.to_string(), spec.id().to_string()),
        (VERSION.to_string(), version_of(spec)),
        (NODE.to_string(), node.to_string()),
        (INSTANCE.to_string(), project.to_string()),
    ])
}

/// `label=k=v` filters for list calls.
pub fn filters(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let labels = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    HashMap::from([("label".to_string(), labels)])
}

/// Whether `labels` carry every one of `pairs`. What a label-filtered list answers is checked
/// with it again: Podman 4's Docker-compatible API treats several `label` filters of a volume
/// list as alternatives (any one matches), so it lists other instances' volumes too.
pub fn matches(labels: &HashMap<String, String>, pairs: &[(&str, &str)]) -> bool {
    pairs
        .iter()
        .all(|(k, v)| labels.get(*k).is_some_and(|l| l == v))
}

pub fn condition_str(c: DependencyCondition) -> &'static str {
    match c {
        DependencyCondition::ServiceStarted => "service_started",
        DependencyCondition::ServiceHealthy => "service_healthy",
        DependencyCondition::ServiceCompletedSuccessfully => "service_completed_successfully",
    }
}

fn parse_condition(s: &str) -> DependencyCondition {
    match s {
        "service_healthy" => DependencyCondition::ServiceHealthy,
        "service_completed_successfully" => DependencyCondition::ServiceCompletedSuccessfully,
        _ => DependencyCondition::ServiceStarted,
    }
}

/// Parses the [`DEPENDS_ON`] label.
pub fn parse_depends_on(value: &str) -> Vec<(String, DependencyCondition)> {
    value
        .split(',')
        .filter_map(|item| {
            let (service, condition) = item.split_once('=')?;
            Some((service.to_string(), parse_condition(condition)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_protocol::spec::SourceFormat;
    use mesh_protocol::WorkloadKind;

    #[test]
    fn names_are_sanitised_and_versioned() {
        assert_eq!(sanitise("My_App!!x"), "my_app-x");
        assert_eq!(sanitise("--a"), "a");
        assert_eq!(sanitise("%%"), "x");
        let spec = WorkloadSpec::new(
            "Web App",
            "default",
            WorkloadKind::Compose,
            SourceFormat::Compose,
        )
        .seal();
        let project = project_name(&spec, 0);
        assert!(project.starts_with("mesh-web-app-"));
        assert_eq!(project.len(), "mesh-web-app-".len() + 8);
        assert_eq!(project_name(&spec, 2), format!("{project}-r2"));
        assert_eq!(container_name(&project, "db", 1), format!("{project}-db-1"));
    }

    #[test]
    fn depends_on_label_round_trips() {
        let parsed = parse_depends_on(
            "db=service_healthy,init=service_completed_successfully,x=service_started",
        );
        assert_eq!(
            parsed,
            vec![
                ("db".to_string(), DependencyCondition::ServiceHealthy),
                (
                    "init".to_string(),
                    DependencyCondition::ServiceCompletedSuccessfully
                ),
                ("x".to_string(), DependencyCondition::ServiceStarted),
            ]
        );
        assert!(parse_depends_on("").is_empty());
    }
}
