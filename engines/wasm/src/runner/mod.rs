//! The `mesh-wasm-runner` process: makes its wasmtime engine, reads one
//! [`Start`](crate::protocol::Start) frame from stdin, compiles the module (or loads it from the compile cache), runs the guest, and
//! streams events to stdout (see [`crate::protocol`]).
//!
//! Threads: the main thread runs the guest; a reader thread turns a `Stop` frame into a
//! flag; a ticker thread advances the engine epoch every `epoch_tick_ms` (the guest checks
//! the deadline and the stop flag at each tick) and is the watchdog for a guest blocked in
//! a host call (a long `poll_oneoff` sleep): past the deadline or a stop request by
//! [`HARD_GRACE`], it reports the outcome and ends the process itself.
//!
//! A node restart closes stdin and stdout: the runner carries on, writing guest output to
//! the log file and its status to the status file, where the restarted node finds them.

mod cache;
mod guest;
mod sink;

use std::io;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use cache::{
    evict, key as cache_key, Loaded, MAX_BYTES as CACHE_MAX_BYTES, MAX_FILES as CACHE_MAX_FILES,
};
pub use guest::{classify, engine, human_bytes, run, Watch, SCRATCH_GUEST_PATH};
pub use sink::Sink;

use crate::protocol::{self, Event, Request, Start};

/// How long after the deadline (or a stop request) the watchdog waits for the guest to
/// return to wasm code before it ends the runner itself.
pub const HARD_GRACE: Duration = Duration::from_millis(500);

/// Compiles or loads `start.module_path` through the compile cache.
pub fn load(engine: &wasmtime::Engine, start: &Start) -> Result<Loaded, String> {
    cache::load(engine, &start.digest, &start.module_path, &start.cache_dir)
}

/// The `mesh-wasm-runner` binary (built by the node package, so that it is installed with
/// meshd, and by this crate's `runner` example for its own tests): `--version`, else [`main`].
pub fn bin_main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        println!(
            "mesh-wasm-runner {} (wasmtime {})",
            env!("CARGO_PKG_VERSION"),
            crate::WASMTIME_VERSION
        );
        return ExitCode::SUCCESS;
    }
    main()
}

/// Runs one guest: the runner process after its command line.
pub fn main() -> ExitCode {
    // The engine first, and the Tokio runtime wasmtime-wasi makes on first use for its host
    // calls (two threads, found by `strace` of a spare's run: 0.3-0.5 ms): a spare runner
    // (see `crate::spare`) has them made before its Start frame arrives.
    let engine = engine();
    wasmtime_wasi::runtime::with_ambient_tokio_runtime(|| ());
    let mut stdin = io::stdin().lock();
    let start = match protocol::read_frame::<Request>(&mut stdin) {
        Ok(Some(Request::Start(start))) => *start,
        other => {
            let why = match other {
                Ok(None) => "stdin closed before a Start frame".to_string(),
                Ok(Some(_)) => "the first frame must be Start".to_string(),
                Err(e) => format!("unreadable Start frame: {e}"),
            };
            let _ = protocol::write_frame(&mut io::stdout(), &Event::Failed { message: why });
            return ExitCode::from(2);
        }
    };
    drop(stdin);
    let sink = Arc::new(Sink::new(
        Some(Box::new(io::stdout())),
        start.log_path.clone(),
        start.status_path.clone(),
    ));
    let watch = Watch {
        stop: Arc::new(AtomicBool::new(false)),
        timeout: start.timeout_ms.map(Duration::from_millis),
    };
    let stop_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    spawn_reader(watch.stop.clone(), stop_at.clone());

    let engine = match engine {
        Ok(e) => e,
        Err(e) => {
            sink.finish(Event::Failed {
                message: format!("cannot create the wasm engine: {e:#}"),
            });
            return ExitCode::SUCCESS;
        }
    };
    let loaded = match load(&engine, &start) {
        Ok(l) => l,
        Err(message) => {
            sink.finish(Event::Failed { message });
            return ExitCode::SUCCESS;
        }
    };
    sink.running(loaded.compile_ms, loaded.cached);
    let began = Instant::now();
    spawn_ticker(
        engine.clone(),
        Duration::from_millis(start.epoch_tick_ms.max(1)),
        sink.clone(),
        watch.timeout.map(|t| (began + t, t)),
        stop_at,
    );
    let outcome = run(&engine, &loaded.module, &start, &sink, &watch);
    sink.finish(outcome);
    ExitCode::SUCCESS
}

/// Reads frames after Start: `Stop` sets the flag. End of stdin is the node going away,
/// not a stop.
fn spawn_reader(stop: Arc<AtomicBool>, stop_at: Arc<Mutex<Option<Instant>>>) {
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        while let Ok(Some(req)) = protocol::read_frame::<Request>(&mut stdin) {
            if req == Request::Stop {
                *stop_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                stop.store(true, Ordering::SeqCst);
            }
        }
    });
}

fn spawn_ticker(
    engine: wasmtime::Engine,
    tick: Duration,
    sink: Arc<Sink>,
    deadline: Option<(Instant, Duration)>,
    stop_at: Arc<Mutex<Option<Instant>>>,
) {
    std::thread::spawn(move || loop {
        std::thread::sleep(tick);
        engine.increment_epoch();
        sink.write_running();
        let now = Instant::now();
        if let Some((at, after)) = deadline {
            if now >= at + HARD_GRACE {
                let message = format!(
                    "deadline exceeded after {} ms (the workload's timeout; the guest was blocked in a host call)",
                    after.as_millis()
                );
                if sink.finish(Event::Trapped { message }) {
                    std::process::exit(0);
                }
            }
        }
        let stopped = *stop_at.lock().unwrap_or_else(|p| p.into_inner());
        if stopped.is_some_and(|s| now >= s + HARD_GRACE) && sink.finish(Event::Stopped) {
            std::process::exit(0);
        }
    });
}
