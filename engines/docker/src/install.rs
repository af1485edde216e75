//! Prepare (images and external volumes must be there) and Install (create the network,
//! volumes, config files and containers of one instance, none started). A failing install
//! removes everything it created before returning the error.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{CreateContainerOptions, CreateImageOptions};
use bollard::Docker;
use futures::StreamExt as _;
use mesh_protocol::spec::PullPolicy;
use mesh_protocol::WorkloadSpec;
use mesh_runtime::engine::{Handle, InstallContext};
use mesh_runtime::error::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::container::{self, Context, Slot};
use crate::{client, labels, mounts, plan, DockerEngine};

/// What `Handle::data` holds: enough to find every object again without listing by label
/// (which `remove` and `recover` do as well, so a lost or stale handle never leaks).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandleData {
    /// `namespace/name`.
    pub workload: String,
    pub version: String,
    pub node: String,
    pub network: String,
    pub network_id: String,
    /// Volumes that live and die with this instance.
    pub volumes: Vec<String>,
    /// Named volumes shared by the workload's instances on this node.
    pub shared_volumes: Vec<String>,
    /// Init containers in run order, then main containers in start order.
    pub containers: Vec<ContainerRef>,
    /// Host directory of the instance's ConfigMap and Secret files, if any.
    pub files: Option<PathBuf>,
    pub run_to_completion: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    pub id: String,
    pub name: String,
    pub service: String,
    #[serde(default)]
    pub init: bool,
}

impl HandleData {
    /// The data of a handle; default (empty) when absent or written by another version.
    pub fn of(handle: &Handle) -> HandleData {
        serde_json::from_value(handle.data.clone()).unwrap_or_default()
    }
}

impl DockerEngine {
    pub(crate) async fn prepare_images(&self, spec: &WorkloadSpec) -> Result<()> {
        let docker = self.client.docker().await?;
        let mut seen = BTreeSet::new();
        for c in spec.init_containers.iter().chain(&spec.containers) {
            if seen.insert((c.image.clone(), c.pull_policy as u8)) {
                self.ensure_image(&docker, &c.image, c.pull_policy).await?;
            }
        }
        for name in mounts::external_volumes(spec) {
            if let Err(e) = docker.inspect_volume(&name).await {
                let why = if client::is_not_found(&e) {
                    "it does not exist".to_string()
                } else {
                    client::describe(&e)
                };
                return Err(Error::Invalid(format!(
                    "external volume {name} cannot be used: {why}"
                )));
            }
        }
        Ok(())
    }

    async fn ensure_image(&self, docker: &Docker, image: &str, policy: PullPolicy) -> Result<()> {
        let unavailable = |why: String| {
            Error::Invalid(format!(
                "image {image} is not available locally and could not be pulled: {why}"
            ))
        };
        let local = match docker.inspect_image(image).await {
            Ok(_) => true,
            Err(e) if client::is_not_found(&e) => false,
            Err(e) => return Err(self.client.api(&format!("inspect image {image}"), e)),
        };
        match (policy, local) {
            (PullPolicy::Never, true) | (PullPolicy::IfNotPresent, true) => Ok(()),
            (PullPolicy::Never, false) => Err(unavailable("pull policy is Never".to_string())),
            (PullPolicy::Always, true) => {
                if let Err(why) = self.pull(docker, image).await {
                    tracing::warn!(engine = %self.name, image, %why, "pull failed; using the local image");
                }
                Ok(())
            }
            (_, false) => {
                self.pull(docker, image).await.map_err(unavailable)?;
                match docker.inspect_image(image).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(unavailable(format!(
                        "pulled, but then: {}",
                        client::describe(&e)
                    ))),
                }
            }
        }
    }

    /// Pulls `image`, bounded by the engine's pull timeout. `Err(why)` on failure.
    async fn pull(&self, docker: &Docker, image: &str) -> std::result::Result<(), String> {
        let (from_image, tag) = split_reference(image);
        let options = CreateImageOptions {
            from_image: Some(from_image.to_string()),
            tag: tag.map(str::to_string),
            ..Default::default()
        };
        let drain = async {
            let mut stream = docker.create_image(Some(options), None, None);
            while let Some(item) = stream.next().await {
                item.map_err(|e| client::describe(&e))?;
            }
            Ok(())
        };
        match tokio::time::timeout(self.pull_timeout, drain).await {
            Ok(result) => result,
            Err(_) => Err(format!("pull timed out after {:?}", self.pull_timeout)),
        }
    }

    pub(crate) async fn install_instance(
        &self,
        spec: &WorkloadSpec,
        ctx: &InstallContext,
    ) -> Result<Handle> {
        plan::validate(spec)?;
        let project = labels::project_name(spec, ctx.replica);
        // Leftovers of this very instance (an install interrupted by a crash) would collide
        // by name; the instance is the same workload version and replica, so it goes.
        self.remove_instance(&project, &HandleData::default())
            .await?;
        let mut data = HandleData {
            workload: spec.id().to_string(),
            version: labels::version_of(spec),
            node: ctx.node.clone(),
            network: project.clone(),
            run_to_completion: spec.runs_to_completion(),
            ..Default::default()
        };
        match self.create_all(spec, ctx, &project, &mut data).await {
            Ok(()) => Ok(Handle {
                engine: self.name.clone(),
                instance: project,
                data: serde_json::to_value(&data).map_err(|e| self.client.err(e.to_string()))?,
            }),
            Err(e) => {
                if let Err(cleanup) = self.remove_instance(&project, &data).await {
                    tracing::warn!(engine = %self.name, instance = %project, error = %cleanup, "cleanup after a failed install failed");
                }
                Err(e)
            }
        }
    }

    async fn create_all(
        &self,
        spec: &WorkloadSpec,
        ctx: &InstallContext,
        project: &str,
        data: &mut HandleData,
    ) -> Result<()> {
        let docker = self.client.docker().await?;
        let base = labels::base(&self.name, spec, &ctx.node, project);
        // A project of one container has nobody to reach by service name: it joins the
        // daemon's default network, as `docker run` does, rather than pay for a network of
        // its own (creating one sets up a bridge and firewall rules: the slowest step of a
        // one-service install). Two containers or more get the project's network.
        let own_network = plan::container_count(spec) > 1;
        if own_network {
            let network = docker
                .create_network(NetworkCreateRequest {
                    name: project.to_string(),
                    driver: Some("bridge".to_string()),
                    labels: Some(base.clone()),
                    ..Default::default()
                })
                .await
                .map_err(|e| self.client.api(&format!("create network {project}"), e))?;
            data.network_id = network.id;
        } else {
            data.network.clear();
        }

        for v in mounts::volumes(spec, project) {
            let mut volume_labels = base.clone();
            volume_labels.insert(labels::VOLUME_SCOPE.to_string(), v.scope.to_string());
            docker
                .create_volume(VolumeCreateRequest {
                    name: Some(v.name.clone()),
                    labels: Some(volume_labels),
                    ..Default::default()
                })
                .await
                .map_err(|e| self.client.api(&format!("create volume {}", v.name), e))?;
            if v.scope == labels::SCOPE_INSTANCE {
                data.volumes.push(v.name);
            } else {
                data.shared_volumes.push(v.name);
            }
        }

        let files = mounts::files(spec, project, &self.state_dir)?;
        if !files.is_empty() {
            let dir = self.state_dir.join(project);
            data.files = Some(dir.clone());
            write_files(&dir, &files).map_err(|e| {
                self.client.err(format!(
                    "cannot write config files under {}: {e}",
                    dir.display()
                ))
            })?;
        }

        let cctx = Context {
            engine: &self.name,
            node: &ctx.node,
            project,
            network: if own_network { project } else { "" },
            state_dir: &self.state_dir,
        };
        let mut slots = Vec::new();
        for (i, c) in spec.init_containers.iter().enumerate() {
            slots.push((
                c,
                Slot {
                    init: true,
                    order: i as u32,
                },
                1,
            ));
        }
        for (pos, i) in plan::start_order(spec)?.into_iter().enumerate() {
            let c = &spec.containers[i];
            slots.push((
                c,
                Slot {
                    init: false,
                    order: pos as u32,
                },
                c.replicas.unwrap_or(1),
            ));
        }
        for (c, slot, replicas) in slots {
            let body = container::body(spec, c, &cctx, slot)?;
            for index in 0..replicas {
                let name = labels::container_name(project, &c.name, index);
                let options = CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                };
                let created = docker
                    .create_container(Some(options), body.clone())
                    .await
                    .map_err(|e| {
                        self.client
                            .api(&format!("create container {name} ({})", c.name), e)
                    })?;
                data.containers.push(ContainerRef {
                    id: created.id,
                    name,
                    service: c.name.clone(),
                    init: slot.init,
                });
            }
        }
        Ok(())
    }
}

/// Writes the instance's config files: the instance directory is private to root, the files
/// readable by any user of the container (as Kubernetes' default mode 0644).
fn write_files(dir: &std::path::Path, files: &[mounts::FilePlan]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for f in files {
        if let Some(parent) = f.path.parent() {
            std::fs::create_dir_all(parent)?;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
        }
        std::fs::write(&f.path, &f.contents)?;
        std::fs::set_permissions(&f.path, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

/// `(repository, tag)` of an image reference; no tag for digests. A missing tag is `latest`
/// (without it the daemon would pull every tag).
pub fn split_reference(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => (
            &image[..last_slash + colon],
            Some(&image[last_slash + colon + 1..]),
        ),
        None => (image, Some("latest")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(split_reference("busybox"), ("busybox", Some("latest")));
        assert_eq!(
            split_reference("localhost:5000/app:1.2"),
            ("localhost:5000/app", Some("1.2"))
        );
        assert_eq!(
            split_reference("localhost:5000/app"),
            ("localhost:5000/app", Some("latest"))
        );
        assert_eq!(split_reference("app@sha256:abc"), ("app@sha256:abc", None));
    }

    #[test]
    fn handle_data_survives_json_and_tolerates_garbage() {
        let data = HandleData {
            workload: "default/web".into(),
            containers: vec![ContainerRef {
                id: "abc".into(),
                name: "mesh-web-1-web-0".into(),
                service: "web".into(),
                init: false,
            }],
            ..Default::default()
        };
        let handle = Handle {
            engine: "docker".into(),
            instance: "mesh-web-1".into(),
            data: serde_json::to_value(&data).expect("serialises"),
        };
        assert_eq!(HandleData::of(&handle), data);
        let stale = Handle {
            data: serde_json::json!("not an object"),
            ..handle
        };
        assert_eq!(HandleData::of(&stale), HandleData::default());
    }
}
