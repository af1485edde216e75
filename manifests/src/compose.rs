//! A Compose file → one [`WorkloadSpec`] of kind `Compose`, one container per service.
//!
//! Order of work, as in `docker compose`: interpolate every value, apply `extends` and the
//! `!reset`/`!override` tags, validate the top-level keys, then the services; services with
//! `profiles` are left out (with a warning); `depends_on` must name started services and
//! must not form a cycle.

use std::collections::BTreeMap;

use mesh_protocol::spec::{
    ResourceAmounts, SourceFormat, Volume, VolumeSource, WorkloadKind, WorkloadSpec,
    DEFAULT_NAMESPACE,
};
use serde_yaml::Value;

use crate::compose_depends;
use crate::compose_extends;
use crate::compose_interp::interpolate_document;
use crate::compose_service::{self, Service};
use crate::error::{Error, ErrorKind};
use crate::meta::{self, Annotations};
use crate::names::check_dns_label;
use crate::node::{check_keys, MapNode, Node, Path, Result, Warnings};
use crate::ParseOptions;

const TOP_LEVEL: &[&str] = &[
    "version", "name", "services", "networks", "volumes", "configs", "secrets", "include", "models",
];

/// Parses one Compose document (taken by value: interpolation rewrites it in place).
pub(crate) fn parse(mut doc: Value, opts: &ParseOptions) -> Result<WorkloadSpec> {
    let mut warnings = Warnings::default();
    interpolate_document(&mut doc, &opts.env, &mut warnings)?;
    compose_extends::resolve(&mut doc)?;
    let top = Node::new(&doc, Path::root()).map()?;
    check_keys(&top, TOP_LEVEL)?;
    if let Some(include) = top.get("include") {
        return Err(include.err("not supported: merge the included files into this one"));
    }
    let name = project_name(&top, opts)?;
    let mut annotations = Annotations::default();
    let mut spec = WorkloadSpec::new(
        name,
        DEFAULT_NAMESPACE,
        WorkloadKind::Compose,
        SourceFormat::Compose,
    );
    let extension = top.get("x-beemesh").map(|n| n.map()).transpose()?;
    let declared = declared_volumes(&top, &mut spec.volumes)?;

    let Some(services_node) = top.get("services") else {
        return Err(top.path.key("services").err("no services defined"));
    };
    let entries = services_node.map()?.entries()?;
    if entries.is_empty() {
        return Err(services_node.err("no services defined"));
    }
    let mut services: Vec<(Service, Warnings)> = Vec::new();
    for (name, node) in &entries {
        let mut service_warnings = Warnings::default();
        let service =
            compose_service::parse(name, node, &opts.env, &declared, &mut service_warnings)?;
        services.push((service, service_warnings));
    }
    let (enabled, skipped): (Vec<_>, Vec<_>) = services
        .into_iter()
        .partition(|(s, _)| s.profiles.is_empty());
    if enabled.is_empty() {
        let list: Vec<String> = skipped
            .iter()
            .map(|(s, _)| format!("{} ({})", s.container.name, s.profiles.join(", ")))
            .collect();
        return Err(services_node.err(format!(
            "nothing to start: every service needs a profile: {}",
            list.join("; ")
        )));
    }
    for (s, _) in &skipped {
        warnings.at(
            &services_node.path.key(&s.container.name),
            format!(
                "skipped: only started with profile(s) {}",
                s.profiles.join(", ")
            ),
        );
    }
    compose_depends::check(&enabled, &skipped)?;
    for (service, service_warnings) in enabled {
        for w in service_warnings.into_vec() {
            warnings.push(w);
        }
        for (key, value, path) in service.annotations {
            if let Some(old) = annotations.get(&key).filter(|old| **old != value) {
                warnings.at(
                    &path,
                    format!("overrides {key}={old} set by an earlier service"),
                );
            }
            annotations.insert(key, value, path);
        }
        for volume in service.volumes {
            if !spec.volumes.iter().any(|v| v.name == volume.name) {
                spec.volumes.push(volume);
            }
        }
        spec.host.merge(service.host);
        spec.containers.push(service.container);
    }
    if let Some(ext) = extension {
        apply_extension(&ext, &mut spec, &mut annotations)?;
    }
    spec.resources = total_resources(&spec);
    meta::finish(&mut spec, &annotations, &mut warnings)?;
    spec.warnings = warnings.into_vec();
    Ok(spec)
}

/// Top-level `name:`, else the caller's default name.
fn project_name(top: &MapNode<'_>, opts: &ParseOptions) -> Result<String> {
    if let Some(node) = top.get("name") {
        let name = node.str()?;
        check_dns_label(name).map_err(|e| node.err(e))?;
        return Ok(name.to_string());
    }
    match &opts.default_name {
        Some(name) => {
            check_dns_label(name).map_err(|e| {
                Error::invalid(
                    "name",
                    format!("no top-level name:, and the name given is {e}"),
                )
            })?;
            Ok(name.clone())
        }
        None => Err(Error::new(ErrorKind::NoName)),
    }
}

/// Top-level `volumes`: adds them as named volumes and returns key → volume name (an
/// explicit `name:` replaces the key).
fn declared_volumes(top: &MapNode<'_>, into: &mut Vec<Volume>) -> Result<BTreeMap<String, String>> {
    let mut declared = BTreeMap::new();
    let Some(node) = top.get("volumes") else {
        return Ok(declared);
    };
    for (key, entry) in node.map()?.entries()? {
        let mut name = key.to_string();
        let mut external = false;
        if !entry.value.is_null() {
            let m = entry.map()?;
            check_keys(&m, &["name", "external", "driver", "driver_opts", "labels"])?;
            if let Some(n) = m.get("name") {
                name = n.non_empty_str()?.to_string();
            }
            if let Some(e) = m.get("external") {
                external = match e.value {
                    // Compose v3 wrote `external: {name: x}`.
                    Value::Mapping(_) => {
                        if let Some(n) = e.map()?.get("name") {
                            name = n.non_empty_str()?.to_string();
                        }
                        true
                    }
                    _ => e.lenient_bool()?,
                };
            }
        }
        declared.insert(key.to_string(), name.clone());
        if !into.iter().any(|v| v.name == name) {
            into.push(Volume {
                name,
                source: VolumeSource::Named { external },
            });
        }
    }
    Ok(declared)
}

/// `x-beemesh: {namespace, labels, annotations}`; its annotations win over service labels.
fn apply_extension(
    ext: &MapNode<'_>,
    spec: &mut WorkloadSpec,
    annotations: &mut Annotations,
) -> Result<()> {
    for key in ext.keys() {
        if !["namespace", "labels", "annotations"].contains(&key) {
            return Err(ext
                .path
                .key(key)
                .err("unknown field: use namespace, labels or annotations"));
        }
    }
    if let Some(ns) = ext.get("namespace") {
        let text = ns.str()?;
        check_dns_label(text).map_err(|e| ns.err(e))?;
        spec.namespace = text.to_string();
    }
    let mut meta = meta::Meta {
        name: spec.name.clone(),
        namespace: spec.namespace.clone(),
        labels: BTreeMap::new(),
        annotations: Annotations::default(),
    };
    meta::merge_labels_and_annotations(&mut meta, ext)?;
    spec.labels = meta.labels;
    if let Some(node) = ext.get("annotations") {
        annotations.extend_from(&node)?;
    }
    Ok(())
}

/// Per service: its reservation (else its limit) times its replicas; summed.
fn total_resources(spec: &WorkloadSpec) -> ResourceAmounts {
    let mut total = ResourceAmounts::default();
    for c in &spec.containers {
        let copies = u64::from(c.replicas.unwrap_or(1));
        let r = &c.resources;
        let scale = |v: Option<u64>| v.map(|v| v.saturating_mul(copies));
        let cpu = scale(r.requests.cpu_millis.or(r.limits.cpu_millis));
        let memory = scale(r.requests.memory_bytes.or(r.limits.memory_bytes));
        total.cpu_millis = sum(total.cpu_millis, cpu);
        total.memory_bytes = sum(total.memory_bytes, memory);
    }
    total
}

fn sum(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.saturating_add(y)),
        (x, y) => x.or(y),
    }
}
