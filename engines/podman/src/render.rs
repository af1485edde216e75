//! `WorkloadSpec` → the Kubernetes YAML given to `kube play`.
//!
//! One `v1 Pod` (a Deployment, DaemonSet or Job replica on this node is one pod), preceded by
//! a `ConfigMap` per ConfigMap and per Secret of `spec.config`, and a `PersistentVolumeClaim`
//! per named volume that does not exist yet. Podman 4.3 quirks shape it:
//!
//! - Secrets are rendered as ConfigMaps. Podman 4.3 stores a `kind: Secret` document in a
//!   format its own `secretKeyRef` cannot read, and writes secret volume files still
//!   base64-encoded. A ConfigMap gives exactly what a secret gives under Podman (plain
//!   environment values, a volume of plain files), so the values reach the container intact.
//! - ConfigMap, Secret and emptyDir volumes become Podman volumes named after the ConfigMap or
//!   pod volume, so those names start with the pod name (Podman names are host-global).
//! - `kube play` gives a container no default `PATH` when its image sets none (unlike
//!   `podman run`): such containers get the usual default.
//! - A liveness probe becomes a Podman health check by joining the exec command with spaces
//!   into a shell command, so the probe is rendered as one pre-quoted shell string.

mod container;

pub(crate) use container::shell_join;

use std::collections::{BTreeMap, BTreeSet};

use mesh_protocol::spec::{ConfigKind, RestartPolicy, VolumeSource};
use mesh_protocol::{WorkloadKind, WorkloadSpec};
use serde_json::{json, Map, Value};

use crate::names::{dns_label, Labels};

/// `PATH` given to containers whose image defines none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the YAML is rendered from, besides the spec.
#[derive(Debug)]
pub struct Plan<'a> {
    pub spec: &'a WorkloadSpec,
    pub labels: &'a Labels,
    /// Named volumes that do not exist yet: rendered as claims so that Podman creates them
    /// with the workload's labels. Existing ones are used as they are and never removed.
    pub new_claims: &'a BTreeSet<String>,
    /// Images whose configuration sets no `PATH`.
    pub images_without_path: &'a BTreeSet<String>,
}

/// The YAML and the names of what playing it creates.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub yaml: String,
    /// ConfigMaps of the YAML; Podman backs each mounted one with a volume of that name.
    pub configmaps: Vec<String>,
    /// Named volumes the YAML creates (its claims).
    pub claims: Vec<String>,
    /// Podman names of the containers, `<pod>-<container>`, init containers first.
    pub containers: Vec<String>,
}

/// Name of the ConfigMap that carries a ConfigMap or Secret of the workload.
pub fn config_name(pod: &str, kind: ConfigKind, name: &str) -> String {
    let tag = match kind {
        ConfigKind::ConfigMap => "cm",
        ConfigKind::Secret => "secret",
    };
    // Kubernetes object names are DNS subdomains: keep their dots, so that distinct names
    // stay distinct.
    let safe: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '.' | '-') => c,
            _ => '-',
        })
        .collect();
    format!("{pod}-{tag}-{safe}")
}

/// Names shared by the pod and its containers while rendering.
struct Scope<'a> {
    spec: &'a WorkloadSpec,
    pod: &'a str,
    /// Spec volume name → pod volume name; `None` for volumes the mesh cannot provide.
    volumes: BTreeMap<&'a str, Option<String>>,
    images_without_path: &'a BTreeSet<String>,
}

impl Scope<'_> {
    fn config(&self, kind: ConfigKind, name: &str) -> Option<&mesh_protocol::spec::ConfigObject> {
        self.spec
            .config
            .iter()
            .find(|c| c.kind == kind && c.name == name)
    }
}

/// Renders the multi-document YAML for `kube play`.
pub fn render(plan: &Plan<'_>) -> Result<Rendered, String> {
    let spec = plan.spec;
    if !matches!(
        spec.kind,
        WorkloadKind::Pod | WorkloadKind::Deployment | WorkloadKind::Job | WorkloadKind::DaemonSet
    ) {
        return Err(format!("podman cannot run a {} as a pod", spec.kind));
    }
    if spec.containers.is_empty() {
        return Err(format!("{} has no containers", spec.id()));
    }
    let pod = plan.labels.pod.as_str();
    let mut docs = Vec::new();
    let mut configmaps = Vec::new();
    for object in &spec.config {
        let name = config_name(pod, object.kind, &object.name);
        docs.push(configmap_doc(&name, object, plan.labels));
        configmaps.push(name);
    }
    let mut claims = Vec::new();
    for volume in &spec.volumes {
        if matches!(volume.source, VolumeSource::Named { .. })
            && plan.new_claims.contains(&volume.name)
        {
            docs.push(json!({
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": volume.name, "labels": plan.labels.volume_labels()},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }));
            claims.push(volume.name.clone());
        }
    }

    let mut scope = Scope {
        spec,
        pod,
        volumes: BTreeMap::new(),
        images_without_path: plan.images_without_path,
    };
    let mut pod_volumes = Vec::new();
    let mut used = BTreeSet::new();
    for volume in &spec.volumes {
        let Some(source) = volume_source(&scope, &volume.name, &volume.source)? else {
            scope.volumes.insert(&volume.name, None);
            continue;
        };
        let mut name = format!("{pod}-{}", dns_label(&volume.name, 63));
        if !used.insert(name.clone()) {
            name = format!("{name}-{}", pod_volumes.len());
            used.insert(name.clone());
        }
        let mut entry = Map::new();
        entry.insert("name".into(), Value::String(name.clone()));
        entry.extend(source);
        pod_volumes.push(Value::Object(entry));
        scope.volumes.insert(&volume.name, Some(name));
    }

    let mut names = BTreeSet::new();
    let mut containers = Vec::new();
    let mut render_all =
        |list: &[mesh_protocol::spec::Container], probes: bool| -> Result<Vec<Value>, String> {
            list.iter()
                .map(|c| {
                    let mut name = dns_label(&c.name, 63);
                    if !names.insert(name.clone()) {
                        name = format!("{name}-{}", names.len());
                        names.insert(name.clone());
                    }
                    containers.push(format!("{pod}-{name}"));
                    container::render(&scope, c, &name, probes)
                })
                .collect()
        };
    let init = render_all(&spec.init_containers, false)?;
    let main = render_all(&spec.containers, true)?;

    let mut pod_spec = Map::new();
    pod_spec.insert("restartPolicy".into(), json!(restart_policy(spec)));
    if !init.is_empty() {
        pod_spec.insert("initContainers".into(), Value::Array(init));
    }
    pod_spec.insert("containers".into(), Value::Array(main));
    if !pod_volumes.is_empty() {
        pod_spec.insert("volumes".into(), Value::Array(pod_volumes));
    }
    let mut labels: BTreeMap<String, String> = spec.labels.clone();
    labels.extend(plan.labels.pod_labels());
    docs.push(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod, "labels": labels},
        "spec": pod_spec,
    }));

    let mut yaml = String::new();
    for doc in &docs {
        let text = serde_yaml::to_string(doc).map_err(|e| format!("cannot render YAML: {e}"))?;
        if !yaml.is_empty() {
            yaml.push_str("---\n");
        }
        yaml.push_str(&text);
    }
    Ok(Rendered {
        yaml,
        configmaps,
        claims,
        containers,
    })
}

/// Kubernetes restart policy of the pod. Run-to-completion workloads only allow `Never` and
/// `OnFailure`, as in a Kubernetes Job.
fn restart_policy(spec: &WorkloadSpec) -> &'static str {
    let completes = spec.runs_to_completion() || spec.kind == WorkloadKind::Job;
    match (completes, spec.restart_policy) {
        (true, RestartPolicy::OnFailure) => "OnFailure",
        (true, _) => "Never",
        (false, RestartPolicy::Always | RestartPolicy::UnlessStopped) => "Always",
        (false, RestartPolicy::OnFailure) => "OnFailure",
        (false, RestartPolicy::Never) => "Never",
    }
}

fn configmap_doc(name: &str, object: &mesh_protocol::spec::ConfigObject, labels: &Labels) -> Value {
    let mut data = BTreeMap::new();
    let mut binary = BTreeMap::new();
    for (key, value) in &object.data {
        if object.binary_keys.contains(key) {
            binary.insert(key, value);
        } else {
            data.insert(key, value);
        }
    }
    let mut doc = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels.pod_labels()},
        "data": data,
    });
    if !binary.is_empty() {
        doc["binaryData"] = json!(binary);
    }
    doc
}

/// The source part of a pod volume, or `None` for a volume the mesh cannot provide (the
/// parser already warned; its mounts are left out).
fn volume_source(
    scope: &Scope<'_>,
    name: &str,
    source: &VolumeSource,
) -> Result<Option<Map<String, Value>>, String> {
    let (key, value) = match source {
        VolumeSource::Ephemeral { memory: false } => ("emptyDir", json!({})),
        VolumeSource::Ephemeral { memory: true } => ("emptyDir", json!({"medium": "Memory"})),
        VolumeSource::HostPath { path } => ("hostPath", json!({"path": path})),
        VolumeSource::Named { .. } => ("persistentVolumeClaim", json!({"claimName": name})),
        VolumeSource::ConfigMap { name: cm } | VolumeSource::Secret { name: cm } => {
            let kind = match source {
                VolumeSource::Secret { .. } => ConfigKind::Secret,
                _ => ConfigKind::ConfigMap,
            };
            if scope.config(kind, cm).is_none() {
                return Err(format!(
                    "volume {name:?} uses {kind:?} {cm:?}, which is not in the workload's file"
                ));
            }
            (
                "configMap",
                json!({"name": config_name(scope.pod, kind, cm)}),
            )
        }
        VolumeSource::Unsupported { .. } => return Ok(None),
    };
    Ok(Some(Map::from_iter([(key.to_string(), value)])))
}

#[cfg(test)]
mod tests;
