//! `meshctl`: see `meshctl --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = mesh_node::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mesh_node::cli::run(cli)) {
        Ok(code) => code,
        // The reader of the output went away (`meshctl get -o json | head`): that is how
        // pipelines end, not an error to report.
        Err(e)
            if e.chain().any(|c| {
                let broken = Some(std::io::ErrorKind::BrokenPipe);
                c.downcast_ref::<std::io::Error>().map(|io| io.kind()) == broken
                    || c.downcast_ref::<serde_json::Error>()
                        .and_then(serde_json::Error::io_error_kind)
                        == broken
            }) =>
        {
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(mesh_node::cli::exit_code(&e))
        }
    }
}
