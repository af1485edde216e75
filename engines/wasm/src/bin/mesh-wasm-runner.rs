//! `mesh-wasm-runner`: runs one WASM guest in its own process for the node's wasm engine.
//! Speaks length-delimited JSON frames over stdin/stdout; see `engines/wasm/PROTOCOL.md`.

fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        println!(
            "mesh-wasm-runner {} (wasmtime {})",
            env!("CARGO_PKG_VERSION"),
            mesh_engine_wasm::WASMTIME_VERSION
        );
        return std::process::ExitCode::SUCCESS;
    }
    mesh_engine_wasm::runner::main()
}
