//! Compose `deploy` (replicas, resource limits and reservations, restart policy) and the
//! older per-service spellings of the same settings (`cpus`, `mem_limit`,
//! `mem_reservation`, `scale`).

use mesh_protocol::spec::{Container, ResourceAmounts, RestartPolicy};

use crate::node::{check_keys, warn_ignored, MapNode, Result, Warnings};
use crate::quantity;

const DEPLOY_KEYS: &[&str] = &[
    "mode",
    "replicas",
    "labels",
    "placement",
    "resources",
    "restart_policy",
    "rollback_config",
    "update_config",
    "endpoint_mode",
];

const DEPLOY_IGNORED: &[(&str, &str)] = &[
    ("labels", "service labels are not kept; use labels"),
    ("placement", "placement is decided by the mesh"),
    (
        "rollback_config",
        "the mesh rolls back to the last healthy version",
    ),
    ("update_config", "the mesh updates a workload as a whole"),
    ("endpoint_mode", "the mesh has no service endpoints"),
];

/// Applies `deploy` and the legacy resource keys of service mapping `m` to `c`.
pub(crate) fn apply(m: &MapNode<'_>, c: &mut Container, warnings: &mut Warnings) -> Result<()> {
    let mut replicas = None;
    if let Some(deploy) = m.get("deploy") {
        let d = deploy.map()?;
        check_keys(&d, DEPLOY_KEYS)?;
        replicas = d.get("replicas").map(|n| n.lenient_u32()).transpose()?;
        if let Some(mode) = d.get("mode") {
            match mode.str()? {
                "replicated" => {}
                "global" => warnings.at(
                    &mode.path,
                    "not honoured: the service runs deploy.replicas copies (default 1)",
                ),
                other => {
                    return Err(
                        mode.err(format!("unknown mode {other:?}: use replicated or global"))
                    )
                }
            }
        }
        warn_ignored(&d, DEPLOY_IGNORED, warnings);
        if let Some(resources) = d.get("resources") {
            let r = resources.map()?;
            check_keys(&r, &["limits", "reservations"])?;
            if let Some(limits) = r.get("limits") {
                c.resources.limits =
                    amounts(&limits.map()?, &["cpus", "memory", "pids"], warnings)?;
            }
            if let Some(reservations) = r.get("reservations") {
                let allowed = ["cpus", "memory", "devices", "generic_resources"];
                c.resources.requests = amounts(&reservations.map()?, &allowed, warnings)?;
            }
        }
        if let Some(policy) = d.get("restart_policy") {
            let p = policy.map()?;
            check_keys(&p, &["condition", "delay", "max_attempts", "window"])?;
            if let Some(condition) = p.get("condition") {
                let parsed = match condition.str()? {
                    "none" => RestartPolicy::Never,
                    "on-failure" => RestartPolicy::OnFailure,
                    "any" => RestartPolicy::Always,
                    other => {
                        return Err(condition.err(format!(
                            "unknown condition {other:?}: use none, on-failure or any"
                        )))
                    }
                };
                c.restart.get_or_insert(parsed);
            }
            warn_ignored(
                &p,
                &[
                    ("delay", "the engine's restart delay applies"),
                    ("max_attempts", "it restarts on every failure"),
                    ("window", "the engine's restart delay applies"),
                ],
                warnings,
            );
        }
    }
    if let Some(n) = m.get("cpus") {
        let cpu = quantity::cpu_at(&n)?;
        c.resources.limits.cpu_millis.get_or_insert(cpu);
    }
    if let Some(n) = m.get("mem_limit") {
        let bytes = quantity::compose_bytes_at(&n)?;
        c.resources.limits.memory_bytes.get_or_insert(bytes);
    }
    if let Some(n) = m.get("mem_reservation") {
        let bytes = quantity::compose_bytes_at(&n)?;
        c.resources.requests.memory_bytes.get_or_insert(bytes);
    }
    if let Some(n) = m.get("scale") {
        let scale = n.lenient_u32()?;
        match replicas {
            Some(r) if r != scale => {
                return Err(n.err(format!("scale {scale} conflicts with deploy.replicas {r}")))
            }
            _ => replicas = Some(scale),
        }
    }
    c.replicas = replicas;
    Ok(())
}

fn amounts(m: &MapNode<'_>, allowed: &[&str], warnings: &mut Warnings) -> Result<ResourceAmounts> {
    check_keys(m, allowed)?;
    let mut out = ResourceAmounts::default();
    if let Some(n) = m.get("cpus") {
        out.cpu_millis = Some(quantity::cpu_at(&n)?);
    }
    if let Some(n) = m.get("memory") {
        out.memory_bytes = Some(quantity::compose_bytes_at(&n)?);
    }
    warn_ignored(
        m,
        &[
            ("pids", "the engine's process limit applies"),
            (
                "devices",
                "device and GPU reservations are not scheduled by the mesh",
            ),
            ("generic_resources", "only cpus and memory are scheduled"),
        ],
        warnings,
    );
    Ok(out)
}
