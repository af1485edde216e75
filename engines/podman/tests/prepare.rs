//! An image that is neither local nor pullable (the test machines are offline) fails the
//! workload at `prepare`, quickly, naming the image, and leaves nothing on the host.

mod common;

use std::time::{Duration, Instant};

use common::{labelled, parse_one};
use mesh_engine_podman::names::workload_label;
use mesh_runtime::{Engine, Error};

fn spec_with(name: &str, image: &str, policy: &str) -> mesh_protocol::WorkloadSpec {
    parse_one(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: app
    image: {image}
    imagePullPolicy: {policy}
"#
    ))
}

#[tokio::test]
async fn a_missing_image_fails_prepare_quickly_and_leaves_nothing() {
    let Some(engine) = common::engine().await else {
        return;
    };
    let engine = engine.with_pull_timeout(Duration::from_secs(20));
    for policy in ["IfNotPresent", "Never"] {
        let name = common::unique("noimg");
        let image = format!("localhost/{name}:latest");
        let spec = spec_with(&name, &image, policy);
        let started = Instant::now();
        let err = engine
            .prepare(&spec)
            .await
            .expect_err("a missing image fails prepare");
        eprintln!("{policy}: {err} after {:?}", started.elapsed());
        let took = started.elapsed();
        assert!(took < Duration::from_secs(25), "{policy}: took {took:?}");
        let Error::Invalid(message) = &err else {
            panic!("{policy}: unexpected error kind {err:?}")
        };
        assert!(
            message.starts_with(&format!(
                "image {image} is not available locally and could not be pulled: "
            )),
            "{policy}: {message}"
        );
        if policy == "Never" {
            assert!(message.contains("Never"), "{message}");
        }
        let left = labelled(&engine, &workload_label(&spec)).await;
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
