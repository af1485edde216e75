//! Annotation keys understood by the mesh. They may sit on `metadata.annotations` of any
//! Kubernetes object, on `spec.template.metadata.annotations` of a Deployment, Job or DaemonSet,
//! on a beemesh.io/v1 object, or under `x-beemesh.annotations` / service `labels` in Compose.

/// Preferred runtime engine (`podman`, `docker`, `wasm`, `process`, `mock`, `qemu`).
pub const RUNTIME_ENGINE: &str = "beemesh.io/runtime-engine";
/// `"true"`: refuse to fall back when the preferred engine is unavailable.
pub const RUNTIME_ENGINE_STRICT: &str = "beemesh.io/runtime-engine-strict";
/// CPU hint in cores (`"2"`, `"0.5"`, `"500m"`).
pub const RESOURCES_CPU: &str = "beemesh.io/resources.cpu";
/// Memory hint (`"512Mi"`, `"4GB"`).
pub const RESOURCES_MEMORY: &str = "beemesh.io/resources.memory";

/// Run-to-completion workloads: comma-separated output files (`"result.txt, out/"`) collected
/// after a successful run, relative to the instance's working directory; a trailing `/`
/// collects a directory.
pub const OUTPUTS: &str = "beemesh.io/outputs";
/// Run-to-completion workloads: `"true"` keeps the last attempt's instance after the run
/// (removed with the workload) instead of removing it once its logs and outputs are collected.
pub const JOB_KEEP_INSTANCE: &str = "beemesh.io/job-keep-instance";

/// Mock engine: fail `start` with this message.
pub const MOCK_START_ERROR: &str = "beemesh.io/mock-start-error";
/// Mock engine: `start` takes this many milliseconds.
pub const MOCK_START_DELAY_MS: &str = "beemesh.io/mock-start-delay-ms";
/// Mock engine: `remove` takes this many milliseconds (a container daemon removing a pod).
pub const MOCK_REMOVE_DELAY_MS: &str = "beemesh.io/mock-remove-delay-ms";
/// Mock engine: `logs` takes this many milliseconds (Podman's first logs call after an exit
/// waits out the container's cleanup).
pub const MOCK_LOGS_DELAY_MS: &str = "beemesh.io/mock-logs-delay-ms";
/// Mock engine: the instance exits this many milliseconds after it started.
pub const MOCK_EXIT_AFTER_MS: &str = "beemesh.io/mock-exit-after-ms";
/// Mock engine: exit code used with [`MOCK_EXIT_AFTER_MS`] (default 0).
pub const MOCK_EXIT_CODE: &str = "beemesh.io/mock-exit-code";
/// Mock engine: exit codes of the workload's successive starts on this engine, comma-separated
/// (`"1,1,0"`: the first two runs fail, the third succeeds; later runs use the last code).
/// Wins over [`MOCK_EXIT_CODE`].
pub const MOCK_EXIT_CODES: &str = "beemesh.io/mock-exit-codes";
/// Mock engine: files a run writes in its working directory, `path=content` comma-separated
/// (`"result.txt=42, out/a.txt=hello"`).
pub const MOCK_OUTPUT_FILES: &str = "beemesh.io/mock-output-files";
/// Mock engine: `fail` makes the health check report unhealthy.
pub const MOCK_HEALTH: &str = "beemesh.io/mock-health";

/// Every annotation key above: used by the manifest parser to warn about misspelt
/// `beemesh.io/` keys.
pub const KNOWN: &[&str] = &[
    RUNTIME_ENGINE,
    RUNTIME_ENGINE_STRICT,
    RESOURCES_CPU,
    RESOURCES_MEMORY,
    OUTPUTS,
    JOB_KEEP_INSTANCE,
    MOCK_START_ERROR,
    MOCK_START_DELAY_MS,
    MOCK_REMOVE_DELAY_MS,
    MOCK_LOGS_DELAY_MS,
    MOCK_EXIT_AFTER_MS,
    MOCK_EXIT_CODE,
    MOCK_EXIT_CODES,
    MOCK_OUTPUT_FILES,
    MOCK_HEALTH,
];
