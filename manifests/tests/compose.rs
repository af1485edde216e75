//! Compose files: one workload per file, one container per service; interpolation, anchors
//! and merge keys as `docker compose` does them; unknown keys refused, unhonoured ones warned.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;

use mesh_manifests::{parse, Error, ErrorKind, ParseOptions};
use mesh_protocol::spec::{
    DependencyCondition, PortProtocol, RestartPolicy, SourceFormat, VolumeSource, WorkloadKind,
    WorkloadSpec,
};

fn opts(vars: &[(&str, &str)]) -> ParseOptions {
    ParseOptions {
        default_name: Some("stack".into()),
        env: vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..ParseOptions::default()
    }
}

fn one_with(yaml: &str, vars: &[(&str, &str)]) -> WorkloadSpec {
    let mut specs = parse(yaml.as_bytes(), &opts(vars)).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(specs.len(), 1);
    specs.remove(0)
}

fn one(yaml: &str) -> WorkloadSpec {
    one_with(yaml, &[])
}

fn err(yaml: &str) -> Error {
    parse(yaml.as_bytes(), &opts(&[])).expect_err("must fail")
}

fn warned(spec: &WorkloadSpec, text: &str) -> bool {
    spec.warnings.iter().any(|w| w.contains(text))
}

#[test]
fn naming_follows_name_then_the_given_default() {
    let s = one("name: shop\nservices:\n  web: {image: nginx}\n");
    assert_eq!((s.name.as_str(), s.namespace.as_str()), ("shop", "default"));
    assert_eq!(
        (s.kind, s.format, s.replicas),
        (WorkloadKind::Compose, SourceFormat::Compose, None)
    );
    assert_eq!(
        one("version: '3.8'\nservices:\n  web: {image: nginx}\n").name,
        "stack"
    );
    let no_name = parse(
        b"services:\n  web: {image: nginx}\n",
        &ParseOptions::default(),
    )
    .expect_err("no name");
    assert_eq!(no_name.kind(), &ErrorKind::NoName);
    assert_eq!(
        no_name.to_string(),
        "compose file has no top-level name: and no name was given"
    );
    let e = err("name: My_Shop\nservices:\n  web: {image: nginx}\n");
    assert!(
        e.to_string().starts_with("name: invalid name \"My_Shop\""),
        "{e}"
    );
    assert!(e.to_string().contains("for example \"my-shop\""), "{e}");
}

/// Anchors, aliases and `<<` merge keys (single and lists) work, with `x-` extensions.
#[test]
fn anchors_and_merge_keys() {
    let s = one(
        "x-common: &common\n  image: alpine:3.19\n  restart: always\n  environment: &env {A: '1'}\n\
         x-limits: &limits\n  deploy: {resources: {limits: {cpus: '0.5', memory: 256M}}}\n\
         services:\n  one:\n    <<: *common\n    command: sleep 1\n  two:\n    <<: [*limits, *common]\n    \
         restart: 'no'\n    environment: *env\n    x-note: ignored\n",
    );
    let (one_c, two) = (&s.containers[0], &s.containers[1]);
    assert_eq!(
        (one_c.image.as_str(), one_c.restart),
        ("alpine:3.19", Some(RestartPolicy::Always))
    );
    assert_eq!(one_c.args, ["sleep", "1"]);
    assert_eq!(two.image, "alpine:3.19");
    assert_eq!(
        two.restart,
        Some(RestartPolicy::Never),
        "local keys win over merged ones"
    );
    assert_eq!(two.resources.limits.memory_bytes, Some(256 << 20));
    assert_eq!(two.env[0].value.as_deref(), Some("1"));
    assert_eq!(s.resources.cpu_millis, Some(500));
}

#[test]
fn interpolation_uses_the_given_environment() {
    let yaml = "services:\n  web:\n    image: \"nginx:${TAG:-latest}\"\n    command: [\"echo\", \"$$HOME\", \"${GREETING}\"]\n    \
                ports: [\"${PORT:-8080}:80\"]\n    environment: [\"URL=http://${HOST}/\"]\n";
    let s = one_with(yaml, &[("TAG", "1.25"), ("GREETING", "hi")]);
    let web = &s.containers[0];
    assert_eq!(web.image, "nginx:1.25");
    assert_eq!(web.args, ["echo", "$HOME", "hi"]);
    assert_eq!(web.ports[0].host_port, Some(8080));
    assert_eq!(web.env[0].value.as_deref(), Some("http:///"));
    assert!(warned(
        &s,
        "services.web.environment[0]: variable HOST is not set: using an empty string"
    ));
    let e = err("services:\n  web:\n    image: \"${IMAGE:?set IMAGE}\"\n");
    assert_eq!(
        e.to_string(),
        "services.web.image: required variable IMAGE is missing a value: set IMAGE"
    );
    let e = err("services:\n  web:\n    image: nginx\n    command: echo $(date)\n");
    assert!(
        e.to_string()
            .starts_with("services.web.command: invalid interpolation"),
        "{e}"
    );
}

#[test]
fn environment_forms() {
    let s = one_with(
        "services:\n  a:\n    image: x\n    environment: [K=V, 'EQ=a=b', EMPTY=, FROM_ENV, MISSING]\n  b:\n    image: x\n    \
         environment: {N: 3, B: true, NULLED: null, F: 1.5, FROM_ENV: }\n",
        &[("FROM_ENV", "env"), ("NULLED", "n")],
    );
    let pairs = |i: usize| -> Vec<(String, String)> {
        s.containers[i]
            .env
            .iter()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect()
    };
    let want_a = [
        ("K", "V"),
        ("EQ", "a=b"),
        ("EMPTY", ""),
        ("FROM_ENV", "env"),
    ];
    assert_eq!(
        pairs(0),
        want_a.map(|(k, v)| (k.to_string(), v.to_string()))
    );
    let want_b = [
        ("N", "3"),
        ("B", "true"),
        ("NULLED", "n"),
        ("F", "1.5"),
        ("FROM_ENV", "env"),
    ];
    assert_eq!(
        pairs(1),
        want_b.map(|(k, v)| (k.to_string(), v.to_string()))
    );
}

#[test]
fn commands_ports_and_volumes() {
    let s = one(
        "services:\n  web:\n    image: x\n    entrypoint: [\"/bin/sh\", \"-c\"]\n    command: 'echo \"a b\" c'\n    \
         ports:\n      - 80\n      - \"127.0.0.1:8080:80\"\n      - 53:53/udp\n      - \"9000-9001:9000-9001\"\n      \
         - {target: 443, published: \"8443\", protocol: tcp, host_ip: 0.0.0.0}\n    \
         volumes:\n      - data:/var/lib/data:ro\n      - ./conf:/etc/conf\n      - /var/run/docker.sock:/var/run/docker.sock\n      \
         - /scratch\n      - {type: bind, source: /srv, target: /srv, read_only: true}\n      \
         - {type: volume, source: data, target: /sub, volume: {subpath: part}}\n      - {type: tmpfs, target: /run}\n    \
         tmpfs: /tmp\n\
         volumes:\n  data:\n  ext: {external: true, name: shared-data}\n",
    );
    let web = &s.containers[0];
    assert_eq!(web.command, ["/bin/sh", "-c"]);
    assert_eq!(web.args, ["echo", "a b", "c"]);
    let ports: Vec<(u16, Option<u16>, PortProtocol)> = web
        .ports
        .iter()
        .map(|p| (p.container_port, p.host_port, p.protocol))
        .collect();
    assert_eq!(
        ports,
        [
            (80, None, PortProtocol::Tcp),
            (80, Some(8080), PortProtocol::Tcp),
            (53, Some(53), PortProtocol::Udp),
            (9000, Some(9000), PortProtocol::Tcp),
            (9001, Some(9001), PortProtocol::Tcp),
            (443, Some(8443), PortProtocol::Tcp),
        ]
    );
    let mounts: Vec<(&str, &str, bool)> = web
        .mounts
        .iter()
        .map(|m| (m.source.as_str(), m.target.as_str(), m.read_only))
        .collect();
    assert_eq!(mounts[0], ("data", "/var/lib/data", true));
    assert_eq!(mounts[1], ("./conf", "/etc/conf", false));
    assert_eq!(mounts[3], ("web-anon-3", "/scratch", false));
    assert_eq!(mounts[4], ("/srv", "/srv", true));
    assert_eq!(web.mounts[5].sub_path.as_deref(), Some("part"));
    let source = |name: &str| {
        s.volumes
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.source.clone())
    };
    assert_eq!(
        source("data"),
        Some(VolumeSource::Named { external: false })
    );
    assert_eq!(
        source("shared-data"),
        Some(VolumeSource::Named { external: true })
    );
    assert_eq!(
        source("./conf"),
        Some(VolumeSource::HostPath {
            path: "./conf".into()
        })
    );
    assert_eq!(
        source("web-anon-3"),
        Some(VolumeSource::Ephemeral { memory: false })
    );
    assert_eq!(
        source("web-tmpfs-6"),
        Some(VolumeSource::Ephemeral { memory: true })
    );
    assert_eq!(web.mounts.last().map(|m| m.target.as_str()), Some("/tmp"));
    assert!(warned(
        &s,
        "services.web.volumes[1]: ./conf is a path on the node"
    ));
    let e = err("services:\n  web:\n    image: x\n    volumes: [undeclared:/data]\n");
    assert_eq!(e.to_string(), "services.web.volumes[0]: volume \"undeclared\" is not declared under the top-level volumes");
    let e = err("services:\n  web:\n    image: x\n    ports: [\"8000-8001:80\"]\n");
    assert!(
        e.to_string()
            .starts_with("services.web.ports[0]: invalid port \"8000-8001:80\""),
        "{e}"
    );
}

#[test]
fn dependencies_healthchecks_and_restart() {
    let s = one(
        "services:\n  db:\n    image: pg\n    healthcheck:\n      test: [CMD, pg_isready]\n      interval: 1m30s\n      \
         timeout: 10ms\n      retries: 5\n      start_period: 2s\n    restart: on-failure:3\n  \
         migrate:\n    image: m\n    restart: 'no'\n    healthcheck: {disable: true}\n  \
         app:\n    image: a\n    restart: unless-stopped\n    healthcheck: {test: curl -f localhost}\n    \
         depends_on:\n      db: {condition: service_healthy, restart: true}\n      migrate: {condition: service_completed_successfully}\n  \
         web:\n    image: w\n    depends_on: [app]\n",
    );
    let [db, migrate, app, web] = &s.containers[..] else {
        panic!("four services")
    };
    let h = db.healthcheck.as_ref().expect("db healthcheck");
    assert_eq!(h.test, ["CMD", "pg_isready"]);
    assert_eq!(
        (h.interval_ms, h.timeout_ms, h.retries, h.start_period_ms),
        (Some(90_000), Some(10), Some(5), Some(2000))
    );
    assert_eq!(db.restart, Some(RestartPolicy::OnFailure));
    assert!(warned(
        &s,
        "services.db.restart: not honoured: the retry count"
    ));
    assert_eq!(
        migrate.healthcheck.as_ref().map(|h| h.test.clone()),
        Some(vec!["NONE".to_string()])
    );
    assert_eq!(migrate.restart, Some(RestartPolicy::Never));
    assert_eq!(
        app.healthcheck.as_ref().map(|h| h.test.clone()),
        Some(vec!["CMD-SHELL".into(), "curl -f localhost".into()])
    );
    assert_eq!(app.restart, Some(RestartPolicy::UnlessStopped));
    let deps: Vec<(&str, DependencyCondition)> = app
        .depends_on
        .iter()
        .map(|d| (d.service.as_str(), d.condition))
        .collect();
    assert_eq!(
        deps,
        [
            ("db", DependencyCondition::ServiceHealthy),
            ("migrate", DependencyCondition::ServiceCompletedSuccessfully)
        ]
    );
    assert_eq!(
        web.depends_on[0].condition,
        DependencyCondition::ServiceStarted
    );
    let e = err("services:\n  web:\n    image: w\n    depends_on: [ghost]\n");
    assert_eq!(
        e.to_string(),
        "services.web.depends_on[0]: service \"ghost\" is not defined"
    );
    let e = err("services:\n  web:\n    image: w\n    healthcheck: {test: [curl], interval: 5}\n");
    assert!(
        e.to_string()
            .starts_with("services.web.healthcheck.test: a list test starts with CMD"),
        "{e}"
    );
    let e = err("services:\n  web:\n    image: w\n    healthcheck: {test: x, interval: 5}\n");
    assert!(
        e.to_string()
            .starts_with("services.web.healthcheck.interval: invalid duration"),
        "{e}"
    );
    let e = err("services:\n  web:\n    image: w\n    restart: sometimes\n");
    assert!(
        e.to_string()
            .starts_with("services.web.restart: unknown restart policy"),
        "{e}"
    );
}

#[test]
fn deploy_resources_and_replicas() {
    let s = one(
        "services:\n  api:\n    image: a\n    deploy:\n      replicas: 3\n      resources:\n        limits: {cpus: '1.5', memory: 1g}\n        \
         reservations: {cpus: 0.25, memory: 512m}\n      restart_policy: {condition: on-failure}\n  \
         worker:\n    image: w\n    cpus: 0.5\n    mem_limit: 128m\n    scale: 2\n  off:\n    image: o\n    deploy: {replicas: 0}\n    cpus: 4\n",
    );
    let [api, worker, off] = &s.containers[..] else {
        panic!("three services")
    };
    assert_eq!(api.replicas, Some(3));
    assert_eq!(
        (
            api.resources.limits.cpu_millis,
            api.resources.limits.memory_bytes
        ),
        (Some(1500), Some(1 << 30))
    );
    assert_eq!(
        (
            api.resources.requests.cpu_millis,
            api.resources.requests.memory_bytes
        ),
        (Some(250), Some(512 << 20))
    );
    assert_eq!(api.restart, Some(RestartPolicy::OnFailure));
    assert_eq!(
        (worker.replicas, worker.resources.limits.cpu_millis),
        (Some(2), Some(500))
    );
    assert_eq!(off.replicas, Some(0), "kept, not started");
    // Reservations (else limits) times replicas: 3×250m + 2×500m + 0×4000m.
    assert_eq!(s.resources.cpu_millis, Some(1750));
    assert_eq!(
        s.resources.memory_bytes,
        Some(3 * (512 << 20) + 2 * (128 << 20))
    );
    let e = err("services:\n  api:\n    image: a\n    deploy: {resources: {limits: {gpus: 1}}}\n");
    assert_eq!(
        e.to_string(),
        "services.api.deploy.resources.limits.gpus: unknown field"
    );
}
