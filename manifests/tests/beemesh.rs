//! beemesh.io/v1 Function and VirtualMachine.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use mesh_manifests::{parse, Error, ErrorKind, ParseOptions};
use mesh_protocol::spec::{
    JobSpec, ModuleSource, RestartPolicy, SourceFormat, WorkloadKind, WorkloadSpec,
};

fn one(yaml: &str) -> WorkloadSpec {
    let mut specs =
        parse(yaml.as_bytes(), &ParseOptions::default()).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(specs.len(), 1);
    specs.remove(0)
}

fn err(yaml: &str) -> Error {
    parse(yaml.as_bytes(), &ParseOptions::default()).expect_err("must fail")
}

fn function(spec: &str) -> String {
    format!("apiVersion: beemesh.io/v1\nkind: Function\nmetadata:\n  name: resize\n  labels: {{team: media}}\nspec:\n{spec}")
}

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn a_function_runs_a_module_to_completion_by_default() {
    let s = one(&function(
        "  module: ./resize.wasm\n  args: [--width, '640']\n  env: [{name: MODE, value: fast}, {name: N, value: 3}]\n  \
         memory: 64Mi\n  timeout: 10s\n  backoffLimit: 2\n",
    ));
    assert_eq!(
        (s.kind, s.format, s.labels["team"].as_str()),
        (WorkloadKind::Function, SourceFormat::Beemesh, "media")
    );
    let m = s.module.as_ref().expect("module");
    assert_eq!(m.source, ModuleSource::Path("./resize.wasm".into()));
    assert_eq!(m.args, ["--width", "640"]);
    assert_eq!(m.env[1].value.as_deref(), Some("3"));
    assert_eq!(
        (m.memory_bytes, m.timeout_ms),
        (Some(64 << 20), Some(10_000))
    );
    assert_eq!(s.restart_policy, RestartPolicy::Never);
    assert_eq!(
        s.job,
        Some(JobSpec {
            backoff_limit: Some(2),
            ..JobSpec::default()
        })
    );
    assert_eq!(s.resources.memory_bytes, Some(64 << 20));
    assert!(s.containers.is_empty());
    assert_eq!(s.version, s.compute_version());
}

#[test]
fn long_running_functions_and_digests() {
    let s = one(&function(&format!(
        "  module: {DIGEST}\n  env: {{A: x}}\n  restartPolicy: Always\n"
    )));
    assert_eq!(
        s.module.as_ref().map(|m| m.source.clone()),
        Some(ModuleSource::Digest(DIGEST.into()))
    );
    assert_eq!(s.job, None);
    assert_eq!(s.restart_policy, RestartPolicy::Always);
    let s = one(&function(
        "  module: m.wasm\n  restartPolicy: OnFailure\n  runToCompletion: true\n",
    ));
    assert!(s.runs_to_completion());
    let e = err(&function(
        "  module: m.wasm\n  restartPolicy: Always\n  runToCompletion: true\n",
    ));
    assert_eq!(
        e.to_string(),
        "spec.runToCompletion: a Function that runs to completion cannot use restartPolicy Always"
    );
    let e = err(&function("  module: sha256:abc\n"));
    assert_eq!(
        e.to_string(),
        "spec.module: invalid digest: expected sha256: and 64 lowercase hex digits"
    );
}

/// The seed's example names a runtime and handler but no module.
#[test]
fn the_seed_example_needs_a_module() {
    let e = err(
        "apiVersion: beemesh.io/v1\nkind: Function\nmetadata:\n  name: data-processor\n  annotations:\n    \
         beemesh.io/runtime-engine: \"wasm\"\nspec:\n  runtime: python:3.9\n  handler: main.process\n  memory: 512Mi\n",
    );
    assert_eq!(e.to_string(), "spec.module: missing");
    let s = one(&function("  module: m.wasm\n  runtime: python:3.9\n"));
    assert!(s
        .warnings
        .iter()
        .any(|w| w.starts_with("spec.runtime: not honoured")));
}

#[test]
fn virtual_machines() {
    let s = one(
        "apiVersion: beemesh.io/v1\nkind: VirtualMachine\nmetadata:\n  name: ubuntu-vm\n  annotations:\n    \
         beemesh.io/runtime-engine: qemu\nspec:\n  image: ubuntu:22.04\n  vcpus: 2\n  memory: 4Gi\n  disk: 20Gi\n",
    );
    let vm = s.vm.as_ref().expect("vm");
    assert_eq!((vm.image.as_str(), vm.vcpus), ("ubuntu:22.04", Some(2)));
    assert_eq!(
        (vm.memory_bytes, vm.disk_bytes),
        (Some(4 << 30), Some(20 << 30))
    );
    assert_eq!(
        (s.resources.cpu_millis, s.resources.memory_bytes),
        (Some(2000), Some(4 << 30))
    );
    assert_eq!(s.kind, WorkloadKind::VirtualMachine);
    let e = err("apiVersion: beemesh.io/v1\nkind: VirtualMachine\nmetadata: {name: v}\nspec: {image: x, vcpus: 0}\n");
    assert_eq!(e.to_string(), "spec.vcpus: must be at least 1");
}

#[test]
fn unknown_kinds_versions_and_fields_are_refused() {
    let e = err("apiVersion: beemesh.io/v1\nkind: Lambda\nmetadata: {name: l}\n");
    let ErrorKind::UnsupportedKind { kind, reason, .. } = e.kind() else {
        panic!("{e}")
    };
    assert_eq!(
        (kind.as_str(), reason.as_str()),
        (
            "Lambda",
            "beemesh.io/v1 kinds are Function and VirtualMachine"
        )
    );
    let e = err("apiVersion: beemesh.io/v2\nkind: Function\nmetadata: {name: l}\n");
    assert!(
        e.to_string().contains("unknown version: use beemesh.io/v1"),
        "{e}"
    );
    let e = err(&function("  module: m.wasm\n  memroy: 1Gi\n"));
    assert_eq!(e.to_string(), "spec.memroy: unknown field");
}
