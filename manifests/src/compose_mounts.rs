//! Compose `ports`, `volumes` and `tmpfs` of one service, short and long syntax.
//! Bind mounts become `HostPath` volumes named after their host path, anonymous volumes and
//! tmpfs get a name derived from the service, and named volumes must be declared under the
//! top-level `volumes`.

use std::collections::BTreeMap;

use mesh_protocol::spec::{Mount, Port, Volume, VolumeSource};
use serde_yaml::Value;

use crate::compose_syntax::{self, ShortVolume};
use crate::node::{check_keys, MapNode, Node, Result, Warnings};

/// Mounts of one service and the volumes they need.
#[derive(Debug, Default)]
pub(crate) struct Mounts {
    pub(crate) mounts: Vec<Mount>,
    pub(crate) volumes: Vec<Volume>,
}

impl Mounts {
    fn add(&mut self, volume: Volume, target: String, read_only: bool, sub_path: Option<String>) {
        self.mounts.push(Mount {
            source: volume.name.clone(),
            target,
            read_only,
            sub_path,
        });
        if !self.volumes.iter().any(|v| v.name == volume.name) {
            self.volumes.push(volume);
        }
    }

    fn ephemeral(&mut self, service: &str, memory: bool, target: String) {
        let kind = if memory { "tmpfs" } else { "anon" };
        let name = format!("{service}-{kind}-{}", self.mounts.len());
        let volume = Volume {
            name,
            source: VolumeSource::Ephemeral { memory },
        };
        self.add(volume, target, false, None);
    }

    fn bind(
        &mut self,
        source: &str,
        target: String,
        read_only: bool,
        at: &Node<'_>,
        warnings: &mut Warnings,
    ) {
        if !source.starts_with('/') {
            warnings.at(
                &at.path,
                format!(
                    "{source} is a path on the node that runs the workload, not on your machine"
                ),
            );
        }
        let volume = Volume {
            name: source.to_string(),
            source: VolumeSource::HostPath {
                path: source.to_string(),
            },
        };
        self.add(volume, target, read_only, None);
    }
}

/// `ports:` entries: `80`, `"8080:80/udp"`, ranges, or `{target, published, host_ip, protocol}`.
pub(crate) fn ports(node: &Node<'_>) -> Result<Vec<Port>> {
    let mut out = Vec::new();
    for item in node.seq()? {
        match item.value {
            Value::Mapping(_) => out.push(long_port(&item.map()?)?),
            _ => {
                let spec = item.scalar_string()?;
                let ports = compose_syntax::port_spec(&spec)
                    .map_err(|why| item.err(format!("invalid port {spec:?}: {why}")))?;
                out.extend(ports);
            }
        }
    }
    Ok(out)
}

fn long_port(m: &MapNode<'_>) -> Result<Port> {
    check_keys(
        m,
        &[
            "target",
            "published",
            "host_ip",
            "protocol",
            "mode",
            "name",
            "app_protocol",
        ],
    )?;
    let target = m.req("target")?;
    let container = compose_syntax::range(&target.scalar_string()?).map_err(|e| target.err(e))?;
    if container.0 != container.1 {
        return Err(target.err("a port range needs the short syntax (\"8000-8010:8000-8010\")"));
    }
    let host_port = match m.get("published") {
        None => None,
        Some(p) => {
            let text = p.scalar_string()?;
            let (low, high) = compose_syntax::range(&text).map_err(|e| p.err(e))?;
            if low != high {
                return Err(p.err("a published range needs the short syntax"));
            }
            Some(low)
        }
    };
    let protocol = match m.get("protocol") {
        None => mesh_protocol::spec::PortProtocol::Tcp,
        Some(p) => compose_syntax::protocol(p.str()?).map_err(|e| p.err(e))?,
    };
    Ok(Port {
        container_port: container.0,
        host_port,
        host_ip: m
            .get("host_ip")
            .map(|n| n.str().map(str::to_string))
            .transpose()?,
        protocol,
        name: m
            .get("name")
            .map(|n| n.str().map(str::to_string))
            .transpose()?,
    })
}

/// `volumes:` and `tmpfs:` of service `service`. `declared` maps top-level volume keys to
/// the volume names the engine uses.
pub(crate) fn mounts(
    service: &str,
    m: &MapNode<'_>,
    declared: &BTreeMap<String, String>,
    warnings: &mut Warnings,
) -> Result<Mounts> {
    let mut out = Mounts::default();
    if let Some(list) = m.get("volumes") {
        for item in list.seq()? {
            match item.value {
                Value::Mapping(_) => long_volume(service, &item, declared, &mut out, warnings)?,
                _ => {
                    let spec = item.str()?;
                    let parsed = compose_syntax::volume_spec(spec).map_err(|e| item.err(e))?;
                    match parsed {
                        ShortVolume::Anonymous { target } => out.ephemeral(service, false, target),
                        ShortVolume::Bind {
                            source,
                            target,
                            read_only,
                        } => {
                            out.bind(&source, target, read_only, &item, warnings);
                        }
                        ShortVolume::Named {
                            name,
                            target,
                            read_only,
                        } => {
                            let volume = named(&name, declared, &item)?;
                            out.add(volume, target, read_only, None);
                        }
                    }
                }
            }
        }
    }
    if let Some(tmpfs) = m.get("tmpfs") {
        let targets = match tmpfs.value {
            Value::String(s) => vec![s.clone()],
            _ => tmpfs.strings()?,
        };
        for target in targets {
            let path = target.split(':').next().unwrap_or_default().to_string();
            if !path.starts_with('/') {
                return Err(tmpfs.err(format!("tmpfs target {path:?} must be an absolute path")));
            }
            out.ephemeral(service, true, path);
        }
    }
    Ok(out)
}

fn named(name: &str, declared: &BTreeMap<String, String>, at: &Node<'_>) -> Result<Volume> {
    let resolved = declared.get(name).ok_or_else(|| {
        at.err(format!(
            "volume {name:?} is not declared under the top-level volumes"
        ))
    })?;
    Ok(Volume {
        name: resolved.clone(),
        source: VolumeSource::Named { external: false },
    })
}

fn long_volume(
    service: &str,
    item: &Node<'_>,
    declared: &BTreeMap<String, String>,
    out: &mut Mounts,
    warnings: &mut Warnings,
) -> Result<()> {
    let m = item.map()?;
    check_keys(
        &m,
        &[
            "type",
            "source",
            "target",
            "read_only",
            "bind",
            "volume",
            "tmpfs",
            "image",
            "consistency",
        ],
    )?;
    let target_node = m.req("target")?;
    let target = target_node.non_empty_str()?.to_string();
    if !target.starts_with('/') {
        return Err(target_node.err("must be an absolute path"));
    }
    let read_only = m
        .get("read_only")
        .map(|n| n.lenient_bool())
        .transpose()?
        .unwrap_or(false);
    let source = m
        .get("source")
        .map(|n| n.str().map(str::to_string))
        .transpose()?;
    let kind_node = m.get("type");
    let kind = kind_node
        .as_ref()
        .map(|n| n.str())
        .transpose()?
        .unwrap_or("volume");
    match (kind, source) {
        ("bind", Some(source)) => out.bind(&source, target, read_only, item, warnings),
        ("bind", None) => {
            return Err(m
                .path
                .key("source")
                .err("missing (a bind mount needs a host path)"))
        }
        ("volume", None) => out.ephemeral(service, false, target),
        ("volume", Some(name)) => {
            let sub_path = match m.get("volume") {
                Some(opts) => opts
                    .map()?
                    .get("subpath")
                    .map(|n| n.str().map(str::to_string))
                    .transpose()?,
                None => None,
            };
            let volume = named(&name, declared, item)?;
            out.add(volume, target, read_only, sub_path);
        }
        ("tmpfs", _) => out.ephemeral(service, true, target),
        (other @ ("npipe" | "image" | "cluster"), _) => {
            warnings.at(
                &item.path,
                format!("not honoured: {other} volumes are not supported by the mesh"),
            );
            let volume = Volume {
                name: format!("{service}-{other}-{}", out.mounts.len()),
                source: VolumeSource::Unsupported {
                    kind: other.to_string(),
                },
            };
            out.add(volume, target, read_only, None);
        }
        (other, _) => {
            let at = kind_node.map_or_else(|| m.path.clone(), |n| n.path);
            return Err(at.err(format!(
                "unknown volume type {other:?}: use volume, bind or tmpfs"
            )));
        }
    }
    Ok(())
}
