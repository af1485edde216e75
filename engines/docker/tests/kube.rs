//! A Kubernetes Pod translated onto Docker (the fallback for nodes without Podman): init
//! container first, containers reaching each other by name on the workload network,
//! ConfigMap and Secret as files and environment, the downward API, a published port.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::BTreeMap;

use common::*;
use mesh_protocol::spec::{
    ConfigKind, ConfigObject, EnvSource, EnvVar, Mount, Port, SourceFormat, Volume, VolumeSource,
};
use mesh_protocol::{WorkloadKind, WorkloadSpec};
use mesh_runtime::engine::{Engine, LogOptions};

fn env_from(name: &str, source: EnvSource) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(source),
    }
}

fn mount(source: &str, target: &str) -> Mount {
    Mount {
        source: source.into(),
        target: target.into(),
        read_only: true,
        sub_path: None,
    }
}

fn pod(name: &str, port: u16) -> WorkloadSpec {
    let mut spec = WorkloadSpec::new(name, "default", WorkloadKind::Pod, SourceFormat::Kubernetes);
    spec.init_containers = vec![sh("prepare", "echo init ran")];
    let mut web = sh("web", "exec httpd -f -p 80 -h /var/www");
    web.ports = vec![Port {
        container_port: 80,
        host_port: Some(port),
        host_ip: Some("127.0.0.1".into()),
        protocol: Default::default(),
        name: Some("http".into()),
    }];
    let mut sidecar = sh(
        "sidecar",
        "echo \"$GREETING from $POD_NAME\"; cat /etc/app/greeting; echo; cat /etc/secret/token; echo; \
         for i in $(seq 1 100); do wget -qO- http://web:80/ && break; sleep 0.1; done; exec sleep 300",
    );
    sidecar.env = vec![
        env_from(
            "GREETING",
            EnvSource::ConfigMap {
                name: "app".into(),
                key: "greeting".into(),
            },
        ),
        env_from(
            "POD_NAME",
            EnvSource::Field {
                path: "metadata.name".into(),
            },
        ),
    ];
    sidecar.mounts = vec![mount("config", "/etc/app"), mount("secret", "/etc/secret")];
    spec.containers = vec![web, sidecar];
    spec.volumes = vec![
        Volume {
            name: "config".into(),
            source: VolumeSource::ConfigMap { name: "app".into() },
        },
        Volume {
            name: "secret".into(),
            source: VolumeSource::Secret {
                name: "creds".into(),
            },
        },
    ];
    spec.config = vec![
        ConfigObject {
            kind: ConfigKind::ConfigMap,
            name: "app".into(),
            data: BTreeMap::from([("greeting".into(), "hello".into())]),
            binary_keys: vec![],
        },
        ConfigObject {
            kind: ConfigKind::Secret,
            name: "creds".into(),
            data: BTreeMap::from([("token".into(), "czNjcjN0".into())]),
            binary_keys: vec!["token".into()],
        },
    ];
    spec.seal()
}

/// Test 2: the pod runs, serves HTTP on its host port, and its parts see each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_pod_runs_on_docker() {
    pod_runs("docker", DOCKER_SOCKET).await;
}

/// The same pod through Podman's Docker-compatible API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_pod_runs_on_podman_compat() {
    pod_runs("podman", PODMAN_SOCKET).await;
}

async fn pod_runs(engine_name: &str, socket: &'static str) {
    let Some(t) = engine(engine_name, socket).await else {
        return;
    };
    let port = free_port();
    let spec = pod(&unique("pod"), port);
    let handle = deploy(&t.engine, &spec).await;
    cleaning_up(&t.engine, &handle, async {
        let status = wait_status(&t.engine, &handle, is_running).await;
        assert_eq!(
            status.detail, "2/2 running",
            "the init container is not counted"
        );

        let page = wait_for("web to answer HTTP", WAIT, || http_get(port)).await;
        assert!(page.contains("mesh test page"), "{page}");

        let name = spec.name.clone();
        wait_for("sidecar output", WAIT, || async {
            let lines = t
                .engine
                .logs(&handle, LogOptions::default())
                .await
                .expect("logs");
            let has = |src: &str, text: &str| {
                lines
                    .iter()
                    .any(|l| l.source.as_deref() == Some(src) && l.line.contains(text))
            };
            let ok = has("prepare", "init ran")
                && has("sidecar", &format!("hello from {name}"))
                && has("sidecar", "s3cr3t")
                && has("sidecar", "mesh test page");
            ok.then_some(())
        })
        .await;
        assert!(
            t.state.path().join(&handle.instance).exists(),
            "config files live in the state dir"
        );
    })
    .await;
    remove_and_check(&t.engine, socket, &spec, &handle).await;
    assert!(
        !t.state.path().join(&handle.instance).exists(),
        "remove deletes the config files"
    );
}
