//! Object metadata shared by Kubernetes and beemesh.io/v1 (name, namespace, labels,
//! annotations), and what every format does last: warn about misspelt `beemesh.io/`
//! annotations and apply the `beemesh.io/resources.*` overrides.

use std::collections::BTreeMap;

use mesh_protocol::annotations::{self, KNOWN};
use mesh_protocol::spec::{WorkloadSpec, DEFAULT_NAMESPACE};

use crate::names::{check_dns_label, check_label_value, check_qualified_key, closest};
use crate::node::{MapNode, Node, Path, Result, Warnings};
use crate::quantity;

/// Annotations with the path each value came from, so that a bad value is reported where
/// it was written (object metadata, pod template, Compose label or `x-beemesh`).
#[derive(Debug, Default)]
pub(crate) struct Annotations(BTreeMap<String, (String, Path)>);

impl Annotations {
    /// Sets `key`; a later source wins.
    pub(crate) fn insert(&mut self, key: String, value: String, path: Path) {
        self.0.insert(key, (value, path));
    }

    /// Reads a `key: value` mapping of annotations.
    pub(crate) fn extend_from(&mut self, node: &Node<'_>) -> Result<()> {
        for (key, value) in node.map()?.entries()? {
            check_qualified_key(key).map_err(|m| value.err(m))?;
            let text = value.str_or_empty()?.to_string();
            self.insert(key.to_string(), text, value.path);
        }
        Ok(())
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|(v, _)| v.as_str())
    }
}

/// `metadata` of a Kubernetes or beemesh.io/v1 object.
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) annotations: Annotations,
}

/// Reads `metadata` of `object`: a valid name is required, the namespace defaults to
/// `default`.
pub(crate) fn parse(object: &MapNode<'_>) -> Result<Meta> {
    let meta = object.req("metadata")?.map()?;
    let name = match meta.get("name") {
        Some(node) => {
            let name = node.str()?;
            check_dns_label(name).map_err(|m| node.err(m))?;
            name.to_string()
        }
        None if meta.has("generateName") => {
            return Err(meta
                .path
                .key("name")
                .err("missing (generateName is not supported: the mesh needs a fixed name)"))
        }
        None => return Err(meta.path.key("name").err("missing")),
    };
    let namespace = match meta.get("namespace") {
        Some(node) => {
            let ns = node.str()?;
            check_dns_label(ns).map_err(|m| node.err(m))?;
            ns.to_string()
        }
        None => DEFAULT_NAMESPACE.to_string(),
    };
    let mut parsed = Meta {
        name,
        namespace,
        labels: BTreeMap::new(),
        annotations: Annotations::default(),
    };
    merge_labels_and_annotations(&mut parsed, &meta)?;
    Ok(parsed)
}

/// Adds `labels` and `annotations` of a metadata mapping (a pod template's wins over the
/// object's, as it is read later).
pub(crate) fn merge_labels_and_annotations(into: &mut Meta, meta: &MapNode<'_>) -> Result<()> {
    if let Some(node) = meta.get("labels") {
        for (key, value) in node.map()?.entries()? {
            check_qualified_key(key).map_err(|m| value.err(m))?;
            let text = value.str_or_empty()?;
            check_label_value(text).map_err(|m| value.err(m))?;
            into.labels.insert(key.to_string(), text.to_string());
        }
    }
    if let Some(node) = meta.get("annotations") {
        into.annotations.extend_from(&node)?;
    }
    Ok(())
}

/// Sets the workload's annotations, warns about unknown `beemesh.io/` keys and applies the
/// `beemesh.io/resources.cpu` / `.memory` overrides (a bad value is an error at the
/// annotation).
pub(crate) fn finish(
    spec: &mut WorkloadSpec,
    annotations: &Annotations,
    warnings: &mut Warnings,
) -> Result<()> {
    for (key, (value, path)) in &annotations.0 {
        if key.starts_with("beemesh.io/") && !KNOWN.contains(&key.as_str()) {
            let hint = closest(key, KNOWN)
                .map(|k| format!("; did you mean {k}?"))
                .unwrap_or_else(|| format!("; known: {}", KNOWN.join(", ")));
            warnings.at(path, format!("unknown annotation {key}{hint}"));
        }
        match key.as_str() {
            annotations::RESOURCES_CPU => {
                let node_value = serde_yaml::Value::String(value.clone());
                let node = Node::new(&node_value, path.clone());
                spec.resources.cpu_millis = Some(quantity::cpu_at(&node)?);
            }
            annotations::RESOURCES_MEMORY => {
                let node_value = serde_yaml::Value::String(value.clone());
                let node = Node::new(&node_value, path.clone());
                spec.resources.memory_bytes = Some(quantity::memory_at(&node)?);
            }
            annotations::OUTPUTS => {
                let declared = mesh_protocol::job::parse_outputs(value).map_err(|e| path.err(e))?;
                match &mut spec.job {
                    Some(job) => {
                        for p in declared {
                            if !job.outputs.contains(&p) {
                                job.outputs.push(p);
                            }
                        }
                        if job.outputs.len() > mesh_protocol::job::MAX_OUTPUTS {
                            return Err(path.err(format!(
                                "{} outputs declared; at most {}",
                                job.outputs.len(),
                                mesh_protocol::job::MAX_OUTPUTS
                            )));
                        }
                    }
                    None => warnings.at(
                        path,
                        "not honoured: only Jobs and run-to-completion Functions have outputs",
                    ),
                }
            }
            annotations::JOB_KEEP_INSTANCE if spec.job.is_none() => warnings.at(
                path,
                "not honoured: only Jobs and run-to-completion Functions end",
            ),
            _ => {}
        }
        spec.annotations.insert(key.clone(), value.clone());
    }
    Ok(())
}
