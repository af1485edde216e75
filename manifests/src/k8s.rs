//! Kubernetes Pod, Deployment, Job and DaemonSet → [`WorkloadSpec`]: object and pod-template
//! metadata, the pod spec, replicas and Job settings. Containers are in
//! [`crate::k8s_container`], volumes in [`crate::k8s_volumes`], ConfigMaps and Secrets in
//! [`crate::k8s_config`].

use std::collections::BTreeSet;

use mesh_protocol::spec::{
    Amount, Container, JobSpec, ResourceAmounts, RestartPolicy, Rollout, SourceFormat,
    WorkloadKind, WorkloadSpec,
};

use crate::k8s_container;
use crate::k8s_volumes::PodVolumes;
use crate::meta;
use crate::node::{warn_ignored, warn_unknown, MapNode, Node, Result, Warnings};

/// Pod spec fields that are read.
const POD_HONOURED: &[&str] = &["containers", "initContainers", "volumes", "restartPolicy"];

/// Pod spec fields that are recognised but not honoured, with the reason.
const POD_IGNORED: &[(&str, &str)] = &[
    ("hostNetwork", "workloads use the engine's default network"),
    ("hostPID", "workloads get their own process namespace"),
    ("hostIPC", "workloads get their own IPC namespace"),
    ("affinity", "placement is decided by the mesh"),
    ("nodeSelector", "placement is decided by the mesh"),
    ("nodeName", "placement is decided by the mesh"),
    ("tolerations", "the mesh has no taints"),
    (
        "topologySpreadConstraints",
        "placement is decided by the mesh",
    ),
    ("priorityClassName", "the mesh has no priorities"),
    ("serviceAccountName", "the mesh has no service accounts"),
    ("serviceAccount", "the mesh has no service accounts"),
    ("securityContext", "the engine's defaults apply"),
    (
        "imagePullSecrets",
        "registry credentials are configured on each node",
    ),
    ("hostAliases", "the mesh does not edit /etc/hosts"),
    ("dnsConfig", "the engine's DNS settings apply"),
    (
        "runtimeClassName",
        "use the beemesh.io/runtime-engine annotation",
    ),
    ("shareProcessNamespace", "the engine's defaults apply"),
    ("hostname", "the engine names the host"),
    ("subdomain", "the mesh has no cluster DNS"),
    ("setHostnameAsFQDN", "the mesh has no cluster DNS"),
    ("activeDeadlineSeconds", "use a Job's activeDeadlineSeconds"),
    (
        "terminationGracePeriodSeconds",
        "engines use their own stop timeout",
    ),
    ("readinessGates", "the mesh has no readiness gates"),
    ("ephemeralContainers", "debug containers are not supported"),
    ("overhead", "the mesh has no runtime classes"),
    ("os", "placement is decided by the mesh"),
    ("schedulingGates", "placement is decided by the mesh"),
    ("resourceClaims", "dynamic resources are not supported"),
    ("hostUsers", "the engine's defaults apply"),
];

/// Pod spec fields accepted silently: their usual values change nothing in the mesh.
const POD_SILENT: &[&str] = &[
    "dnsPolicy",
    "schedulerName",
    "enableServiceLinks",
    "automountServiceAccountToken",
    "priority",
    "preemptionPolicy",
];

/// Controller spec fields that are read, or recognised and without effect in the mesh.
fn controller_fields(kind: WorkloadKind) -> &'static [&'static str] {
    match kind {
        WorkloadKind::Deployment => &[
            "selector",
            "template",
            "replicas",
            "strategy",
            "minReadySeconds",
            "revisionHistoryLimit",
            "progressDeadlineSeconds",
            "paused",
        ],
        WorkloadKind::DaemonSet => &[
            "selector",
            "template",
            "updateStrategy",
            "minReadySeconds",
            "revisionHistoryLimit",
        ],
        _ => &[
            "selector",
            "template",
            "manualSelector",
            "backoffLimit",
            "activeDeadlineSeconds",
            "completions",
        ],
    }
}

const JOB_IGNORED: &[(&str, &str)] = &[
    ("parallelism", "a Job runs one pod at a time"),
    (
        "ttlSecondsAfterFinished",
        "finished Jobs are kept until deleted",
    ),
    ("completionMode", "a Job runs one pod at a time"),
    ("suspend", "apply the Job when it should run"),
    ("podFailurePolicy", "backoffLimit alone decides retries"),
    ("backoffLimitPerIndex", "a Job runs one pod at a time"),
    ("maxFailedIndexes", "a Job runs one pod at a time"),
    ("successPolicy", "a Job succeeds when its pod does"),
    ("podReplacementPolicy", "a Job runs one pod at a time"),
];

/// Parses a Pod, Deployment, Job or DaemonSet.
pub(crate) fn parse_workload(object: &MapNode<'_>, kind: WorkloadKind) -> Result<WorkloadSpec> {
    let mut warnings = Warnings::default();
    let mut meta = meta::parse(object)?;
    let spec = object.req("spec")?.map()?;
    let pod = if kind == WorkloadKind::Pod {
        spec.clone()
    } else {
        let template = spec.req("template")?.map()?;
        if let Some(template_meta) = template.get("metadata") {
            meta::merge_labels_and_annotations(&mut meta, &template_meta.map()?)?;
        }
        template.req("spec")?.map()?
    };
    let meta::Meta {
        name,
        namespace,
        labels,
        annotations,
    } = meta;
    let mut out = WorkloadSpec::new(name, namespace, kind, SourceFormat::Kubernetes);
    out.labels = labels;
    parse_pod_spec(&pod, kind, &mut out, &mut warnings)?;
    match kind {
        WorkloadKind::Deployment => {
            let replicas = spec.get("replicas").map(|n| n.u32()).transpose()?;
            out.replicas = Some(replicas.unwrap_or(1));
            out.rollout = spec
                .get("strategy")
                .map(|n| rollout(&n, &mut warnings))
                .transpose()?;
        }
        WorkloadKind::Job => {
            out.job = Some(job_spec(&spec, &mut warnings)?);
            warn_ignored(&spec, JOB_IGNORED, &mut warnings);
        }
        _ => {}
    }
    if kind != WorkloadKind::Pod {
        let job_fields: Vec<&str> = match kind {
            WorkloadKind::Job => JOB_IGNORED.iter().map(|(k, _)| *k).collect(),
            _ => Vec::new(),
        };
        warn_unknown(
            &spec,
            &[controller_fields(kind), &job_fields],
            &mut warnings,
        );
    }
    out.resources = pod_resources(&out.containers, &out.init_containers);
    meta::finish(&mut out, &annotations, &mut warnings)?;
    out.warnings = warnings.into_vec();
    Ok(out)
}

/// A Deployment's `strategy`: `Recreate` updates every replica at once, `RollingUpdate` at
/// most `maxUnavailable` at a time (Kubernetes' default 25 %). Each replica is replaced in
/// place on its node, so `maxSurge` (extra replicas during the update) is not honoured.
fn rollout(node: &Node<'_>, warnings: &mut Warnings) -> Result<Rollout> {
    let m = node.map()?;
    let kind = m
        .get("type")
        .map(|t| t.non_empty_str().map(str::to_string))
        .transpose()?;
    let rolling = m.get("rollingUpdate");
    match kind.as_deref() {
        Some("Recreate") => {
            if let Some(r) = rolling {
                return Err(r.err("is only allowed with type RollingUpdate"));
            }
            Ok(Rollout::Recreate)
        }
        Some("RollingUpdate") | None => {
            let mut max_unavailable = Amount::Percent(25);
            if let Some(r) = rolling {
                let r = r.map()?;
                if let Some(n) = r.get("maxUnavailable") {
                    max_unavailable = amount(&n)?;
                }
                if let Some(n) = r.get("maxSurge") {
                    if amount(&n)? != Amount::Count(0) && amount(&n)? != Amount::Percent(0) {
                        warnings.at(
                            &n.path,
                            "not honoured: each replica is updated in place on its node, without \
                             extra replicas",
                        );
                    }
                }
            }
            Ok(Rollout::Rolling { max_unavailable })
        }
        Some(other) => Err(m.req("type")?.err(format!(
            "unknown strategy {other:?}: RollingUpdate or Recreate"
        ))),
    }
}

/// `2` or `"25%"`.
fn amount(node: &Node<'_>) -> Result<Amount> {
    let text = node.scalar_string()?;
    match text.strip_suffix('%') {
        Some(p) => p
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|p| *p <= 100)
            .map(Amount::Percent)
            .ok_or_else(|| node.err(format!("{text:?} is not a percentage from 0% to 100%"))),
        None => text
            .trim()
            .parse::<u32>()
            .map(Amount::Count)
            .map_err(|_| node.err(format!("{text:?} is neither a count nor a percentage"))),
    }
}

fn job_spec(spec: &MapNode<'_>, warnings: &mut Warnings) -> Result<JobSpec> {
    let seconds = spec
        .get("activeDeadlineSeconds")
        .map(|n| n.u64())
        .transpose()?;
    let completions = spec.get("completions");
    if let Some(n) = &completions {
        if n.u32()? > 1 {
            warnings.at(
                &n.path,
                "not honoured: a Job runs until one attempt succeeds (completions 1)",
            );
        }
    }
    Ok(JobSpec {
        backoff_limit: spec.get("backoffLimit").map(|n| n.u32()).transpose()?,
        active_deadline_ms: seconds.map(|s| s.saturating_mul(1000)),
        completions: completions.map(|n| n.u32()).transpose()?,
        outputs: Vec::new(),
    })
}

fn parse_pod_spec(
    pod: &MapNode<'_>,
    kind: WorkloadKind,
    out: &mut WorkloadSpec,
    warnings: &mut Warnings,
) -> Result<()> {
    let volumes = PodVolumes::parse(pod, warnings)?;
    let containers = pod.req("containers")?;
    let list = containers.seq()?;
    if list.is_empty() {
        return Err(containers.err("must list at least one container"));
    }
    for node in &list {
        out.containers
            .push(k8s_container::parse(node, &volumes, warnings)?);
    }
    if let Some(init) = pod.get("initContainers") {
        for node in &init.seq()? {
            out.init_containers
                .push(k8s_container::parse(node, &volumes, warnings)?);
        }
    }
    check_unique_names(&out.containers, &out.init_containers, pod)?;
    out.restart_policy = restart_policy(pod, kind)?;
    out.volumes = volumes.volumes;
    out.host = crate::host_access::pod(pod);
    warn_ignored(pod, POD_IGNORED, warnings);
    let ignored: Vec<&str> = POD_IGNORED.iter().map(|(k, _)| *k).collect();
    warn_unknown(pod, &[POD_HONOURED, &ignored, POD_SILENT], warnings);
    Ok(())
}

fn check_unique_names(
    containers: &[Container],
    init: &[Container],
    pod: &MapNode<'_>,
) -> Result<()> {
    let mut seen = BTreeSet::new();
    for (field, list) in [("containers", containers), ("initContainers", init)] {
        for (i, c) in list.iter().enumerate() {
            if !seen.insert(c.name.as_str()) {
                let path = pod.path.key(field).index(i).key("name");
                return Err(path.err(format!("duplicate container name {:?}", c.name)));
            }
        }
    }
    Ok(())
}

fn restart_policy(pod: &MapNode<'_>, kind: WorkloadKind) -> Result<RestartPolicy> {
    let Some(node) = pod.get("restartPolicy") else {
        return Ok(match kind {
            WorkloadKind::Job => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        });
    };
    let policy = match node.str()? {
        "Always" => RestartPolicy::Always,
        "OnFailure" => RestartPolicy::OnFailure,
        "Never" => RestartPolicy::Never,
        other => {
            return Err(node.err(format!(
                "unknown restart policy {other:?}: use Always, OnFailure or Never"
            )))
        }
    };
    match (kind, policy) {
        (WorkloadKind::Deployment | WorkloadKind::DaemonSet, p) if p != RestartPolicy::Always => {
            Err(node.err(format!(
                "a {kind} restarts its pods: only Always is allowed"
            )))
        }
        (WorkloadKind::Job, RestartPolicy::Always) => {
            Err(node.err("a Job runs to completion: use OnFailure or Never"))
        }
        _ => Ok(policy),
    }
}

/// Kubernetes' effective pod request: the larger of the sum over containers and the
/// largest init container (they run one at a time, before the others). Each container
/// counts its request, or its limit where it states no request.
pub(crate) fn pod_resources(containers: &[Container], init: &[Container]) -> ResourceAmounts {
    fn amount(c: &Container) -> ResourceAmounts {
        let r = &c.resources;
        ResourceAmounts {
            cpu_millis: r.requests.cpu_millis.or(r.limits.cpu_millis),
            memory_bytes: r.requests.memory_bytes.or(r.limits.memory_bytes),
        }
    }
    fn add(a: Option<u64>, b: Option<u64>) -> Option<u64> {
        match (a, b) {
            (Some(x), Some(y)) => Some(x.saturating_add(y)),
            (x, y) => x.or(y),
        }
    }
    let mut sum = ResourceAmounts::default();
    for c in containers.iter().map(amount) {
        sum.cpu_millis = add(sum.cpu_millis, c.cpu_millis);
        sum.memory_bytes = add(sum.memory_bytes, c.memory_bytes);
    }
    for c in init.iter().map(amount) {
        sum.cpu_millis = sum.cpu_millis.max(c.cpu_millis);
        sum.memory_bytes = sum.memory_bytes.max(c.memory_bytes);
    }
    sum
}
