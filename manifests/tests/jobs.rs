//! Declared outputs of run-to-completion workloads: the `beemesh.io/outputs` annotation on
//! Jobs and Functions, and a Function's `spec.outputs`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use mesh_manifests::{parse, ParseOptions};
use mesh_protocol::spec::WorkloadSpec;

fn one(yaml: &str) -> WorkloadSpec {
    let mut specs =
        parse(yaml.as_bytes(), &ParseOptions::default()).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(specs.len(), 1);
    specs.remove(0)
}

fn err(yaml: &str) -> String {
    parse(yaml.as_bytes(), &ParseOptions::default())
        .expect_err("must fail")
        .to_string()
}

fn job(annotations: &str, spec: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: pi\n  annotations:\n{annotations}spec:\n{spec}  template:\n    spec:\n      containers:\n      - name: main\n        image: busybox\n"
    )
}

#[test]
fn a_job_declares_outputs_by_annotation() {
    let s = one(&job(
        "    beemesh.io/outputs: \"result.txt, out/ ,result.txt\"\n",
        "  backoffLimit: 2\n",
    ));
    assert_eq!(s.outputs(), ["result.txt", "out/"]);
    assert_eq!(s.job.as_ref().unwrap().backoff_limit, Some(2));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn output_paths_must_stay_in_the_working_directory() {
    for bad in ["../etc/passwd", "/etc/passwd", "out/../../x"] {
        let e = err(&job(&format!("    beemesh.io/outputs: \"{bad}\"\n"), ""));
        assert!(
            e.contains("metadata.annotations[\"beemesh.io/outputs\"]") && e.contains(bad),
            "{bad}: {e}"
        );
    }
}

#[test]
fn outputs_on_a_long_running_workload_are_a_warning() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations:\n    beemesh.io/outputs: result.txt\nspec:\n  containers:\n  - name: main\n    image: nginx\n";
    let s = one(pod);
    assert!(s.outputs().is_empty());
    assert!(
        s.warnings.iter().any(|w| w.contains("beemesh.io/outputs")
            && w.contains("only Jobs and run-to-completion Functions")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn more_than_one_completion_is_a_warning() {
    let s = one(&job("    x: y\n", "  completions: 3\n"));
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("spec.completions") && w.contains("not honoured")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn a_function_lists_outputs_in_its_spec_and_the_annotation_adds_to_them() {
    let yaml = "apiVersion: beemesh.io/v1\nkind: Function\nmetadata:\n  name: resize\n  annotations:\n    beemesh.io/outputs: thumbs/\nspec:\n  module: ./resize.wasm\n  outputs: [out.png, out.png, meta.json]\n";
    let s = one(yaml);
    assert_eq!(s.outputs(), ["out.png", "meta.json", "thumbs/"]);
    let bad = "apiVersion: beemesh.io/v1\nkind: Function\nmetadata:\n  name: resize\nspec:\n  module: ./resize.wasm\n  outputs: [ok.txt, ../up.txt]\n";
    let e = err(bad);
    assert!(
        e.contains("spec.outputs[1]") && e.contains("../up.txt"),
        "{e}"
    );
}

#[test]
fn outputs_of_a_function_that_does_not_end_are_a_warning() {
    let yaml = "apiVersion: beemesh.io/v1\nkind: Function\nmetadata:\n  name: srv\nspec:\n  module: ./srv.wasm\n  restartPolicy: Always\n  outputs: [x.txt]\n";
    let s = one(yaml);
    assert!(s.outputs().is_empty());
    assert!(
        s.warnings.iter().any(|w| w.contains("spec.outputs")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn jobs_without_outputs_keep_their_content_digest() {
    // The outputs field is left out of the digest when empty: a Job applied before outputs
    // existed keeps its version.
    let s = one(&job("    x: y\n", ""));
    let json = serde_json::to_string(&s.job).unwrap();
    assert!(!json.contains("outputs"), "{json}");
}
