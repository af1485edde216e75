//! The compile cache: compiled modules on disk as `<cache_dir>/<key>.cwasm`, where the key
//! is the SHA-256 of the module digest and wasmtime's own compatibility hash of the engine
//! (its version and every setting that affects code generation). A second start of the same
//! module maps the compiled code instead of compiling it again, across runner processes
//! and node restarts.
//!
//! Files are written to a temporary name and renamed into place, never modified after, and
//! the cache is bounded ([`MAX_FILES`], [`MAX_BYTES`]): the least recently used files (by
//! modification time, refreshed on every hit) are evicted after each write.

#![allow(unsafe_code)] // Module::deserialize_file, see the SAFETY comment below.

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use sha2::{Digest as _, Sha256};
use wasmtime::{Engine, Module};

use crate::digest::Digest;

/// Most compiled modules kept.
pub const MAX_FILES: usize = 256;
/// Most bytes of compiled modules kept.
pub const MAX_BYTES: u64 = 512 * 1024 * 1024;

/// A module ready to instantiate, and how it was obtained.
#[derive(Debug)]
pub struct Loaded {
    pub module: Module,
    /// Time spent compiling or loading from the cache, in milliseconds.
    pub compile_ms: f64,
    pub cached: bool,
}

/// Feeds `Hash` output into SHA-256, so that wasmtime's compatibility hash becomes a stable
/// file name (std's hashers are not stable across releases).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0 // unused: the SHA-256 state is taken whole
    }
}

/// Cache key of `digest` compiled by `engine`.
pub fn key(engine: &Engine, digest: &Digest) -> String {
    let mut h = Sha256Hasher(Sha256::new());
    h.0.update(digest.as_bytes());
    h.0.update(crate::WASMTIME_VERSION.as_bytes());
    engine.precompile_compatibility_hash().hash(&mut h);
    hex::encode(h.0.finalize())
}

/// The compiled module for `digest`: from the cache when there, else compiled from
/// `module_path` (whose bytes must hash to `digest`) and cached.
pub fn load(
    engine: &Engine,
    digest: &Digest,
    module_path: &Path,
    cache_dir: &Path,
) -> Result<Loaded, String> {
    let path = cache_dir.join(format!("{}.cwasm", key(engine, digest)));
    let started = Instant::now();
    if path.is_file() {
        // SAFETY: `deserialize_file` trusts the file to be the output of
        // `Module::serialize` of a compatible engine and to stay unchanged while mapped.
        // Files in `cache_dir` are written only by this runner (the node's private state
        // directory), under a name keyed by the module digest, the wasmtime version and the
        // engine settings, and only ever by atomic rename of a complete file: a mapped file
        // is never modified. wasmtime also checks the version and settings in the header
        // and refuses a mismatch, which we treat as a miss.
        match unsafe { Module::deserialize_file(engine, &path) } {
            Ok(module) => {
                let compile_ms = started.elapsed().as_secs_f64() * 1000.0;
                touch(&path);
                return Ok(Loaded {
                    module,
                    compile_ms,
                    cached: true,
                });
            }
            Err(e) => {
                eprintln!(
                    "mesh-wasm-runner: dropping unusable cache file {}: {e}",
                    path.display()
                );
                let _ = fs::remove_file(&path);
            }
        }
    }
    let bytes = fs::read(module_path)
        .map_err(|e| format!("cannot read module {}: {e}", module_path.display()))?;
    let actual = Digest::of(&bytes);
    if &actual != digest {
        return Err(format!(
            "module file {} hashes to {actual}, not {digest}: refusing to run it",
            module_path.display()
        ));
    }
    let started = Instant::now();
    let module = Module::new(engine, &bytes)
        .map_err(|e| format!("invalid module: {}", super::guest::one_line(&e)))?;
    let compile_ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Err(e) = store(&module, &path, cache_dir) {
        eprintln!("mesh-wasm-runner: cannot cache {}: {e}", path.display());
    }
    Ok(Loaded {
        module,
        compile_ms,
        cached: false,
    })
}

fn touch(path: &Path) {
    if let Ok(f) = fs::File::options().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

fn store(module: &Module, path: &Path, cache_dir: &Path) -> Result<(), String> {
    fs::create_dir_all(cache_dir).map_err(|e| e.to_string())?;
    let bytes = module.serialize().map_err(|e| e.to_string())?;
    let tmp = cache_dir.join(format!(".tmp-{}.cwasm", std::process::id()));
    fs::write(&tmp, &bytes)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            e.to_string()
        })?;
    evict(cache_dir, MAX_FILES, MAX_BYTES);
    Ok(())
}

/// Deletes the least recently used `.cwasm` files beyond `max_files` or `max_bytes`.
pub fn evict(cache_dir: &Path, max_files: usize, max_bytes: u64) {
    let Ok(entries) = fs::read_dir(cache_dir) else {
        return;
    };
    let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut kept_bytes = 0u64;
    for (i, (_, len, path)) in files.iter().enumerate() {
        kept_bytes += len;
        if i >= max_files || (i > 0 && kept_bytes > max_bytes) {
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_keeps_the_most_recent() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..5u64 {
            let p = dir.path().join(format!("{i}.cwasm"));
            fs::write(&p, vec![0u8; 10]).expect("writes");
            let f = fs::File::options().write(true).open(&p).expect("opens");
            f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i))
                .expect("sets mtime");
        }
        evict(dir.path(), 3, 1000);
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .expect("lists")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect();
        left.sort();
        assert_eq!(left, ["2.cwasm", "3.cwasm", "4.cwasm"]);
        evict(dir.path(), 10, 15);
        assert_eq!(fs::read_dir(dir.path()).expect("lists").count(), 1);
    }
}
