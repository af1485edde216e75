//! Compose rules: unhonoured keys warn, unknown keys fail, labels become annotations.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;

use std::time::{Duration, Instant};

use mesh_manifests::{parse, Error, ParseOptions};
use mesh_protocol::spec::{PullPolicy, RestartPolicy, WorkloadSpec};

fn opts() -> ParseOptions {
    ParseOptions {
        default_name: Some("stack".into()),
        env: BTreeMap::new(),
        ..ParseOptions::default()
    }
}

fn one(yaml: &str) -> WorkloadSpec {
    let mut specs = parse(yaml.as_bytes(), &opts()).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(specs.len(), 1);
    specs.remove(0)
}

fn err(yaml: &str) -> Error {
    parse(yaml.as_bytes(), &opts()).expect_err("must fail")
}

fn warned(spec: &WorkloadSpec, text: &str) -> bool {
    spec.warnings.iter().any(|w| w.contains(text))
}

#[test]
fn labels_annotations_and_pull_policy() {
    let s = one(
        "x-beemesh:\n  namespace: team-a\n  annotations: {beemesh.io/runtime-engine: docker}\n\
         services:\n  web:\n    image: x\n    labels: [com.example.tier=front, beemesh.io/runtime-engine=podman, beemesh.io/resources.cpu=2]\n    \
         pull_policy: never\n    init: true\n    working_dir: /app\n  job:\n    image: y\n    labels: {beemesh.io/runtime-engin: wasm}\n    pull_policy: always\n",
    );
    assert_eq!(s.namespace, "team-a");
    assert_eq!(
        s.annotation("beemesh.io/runtime-engine"),
        Some("docker"),
        "x-beemesh wins over labels"
    );
    assert_eq!(s.resources.cpu_millis, Some(2000), "annotation override");
    let web = &s.containers[0];
    assert_eq!(web.labels["com.example.tier"], "front");
    assert_eq!((web.pull_policy, web.init), (PullPolicy::Never, true));
    assert_eq!(web.working_dir.as_deref(), Some("/app"));
    assert_eq!(s.containers[1].pull_policy, PullPolicy::Always);
    assert!(warned(&s, "services.job.labels[\"beemesh.io/runtime-engin\"]: unknown annotation beemesh.io/runtime-engin; did you mean beemesh.io/runtime-engine?"));
    let e =
        err("services:\n  web:\n    image: x\n    labels: {beemesh.io/resources.memory: huge}\n");
    assert!(
        e.to_string()
            .starts_with("services.web.labels[\"beemesh.io/resources.memory\"]: invalid quantity"),
        "{e}"
    );
}

#[test]
fn unhonoured_keys_warn_and_unknown_keys_fail() {
    let s = one(
        "x-top: 1\nservices:\n  web:\n    image: x\n    network_mode: host\n    privileged: true\n    devices: [/dev/fuse]\n    \
         cap_add: [NET_ADMIN]\n    platform: wasi/wasm\n    runtime: io.containerd.wasmedge.v1\n    env_file: .env\n    \
         container_name: fixed\n    expose: ['3000']\n    secrets: [s]\n    configs: [c]\n    logging: {driver: json-file}\n    \
         hostname: h\n    networks: [n]\n    shm_size: 1g\n    x-custom: {nested: {x-deeper: true}}\n    build: .\n    read_only: false\n",
    );
    for key in [
        "network_mode",
        "privileged",
        "devices",
        "cap_add",
        "platform",
        "runtime",
        "env_file",
        "container_name",
        "expose",
        "secrets",
        "configs",
        "logging",
        "hostname",
        "networks",
        "shm_size",
        "build",
    ] {
        assert!(
            warned(&s, &format!("services.web.{key}: not honoured")),
            "{key}: {:?}",
            s.warnings
        );
    }
    assert!(!warned(&s, "read_only"), "false asks for nothing");
    let cases = [
        ("services:\n  web: {image: x, wrongField: 1}\n", "services.web.wrongField: unknown field"),
        ("services:\n  web: {image: x}\nunknown: 1\n", "unknown: unknown field"),
        ("services:\n  web: {build: .}\n", "services.web.build: building images is not supported by the mesh; give the service an image"),
        ("services:\n  web: {command: x}\n", "services.web.image: missing"),
        ("services:\n  web: {image: x, extends: {service: base}}\n", "services.web.extends.service: service \"base\" is not defined"),
        ("services: {}\n", "services: no services defined"),
        ("services:\n", "services: no services defined"),
        ("services:\n  a: {image: x, profiles: [dev]}\n", "services: nothing to start: every service needs a profile: a (dev)"),
        ("services:\n  a: {image: x, depends_on: [b]}\n  b: {image: y, profiles: [debug]}\n", "services.a.depends_on[0]: service b is only started with profile(s) debug"),
        ("services:\n  'bad name': {image: x}\n", "services[\"bad name\"]: invalid service name"),
        ("services:\n  web: {image: x, deploy: {replicas: many}}\n", "services.web.deploy.replicas: expected an integer, found \"many\""),
    ];
    for (yaml, want) in cases {
        let e = err(yaml);
        assert!(
            e.to_string().starts_with(want),
            "got {:?}, want {want:?}",
            e.to_string()
        );
    }
}

/// `restart: no` is the string "no" in YAML 1.2, and `no` as a boolean still means never.
#[test]
fn restart_no_in_every_spelling() {
    for spelling in ["no", "'no'", "false"] {
        let s = one(&format!(
            "services:\n  a: {{image: x, restart: {spelling}}}\n"
        ));
        assert_eq!(
            s.containers[0].restart,
            Some(RestartPolicy::Never),
            "{spelling}"
        );
    }
}

/// A cycle is named in order, from the first service (by name) on it, at the `depends_on`
/// entry that closes it.
#[test]
fn depends_on_cycles_are_refused_in_order() {
    let cases = [
        (
            "services:\n  c: {image: x, depends_on: [a]}\n  b: {image: x, depends_on: [c]}\n  a: {image: x, depends_on: [b]}\n",
            "services.c.depends_on[0]: depends_on forms a cycle: a -> b -> c -> a",
        ),
        (
            "services:\n  a: {image: x, depends_on: [a]}\n",
            "services.a.depends_on[0]: depends_on forms a cycle: a -> a",
        ),
        (
            "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: {d: {condition: service_healthy}, c: {}}}\n  \
             c: {image: x, depends_on: [b]}\n  d: {image: x}\n",
            "services.c.depends_on[0]: depends_on forms a cycle: b -> c -> b",
        ),
        (
            "services:\n  web: {image: x, depends_on: {db: {condition: service_healthy}}}\n  db: {image: y, depends_on: [web]}\n",
            "services.web.depends_on.db: depends_on forms a cycle: db -> web -> db",
        ),
    ];
    for (yaml, want) in cases {
        assert_eq!(err(yaml).to_string(), want, "{yaml}");
    }
    // Shared dependencies are not cycles.
    let s = one(
        "services:\n  a: {image: x, depends_on: [b, c]}\n  b: {image: x, depends_on: [d]}\n  \
         c: {image: x, depends_on: [d]}\n  d: {image: x}\n",
    );
    assert_eq!(s.containers.len(), 4);
}

/// A long dependency chain is checked without recursion and quickly.
#[test]
fn long_dependency_chains_are_checked_quickly() {
    let n = 20_000;
    let mut yaml = String::from("services:\n");
    for i in 0..n {
        yaml.push_str(&format!("  s{i}: {{image: x, depends_on: [s{}]}}\n", i + 1));
    }
    let open = format!("{yaml}  s{n}: {{image: x}}\n");
    let started = Instant::now();
    assert_eq!(one(&open).containers.len(), n + 1);
    let closed = format!("{yaml}  s{n}: {{image: x, depends_on: [s0]}}\n");
    let e = err(&closed);
    assert!(
        e.to_string().starts_with(&format!(
            "services.s{n}.depends_on[0]: depends_on forms a cycle: s0 -> s1 -> s2 -> "
        )),
        "{}",
        e.to_string().chars().take(200).collect::<String>()
    );
    assert!(e.to_string().ends_with(&format!("s{n} -> s0")));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
