//! One Kubernetes container (or init container) → [`Container`]: image, command, env,
//! ports, volume mounts, resources, pull policy and exec probes.

use mesh_protocol::spec::{
    Container, EnvSource, EnvVar, HealthCheck, Mount, Port, PortProtocol, PullPolicy,
    ResourceAmounts, Resources,
};

use crate::k8s_volumes::PodVolumes;
use crate::names::check_dns_label;
use crate::node::{is_empty, warn_ignored, warn_unknown, MapNode, Node, Result, Warnings};
use crate::quantity;

const HONOURED: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "env",
    "ports",
    "volumeMounts",
    "resources",
    "workingDir",
    "imagePullPolicy",
    "livenessProbe",
    "readinessProbe",
];

const IGNORED: &[(&str, &str)] = &[
    ("envFrom", "list the variables under env"),
    ("startupProbe", "use livenessProbe with initialDelaySeconds"),
    ("lifecycle", "engines do not run lifecycle hooks"),
    ("stdin", "containers run detached"),
    ("stdinOnce", "containers run detached"),
    ("tty", "containers run detached"),
    ("volumeDevices", "block devices are not supported"),
    (
        "resizePolicy",
        "resources are fixed for the life of a workload",
    ),
    ("restartPolicy", "the workload's restartPolicy applies"),
];

const SILENT: &[&str] = &[
    "terminationMessagePath",
    "terminationMessagePolicy",
    "securityContext",
];

/// Parses one entry of `containers` or `initContainers`.
pub(crate) fn parse(
    node: &Node<'_>,
    volumes: &PodVolumes,
    warnings: &mut Warnings,
) -> Result<Container> {
    let m = node.map()?;
    let name_node = m.req("name")?;
    let name = name_node.str()?;
    check_dns_label(name).map_err(|e| name_node.err(e))?;
    let image = m.req("image")?.non_empty_str()?.to_string();
    let mut c = Container {
        name: name.to_string(),
        pull_policy: pull_policy(&m, &image)?,
        image,
        ..Container::default()
    };
    if let Some(n) = m.get("command") {
        c.command = n.strings()?;
    }
    if let Some(n) = m.get("args") {
        c.args = n.strings()?;
    }
    if let Some(n) = m.get("env") {
        for item in n.seq()? {
            if let Some(var) = env_var(&item, warnings)? {
                c.env.push(var);
            }
        }
    }
    if let Some(n) = m.get("ports") {
        c.ports = n.seq()?.iter().map(port).collect::<Result<_>>()?;
    }
    if let Some(n) = m.get("volumeMounts") {
        for item in n.seq()? {
            c.mounts.push(mount(&item, volumes, warnings)?);
        }
    }
    if let Some(n) = m.get("resources") {
        c.resources = resources(&n.map()?, warnings)?;
    }
    if let Some(n) = m.get("workingDir") {
        c.working_dir = Some(n.str()?.to_string());
    }
    c.healthcheck = healthcheck(&m, warnings)?;
    if let Some(sc) = m.get("securityContext") {
        // Only settings that ask for something (privileged: true, added capabilities) warn.
        for (_, field) in sc.map()?.entries()? {
            let set = match field.value {
                serde_yaml::Value::Mapping(inner) => inner.values().any(|v| !is_empty(v)),
                v => !is_empty(v),
            };
            if set {
                warnings.at(&field.path, "not honoured: the engine's defaults apply");
            }
        }
    }
    warn_ignored(&m, IGNORED, warnings);
    let ignored: Vec<&str> = IGNORED.iter().map(|(k, _)| *k).collect();
    warn_unknown(&m, &[HONOURED, &ignored, SILENT], warnings);
    Ok(c)
}

/// `imagePullPolicy`, defaulting as Kubernetes does: `Always` for `:latest` or untagged
/// images, `IfNotPresent` otherwise.
fn pull_policy(m: &MapNode<'_>, image: &str) -> Result<PullPolicy> {
    if let Some(node) = m.get("imagePullPolicy") {
        return match node.str()? {
            "Always" => Ok(PullPolicy::Always),
            "IfNotPresent" => Ok(PullPolicy::IfNotPresent),
            "Never" => Ok(PullPolicy::Never),
            other => Err(node.err(format!(
                "unknown pull policy {other:?}: use Always, IfNotPresent or Never"
            ))),
        };
    }
    let name = image.rsplit('/').next().unwrap_or(image);
    let latest = match name.split_once(':') {
        _ if image.contains('@') => false,
        None => true,
        Some((_, tag)) => tag == "latest",
    };
    Ok(if latest {
        PullPolicy::Always
    } else {
        PullPolicy::IfNotPresent
    })
}

fn env_var(node: &Node<'_>, warnings: &mut Warnings) -> Result<Option<EnvVar>> {
    let m = node.map()?;
    let name = m.req("name")?.non_empty_str()?.to_string();
    let value = m
        .get("value")
        .map(|n| n.str().map(str::to_string))
        .transpose()?;
    let Some(from) = m.get("valueFrom") else {
        return Ok(Some(EnvVar {
            name,
            value: Some(value.unwrap_or_default()),
            value_from: None,
        }));
    };
    if value.is_some() {
        return Err(m.path.err("value and valueFrom cannot both be set"));
    }
    let f = from.map()?;
    let key_ref = |field: &str| -> Result<Option<(String, String)>> {
        let Some(r) = f.get(field) else {
            return Ok(None);
        };
        let r = r.map()?;
        let name = r.req("name")?.non_empty_str()?.to_string();
        let key = r.req("key")?.non_empty_str()?.to_string();
        Ok(Some((name, key)))
    };
    let source = if let Some((name, key)) = key_ref("configMapKeyRef")? {
        EnvSource::ConfigMap { name, key }
    } else if let Some((name, key)) = key_ref("secretKeyRef")? {
        EnvSource::Secret { name, key }
    } else if let Some(field) = f.get("fieldRef") {
        let path = field.map()?.req("fieldPath")?.non_empty_str()?.to_string();
        EnvSource::Field { path }
    } else if let Some(r) = f.get("resourceFieldRef") {
        warnings.at(&r.path, format!("not honoured: {name} is not set"));
        return Ok(None);
    } else {
        return Err(
            from.err("expected configMapKeyRef, secretKeyRef, fieldRef or resourceFieldRef")
        );
    };
    Ok(Some(EnvVar {
        name,
        value: None,
        value_from: Some(source),
    }))
}

/// A port number between 1 and 65535.
pub(crate) fn port_number(node: &Node<'_>) -> Result<u16> {
    let n = node.u64()?;
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| node.err(format!("port {n} is out of range: use 1 to 65535")))
}

fn port(node: &Node<'_>) -> Result<Port> {
    let m = node.map()?;
    let protocol = match m.get("protocol") {
        None => PortProtocol::Tcp,
        Some(p) => match p.str()? {
            "TCP" => PortProtocol::Tcp,
            "UDP" => PortProtocol::Udp,
            "SCTP" => PortProtocol::Sctp,
            other => return Err(p.err(format!("unknown protocol {other:?}: use TCP, UDP or SCTP"))),
        },
    };
    let host_port = match m.get("hostPort") {
        Some(n) if n.u64()? != 0 => Some(port_number(&n)?),
        _ => None,
    };
    Ok(Port {
        container_port: port_number(&m.req("containerPort")?)?,
        host_port,
        host_ip: m
            .get("hostIP")
            .map(|n| n.str().map(str::to_string))
            .transpose()?,
        protocol,
        name: m
            .get("name")
            .map(|n| n.str().map(str::to_string))
            .transpose()?,
    })
}

fn mount(node: &Node<'_>, volumes: &PodVolumes, warnings: &mut Warnings) -> Result<Mount> {
    let m = node.map()?;
    let name_node = m.req("name")?;
    let name = name_node.str()?;
    let source = volumes
        .sources
        .get(name)
        .ok_or_else(|| name_node.err(format!("no volume named {name:?} in the pod's volumes")))?;
    warn_ignored(
        &m,
        &[
            (
                "mountPropagation",
                "the engine's default propagation applies",
            ),
            ("subPathExpr", "use subPath"),
            ("recursiveReadOnly", "readOnly applies to the mount itself"),
        ],
        warnings,
    );
    Ok(Mount {
        source: source.clone(),
        target: m.req("mountPath")?.non_empty_str()?.to_string(),
        read_only: m
            .get("readOnly")
            .map(|n| n.bool())
            .transpose()?
            .unwrap_or(false),
        sub_path: m
            .get("subPath")
            .map(|n| n.str().map(str::to_string))
            .transpose()?,
    })
}

fn resources(m: &MapNode<'_>, warnings: &mut Warnings) -> Result<Resources> {
    let amounts = |field: &str, warnings: &mut Warnings| -> Result<ResourceAmounts> {
        let mut out = ResourceAmounts::default();
        let Some(node) = m.get(field) else {
            return Ok(out);
        };
        for (key, value) in node.map()?.entries()? {
            match key {
                "cpu" => out.cpu_millis = Some(quantity::cpu_at(&value)?),
                "memory" => out.memory_bytes = Some(quantity::memory_at(&value)?),
                k if k.ends_with("/gpu") => warnings.at(
                    &value.path,
                    "not honoured: GPU resources are not scheduled by the mesh",
                ),
                _ => warnings.at(
                    &value.path,
                    "not honoured: only cpu and memory are scheduled",
                ),
            }
        }
        Ok(out)
    };
    warn_ignored(
        m,
        &[("claims", "dynamic resources are not supported")],
        warnings,
    );
    Ok(Resources {
        requests: amounts("requests", warnings)?,
        limits: amounts("limits", warnings)?,
    })
}

/// The liveness probe, else the readiness probe, when it runs a command. Kubernetes'
/// defaults (every 10s, 1s timeout, 3 failures) are written out so engines apply them.
fn healthcheck(m: &MapNode<'_>, warnings: &mut Warnings) -> Result<Option<HealthCheck>> {
    let mut chosen = None;
    for field in ["livenessProbe", "readinessProbe"] {
        let Some(node) = m.get(field) else { continue };
        let probe = node.map()?;
        let Some(exec) = probe.get("exec") else {
            warnings.at(&node.path, "not honoured: only exec probes are supported");
            continue;
        };
        if chosen.is_some() {
            warnings.at(
                &node.path,
                "not honoured: livenessProbe is the health check",
            );
            continue;
        }
        let command = exec.map()?.req("command")?;
        let args = command.strings()?;
        if args.is_empty() {
            return Err(command.err("must not be empty"));
        }
        let seconds = |field: &str, default: u64| -> Result<u64> {
            let value = probe.get(field).map(|n| n.u64()).transpose()?;
            Ok(value.unwrap_or(default).saturating_mul(1000))
        };
        chosen = Some(HealthCheck {
            test: std::iter::once("CMD".to_string()).chain(args).collect(),
            interval_ms: Some(seconds("periodSeconds", 10)?),
            timeout_ms: Some(seconds("timeoutSeconds", 1)?),
            retries: Some(
                probe
                    .get("failureThreshold")
                    .map(|n| n.u32())
                    .transpose()?
                    .unwrap_or(3),
            ),
            start_period_ms: Some(seconds("initialDelaySeconds", 0)?),
        });
    }
    Ok(chosen)
}
