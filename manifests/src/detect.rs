//! Structural format detection and the Kubernetes kind table.
//!
//! A document is Kubernetes when it has `apiVersion` and `kind` (beemesh.io/v1 when the
//! apiVersion is in the `beemesh.io` group), and Compose when it has a top-level `services`
//! key, whether or not `version:` is present. Nested keys (`kind: Managed` inside an
//! `azureDisk` volume) never count.

use mesh_protocol::spec::{ConfigKind, SourceFormat, WorkloadKind};

use crate::error::{Error, ErrorKind};
use crate::node::{MapNode, Result};

/// What a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detected<'a> {
    Kubernetes { api_version: &'a str, kind: &'a str },
    Beemesh { api_version: &'a str, kind: &'a str },
    Compose,
}

impl Detected<'_> {
    pub(crate) fn format(self) -> SourceFormat {
        match self {
            Detected::Kubernetes { .. } => SourceFormat::Kubernetes,
            Detected::Beemesh { .. } => SourceFormat::Beemesh,
            Detected::Compose => SourceFormat::Compose,
        }
    }
}

/// Detects the format of one top-level mapping.
pub(crate) fn detect<'a>(doc: &MapNode<'a>) -> Result<Detected<'a>> {
    if doc.has("apiVersion") || doc.has("kind") {
        let api_version = doc.req("apiVersion")?.non_empty_str()?;
        let kind = doc.req("kind")?.non_empty_str()?;
        return Ok(if api_version.starts_with("beemesh.io/") {
            Detected::Beemesh { api_version, kind }
        } else {
            Detected::Kubernetes { api_version, kind }
        });
    }
    if doc.has("services") {
        return Ok(Detected::Compose);
    }
    Err(Error::new(ErrorKind::UnknownFormat {
        keys: doc.keys().take(8).map(str::to_string).collect(),
    }))
}

/// How the mesh treats a Kubernetes (apiVersion, kind).
#[derive(Debug)]
pub(crate) enum Class {
    Workload(WorkloadKind),
    Config(ConfigKind),
    /// `v1 List`: its `items` are objects.
    List,
    /// A workload kind the mesh cannot run: always an error.
    Refused(Error),
    /// Not a workload (Service, Ingress, CRDs…): skipped beside workloads. `removed` is set
    /// when its API version is no longer served by Kubernetes either.
    NotWorkload {
        removed: Option<Error>,
    },
}

const SERVED: [(&str, &str, Option<WorkloadKind>); 6] = [
    ("v1", "Pod", Some(WorkloadKind::Pod)),
    ("apps/v1", "Deployment", Some(WorkloadKind::Deployment)),
    ("apps/v1", "DaemonSet", Some(WorkloadKind::DaemonSet)),
    ("batch/v1", "Job", Some(WorkloadKind::Job)),
    ("v1", "ConfigMap", None),
    ("v1", "Secret", None),
];

/// Workload kinds that exist in Kubernetes but not in the mesh, with the reason.
const UNSUPPORTED_WORKLOADS: [(&str, &str); 4] = [
    (
        "StatefulSet",
        "no stable storage identity in the mesh; use a Deployment with named volumes",
    ),
    ("ReplicaSet", "use a Deployment"),
    ("ReplicationController", "use a Deployment"),
    (
        "CronJob",
        "scheduled jobs are not supported; run a Job from your scheduler",
    ),
];

/// (apiVersion, kind or "*", removed in, replacement).
const REMOVED: [(&str, &str, &str, &str); 27] = [
    ("extensions/v1beta1", "Deployment", "1.16", "apps/v1"),
    ("extensions/v1beta1", "DaemonSet", "1.16", "apps/v1"),
    ("extensions/v1beta1", "ReplicaSet", "1.16", "apps/v1"),
    (
        "extensions/v1beta1",
        "NetworkPolicy",
        "1.16",
        "networking.k8s.io/v1",
    ),
    (
        "extensions/v1beta1",
        "PodSecurityPolicy",
        "1.16",
        "Pod Security Admission",
    ),
    (
        "extensions/v1beta1",
        "Ingress",
        "1.22",
        "networking.k8s.io/v1",
    ),
    ("apps/v1beta1", "*", "1.16", "apps/v1"),
    ("apps/v1beta2", "*", "1.16", "apps/v1"),
    (
        "policy/v1beta1",
        "PodSecurityPolicy",
        "1.25",
        "Pod Security Admission",
    ),
    ("policy/v1beta1", "PodDisruptionBudget", "1.25", "policy/v1"),
    ("batch/v1beta1", "CronJob", "1.25", "batch/v1"),
    ("batch/v2alpha1", "CronJob", "1.21", "batch/v1"),
    (
        "networking.k8s.io/v1beta1",
        "*",
        "1.22",
        "networking.k8s.io/v1",
    ),
    (
        "autoscaling/v2beta1",
        "HorizontalPodAutoscaler",
        "1.25",
        "autoscaling/v2",
    ),
    (
        "autoscaling/v2beta2",
        "HorizontalPodAutoscaler",
        "1.26",
        "autoscaling/v2",
    ),
    (
        "rbac.authorization.k8s.io/v1beta1",
        "*",
        "1.22",
        "rbac.authorization.k8s.io/v1",
    ),
    (
        "apiextensions.k8s.io/v1beta1",
        "*",
        "1.22",
        "apiextensions.k8s.io/v1",
    ),
    (
        "admissionregistration.k8s.io/v1beta1",
        "*",
        "1.22",
        "admissionregistration.k8s.io/v1",
    ),
    (
        "apiregistration.k8s.io/v1beta1",
        "*",
        "1.22",
        "apiregistration.k8s.io/v1",
    ),
    (
        "certificates.k8s.io/v1beta1",
        "*",
        "1.22",
        "certificates.k8s.io/v1",
    ),
    (
        "coordination.k8s.io/v1beta1",
        "*",
        "1.22",
        "coordination.k8s.io/v1",
    ),
    (
        "scheduling.k8s.io/v1beta1",
        "*",
        "1.22",
        "scheduling.k8s.io/v1",
    ),
    (
        "storage.k8s.io/v1beta1",
        "StorageClass",
        "1.22",
        "storage.k8s.io/v1",
    ),
    (
        "storage.k8s.io/v1beta1",
        "CSIDriver",
        "1.22",
        "storage.k8s.io/v1",
    ),
    (
        "discovery.k8s.io/v1beta1",
        "EndpointSlice",
        "1.25",
        "discovery.k8s.io/v1",
    ),
    ("events.k8s.io/v1beta1", "Event", "1.25", "events.k8s.io/v1"),
    (
        "node.k8s.io/v1beta1",
        "RuntimeClass",
        "1.25",
        "node.k8s.io/v1",
    ),
];

/// Classifies a Kubernetes object by its apiVersion and kind.
pub(crate) fn classify(api_version: &str, kind: &str) -> Class {
    let unsupported = |reason: String| {
        Class::Refused(Error::new(ErrorKind::UnsupportedKind {
            kind: kind.to_string(),
            api_version: api_version.to_string(),
            reason,
        }))
    };
    for (api, k, workload) in SERVED {
        if (api, k) == (api_version, kind) {
            return match workload {
                Some(w) => Class::Workload(w),
                None if kind == "ConfigMap" => Class::Config(ConfigKind::ConfigMap),
                None => Class::Config(ConfigKind::Secret),
            };
        }
    }
    if (api_version, kind) == ("v1", "List") {
        return Class::List;
    }
    if let Some((_, reason)) = UNSUPPORTED_WORKLOADS.iter().find(|(k, _)| *k == kind) {
        return unsupported((*reason).to_string());
    }
    let removed = REMOVED
        .iter()
        .find(|(api, k, _, _)| *api == api_version && (*k == kind || *k == "*"))
        .map(|(_, _, removed_in, replacement)| {
            Error::new(ErrorKind::RemovedApi {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                removed_in: removed_in.to_string(),
                replacement: replacement.to_string(),
            })
        });
    let served_as = SERVED.iter().find(|(_, k, _)| *k == kind);
    match (removed, served_as) {
        (Some(removed), Some(_)) => Class::Refused(removed),
        (None, Some((api, _, _))) => unsupported(format!(
            "{kind} is served as apiVersion {api}, not {api_version}"
        )),
        (removed, None) => match SERVED.iter().find(|(_, k, _)| k.eq_ignore_ascii_case(kind)) {
            Some((_, k, _)) => unsupported(format!("kinds are case-sensitive: did you mean {k}?")),
            None => Class::NotWorkload { removed },
        },
    }
}

/// The format of the first document of `input` (with default limits).
pub fn detect_format(input: &[u8]) -> std::result::Result<SourceFormat, Error> {
    let documents = crate::yaml::load(input, &crate::Limits::default())?;
    let first = &documents[0];
    let node = crate::node::Node::new(&first.value, crate::node::Path::root());
    Ok(detect(&node.map()?)?.format())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_kinds() {
        assert!(matches!(
            classify("apps/v1", "Deployment"),
            Class::Workload(WorkloadKind::Deployment)
        ));
        assert!(matches!(
            classify("v1", "Secret"),
            Class::Config(ConfigKind::Secret)
        ));
        assert!(matches!(
            classify("v1", "Service"),
            Class::NotWorkload { removed: None }
        ));
        assert!(matches!(
            classify("monitoring.coreos.com/v1", "PrometheusRule"),
            Class::NotWorkload { removed: None }
        ));
    }

    #[test]
    fn removed_apis_name_the_replacement() {
        let Class::Refused(e) = classify("extensions/v1beta1", "DaemonSet") else {
            panic!("a removed workload API is refused");
        };
        assert_eq!(
            e.to_string(),
            "apiVersion: DaemonSet in extensions/v1beta1 was removed in Kubernetes 1.16: use apps/v1"
        );
        let Class::NotWorkload { removed: Some(e) } =
            classify("policy/v1beta1", "PodDisruptionBudget")
        else {
            panic!("a removed non-workload API is skipped with a note");
        };
        assert!(e.to_string().contains("use policy/v1"));
    }

    #[test]
    fn unsupported_workloads_and_wrong_versions_are_refused() {
        let Class::Refused(e) = classify("apps/v1", "StatefulSet") else {
            panic!("StatefulSet is refused");
        };
        assert!(e.to_string().starts_with("kind: StatefulSet (apps/v1) is not supported: no stable storage identity in the mesh"), "{e}");
        let Class::Refused(e) = classify("apps/v2", "Deployment") else {
            panic!("unknown version");
        };
        assert!(
            e.to_string().contains("served as apiVersion apps/v1"),
            "{e}"
        );
        let Class::Refused(e) = classify("v1", "pod") else {
            panic!("wrong case");
        };
        assert!(e.to_string().contains("did you mean Pod?"), "{e}");
    }

    #[test]
    fn detects_by_structure() {
        assert_eq!(
            detect_format(b"services:\n  web:\n    image: nginx\n"),
            Ok(SourceFormat::Compose)
        );
        assert_eq!(
            detect_format(b"version: '3'\nservices: {}\n"),
            Ok(SourceFormat::Compose)
        );
        assert_eq!(
            detect_format(b"kind: Pod\napiVersion: v1\n"),
            Ok(SourceFormat::Kubernetes)
        );
        assert_eq!(
            detect_format(b"{\"apiVersion\": \"beemesh.io/v1\", \"kind\": \"Function\"}"),
            Ok(SourceFormat::Beemesh)
        );
        let err = detect_format(b"version: '3'\nfoo: 1\n").expect_err("neither");
        assert!(err.to_string().contains("found version, foo"), "{err}");
        let err = detect_format(b"kind: Pod\n").expect_err("no apiVersion");
        assert_eq!(err.to_string(), "apiVersion: missing");
    }
}
