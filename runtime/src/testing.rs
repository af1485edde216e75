//! Helpers for tests that need a real engine daemon.
//!
//! A test that needs Podman or Docker calls [`engine_available`] with the result of its own
//! probe: when the daemon is absent the test prints why and skips, unless
//! `MESH_REQUIRE_ENGINES` (comma-separated, as CI sets it) names the engine, in which case
//! it fails. Engine tests therefore cannot skip silently in CI.

/// Environment variable listing engines whose tests must not skip.
pub const REQUIRE_ENV: &str = "MESH_REQUIRE_ENGINES";

/// Whether `MESH_REQUIRE_ENGINES` names `engine`.
pub fn engine_required(engine: &str) -> bool {
    std::env::var(REQUIRE_ENV)
        .map(|v| v.split(',').any(|e| e.trim().eq_ignore_ascii_case(engine)))
        .unwrap_or(false)
}

/// Decides whether a test that needs `engine` runs. `probe` is `Ok` when the daemon answered,
/// or `Err(why)`. Returns `true` to run; prints and returns `false` to skip; panics when the
/// engine is required and absent.
pub fn engine_available(engine: &str, probe: Result<(), String>) -> bool {
    match probe {
        Ok(()) => true,
        Err(why) if engine_required(engine) => {
            panic!("{engine} is required by {REQUIRE_ENV} but unavailable: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: {engine} unavailable ({why}); set {REQUIRE_ENV}={engine} to make this a failure");
            false
        }
    }
}
