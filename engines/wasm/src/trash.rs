//! Removing an instance's directory off the exit path. [`Trash::discard`] renames the
//! directory into `<state_dir>/trash/` (one rename: the instance is gone at once for every
//! reader) and deletes it on a blocking thread. The WASM bench's trace put the removal of a
//! finished hello's directory (its record, status, log and runner log, and `/scratch`) at
//! 0.8–1.0 ms between the runner's exit frame and the Job's `Succeeded`.
//!
//! The engine empties `trash/` when it starts, so what a crash left between the rename and
//! the deletion does not stay.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub(crate) struct Trash {
    dir: PathBuf,
    seq: AtomicU64,
}

impl Trash {
    /// The trash of `state_dir`, emptied.
    pub(crate) fn open(state_dir: &Path) -> io::Result<Self> {
        let dir = state_dir.join("trash");
        empty_dir(&dir)?;
        Ok(Self {
            dir,
            seq: AtomicU64::new(0),
        })
    }

    /// Moves `dir` into the trash and deletes it in the background (at once, on this thread,
    /// outside a Tokio runtime). A `dir` that does not exist is no error.
    pub(crate) fn discard(&self, dir: &Path) -> io::Result<()> {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let to = self.dir.join(format!("{n}-{name}"));
        match std::fs::rename(dir, &to) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        let delete = move || {
            if let Err(e) = std::fs::remove_dir_all(&to) {
                tracing::warn!(dir = %to.display(), error = %e, "cannot empty the trash");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(delete)),
            Err(_) => delete(),
        }
        Ok(())
    }
}

/// Makes `dir` an empty directory: what was in it is deleted, and it is created if missing.
pub(crate) fn empty_dir(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discarded_directory_is_gone_at_once_and_the_trash_is_emptied_on_open() {
        let state = tempfile::tempdir().unwrap();
        let trash = Trash::open(state.path()).unwrap();
        let inst = state.path().join("instances/a");
        std::fs::create_dir_all(inst.join("scratch")).unwrap();
        std::fs::write(inst.join("log.jsonl"), b"x").unwrap();
        trash.discard(&inst).unwrap();
        assert!(!inst.exists());
        // Outside a runtime the deletion is done before `discard` returns.
        assert_eq!(
            std::fs::read_dir(state.path().join("trash"))
                .unwrap()
                .count(),
            0
        );
        // Missing: no error.
        trash.discard(&inst).unwrap();

        // What a crash left in the trash goes when the engine opens it again.
        let left = state.path().join("trash/7-b");
        std::fs::create_dir_all(left.join("scratch")).unwrap();
        Trash::open(state.path()).unwrap();
        assert!(!left.exists());
    }

    #[tokio::test]
    async fn in_a_runtime_the_deletion_happens_in_the_background() {
        let state = tempfile::tempdir().unwrap();
        let trash = Trash::open(state.path()).unwrap();
        let inst = state.path().join("instances/a");
        std::fs::create_dir_all(inst.join("scratch")).unwrap();
        trash.discard(&inst).unwrap();
        assert!(!inst.exists());
        let emptied = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while std::fs::read_dir(state.path().join("trash"))
                .unwrap()
                .count()
                > 0
            {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        })
        .await;
        assert!(emptied.is_ok(), "the trash was not emptied");
    }
}
