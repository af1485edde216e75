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

/// Mock engine: fail `start` with this message.
pub const MOCK_START_ERROR: &str = "beemesh.io/mock-start-error";
/// Mock engine: `start` takes this many milliseconds.
pub const MOCK_START_DELAY_MS: &str = "beemesh.io/mock-start-delay-ms";
/// Mock engine: the instance exits this many milliseconds after it started.
pub const MOCK_EXIT_AFTER_MS: &str = "beemesh.io/mock-exit-after-ms";
/// Mock engine: exit code used with [`MOCK_EXIT_AFTER_MS`] (default 0).
pub const MOCK_EXIT_CODE: &str = "beemesh.io/mock-exit-code";
/// Mock engine: `fail` makes the health check report unhealthy.
pub const MOCK_HEALTH: &str = "beemesh.io/mock-health";

/// Every annotation key above: used by the manifest parser to warn about misspelt
/// `beemesh.io/` keys.
pub const KNOWN: &[&str] = &[
    RUNTIME_ENGINE,
    RUNTIME_ENGINE_STRICT,
    RESOURCES_CPU,
    RESOURCES_MEMORY,
    MOCK_START_ERROR,
    MOCK_START_DELAY_MS,
    MOCK_EXIT_AFTER_MS,
    MOCK_EXIT_CODE,
    MOCK_HEALTH,
];
