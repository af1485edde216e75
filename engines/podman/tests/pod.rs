//! A Kubernetes Pod on the real Podman service: it serves HTTP on its published host port,
//! its logs reach the caller, and `remove` leaves no pod, container or volume of the workload.

mod common;

use std::time::Duration;

use common::{free_port, is_running, labelled, parse_one, wait_for, wait_status, Cleanup, IMAGE};
use mesh_engine_podman::names::workload_label;
use mesh_engine_podman::InstanceData;
use mesh_runtime::{Engine, InstallContext, InstanceState, LogOptions};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One HTTP/1.0 GET of `/` on 127.0.0.1:`port`; the whole answer.
async fn get(port: u16) -> Result<String, String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    Ok(answer)
}

/// What a user sees after `meshctl apply` of a web pod on a Podman node: the page answers on
/// the host port, `logs` shows the container's output, and deleting it leaves the host clean
/// (including the named volume the workload created).
#[tokio::test]
async fn a_pod_serves_http_and_logs_and_remove_leaves_nothing() {
    let Some(engine) = common::engine().await else {
        return;
    };
    let name = common::unique("web");
    let port = free_port();
    let spec = parse_one(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: web
    image: {IMAGE}
    command: ["sh", "-c", "echo hello-from-pod; exec httpd -f -p 8080 -h /var/www"]
    ports:
    - containerPort: 8080
      hostPort: {port}
      hostIP: 127.0.0.1
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
    - {{name: data, mountPath: /data}}
  volumes:
  - name: scratch
    emptyDir: {{}}
  - name: data
    persistentVolumeClaim:
      claimName: {name}-data
"#
    ));
    let workload = workload_label(&spec);
    let ctx = InstallContext {
        node: "node-a".into(),
        replica: 0,
    };
    let cleanup = Cleanup::new(&engine);

    engine.validate(&spec).await.expect("validate");
    engine.fetch(&spec).await.expect("fetch");
    engine.prepare(&spec).await.expect("prepare");
    let handle = engine.install(&spec, &ctx).await.expect("install");
    cleanup.add(&handle);
    let data = InstanceData::from_handle(&handle);
    assert_eq!(handle.instance, data.pod);
    assert!(
        data.pod.starts_with(&format!("mesh-{name}-")),
        "{}",
        data.pod
    );
    assert_eq!(
        data.volumes,
        [format!("{name}-data")],
        "the claim is recorded as created"
    );
    assert!(data.yaml.contains("kind: Pod"));
    assert_eq!(
        engine.status(&handle).await.expect("status").state,
        InstanceState::Created
    );

    engine.start(&handle).await.expect("start");
    engine.start(&handle).await.expect("start is idempotent");
    let status = wait_status(&engine, &handle, "pod running", is_running).await;
    assert_eq!(status.detail, "pod Running, 1/1 containers running");

    let page = wait_for("the page answers", common::WAIT, || async {
        let answer = get(port).await?;
        Ok(answer.contains("mesh test page").then_some(answer))
    })
    .await;
    assert!(page.starts_with("HTTP/1."), "{page}");

    let lines = wait_for("the greeting is logged", common::WAIT, || async {
        let lines = engine
            .logs(&handle, LogOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok(lines
            .iter()
            .any(|l| l.line == "hello-from-pod")
            .then_some(lines))
    })
    .await;
    let hello = lines
        .iter()
        .find(|l| l.line == "hello-from-pod")
        .expect("greeting");
    assert_eq!(hello.source.as_deref(), Some("web"));
    assert!(hello.at.is_some(), "lines carry Podman's timestamps");
    let tail = engine
        .logs(&handle, LogOptions { tail: Some(1) })
        .await
        .expect("logs with tail");
    assert!(tail.len() <= 1);

    engine
        .stop(&handle, Duration::from_secs(2))
        .await
        .expect("stop");
    let stopped = engine.status(&handle).await.expect("status after stop");
    assert!(
        matches!(stopped.state, InstanceState::Exited { .. }),
        "{stopped:?}"
    );
    engine.remove(&handle).await.expect("remove");
    engine.remove(&handle).await.expect("remove is idempotent");
    engine
        .stop(&handle, Duration::from_secs(1))
        .await
        .expect("stop of a removed pod is Ok");
    assert_eq!(
        engine.status(&handle).await.expect("status").state,
        InstanceState::Missing
    );
    let left = labelled(&engine, &workload).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    let scratch = format!("{}-scratch", data.pod);
    let exists = engine
        .client()
        .volumes()
        .get(&scratch)
        .exists()
        .await
        .expect("volume exists");
    assert!(!exists, "the emptyDir volume {scratch} is gone");
}
