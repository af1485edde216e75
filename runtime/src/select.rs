//! Engine selection: a pure function of the spec, the engines of the node and its policy.
//!
//! Order of preference:
//! 1. the `beemesh.io/runtime-engine` annotation, if that engine is usable; if it is not,
//!    fall back and say why, unless `beemesh.io/runtime-engine-strict: "true"`;
//! 2. the engine the manifest's format implies (Kubernetes → podman, Compose → docker,
//!    Function → wasm, VirtualMachine → qemu);
//! 3. the best usable engine that can run the kind, in [`FALLBACK_ORDER`].
//!
//! "Usable" means registered, healthy, allowed by policy and able to run the kind.
//! The `process` engine is never chosen by fallback: it is not sandboxed, so it only runs
//! what names it.

use std::collections::BTreeSet;
use std::fmt;

use mesh_protocol::annotations;
use mesh_protocol::spec::SourceFormat;
use mesh_protocol::{WorkloadKind, WorkloadSpec};
use serde::{Deserialize, Serialize};

/// Preference among engines when neither the annotation nor the format decides.
pub const FALLBACK_ORDER: &[&str] = &["podman", "docker", "wasm", "qemu", "mock"];

/// Engines only ever chosen by name.
pub const EXPLICIT_ONLY: &[&str] = &["process"];

/// One engine as selection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub healthy: bool,
    /// Why it is unhealthy (shown in fallback reasons).
    pub detail: String,
    pub kinds: Vec<WorkloadKind>,
}

/// Node policy on engines (seed 003: engine allow/deny).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// When set, only these engines may run workloads.
    pub allowed: Option<BTreeSet<String>>,
    pub denied: BTreeSet<String>,
}

impl Policy {
    fn permits(&self, engine: &str) -> bool {
        !self.denied.contains(engine) && self.allowed.as_ref().is_none_or(|a| a.contains(engine))
    }
}

/// The chosen engine and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    pub engine: String,
    /// Shown by `meshctl describe`, e.g. `inferred from format: Kubernetes → podman`.
    pub reason: String,
    /// True when the preferred engine could not be used.
    pub fallback: bool,
}

/// No engine can run the workload here; the message says what was tried and why it failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoEngine(pub String);

/// The engine a format implies.
pub fn inferred_engine(spec: &WorkloadSpec) -> &'static str {
    match (spec.format, spec.kind) {
        (_, WorkloadKind::Function) => "wasm",
        (_, WorkloadKind::VirtualMachine) => "qemu",
        (SourceFormat::Compose, _) | (_, WorkloadKind::Compose) => "docker",
        (SourceFormat::Kubernetes, _) | (SourceFormat::Beemesh, _) => "podman",
    }
}

fn format_label(spec: &WorkloadSpec) -> String {
    match spec.format {
        SourceFormat::Kubernetes => "Kubernetes manifest".to_string(),
        SourceFormat::Compose => "Compose file".to_string(),
        SourceFormat::Beemesh => format!("beemesh.io/v1 {}", spec.kind),
    }
}

/// Why `name` cannot run `spec` here, or `None` when it can.
fn unusable(
    name: &str,
    spec: &WorkloadSpec,
    engines: &[Candidate],
    policy: &Policy,
) -> Option<String> {
    let Some(c) = engines.iter().find(|c| c.name == name) else {
        return Some(format!("{name} is not available on this node"));
    };
    if !policy.permits(name) {
        return Some(format!("{name} is denied by node policy"));
    }
    if !c.kinds.contains(&spec.kind) {
        return Some(format!("{name} cannot run a {}", spec.kind));
    }
    if !c.healthy {
        return Some(format!("{name} is unhealthy ({})", c.detail));
    }
    None
}

/// Chooses the engine for `spec`. Pure: same inputs, same answer.
pub fn select(
    spec: &WorkloadSpec,
    engines: &[Candidate],
    policy: &Policy,
) -> Result<Selection, NoEngine> {
    let mut passed_over: Vec<String> = Vec::new();
    let mut tried: BTreeSet<String> = BTreeSet::new();

    if let Some(wanted) = spec
        .annotation(annotations::RUNTIME_ENGINE)
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let wanted = wanted.to_ascii_lowercase();
        tried.insert(wanted.clone());
        match unusable(&wanted, spec, engines, policy) {
            None => {
                return Ok(Selection {
                    reason: format!("annotation {}={wanted}", annotations::RUNTIME_ENGINE),
                    engine: wanted,
                    fallback: false,
                })
            }
            Some(why) => {
                let strict = spec
                    .annotation(annotations::RUNTIME_ENGINE_STRICT)
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
                if strict {
                    return Err(NoEngine(format!(
                        "annotation {}={wanted} is strict ({}: \"true\") and {why}",
                        annotations::RUNTIME_ENGINE,
                        annotations::RUNTIME_ENGINE_STRICT
                    )));
                }
                passed_over.push(format!("annotation asked for {wanted}, but {why}"));
            }
        }
    }

    let inferred = inferred_engine(spec);
    if tried.insert(inferred.to_string()) {
        match unusable(inferred, spec, engines, policy) {
            None => {
                let mut reason =
                    format!("inferred from format: {} → {inferred}", format_label(spec));
                let fallback = !passed_over.is_empty();
                if fallback {
                    reason = format!("{}; fell back to {reason}", passed_over.join("; "));
                }
                return Ok(Selection {
                    engine: inferred.to_string(),
                    reason,
                    fallback,
                });
            }
            Some(why) => passed_over.push(format!(
                "{} implies {inferred}, but {why}",
                format_label(spec)
            )),
        }
    }

    let mut ordered: Vec<&Candidate> = engines
        .iter()
        .filter(|c| !EXPLICIT_ONLY.contains(&c.name.as_str()))
        .collect();
    ordered.sort_by_key(|c| {
        (
            FALLBACK_ORDER
                .iter()
                .position(|n| *n == c.name)
                .unwrap_or(FALLBACK_ORDER.len()),
            c.name.clone(),
        )
    });
    for c in ordered {
        if unusable(&c.name, spec, engines, policy).is_none() {
            return Ok(Selection {
                engine: c.name.clone(),
                reason: format!(
                    "{}; fell back to {}, the best available engine that runs a {}",
                    passed_over.join("; "),
                    c.name,
                    spec.kind
                ),
                fallback: true,
            });
        }
    }

    let others: Vec<String> = engines
        .iter()
        .filter(|c| !tried.contains(&c.name))
        .filter_map(|c| unusable(&c.name, spec, engines, policy))
        .collect();
    passed_over.extend(others);
    Err(NoEngine(format!(
        "no engine on this node can run {} {}: {}",
        spec.kind,
        spec.id(),
        if passed_over.is_empty() {
            "no engines are registered".to_string()
        } else {
            passed_over.join("; ")
        }
    )))
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.engine, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_protocol::spec::DEFAULT_NAMESPACE;

    fn spec(format: SourceFormat, kind: WorkloadKind, ann: &[(&str, &str)]) -> WorkloadSpec {
        let mut s = WorkloadSpec::new("w", DEFAULT_NAMESPACE, kind, format);
        for (k, v) in ann {
            s.annotations.insert(k.to_string(), v.to_string());
        }
        s
    }

    fn engine(name: &str, healthy: bool, kinds: &[WorkloadKind]) -> Candidate {
        Candidate {
            name: name.to_string(),
            healthy,
            detail: if healthy {
                "ok".into()
            } else {
                "socket refused".into()
            },
            kinds: kinds.to_vec(),
        }
    }

    const CONTAINER_KINDS: &[WorkloadKind] = &[
        WorkloadKind::Pod,
        WorkloadKind::Deployment,
        WorkloadKind::Job,
        WorkloadKind::DaemonSet,
        WorkloadKind::Compose,
    ];

    fn node(podman: Option<bool>, docker: Option<bool>, wasm: bool, mock: bool) -> Vec<Candidate> {
        let mut v = Vec::new();
        if let Some(h) = podman {
            v.push(engine("podman", h, CONTAINER_KINDS));
        }
        if let Some(h) = docker {
            v.push(engine("docker", h, CONTAINER_KINDS));
        }
        if wasm {
            v.push(engine("wasm", true, &[WorkloadKind::Function]));
        }
        if mock {
            v.push(engine(
                "mock",
                true,
                &[
                    WorkloadKind::Pod,
                    WorkloadKind::Deployment,
                    WorkloadKind::Job,
                    WorkloadKind::DaemonSet,
                    WorkloadKind::Compose,
                    WorkloadKind::Function,
                ],
            ));
        }
        v.push(engine("process", true, CONTAINER_KINDS));
        v
    }

    use SourceFormat::{Beemesh, Compose, Kubernetes};
    use WorkloadKind as K;

    /// (case, spec, engines, policy, expected engine or error substring, fallback, reason substring)
    type Case<'a> = (
        &'a str,
        WorkloadSpec,
        Vec<Candidate>,
        Policy,
        Result<&'a str, &'a str>,
        bool,
        &'a str,
    );

    #[test]
    fn selection_table() {
        let eng = annotations::RUNTIME_ENGINE;
        let strict = annotations::RUNTIME_ENGINE_STRICT;
        let deny_podman = Policy {
            denied: ["podman".to_string()].into(),
            ..Policy::default()
        };
        let cases: Vec<Case<'_>> = vec![
            ("k8s → podman", spec(Kubernetes, K::Pod, &[]), node(Some(true), Some(true), true, false), Policy::default(), Ok("podman"), false, "inferred from format: Kubernetes manifest → podman"),
            ("compose → docker", spec(Compose, K::Compose, &[]), node(Some(true), Some(true), true, false), Policy::default(), Ok("docker"), false, "Compose file → docker"),
            ("function → wasm", spec(Beemesh, K::Function, &[]), node(Some(true), Some(true), true, false), Policy::default(), Ok("wasm"), false, "beemesh.io/v1 Function → wasm"),
            ("annotation wins", spec(Kubernetes, K::Pod, &[(eng, "docker")]), node(Some(true), Some(true), false, false), Policy::default(), Ok("docker"), false, "annotation beemesh.io/runtime-engine=docker"),
            ("annotation case-insensitive", spec(Kubernetes, K::Pod, &[(eng, " Docker ")]), node(Some(true), Some(true), false, false), Policy::default(), Ok("docker"), false, "=docker"),
            ("annotation engine missing → format", spec(Compose, K::Compose, &[(eng, "podman")]), node(None, Some(true), false, false), Policy::default(), Ok("docker"), true, "annotation asked for podman, but podman is not available on this node; fell back to inferred"),
            ("annotation engine unhealthy → format", spec(Kubernetes, K::Pod, &[(eng, "docker")]), node(Some(true), Some(false), false, false), Policy::default(), Ok("podman"), true, "docker is unhealthy (socket refused)"),
            ("strict refuses fallback", spec(Kubernetes, K::Pod, &[(eng, "docker"), (strict, "true")]), node(Some(true), None, false, false), Policy::default(), Err("is strict"), false, ""),
            ("strict satisfied", spec(Kubernetes, K::Pod, &[(eng, "podman"), (strict, "true")]), node(Some(true), None, false, false), Policy::default(), Ok("podman"), false, "annotation"),
            ("k8s without podman → docker", spec(Kubernetes, K::Deployment, &[]), node(None, Some(true), false, false), Policy::default(), Ok("docker"), true, "Kubernetes manifest implies podman, but podman is not available on this node; fell back to docker"),
            ("compose without docker → podman", spec(Compose, K::Compose, &[]), node(Some(true), None, false, false), Policy::default(), Ok("podman"), true, "fell back to podman"),
            ("unhealthy podman → docker", spec(Kubernetes, K::Pod, &[]), node(Some(false), Some(true), false, false), Policy::default(), Ok("docker"), true, "podman is unhealthy"),
            ("policy denies podman", spec(Kubernetes, K::Pod, &[]), node(Some(true), Some(true), false, false), deny_podman, Ok("docker"), true, "denied by node policy"),
            ("only mock", spec(Kubernetes, K::Pod, &[]), node(None, None, false, true), Policy::default(), Ok("mock"), true, "fell back to mock"),
            ("mock by annotation", spec(Kubernetes, K::Pod, &[(eng, "mock")]), node(Some(true), None, false, true), Policy::default(), Ok("mock"), false, "annotation"),
            ("process never by fallback", spec(Kubernetes, K::Pod, &[]), node(None, None, false, false), Policy::default(), Err("no engine on this node can run Pod"), false, ""),
            ("process by annotation", spec(Kubernetes, K::Pod, &[(eng, "process")]), node(None, None, false, false), Policy::default(), Ok("process"), false, "annotation"),
            ("vm refused without qemu", spec(Beemesh, K::VirtualMachine, &[]), node(Some(true), Some(true), true, true), Policy::default(), Err("VirtualMachine implies qemu, but qemu is not available"), false, ""),
            ("function needs wasm or mock", spec(Beemesh, K::Function, &[]), node(Some(true), Some(true), false, false), Policy::default(), Err("no engine on this node can run Function"), false, ""),
            ("annotation engine cannot run kind", spec(Beemesh, K::Function, &[(eng, "podman")]), node(Some(true), None, true, false), Policy::default(), Ok("wasm"), true, "podman cannot run a Function"),
        ];
        for (case, spec, engines, policy, want, fallback, reason) in cases {
            let got = select(&spec, &engines, &policy);
            match (want, got) {
                (Ok(name), Ok(sel)) => {
                    assert_eq!(sel.engine, name, "{case}: {}", sel.reason);
                    assert_eq!(sel.fallback, fallback, "{case}: {}", sel.reason);
                    assert!(
                        sel.reason.contains(reason),
                        "{case}: reason {:?} lacks {reason:?}",
                        sel.reason
                    );
                }
                (Err(msg), Err(NoEngine(e))) => {
                    assert!(e.contains(msg), "{case}: error {e:?} lacks {msg:?}")
                }
                (want, got) => panic!("{case}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn is_pure() {
        let s = spec(Kubernetes, K::Pod, &[]);
        let n = node(Some(false), Some(true), false, true);
        assert_eq!(
            select(&s, &n, &Policy::default()),
            select(&s, &n, &Policy::default())
        );
    }
}
