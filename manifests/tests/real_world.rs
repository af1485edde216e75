//! Every file of `testdata/real-world/` (manifests written by other projects) has
//! an expected outcome here: the workloads it yields, or the error a user gets. A file
//! without an entry fails the test, so new files cannot be skipped silently.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mesh_manifests::{normalize_name, parse, ErrorKind, ParseOptions};

#[path = "support/real_world_checks.rs"]
mod checks;

use checks::*;
use mesh_protocol::spec::{SourceFormat, WorkloadKind, WorkloadSpec};

/// What a user gets from one file.
#[derive(Debug)]
enum Expect {
    /// Workloads (name, kind) in order, all in `format`; `check` asserts details.
    Workloads {
        format: SourceFormat,
        workloads: &'static [(&'static str, WorkloadKind)],
        check: fn(&[WorkloadSpec]),
    },
    /// An error of this variant whose message contains the text.
    Fails(Variant, &'static str),
    /// Not a manifest (README, SOURCES): must be refused without a panic.
    Documentation,
}

#[derive(Debug, Clone, Copy)]
enum Variant {
    Empty,
    Syntax { line: usize },
    Invalid { path: &'static str },
    UnsupportedKind { kind: &'static str },
    RemovedApi { kind: &'static str },
    NothingToDeploy,
}

impl Variant {
    fn matches(self, kind: &ErrorKind) -> bool {
        match (self, kind) {
            (Variant::Empty, ErrorKind::Empty)
            | (Variant::NothingToDeploy, ErrorKind::NothingToDeploy { .. }) => true,
            (Variant::Syntax { line }, ErrorKind::Syntax { line: l, .. }) => line == *l,
            (Variant::Invalid { path }, ErrorKind::Invalid { path: p, .. }) => path == p,
            (Variant::UnsupportedKind { kind }, ErrorKind::UnsupportedKind { kind: k, .. }) => {
                kind == k
            }
            (Variant::RemovedApi { kind }, ErrorKind::RemovedApi { kind: k, .. }) => kind == k,
            _ => false,
        }
    }
}

use Expect::{Documentation, Fails};
use SourceFormat::{Compose as ComposeFormat, Kubernetes};
use WorkloadKind::{Compose, DaemonSet, Deployment, Pod};

fn table() -> BTreeMap<&'static str, Expect> {
    let w = |format, workloads, check| Expect::Workloads {
        format,
        workloads,
        check,
    };
    BTreeMap::from([
        ("README.md", Documentation),
        ("SOURCES.tsv", Documentation),
        ("compose/awesome-elk.yaml", w(ComposeFormat, &[("awesome-elk", Compose)], check_elk)),
        (
            "compose/awesome-nginx-golang-mysql.yaml",
            Fails(Variant::Invalid { path: "services.backend.build" }, "building images is not supported"),
        ),
        ("compose/awesome-pihole-cloudflared.yaml", w(ComposeFormat, &[("awesome-pihole-cloudflared", Compose)], check_pihole)),
        // ${PLEX_MEDIA_PATH} is unset: the volume becomes ":/media/", as docker compose refuses.
        (
            "compose/awesome-plex-host-network.yaml",
            Fails(Variant::Invalid { path: "services.plex.volumes[0]" }, "empty section between colons"),
        ),
        (
            "compose/awesome-react-express-mysql.yaml",
            Fails(Variant::Invalid { path: "services.backend.build" }, "give the service an image"),
        ),
        ("compose/awesome-wasmedge-kafka-mysql.yml", w(ComposeFormat, &[("awesome-wasmedge-kafka-mysql", Compose)], check_wasmedge)),
        ("compose/dockercompose-healthcheck-unhealthy.yaml", w(ComposeFormat, &[("dockercompose-healthcheck-unhealthy", Compose)], check_unhealthy)),
        ("compose/dockercompose-logging-driver.yaml", w(ComposeFormat, &[("dockercompose-logging-driver", Compose)], check_logging)),
        ("compose/dockercompose-profiles.yaml", w(ComposeFormat, &[("dockercompose-profiles", Compose)], check_profiles)),
        ("compose/dockercompose-scale-replicas.yaml", w(ComposeFormat, &[("dockercompose-scale-replicas", Compose)], check_scale)),
        (
            "compose/dockercompose-volume-test.yaml",
            Fails(Variant::Invalid { path: "services.nginx.build" }, "building images is not supported"),
        ),
        (
            "compose/dockercompose-watch-x-initialsync.yaml",
            Fails(Variant::Invalid { path: "services.test.build" }, "building images is not supported"),
        ),
        (
            "invalid/dockercompose-unknown-field.yaml",
            Fails(Variant::Invalid { path: "services.simple.wrongField" }, "unknown field"),
        ),
        (
            "invalid/k8sex-etcd-deployment-duplicate-selector.yaml",
            Fails(Variant::Syntax { line: 12 }, "line 12, column 3: duplicate key \"selector\""),
        ),
        ("invalid/k8sex-openshift-secret-empty.json", Fails(Variant::Empty, "empty manifest: nothing to deploy")),
        (
            "invalid/k8sex-vitess-vttablet-pod-template.yaml",
            Fails(Variant::Invalid { path: "metadata.name" }, "invalid name \"vttablet-{{uid}}\""),
        ),
        ("k8s/k8sex-azure-managed-disk-pod-crlf.yaml", w(Kubernetes, &[("pod-uses-managed-ssd-5g", Pod)], check_azure)),
        (
            "k8s/k8sex-cassandra-statefulset.yaml",
            Fails(Variant::UnsupportedKind { kind: "StatefulSet" }, "document 1: kind: StatefulSet (apps/v1) is not supported: no stable storage identity"),
        ),
        (
            "k8s/k8sex-cockroachdb-statefulset.yaml",
            Fails(Variant::UnsupportedKind { kind: "StatefulSet" }, "document 4: kind: StatefulSet"),
        ),
        ("k8s/k8sex-cpu-exclusive-2-pod.yaml", w(Kubernetes, &[("exclusive-2", Pod)], check_exclusive)),
        (
            "k8s/k8sex-gpu-hpa.yaml",
            Fails(Variant::UnsupportedKind { kind: "HorizontalPodAutoscaler" }, "not a workload kind; supported: Pod"),
        ),
        (
            "k8s/k8sex-guestbook-all-in-one.yaml",
            w(Kubernetes, &[("redis-master", Deployment), ("redis-replica", Deployment), ("frontend", Deployment)], check_guestbook),
        ),
        (
            "k8s/k8sex-guestbook-frontend-service.yaml",
            Fails(Variant::UnsupportedKind { kind: "Service" }, "kind: Service (v1) is not supported: not a workload kind"),
        ),
        ("k8s/k8sex-guestbook-go-redis-master.yaml", w(Kubernetes, &[("redis-master", Deployment)], check_redis_go)),
        ("k8s/k8sex-javaweb-initcontainer-pod.yaml", w(Kubernetes, &[("javaweb", Pod)], check_javaweb)),
        ("k8s/k8sex-mongo-pod.json", w(Kubernetes, &[("mongo", Pod)], check_mongo)),
        (
            "k8s/k8sex-newrelic-infra-daemonset.yaml",
            Fails(Variant::RemovedApi { kind: "DaemonSet" }, "DaemonSet in extensions/v1beta1 was removed in Kubernetes 1.16: use apps/v1"),
        ),
        (
            "k8s/k8sex-prometheus-rule-crd.yaml",
            Fails(Variant::UnsupportedKind { kind: "PrometheusRule" }, "PrometheusRule (monitoring.coreos.com/v1)"),
        ),
        (
            "k8s/k8sex-psp-policies.yaml",
            Fails(Variant::NothingToDeploy, "PodSecurityPolicy/privileged (policy/v1beta1 was removed in Kubernetes 1.25"),
        ),
        ("k8s/k8sex-redis-sentinel-pod.yaml", w(Kubernetes, &[("redis-master", Pod)], check_sentinel)),
        ("k8s/k8sex-sysdig-daemonset-crlf.yaml", w(Kubernetes, &[("sysdig-agent", DaemonSet)], check_sysdig)),
        (
            "k8s/k8sex-tf-serving-ingress.yaml",
            Fails(Variant::UnsupportedKind { kind: "Ingress" }, "Ingress (networking.k8s.io/v1)"),
        ),
        ("k8s/k8sex-vllm-deployment.yaml", w(Kubernetes, &[("vllm-gemma-deployment", Deployment)], check_vllm)),
    ])
}

fn corpus() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/real-world");
    assert!(
        dir.is_dir(),
        "the real-world corpus is missing: expected it at {}",
        dir.display()
    );
    dir
}

fn files(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files(&path, root, out);
        } else {
            let relative = path.strip_prefix(root).expect("inside the corpus");
            out.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// Options as `meshctl apply -f FILE` sends them: the file stem, normalised, as default name.
fn options_for(file: &str) -> ParseOptions {
    let stem = Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    ParseOptions {
        default_name: Some(normalize_name(stem)),
        ..ParseOptions::default()
    }
}

/// The table covers every file of the corpus and each file behaves as the table says.
#[test]
fn every_real_world_file_has_its_expected_outcome() {
    let root = corpus();
    let mut found = Vec::new();
    files(&root, &root, &mut found);
    found.sort();
    let table = table();
    let missing: Vec<&String> = found
        .iter()
        .filter(|f| !table.contains_key(f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "files without an expected outcome in real_world.rs: {missing:?}"
    );
    let stale: Vec<&&str> = table
        .keys()
        .filter(|k| !found.iter().any(|f| f == *k))
        .collect();
    assert!(stale.is_empty(), "table entries without a file: {stale:?}");

    for file in &found {
        let bytes = std::fs::read(root.join(file)).expect("readable");
        let result = parse(&bytes, &options_for(file));
        match (&table[file.as_str()], result) {
            (
                Expect::Workloads {
                    format,
                    workloads,
                    check,
                },
                Ok(specs),
            ) => {
                let got: Vec<(&str, WorkloadKind)> =
                    specs.iter().map(|s| (s.name.as_str(), s.kind)).collect();
                assert_eq!(&got, workloads, "{file}");
                for spec in &specs {
                    assert_eq!(spec.format, *format, "{file}");
                    assert_eq!(spec.version, spec.compute_version(), "{file}: sealed");
                }
                check(&specs);
            }
            (Expect::Fails(variant, text), Err(err)) => {
                let message = err.to_string();
                assert!(
                    variant.matches(err.kind()),
                    "{file}: expected {variant:?}, got {:?}",
                    err.kind()
                );
                assert!(
                    message.contains(text),
                    "{file}: {message:?} does not contain {text:?}"
                );
                assert!(!message.contains('\n'), "{file}: one line: {message:?}");
            }
            (Expect::Documentation, Err(_)) => {}
            (expected, got) => panic!("{file}: expected {expected:?}, got {got:?}"),
        }
    }
}

/// Every manifest in the corpus is listed in SOURCES.tsv with its origin.
#[test]
fn every_manifest_has_a_recorded_source() {
    let root = corpus();
    let sources = std::fs::read_to_string(root.join("SOURCES.tsv")).expect("SOURCES.tsv");
    let listed: Vec<&str> = sources
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .collect();
    let mut found = Vec::new();
    files(&root, &root, &mut found);
    for file in found.iter().filter(|f| f.contains('/')) {
        assert!(
            listed.contains(&file.as_str()),
            "{file} is not in SOURCES.tsv"
        );
    }
}

/// With the variable set, the Plex file parses (host networking is a warning).
#[test]
fn plex_parses_once_its_variable_is_given() {
    let bytes =
        std::fs::read(corpus().join("compose/awesome-plex-host-network.yaml")).expect("file");
    let mut opts = options_for("awesome-plex-host-network.yaml");
    opts.env
        .insert("PLEX_MEDIA_PATH".into(), "/srv/media".into());
    let specs = parse(&bytes, &opts).expect("parses");
    let plex = &specs[0].containers[0];
    assert_eq!(plex.mounts[0].source, "/srv/media");
    assert_eq!(plex.mounts[0].target, "/media/");
    assert!(has_warning(
        &specs[0],
        "services.plex.network_mode: not honoured"
    ));
}
