//! The container-level half of the translation: one [`Container`] of the spec becomes the
//! body of a Docker `POST /containers/create`. Pure: the caller supplies names and paths.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, NetworkingConfig, PortBinding,
    RestartPolicy, RestartPolicyNameEnum,
};
use mesh_protocol::spec::{Container, HealthCheck, PortProtocol, RestartPolicy as SpecRestart};
use mesh_protocol::WorkloadSpec;
use mesh_runtime::error::{Error, Result};

use crate::labels;
use crate::mounts::{self, MountPlan};
use crate::plan;

/// Nanoseconds per millisecond (Docker durations are nanoseconds).
const NANOS_PER_MILLI: i64 = 1_000_000;

/// What a container needs to know about its instance.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub engine: &'a str,
    pub node: &'a str,
    pub project: &'a str,
    /// The project's network; empty: the daemon's default network (no aliases).
    pub network: &'a str,
    pub state_dir: &'a Path,
}

/// Where a container sits in the instance.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub init: bool,
    /// Start position within its role.
    pub order: u32,
}

/// The create body of `c`.
pub fn body(
    spec: &WorkloadSpec,
    c: &Container,
    ctx: &Context<'_>,
    slot: Slot,
) -> Result<ContainerCreateBody> {
    let env = env(spec, c, ctx.node)?;
    let mut binds = Vec::new();
    let mut tmpfs = HashMap::new();
    for m in &c.mounts {
        match mounts::mount_plan(spec, ctx.project, ctx.state_dir, m).map_err(Error::Invalid)? {
            MountPlan::Bind(b) => binds.push(b),
            MountPlan::Tmpfs(target) => {
                tmpfs.insert(target, String::new());
            }
        }
    }
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &c.ports {
        let proto = match p.protocol {
            PortProtocol::Tcp => "tcp",
            PortProtocol::Udp => "udp",
            PortProtocol::Sctp => "sctp",
        };
        let key = format!("{}/{proto}", p.container_port);
        exposed.push(key.clone());
        if let Some(host_port) = p.host_port {
            bindings
                .entry(key)
                .or_default()
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: p.host_ip.clone(),
                    host_port: Some(host_port.to_string()),
                });
        }
    }
    let limits = c.resources.limits;
    let requests = c.resources.requests;
    let host_config = HostConfig {
        network_mode: (!ctx.network.is_empty()).then(|| ctx.network.to_string()),
        binds: (!binds.is_empty()).then_some(binds),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        restart_policy: Some(restart_policy(spec, c, slot)),
        init: c.init.then_some(true),
        memory: limits.memory_bytes.map(|b| b as i64),
        nano_cpus: limits.cpu_millis.map(|m| m as i64 * NANOS_PER_MILLI),
        memory_reservation: requests.memory_bytes.map(|b| b as i64),
        cpu_shares: requests.cpu_millis.map(|m| (m as i64 * 1024 / 1000).max(2)),
        ..Default::default()
    };
    let mut container_labels: HashMap<String, String> = c.labels.clone().into_iter().collect();
    container_labels.extend(labels::base(ctx.engine, spec, ctx.node, ctx.project));
    container_labels.insert(labels::SERVICE.to_string(), c.name.clone());
    let role = if slot.init {
        labels::ROLE_INIT
    } else {
        labels::ROLE_MAIN
    };
    container_labels.insert(labels::ROLE.to_string(), role.to_string());
    container_labels.insert(labels::ORDER.to_string(), slot.order.to_string());
    if spec.runs_to_completion() {
        container_labels.insert(labels::JOB.to_string(), "true".to_string());
    }
    if !c.depends_on.is_empty() {
        let deps: Vec<String> = c
            .depends_on
            .iter()
            .map(|d| format!("{}={}", d.service, labels::condition_str(d.condition)))
            .collect();
        container_labels.insert(labels::DEPENDS_ON.to_string(), deps.join(","));
    }
    let endpoint = EndpointSettings {
        aliases: Some(vec![labels::sanitise(&c.name)]),
        ..Default::default()
    };
    Ok(ContainerCreateBody {
        image: Some(c.image.clone()),
        entrypoint: (!c.command.is_empty()).then(|| c.command.clone()),
        cmd: (!c.args.is_empty()).then(|| c.args.clone()),
        env: (!env.is_empty()).then_some(env),
        working_dir: c.working_dir.clone(),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck: c.healthcheck.as_ref().map(health_config),
        labels: Some(container_labels),
        host_config: Some(host_config),
        networking_config: (!ctx.network.is_empty()).then(|| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(ctx.network.to_string(), endpoint)])),
        }),
        ..Default::default()
    })
}

/// `NAME=value` pairs, references resolved.
fn env(spec: &WorkloadSpec, c: &Container, node: &str) -> Result<Vec<String>> {
    c.env
        .iter()
        .map(|e| {
            let resolved = plan::resolve_env(spec, &e.value_from, &spec.name, node)
                .map_err(|why| Error::Invalid(format!("{}.env.{}: {why}", c.name, e.name)))?;
            let value = resolved.or_else(|| e.value.clone()).unwrap_or_default();
            Ok(format!("{}={value}", e.name))
        })
        .collect()
}

/// Compose per-service `restart`, else the workload's; run-to-completion workloads and init
/// containers never restart (the controller owns retries).
fn restart_policy(spec: &WorkloadSpec, c: &Container, slot: Slot) -> RestartPolicy {
    let name = if slot.init || spec.runs_to_completion() {
        RestartPolicyNameEnum::NO
    } else {
        match c.restart.unwrap_or(spec.restart_policy) {
            SpecRestart::Always => RestartPolicyNameEnum::ALWAYS,
            SpecRestart::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
            SpecRestart::Never => RestartPolicyNameEnum::NO,
            SpecRestart::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
        }
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: None,
    }
}

fn health_config(h: &HealthCheck) -> HealthConfig {
    let nanos = |ms: Option<u64>| ms.map(|ms| ms as i64 * NANOS_PER_MILLI);
    HealthConfig {
        test: Some(h.test.clone()),
        interval: nanos(h.interval_ms),
        timeout: nanos(h.timeout_ms),
        retries: h.retries.map(i64::from),
        start_period: nanos(h.start_period_ms),
        start_interval: None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use mesh_protocol::spec::{
        ConfigKind, ConfigObject, EnvSource, EnvVar, JobSpec, Port, SourceFormat,
    };
    use mesh_protocol::WorkloadKind;

    use super::*;

    fn ctx() -> Context<'static> {
        Context {
            engine: "docker",
            node: "node-1",
            project: "mesh-app-12345678",
            network: "mesh-app-12345678",
            state_dir: Path::new("/state"),
        }
    }

    const MAIN: Slot = Slot {
        init: false,
        order: 1,
    };

    fn spec_with(c: Container) -> WorkloadSpec {
        let mut spec =
            WorkloadSpec::new("app", "prod", WorkloadKind::Compose, SourceFormat::Compose);
        spec.containers = vec![c];
        spec.config = vec![ConfigObject {
            kind: ConfigKind::ConfigMap,
            name: "settings".into(),
            data: BTreeMap::from([("mode".into(), "fast".into())]),
            binary_keys: vec![],
        }];
        spec.seal()
    }

    #[test]
    fn a_service_becomes_a_create_body() {
        let mut c = Container {
            name: "web".into(),
            image: "img:1".into(),
            command: vec!["/entry".into()],
            args: vec!["--serve".into()],
            working_dir: Some("/app".into()),
            restart: Some(SpecRestart::UnlessStopped),
            init: true,
            labels: BTreeMap::from([("team".into(), "a".into())]),
            ..Default::default()
        };
        c.env = vec![
            EnvVar {
                name: "PLAIN".into(),
                value: Some("1".into()),
                value_from: None,
            },
            EnvVar {
                name: "MODE".into(),
                value: None,
                value_from: Some(EnvSource::ConfigMap {
                    name: "settings".into(),
                    key: "mode".into(),
                }),
            },
            EnvVar {
                name: "ME".into(),
                value: None,
                value_from: Some(EnvSource::Field {
                    path: "metadata.name".into(),
                }),
            },
        ];
        c.ports = vec![Port {
            container_port: 80,
            host_port: Some(8080),
            host_ip: Some("127.0.0.1".into()),
            protocol: PortProtocol::Tcp,
            name: None,
        }];
        c.resources.limits.memory_bytes = Some(1 << 20);
        c.resources.limits.cpu_millis = Some(250);
        c.healthcheck = Some(HealthCheck {
            test: vec!["CMD".into(), "true".into()],
            interval_ms: Some(1500),
            timeout_ms: None,
            retries: Some(2),
            start_period_ms: None,
        });
        let spec = spec_with(c.clone());
        let body = body(&spec, &c, &ctx(), MAIN).expect("body");
        assert_eq!(body.entrypoint, Some(vec!["/entry".to_string()]));
        assert_eq!(body.cmd, Some(vec!["--serve".to_string()]));
        assert_eq!(
            body.env,
            Some(vec![
                "PLAIN=1".to_string(),
                "MODE=fast".to_string(),
                "ME=app".to_string()
            ])
        );
        assert_eq!(body.exposed_ports, Some(vec!["80/tcp".to_string()]));
        let health = body.healthcheck.expect("health");
        assert_eq!(
            (health.interval, health.retries),
            (Some(1_500_000_000), Some(2))
        );

        let host = body.host_config.expect("host config");
        assert_eq!(host.memory, Some(1 << 20));
        assert_eq!(host.nano_cpus, Some(250_000_000));
        assert_eq!(host.init, Some(true));
        assert_eq!(host.network_mode.as_deref(), Some("mesh-app-12345678"));
        assert_eq!(
            host.restart_policy.and_then(|r| r.name),
            Some(RestartPolicyNameEnum::UNLESS_STOPPED)
        );
        let binding = &host.port_bindings.expect("bindings")["80/tcp"];
        assert_eq!(
            binding.as_ref().map(|b| b[0].host_port.clone()),
            Some(Some("8080".to_string()))
        );

        let l = body.labels.expect("labels");
        for (k, v) in [
            (labels::MANAGED, "true"),
            (labels::ENGINE, "docker"),
            (labels::WORKLOAD, "prod/app"),
            (labels::VERSION, spec.version.as_str()),
            (labels::NODE, "node-1"),
            (labels::SERVICE, "web"),
            (labels::INSTANCE, "mesh-app-12345678"),
            (labels::ROLE, "main"),
            (labels::ORDER, "1"),
            ("team", "a"),
        ] {
            assert_eq!(l.get(k).map(String::as_str), Some(v), "label {k}");
        }
        let endpoints = body
            .networking_config
            .and_then(|n| n.endpoints_config)
            .expect("endpoints");
        assert_eq!(
            endpoints["mesh-app-12345678"].aliases,
            Some(vec!["web".to_string()])
        );
    }

    #[test]
    fn jobs_and_init_containers_never_restart() {
        let c = Container {
            name: "work".into(),
            image: "img".into(),
            ..Default::default()
        };
        let mut spec = spec_with(c.clone());
        let policy = |spec: &WorkloadSpec, slot| restart_policy(spec, &c, slot).name;
        assert_eq!(policy(&spec, MAIN), Some(RestartPolicyNameEnum::ALWAYS));
        assert_eq!(
            policy(
                &spec,
                Slot {
                    init: true,
                    order: 0
                }
            ),
            Some(RestartPolicyNameEnum::NO)
        );
        spec.restart_policy = SpecRestart::OnFailure;
        assert_eq!(policy(&spec, MAIN), Some(RestartPolicyNameEnum::ON_FAILURE));
        spec.job = Some(JobSpec::default());
        assert_eq!(policy(&spec, MAIN), Some(RestartPolicyNameEnum::NO));
    }

    #[test]
    fn without_a_project_network_the_container_joins_the_default_one() {
        let c = Container {
            name: "solo".into(),
            image: "img".into(),
            ..Default::default()
        };
        let spec = spec_with(c.clone());
        assert_eq!(crate::plan::container_count(&spec), 1);
        let body = body(
            &spec,
            &c,
            &Context {
                network: "",
                ..ctx()
            },
            MAIN,
        )
        .unwrap();
        let host = body.host_config.expect("host config");
        assert_eq!(host.network_mode, None, "the daemon's default network");
        assert!(body.networking_config.is_none(), "no endpoint to name");
    }
}
