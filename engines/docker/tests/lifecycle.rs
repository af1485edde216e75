//! Lifecycle behaviour a node relies on, against the real daemons: re-adoption after a
//! node restart, exit codes of services and jobs, and installs that fail cleanly.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::*;
use mesh_engine_docker::DockerEngine;
use mesh_protocol::spec::{JobSpec, RestartPolicy, SourceFormat};
use mesh_protocol::{WorkloadKind, WorkloadSpec};
use mesh_runtime::engine::{Engine, Handle, InstanceState, Recovered};

/// Test 3: a fresh engine value (as after a meshd restart) adopts the running containers,
/// from the persisted handle and from labels alone; after remove the instance is gone.
async fn recover_adopts(engine_name: &str, socket: &'static str) {
    let Some(t) = engine(engine_name, socket).await else {
        return;
    };
    let spec = compose(
        &unique("recover"),
        vec![sh("app", "exec sleep 300"), sh("side", "exec sleep 300")],
    );
    let handle = deploy(&t.engine, &spec).await;
    cleaning_up(&t.engine, &handle, async {
        wait_status(&t.engine, &handle, is_running).await;
        let before = container_ids(socket, &handle.instance).await;
        assert_eq!(before.len(), 2);

        let restarted = DockerEngine::connect(
            engine_name,
            std::path::Path::new(socket),
            t.state.path().to_path_buf(),
        );
        match restarted.recover(&handle).await.expect("recover") {
            Recovered::Adopted(status) => {
                assert_eq!(status.state, InstanceState::Running, "{status:?}")
            }
            Recovered::Gone => panic!("running instance reported gone"),
        }
        let labels_only = Handle {
            data: serde_json::Value::Null,
            ..handle.clone()
        };
        assert!(matches!(
            restarted.recover(&labels_only).await.expect("recover"),
            Recovered::Adopted(_)
        ));
        assert_eq!(
            container_ids(socket, &handle.instance).await,
            before,
            "same containers, none new"
        );

        restarted
            .remove(&labels_only)
            .await
            .expect("remove from labels alone");
        assert_eq!(
            restarted.recover(&handle).await.expect("recover"),
            Recovered::Gone
        );
        let status = restarted.status(&handle).await.expect("status");
        assert_eq!(status.state, InstanceState::Missing);
    })
    .await;
    remove_and_check(&t.engine, socket, &spec, &handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_recover_adopts_running_containers() {
    recover_adopts("docker", DOCKER_SOCKET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_compat_recover_adopts_running_containers() {
    recover_adopts("podman", PODMAN_SOCKET).await;
}

fn job(name: &str, script: &str) -> WorkloadSpec {
    let mut spec = WorkloadSpec::new(name, "default", WorkloadKind::Job, SourceFormat::Kubernetes);
    spec.containers = vec![sh("work", script)];
    spec.restart_policy = RestartPolicy::Never;
    spec.job = Some(JobSpec::default());
    spec.seal()
}

/// Test 5: a service exiting 3 reads as `Exited{3}`; a job exiting 0 as `Exited{0}`.
async fn exit_codes(engine_name: &str, socket: &'static str) {
    let Some(t) = engine(engine_name, socket).await else {
        return;
    };
    let mut failing = sh("fail", "exit 3");
    failing.restart = Some(RestartPolicy::Never);
    let spec = compose(&unique("exit"), vec![failing]);
    let handle = deploy(&t.engine, &spec).await;
    cleaning_up(&t.engine, &handle, async {
        let status = wait_status(&t.engine, &handle, |s| {
            matches!(s.state, InstanceState::Exited { .. })
        })
        .await;
        assert_eq!(
            status.state,
            InstanceState::Exited { code: 3 },
            "{status:?}"
        );
        assert!(
            status.detail.contains("fail exited with code 3"),
            "{}",
            status.detail
        );
    })
    .await;
    remove_and_check(&t.engine, socket, &spec, &handle).await;

    let spec = job(&unique("job"), "echo finished");
    let handle = deploy(&t.engine, &spec).await;
    cleaning_up(&t.engine, &handle, async {
        let status = wait_status(&t.engine, &handle, |s| {
            matches!(s.state, InstanceState::Exited { .. })
        })
        .await;
        assert_eq!(
            status.state,
            InstanceState::Exited { code: 0 },
            "{status:?}"
        );
        assert_eq!(status.detail, "1/1 completed");
    })
    .await;
    remove_and_check(&t.engine, socket, &spec, &handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_exit_codes_are_reported() {
    exit_codes("docker", DOCKER_SOCKET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_compat_exit_codes_are_reported() {
    exit_codes("podman", PODMAN_SOCKET).await;
}

/// An install that fails half-way (the second service's image is missing; prepare was
/// skipped) removes the network, volumes and containers it had already created.
async fn failed_install_leaves_nothing(engine_name: &str, socket: &'static str) {
    let Some(t) = engine(engine_name, socket).await else {
        return;
    };
    let mut broken = sh("broken", "true");
    broken.image = format!("localhost/mesh-missing-{}:latest", unique("img"));
    let mut spec = compose(
        &unique("halfway"),
        vec![sh("fine", "exec sleep 300"), broken],
    );
    spec.volumes = vec![mesh_protocol::spec::Volume {
        name: "scratch".into(),
        source: mesh_protocol::spec::VolumeSource::Ephemeral { memory: false },
    }];
    spec.containers[0].mounts = vec![mesh_protocol::spec::Mount {
        source: "scratch".into(),
        target: "/scratch".into(),
        read_only: false,
        sub_path: None,
    }];
    let spec = spec.seal();
    let err = t
        .engine
        .install(&spec, &ctx())
        .await
        .expect_err("the missing image fails install");
    assert!(
        err.to_string().contains("broken"),
        "the error names the service: {err}"
    );
    let left = leftovers(socket, &spec.id().to_string()).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_failed_install_leaves_nothing() {
    failed_install_leaves_nothing("docker", DOCKER_SOCKET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_compat_failed_install_leaves_nothing() {
    failed_install_leaves_nothing("podman", PODMAN_SOCKET).await;
}

/// Removing one instance leaves another instance's volume alone, and a one-container project
/// runs on the daemon's default network (no network of its own is created). Podman 4's
/// compat API answers a volume list filtered by several labels with volumes matching any of
/// them: without checking the labels again, removing `drop` tried to remove `keep`'s volume.
async fn removal_touches_only_its_own_instance(engine_name: &str, socket: &'static str) {
    let Some(t) = engine(engine_name, socket).await else {
        return;
    };
    let mut keep = compose(&unique("keep"), vec![sh("a", "exec sleep 300")]);
    keep.volumes = vec![mesh_protocol::spec::Volume {
        name: "scratch".into(),
        source: mesh_protocol::spec::VolumeSource::Ephemeral { memory: false },
    }];
    keep.containers[0].mounts = vec![mesh_protocol::spec::Mount {
        source: "scratch".into(),
        target: "/scratch".into(),
        read_only: false,
        sub_path: None,
    }];
    let keep = keep.seal();
    let kept = deploy(&t.engine, &keep).await;
    cleaning_up(&t.engine, &kept, async {
        let drop = compose(&unique("drop"), vec![sh("b", "exec sleep 300")]);
        let dropped = deploy(&t.engine, &drop).await;
        let data: serde_json::Value = dropped.data.clone();
        assert_eq!(data["network_id"].as_str().unwrap_or(""), "", "{data}");
        remove_and_check(&t.engine, socket, &drop, &dropped).await;
        let status = t.engine.status(&kept).await.expect("status");
        assert!(
            matches!(status.state, InstanceState::Running),
            "the other instance still runs: {status:?}"
        );
    })
    .await;
    remove_and_check(&t.engine, socket, &keep, &kept).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_removal_touches_only_its_own_instance() {
    removal_touches_only_its_own_instance("docker", DOCKER_SOCKET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_compat_removal_touches_only_its_own_instance() {
    removal_touches_only_its_own_instance("podman", PODMAN_SOCKET).await;
}
