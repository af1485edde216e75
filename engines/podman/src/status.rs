//! Status and recovery of a pod instance, from pod and container inspection (health from
//! Podman's checks, or from the engine's own where Podman's are overdue: see `health`).

use mesh_runtime::error::Result;
use mesh_runtime::{Handle, Health, InstanceState, InstanceStatus, Recovered};
use podman_api::models::{InspectContainerData, InspectPodData};
use podman_api::opts::{PodListFilter, PodListOpts};

use crate::api::{call, call_opt, API_TIMEOUT};
use crate::handle::InstanceData;
use crate::names::LABEL_INSTANCE;
use crate::PodmanEngine;

/// What the status of an instance is computed from, for one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerView {
    /// Container name without the `<pod>-` prefix.
    pub name: String,
    /// Podman state: `created`, `running`, `exited`, …
    pub state: String,
    pub exit_code: i32,
    pub oom_killed: bool,
    /// Why Podman could not run it (`executable file not found`, …).
    pub error: String,
    pub restarts: u32,
    /// Health status when the container has a health check.
    pub health: Option<String>,
    /// Output of the last health check.
    pub health_output: String,
}

/// The instance status from the pod state and its (non-infra) containers.
pub fn summarize(pod_state: &str, containers: &[ContainerView]) -> InstanceStatus {
    let count = |states: &[&str]| {
        containers
            .iter()
            .filter(|c| states.contains(&c.state.as_str()))
            .count()
    };
    let running = count(&["running", "paused", "restarting", "stopping"]);
    let created = count(&["created", "configured", "initialized"]);
    let total = containers.len();
    let restarts = containers.iter().map(|c| c.restarts).sum();
    let mut detail = format!("pod {pod_state}, {running}/{total} containers running");
    let failed = |reason: String| InstanceState::Failed { reason };
    let state = if total == 0 {
        failed("the pod has no containers".to_string())
    } else if let Some(c) = containers.iter().find(|c| c.oom_killed) {
        failed(format!("container {} was OOM-killed", c.name))
    } else if let Some(c) = containers
        .iter()
        .find(|c| !c.error.is_empty() && c.state != "running")
    {
        failed(format!("container {}: {}", c.name, c.error))
    } else if running > 0 {
        InstanceState::Running
    } else if let Some(c) = containers
        .iter()
        .find(|c| c.health.as_deref() == Some("unhealthy"))
    {
        // Podman acts on a failing liveness check by restarting the container, which can
        // leave it stopped.
        failed(format!(
            "container {} stopped after failing its health check: {}",
            c.name,
            c.health_output.trim()
        ))
    } else if created > 0 {
        InstanceState::Created
    } else {
        let codes: Vec<String> = containers
            .iter()
            .map(|c| format!("{}={}", c.name, c.exit_code))
            .collect();
        detail.push_str(&format!(", exit codes {}", codes.join(" ")));
        let code = containers
            .iter()
            .map(|c| c.exit_code)
            .find(|&c| c != 0)
            .unwrap_or(0);
        InstanceState::Exited { code }
    };
    let health = if state != InstanceState::Running {
        Health::NoCheck
    } else {
        let checked: Vec<&ContainerView> = containers
            .iter()
            .filter(|c| c.state == "running" && c.health.is_some())
            .collect();
        let is = |s: &str| checked.iter().find(|c| c.health.as_deref() == Some(s));
        if let Some(c) = is("unhealthy") {
            Health::Unhealthy {
                reason: format!("container {}: {}", c.name, c.health_output.trim()),
            }
        } else if checked.is_empty() {
            Health::NoCheck
        } else if checked
            .iter()
            .all(|c| c.health.as_deref() == Some("healthy"))
        {
            Health::Healthy
        } else {
            Health::Starting
        }
    };
    InstanceStatus {
        state,
        health,
        restarts,
        detail,
    }
}

fn view(pod: &str, c: &InspectContainerData) -> ContainerView {
    let name = c.name.clone().unwrap_or_default();
    let configured = c
        .config
        .as_ref()
        .and_then(|cfg| cfg.healthcheck.as_ref())
        .and_then(|h| h.test.as_ref());
    let has_check = configured.is_some_and(|t| !t.is_empty() && t[0] != "NONE");
    let mut v = ContainerView {
        name: name
            .strip_prefix(&format!("{pod}-"))
            .unwrap_or(&name)
            .to_string(),
        restarts: u32::try_from(c.restart_count.unwrap_or(0)).unwrap_or(0),
        ..ContainerView::default()
    };
    if let Some(state) = &c.state {
        v.state = state.status.clone().unwrap_or_default();
        v.exit_code = state.exit_code.unwrap_or(0);
        v.oom_killed = state.oom_killed.unwrap_or(false);
        v.error = state.error.clone().unwrap_or_default();
        let health = state.health.as_ref();
        v.health = has_check.then(|| health.and_then(|h| h.status.clone()).unwrap_or_default());
        v.health_output = health
            .and_then(|h| h.log.as_ref())
            .and_then(|log| log.last())
            .and_then(|l| l.output.clone())
            .unwrap_or_default();
    }
    v
}

impl PodmanEngine {
    /// The pod and its containers' views, or `None` when the pod does not exist.
    async fn inspect_pod(&self, pod: &str) -> Result<Option<(InspectPodData, Vec<ContainerView>)>> {
        let pods = self.podman.pods();
        let Some(info) = call_opt("pod inspect", API_TIMEOUT, pods.get(pod).inspect()).await?
        else {
            return Ok(None);
        };
        let infra = info.infra_container_id.clone().unwrap_or_default();
        let containers = self.podman.containers();
        let mut views = Vec::new();
        for member in info.containers.iter().flatten() {
            let Some(id) = member.id.as_deref().filter(|id| *id != infra) else {
                continue;
            };
            let container = containers.get(id);
            // Init containers are removed once they ran: skip members that are gone.
            let Some(c) = call_opt("container inspect", API_TIMEOUT, container.inspect()).await?
            else {
                continue;
            };
            let mut v = view(pod, &c);
            if v.state == "running" && v.health.is_some() {
                let now = i64::try_from(mesh_runtime::now_millis()).unwrap_or(i64::MAX);
                if let Some((health, output)) = self.own_health(&c, now).await {
                    v.health = Some(health);
                    v.health_output = output;
                }
            }
            views.push(v);
        }
        Ok(Some((info, views)))
    }

    pub(crate) async fn pod_status(&self, handle: &Handle) -> Result<InstanceStatus> {
        let data = InstanceData::from_handle(handle);
        if let Some(status) = self.exits.succeeded(&data) {
            return Ok(status);
        }
        Ok(match self.inspect_pod(&data.pod).await? {
            Some((info, views)) => summarize(info.state.as_deref().unwrap_or("unknown"), &views),
            None => InstanceStatus {
                state: InstanceState::Missing,
                health: Health::NoCheck,
                restarts: 0,
                detail: format!("no pod named {}", data.pod),
            },
        })
    }

    /// Finds the instance's pod by name, else by its instance label.
    pub(crate) async fn recover_pod(&self, handle: &Handle) -> Result<Recovered> {
        let data = InstanceData::from_handle(handle);
        if let Some((info, views)) = self.inspect_pod(&data.pod).await? {
            return Ok(Recovered::Adopted(summarize(
                info.state.as_deref().unwrap_or("unknown"),
                &views,
            )));
        }
        let opts = PodListOpts::builder()
            .filter([PodListFilter::LabelKeyVal(
                LABEL_INSTANCE.into(),
                data.pod.clone(),
            )])
            .build();
        let pods = self.podman.pods();
        for name in call("pod list", API_TIMEOUT, pods.list(&opts))
            .await?
            .into_iter()
            .filter_map(|p| p.name)
        {
            if let Some((info, views)) = self.inspect_pod(&name).await? {
                return Ok(Recovered::Adopted(summarize(
                    info.state.as_deref().unwrap_or("unknown"),
                    &views,
                )));
            }
        }
        Ok(Recovered::Gone)
    }
}

#[cfg(test)]
mod tests;
