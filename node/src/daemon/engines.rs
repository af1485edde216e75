//! The engines a node runs: named on the command line, or detected (`auto`).

use std::sync::Arc;

use anyhow::{bail, Context};
use mesh_runtime::mock::MockEngine;
use mesh_runtime::Engine;

use super::Config;
use crate::mesh::modules::MeshFetcher;

/// Engines this build of `meshd` can enable by name.
pub const KNOWN_ENGINES: &[&str] = &["podman", "docker", "wasm", "process", "mock"];

/// In an engine list, stands for the engines detected on this machine (`auto,process`).
pub const AUTO_ENGINES: &str = "auto";

/// Builds the engines named on the command line (`auto` adds the detected ones). The wasm
/// engine fetches missing modules through `fetcher`.
pub fn build_engines(
    names: &[String],
    config: &Config,
    fetcher: &Arc<MeshFetcher>,
) -> anyhow::Result<Vec<Arc<dyn Engine>>> {
    let mut out: Vec<Arc<dyn Engine>> = Vec::new();
    let mut names = names.to_vec();
    if let Some(i) = names.iter().position(|n| n == AUTO_ENGINES) {
        names.splice(i..=i, detected_engines(config));
    }
    names.dedup();
    for name in &names {
        match name.as_str() {
            "wasm" => {
                let found = config
                    .wasm_runner
                    .clone()
                    .or_else(mesh_engine_wasm::WasmEngine::find_runner);
                let runner = found.with_context(|| {
                    format!(
                        "the wasm engine needs its runner, {}, next to meshd or on PATH",
                        mesh_engine_wasm::RUNNER_BIN
                    )
                })?;
                let engine =
                    mesh_engine_wasm::WasmEngine::new(config.data_dir.join("wasm"), runner)
                        .map_err(|e| anyhow::anyhow!("wasm engine: {e}"))?
                        .with_fetcher(fetcher.clone());
                out.push(Arc::new(engine));
            }
            "process" => {
                let engine =
                    mesh_engine_process::ProcessEngine::new(config.data_dir.join("process"))
                        .map_err(|e| anyhow::anyhow!("process engine: {e}"))?;
                out.push(Arc::new(engine));
            }
            "mock" => {
                let dir = config.data_dir.join("mock");
                let engine = MockEngine::with_state_dir(&dir)
                    .with_context(|| format!("cannot open mock state in {}", dir.display()))?;
                out.push(Arc::new(engine));
            }
            "podman" => out.push(podman_engine(config)),
            "docker" => {
                let socket = config
                    .docker_socket
                    .clone()
                    .unwrap_or_else(mesh_engine_docker::default_socket);
                out.push(Arc::new(mesh_engine_docker::DockerEngine::connect(
                    "docker",
                    &socket,
                    config.data_dir.join("docker"),
                )));
            }
            other => bail!(
                "unknown engine {other:?} (this meshd knows: {})",
                KNOWN_ENGINES.join(", ")
            ),
        }
    }
    Ok(out)
}

/// Podman runs Kubernetes kinds through kube play, and Compose through its Docker-compatible
/// API (the Docker engine pointed at Podman's socket).
fn podman_engine(config: &Config) -> Arc<dyn Engine> {
    let socket = mesh_engine_podman::PodmanEngine::default_socket(config.podman_socket.as_deref());
    let compose = mesh_engine_docker::DockerEngine::connect(
        "podman",
        &socket,
        config.data_dir.join("podman-compose"),
    );
    Arc::new(mesh_engine_podman::PodmanEngine::connect(&socket).with_compose(Arc::new(compose)))
}

/// The real engines available on this machine: Podman and Docker when their daemon socket
/// exists, wasm when its runner binary is found. Availability after that is the periodic
/// fingerprint's business: a daemon that stops later turns its engine unhealthy. The process
/// engine is never detected: it is not sandboxed, so a node runs it only when named.
fn detected_engines(config: &Config) -> Vec<String> {
    let mut names = Vec::new();
    if mesh_engine_podman::PodmanEngine::default_socket(config.podman_socket.as_deref()).exists() {
        names.push("podman".to_string());
    }
    if config
        .docker_socket
        .clone()
        .unwrap_or_else(mesh_engine_docker::default_socket)
        .exists()
    {
        names.push("docker".to_string());
    }
    if names.is_empty() {
        tracing::warn!(
            "no container engine found (no Podman or Docker socket); name engines with --engines"
        );
    }
    if config.wasm_runner.is_some() || mesh_engine_wasm::WasmEngine::find_runner().is_some() {
        names.push("wasm".to_string());
    }
    tracing::info!(engines = ?names, "detected engines");
    names
}
