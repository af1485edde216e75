//! Start and stop. Start runs init containers to completion, one after the other, then
//! starts the main containers in `depends_on` order, waiting for each dependency's condition
//! (`service_healthy`, `service_completed_successfully`). Stop goes in reverse order.

use std::time::{Duration, Instant};

use bollard::query_parameters::StopContainerOptions;
use mesh_protocol::spec::DependencyCondition;
use mesh_runtime::engine::Handle;
use mesh_runtime::error::{Error, Result};

use crate::client::{self, Connection};
use crate::observe::{HealthPhase, Member, Observed};
use crate::raw::Phase;
use crate::DockerEngine;

/// Bound on one init container's run.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound on waiting for a `service_completed_successfully` dependency.
pub const COMPLETION_TIMEOUT: Duration = Duration::from_secs(300);
/// Added to the time a health check needs to settle, for daemon and scheduling delays.
pub const HEALTH_SLACK: Duration = Duration::from_secs(10);
/// Polling of container state while waiting: starts fast, backs off to this.
const POLL_MAX: Duration = Duration::from_millis(1000);
const POLL_FIRST: Duration = Duration::from_millis(100);

/// What a wait is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    /// Exit with code 0.
    Completed,
    Healthy,
}

impl DockerEngine {
    pub(crate) async fn start_instance(&self, handle: &Handle) -> Result<()> {
        let conn = self.connection().await?;
        let members = self.members(&conn, &handle.instance).await?;
        if members.is_empty() {
            return Err(Error::NotFound {
                engine: self.name.clone(),
                instance: handle.instance.clone(),
            });
        }
        for m in members.iter().filter(|m| m.init) {
            self.start_one(&conn, m).await?;
            self.wait_for(&conn, m, Goal::Completed, INIT_TIMEOUT)
                .await?;
        }
        let mains: Vec<&Member> = members.iter().filter(|m| !m.init).collect();
        for m in &mains {
            for (service, condition) in &m.depends_on {
                let goal = match condition {
                    DependencyCondition::ServiceStarted => continue,
                    DependencyCondition::ServiceHealthy => Goal::Healthy,
                    DependencyCondition::ServiceCompletedSuccessfully => Goal::Completed,
                };
                for dep in mains.iter().filter(|d| &d.service == service) {
                    self.wait_for(&conn, dep, goal, COMPLETION_TIMEOUT).await?;
                }
            }
            self.start_one(&conn, m).await?;
        }
        Ok(())
    }

    async fn start_one(&self, conn: &Connection, m: &Member) -> Result<()> {
        tracing::debug!(engine = %self.name, container = %m.name, "starting");
        conn.docker.start_container(&m.id, None).await.map_err(|e| {
            self.client
                .api(&format!("start container {} ({})", m.name, m.service), e)
        })
    }

    /// Polls `m` until it reaches `goal`. For [`Goal::Healthy`] the bound is derived from the
    /// container's own health check; `completion` bounds [`Goal::Completed`]. The error names
    /// the service.
    async fn wait_for(
        &self,
        conn: &Connection,
        m: &Member,
        goal: Goal,
        completion: Duration,
    ) -> Result<()> {
        let started = Instant::now();
        let mut pause = POLL_FIRST;
        let mut bound = completion;
        loop {
            let Some(o) = self.observe(conn, m).await? else {
                return Err(Error::Invalid(format!(
                    "service {}: container {} vanished",
                    m.service, m.name
                )));
            };
            if goal == Goal::Healthy {
                let Some(health) = o.health() else {
                    tracing::warn!(service = %m.service, "service_healthy dependency has no health check; treating started as healthy");
                    return Ok(());
                };
                bound = o.health_deadline() + HEALTH_SLACK;
                match health {
                    HealthPhase::Healthy => return Ok(()),
                    HealthPhase::Unhealthy => {
                        return Err(Error::Invalid(format!(
                            "service {} is unhealthy ({})",
                            m.service,
                            o.last_health_output()
                        )))
                    }
                    _ => {}
                }
                if o.phase() == Phase::Running
                    && self.client.health_due(conn, &m.id, o.health_interval())
                {
                    self.client.drive_health(conn, &m.id).await;
                    continue;
                }
            }
            if let Some(done) = finished(&o, goal) {
                return done;
            }
            if started.elapsed() >= bound {
                let what = match goal {
                    Goal::Healthy => format!(
                        "service {} to become healthy ({})",
                        m.service,
                        o.last_health_output()
                    ),
                    Goal::Completed => format!("service {} to complete", m.service),
                };
                return Err(Error::Timeout { what, after: bound });
            }
            tokio::time::sleep(pause.min(bound.saturating_sub(started.elapsed()))).await;
            pause = (pause * 2).min(POLL_MAX);
        }
    }

    pub(crate) async fn stop_instance(&self, handle: &Handle, grace: Duration) -> Result<()> {
        let conn = self.connection().await?;
        let members = self.members(&conn, &handle.instance).await?;
        let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        // The daemon answers a stop only after the grace period: the request may take that long.
        let docker = conn
            .docker
            .clone()
            .with_timeout(grace + client::REQUEST_TIMEOUT);
        let options = StopContainerOptions {
            t: Some(i32::try_from(secs).unwrap_or(i32::MAX)),
            ..Default::default()
        };
        let (inits, mains): (Vec<&Member>, Vec<&Member>) = members.iter().partition(|m| m.init);
        for m in mains.into_iter().rev().chain(inits.into_iter().rev()) {
            match docker.stop_container(&m.id, Some(options.clone())).await {
                Ok(()) => {}
                Err(e) if client::is_not_found(&e) || client::status_code(&e) == Some(304) => {}
                Err(e) => {
                    return Err(self
                        .client
                        .api(&format!("stop container {} ({})", m.name, m.service), e))
                }
            }
        }
        Ok(())
    }
}

/// `Some(result)` once `o` can no longer reach `goal` by waiting (or has reached
/// [`Goal::Completed`]).
fn finished(o: &Observed, goal: Goal) -> Option<Result<()>> {
    if o.phase() != Phase::Exited {
        return None;
    }
    let service = &o.member.service;
    Some(match (goal, o.exit_code()) {
        (Goal::Completed, 0) => Ok(()),
        (Goal::Completed, code) => Err(Error::Invalid(format!(
            "service {service} exited with code {code}"
        ))),
        (Goal::Healthy, code) => Err(Error::Invalid(format!(
            "service {service} exited with code {code} before it became healthy"
        ))),
    })
}
