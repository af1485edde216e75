//! One container of the pod: image, command, environment, ports, mounts, resources, probe.

use mesh_protocol::spec::{
    ConfigKind, Container, EnvSource, HealthCheck, PortProtocol, PullPolicy, ResourceAmounts,
};
use serde_json::{json, Map, Value};

use super::{config_name, Scope, DEFAULT_PATH};

/// Renders `c` under the (unique, sanitised) `name`; `probes` is false for init containers.
pub(super) fn render(
    scope: &Scope<'_>,
    c: &Container,
    name: &str,
    probes: bool,
) -> Result<Value, String> {
    if c.image.trim().is_empty() {
        return Err(format!("container {name} has no image"));
    }
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    out.insert("image".into(), json!(c.image));
    // `fetch`/`prepare` already brought the image (pulling it for `Always`), so `kube play`
    // never pulls again.
    let policy = match c.pull_policy {
        PullPolicy::Never => "Never",
        PullPolicy::IfNotPresent | PullPolicy::Always => "IfNotPresent",
    };
    out.insert("imagePullPolicy".into(), json!(policy));
    if !c.command.is_empty() {
        out.insert("command".into(), json!(c.command));
    }
    if !c.args.is_empty() {
        out.insert("args".into(), json!(c.args));
    }
    if let Some(dir) = &c.working_dir {
        out.insert("workingDir".into(), json!(dir));
    }
    let env = env(scope, c, name)?;
    if !env.is_empty() {
        out.insert("env".into(), Value::Array(env));
    }
    let ports: Vec<Value> = c
        .ports
        .iter()
        .map(|p| {
            let mut port = json!({
                "containerPort": p.container_port,
                "protocol": match p.protocol {
                    PortProtocol::Tcp => "TCP",
                    PortProtocol::Udp => "UDP",
                    PortProtocol::Sctp => "SCTP",
                },
            });
            if let Some(host) = p.host_port {
                port["hostPort"] = json!(host);
            }
            if let Some(ip) = &p.host_ip {
                port["hostIP"] = json!(ip);
            }
            port
        })
        .collect();
    if !ports.is_empty() {
        out.insert("ports".into(), Value::Array(ports));
    }
    let mut mounts = Vec::new();
    for m in &c.mounts {
        let volume = match scope.volumes.get(m.source.as_str()) {
            None => {
                return Err(format!(
                    "container {name} mounts volume {:?}, which the workload does not declare",
                    m.source
                ))
            }
            // A volume type the mesh cannot provide: the parser warned, the mount is left out.
            Some(None) => continue,
            Some(Some(volume)) => volume,
        };
        let mut mount = json!({"name": volume, "mountPath": m.target});
        if m.read_only {
            mount["readOnly"] = json!(true);
        }
        if let Some(sub) = &m.sub_path {
            mount["subPath"] = json!(sub);
        }
        mounts.push(mount);
    }
    if !mounts.is_empty() {
        out.insert("volumeMounts".into(), Value::Array(mounts));
    }
    let mut resources = Map::new();
    for (key, amounts) in [
        ("limits", &c.resources.limits),
        ("requests", &c.resources.requests),
    ] {
        if let Some(map) = quantities(amounts) {
            resources.insert(key.into(), map);
        }
    }
    if !resources.is_empty() {
        out.insert("resources".into(), Value::Object(resources));
    }
    if let Some(probe) = c.healthcheck.as_ref().filter(|_| probes).and_then(probe) {
        out.insert("livenessProbe".into(), probe);
    }
    Ok(Value::Object(out))
}

fn env(scope: &Scope<'_>, c: &Container, name: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for var in &c.env {
        let entry = match &var.value_from {
            None => json!({"name": var.name, "value": var.value.clone().unwrap_or_default()}),
            Some(EnvSource::Field { path }) => {
                json!({"name": var.name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
            }
            Some(EnvSource::ConfigMap { name: object, key })
            | Some(EnvSource::Secret { name: object, key }) => {
                let kind = match var.value_from {
                    Some(EnvSource::Secret { .. }) => ConfigKind::Secret,
                    _ => ConfigKind::ConfigMap,
                };
                let found = scope.config(kind, object).ok_or_else(|| {
                    format!(
                        "container {name}: env {} uses {kind:?} {object:?}, which is not in the workload's file",
                        var.name
                    )
                })?;
                if !found.data.contains_key(key) {
                    return Err(format!(
                        "container {name}: env {} uses key {key:?} of {kind:?} {object:?}, which has no such key",
                        var.name
                    ));
                }
                let target = config_name(scope.pod, kind, object);
                json!({"name": var.name, "valueFrom": {"configMapKeyRef": {"name": target, "key": key}}})
            }
        };
        out.push(entry);
    }
    if !c.env.iter().any(|v| v.name == "PATH") && scope.images_without_path.contains(&c.image) {
        out.push(json!({"name": "PATH", "value": DEFAULT_PATH}));
    }
    Ok(out)
}

/// `{cpu: "250m", memory: "<bytes>"}`, or `None` when nothing is stated.
fn quantities(amounts: &ResourceAmounts) -> Option<Value> {
    let mut map = Map::new();
    if let Some(cpu) = amounts.cpu_millis {
        map.insert("cpu".into(), json!(format!("{cpu}m")));
    }
    if let Some(memory) = amounts.memory_bytes {
        map.insert("memory".into(), json!(memory.to_string()));
    }
    (!map.is_empty()).then_some(Value::Object(map))
}

/// An exec liveness probe from a Docker-style health check; `None` for `NONE` or no test.
pub(super) fn probe(check: &HealthCheck) -> Option<Value> {
    let script = match check.test.first().map(String::as_str) {
        None | Some("NONE") => return None,
        Some("CMD-SHELL") => check.test[1..].join(" "),
        Some("CMD") => shell_join(&check.test[1..]),
        Some(_) => shell_join(&check.test),
    };
    if script.trim().is_empty() {
        return None;
    }
    let secs = |ms: u64| ms.div_ceil(1000).max(1);
    let mut probe = json!({"exec": {"command": [script]}});
    if let Some(ms) = check.interval_ms {
        probe["periodSeconds"] = json!(secs(ms));
    }
    if let Some(ms) = check.timeout_ms {
        probe["timeoutSeconds"] = json!(secs(ms));
    }
    if let Some(retries) = check.retries {
        probe["failureThreshold"] = json!(retries.max(1));
    }
    if let Some(ms) = check.start_period_ms {
        probe["initialDelaySeconds"] = json!(ms.div_ceil(1000));
    }
    Some(probe)
}

/// Joins words into one POSIX shell command, quoting where needed.
pub(crate) fn shell_join(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            let safe = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
            if safe {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r#"'"'"'"#))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
