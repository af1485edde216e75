//! Validation of a [`WorkloadSpec`] for this engine, with the manifest field named in every
//! refusal, and the start order of its containers. Pure functions: no daemon, no files.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use mesh_protocol::spec::{ConfigKind, Container, EnvSource, SourceFormat, VolumeSource};
use mesh_protocol::WorkloadSpec;
use mesh_runtime::error::{Error, Result};

use crate::labels;
use crate::mounts::mount_plan;

/// Downward-API fields an engine can resolve.
pub const FIELD_PATHS: &[&str] = &["metadata.name", "metadata.namespace", "spec.nodeName"];

/// Field path of a container in the manifest, for error messages.
pub fn field(spec: &WorkloadSpec, init: bool, index: usize, c: &Container) -> String {
    match (spec.format, init) {
        (SourceFormat::Compose, _) => format!("services.{}", c.name),
        (_, true) => format!("spec.initContainers[{index}] ({})", c.name),
        (_, false) => format!("spec.containers[{index}] ({})", c.name),
    }
}

/// Everything that can be refused without a daemon.
pub fn validate(spec: &WorkloadSpec) -> Result<()> {
    if spec.containers.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no containers to run",
            spec.id()
        )));
    }
    for v in &spec.volumes {
        if let VolumeSource::Unsupported { kind } = &v.source {
            return Err(Error::Invalid(format!(
                "volumes.{}: volume type {kind} is not supported by the docker engine",
                v.name
            )));
        }
    }
    let mut names = HashSet::new();
    let all = spec
        .init_containers
        .iter()
        .enumerate()
        .map(|(i, c)| (true, i, c));
    for (init, i, c) in all.chain(
        spec.containers
            .iter()
            .enumerate()
            .map(|(i, c)| (false, i, c)),
    ) {
        let at = field(spec, init, i, c);
        if c.name.trim().is_empty() {
            return Err(Error::Invalid(format!("{at}.name: missing")));
        }
        if !names.insert(labels::sanitise(&c.name)) {
            return Err(Error::Invalid(format!(
                "{at}.name: duplicate container name {}",
                c.name
            )));
        }
        if c.image.trim().is_empty() {
            return Err(Error::Invalid(format!("{at}.image: missing")));
        }
        validate_container(spec, &at, c)?;
        if init && !c.depends_on.is_empty() {
            return Err(Error::Invalid(format!(
                "{at}.depends_on: not allowed on init containers"
            )));
        }
    }
    start_order(spec).map(|_| ())
}

fn validate_container(spec: &WorkloadSpec, at: &str, c: &Container) -> Result<()> {
    for env in &c.env {
        resolve_env(spec, &env.value_from, "", "")
            .map_err(|why| Error::Invalid(format!("{at}.env.{}: {why}", env.name)))?;
    }
    for (i, m) in c.mounts.iter().enumerate() {
        mount_plan(spec, "", Path::new("/"), m)
            .map_err(|why| Error::Invalid(format!("{at}.volumeMounts[{i}]: {why}")))?;
    }
    let replicas = c.replicas.unwrap_or(1);
    for p in &c.ports {
        if p.container_port == 0 {
            return Err(Error::Invalid(format!("{at}.ports: container port 0")));
        }
        if p.host_port.is_some() && replicas > 1 {
            return Err(Error::Invalid(format!(
                "{at}.ports: host port {} cannot be published by {replicas} replicas on one node",
                p.host_port.unwrap_or_default()
            )));
        }
    }
    if let Some(h) = &c.healthcheck {
        match h.test.first().map(String::as_str) {
            Some("NONE") => {}
            Some("CMD") | Some("CMD-SHELL") if h.test.len() > 1 => {}
            _ => {
                return Err(Error::Invalid(format!(
                    "{at}.healthcheck.test: must be [\"CMD\", ...], [\"CMD-SHELL\", \"...\"] or [\"NONE\"], got {:?}",
                    h.test
                )))
            }
        }
    }
    Ok(())
}

/// The value of an environment reference; `Err(why)` when it cannot be resolved.
/// `name` and `node` fill the downward-API fields.
pub fn resolve_env(
    spec: &WorkloadSpec,
    source: &Option<EnvSource>,
    name: &str,
    node: &str,
) -> std::result::Result<Option<String>, String> {
    let Some(source) = source else {
        return Ok(None);
    };
    match source {
        EnvSource::ConfigMap { name: obj, key } => {
            config_value(spec, ConfigKind::ConfigMap, obj, key).map(Some)
        }
        EnvSource::Secret { name: obj, key } => {
            config_value(spec, ConfigKind::Secret, obj, key).map(Some)
        }
        EnvSource::Field { path } => match path.as_str() {
            "metadata.name" => Ok(Some(if name.is_empty() {
                spec.name.clone()
            } else {
                name.to_string()
            })),
            "metadata.namespace" => Ok(Some(spec.namespace.clone())),
            "spec.nodeName" => Ok(Some(node.to_string())),
            other => Err(format!(
                "field {other} cannot be resolved (supported: {})",
                FIELD_PATHS.join(", ")
            )),
        },
    }
}

fn config_value(
    spec: &WorkloadSpec,
    kind: ConfigKind,
    name: &str,
    key: &str,
) -> std::result::Result<String, String> {
    let obj = spec
        .config
        .iter()
        .find(|o| o.kind == kind && o.name == name)
        .ok_or_else(|| format!("{kind:?} {name} is not part of the workload"))?;
    let value = obj
        .data
        .get(key)
        .ok_or_else(|| format!("{kind:?} {name} has no key {key}"))?;
    if !obj.binary_keys.iter().any(|k| k == key) {
        return Ok(value.clone());
    }
    // Binary values travel base64-encoded; an environment value must be text.
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| format!("{kind:?} {name} key {key} is binary, not text"))
}

/// How many containers an instance of `spec` has: init containers, and each main container
/// times its replicas.
pub fn container_count(spec: &WorkloadSpec) -> u32 {
    spec.init_containers.len() as u32
        + spec
            .containers
            .iter()
            .map(|c| c.replicas.unwrap_or(1))
            .sum::<u32>()
}

/// Indexes of `spec.containers` in start order: a topological order of `depends_on` that
/// keeps declaration order among independent services. Unknown services and cycles are
/// refused, naming the services.
pub fn start_order(spec: &WorkloadSpec) -> Result<Vec<usize>> {
    let index: BTreeMap<&str, usize> = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(spec.containers.len());
    for (i, c) in spec.containers.iter().enumerate() {
        let mut mine = Vec::new();
        for d in &c.depends_on {
            let Some(&j) = index.get(d.service.as_str()) else {
                return Err(Error::Invalid(format!(
                    "{}.depends_on: unknown service {}",
                    field(spec, false, i, c),
                    d.service
                )));
            };
            mine.push(j);
        }
        deps.push(mine);
    }
    let mut done = vec![false; deps.len()];
    let mut order = Vec::with_capacity(deps.len());
    while order.len() < deps.len() {
        let next = (0..deps.len()).find(|&i| !done[i] && deps[i].iter().all(|&j| done[j]));
        match next {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => {
                let cycle: Vec<&str> = (0..deps.len())
                    .filter(|&i| !done[i])
                    .map(|i| spec.containers[i].name.as_str())
                    .collect();
                return Err(Error::Invalid(format!(
                    "depends_on: dependency cycle between services {}",
                    cycle.join(", ")
                )));
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
