//! Compose rules: unhonoured keys warn, unknown keys fail, labels become annotations.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;

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
        ("services:\n  web: {image: x, extends: {service: base}}\n", "services.web.extends: not supported"),
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
