//! Unit tests of [`super`]: what is refused, with which field named, and how mounts,
//! volumes, files and start order come out.

use std::collections::BTreeMap;
use std::path::Path;

use mesh_protocol::spec::{
    ConfigKind, ConfigObject, Container, Dependency, DependencyCondition, EnvSource, EnvVar,
    HealthCheck, Mount, Port, SourceFormat, Volume, VolumeSource,
};
use mesh_protocol::{WorkloadKind, WorkloadSpec};

use super::*;
use crate::mounts::{external_volumes, files, mount_plan, volumes, MountPlan};

fn c(name: &str) -> Container {
    Container {
        name: name.into(),
        image: "img".into(),
        ..Default::default()
    }
}

fn compose(containers: Vec<Container>) -> WorkloadSpec {
    let mut spec = WorkloadSpec::new(
        "app",
        "default",
        WorkloadKind::Compose,
        SourceFormat::Compose,
    );
    spec.containers = containers;
    spec
}

fn depends(on: &str) -> Vec<Dependency> {
    vec![Dependency {
        service: on.into(),
        condition: DependencyCondition::ServiceStarted,
    }]
}

fn mount(source: &str, target: &str) -> Mount {
    Mount {
        source: source.into(),
        target: target.into(),
        read_only: false,
        sub_path: None,
    }
}

fn invalid(spec: &WorkloadSpec) -> String {
    validate(spec).expect_err("must be refused").to_string()
}

#[test]
fn missing_fields_are_named() {
    let mut no_image = c("web");
    no_image.image.clear();
    assert_eq!(
        invalid(&compose(vec![no_image.clone()])),
        "services.web.image: missing"
    );
    let mut pod = WorkloadSpec::new("p", "default", WorkloadKind::Pod, SourceFormat::Kubernetes);
    pod.containers = vec![c("ok"), no_image];
    assert_eq!(invalid(&pod), "spec.containers[1] (web).image: missing");
    assert!(invalid(&compose(vec![])).contains("no containers"));
    assert!(invalid(&compose(vec![c("a"), c("A")])).contains("duplicate container name"));
}

#[test]
fn dependencies_are_ordered_and_checked() {
    let mut web = c("web");
    web.depends_on = depends("db");
    let mut db = c("db");
    db.depends_on = depends("cache");
    let spec = compose(vec![web.clone(), c("other"), db.clone(), c("cache")]);
    assert_eq!(start_order(&spec).expect("acyclic"), vec![1, 3, 2, 0]);

    let mut cache = c("cache");
    cache.depends_on = depends("web");
    let msg = invalid(&compose(vec![web.clone(), db, cache]));
    assert!(
        msg.contains("dependency cycle") && msg.contains("web") && msg.contains("cache"),
        "{msg}"
    );

    web.depends_on = depends("nope");
    assert_eq!(
        invalid(&compose(vec![web])),
        "services.web.depends_on: unknown service nope"
    );
}

#[test]
fn unsupported_volumes_and_bad_mounts_are_refused() {
    let mut spec = compose(vec![c("web")]);
    spec.volumes = vec![Volume {
        name: "disk".into(),
        source: VolumeSource::Unsupported { kind: "nfs".into() },
    }];
    assert_eq!(
        invalid(&spec),
        "volumes.disk: volume type nfs is not supported by the docker engine"
    );

    let mut web = c("web");
    web.mounts = vec![mount("relative/dir", "/data")];
    let msg = invalid(&compose(vec![web]));
    assert!(
        msg.starts_with("services.web.volumeMounts[0]: source relative/dir is neither"),
        "{msg}"
    );
}

#[test]
fn env_references_must_resolve() {
    let mut web = c("web");
    web.env = vec![EnvVar {
        name: "TOKEN".into(),
        value: None,
        value_from: Some(EnvSource::Secret {
            name: "creds".into(),
            key: "token".into(),
        }),
    }];
    let msg = invalid(&compose(vec![web.clone()]));
    assert_eq!(
        msg,
        "services.web.env.TOKEN: Secret creds is not part of the workload"
    );
    let mut secret = compose(vec![web.clone()]);
    secret.config = vec![ConfigObject {
        kind: ConfigKind::Secret,
        name: "creds".into(),
        data: BTreeMap::from([
            ("token".into(), "czNjcjN0".into()),
            ("raw".into(), "/w==".into()),
        ]),
        binary_keys: vec!["token".into(), "raw".into()],
    }];
    let from = Some(EnvSource::Secret {
        name: "creds".into(),
        key: "token".into(),
    });
    assert_eq!(
        resolve_env(&secret, &from, "app", "n"),
        Ok(Some("s3cr3t".to_string()))
    );
    let from = Some(EnvSource::Secret {
        name: "creds".into(),
        key: "raw".into(),
    });
    assert!(resolve_env(&secret, &from, "app", "n").is_err_and(|e| e.contains("binary")));
    web.env[0].value_from = Some(EnvSource::Field {
        path: "status.podIP".into(),
    });
    assert!(invalid(&compose(vec![web])).contains("status.podIP cannot be resolved"));
}

#[test]
fn host_ports_cannot_be_shared_by_replicas_and_health_tests_have_a_form() {
    let mut web = c("web");
    web.replicas = Some(2);
    web.ports = vec![Port {
        container_port: 80,
        host_port: Some(8080),
        host_ip: None,
        protocol: Default::default(),
        name: None,
    }];
    assert!(
        invalid(&compose(vec![web])).contains("host port 8080 cannot be published by 2 replicas")
    );
    let mut db = c("db");
    db.healthcheck = Some(HealthCheck {
        test: vec!["pg_isready".into()],
        interval_ms: None,
        timeout_ms: None,
        retries: None,
        start_period_ms: None,
    });
    assert!(invalid(&compose(vec![db])).starts_with("services.db.healthcheck.test"));
}

#[test]
fn mounts_resolve_to_binds_and_tmpfs() {
    let mut spec = compose(vec![c("web")]);
    let vol = |name: &str, source: VolumeSource| Volume {
        name: name.into(),
        source,
    };
    spec.volumes = vec![
        vol("data", VolumeSource::Named { external: false }),
        vol("shared", VolumeSource::Named { external: true }),
        vol("scratch", VolumeSource::Ephemeral { memory: false }),
        vol("mem", VolumeSource::Ephemeral { memory: true }),
        vol(
            "host",
            VolumeSource::HostPath {
                path: "/srv".into(),
            },
        ),
        vol("cfg", VolumeSource::ConfigMap { name: "app".into() }),
    ];
    spec.config = vec![ConfigObject {
        kind: ConfigKind::ConfigMap,
        name: "app".into(),
        data: BTreeMap::from([("a.conf".into(), "x".into())]),
        binary_keys: vec![],
    }];
    let state = Path::new("/state");
    let plan = |m: Mount| mount_plan(&spec, "mesh-app-1234", state, &m);
    assert_eq!(
        plan(mount("data", "/d")),
        Ok(MountPlan::Bind("mesh-default-app-data:/d".into()))
    );
    assert_eq!(
        plan(mount("shared", "/s")),
        Ok(MountPlan::Bind("shared:/s".into()))
    );
    assert_eq!(
        plan(mount("scratch", "/t")),
        Ok(MountPlan::Bind("mesh-app-1234-scratch:/t".into()))
    );
    assert_eq!(plan(mount("mem", "/m")), Ok(MountPlan::Tmpfs("/m".into())));
    let sub = Mount {
        sub_path: Some("logs".into()),
        read_only: true,
        ..mount("host", "/h")
    };
    assert_eq!(plan(sub), Ok(MountPlan::Bind("/srv/logs:/h:ro".into())));
    assert_eq!(
        plan(mount("cfg", "/etc/app")),
        Ok(MountPlan::Bind(
            "/state/mesh-app-1234/cfg:/etc/app:ro".into()
        ))
    );
    let escape = Mount {
        sub_path: Some("../etc".into()),
        ..mount("host", "/h")
    };
    assert!(plan(escape).is_err());

    spec.containers[0].mounts = vec![
        mount("data", "/d"),
        mount("scratch", "/t"),
        mount("mem", "/m"),
    ];
    let volumes = volumes(&spec, "mesh-app-1234");
    let names: Vec<(&str, &str)> = volumes.iter().map(|v| (v.name.as_str(), v.scope)).collect();
    assert_eq!(
        names,
        vec![
            ("mesh-default-app-data", labels::SCOPE_WORKLOAD),
            ("mesh-app-1234-scratch", labels::SCOPE_INSTANCE)
        ]
    );
    assert_eq!(external_volumes(&spec), vec!["shared".to_string()]);
}

#[test]
fn config_files_decode_binary_secrets_and_refuse_odd_keys() {
    let mut spec = compose(vec![c("web")]);
    spec.volumes = vec![Volume {
        name: "creds".into(),
        source: VolumeSource::Secret { name: "s".into() },
    }];
    spec.config = vec![ConfigObject {
        kind: ConfigKind::Secret,
        name: "s".into(),
        data: BTreeMap::from([
            ("bin".into(), "AAEC".into()),
            ("text".into(), "plain".into()),
        ]),
        binary_keys: vec!["bin".into()],
    }];
    let out = files(&spec, "p", Path::new("/state")).expect("files");
    assert_eq!(out[0].path, Path::new("/state/p/creds/bin"));
    assert_eq!(out[0].contents, vec![0, 1, 2]);
    assert_eq!(out[1].contents, b"plain".to_vec());

    spec.config[0].data.insert("../escape".into(), "x".into());
    assert!(files(&spec, "p", Path::new("/state")).is_err());
}
