//! Small WebAssembly guests (WAT text) that exercise the runner: output, arguments and
//! environment, traps, runaway loops, memory growth, exit codes, long-running ones. The
//! engine's tests, the multi-node tests and the start benchmark share them, with [`function`],
//! a Function spec that runs one.

use mesh_protocol::spec::{EnvVar, JobSpec, Module, ModuleSource, RestartPolicy, SourceFormat};
use mesh_protocol::{WorkloadKind, WorkloadSpec};

use crate::Digest;

/// Prints argv (space separated) on one line, then every environment entry on its own line
/// to stdout, then `done` to stderr.
pub const HELLO: &str = r#"
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 300) "done\n")
  (func $nul_to (param $ptr i32) (param $len i32) (param $ch i32)
    (local $i i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (if (i32.eqz (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
          (then (i32.store8 (i32.add (local.get $ptr) (local.get $i)) (local.get $ch))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l))))
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 256) (local.get $ptr))
    (i32.store (i32.const 260) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 256) (i32.const 1) (i32.const 264))))
  (func (export "_start")
    (drop (call $args_sizes_get (i32.const 0) (i32.const 4)))
    (drop (call $args_get (i32.const 1024) (i32.const 8192)))
    (call $nul_to (i32.const 8192) (i32.load (i32.const 4)) (i32.const 32))
    (i32.store8 (i32.add (i32.const 8191) (i32.load (i32.const 4))) (i32.const 10))
    (call $write (i32.const 1) (i32.const 8192) (i32.load (i32.const 4)))
    (drop (call $environ_sizes_get (i32.const 8) (i32.const 12)))
    (drop (call $environ_get (i32.const 2048) (i32.const 16384)))
    (call $nul_to (i32.const 16384) (i32.load (i32.const 12)) (i32.const 10))
    (call $write (i32.const 1) (i32.const 16384) (i32.load (i32.const 12)))
    (call $write (i32.const 2) (i32.const 300) (i32.const 5))))
"#;

/// Executes `unreachable`.
pub const TRAP: &str = r#"(module (func (export "_start") unreachable))"#;

/// Spins forever without a host call.
pub const SPIN: &str = r#"(module (func (export "_start") (loop $l (br $l))))"#;

/// Grows memory by 1 MiB at a time, forever.
pub const MEMORY_BOMB: &str = r#"
(module
  (memory 1)
  (func (export "_start")
    (loop $l
      (drop (memory.grow (i32.const 16)))
      (br $l))))
"#;

/// Exits with code 3 through `proc_exit`.
pub const EXIT_3: &str = r#"
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))
"#;

/// Prints `tick` every 100 ms (sleeping in `poll_oneoff`), never exits.
pub const TICKER: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "tick\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 5))
    (i64.store (i32.const 200) (i64.const 0))
    (i32.store8 (i32.const 208) (i32.const 0))
    (i32.store (i32.const 216) (i32.const 1))
    (i64.store (i32.const 224) (i64.const 100000000))
    (i64.store (i32.const 232) (i64.const 0))
    (i32.store16 (i32.const 240) (i32.const 0))
    (loop $l
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (drop (call $poll (i32.const 200) (i32.const 304) (i32.const 1) (i32.const 400)))
      (br $l))))
"#;

/// Knobs of a test Function (see [`function`]).
#[derive(Debug, Clone, Default)]
pub struct Opts {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub memory: Option<u64>,
    pub timeout_ms: Option<u64>,
    /// Long-running (no job section) when true.
    pub service: bool,
    pub restart: Option<RestartPolicy>,
}

/// A sealed Function spec that runs the module `digest` with `opts`.
pub fn function(name: &str, digest: &Digest, opts: Opts) -> WorkloadSpec {
    let mut spec = WorkloadSpec::new(
        name,
        "default",
        WorkloadKind::Function,
        SourceFormat::Beemesh,
    );
    spec.module = Some(Module {
        source: ModuleSource::Digest(digest.to_string()),
        args: opts.args,
        env: opts
            .env
            .into_iter()
            .map(|(name, value)| EnvVar {
                name,
                value: Some(value),
                value_from: None,
            })
            .collect(),
        memory_bytes: opts.memory,
        timeout_ms: opts.timeout_ms,
    });
    spec.job = (!opts.service).then(JobSpec::default);
    spec.restart_policy = opts.restart.unwrap_or(RestartPolicy::Never);
    spec.seal()
}
