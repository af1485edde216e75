//! Helpers shared by the runtime's integration tests: a one-container Pod spec and the
//! install context every test node uses.

#![allow(dead_code)] // each test file uses its own subset

use mesh_protocol::spec::{Container, SourceFormat, DEFAULT_NAMESPACE};
use mesh_protocol::{WorkloadKind, WorkloadSpec};
use mesh_runtime::engine::InstallContext;

/// A sealed one-container Pod `name` (image `localhost/mesh-test:latest`) with `annotations`.
pub fn spec(name: &str, annotations: &[(&str, &str)]) -> WorkloadSpec {
    let mut s = WorkloadSpec::new(
        name,
        DEFAULT_NAMESPACE,
        WorkloadKind::Pod,
        SourceFormat::Kubernetes,
    );
    s.containers.push(Container {
        name: "main".into(),
        image: "localhost/mesh-test:latest".into(),
        ..Container::default()
    });
    for (k, v) in annotations {
        s.annotations.insert(k.to_string(), v.to_string());
    }
    s.seal()
}

/// The install context of replica 0 on `node-a`.
pub fn ctx() -> InstallContext {
    InstallContext {
        node: "node-a".into(),
        replica: 0,
    }
}
