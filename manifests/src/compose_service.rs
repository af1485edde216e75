//! One Compose service → one [`Container`] (named after the service), plus the volumes it
//! mounts and the `beemesh.io/` labels that become workload annotations.

use std::collections::BTreeMap;

use mesh_protocol::spec::{Container, Volume};

use crate::compose_deploy;
use crate::compose_fields::{
    depends_on, environment, healthcheck, labels, pull_policy, restart, words,
};
use crate::compose_mounts;
use crate::node::{check_keys, is_empty, MapNode, Node, Path, Result, Warnings};

/// Keys of a service that are read.
const HONOURED: &[&str] = &[
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "ports",
    "volumes",
    "tmpfs",
    "depends_on",
    "healthcheck",
    "restart",
    "deploy",
    "labels",
    "working_dir",
    "pull_policy",
    "init",
    "profiles",
    "cpus",
    "mem_limit",
    "mem_reservation",
    "scale",
];

/// Keys of the Compose specification that are accepted but not honoured, with the reason.
const IGNORED: &[(&str, &str)] = &[
    ("container_name", "the engine names containers"),
    ("hostname", "the engine names the host"),
    ("domainname", "the engine names the host"),
    ("networks", "the services of a workload share one network"),
    (
        "network_mode",
        "the services of a workload share one network",
    ),
    ("expose", "ports are declared with ports"),
    (
        "logging",
        "the engine's log driver applies; read logs with meshctl logs",
    ),
    ("secrets", "secret files are not sent with the manifest"),
    ("configs", "config files are not sent with the manifest"),
    (
        "env_file",
        "the file is not sent with the manifest; list the variables under environment",
    ),
    (
        "label_file",
        "the file is not sent with the manifest; list the labels under labels",
    ),
    ("privileged", "the engine's defaults apply"),
    ("devices", "device access is not supported"),
    ("gpus", "GPUs are not scheduled by the mesh"),
    ("cap_add", "the engine's default capabilities apply"),
    ("cap_drop", "the engine's default capabilities apply"),
    (
        "platform",
        "the engine picks the platform; set beemesh.io/runtime-engine to choose an engine",
    ),
    (
        "runtime",
        "set the beemesh.io/runtime-engine annotation to choose an engine",
    ),
    ("user", "the image's user applies"),
    ("develop", "watch mode is a local development feature"),
];

/// The rest of the Compose service keys: accepted, not honoured, one generic warning.
const OTHER_KNOWN: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "cgroup",
    "cgroup_parent",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpuset",
    "credential_spec",
    "device_cgroup_rules",
    "dns",
    "dns_opt",
    "dns_search",
    "external_links",
    "extra_hosts",
    "group_add",
    "ipc",
    "isolation",
    "links",
    "mac_address",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "post_start",
    "pre_stop",
    "provider",
    "pull_refresh_after",
    "read_only",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tty",
    "ulimits",
    "use_api_socket",
    "userns_mode",
    "uts",
    "volumes_from",
];

/// A parsed service.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) container: Container,
    pub(crate) volumes: Vec<Volume>,
    /// `beemesh.io/` labels: (key, value, where).
    pub(crate) annotations: Vec<(String, String, Path)>,
    pub(crate) profiles: Vec<String>,
    /// Where each `depends_on` entry was written, for errors about unknown services.
    pub(crate) dependency_paths: Vec<Path>,
    /// Host access the service asks for (recorded for the nodes' trust policy).
    pub(crate) host: mesh_protocol::spec::HostAccess,
}

/// Parses service `name`; `declared` maps top-level volume keys to volume names.
pub(crate) fn parse(
    name: &str,
    node: &Node<'_>,
    env: &BTreeMap<String, String>,
    declared: &BTreeMap<String, String>,
    warnings: &mut Warnings,
) -> Result<Service> {
    let valid_name = name
        .bytes()
        .enumerate()
        .all(|(i, b)| b.is_ascii_alphanumeric() || (i > 0 && matches!(b, b'_' | b'.' | b'-')));
    if name.is_empty() || !valid_name {
        return Err(node.err("invalid service name: use letters, digits, '_', '.' and '-'"));
    }
    let m = node.map()?;
    let ignored: Vec<&str> = IGNORED.iter().map(|(k, _)| *k).collect();
    let known = [HONOURED, &ignored, OTHER_KNOWN].concat();
    check_keys(&m, &known)?;
    let image = image(&m, warnings)?;
    let mut c = Container {
        name: name.to_string(),
        image,
        ..Container::default()
    };
    if let Some(n) = m.get("entrypoint") {
        c.command = words(&n)?;
    }
    if let Some(n) = m.get("command") {
        c.args = words(&n)?;
    }
    if let Some(n) = m.get("environment") {
        c.env = environment(&n, env)?;
    }
    if let Some(n) = m.get("ports") {
        c.ports = compose_mounts::ports(&n)?;
    }
    let mounts = compose_mounts::mounts(name, &m, declared, warnings)?;
    c.mounts = mounts.mounts;
    let mut dependency_paths = Vec::new();
    if let Some(n) = m.get("depends_on") {
        for (dependency, path) in depends_on(&n)? {
            c.depends_on.push(dependency);
            dependency_paths.push(path);
        }
    }
    if let Some(n) = m.get("healthcheck") {
        c.healthcheck = healthcheck(&n.map()?)?;
    }
    if let Some(n) = m.get("restart") {
        c.restart = Some(restart(&n, warnings)?);
    }
    compose_deploy::apply(&m, &mut c, warnings)?;
    let mut annotations = Vec::new();
    if let Some(n) = m.get("labels") {
        for (key, value, path) in labels(&n)? {
            if key.starts_with("beemesh.io/") {
                annotations.push((key.clone(), value.clone(), path));
            }
            c.labels.insert(key, value);
        }
    }
    if let Some(n) = m.get("working_dir") {
        c.working_dir = Some(n.non_empty_str()?.to_string());
    }
    if let Some(n) = m.get("pull_policy") {
        c.pull_policy = pull_policy(&n, warnings)?;
    }
    if let Some(n) = m.get("init") {
        c.init = n.lenient_bool()?;
    }
    let profiles = m
        .get("profiles")
        .map(|n| n.strings())
        .transpose()?
        .unwrap_or_default();
    crate::node::warn_ignored(&m, IGNORED, warnings);
    for key in OTHER_KNOWN {
        if let Some(n) = m.get(key).filter(|n| !is_empty(n.value)) {
            warnings.at(&n.path, "not honoured by the mesh");
        }
    }
    Ok(Service {
        container: c,
        volumes: mounts.volumes,
        annotations,
        profiles,
        dependency_paths,
        host: crate::host_access::compose_service(&m),
    })
}

fn image(m: &MapNode<'_>, warnings: &mut Warnings) -> Result<String> {
    let image = m
        .get("image")
        .map(|n| n.non_empty_str().map(str::to_string))
        .transpose()?;
    match (image, m.get("build")) {
        (Some(image), None) => Ok(image),
        (Some(image), Some(build)) => {
            warnings.at(
                &build.path,
                format!("not honoured: the mesh does not build images; {image} is used as is"),
            );
            Ok(image)
        }
        (None, Some(build)) => {
            Err(build
                .err("building images is not supported by the mesh; give the service an image"))
        }
        (None, None) => Err(m.path.key("image").err("missing")),
    }
}
