//! ConfigMaps and Secrets that travel with a Deployment reach its container on Podman, as
//! environment values and as mounted files, and leave nothing behind after `remove`.

mod common;

use std::time::Duration;

use common::{labelled, parse_one, wait_for, wait_status, Cleanup, IMAGE};
use mesh_engine_podman::names::workload_label;
use mesh_engine_podman::InstanceData;
use mesh_runtime::{Engine, LogOptions};

/// The container echoes what it received; the test reads it back from the logs.
#[tokio::test]
async fn configmap_and_secret_values_reach_the_container() {
    let Some(engine) = common::engine().await else {
        return;
    };
    let name = common::unique("cfg");
    let spec = parse_one(&format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: hello from configmap
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
type: Opaque
data:
  password: czNjcmV0LXZhbHVl
stringData:
  user: admin
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: {IMAGE}
        command:
        - sh
        - -c
        - |
          echo "env-greeting=$GREETING"
          echo "env-password=$PASSWORD"
          echo "file-greeting=$(cat /etc/settings/greeting)"
          echo "file-password=$(cat /etc/creds/password)"
          echo "file-user=$(cat /etc/creds/user)"
          echo "pod-name=$POD_NAME"
          exec sleep 300
        env:
        - name: GREETING
          valueFrom:
            configMapKeyRef: {{name: settings, key: greeting}}
        - name: PASSWORD
          valueFrom:
            secretKeyRef: {{name: creds, key: password}}
        - name: POD_NAME
          valueFrom:
            fieldRef: {{fieldPath: metadata.name}}
        volumeMounts:
        - {{name: settings, mountPath: /etc/settings}}
        - {{name: creds, mountPath: /etc/creds, readOnly: true}}
      volumes:
      - name: settings
        configMap: {{name: settings}}
      - name: creds
        secret: {{secretName: creds}}
"#
    ));
    assert_eq!(
        spec.config.len(),
        2,
        "ConfigMap and Secret travel with the workload"
    );
    let cleanup = Cleanup::new(&engine);
    let handle = common::install_and_start(&engine, &spec, &cleanup).await;
    wait_status(&engine, &handle, "deployment running", common::is_running).await;

    let expected = [
        "env-greeting=hello from configmap".to_string(),
        "env-password=s3cret-value".to_string(),
        "file-greeting=hello from configmap".to_string(),
        "file-password=s3cret-value".to_string(),
        "file-user=admin".to_string(),
        format!("pod-name={}", handle.instance),
    ];
    let lines = wait_for("the values are echoed", common::WAIT, || async {
        let lines = engine
            .logs(&handle, LogOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let text: Vec<String> = lines.into_iter().map(|l| l.line).collect();
        Ok(text
            .iter()
            .any(|l| l.starts_with("pod-name="))
            .then_some(text))
    })
    .await;
    for want in &expected {
        assert!(lines.contains(want), "missing {want:?} in {lines:?}");
    }

    let data = InstanceData::from_handle(&handle);
    assert_eq!(data.configmaps.len(), 2);
    engine
        .stop(&handle, Duration::from_secs(1))
        .await
        .expect("stop");
    engine.remove(&handle).await.expect("remove");
    for volume in &data.configmaps {
        let exists = engine
            .client()
            .volumes()
            .get(volume)
            .exists()
            .await
            .expect("volume exists");
        assert!(!exists, "the volume of {volume} is removed");
    }
    let left = labelled(&engine, &workload_label(&spec)).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}
