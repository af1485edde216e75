//! From a workload's containers to native commands: argv (`command` + `args`, the image is
//! ignored), environment (resolved), working directory. Refusals happen here, at Validate,
//! with the field path.

use mesh_protocol::spec::Container;
use mesh_protocol::WorkloadSpec;
use serde::{Deserialize, Serialize};

/// `PATH` given to commands when the node has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One container as a host command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub name: String,
    /// Program and arguments: `command` then `args` (or `args` alone when there is no
    /// `command`: its first word is the program).
    pub argv: Vec<String>,
    /// The container's environment, resolved (added to `PATH` and `HOME`).
    pub env: Vec<(String, String)>,
    /// `workingDir` when given (must exist on the host), else a private directory.
    pub working_dir: Option<String>,
}

/// The commands of `spec`: init containers (run in order to completion by `start`) and
/// containers (run side by side).
pub fn plan(spec: &WorkloadSpec) -> Result<(Vec<Command>, Vec<Command>), String> {
    if spec.containers.is_empty() {
        return Err("spec.containers: empty: the process engine runs containers' commands".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut convert = |list: &[Container], field: &str| -> Result<Vec<Command>, String> {
        list.iter()
            .enumerate()
            .map(|(i, c)| {
                let at = format!("{field}[{i}] ({})", c.name);
                if c.name.is_empty()
                    || c.name.contains(['/', '\0'])
                    || c.name.starts_with('.')
                    || !seen.insert(c.name.clone())
                {
                    return Err(format!(
                        "{at}: name must be unique and usable as a file name"
                    ));
                }
                command(spec, c, &at)
            })
            .collect()
    };
    let init = convert(&spec.init_containers, "spec.initContainers")?;
    let main = convert(&spec.containers, "spec.containers")?;
    Ok((init, main))
}

fn command(spec: &WorkloadSpec, c: &Container, at: &str) -> Result<Command, String> {
    let argv: Vec<String> = c.command.iter().chain(&c.args).cloned().collect();
    if argv.first().is_none_or(|p| p.is_empty()) {
        return Err(format!(
            "{at}: no command: the process engine ignores the image ({}) and runs `command` + `args` on the host",
            c.image
        ));
    }
    if let Some(dir) = &c.working_dir {
        if !dir.starts_with('/') {
            return Err(format!(
                "{at}.workingDir: {dir:?} must be an absolute host path"
            ));
        }
    }
    Ok(Command {
        name: c.name.clone(),
        argv,
        env: resolve_env(spec, &c.env, at)?,
        working_dir: c.working_dir.clone(),
    })
}

pub use mesh_runtime::host::resolve_env;

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_protocol::spec::{EnvSource, EnvVar, SourceFormat};
    use mesh_protocol::WorkloadKind;

    fn pod(containers: Vec<Container>) -> WorkloadSpec {
        let mut spec =
            WorkloadSpec::new("p", "default", WorkloadKind::Pod, SourceFormat::Kubernetes);
        spec.containers = containers;
        spec
    }

    #[test]
    fn command_and_args_make_argv_and_images_are_ignored() {
        let spec = pod(vec![Container {
            name: "a".into(),
            image: "busybox".into(),
            command: vec!["sh".into(), "-c".into()],
            args: vec!["echo $X".into()],
            env: vec![EnvVar {
                name: "X".into(),
                value: None,
                value_from: Some(EnvSource::Field {
                    path: "metadata.namespace".into(),
                }),
            }],
            ..Container::default()
        }]);
        let (init, main) = plan(&spec).expect("plans");
        assert!(init.is_empty());
        assert_eq!(main[0].argv, ["sh", "-c", "echo $X"]);
        assert_eq!(main[0].env, [("X".to_string(), "default".to_string())]);
    }

    #[test]
    fn missing_command_and_relative_dirs_are_refused() {
        let err = plan(&pod(vec![Container {
            name: "a".into(),
            image: "nginx".into(),
            ..Container::default()
        }]))
        .expect_err("no command");
        assert!(err.contains("ignores the image (nginx)"), "{err}");
        let err = plan(&pod(vec![Container {
            name: "a".into(),
            command: vec!["true".into()],
            working_dir: Some("rel".into()),
            ..Container::default()
        }]))
        .expect_err("relative");
        assert!(err.contains("absolute"), "{err}");
        assert!(plan(&pod(vec![])).is_err());
    }
}
