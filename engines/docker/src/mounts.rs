//! Volumes, mounts and config files of one instance: where each mount of a container comes
//! from, which volumes the instance creates, and which files it writes. Pure functions.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use mesh_protocol::spec::{ConfigKind, Mount, VolumeSource};
use mesh_protocol::WorkloadSpec;
use mesh_runtime::error::{Error, Result};

use crate::labels;

/// How one container mount is provided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountPlan {
    /// `source:target[:ro]` in `HostConfig.Binds`: host paths, engine volumes, config files.
    Bind(String),
    /// An in-memory `emptyDir`: `HostConfig.Tmpfs`.
    Tmpfs(String),
}

/// A named volume the instance creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePlan {
    pub name: String,
    /// [`labels::SCOPE_INSTANCE`] or [`labels::SCOPE_WORKLOAD`].
    pub scope: &'static str,
}

/// A file the instance needs on the host (ConfigMap and Secret volume contents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePlan {
    pub path: PathBuf,
    pub contents: Vec<u8>,
}

/// Host directory holding the files of one config volume of an instance.
pub fn config_dir(state_dir: &Path, project: &str, volume: &str) -> PathBuf {
    state_dir.join(project).join(labels::sanitise(volume))
}

/// How mount `m` is provided; `Err(why)` when it cannot be.
pub fn mount_plan(
    spec: &WorkloadSpec,
    project: &str,
    state_dir: &Path,
    m: &Mount,
) -> std::result::Result<MountPlan, String> {
    if !m.target.starts_with('/') {
        return Err(format!("target {} is not an absolute path", m.target));
    }
    let ro = if m.read_only { ":ro" } else { "" };
    let with_sub = |base: String| match &m.sub_path {
        Some(sub) if sub.split('/').any(|p| p == "..") => {
            Err(format!("subPath {sub} escapes the volume"))
        }
        Some(sub) => Ok(format!(
            "{}/{}",
            base.trim_end_matches('/'),
            sub.trim_start_matches('/')
        )),
        None => Ok(base),
    };
    let no_sub = |what: &str| match &m.sub_path {
        Some(_) => Err(format!(
            "subPath is not supported on {what} volume {}",
            m.source
        )),
        None => Ok(()),
    };
    let Some(volume) = spec.volumes.iter().find(|v| v.name == m.source) else {
        if m.source.starts_with('/') {
            return Ok(MountPlan::Bind(format!(
                "{}:{}{ro}",
                with_sub(m.source.clone())?,
                m.target
            )));
        }
        return Err(format!(
            "source {} is neither a declared volume nor an absolute host path",
            m.source
        ));
    };
    Ok(match &volume.source {
        VolumeSource::Ephemeral { memory: true } => {
            no_sub("in-memory")?;
            MountPlan::Tmpfs(m.target.clone())
        }
        VolumeSource::Ephemeral { memory: false } => {
            no_sub("ephemeral")?;
            MountPlan::Bind(format!(
                "{}:{}{ro}",
                labels::instance_volume_name(project, &volume.name),
                m.target
            ))
        }
        VolumeSource::Named { external } => {
            no_sub("named")?;
            let name = if *external {
                volume.name.clone()
            } else {
                labels::workload_volume_name(spec, &volume.name)
            };
            MountPlan::Bind(format!("{name}:{}{ro}", m.target))
        }
        VolumeSource::HostPath { path } => {
            MountPlan::Bind(format!("{}:{}{ro}", with_sub(path.clone())?, m.target))
        }
        VolumeSource::ConfigMap { name } | VolumeSource::Secret { name } => {
            let kind = if matches!(volume.source, VolumeSource::Secret { .. }) {
                ConfigKind::Secret
            } else {
                ConfigKind::ConfigMap
            };
            if !spec
                .config
                .iter()
                .any(|o| o.kind == kind && &o.name == name)
            {
                return Err(format!("{kind:?} {name} is not part of the workload"));
            }
            let dir = config_dir(state_dir, project, &volume.name)
                .display()
                .to_string();
            MountPlan::Bind(format!("{}:{}:ro", with_sub(dir)?, m.target))
        }
        VolumeSource::Unsupported { kind } => {
            return Err(format!("volume type {kind} is not supported"))
        }
    })
}

/// Volumes the instance creates, deduplicated.
pub fn volumes(spec: &WorkloadSpec, project: &str) -> Vec<VolumePlan> {
    let used: HashSet<&str> = spec
        .containers
        .iter()
        .chain(&spec.init_containers)
        .flat_map(|c| c.mounts.iter().map(|m| m.source.as_str()))
        .collect();
    let mut out = Vec::new();
    for v in spec
        .volumes
        .iter()
        .filter(|v| used.contains(v.name.as_str()))
    {
        match &v.source {
            VolumeSource::Ephemeral { memory: false } => out.push(VolumePlan {
                name: labels::instance_volume_name(project, &v.name),
                scope: labels::SCOPE_INSTANCE,
            }),
            VolumeSource::Named { external: false } => out.push(VolumePlan {
                name: labels::workload_volume_name(spec, &v.name),
                scope: labels::SCOPE_WORKLOAD,
            }),
            _ => {}
        }
    }
    out
}

/// Names of the external volumes the spec mounts (they must exist before install).
pub fn external_volumes(spec: &WorkloadSpec) -> Vec<String> {
    spec.volumes
        .iter()
        .filter(|v| matches!(v.source, VolumeSource::Named { external: true }))
        .map(|v| v.name.clone())
        .collect()
}

/// The files of the ConfigMap and Secret volumes, one per key, under `state_dir/<project>/`.
pub fn files(spec: &WorkloadSpec, project: &str, state_dir: &Path) -> Result<Vec<FilePlan>> {
    let mut out = Vec::new();
    for v in &spec.volumes {
        let (kind, name) = match &v.source {
            VolumeSource::ConfigMap { name } => (ConfigKind::ConfigMap, name),
            VolumeSource::Secret { name } => (ConfigKind::Secret, name),
            _ => continue,
        };
        let Some(obj) = spec
            .config
            .iter()
            .find(|o| o.kind == kind && &o.name == name)
        else {
            continue;
        };
        let dir = config_dir(state_dir, project, &v.name);
        for (key, value) in &obj.data {
            if key.is_empty() || key.contains('/') || key == "." || key == ".." {
                return Err(Error::Invalid(format!(
                    "{kind:?} {name}: key {key:?} is not a valid file name"
                )));
            }
            let contents = if obj.binary_keys.contains(key) {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .map_err(|e| {
                        Error::Invalid(format!(
                            "{kind:?} {name}: key {key} is not valid base64: {e}"
                        ))
                    })?
            } else {
                value.clone().into_bytes()
            };
            out.push(FilePlan {
                path: dir.join(key),
                contents,
            });
        }
    }
    Ok(out)
}
