//! `apiVersion: beemesh.io/v1` kinds: `Function` (a WASM module) and `VirtualMachine`.
//! This is the mesh's own format, so unknown fields are errors rather than warnings.

use mesh_protocol::spec::{
    EnvVar, JobSpec, Module, ModuleSource, RestartPolicy, SourceFormat, VirtualMachine,
    WorkloadKind, WorkloadSpec,
};
use serde_yaml::Value;

use crate::error::{Error, ErrorKind};
use crate::meta;
use crate::node::{check_keys, MapNode, Node, Result, Warnings};
use crate::quantity;

const API_VERSION: &str = "beemesh.io/v1";

/// Parses a beemesh.io object.
pub(crate) fn parse(object: &MapNode<'_>, api_version: &str, kind: &str) -> Result<WorkloadSpec> {
    let unsupported = |reason: &str| {
        Error::new(ErrorKind::UnsupportedKind {
            kind: kind.to_string(),
            api_version: api_version.to_string(),
            reason: reason.to_string(),
        })
    };
    if api_version != API_VERSION {
        return Err(unsupported("unknown version: use beemesh.io/v1"));
    }
    let workload_kind = match kind {
        "Function" => WorkloadKind::Function,
        "VirtualMachine" => WorkloadKind::VirtualMachine,
        _ => {
            return Err(unsupported(
                "beemesh.io/v1 kinds are Function and VirtualMachine",
            ))
        }
    };
    check_keys(
        object,
        &["apiVersion", "kind", "metadata", "spec", "status"],
    )?;
    let mut warnings = Warnings::default();
    let meta = meta::parse(object)?;
    let spec_node = object.req("spec")?.map()?;
    let mut out = WorkloadSpec::new(
        meta.name,
        meta.namespace,
        workload_kind,
        SourceFormat::Beemesh,
    );
    out.labels = meta.labels;
    if workload_kind == WorkloadKind::Function {
        function(&spec_node, &mut out, &mut warnings)?;
    } else {
        virtual_machine(&spec_node, &mut out)?;
    }
    meta::finish(&mut out, &meta.annotations, &mut warnings)?;
    out.warnings = warnings.into_vec();
    Ok(out)
}

fn function(spec: &MapNode<'_>, out: &mut WorkloadSpec, warnings: &mut Warnings) -> Result<()> {
    check_keys(
        spec,
        &[
            "module",
            "args",
            "env",
            "memory",
            "timeout",
            "restartPolicy",
            "runToCompletion",
            "backoffLimit",
            "activeDeadlineSeconds",
            "outputs",
            "runtime",
            "handler",
        ],
    )?;
    let source = module_source(&spec.req("module")?)?;
    for field in ["runtime", "handler"] {
        if let Some(n) = spec.get(field) {
            warnings.at(
                &n.path,
                "not honoured: a Function runs the WASM module in spec.module",
            );
        }
    }
    let timeout_ms = match spec.get("timeout") {
        Some(n) => {
            let d = mesh_protocol::duration::parse(n.str()?).map_err(|e| n.err(e.to_string()))?;
            Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        }
        None => None,
    };
    let module = Module {
        source,
        args: spec
            .get("args")
            .map(|n| n.strings())
            .transpose()?
            .unwrap_or_default(),
        env: spec
            .get("env")
            .map(|n| env(&n))
            .transpose()?
            .unwrap_or_default(),
        memory_bytes: spec
            .get("memory")
            .map(|n| quantity::memory_at(&n))
            .transpose()?,
        timeout_ms,
    };
    out.resources.memory_bytes = module.memory_bytes;
    out.module = Some(module);
    out.restart_policy = restart_policy(spec, RestartPolicy::Never)?;
    let run_to_completion = match spec.get("runToCompletion") {
        Some(n) => {
            let wanted = n.bool()?;
            if wanted && out.restart_policy == RestartPolicy::Always {
                return Err(
                    n.err("a Function that runs to completion cannot use restartPolicy Always")
                );
            }
            wanted
        }
        None => out.restart_policy != RestartPolicy::Always,
    };
    let backoff_limit = spec.get("backoffLimit").map(|n| n.u32()).transpose()?;
    let deadline = spec
        .get("activeDeadlineSeconds")
        .map(|n| n.u64())
        .transpose()?;
    let outputs = match spec.get("outputs") {
        Some(n) => {
            let list = n.strings()?;
            for (i, p) in list.iter().enumerate() {
                mesh_protocol::job::check_output_path(p).map_err(|e| n.path.index(i).err(e))?;
            }
            if list.len() > mesh_protocol::job::MAX_OUTPUTS {
                return Err(n.err(format!(
                    "{} outputs; at most {}",
                    list.len(),
                    mesh_protocol::job::MAX_OUTPUTS
                )));
            }
            let mut unique: Vec<String> = Vec::new();
            for p in list {
                if !unique.contains(&p) {
                    unique.push(p);
                }
            }
            unique
        }
        None => Vec::new(),
    };
    if run_to_completion {
        out.job = Some(JobSpec {
            backoff_limit,
            active_deadline_ms: deadline.map(|s| s.saturating_mul(1000)),
            completions: None,
            outputs,
        });
    } else {
        for field in ["backoffLimit", "activeDeadlineSeconds", "outputs"] {
            if let Some(n) = spec.get(field) {
                warnings.at(
                    &n.path,
                    "not honoured: the Function does not run to completion",
                );
            }
        }
    }
    Ok(())
}

/// A path, or `sha256:` and 64 lowercase hex digits.
fn module_source(node: &Node<'_>) -> Result<ModuleSource> {
    let text = node.non_empty_str()?;
    match text.strip_prefix("sha256:") {
        Some(hex) => {
            let valid = hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !valid {
                return Err(
                    node.err("invalid digest: expected sha256: and 64 lowercase hex digits")
                );
            }
            Ok(ModuleSource::Digest(text.to_string()))
        }
        None => Ok(ModuleSource::Path(text.to_string())),
    }
}

/// `env` as a list of `{name, value}` or a mapping.
fn env(node: &Node<'_>) -> Result<Vec<EnvVar>> {
    let pairs: Vec<(String, String)> = match node.value {
        Value::Sequence(_) => node
            .seq()?
            .iter()
            .map(|item| {
                let m = item.map()?;
                check_keys(&m, &["name", "value"])?;
                let value = m.get("value").map(|v| v.scalar_string()).transpose()?;
                Ok((
                    m.req("name")?.non_empty_str()?.to_string(),
                    value.unwrap_or_default(),
                ))
            })
            .collect::<Result<_>>()?,
        _ => node
            .map()?
            .entries()?
            .into_iter()
            .map(|(k, v)| {
                let value = if v.value.is_null() {
                    String::new()
                } else {
                    v.scalar_string()?
                };
                Ok((k.to_string(), value))
            })
            .collect::<Result<_>>()?,
    };
    Ok(pairs
        .into_iter()
        .map(|(name, value)| EnvVar {
            name,
            value: Some(value),
            value_from: None,
        })
        .collect())
}

fn restart_policy(spec: &MapNode<'_>, default: RestartPolicy) -> Result<RestartPolicy> {
    let Some(node) = spec.get("restartPolicy") else {
        return Ok(default);
    };
    match node.str()? {
        "Always" => Ok(RestartPolicy::Always),
        "OnFailure" => Ok(RestartPolicy::OnFailure),
        "Never" => Ok(RestartPolicy::Never),
        other => Err(node.err(format!(
            "unknown restart policy {other:?}: use Always, OnFailure or Never"
        ))),
    }
}

fn virtual_machine(spec: &MapNode<'_>, out: &mut WorkloadSpec) -> Result<()> {
    check_keys(spec, &["image", "vcpus", "memory", "disk", "restartPolicy"])?;
    let vcpus = match spec.get("vcpus") {
        Some(n) if n.u32()? == 0 => return Err(n.err("must be at least 1")),
        Some(n) => Some(n.u32()?),
        None => None,
    };
    let vm = VirtualMachine {
        image: spec.req("image")?.non_empty_str()?.to_string(),
        vcpus,
        memory_bytes: spec
            .get("memory")
            .map(|n| quantity::memory_at(&n))
            .transpose()?,
        disk_bytes: spec
            .get("disk")
            .map(|n| quantity::memory_at(&n))
            .transpose()?,
    };
    out.resources.cpu_millis = vcpus.map(|v| u64::from(v) * 1000);
    out.resources.memory_bytes = vm.memory_bytes;
    out.vm = Some(vm);
    out.restart_policy = restart_policy(spec, RestartPolicy::Always)?;
    Ok(())
}
