//! Unit tests of the rendering: what `kube play` receives for a spec.

use std::collections::{BTreeMap, BTreeSet};

use mesh_protocol::spec::{
    ConfigKind, ConfigObject, Container, EnvSource, EnvVar, HealthCheck, JobSpec, Mount, Port,
    PortProtocol, ResourceAmounts, Resources, SourceFormat, Volume, VolumeSource,
};
use mesh_protocol::{WorkloadKind, WorkloadSpec};
use mesh_runtime::InstallContext;
use serde_yaml::Value;

use super::container::{probe, shell_join};
use super::{render, Plan, Rendered, DEFAULT_PATH};
use crate::names::Labels;

fn web() -> WorkloadSpec {
    let mut spec = WorkloadSpec::new(
        "web",
        "shop",
        WorkloadKind::Deployment,
        SourceFormat::Kubernetes,
    );
    spec.containers.push(Container {
        name: "main".into(),
        image: "localhost/mesh-test:latest".into(),
        command: vec!["httpd".into()],
        args: vec!["-f".into()],
        env: vec![
            EnvVar {
                name: "A".into(),
                value: Some("1".into()),
                value_from: None,
            },
            EnvVar {
                name: "G".into(),
                value: None,
                value_from: Some(EnvSource::ConfigMap {
                    name: "cfg".into(),
                    key: "greeting".into(),
                }),
            },
            EnvVar {
                name: "P".into(),
                value: None,
                value_from: Some(EnvSource::Secret {
                    name: "creds".into(),
                    key: "password".into(),
                }),
            },
            EnvVar {
                name: "N".into(),
                value: None,
                value_from: Some(EnvSource::Field {
                    path: "metadata.name".into(),
                }),
            },
        ],
        ports: vec![Port {
            container_port: 8080,
            host_port: Some(18080),
            host_ip: Some("127.0.0.1".into()),
            protocol: PortProtocol::Tcp,
            name: None,
        }],
        mounts: vec![
            Mount {
                source: "scratch".into(),
                target: "/scratch".into(),
                read_only: false,
                sub_path: None,
            },
            Mount {
                source: "conf".into(),
                target: "/conf".into(),
                read_only: true,
                sub_path: None,
            },
            Mount {
                source: "data".into(),
                target: "/data".into(),
                read_only: false,
                sub_path: None,
            },
        ],
        resources: Resources {
            requests: ResourceAmounts {
                cpu_millis: Some(100),
                memory_bytes: None,
            },
            limits: ResourceAmounts {
                cpu_millis: Some(250),
                memory_bytes: Some(64 << 20),
            },
        },
        working_dir: Some("/var/www".into()),
        ..Container::default()
    });
    spec.volumes = vec![
        Volume {
            name: "scratch".into(),
            source: VolumeSource::Ephemeral { memory: false },
        },
        Volume {
            name: "conf".into(),
            source: VolumeSource::ConfigMap { name: "cfg".into() },
        },
        Volume {
            name: "data".into(),
            source: VolumeSource::Named { external: false },
        },
    ];
    spec.config = vec![
        ConfigObject {
            kind: ConfigKind::ConfigMap,
            name: "cfg".into(),
            data: BTreeMap::from([("greeting".into(), "hello".into())]),
            binary_keys: vec![],
        },
        ConfigObject {
            kind: ConfigKind::Secret,
            name: "creds".into(),
            data: BTreeMap::from([
                ("password".into(), "s3cret".into()),
                ("blob".into(), "aGk=".into()),
            ]),
            binary_keys: vec!["blob".into()],
        },
    ];
    spec.seal()
}

fn labels(spec: &WorkloadSpec) -> Labels {
    Labels::new(
        spec,
        &InstallContext {
            node: "node-1".into(),
            replica: 0,
        },
    )
}

fn rendered(spec: &WorkloadSpec, claims: &[&str], no_path: &[&str]) -> Result<Rendered, String> {
    let claims: BTreeSet<String> = claims.iter().map(|s| s.to_string()).collect();
    let no_path: BTreeSet<String> = no_path.iter().map(|s| s.to_string()).collect();
    render(&Plan {
        spec,
        labels: &labels(spec),
        new_claims: &claims,
        images_without_path: &no_path,
    })
}

fn docs(yaml: &str) -> Vec<Value> {
    yaml.split("---\n")
        .map(|d| serde_yaml::from_str(d).expect("each document parses"))
        .collect()
}

#[test]
fn a_deployment_becomes_configmaps_claims_and_one_pod() {
    let spec = web();
    let out = rendered(&spec, &["data"], &["localhost/mesh-test:latest"]).expect("renders");
    let pod_name = labels(&spec).pod;
    let docs = docs(&out.yaml);
    let kinds: Vec<&str> = docs
        .iter()
        .map(|d| d["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        ["ConfigMap", "ConfigMap", "PersistentVolumeClaim", "Pod"]
    );
    assert_eq!(
        out.configmaps,
        [
            format!("{pod_name}-cm-cfg"),
            format!("{pod_name}-secret-creds")
        ]
    );
    assert_eq!(out.claims, ["data"]);
    assert_eq!(out.containers, [format!("{pod_name}-main")]);
    assert_eq!(docs[1]["data"]["password"], "s3cret");
    assert_eq!(docs[1]["binaryData"]["blob"], "aGk=");
    assert_eq!(
        docs[2]["metadata"]["labels"]["beemesh.io/workload"],
        "shop.web"
    );

    let pod = &docs[3];
    assert_eq!(pod["metadata"]["name"].as_str(), Some(pod_name.as_str()));
    assert_eq!(pod["metadata"]["labels"]["beemesh.io/managed"], "true");
    assert_eq!(pod["metadata"]["labels"]["beemesh.io/node"], "node-1");
    assert_eq!(pod["spec"]["restartPolicy"], "Always");
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["resources"]["limits"]["cpu"], "250m");
    assert_eq!(c["resources"]["limits"]["memory"], "67108864");
    assert_eq!(c["resources"]["requests"]["cpu"], "100m");
    assert_eq!(c["ports"][0]["hostPort"], 18080);
    assert_eq!(c["ports"][0]["hostIP"], "127.0.0.1");
    assert_eq!(c["workingDir"], "/var/www");
    let env = c["env"].as_sequence().expect("env");
    assert_eq!(
        env[1]["valueFrom"]["configMapKeyRef"]["name"].as_str(),
        Some(format!("{pod_name}-cm-cfg").as_str())
    );
    assert_eq!(
        env[2]["valueFrom"]["configMapKeyRef"]["name"].as_str(),
        Some(format!("{pod_name}-secret-creds").as_str())
    );
    assert_eq!(
        env[3]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(env[4]["name"], "PATH");
    assert_eq!(env[4]["value"], DEFAULT_PATH);
    let volumes = pod["spec"]["volumes"].as_sequence().expect("volumes");
    assert_eq!(
        volumes[0]["name"].as_str(),
        Some(format!("{pod_name}-scratch").as_str())
    );
    assert!(volumes[0]["emptyDir"].is_mapping());
    assert_eq!(volumes[2]["persistentVolumeClaim"]["claimName"], "data");
    assert_eq!(c["volumeMounts"][1]["readOnly"], true);
}

#[test]
fn existing_named_volumes_are_used_not_created() {
    let out = rendered(&web(), &[], &[]).expect("renders");
    assert!(out.claims.is_empty());
    assert!(!out.yaml.contains("PersistentVolumeClaim"));
    assert!(
        !out.yaml.contains(DEFAULT_PATH),
        "images with a PATH keep theirs"
    );
}

#[test]
fn jobs_never_restart_always() {
    let mut spec = web();
    spec.kind = WorkloadKind::Job;
    spec.job = Some(JobSpec::default());
    let out = rendered(&spec.clone().seal(), &[], &[]).expect("renders");
    assert_eq!(
        docs(&out.yaml).last().expect("pod")["spec"]["restartPolicy"],
        "Never"
    );
    spec.restart_policy = mesh_protocol::spec::RestartPolicy::OnFailure;
    let out = rendered(&spec.seal(), &[], &[]).expect("renders");
    assert_eq!(
        docs(&out.yaml).last().expect("pod")["spec"]["restartPolicy"],
        "OnFailure"
    );
}

#[test]
fn dangling_references_are_reported() {
    let mut spec = web();
    spec.config.retain(|c| c.kind == ConfigKind::ConfigMap);
    let err = rendered(&spec, &[], &[]).expect_err("secret missing");
    assert!(err.contains("creds"), "{err}");
    let mut spec = web();
    spec.containers[0].mounts[0].source = "nope".into();
    assert!(rendered(&spec, &[], &[])
        .expect_err("volume missing")
        .contains("nope"));
    let mut spec = web();
    spec.kind = WorkloadKind::Function;
    assert!(rendered(&spec, &[], &[]).is_err());
}

#[test]
fn unsupported_volumes_are_left_out_with_their_mounts() {
    let mut spec = web();
    spec.volumes[0].source = VolumeSource::Unsupported { kind: "nfs".into() };
    let out = rendered(&spec, &[], &[]).expect("renders");
    assert!(!out.yaml.contains("/scratch"));
}

#[test]
fn health_checks_become_one_shell_command() {
    let check = |test: &[&str]| HealthCheck {
        test: test.iter().map(|s| s.to_string()).collect(),
        interval_ms: Some(1500),
        timeout_ms: None,
        retries: Some(2),
        start_period_ms: None,
    };
    let p = probe(&check(&[
        "CMD",
        "wget",
        "-q",
        "-O",
        "/dev/null",
        "http://x/a b",
    ]))
    .expect("probe");
    assert_eq!(
        p["exec"]["command"][0],
        "wget -q -O /dev/null 'http://x/a b'"
    );
    assert_eq!(p["periodSeconds"], 2);
    assert_eq!(p["failureThreshold"], 2);
    let p = probe(&check(&["CMD-SHELL", "test -f /ok"])).expect("probe");
    assert_eq!(p["exec"]["command"][0], "test -f /ok");
    assert!(probe(&check(&["NONE"])).is_none());
    assert_eq!(shell_join(&["it's".to_string()]), r#"'it'"'"'s'"#);
}
