//! Pod volumes → mesh volumes: `emptyDir`, `hostPath`, `configMap`, `secret` and
//! `persistentVolumeClaim` are provided; other volume types are kept as `Unsupported` with
//! a warning, so the workload still parses and the user sees what is missing.

use std::collections::BTreeMap;

use mesh_protocol::spec::{Volume, VolumeSource};

use crate::names::check_dns_label;
use crate::node::{warn_ignored, MapNode, Node, Result, Warnings};

/// The pod's volumes, and how a pod volume name maps to the mesh volume a mount uses
/// (a `persistentVolumeClaim` becomes a named volume called after its claim).
#[derive(Debug, Default)]
pub(crate) struct PodVolumes {
    pub(crate) volumes: Vec<Volume>,
    pub(crate) sources: BTreeMap<String, String>,
}

impl PodVolumes {
    pub(crate) fn parse(pod: &MapNode<'_>, warnings: &mut Warnings) -> Result<Self> {
        let mut out = Self::default();
        let Some(list) = pod.get("volumes") else {
            return Ok(out);
        };
        for node in list.seq()? {
            let m = node.map()?;
            let name_node = m.req("name")?;
            let name = name_node.str()?;
            check_dns_label(name).map_err(|e| name_node.err(e))?;
            if out.sources.contains_key(name) {
                return Err(name_node.err(format!("duplicate volume name {name:?}")));
            }
            let (volume_name, source) = volume_source(&m, name, warnings)?;
            out.sources.insert(name.to_string(), volume_name.clone());
            if !out.volumes.iter().any(|v| v.name == volume_name) {
                out.volumes.push(Volume {
                    name: volume_name,
                    source,
                });
            }
        }
        Ok(out)
    }
}

fn volume_source(
    m: &MapNode<'_>,
    name: &str,
    warnings: &mut Warnings,
) -> Result<(String, VolumeSource)> {
    let sources: Vec<(&str, Node<'_>)> = m
        .entries()?
        .into_iter()
        .filter(|(k, _)| *k != "name")
        .collect();
    let (key, node) = match sources.as_slice() {
        // A volume without a source is an emptyDir, as in Kubernetes.
        [] => return Ok((name.to_string(), VolumeSource::Ephemeral { memory: false })),
        [(key, node)] => (*key, node.clone()),
        _ => {
            let keys: Vec<&str> = sources.iter().map(|(k, _)| *k).collect();
            return Err(m
                .path
                .err(format!("more than one volume source: {}", keys.join(", "))));
        }
    };
    let source = match key {
        "emptyDir" => {
            let memory = match node.value {
                serde_yaml::Value::Null => false,
                _ => match node.map()?.get("medium") {
                    None => false,
                    Some(medium) => match medium.str()? {
                        "" => false,
                        "Memory" => true,
                        other => {
                            return Err(medium.err(format!(
                                "unknown medium {other:?}: use Memory or leave it out"
                            )))
                        }
                    },
                },
            };
            VolumeSource::Ephemeral { memory }
        }
        "hostPath" => VolumeSource::HostPath {
            path: node.map()?.req("path")?.non_empty_str()?.to_string(),
        },
        "configMap" => {
            let cm = node.map()?;
            warn_ignored(&cm, &[("items", "every key is mounted")], warnings);
            VolumeSource::ConfigMap {
                name: cm.req("name")?.non_empty_str()?.to_string(),
            }
        }
        "secret" => {
            let s = node.map()?;
            warn_ignored(&s, &[("items", "every key is mounted")], warnings);
            VolumeSource::Secret {
                name: s.req("secretName")?.non_empty_str()?.to_string(),
            }
        }
        "persistentVolumeClaim" => {
            let claim = node.map()?.req("claimName")?.non_empty_str()?.to_string();
            warnings.at(
                &node.path,
                format!(
                    "claim {claim:?} becomes a named volume on the node that runs the workload"
                ),
            );
            return Ok((claim, VolumeSource::Named { external: false }));
        }
        other => {
            warnings.at(
                &node.path,
                format!("volume type {other} is not supported by the mesh; volume {name:?} is not provided"),
            );
            VolumeSource::Unsupported {
                kind: other.to_string(),
            }
        }
    };
    Ok((name.to_string(), source))
}
