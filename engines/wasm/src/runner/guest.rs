//! Running one guest with wasmtime and WASI preview 1: the engine settings, the sandbox
//! (args, env, clocks, random, captured stdio, `/scratch` and nothing else), the memory
//! limiter, the deadline and stop checks on epoch ticks, and the classification of how the
//! guest ended.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_protocol::api::LogStream;
use wasmtime::{Config, Engine, Linker, Module, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use super::sink::{GuestOutput, Sink};
use crate::protocol::{Event, Start};

/// Guest path of the scratch directory.
pub const SCRATCH_GUEST_PATH: &str = "/scratch";

/// Most table elements a guest may grow a table to.
pub const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// The engine every runner uses. These settings are part of the compile cache key.
pub fn engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // One linear memory per guest, so the per-memory limit is the guest's limit.
    config.wasm_multi_memory(false);
    Engine::new(&config)
}

/// Why the guest was interrupted at an epoch tick.
#[derive(Debug)]
pub enum Interrupt {
    Deadline(Duration),
    Stop,
}

impl fmt::Display for Interrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Interrupt::Deadline(after) => write!(
                f,
                "deadline exceeded after {} ms (the workload's timeout)",
                after.as_millis()
            ),
            Interrupt::Stop => f.write_str("stopped by the node"),
        }
    }
}

impl std::error::Error for Interrupt {}

/// A `memory.grow` beyond the workload's memory limit.
#[derive(Debug)]
pub struct MemoryLimitExceeded {
    pub limit: usize,
    pub desired: usize,
}

impl fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "memory limit of {} exceeded: the guest tried to grow its linear memory to {}",
            human_bytes(self.limit as u64),
            human_bytes(self.desired as u64)
        )
    }
}

impl std::error::Error for MemoryLimitExceeded {}

/// `16 MiB (16777216 bytes)`.
pub fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n.is_multiple_of(MIB) {
        format!("{} MiB ({n} bytes)", n / MIB)
    } else {
        format!("{:.1} MiB ({n} bytes)", n as f64 / MIB as f64)
    }
}

/// Store limits: linear memory up to the workload's limit, tables up to
/// [`MAX_TABLE_ELEMENTS`]. Exceeding either traps with a message naming the limit.
#[derive(Debug)]
pub struct Limiter {
    pub memory_limit: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.memory_limit,
                desired,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::Error::msg(format!(
                "table limit of {MAX_TABLE_ELEMENTS} elements exceeded: the guest asked for {desired}"
            )));
        }
        Ok(true)
    }
}

/// What a store holds.
pub struct Host {
    wasi: WasiP1Ctx,
    limiter: Limiter,
}

/// When the guest must be interrupted.
#[derive(Debug, Clone)]
pub struct Watch {
    pub stop: Arc<AtomicBool>,
    pub timeout: Option<Duration>,
}

/// Runs the guest's `_start` to its end and says how it ended (a final [`Event`]).
/// Output goes to `sink`; the guest sees only what `start` grants it.
pub fn run(
    engine: &Engine,
    module: &Module,
    start: &Start,
    sink: &Arc<Sink>,
    watch: &Watch,
) -> Event {
    match run_inner(engine, module, start, sink, watch) {
        Ok(()) => Event::Exited { code: 0 },
        Err(e) => classify(&e),
    }
}

fn run_inner(
    engine: &Engine,
    module: &Module,
    start: &Start,
    sink: &Arc<Sink>,
    watch: &Watch,
) -> wasmtime::Result<()> {
    let mut wasi = WasiCtxBuilder::new();
    wasi.arg(&start.name)
        .args(&start.args)
        .envs(&start.env)
        .stdout(GuestOutput::new(LogStream::Stdout, sink.clone()))
        .stderr(GuestOutput::new(LogStream::Stderr, sink.clone()));
    wasi.preopened_dir(&start.scratch_dir, SCRATCH_GUEST_PATH, FsPerms::ReadWrite)
        .map_err(|e| e.context(format!("cannot preopen {}", start.scratch_dir.display())))?;
    let host = Host {
        wasi: wasi.build_p1(),
        limiter: Limiter {
            memory_limit: usize::try_from(start.memory_limit_bytes).unwrap_or(usize::MAX),
        },
    };
    let mut store = Store::new(engine, host);
    store.limiter(|h| &mut h.limiter);
    let began = Instant::now();
    let deadline = watch.timeout.map(|t| (began + t, t));
    let stop = watch.stop.clone();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if stop.load(Ordering::SeqCst) {
            return Err(wasmtime::Error::new(Interrupt::Stop));
        }
        if let Some((at, after)) = deadline {
            if Instant::now() >= at {
                return Err(wasmtime::Error::new(Interrupt::Deadline(after)));
            }
        }
        Ok(UpdateDeadline::Continue(1))
    });
    let mut linker: Linker<Host> = Linker::new(engine);
    p1::add_to_linker_sync(&mut linker, |h| &mut h.wasi)?;
    let instance = linker
        .instantiate(&mut store, module)
        .map_err(|e| e.context("cannot instantiate the module"))?;
    let entry = instance
        .get_typed_func::<(), ()>(&mut store, "_start")
        .map_err(|_| {
            wasmtime::Error::msg("the module exports no _start function (not a WASI command)")
        })?;
    entry.call(&mut store, ())
}

/// Exit, stop, trap (with the limit or deadline it hit) or failure to run.
pub fn classify(e: &wasmtime::Error) -> Event {
    for cause in e.chain() {
        if let Some(exit) = cause.downcast_ref::<I32Exit>() {
            return Event::Exited { code: exit.0 };
        }
        if let Some(i) = cause.downcast_ref::<Interrupt>() {
            return match i {
                Interrupt::Stop => Event::Stopped,
                Interrupt::Deadline(_) => Event::Trapped {
                    message: i.to_string(),
                },
            };
        }
        if let Some(m) = cause.downcast_ref::<MemoryLimitExceeded>() {
            return Event::Trapped {
                message: m.to_string(),
            };
        }
        if let Some(trap) = cause.downcast_ref::<Trap>() {
            return Event::Trapped {
                message: trap.to_string(),
            };
        }
    }
    let message = one_line(e);
    if message.contains("table limit") {
        return Event::Trapped { message };
    }
    if message.starts_with("cannot instantiate") {
        return Event::Failed { message };
    }
    Event::Failed {
        message: format!("guest error: {message}"),
    }
}

/// The error chain on one line, without wasm backtraces.
pub(crate) fn one_line(e: &wasmtime::Error) -> String {
    let parts: Vec<String> = e
        .chain()
        .map(|c| c.to_string())
        .filter(|t| !t.contains("wasm backtrace"))
        .map(|t| t.lines().next().unwrap_or_default().trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    if parts.is_empty() {
        e.to_string()
            .lines()
            .next()
            .unwrap_or("unknown error")
            .to_string()
    } else {
        parts.join(": ")
    }
}
