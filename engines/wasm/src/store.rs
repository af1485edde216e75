//! The content-addressed module store: `<state_dir>/modules/sha256/<hex>`.
//!
//! A module is only ever visible under its final name once its bytes are on disk, synced,
//! and hash to that name: writes go to a temporary file in the same directory, are fsynced,
//! re-read and re-hashed, then renamed into place (and the directory is synced). A partial
//! or corrupt download therefore never becomes a module, and [`ModuleStore::verify`]
//! deletes a stored file whose bytes no longer match its name (disk corruption, tampering).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::Digest;

/// Errors of the store. Messages are one line and name the module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("module store: {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The bytes offered for a digest do not hash to it; nothing was stored.
    #[error("module bytes hash to {actual}, not the expected {expected}; nothing was stored")]
    Mismatch { expected: Digest, actual: Digest },
    /// A stored file no longer hashes to its name; it has been deleted.
    #[error("stored module {digest} is corrupt (its bytes hash to {actual}); it was deleted")]
    Corrupt { digest: Digest, actual: Digest },
    #[error("module {0} is not on this node")]
    Missing(Digest),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Sequence for temporary file names, so concurrent writers in one process never collide.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Modules by SHA-256 under one directory. Cheap to clone; safe for concurrent writers
/// (the last rename wins and both wrote the same bytes).
#[derive(Debug, Clone)]
pub struct ModuleStore {
    dir: PathBuf,
}

impl ModuleStore {
    /// Opens (creating it when needed) the store of a node whose state lives in `state_dir`.
    pub fn open(state_dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = state_dir.as_ref().join("modules").join("sha256");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(Self { dir })
    }

    /// The directory holding the modules.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// Stores `bytes` under their own digest and returns it.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, Error> {
        let digest = Digest::of(bytes);
        self.write(&digest, bytes)?;
        Ok(digest)
    }

    /// Stores `bytes` only if they hash to `expected` (a module fetched from a peer). On a
    /// mismatch nothing is written and the error names both digests.
    pub fn put_expected(&self, expected: &Digest, bytes: &[u8]) -> Result<(), Error> {
        let actual = Digest::of(bytes);
        if &actual != expected {
            return Err(Error::Mismatch {
                expected: *expected,
                actual,
            });
        }
        self.write(expected, bytes)
    }

    fn write(&self, digest: &Digest, bytes: &[u8]) -> Result<(), Error> {
        let path = self.path_of(digest);
        if path.exists() {
            return Ok(());
        }
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}-{}",
            digest.hex(),
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
            file.write_all(bytes).map_err(io_err(&tmp))?;
            file.sync_all().map_err(io_err(&tmp))?;
            drop(file);
            // Re-read what reached the disk: the name is a promise about those bytes.
            let written =
                Digest::of_reader(File::open(&tmp).map_err(io_err(&tmp))?).map_err(io_err(&tmp))?;
            if &written != digest {
                return Err(Error::Mismatch {
                    expected: *digest,
                    actual: written,
                });
            }
            fs::rename(&tmp, &path).map_err(io_err(&path))?;
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(&self.dir))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Path of a stored module, if present.
    pub fn get(&self, digest: &Digest) -> Option<PathBuf> {
        let path = self.path_of(digest);
        path.is_file().then_some(path)
    }

    pub fn has(&self, digest: &Digest) -> bool {
        self.get(digest).is_some()
    }

    /// Re-hashes a stored module. A file whose bytes do not match its name is deleted and
    /// reported as [`Error::Corrupt`]; an absent one is [`Error::Missing`].
    pub fn verify(&self, digest: &Digest) -> Result<PathBuf, Error> {
        let path = self.path_of(digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::Missing(*digest)),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let actual = Digest::of_reader(file).map_err(io_err(&path))?;
        if &actual != digest {
            fs::remove_file(&path).map_err(io_err(&path))?;
            return Err(Error::Corrupt {
                digest: *digest,
                actual,
            });
        }
        Ok(path)
    }

    /// Deletes a stored module (garbage collection). Absent is fine.
    pub fn remove(&self, digest: &Digest) -> Result<(), Error> {
        let path = self.path_of(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Every stored module, in digest order.
    pub fn list(&self) -> Result<Vec<Digest>, Error> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name();
            if let Some(d) = name
                .to_str()
                .and_then(|n| Digest::parse(&format!("{}{n}", crate::digest::PREFIX)).ok())
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }
}
