//! Finding an instance's containers by label, and reading them back: status, logs, recover.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures::StreamExt as _;
use mesh_protocol::api::{LogLine, LogStream};
use mesh_protocol::spec::DependencyCondition;
use mesh_runtime::engine::{Handle, Health, InstanceState, InstanceStatus, LogOptions, Recovered};
use mesh_runtime::error::Result;

use crate::client::Connection;
use crate::install::HandleData;
use crate::raw::{self, Phase};
use crate::{client, labels, time, DockerEngine};

/// Docker's health-check defaults, in milliseconds: interval, timeout; and retries.
const DEFAULT_HEALTH_INTERVAL_MS: u64 = 30_000;
const DEFAULT_HEALTH_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_HEALTH_RETRIES: u64 = 3;

/// One container of an instance, as its labels describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub service: String,
    /// `namespace/name` of the workload.
    pub workload: String,
    pub init: bool,
    pub order: u32,
    pub depends_on: Vec<(String, DependencyCondition)>,
    pub job: bool,
}

/// Health of one container that has a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthPhase {
    Starting,
    Healthy,
    Unhealthy,
}

/// A member and what inspecting it showed.
#[derive(Debug, Clone)]
pub struct Observed {
    pub member: Member,
    pub inspect: raw::Inspect,
}

impl Observed {
    pub fn phase(&self) -> Phase {
        self.inspect.state.phase()
    }

    pub fn exit_code(&self) -> i32 {
        self.inspect.state.exit_code as i32
    }

    pub fn oom_killed(&self) -> bool {
        self.inspect.state.oom_killed
    }

    fn check(&self) -> Option<&raw::HealthConfig> {
        let h = self.inspect.config.healthcheck.as_ref()?;
        let test = h.test.as_ref()?;
        (test.first().is_some_and(|f| f != "NONE")).then_some(h)
    }

    /// `None` when the container has no health check.
    pub fn health(&self) -> Option<HealthPhase> {
        self.check()?;
        let status = self
            .inspect
            .state
            .health
            .as_ref()
            .map(|h| h.status.to_ascii_lowercase());
        Some(match status.as_deref() {
            Some("healthy") => HealthPhase::Healthy,
            Some("unhealthy") => HealthPhase::Unhealthy,
            _ => HealthPhase::Starting,
        })
    }

    /// Output of the last health check run, trimmed to one line.
    pub fn last_health_output(&self) -> String {
        let log = self
            .inspect
            .state
            .health
            .as_ref()
            .and_then(|h| h.log.as_ref());
        match log.and_then(|l| l.last()) {
            Some(r) => format!(
                "exit {}: {}",
                r.exit_code,
                r.output.trim().lines().last().unwrap_or_default()
            ),
            None => "no check has completed".to_string(),
        }
    }

    /// Time the health check may take to report unhealthy: start period, then
    /// `retries + 1` rounds of interval and timeout (Docker's defaults where unset).
    pub fn health_deadline(&self) -> std::time::Duration {
        let h = self.check().cloned().unwrap_or_default();
        let ms = |ns: Option<i64>, default: u64| {
            ns.filter(|&n| n > 0)
                .map_or(default, |n| n as u64 / 1_000_000)
        };
        let interval = ms(h.interval, DEFAULT_HEALTH_INTERVAL_MS);
        let timeout = ms(h.timeout, DEFAULT_HEALTH_TIMEOUT_MS);
        let start = ms(h.start_period, 0);
        let retries = h
            .retries
            .filter(|&r| r > 0)
            .map_or(DEFAULT_HEALTH_RETRIES, |r| r as u64);
        std::time::Duration::from_millis(start + (interval + timeout) * (retries + 1))
    }

    /// Interval between health checks.
    pub fn health_interval(&self) -> std::time::Duration {
        let ns = self.check().and_then(|h| h.interval).filter(|&n| n > 0);
        ns.map_or(
            std::time::Duration::from_millis(DEFAULT_HEALTH_INTERVAL_MS),
            |n| std::time::Duration::from_nanos(n as u64),
        )
    }

    pub fn restarts(&self) -> u32 {
        self.inspect.restart_count.max(0) as u32
    }
}

impl DockerEngine {
    /// Containers of instance `project`, init containers first, each role in start order.
    pub(crate) async fn members(&self, conn: &Connection, project: &str) -> Result<Vec<Member>> {
        let filters = labels::filters(&[(labels::INSTANCE, project), (labels::ENGINE, &self.name)]);
        let filters =
            serde_json::to_string(&filters).map_err(|e| self.client.err(e.to_string()))?;
        let path = format!(
            "/containers/json?all=true&filters={}",
            raw::encode(&filters)
        );
        let what = format!("list containers of {project}");
        let list: Vec<raw::Summary> = self
            .client
            .read(conn, &path, &what)
            .await?
            .unwrap_or_default();
        let pairs = [
            (labels::INSTANCE, project),
            (labels::ENGINE, self.name.as_str()),
        ];
        let mut members: Vec<Member> = list
            .into_iter()
            .filter(|c| labels::matches(c.labels.as_ref().unwrap_or(&Default::default()), &pairs))
            .map(|c| {
                let l = c.labels.unwrap_or_default();
                let get = |k: &str| l.get(k).cloned().unwrap_or_default();
                Member {
                    name: c
                        .names
                        .and_then(|n| n.first().cloned())
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_string(),
                    id: c.id,
                    service: get(labels::SERVICE),
                    workload: get(labels::WORKLOAD),
                    init: get(labels::ROLE) == labels::ROLE_INIT,
                    order: get(labels::ORDER).parse().unwrap_or(u32::MAX),
                    depends_on: labels::parse_depends_on(&get(labels::DEPENDS_ON)),
                    job: get(labels::JOB) == "true",
                }
            })
            .collect();
        members.sort_by(|a, b| (!a.init, a.order, &a.name).cmp(&(!b.init, b.order, &b.name)));
        Ok(members)
    }

    /// Inspects one member; `Ok(None)` when it vanished meanwhile.
    pub(crate) async fn observe(
        &self,
        conn: &Connection,
        member: &Member,
    ) -> Result<Option<Observed>> {
        let path = format!("/containers/{}/json", member.id);
        let what = format!("inspect container {}", member.name);
        let inspect: Option<raw::Inspect> = self.client.read(conn, &path, &what).await?;
        Ok(inspect.map(|inspect| Observed {
            member: member.clone(),
            inspect,
        }))
    }

    pub(crate) async fn instance_status(&self, handle: &Handle) -> Result<InstanceStatus> {
        let conn = self.connection().await?;
        let members = self.members(&conn, &handle.instance).await?;
        let expected = HandleData::of(handle);
        let missing: Vec<&str> = expected
            .containers
            .iter()
            .filter(|c| !members.iter().any(|m| m.id == c.id))
            .map(|c| c.name.as_str())
            .collect();
        if members.is_empty() || !missing.is_empty() {
            let detail = if members.is_empty() {
                "no containers".to_string()
            } else {
                format!("missing: {}", missing.join(", "))
            };
            return Ok(InstanceStatus {
                state: InstanceState::Missing,
                health: Health::NoCheck,
                restarts: 0,
                detail,
            });
        }
        let mut observed = Vec::new();
        for m in members.iter().filter(|m| !m.init) {
            let Some(mut o) = self.observe(&conn, m).await? else {
                return Ok(InstanceStatus {
                    state: InstanceState::Missing,
                    health: Health::NoCheck,
                    restarts: 0,
                    detail: format!("missing: {}", m.name),
                });
            };
            let due =
                o.health().is_some() && self.client.health_due(&conn, &m.id, o.health_interval());
            if o.phase() == Phase::Running && due {
                self.client.drive_health(&conn, &m.id).await;
                o = self.observe(&conn, m).await?.unwrap_or(o);
            }
            observed.push(o);
        }
        let job = expected.run_to_completion || members.iter().any(|m| m.job);
        Ok(summarise(&observed, job))
    }

    pub(crate) async fn recover_instance(&self, handle: &Handle) -> Result<Recovered> {
        let conn = self.connection().await?;
        if self.members(&conn, &handle.instance).await?.is_empty() {
            return Ok(Recovered::Gone);
        }
        Ok(Recovered::Adopted(self.instance_status(handle).await?))
    }

    pub(crate) async fn instance_logs(
        &self,
        handle: &Handle,
        opts: LogOptions,
    ) -> Result<Vec<LogLine>> {
        let conn = self.connection().await?;
        let members = self.members(&conn, &handle.instance).await?;
        let mut lines = Vec::new();
        for m in &members {
            let options = LogsOptions {
                stdout: true,
                stderr: true,
                timestamps: true,
                tail: opts
                    .tail
                    .map_or_else(|| "all".to_string(), |n| n.to_string()),
                ..Default::default()
            };
            let mut stream = conn.docker.logs(&m.id, Some(options));
            while let Some(item) = stream.next().await {
                let (stream_kind, bytes) = match item {
                    Ok(LogOutput::StdErr { message }) => (LogStream::Stderr, message),
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        (LogStream::Stdout, message)
                    }
                    Ok(LogOutput::StdIn { .. }) => continue,
                    Err(e) if client::is_not_found(&e) => break,
                    Err(e) => return Err(self.client.api(&format!("logs of {}", m.name), e)),
                };
                for raw in String::from_utf8_lossy(&bytes).lines() {
                    let (at, text) = time::split_timestamp(raw);
                    lines.push(LogLine {
                        at,
                        stream: stream_kind,
                        source: Some(m.service.clone()),
                        line: text.to_string(),
                        correlation: None,
                    });
                }
            }
        }
        // Stable: lines of one container keep their order when timestamps tie.
        lines.sort_by_key(|l| l.at.unwrap_or(0));
        if let Some(n) = opts.tail {
            let skip = lines.len().saturating_sub(n);
            lines.drain(..skip);
        }
        Ok(lines)
    }
}

/// One status for the whole instance from its main containers. A container that its
/// restart policy is about to restart counts as exited: it is crash-looping.
pub fn summarise(observed: &[Observed], job: bool) -> InstanceStatus {
    let total = observed.len();
    let running = observed
        .iter()
        .filter(|o| o.phase() == Phase::Running)
        .count();
    let restarts = observed.iter().map(Observed::restarts).sum();
    let finished: Vec<&Observed> = observed
        .iter()
        .filter(|o| matches!(o.phase(), Phase::Exited | Phase::Restarting))
        .collect();
    let created = observed.iter().any(|o| o.phase() == Phase::Created);
    let mut detail = format!("{running}/{total} running");
    let state = if let Some(oom) = observed.iter().find(|o| o.oom_killed()) {
        InstanceState::Failed {
            reason: format!("{} was killed: out of memory", oom.member.service),
        }
    } else if let Some(failed) = finished.iter().find(|o| o.exit_code() != 0) {
        detail.push_str(&format!(
            ", {} exited with code {}",
            failed.member.service,
            failed.exit_code()
        ));
        InstanceState::Exited {
            code: failed.exit_code(),
        }
    } else if job && !finished.is_empty() && finished.len() == total {
        detail = format!("{total}/{total} completed");
        InstanceState::Exited { code: 0 }
    } else if !job && !finished.is_empty() {
        detail.push_str(&format!(
            ", {} exited with code 0",
            finished[0].member.service
        ));
        InstanceState::Exited { code: 0 }
    } else if created && running == 0 {
        InstanceState::Created
    } else {
        InstanceState::Running
    };
    let checked: Vec<(&Observed, HealthPhase)> = observed
        .iter()
        .filter_map(|o| o.health().map(|h| (o, h)))
        .collect();
    let health = if let Some((o, _)) = checked.iter().find(|(_, h)| *h == HealthPhase::Unhealthy) {
        Health::Unhealthy {
            reason: format!(
                "{} is unhealthy ({})",
                o.member.service,
                o.last_health_output()
            ),
        }
    } else if checked.iter().any(|(_, h)| *h == HealthPhase::Starting) {
        Health::Starting
    } else if checked.is_empty() {
        Health::NoCheck
    } else {
        Health::Healthy
    };
    InstanceStatus {
        state,
        health,
        restarts,
        detail,
    }
}
