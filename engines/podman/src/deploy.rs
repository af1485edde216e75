//! Install, start, stop and remove of a pod instance.
//!
//! `install` plays the rendered YAML with `start=false` (Podman 4.3 honours it: the pod and
//! its containers are created, nothing runs), `start` starts the pod. A failed play can leave
//! objects behind (Podman creates volumes and the pod before a container fails), so `install`
//! removes whatever the YAML names before reporting the failure.

use std::collections::BTreeSet;
use std::time::Duration;

use mesh_protocol::spec::VolumeSource;
use mesh_protocol::{WorkloadKind, WorkloadSpec};
use mesh_runtime::error::Result;
use mesh_runtime::{Error, Handle, InstallContext};
use podman_api::opts::{
    ContainerDeleteOpts, ContainerListFilter, ContainerListOpts, PlayKubernetesYamlOpts,
    PodListFilter, PodListOpts, VolumeListFilter, VolumeListOpts,
};

use crate::api::{call, call_idempotent, CallError, API_TIMEOUT, PLAY_TIMEOUT};
use crate::handle::InstanceData;
use crate::names::{Labels, LABEL_INSTANCE, LABEL_MANAGED, LABEL_WORKLOAD};
use crate::render::{render, Plan, Rendered};
use crate::{PodmanEngine, NAME};

impl PodmanEngine {
    /// Renders the spec with the facts of this host (existing volumes, image `PATH`s).
    async fn render_for_host(&self, spec: &WorkloadSpec, labels: &Labels) -> Result<Rendered> {
        let mut new_claims = BTreeSet::new();
        for volume in &spec.volumes {
            if let VolumeSource::Named { external } = volume.source {
                if !self.volume_exists(&volume.name).await? {
                    if external {
                        return Err(Error::Invalid(format!(
                            "external volume {} does not exist on this node",
                            volume.name
                        )));
                    }
                    new_claims.insert(volume.name.clone());
                }
            }
        }
        let images_without_path = self.images_without_path(spec).await?;
        render(&Plan {
            spec,
            labels,
            new_claims: &new_claims,
            images_without_path: &images_without_path,
        })
        .map_err(Error::Invalid)
    }

    pub(crate) async fn volume_exists(&self, name: &str) -> Result<bool> {
        let volumes = self.podman.volumes();
        Ok(call("volume exists", API_TIMEOUT, volumes.get(name).exists()).await?)
    }

    pub(crate) async fn install_pod(
        &self,
        spec: &WorkloadSpec,
        ctx: &InstallContext,
    ) -> Result<Handle> {
        let labels = Labels::new(spec, ctx);
        let pods = self.podman.pods();
        let pod = pods.get(&labels.pod);
        if call("pod exists", API_TIMEOUT, pod.exists()).await? {
            // Same name means same workload, version and replica: a leftover of an earlier
            // attempt (a node crash before the handle was saved). Replace it.
            tracing::warn!(pod = %labels.pod, "replacing a leftover pod of the same version");
            let stale = self.data_for(spec, &labels, self.render_for_host(spec, &labels).await?);
            self.cleanup(&stale).await?;
        }
        let rendered = self.render_for_host(spec, &labels).await?;
        let mut data = self.data_for(spec, &labels, rendered);
        let opts = PlayKubernetesYamlOpts::builder().start(false).build();
        let played = call(
            "kube play",
            PLAY_TIMEOUT,
            self.podman.play_kubernetes_yaml(&opts, data.yaml.clone()),
        )
        .await;
        let failure = match played {
            Ok(report) => {
                let pods = report.pods.unwrap_or_default();
                let errors: Vec<String> = pods
                    .iter()
                    .flat_map(|p| p.container_errors.clone().unwrap_or_default())
                    .collect();
                if errors.is_empty() {
                    if let Some(played) = pods.into_iter().find(|p| p.id.is_some()) {
                        data.pod_id = played.id;
                        data.main_ids = played.containers.unwrap_or_default();
                    }
                    tracing::debug!(pod = %data.pod, id = ?data.pod_id, "kube play created the pod");
                    return Ok(data.into_handle());
                }
                Error::engine(NAME, format!("kube play: {}", errors.join("; ")))
            }
            Err(e) => e.into(),
        };
        if let Err(e) = self.cleanup(&data).await {
            tracing::warn!(pod = %data.pod, error = %e, "cleanup after a failed install");
        }
        Err(failure)
    }

    fn data_for(&self, spec: &WorkloadSpec, labels: &Labels, rendered: Rendered) -> InstanceData {
        InstanceData {
            pod: labels.pod.clone(),
            pod_id: None,
            workload: labels.workload.clone(),
            job: spec.runs_to_completion() || spec.kind == WorkloadKind::Job,
            containers: rendered.containers,
            main_ids: Vec::new(),
            configmaps: rendered.configmaps,
            volumes: rendered.claims,
            yaml: rendered.yaml,
        }
    }

    pub(crate) async fn start_pod(&self, handle: &Handle) -> Result<()> {
        let data = InstanceData::from_handle(handle);
        // A pod started again (an update's rollback) must not be answered from its last run.
        self.exits.forget(&data.main_ids);
        let pods = self.podman.pods();
        match call("pod start", API_TIMEOUT, pods.get(&handle.instance).start()).await {
            Ok(report) => match report.errs.unwrap_or_default() {
                errs if errs.is_empty() => {
                    self.wait_for_job(&data);
                    Ok(())
                }
                errs => Err(Error::engine(
                    NAME,
                    format!("pod start: {}", errs.join("; ")),
                )),
            },
            // 304: already running.
            Err(e) if e.code() == Some(304) => Ok(()),
            Err(e) if e.is_not_found() => Err(Error::NotFound {
                engine: NAME.to_string(),
                instance: handle.instance.clone(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Stops the pod, killing what still runs after `grace` (whole seconds, at least one:
    /// Podman 4.3 reads a timeout of 0 as its default of 10 s). A missing pod is stopped.
    pub(crate) async fn stop_pod(&self, pod: &str, grace: Duration) -> Result<()> {
        let secs = usize::try_from(grace.as_millis().div_ceil(1000))
            .unwrap_or(usize::MAX)
            .max(1);
        let pods = self.podman.pods();
        call_idempotent(
            "pod stop",
            grace + API_TIMEOUT,
            pods.get(pod).stop_with_timeout(secs),
        )
        .await?;
        Ok(())
    }

    /// Removes everything of an instance: the equivalent of `podman kube down` for its pod,
    /// anything else labelled with the instance (leftovers of a crash), the ConfigMap volumes,
    /// and the workload's named volumes no container uses any more. Idempotent; carries on past
    /// failures and reports the first.
    pub(crate) async fn cleanup(&self, data: &InstanceData) -> Result<()> {
        self.checks.forget_pod(&data.pod);
        self.exits.forget(&data.main_ids);
        self.jobs.forget(&data.pod);
        let mut first: Option<Error> = None;
        let mut note = |r: Result<(), CallError>| {
            if let Err(e) = r {
                first.get_or_insert(e.into());
            }
        };
        let pods = self.podman.pods();
        let containers = self.podman.containers();
        let volumes = self.podman.volumes();
        // Removing a running pod stops it with the containers' own timeout (10 s): kill
        // first. Callers that want a graceful end call `stop` before.
        match call("pod kill", API_TIMEOUT, pods.get(&data.pod).kill()).await {
            Err(CallError::Failed(e)) => note(Err(CallError::Failed(e))),
            // Gone, or nothing running (409): either way there is nothing to kill.
            Ok(_) | Err(CallError::Status { .. }) => {}
        }
        note(call_idempotent("pod remove", API_TIMEOUT, pods.get(&data.pod).remove()).await);

        let by_instance = PodListOpts::builder()
            .filter([PodListFilter::LabelKeyVal(
                LABEL_INSTANCE.into(),
                data.pod.clone(),
            )])
            .build();
        match call("pod list", API_TIMEOUT, pods.list(&by_instance)).await {
            Ok(list) => {
                for id in list.into_iter().filter_map(|p| p.id) {
                    note(call_idempotent("pod remove", API_TIMEOUT, pods.get(id).remove()).await);
                }
            }
            Err(e) => note(Err(e)),
        }
        let by_instance = ContainerListOpts::builder()
            .all(true)
            .filter([ContainerListFilter::LabelKeyVal(
                LABEL_INSTANCE.into(),
                data.pod.clone(),
            )])
            .build();
        let force = ContainerDeleteOpts::builder()
            .force(true)
            .volumes(true)
            .build();
        match call("container list", API_TIMEOUT, containers.list(&by_instance)).await {
            Ok(list) => {
                for id in list.into_iter().filter_map(|c| c.id) {
                    let c = containers.get(id);
                    note(call_idempotent("container remove", API_TIMEOUT, c.delete(&force)).await);
                }
            }
            Err(e) => note(Err(e)),
        }
        // ConfigMap volumes are named after the pod: nothing else can use them.
        for name in &data.configmaps {
            note(call_idempotent("volume remove", API_TIMEOUT, volumes.get(name).remove()).await);
        }
        // Named volumes outlive a version (the next one shares them): remove those of the
        // workload that no container uses any more. Podman refuses (409) while one does.
        let mut candidates: BTreeSet<String> = data.volumes.iter().cloned().collect();
        if !data.workload.is_empty() {
            let by_workload = VolumeListOpts::builder()
                .filter([VolumeListFilter::LabelKeyVal(
                    LABEL_WORKLOAD.into(),
                    data.workload.clone(),
                )])
                .build();
            match call("volume list", API_TIMEOUT, volumes.list(&by_workload)).await {
                Ok(list) => candidates.extend(
                    list.into_iter()
                        .filter(|v| v.labels.get(LABEL_MANAGED).map(String::as_str) == Some("true"))
                        .map(|v| v.name),
                ),
                Err(e) => note(Err(e)),
            }
        }
        for name in candidates {
            match call_idempotent("volume remove", API_TIMEOUT, volumes.get(&name).delete()).await {
                Err(e) if e.code() == Some(409) => {
                    tracing::debug!(volume = %name, "volume still in use; kept")
                }
                other => note(other),
            }
        }
        first.map_or(Ok(()), Err)
    }
}
