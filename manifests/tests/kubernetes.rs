//! Kubernetes manifests: each honoured field lands in the spec, unhonoured ones warn, and
//! mistakes are reported at their field path.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use mesh_manifests::{parse, Error, ErrorKind, ParseOptions};
use mesh_protocol::spec::{
    ConfigKind, EnvSource, PortProtocol, PullPolicy, RestartPolicy, VolumeSource, WorkloadKind,
    WorkloadSpec,
};

fn ok(yaml: &str) -> Vec<WorkloadSpec> {
    parse(yaml.as_bytes(), &ParseOptions::default()).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn one(yaml: &str) -> WorkloadSpec {
    let mut specs = ok(yaml);
    assert_eq!(specs.len(), 1);
    specs.remove(0)
}

fn err(yaml: &str) -> Error {
    parse(yaml.as_bytes(), &ParseOptions::default()).expect_err("must fail")
}

fn warned(spec: &WorkloadSpec, text: &str) -> bool {
    spec.warnings.iter().any(|w| w.contains(text))
}

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels: {app: web}
  annotations:
    beemesh.io/runtime-engine: podman
spec:
  restartPolicy: OnFailure
  initContainers:
  - name: setup
    image: busybox:1.36
    command: [sh, -c, "echo ready"]
  containers:
  - name: app
    image: registry.example/app:1.2
    command: ["/bin/app"]
    args: ["--port", "8080"]
    workingDir: /srv
    env:
    - {name: MODE, value: prod}
    - name: DB_HOST
      valueFrom: {configMapKeyRef: {name: settings, key: db}}
    - name: TOKEN
      valueFrom: {secretKeyRef: {name: creds, key: token}}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: LIMIT
      valueFrom: {resourceFieldRef: {resource: limits.cpu}}
    ports:
    - {containerPort: 8080, name: http}
    - {containerPort: 53, protocol: UDP, hostPort: 5353, hostIP: 127.0.0.1}
    volumeMounts:
    - {name: scratch, mountPath: /tmp}
    - {name: conf, mountPath: /etc/app, readOnly: true, subPath: app.conf}
    resources:
      requests: {cpu: 250m, memory: 64Mi}
      limits: {cpu: "1", memory: 128Mi}
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 5
    readinessProbe:
      httpGet: {path: /, port: 8080}
  - name: sidecar
    image: nginx
    resources:
      limits: {cpu: 0.5}
  volumes:
  - name: scratch
    emptyDir: {}
  - name: conf
    configMap: {name: settings}
"#;

/// Every honoured Pod field is carried into the spec.
#[test]
fn pod_fields_are_honoured() {
    let s = one(POD);
    assert_eq!((s.name.as_str(), s.namespace.as_str()), ("web", "shop"));
    assert_eq!(s.kind, WorkloadKind::Pod);
    assert_eq!(s.labels["app"], "web");
    assert_eq!(s.annotation("beemesh.io/runtime-engine"), Some("podman"));
    assert_eq!(s.restart_policy, RestartPolicy::OnFailure);
    assert_eq!(s.replicas, None);
    assert_eq!(s.init_containers[0].command, ["sh", "-c", "echo ready"]);
    let app = &s.containers[0];
    assert_eq!(app.command, ["/bin/app"]);
    assert_eq!(app.args, ["--port", "8080"]);
    assert_eq!(app.working_dir.as_deref(), Some("/srv"));
    assert_eq!(app.pull_policy, PullPolicy::IfNotPresent);
    assert_eq!(
        s.containers[1].pull_policy,
        PullPolicy::Always,
        "untagged images default to Always"
    );
    let env: Vec<(&str, Option<&str>, Option<&EnvSource>)> = app
        .env
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_deref(), e.value_from.as_ref()))
        .collect();
    assert_eq!(env.len(), 4, "resourceFieldRef is dropped with a warning");
    assert_eq!(env[0], ("MODE", Some("prod"), None));
    assert_eq!(
        env[1].2,
        Some(&EnvSource::ConfigMap {
            name: "settings".into(),
            key: "db".into()
        })
    );
    assert_eq!(
        env[2].2,
        Some(&EnvSource::Secret {
            name: "creds".into(),
            key: "token".into()
        })
    );
    assert_eq!(
        env[3].2,
        Some(&EnvSource::Field {
            path: "metadata.name".into()
        })
    );
    assert!(warned(
        &s,
        "spec.containers[0].env[4].valueFrom.resourceFieldRef: not honoured"
    ));
    let udp = &app.ports[1];
    assert_eq!(
        (udp.container_port, udp.host_port, udp.protocol),
        (53, Some(5353), PortProtocol::Udp)
    );
    assert_eq!(udp.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(app.ports[0].name.as_deref(), Some("http"));
    assert!(app.mounts[1].read_only);
    assert_eq!(app.mounts[1].sub_path.as_deref(), Some("app.conf"));
    assert_eq!(
        s.volumes[1].source,
        VolumeSource::ConfigMap {
            name: "settings".into()
        }
    );
    assert_eq!(app.resources.requests.cpu_millis, Some(250));
    assert_eq!(app.resources.limits.memory_bytes, Some(128 << 20));
    let health = app.healthcheck.as_ref().expect("exec liveness probe");
    assert_eq!(health.test, ["CMD", "cat", "/tmp/healthy"]);
    assert_eq!(
        (health.interval_ms, health.timeout_ms, health.retries),
        (Some(5000), Some(1000), Some(3))
    );
    assert!(warned(
        &s,
        "spec.containers[0].readinessProbe: not honoured: only exec probes"
    ));
    // Requests where given, else limits: 250m + 500m; memory only from the app.
    assert_eq!(s.resources.cpu_millis, Some(750));
    assert_eq!(s.resources.memory_bytes, Some(64 << 20));
    assert_eq!(s.version, s.compute_version());
}

/// Parsing is deterministic: the same bytes give the same version.
#[test]
fn identical_content_gives_identical_versions() {
    assert_eq!(one(POD).version, one(POD).version);
    assert_ne!(one(POD).version, one(&POD.replace("prod", "dev")).version);
}

#[test]
fn deployment_template_metadata_merges_and_replicas_default_to_one() {
    let s = one(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  labels: {tier: a, app: x}\n  \
         annotations: {note: object}\nspec:\n  selector: {matchLabels: {app: x}}\n  template:\n    \
         metadata:\n      labels: {app: x, tier: b}\n      annotations: {note: template}\n    \
         spec:\n      containers: [{name: c, image: 'app:1'}]\n",
    );
    assert_eq!(s.replicas, Some(1));
    assert_eq!(s.labels["tier"], "b", "the template wins");
    assert_eq!(s.annotations["note"], "template");
    assert_eq!(s.restart_policy, RestartPolicy::Always);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn jobs_always_get_a_job_spec() {
    let base = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: once}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: 'a:1'}]\n";
    let s = one(base);
    assert_eq!(s.job, Some(Default::default()));
    assert_eq!(s.restart_policy, RestartPolicy::Never);
    let s = one(&base.replace(
        "spec:\n  template:",
        "spec:\n  backoffLimit: 2\n  activeDeadlineSeconds: 30\n  completions: 1\n  parallelism: 4\n  template:",
    ));
    let job = s.job.clone().expect("job");
    assert_eq!(
        (job.backoff_limit, job.active_deadline_ms, job.completions),
        (Some(2), Some(30_000), Some(1))
    );
    assert!(warned(&s, "spec.parallelism: not honoured"));
    let e = err(&base.replace("    spec:\n", "    spec:\n      restartPolicy: Always\n"));
    assert_eq!(
        e.to_string(),
        "spec.template.spec.restartPolicy: a Job runs to completion: use OnFailure or Never"
    );
}

#[test]
fn daemonsets_ignore_replicas_and_warn_about_host_access() {
    let s = one(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  template:\n    spec:\n      \
         hostNetwork: true\n      hostPID: false\n      nodeSelector: {disk: ssd}\n      tolerations: [{operator: Exists}]\n      \
         serviceAccountName: agent\n      dnsPolicy: ClusterFirst\n      \
         containers:\n      - name: c\n        image: 'a:1'\n        imagePulPolicy: Always\n        \
         securityContext: {privileged: true, capabilities: {}}\n        resources: {limits: {amd.com/gpu: 1}}\n",
    );
    assert_eq!(s.replicas, None);
    for w in [
        "spec.template.spec.hostNetwork: not honoured",
        "spec.template.spec.nodeSelector: not honoured",
        "spec.template.spec.tolerations: not honoured",
        "spec.template.spec.serviceAccountName: not honoured",
        "spec.template.spec.containers[0].securityContext.privileged: not honoured",
        "spec.template.spec.containers[0].imagePulPolicy: unknown field",
        "resources.limits[\"amd.com/gpu\"]: not honoured: GPU resources",
    ] {
        assert!(warned(&s, w), "missing warning {w:?} in {:?}", s.warnings);
    }
    assert!(!warned(&s, "hostPID"), "false is the default: no warning");
    assert!(!warned(&s, "dnsPolicy") && !warned(&s, "capabilities"));
}

#[test]
fn volumes_map_to_mesh_sources() {
    let s = one(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: v}\nspec:\n  containers:\n  - name: c\n    image: 'a:1'\n    volumeMounts:\n    \
         - {name: data, mountPath: /data}\n    - {name: shm, mountPath: /dev/shm}\n  volumes:\n  \
         - {name: data, persistentVolumeClaim: {claimName: pg-data}}\n  - {name: shm, emptyDir: {medium: Memory}}\n  \
         - {name: host, hostPath: {path: /var/log, type: Directory}}\n  - {name: sec, secret: {secretName: tls}}\n  \
         - {name: bare}\n  - {name: nfs, nfs: {server: x, path: /}}\n",
    );
    let sources: Vec<(&str, &VolumeSource)> = s
        .volumes
        .iter()
        .map(|v| (v.name.as_str(), &v.source))
        .collect();
    assert_eq!(
        sources[0],
        ("pg-data", &VolumeSource::Named { external: false })
    );
    assert_eq!(
        sources[1],
        ("shm", &VolumeSource::Ephemeral { memory: true })
    );
    assert_eq!(
        sources[2],
        (
            "host",
            &VolumeSource::HostPath {
                path: "/var/log".into()
            }
        )
    );
    assert_eq!(
        sources[3],
        ("sec", &VolumeSource::Secret { name: "tls".into() })
    );
    assert_eq!(
        sources[4],
        ("bare", &VolumeSource::Ephemeral { memory: false })
    );
    assert_eq!(
        sources[5],
        ("nfs", &VolumeSource::Unsupported { kind: "nfs".into() })
    );
    assert_eq!(
        s.containers[0].mounts[0].source, "pg-data",
        "mounts follow the claim"
    );
    assert!(warned(
        &s,
        "spec.volumes[0].persistentVolumeClaim: claim \"pg-data\" becomes a named volume"
    ));
    assert!(warned(
        &s,
        "spec.volumes[5].nfs: volume type nfs is not supported"
    ));
}

#[test]
fn config_maps_and_secrets_travel_with_every_workload() {
    let specs = ok(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {db: postgres, empty: ''}\nbinaryData: {blob: AAEC}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\ndata: {token: c2VjcmV0, raw: /+8=, over: b2xk}\nstringData: {over: new}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: 'x:1'}]}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec: {containers: [{name: c, image: 'x:1'}]}\n",
    );
    assert_eq!(specs.len(), 2);
    for s in &specs {
        assert_eq!(s.config.len(), 2);
        let cm = &s.config[0];
        assert_eq!(
            (cm.kind, cm.data["db"].as_str()),
            (ConfigKind::ConfigMap, "postgres")
        );
        assert_eq!(
            (cm.data["blob"].as_str(), cm.binary_keys.as_slice()),
            ("AAEC", &["blob".to_string()][..])
        );
        let secret = &s.config[1];
        assert_eq!(secret.data["token"], "secret", "base64-decoded");
        assert_eq!(secret.data["over"], "new", "stringData wins");
        assert_eq!(
            (secret.data["raw"].as_str(), secret.binary_keys.as_slice()),
            ("/+8=", &["raw".to_string()][..])
        );
    }
    let e =
        err("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {token: 'not base64!'}\n");
    assert!(
        e.to_string().starts_with("data.token: invalid base64"),
        "{e}"
    );
    let e = err("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\ndata: {port: 80}\n");
    assert_eq!(
        e.to_string(),
        "data.port: expected a string, found an integer (quote it: \"80\")"
    );
    let alone = err("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\n");
    assert!(
        matches!(alone.kind(), ErrorKind::NothingToDeploy { .. }),
        "{alone}"
    );
}
