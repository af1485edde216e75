//! What a [`Handle`] of this engine carries in its `data`: everything `remove` needs to undo an
//! instance without the spec, and the seam for Compose instances run by the delegate engine.

use mesh_runtime::Handle;
use serde::{Deserialize, Serialize};

use crate::NAME;

/// Key under which a Compose instance keeps the delegate's own handle.
const COMPOSE_KEY: &str = "compose";

/// The persisted description of one pod instance (`Handle::data`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceData {
    /// Pod name; also `Handle::instance` and the `beemesh.io/instance` label.
    pub pod: String,
    /// Pod id reported by `kube play`.
    #[serde(default)]
    pub pod_id: Option<String>,
    /// `beemesh.io/workload` label value (`<namespace>.<name>`).
    #[serde(default)]
    pub workload: String,
    /// Run-to-completion workload: exiting 0 is success.
    #[serde(default)]
    pub job: bool,
    /// Podman names of the containers (init containers first; Podman removes those once they
    /// have run).
    #[serde(default)]
    pub containers: Vec<String>,
    /// Ids of the pod's main (not init, not infra) containers, as `kube play` reported them:
    /// how Podman's `died` events are matched to the instance (see `exits`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub main_ids: Vec<String>,
    /// ConfigMaps of the YAML (Secrets included); Podman backs each mounted one with a volume
    /// of the same name.
    #[serde(default)]
    pub configmaps: Vec<String>,
    /// Named volumes `kube play` created because they did not exist (their claims).
    #[serde(default)]
    pub volumes: Vec<String>,
    /// The YAML given to `kube play`.
    #[serde(default)]
    pub yaml: String,
}

impl InstanceData {
    /// Reads the data of a handle; a handle with unreadable data still names its pod.
    pub fn from_handle(handle: &Handle) -> Self {
        match serde_json::from_value::<InstanceData>(handle.data.clone()) {
            Ok(data) if !data.pod.is_empty() => data,
            _ => InstanceData {
                pod: handle.instance.clone(),
                ..InstanceData::default()
            },
        }
    }

    pub fn into_handle(self) -> Handle {
        Handle {
            engine: NAME.to_string(),
            instance: self.pod.clone(),
            data: serde_json::to_value(&self).expect("InstanceData always serialises"),
        }
    }
}

/// A handle of this engine wrapping the Compose delegate's handle, so that the controller keeps
/// routing the instance's operations to this engine, which forwards them.
pub fn wrap_compose(inner: Handle) -> Handle {
    Handle {
        engine: NAME.to_string(),
        instance: inner.instance.clone(),
        data: serde_json::json!({ COMPOSE_KEY: inner }),
    }
}

/// The delegate's handle inside a Compose instance's handle.
pub fn compose_inner(handle: &Handle) -> Option<Handle> {
    let inner = handle.data.get(COMPOSE_KEY)?;
    serde_json::from_value(inner.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_round_trips_and_tolerates_foreign_data() {
        let data = InstanceData {
            pod: "mesh-web-0123abcd".into(),
            job: true,
            volumes: vec!["cache".into()],
            ..InstanceData::default()
        };
        let handle = data.clone().into_handle();
        assert_eq!(handle.engine, "podman");
        assert_eq!(handle.instance, "mesh-web-0123abcd");
        assert_eq!(InstanceData::from_handle(&handle), data);
        assert!(compose_inner(&handle).is_none());

        let foreign = Handle {
            engine: "podman".into(),
            instance: "mesh-x-1".into(),
            data: serde_json::Value::Null,
        };
        assert_eq!(InstanceData::from_handle(&foreign).pod, "mesh-x-1");
    }

    #[test]
    fn compose_handles_wrap_the_delegates_handle() {
        let inner = Handle {
            engine: "docker".into(),
            instance: "project".into(),
            data: serde_json::json!({"containers": ["a"]}),
        };
        let outer = wrap_compose(inner.clone());
        assert_eq!(outer.engine, "podman");
        assert_eq!(compose_inner(&outer), Some(inner));
    }
}
