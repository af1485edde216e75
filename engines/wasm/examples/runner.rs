//! The wasm runner for this crate's own tests (`cargo test` builds examples): the same code
//! as the `mesh-wasm-runner` binary of the node package, which is what meshd runs.

fn main() -> std::process::ExitCode {
    mesh_engine_wasm::runner::bin_main()
}
