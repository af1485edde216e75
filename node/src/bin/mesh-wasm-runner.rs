//! `mesh-wasm-runner`: runs one WASM guest in its own process for the node's wasm engine.
//! Speaks length-delimited JSON frames over stdin/stdout; see `engines/wasm/PROTOCOL.md`.
//! Built here, in the node package, so that `cargo install --path node` installs it next to
//! meshd, where meshd looks for it.

fn main() -> std::process::ExitCode {
    mesh_engine_wasm::runner::bin_main()
}
