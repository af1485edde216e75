//! From a Function's [`WorkloadSpec`] to what the runner needs: the module digest, argv,
//! resolved environment, limits and restart behaviour. Everything that can be refused is
//! refused here, at Validate, with the field path.

use mesh_protocol::spec::{ModuleSource, RestartPolicy};
use mesh_protocol::WorkloadSpec;

use crate::digest::Digest;

/// Memory limit of a guest whose spec states none (`spec.memory`).
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 256 * 1024 * 1024;

/// Smallest memory limit accepted: one wasm page.
pub const MIN_MEMORY_LIMIT_BYTES: u64 = 64 * 1024;

/// What the engine runs for one Function.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub digest: Digest,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub memory_limit_bytes: u64,
    pub timeout_ms: Option<u64>,
    pub restart_policy: RestartPolicy,
    pub runs_to_completion: bool,
}

/// The plan of `spec`, or the reason it cannot run on this engine.
pub fn plan(spec: &WorkloadSpec) -> Result<Plan, String> {
    let module = spec
        .module
        .as_ref()
        .ok_or("spec.module: missing: the wasm engine runs Functions with a module")?;
    let digest = match &module.source {
        ModuleSource::Digest(d) => Digest::parse(d).map_err(|e| format!("spec.module: {e}"))?,
        ModuleSource::Path(p) => {
            return Err(format!(
                "spec.module: {p:?} is a path; nodes only accept content-addressed modules \
                 (sha256:<hex>): apply it with meshctl, which bundles the module and sends its digest"
            ))
        }
    };
    let memory_limit_bytes = module.memory_bytes.unwrap_or(DEFAULT_MEMORY_LIMIT_BYTES);
    if memory_limit_bytes < MIN_MEMORY_LIMIT_BYTES {
        return Err(format!(
            "spec.memory: {memory_limit_bytes} bytes is below one wasm page ({MIN_MEMORY_LIMIT_BYTES} bytes)"
        ));
    }
    let env = mesh_runtime::host::resolve_env(spec, &module.env, "spec")?;
    let job_deadline = spec.job.as_ref().and_then(|j| j.active_deadline_ms);
    let timeout_ms = match (module.timeout_ms, job_deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(Plan {
        digest,
        args: module.args.clone(),
        env,
        memory_limit_bytes,
        timeout_ms,
        restart_policy: spec.restart_policy,
        runs_to_completion: spec.runs_to_completion(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_protocol::spec::{EnvSource, EnvVar, JobSpec, Module, SourceFormat};
    use mesh_protocol::WorkloadKind;

    fn function(source: ModuleSource) -> WorkloadSpec {
        let mut spec = WorkloadSpec::new(
            "f",
            "default",
            WorkloadKind::Function,
            SourceFormat::Beemesh,
        );
        spec.module = Some(Module {
            source,
            args: vec!["a".into()],
            env: vec![EnvVar {
                name: "WHO".into(),
                value: None,
                value_from: Some(EnvSource::Field {
                    path: "metadata.name".into(),
                }),
            }],
            memory_bytes: None,
            timeout_ms: Some(5_000),
        });
        spec.job = Some(JobSpec {
            active_deadline_ms: Some(2_000),
            ..JobSpec::default()
        });
        spec.seal()
    }

    #[test]
    fn digest_modules_plan_and_paths_are_refused() {
        let d = Digest::of(b"m");
        let p = plan(&function(ModuleSource::Digest(d.to_string()))).expect("plans");
        assert_eq!(p.digest, d);
        assert_eq!(p.env, vec![("WHO".to_string(), "f".to_string())]);
        assert_eq!(p.timeout_ms, Some(2_000));
        assert_eq!(p.memory_limit_bytes, DEFAULT_MEMORY_LIMIT_BYTES);
        assert!(p.runs_to_completion);
        let err = plan(&function(ModuleSource::Path("./m.wasm".into()))).expect_err("path");
        assert!(err.contains("content-addressed"), "{err}");
        let err = plan(&function(ModuleSource::Digest("sha256:zz".into()))).expect_err("bad");
        assert!(err.contains("invalid module digest"), "{err}");
    }
}
