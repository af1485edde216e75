//! Per-file assertions of the real-world test: details a user of each file would notice.

use mesh_protocol::spec::{DependencyCondition, PortProtocol, VolumeSource, WorkloadSpec};

pub fn has_warning(spec: &WorkloadSpec, text: &str) -> bool {
    spec.warnings.iter().any(|w| w.contains(text))
}

fn env<'a>(spec: &'a WorkloadSpec, container: usize, name: &str) -> Option<&'a str> {
    spec.containers[container]
        .env
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

pub fn check_elk(specs: &[WorkloadSpec]) {
    let s = &specs[0];
    let names: Vec<&str> = s.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["elasticsearch", "logstash", "kibana"]);
    assert_eq!(env(s, 0, "discovery.type"), Some("single-node"));
    assert_eq!(
        s.containers[1].args,
        [
            "logstash",
            "-f",
            "/usr/share/logstash/pipeline/logstash-nginx.config"
        ]
    );
    let protocols: Vec<PortProtocol> = s.containers[1]
        .ports
        .iter()
        .filter(|p| p.container_port == 5000)
        .map(|p| p.protocol)
        .collect();
    assert_eq!(protocols, [PortProtocol::Tcp, PortProtocol::Udp]);
    let health = s.containers[0].healthcheck.as_ref().expect("healthcheck");
    assert_eq!(health.test[0], "CMD-SHELL");
    assert_eq!(
        (health.interval_ms, health.retries),
        (Some(10_000), Some(3))
    );
    assert!(has_warning(
        s,
        "services.elasticsearch.container_name: not honoured"
    ));
}

pub fn check_pihole(specs: &[WorkloadSpec]) {
    let s = &specs[0];
    // The YAML comment after the value is not part of it; '#' inside the value is.
    assert_eq!(env(s, 1, "PIHOLE_DNS_"), Some("172.20.0.2#5054;1.1.1.1"));
    assert_eq!(env(s, 0, "TZ"), Some(""));
    assert!(has_warning(s, "variable TIMEZONE is not set"));
    assert!(has_warning(s, "services.pihole.cap_add: not honoured"));
    assert_eq!(s.containers[1].ports.len(), 5);
}

pub fn check_wasmedge(specs: &[WorkloadSpec]) {
    let s = &specs[0];
    assert_eq!(
        s.containers[0].args.len(),
        8,
        "command list kept as written"
    );
    assert_eq!(s.containers[1].image, "etl-kafka");
    assert!(has_warning(s, "services.etl.platform: not honoured"));
    assert!(has_warning(s, "services.etl.build: not honoured"));
}

pub fn check_unhealthy(specs: &[WorkloadSpec]) {
    let s = &specs[0];
    let health = s.containers[0].healthcheck.as_ref().expect("healthcheck");
    assert_eq!(health.test, ["CMD-SHELL", "false"]);
    assert_eq!(health.interval_ms, Some(1000));
    assert!(s.containers[0].init);
    assert_eq!(
        s.containers[1].depends_on[0].condition,
        DependencyCondition::ServiceHealthy
    );
}

pub fn check_logging(specs: &[WorkloadSpec]) {
    let s = &specs[0];
    assert_eq!(env(s, 0, "FOO"), Some(""));
    assert!(has_warning(s, "variable BAR is not set"));
    assert!(has_warning(s, "services.app.logging: not honoured"));
    assert_eq!(s.containers[0].ports.len(), 2);
}

pub fn check_profiles(specs: &[WorkloadSpec]) {
    let s = &specs[0];
    let names: Vec<&str> = s.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["db"]);
    assert!(has_warning(
        s,
        "services.foo: skipped: only started with profile(s) test"
    ));
}

pub fn check_scale(specs: &[WorkloadSpec]) {
    let s = &specs[0];
    let replicas: Vec<Option<u32>> = s.containers.iter().map(|c| c.replicas).collect();
    assert_eq!(replicas, [None, None, Some(2), Some(0)]);
    assert!(
        s.containers[1].env.is_empty(),
        "MAYBE is not in the caller's environment"
    );
    assert_eq!(s.replicas, None);
}

pub fn check_azure(specs: &[WorkloadSpec]) {
    let s = &specs[0];
    assert_eq!(
        s.volumes[0].source,
        VolumeSource::Unsupported {
            kind: "azureDisk".into()
        }
    );
    assert!(
        s.containers[0].command[2].contains("$(date)"),
        "left for the shell"
    );
    assert!(has_warning(s, "spec.volumes[0].azureDisk"));
}

pub fn check_exclusive(specs: &[WorkloadSpec]) {
    let r = specs[0].resources;
    assert_eq!(
        (r.cpu_millis, r.memory_bytes),
        (Some(2000), Some(256_000_000))
    );
}

pub fn check_guestbook(specs: &[WorkloadSpec]) {
    let replicas: Vec<Option<u32>> = specs.iter().map(|s| s.replicas).collect();
    assert_eq!(replicas, [Some(1), Some(2), Some(3)]);
    for s in specs {
        assert!(has_warning(s, "document 5: Service/frontend skipped: not a workload kind (supported: Pod, Deployment, Job, DaemonSet"));
        assert_eq!(s.warnings.len(), 3, "{:?}", s.warnings);
    }
    assert_eq!(specs[0].labels["tier"], "backend");
}

pub fn check_redis_go(specs: &[WorkloadSpec]) {
    assert_eq!(specs[0].labels["role"], "master");
    assert_eq!(
        specs[0].containers[0].ports[0].name.as_deref(),
        Some("redis-server")
    );
}

pub fn check_javaweb(specs: &[WorkloadSpec]) {
    let s = &specs[0];
    assert_eq!(s.init_containers[0].name, "war");
    assert_eq!(s.containers[0].ports[0].host_port, Some(8001));
    assert_eq!(
        s.volumes[0].source,
        VolumeSource::Ephemeral { memory: false }
    );
}

pub fn check_mongo(specs: &[WorkloadSpec]) {
    assert!(has_warning(&specs[0], "gcePersistentDisk is not supported"));
    assert_eq!(specs[0].containers[0].ports[0].container_port, 27017);
}

pub fn check_sentinel(specs: &[WorkloadSpec]) {
    let s = &specs[0];
    assert_eq!(s.containers.len(), 2);
    assert_eq!(s.labels["redis-sentinel"], "true");
    assert_eq!(s.resources.cpu_millis, Some(100));
}

pub fn check_sysdig(specs: &[WorkloadSpec]) {
    let s = &specs[0];
    assert_eq!(
        env(s, 0, "ACCESS_KEY"),
        Some("8312341g-5678-abcd-4a2b2c-33bcsd655")
    );
    for field in [
        "spec.template.spec.hostNetwork",
        "spec.template.spec.hostPID",
        "securityContext.privileged",
    ] {
        assert!(has_warning(s, field), "{field}: {:?}", s.warnings);
    }
    assert_eq!(s.volumes.len(), 6);
}

pub fn check_vllm(specs: &[WorkloadSpec]) {
    let s = &specs[0];
    assert!(has_warning(
        s,
        "resources.limits[\"nvidia.com/gpu\"]: not honoured"
    ));
    assert_eq!(
        s.volumes[0].source,
        VolumeSource::Ephemeral { memory: true }
    );
    assert_eq!(s.resources.memory_bytes, Some(10 << 30));
    assert_eq!(s.containers[0].args[0], "--model=$(MODEL_ID)");
    let token = s.containers[0]
        .env
        .iter()
        .find(|e| e.name == "HUGGING_FACE_HUB_TOKEN")
        .expect("env");
    assert!(token.value_from.is_some());
}
