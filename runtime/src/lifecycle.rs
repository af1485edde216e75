//! The lifecycle controller: the same state machine for every engine.
//!
//! ```text
//! Validate -> Fetch -> Prepare -> Install -> Activate -> HealthCheck -> Running
//! ```
//!
//! Each step is timed and reported to an [`Observer`] (the node turns these into stored
//! events). A failing step ends the deploy in `Failed` with the step and the error. The
//! controller contains no engine-specific branches: engines only execute.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_protocol::{Outcome, Phase, Step, WorkloadSpec};

use crate::engine::{
    Capability, Engine, Handle, Health, InstallContext, InstanceState, InstanceStatus, Recovered,
};
use crate::error::{Error, Result};
use crate::registry::Registry;

mod change;

/// Timeouts of the controller.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// How long a started instance may take to report healthy.
    pub health_timeout: Duration,
    /// Longest pause between two status polls during the health check (polls start at
    /// [`FIRST_POLL`] and double up to this).
    pub health_poll_max: Duration,
    /// Grace period of `stop` before the engine kills.
    pub stop_grace: Duration,
    /// Bound on every engine call other than the health check.
    pub step_timeout: Duration,
    /// Pause before the first retry of a failed job attempt; doubles for each further
    /// failure (Kubernetes: 10 s).
    pub job_backoff_base: Duration,
    /// Longest pause between two job attempts (Kubernetes: 6 min).
    pub job_backoff_max: Duration,
    /// Pause before the second restart in a row of a long-running replica that stopped (the
    /// first is immediate); doubles for each further one (Kubernetes: 10 s).
    pub restart_backoff_base: Duration,
    /// Longest pause between two restarts (Kubernetes: 5 min).
    pub restart_backoff_max: Duration,
}

/// First pause between status polls during the health check.
pub const FIRST_POLL: Duration = Duration::from_millis(5);

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            health_timeout: Duration::from_secs(60),
            health_poll_max: Duration::from_millis(250),
            stop_grace: Duration::from_secs(10),
            step_timeout: Duration::from_secs(300),
            job_backoff_base: Duration::from_secs(10),
            job_backoff_max: Duration::from_secs(360),
            restart_backoff_base: Duration::from_secs(10),
            restart_backoff_max: Duration::from_secs(300),
        }
    }
}

/// Hears about every step. `installed` must persist the handle before it returns, so that an
/// instance created just before a crash is re-adopted or cleaned up after the restart.
pub trait Observer: Send + Sync {
    fn step(
        &self,
        spec: &WorkloadSpec,
        engine: &str,
        step: Step,
        outcome: Outcome,
        took: Duration,
        message: &str,
    );
    fn installed(&self, spec: &WorkloadSpec, handle: &Handle);
}

/// Where a deploy ended.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployReport {
    /// `Running`, `Succeeded` (a run-to-completion workload already exited 0) or `Failed`.
    pub phase: Phase,
    /// The instance, once installed (kept on failure after install so logs stay readable).
    pub handle: Option<Handle>,
    pub failed_step: Option<Step>,
    pub error: Option<String>,
    pub status: Option<InstanceStatus>,
}

impl DeployReport {
    fn failed(step: Step, error: &Error, handle: Option<Handle>) -> Self {
        Self {
            phase: Phase::Failed,
            handle,
            failed_step: Some(step),
            error: Some(format!("{step} failed: {error}")),
            status: None,
        }
    }
}

/// Where an update ended.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateReport {
    /// The new version's deploy.
    pub new: DeployReport,
    /// The new version failed and the old one runs again.
    pub rolled_back: bool,
    /// Set when the rollback itself failed (the old version is not running).
    pub rollback_error: Option<String>,
}

/// Drives workloads through the lifecycle. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Controller {
    registry: Arc<Registry>,
    config: ControllerConfig,
}

impl Controller {
    pub fn new(registry: Arc<Registry>, config: ControllerConfig) -> Self {
        Self { registry, config }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    pub(crate) fn engine(&self, name: &str) -> Result<Arc<dyn Engine>> {
        self.registry
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownEngine(name.to_string()))
    }

    /// Runs one step under the step timeout and reports it.
    pub(crate) async fn step<T, F>(
        &self,
        obs: &dyn Observer,
        spec: &WorkloadSpec,
        engine: &str,
        step: Step,
        fut: F,
    ) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.config.step_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                what: step.to_string(),
                after: self.config.step_timeout,
            }),
        };
        let (outcome, message) = match &result {
            Ok(_) => (Outcome::Ok, String::new()),
            Err(e) => (Outcome::Failed, e.to_string()),
        };
        obs.step(spec, engine, step, outcome, started.elapsed(), &message);
        result
    }

    /// Validate → Fetch → Prepare → Install: an installed instance, not started. On failure,
    /// the failed step and its error; nothing is left behind.
    pub async fn provision(
        &self,
        spec: &WorkloadSpec,
        engine_name: &str,
        ctx: &InstallContext,
        obs: &dyn Observer,
    ) -> Result<Handle, (Step, Error)> {
        let engine = match self.engine(engine_name) {
            Ok(e) => e,
            Err(e) => {
                obs.step(
                    spec,
                    engine_name,
                    Step::Validate,
                    Outcome::Failed,
                    Duration::ZERO,
                    &e.to_string(),
                );
                return Err((Step::Validate, e));
            }
        };
        let e = engine.as_ref();
        self.step(obs, spec, engine_name, Step::Validate, validate(e, spec))
            .await
            .map_err(|err| (Step::Validate, err))?;
        self.step(obs, spec, engine_name, Step::Fetch, e.fetch(spec))
            .await
            .map_err(|err| (Step::Fetch, err))?;
        self.step(obs, spec, engine_name, Step::Prepare, e.prepare(spec))
            .await
            .map_err(|err| (Step::Prepare, err))?;
        let handle = self
            .step(obs, spec, engine_name, Step::Install, e.install(spec, ctx))
            .await
            .map_err(|err| (Step::Install, err))?;
        obs.installed(spec, &handle);
        Ok(handle)
    }

    /// Starts an installed instance (the Activate step).
    pub async fn activate(
        &self,
        spec: &WorkloadSpec,
        handle: &Handle,
        obs: &dyn Observer,
    ) -> Result<()> {
        let engine = self.engine(&handle.engine)?;
        self.step(
            obs,
            spec,
            &handle.engine,
            Step::Activate,
            engine.start(handle),
        )
        .await
    }

    /// Validate → Fetch → Prepare → Install → Activate → HealthCheck.
    pub async fn deploy(
        &self,
        spec: &WorkloadSpec,
        engine_name: &str,
        ctx: &InstallContext,
        obs: &dyn Observer,
    ) -> DeployReport {
        let handle = match self.provision(spec, engine_name, ctx, obs).await {
            Ok(h) => h,
            Err((step, err)) => return DeployReport::failed(step, &err, None),
        };
        let engine = match self.engine(engine_name) {
            Ok(e) => e,
            Err(err) => return DeployReport::failed(Step::Activate, &err, Some(handle)),
        };
        let e = engine.as_ref();
        if let Err(err) = self
            .step(obs, spec, engine_name, Step::Activate, e.start(&handle))
            .await
        {
            return DeployReport::failed(Step::Activate, &err, Some(handle));
        }
        let started = Instant::now();
        let checked = self.health_check(e, spec, &handle).await;
        match checked {
            Ok((phase, status)) => {
                let msg = if phase == Phase::Succeeded {
                    "exited 0"
                } else {
                    ""
                };
                obs.step(
                    spec,
                    engine_name,
                    Step::HealthCheck,
                    Outcome::Ok,
                    started.elapsed(),
                    msg,
                );
                DeployReport {
                    phase,
                    handle: Some(handle),
                    failed_step: None,
                    error: None,
                    status: Some(status),
                }
            }
            Err(err) => {
                obs.step(
                    spec,
                    engine_name,
                    Step::HealthCheck,
                    Outcome::Failed,
                    started.elapsed(),
                    &err.to_string(),
                );
                DeployReport::failed(Step::HealthCheck, &err, Some(handle))
            }
        }
    }

    /// Continues the lifecycle of an instance that was installed when the node stopped:
    /// Activate (if it never started) then HealthCheck. Used by recovery instead of
    /// reinstalling an instance that is already there.
    pub async fn resume(
        &self,
        spec: &WorkloadSpec,
        handle: &Handle,
        obs: &dyn Observer,
    ) -> DeployReport {
        let engine = match self.engine(&handle.engine) {
            Ok(e) => e,
            Err(e) => return DeployReport::failed(Step::Recover, &e, Some(handle.clone())),
        };
        let e = engine.as_ref();
        match e.status(handle).await {
            Ok(status) if status.state == InstanceState::Created => {
                if let Err(err) = self
                    .step(obs, spec, &handle.engine, Step::Activate, e.start(handle))
                    .await
                {
                    return DeployReport::failed(Step::Activate, &err, Some(handle.clone()));
                }
            }
            Ok(_) => {}
            Err(err) => return DeployReport::failed(Step::Recover, &err, Some(handle.clone())),
        }
        let started = Instant::now();
        match self.health_check(e, spec, handle).await {
            Ok((phase, status)) => {
                obs.step(
                    spec,
                    &handle.engine,
                    Step::HealthCheck,
                    Outcome::Ok,
                    started.elapsed(),
                    "",
                );
                DeployReport {
                    phase,
                    handle: Some(handle.clone()),
                    failed_step: None,
                    error: None,
                    status: Some(status),
                }
            }
            Err(err) => {
                obs.step(
                    spec,
                    &handle.engine,
                    Step::HealthCheck,
                    Outcome::Failed,
                    started.elapsed(),
                    &err.to_string(),
                );
                DeployReport::failed(Step::HealthCheck, &err, Some(handle.clone()))
            }
        }
    }

    /// Polls the instance until it is running and healthy (or, for run-to-completion
    /// workloads, has exited 0), within `health_timeout`.
    pub async fn health_check(
        &self,
        engine: &dyn Engine,
        spec: &WorkloadSpec,
        handle: &Handle,
    ) -> Result<(Phase, InstanceStatus)> {
        let deadline = Instant::now() + self.config.health_timeout;
        let mut pause = FIRST_POLL;
        loop {
            let status = engine.status(handle).await?;
            match (&status.state, &status.health) {
                (InstanceState::Running, Health::Healthy | Health::NoCheck) => {
                    return Ok((Phase::Running, status))
                }
                (InstanceState::Running, Health::Unhealthy { reason }) => {
                    return Err(Error::Invalid(format!("unhealthy: {reason}")))
                }
                (InstanceState::Exited { code: 0 }, _) if spec.runs_to_completion() => {
                    return Ok((Phase::Succeeded, status))
                }
                (InstanceState::Exited { code }, _) => {
                    return Err(Error::Invalid(format!(
                        "exited with code {code} before it became healthy"
                    )))
                }
                (InstanceState::Failed { reason }, _) => {
                    return Err(Error::Invalid(reason.clone()))
                }
                (InstanceState::Missing, _) => {
                    return Err(Error::NotFound {
                        engine: engine.name().to_string(),
                        instance: handle.instance.clone(),
                    })
                }
                (InstanceState::Created | InstanceState::Running, Health::Starting)
                | (InstanceState::Created, _) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    what: format!("health check ({})", status.detail),
                    after: self.config.health_timeout,
                });
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(self.config.health_poll_max);
        }
    }
}

/// Checks common to every engine, then the engine's own.
async fn validate(engine: &dyn Engine, spec: &WorkloadSpec) -> Result<()> {
    if !engine.kinds().contains(&spec.kind) {
        return Err(Error::Invalid(format!(
            "engine {} cannot run a {}",
            engine.name(),
            spec.kind
        )));
    }
    // A keyed version (a spec with secrets) cannot be recomputed without the workload's data
    // key; the node checked it against the signed record before anything ran.
    if spec.version.is_empty() || (!spec.version_keyed && spec.version != spec.compute_version()) {
        return Err(Error::Invalid(
            "the spec's version does not match its content digest".to_string(),
        ));
    }
    if !spec.outputs().is_empty() && !engine.capabilities().contains(&Capability::Outputs) {
        return Err(Error::Invalid(format!(
            "declared outputs ({}) need an engine that collects files; {} does not",
            spec.outputs().join(", "),
            engine.name()
        )));
    }
    engine.validate(spec).await
}
