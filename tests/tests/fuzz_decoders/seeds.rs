//! Seeds: real encodings made with the repository's own encoders, from the examples and the
//! real-world manifests of `testdata/`.

use std::collections::BTreeMap;
use std::path::Path;

use libp2p::identity::Keypair;
use mesh_engine_wasm::Digest;
use mesh_node::records::{self, Built};
use mesh_protocol::api::{
    ApplyAction, ApplyOutcome, ApplyRequest, ApplyResponse, BundledModule, Deployment, EngineInfo,
    LogLine, LogStream, Logs, Replica, SignedRecord,
};
use mesh_protocol::job::JobStatus;
use mesh_protocol::wire::{NodeEngine, NodeInfo, ReplicaApply, Request, Response};
use mesh_protocol::{Phase, WorkloadId, WorkloadKind};
use mesh_provider::workload::ManifestSource;
use mesh_provider::{signed, EngineSummary, NodeRecord, NodeResources, ProviderRecord, Record};

/// Fixed keys, so that the seeds' signers are the same on every run.
pub fn user(n: u8) -> Keypair {
    Keypair::ed25519_from_bytes([n; 32]).expect("32 bytes are an ed25519 secret")
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

const SECRET_POD: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {password: hunter2}\n---\n\
    apiVersion: v1\nkind: Pod\nmetadata: {name: vault}\nspec:\n  containers:\n  - name: c\n    image: localhost/mesh-test:latest\n    \
    env: [{name: P, valueFrom: {secretKeyRef: {name: creds, key: password}}}]\n";

/// Manifests that build: the examples, sealed ones (a Secret, interpolation variables) and
/// every real-world manifest of `testdata/` that a node accepts.
pub fn sources() -> Vec<ManifestSource> {
    let read = |p: &str| std::fs::read_to_string(root().join(p)).expect("readable fixture");
    let wasm = std::fs::read(root().join("examples/hello.wasm")).expect("examples/hello.wasm");
    let mut out = vec![
        ManifestSource {
            manifest: read("examples/hello-pod.yaml"),
            ..Default::default()
        },
        ManifestSource {
            manifest: read("examples/shop-compose.yaml"),
            ..Default::default()
        },
        ManifestSource {
            manifest: read("examples/hello-function.yaml"),
            modules: vec![BundledModule {
                path: "./hello.wasm".into(),
                digest: Digest::of(&wasm).to_string(),
                ..Default::default()
            }],
            ..Default::default()
        },
        ManifestSource {
            manifest: SECRET_POD.into(),
            ..Default::default()
        },
    ];
    for dir in ["testdata/real-world/k8s", "testdata/real-world/compose"] {
        let mut files: Vec<_> = std::fs::read_dir(root().join(dir))
            .expect("the real-world corpus")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for path in files {
            let manifest = std::fs::read_to_string(&path).expect("readable fixture");
            let env: BTreeMap<String, String> = ["TIMEZONE", "PIHOLE_PW", "PIHOLE_ROUTER_IP"]
                .into_iter()
                .filter(|v| manifest.contains(&format!("${{{v}")))
                .map(|v| (v.to_string(), "x".to_string()))
                .collect();
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            out.push(ManifestSource {
                manifest,
                default_name: stem,
                env,
                ..Default::default()
            });
        }
    }
    out
}

/// Signed records of every source that builds (by users 1 and 2), tombstones and a rollback.
pub fn built() -> Vec<Built> {
    let now = mesh_runtime::now_millis();
    let mut out = Vec::new();
    for (i, src) in sources().iter().enumerate() {
        if let Ok(b) = records::build(&user(1 + (i % 2) as u8), src, Some(2), |_| 0, now) {
            out.extend(b.into_iter().filter(|b| b.signed.bytes.len() < 60_000));
        }
    }
    assert!(
        out.len() >= 20,
        "only {} records built from the fixtures",
        out.len()
    );
    assert!(
        out.iter().any(|b| b.opened.key.is_some()),
        "a sealed record"
    );
    out
}

/// Signed records as they travel: every built one, two tombstones and a rollback.
pub fn signed_records(built: &[Built]) -> Vec<SignedRecord> {
    let now = mesh_runtime::now_millis();
    let mut out: Vec<SignedRecord> = built.iter().map(|b| b.signed.clone()).collect();
    let id = WorkloadId::new("default", "hello");
    out.push(records::build_tombstone(&user(1), &id, WorkloadKind::Pod, 7, now).expect("sign"));
    let first = &built[0].opened.verified;
    out.push(records::build_rollback(&user(1), first, 3, now).expect("sign"));
    let sealed = built
        .iter()
        .find(|b| b.opened.key.is_some())
        .expect("sealed");
    let signer = user(
        if sealed.opened.verified.signer == user(1).public().to_peer_id() {
            1
        } else {
            2
        },
    );
    out.push(records::build_rollback(&signer, &sealed.opened.verified, 9, now).expect("sign"));
    out
}

/// Provider and node records, signed by users 1 to 3.
pub fn provider_and_node_records(built: &[Built]) -> Vec<Vec<u8>> {
    let now = mesh_runtime::now_millis();
    let mut out = Vec::new();
    for (i, b) in built.iter().take(6).enumerate() {
        let key = user(1 + (i % 3) as u8);
        let peer_id = key.public().to_peer_id().to_string();
        let provider = Record::Provider(ProviderRecord {
            workload: b.spec.id().to_string(),
            version: b.spec.version.clone(),
            peer_id: peer_id.clone(),
            engine: ["podman", "docker", "wasm", "mock"][i % 4].into(),
            capabilities: vec!["logs".into(), "exec".into()],
            resources: b.spec.resources,
            phase: [Phase::Running, Phase::Failed, Phase::Deleted][i % 3],
            addresses: vec![format!("/ip4/10.0.0.{i}/tcp/4001/p2p/{peer_id}")],
            issued_at: now - 1000,
            expires_at: now + 3_600_000,
            withdrawn: i == 5,
            slot: Some(i as u32),
            revision: Some(1 + i as u64),
        });
        out.push(signed::encode(&key, &provider).expect("encode"));
        let node = Record::Node(NodeRecord {
            peer_id,
            addresses: vec!["/ip4/127.0.0.1/udp/4001/quic-v1".into()],
            engines: vec![EngineSummary {
                name: "podman".into(),
                healthy: i % 2 == 0,
                version: Some("5.0.0".into()),
                kinds: vec!["Pod".into(), "Compose".into()],
                capabilities: vec!["logs".into()],
            }],
            resources: NodeResources {
                cpu_millis: 2000,
                cpu_free_millis: 1500,
                memory_bytes: 1 << 33,
                memory_free_bytes: 1 << 32,
            },
            workloads: i as u32,
            software_version: "0.1.0".into(),
            trust: ["owner", "file", "any", ""][i % 4].into(),
            cordoned: i % 2 == 1,
            issued_at: now - 1000,
            expires_at: now + 3_600_000,
        });
        out.push(signed::encode(&key, &node).expect("encode"));
    }
    out
}

fn deployment(b: &Built) -> Deployment {
    Deployment {
        name: b.spec.name.clone(),
        namespace: b.spec.namespace.clone(),
        kind: b.spec.kind,
        version: b.spec.version.clone(),
        engine: "podman".into(),
        engine_reason: "annotation".into(),
        phase: Phase::Running,
        error: None,
        desired_replicas: 2,
        revision: Some(1),
        submitter: Some(b.opened.verified.record.submitter.clone()),
        replicas: vec![Replica {
            node: b.opened.verified.record.submitter.clone(),
            phase: Phase::Succeeded,
            engine: "wasm".into(),
            engine_reason: "kind".into(),
            version: b.spec.version.clone(),
            error: Some("exit 1".into()),
            instance: Some("c0ffee".into()),
            exit_code: Some(-1),
            restarts: 3,
            updated_at: 5,
            slot: Some(0),
            job: Some(JobStatus::default()),
        }],
        placement: vec!["fewer capable nodes than replicas".into()],
        warnings: b.spec.warnings.clone(),
        resources: b.spec.resources,
        annotations: b.spec.annotations.clone(),
        created_at: 1,
        updated_at: 2,
        history: Vec::new(),
        events: Vec::new(),
    }
}

/// Requests and responses of every shape nodes exchange, carrying real records.
pub fn wire(
    built: &[Built],
    records: &[SignedRecord],
    signed: &[Vec<u8>],
) -> (Vec<Request>, Vec<Response>) {
    let b = &built[0];
    let id = b.spec.id();
    let sealed = built
        .iter()
        .find(|b| b.opened.key.is_some())
        .expect("sealed");
    let requests = vec![
        Request::Apply(Box::new(ApplyRequest {
            manifest: b.opened.source.manifest.clone(),
            replicas: Some(3),
            records: records[..3].to_vec(),
            modules: vec![BundledModule {
                path: "./m.wasm".into(),
                digest: "sha256:00".into(),
                bytes: Some(vec![0, 97, 115, 109]),
                providers: vec!["/ip4/1.2.3.4/tcp/1".into()],
            }],
            ..Default::default()
        })),
        Request::Get {
            id: id.clone(),
            events: true,
        },
        Request::List,
        Request::Delete {
            id: id.clone(),
            record: records.last().cloned(),
        },
        Request::Record { id: id.clone() },
        Request::History { id: id.clone() },
        Request::Logs {
            id: id.clone(),
            tail: Some(10),
        },
        Request::Discover {
            id: id.clone(),
            engine: Some("wasm".into()),
        },
        Request::Nodes { engine: None },
        Request::Engines,
        Request::NodeRecord,
        Request::Ping {
            nonce: b"0123456789abcdef".to_vec(),
        },
        Request::Probe {
            peer: id.to_string(),
            nonce: b"0123456789abcdef".to_vec(),
        },
        Request::Command {
            command: signed[0].clone(),
        },
        Request::EventLog {
            node: Some(id.to_string()),
            after: 7,
            limit: 500,
        },
        Request::ApplyReplica(Box::new(ReplicaApply {
            correlation: Some("apply-0a1b2c3d".into()),
            record: sealed.signed.clone(),
            workload: sealed.spec.id(),
            slot: 1,
            desired_replicas: 2,
            modules: Vec::new(),
            placement: vec!["x".into()],
            entry: sealed.opened.verified.signer.to_string(),
        })),
        Request::ReplicaGet {
            id: id.clone(),
            events: false,
        },
        Request::ReplicaList,
        Request::ReplicaDelete {
            id: id.clone(),
            record: records[1].clone(),
        },
        Request::ReplicaLogs {
            id: id.clone(),
            tail: None,
        },
        Request::FetchModule {
            digest: "sha256:ab".into(),
            offset: 4096,
        },
        Request::Output {
            id: id.clone(),
            node: Some("12D3KooW".into()),
            path: "out/result.txt".into(),
            offset: 0,
        },
    ];
    let responses = vec![
        Response::Applied(ApplyResponse {
            correlation: Some("apply-0a1b2c3d".into()),
            workloads: vec![ApplyOutcome {
                action: ApplyAction::RolledBack,
                deployment: deployment(b),
            }],
        }),
        Response::ReplicaApplied {
            outcome: Box::new(ApplyOutcome {
                action: ApplyAction::Created,
                deployment: deployment(sealed),
            }),
            provider: Some(signed[0].clone()),
        },
        Response::Deployment(Box::new(deployment(&built[1]))),
        Response::Deployments(built.iter().take(4).map(deployment).collect()),
        Response::Logs(Logs {
            name: id.name.clone(),
            namespace: id.namespace.clone(),
            lines: vec![LogLine {
                at: Some(7),
                stream: LogStream::Stderr,
                source: Some("web".into()),
                line: "listening on :80\u{1b}[0m".into(),
                correlation: None,
            }],
        }),
        Response::Providers(
            signed
                .iter()
                .filter_map(|s| match mesh_provider::signed::verify_signature(s, None) {
                    Ok(mesh_provider::Signed {
                        record: Record::Provider(p),
                        ..
                    }) => Some(p),
                    _ => None,
                })
                .collect(),
        ),
        Response::Engines(vec![EngineInfo {
            name: "podman".into(),
            healthy: false,
            version: Some("5".into()),
            capabilities: vec!["logs".into()],
            kinds: vec![WorkloadKind::Pod, WorkloadKind::Compose],
            detail: "cannot reach the socket".into(),
            checked_at: 8,
        }]),
        Response::Nodes(vec![NodeInfo {
            peer_id: id.to_string(),
            addresses: vec!["/ip4/1.2.3.4/tcp/1".into()],
            engines: vec![NodeEngine {
                name: "wasm".into(),
                healthy: true,
                version: None,
            }],
            cpu_millis: 1,
            cpu_free_millis: 2,
            memory_bytes: 3,
            memory_free_bytes: 4,
            workloads: 5,
            software_version: "0.1.0".into(),
            trust: "file".into(),
            cordoned: true,
            seen_at: 6,
            local: true,
        }]),
        Response::Record(Some(records::info(&b.opened.verified.record))),
        Response::History(records[..2].to_vec()),
        Response::Signed(signed[1].clone()),
        Response::Pong(mesh_protocol::wire::PingProof {
            key: vec![8, 1, 18, 32],
            signature: vec![0; 64],
        }),
        Response::Probed {
            proof: None,
            unreachable: true,
        },
        Response::Drained(mesh_protocol::api::DrainReport {
            node: id.to_string(),
            cordoned: true,
            moved: vec![mesh_protocol::api::Moved {
                workload: "default/web".into(),
                slot: 1,
                to: id.to_string(),
            }],
            left: vec![mesh_protocol::api::Left {
                workload: "default/job".into(),
                why: "a job".into(),
            }],
        }),
        Response::EventLog(mesh_protocol::api::EventPage {
            node: id.to_string(),
            events: Vec::new(),
            first: 1,
            last: 9,
            dropped: 3,
        }),
        Response::ModuleChunk {
            total: 10,
            offset: 4,
            bytes: vec![1, 2, 3],
        },
        Response::Output(mesh_protocol::api::OutputChunk {
            total: 3,
            offset: 0,
            bytes: vec![7, 8, 9],
        }),
        Response::Error {
            status: 404,
            message: "no such workload".into(),
        },
    ];
    (requests, responses)
}
