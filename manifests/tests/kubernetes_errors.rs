//! Kubernetes mistakes a user makes, and what they are told: located content errors,
//! removed and unsupported kinds, multi-document files, JSON and Lists.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use mesh_manifests::{parse, Error, ErrorKind, ParseOptions};
use mesh_protocol::spec::WorkloadSpec;

fn one(yaml: &str) -> WorkloadSpec {
    let mut specs =
        parse(yaml.as_bytes(), &ParseOptions::default()).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(specs.len(), 1);
    specs.remove(0)
}

fn err(yaml: &str) -> Error {
    parse(yaml.as_bytes(), &ParseOptions::default()).expect_err("must fail")
}

fn warned(spec: &WorkloadSpec, text: &str) -> bool {
    spec.warnings.iter().any(|w| w.contains(text))
}

#[test]
fn resource_annotations_override_and_are_validated_where_written() {
    let pod = |annotations: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: r\n  annotations: {{{annotations}}}\nspec:\n  template:\n    \
             spec: {{containers: [{{name: c, image: 'a:1', resources: {{requests: {{cpu: 100m}}}}}}]}}\n"
        )
    };
    let s = one(&pod(
        "beemesh.io/resources.cpu: '2', beemesh.io/resources.memory: 4GB",
    ));
    assert_eq!(
        (s.resources.cpu_millis, s.resources.memory_bytes),
        (Some(2000), Some(4_000_000_000))
    );
    let e = err(&pod("beemesh.io/resources.cpu: lots"));
    assert_eq!(
        e.path(),
        Some("metadata.annotations[\"beemesh.io/resources.cpu\"]")
    );
    assert_eq!(
        e.to_string(),
        "metadata.annotations[\"beemesh.io/resources.cpu\"]: invalid quantity \"lots\": expected a number"
    );
    let s = one(&pod("beemesh.io/runtime-engin: podman"));
    assert!(warned(
        &s,
        "unknown annotation beemesh.io/runtime-engin; did you mean beemesh.io/runtime-engine?"
    ));
}

/// Errors carry exact field paths and say what was expected.
#[test]
fn content_errors_are_located() {
    let pod = |container: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - {container}\n")
    };
    let cases = [
        (pod("{name: c}"), "spec.containers[0].image: missing"),
        (pod("{name: c, image: ''}"), "spec.containers[0].image: must not be empty"),
        (pod("{name: c, image: x, ports: [{containerPort: 80}, {containerPort: http}]}"), "spec.containers[0].ports[1].containerPort: expected an integer, found a string"),
        (pod("{name: c, image: x, ports: [{containerPort: 70000}]}"), "spec.containers[0].ports[0].containerPort: port 70000 is out of range: use 1 to 65535"),
        (pod("{name: c, image: x, env: [{name: N, value: 3}]}"), "spec.containers[0].env[0].value: expected a string, found an integer (quote it: \"3\")"),
        (pod("{name: c, image: x, volumeMounts: [{name: nope, mountPath: /x}]}"), "spec.containers[0].volumeMounts[0].name: no volume named \"nope\" in the pod's volumes"),
        (pod("{name: c, image: x, resources: {limits: {memory: 512m}}}"), "spec.containers[0].resources.limits.memory: invalid quantity \"512m\""),
        (pod("{name: c, image: x, imagePullPolicy: Sometimes}"), "spec.containers[0].imagePullPolicy: unknown pull policy"),
        (pod("{name: C_1, image: x}"), "spec.containers[0].name: invalid name \"C_1\""),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n".to_string(), "spec.containers: must list at least one container"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {namespace: x}\nspec: {}\n".to_string(), "metadata.name: missing"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {generateName: web-}\nspec: {}\n".to_string(), "metadata.name: missing (generateName is not supported"),
        ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: two, template: {spec: {containers: [{name: c, image: x}]}}}\n".to_string(), "spec.replicas: expected an integer, found a string"),
        ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n".to_string(), "spec.template: missing"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: '{{x}}'}}\nspec: {}\n".to_string(), "metadata.labels.app: invalid label value"),
    ];
    for (yaml, want) in cases {
        let e = err(&yaml);
        assert!(
            e.to_string().starts_with(want),
            "got {:?}, want {want:?}",
            e.to_string()
        );
    }
}

#[test]
fn removed_and_unsupported_kinds_are_explained() {
    let e =
        err("apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n");
    assert_eq!(
        e.to_string(),
        "apiVersion: Deployment in extensions/v1beta1 was removed in Kubernetes 1.16: use apps/v1"
    );
    let e = err("apiVersion: apps/v1beta2\nkind: DaemonSet\nmetadata: {name: d}\n");
    assert!(matches!(e.kind(), ErrorKind::RemovedApi { .. }), "{e}");
    let e = err("apiVersion: apps/v2\nkind: Deployment\nmetadata: {name: d}\n");
    assert!(
        e.to_string()
            .contains("Deployment is served as apiVersion apps/v1, not apps/v2"),
        "{e}"
    );
    let e = err("apiVersion: v1\nkind: ReplicationController\nmetadata: {name: d}\n");
    assert!(e.to_string().contains("use a Deployment"), "{e}");
    let e = err("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: b}\n");
    let ErrorKind::NothingToDeploy { skipped } = e.kind() else {
        panic!("{e}")
    };
    assert_eq!(skipped[0], "Service/s");
    assert_eq!(
        skipped[1],
        "PodDisruptionBudget/b (policy/v1beta1 was removed in Kubernetes 1.25: use policy/v1)"
    );
}

#[test]
fn multi_document_errors_name_the_document() {
    let e = err("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: x}]}\n---\n\
                 apiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec: {containers: [{name: c}]}\n");
    assert_eq!(
        e.to_string(),
        "document 2: spec.containers[0].image: missing"
    );
    assert_eq!(e.document(), Some(2));
    let e = err("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: x}]}\n---\n\
                 apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: x}]}\n");
    assert!(
        e.to_string()
            .contains("workload default/a is defined twice (documents 1 and 2)"),
        "{e}"
    );
    let e = err("- apiVersion: v1\n");
    assert_eq!(e.to_string(), "(document): expected a mapping (a Kubernetes object, a Compose file or a beemesh.io/v1 object), found a list");
}

#[test]
fn json_lists_and_crlf_are_read() {
    let s = one("\u{feff}{\r\n  \"apiVersion\": \"v1\",\r\n  \"kind\": \"List\",\r\n  \"items\": [\r\n    {\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"j\"}, \"spec\": {\"containers\": [{\"name\": \"c\", \"image\": \"x:1\"}]}},\r\n    {\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {\"name\": \"svc\"}}\r\n  ]\r\n}\r\n");
    assert_eq!(s.name, "j");
    assert!(warned(&s, "Service/svc skipped"));
    let e = err("{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"j\"}, \"spec\": {\"containers\": [{\"name\": \"c\"}]}}]}");
    assert_eq!(e.to_string(), "items[0].spec.containers[0].image: missing");
}
