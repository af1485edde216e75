//! Remove: containers, network, volumes and files of one instance, found both through the
//! handle and by label so that leftovers of an interrupted install or a lost handle go too.
//! Idempotent: what is already gone is not an error.

use std::collections::BTreeSet;

use bollard::query_parameters::{
    ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions,
};
use bollard::Docker;
use mesh_runtime::error::Result;

use crate::install::HandleData;

/// How long removal waits for removed containers to disappear before it removes their
/// network and volumes, and how often it looks.
const CONTAINERS_GONE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const CONTAINERS_GONE_POLL: std::time::Duration = std::time::Duration::from_millis(50);
use crate::{client, labels, DockerEngine};

impl DockerEngine {
    /// Removes instance `project`. `data` adds what the handle knows to what labels find.
    pub(crate) async fn remove_instance(&self, project: &str, data: &HandleData) -> Result<()> {
        let conn = self.connection().await?;
        let docker = &conn.docker;
        let members = self.members(&conn, project).await?;

        // The workload id, to find its shared volumes: from the handle, else from a container.
        let workload = match members.iter().find(|m| !m.workload.is_empty()) {
            _ if !data.workload.is_empty() => data.workload.clone(),
            Some(m) => m.workload.clone(),
            None => String::new(),
        };

        let ids: BTreeSet<&str> = members
            .iter()
            .map(|m| m.id.as_str())
            .chain(data.containers.iter().map(|c| c.id.as_str()))
            .collect();
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        for id in ids {
            match docker.remove_container(id, Some(options.clone())).await {
                Ok(()) => {}
                // 404: gone already; 409: a removal is already in progress.
                Err(e) if matches!(client::status_code(&e), Some(404) | Some(409)) => {}
                Err(e) => return Err(self.client.api(&format!("remove container {id}"), e)),
            }
        }

        // A removal answered 409 (one already in progress), or answered by Podman before the
        // container let go of its network and volumes, would make their removal fail: wait,
        // bounded, until no container of the instance is listed.
        let deadline = tokio::time::Instant::now() + CONTAINERS_GONE_TIMEOUT;
        while !self.members(&conn, project).await?.is_empty()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(CONTAINERS_GONE_POLL).await;
        }

        // One after the other: Podman's compat API, asked for both at once, has answered a
        // label-filtered volume list with another instance's volume.
        self.remove_networks(docker, project, data).await?;
        self.remove_volumes(docker, project, &workload, data)
            .await?;

        let dir = data
            .files
            .clone()
            .unwrap_or_else(|| self.state_dir.join(project));
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self
                .client
                .err(format!("cannot remove {}: {e}", dir.display()))),
        }
    }

    async fn remove_networks(
        &self,
        docker: &Docker,
        project: &str,
        data: &HandleData,
    ) -> Result<()> {
        let options = ListNetworksOptions {
            filters: Some(labels::filters(&[
                (labels::INSTANCE, project),
                (labels::ENGINE, &self.name),
            ])),
        };
        let listed = docker
            .list_networks(Some(options))
            .await
            .map_err(|e| self.client.api(&format!("list networks of {project}"), e))?;
        let pairs = [
            (labels::INSTANCE, project),
            (labels::ENGINE, self.name.as_str()),
        ];
        let mut names: BTreeSet<String> = listed
            .into_iter()
            .filter(|n| labels::matches(n.labels.as_ref().unwrap_or(&Default::default()), &pairs))
            .filter_map(|n| n.id.or(n.name))
            .collect();
        if !data.network_id.is_empty() {
            names.insert(data.network_id.clone());
        }
        for name in names {
            match docker.remove_network(&name).await {
                Ok(()) => {}
                Err(e) if client::is_not_found(&e) => {}
                Err(e) => return Err(self.client.api(&format!("remove network {name}"), e)),
            }
        }
        Ok(())
    }

    /// Instance volumes always go; shared (workload) volumes go once no container uses them.
    async fn remove_volumes(
        &self,
        docker: &Docker,
        project: &str,
        workload: &str,
        data: &HandleData,
    ) -> Result<()> {
        let mut mine = BTreeSet::new();
        let mut shared: BTreeSet<String> = data.shared_volumes.iter().cloned().collect();
        for (name, scope) in self
            .list_volumes(docker, &[(labels::INSTANCE, project)])
            .await?
        {
            if scope == labels::SCOPE_WORKLOAD {
                shared.insert(name);
            } else {
                mine.insert(name);
            }
        }
        mine.extend(data.volumes.iter().cloned());
        if !workload.is_empty() {
            let pairs = [
                (labels::WORKLOAD, workload),
                (labels::VOLUME_SCOPE, labels::SCOPE_WORKLOAD),
            ];
            shared.extend(
                self.list_volumes(docker, &pairs)
                    .await?
                    .into_iter()
                    .map(|(name, _)| name),
            );
        }
        for name in &mine {
            match docker
                .remove_volume(name, None::<RemoveVolumeOptions>)
                .await
            {
                Ok(()) => {}
                Err(e) if client::is_not_found(&e) => {}
                Err(e) => return Err(self.client.api(&format!("remove volume {name}"), e)),
            }
        }
        for name in shared.difference(&mine) {
            match docker
                .remove_volume(name, None::<RemoveVolumeOptions>)
                .await
            {
                Ok(()) => {}
                Err(e) if client::is_not_found(&e) => {}
                // In use by another instance of the workload (an update in progress): it stays.
                Err(e) if client::status_code(&e) == Some(409) => {
                    tracing::debug!(engine = %self.name, volume = %name, "shared volume still in use; kept");
                }
                Err(e) => return Err(self.client.api(&format!("remove volume {name}"), e)),
            }
        }
        Ok(())
    }

    /// `(name, scope)` of the engine's volumes carrying all of `pairs`.
    async fn list_volumes(
        &self,
        docker: &Docker,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<(String, String)>> {
        let mut all = pairs.to_vec();
        all.push((labels::ENGINE, &self.name));
        let options = ListVolumesOptions {
            filters: Some(labels::filters(&all)),
        };
        let listed = docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| self.client.api("list volumes", e))?;
        let volumes = listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter(|v| labels::matches(&v.labels, &all));
        Ok(volumes
            .map(|v| {
                let scope = v
                    .labels
                    .get(labels::VOLUME_SCOPE)
                    .cloned()
                    .unwrap_or_default();
                (v.name, scope)
            })
            .collect())
    }
}
