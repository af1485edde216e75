//! Collecting a job's declared output files from an instance's working directory into the
//! node's copy, bounded. Shared by the engines that keep instances in host directories
//! (process, wasm, mock); blocking, so engines call it on `spawn_blocking`.
//!
//! Only regular files are collected: a symbolic link anywhere on a declared path is refused,
//! so a workload cannot make the node copy a file from outside its working directory.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use mesh_protocol::job::{check_output_path, Artifact};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// Largest output file collected; a larger one is an error rather than a silent truncation.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Files collected per run (a directory output counts each file).
pub const MAX_FILES: usize = 64;
/// Bytes collected per run, all files together.
pub const MAX_TOTAL_BYTES: u64 = 16 * 1024 * 1024;

fn err(message: String) -> Error {
    Error::Output(message)
}

/// Copies `outputs` (relative to `root`; a trailing `/` names a directory, collected
/// recursively) into `dest`, which must exist. Returns the collected files in declaration
/// order (a directory's files sorted by path).
pub fn collect(root: &Path, outputs: &[String], dest: &Path) -> Result<Vec<Artifact>> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for declared in outputs {
        check_output_path(declared).map_err(err)?;
        let is_dir = declared.ends_with('/');
        let rel = declared.trim_end_matches('/');
        let path = checked_path(root, rel, declared)?;
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(err(format!(
                "declared output {declared} was not written (no such {} in the working directory)",
                if is_dir { "directory" } else { "file" }
            )))
            }
            Err(e) => return Err(err(format!("declared output {declared}: {e}"))),
        };
        match (is_dir, meta.is_dir(), meta.is_file()) {
            (true, true, _) => walk(&path, rel, &mut files)?,
            (true, false, _) => {
                return Err(err(format!(
                    "declared output {declared} is not a directory"
                )))
            }
            (false, true, _) => {
                return Err(err(format!(
                    "declared output {declared} is a directory; declare it as {rel}/ to collect it"
                )))
            }
            (false, false, true) => files.push((rel.to_string(), path)),
            (false, false, false) => {
                return Err(err(format!(
                    "declared output {declared} is not a regular file"
                )))
            }
        }
        if files.len() > MAX_FILES {
            return Err(err(format!(
                "more than {MAX_FILES} output files; collect fewer or pack them into one"
            )));
        }
    }
    let mut total = 0u64;
    let mut out = Vec::with_capacity(files.len());
    for (rel, path) in files {
        let bytes = read_bounded(&path, &rel)?;
        total += bytes.len() as u64;
        if total > MAX_TOTAL_BYTES {
            return Err(err(format!(
                "outputs exceed {} MiB in total",
                MAX_TOTAL_BYTES >> 20
            )));
        }
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| Error::Invalid(format!("cannot create {}: {e}", parent.display())))?;
        }
        fs::write(&target, &bytes)
            .map_err(|e| Error::Invalid(format!("cannot write {}: {e}", target.display())))?;
        out.push(Artifact {
            path: rel,
            size: bytes.len() as u64,
            digest: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
            location: target.display().to_string(),
        });
    }
    Ok(out)
}

/// `root/rel`, refusing a symbolic link on any component below `root`.
fn checked_path(root: &Path, rel: &str, declared: &str) -> Result<PathBuf> {
    let mut path = root.to_path_buf();
    for part in rel.split('/') {
        path.push(part);
        if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(err(format!(
                "declared output {declared}: {} is a symbolic link; only regular files are collected",
                path.strip_prefix(root).unwrap_or(&path).display()
            )));
        }
    }
    Ok(path)
}

/// Regular files under `dir`, sorted, as `(prefix/sub/path, full path)`.
fn walk(dir: &Path, prefix: &str, files: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .and_then(|it| it.collect::<std::io::Result<Vec<_>>>())
        .map_err(|e| err(format!("cannot list {prefix}/: {e}")))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = format!("{prefix}/{name}");
        let kind = entry.file_type().map_err(|e| err(format!("{rel}: {e}")))?;
        if kind.is_symlink() {
            return Err(err(format!(
                "output {rel} is a symbolic link; only regular files are collected"
            )));
        } else if kind.is_dir() {
            walk(&entry.path(), &rel, files)?;
        } else if kind.is_file() {
            files.push((rel, entry.path()));
        }
        if files.len() > MAX_FILES {
            return Err(err(format!(
                "more than {MAX_FILES} output files; collect fewer or pack them into one"
            )));
        }
    }
    Ok(())
}

/// The file's bytes, refusing more than [`MAX_FILE_BYTES`] (read bounded: the file may grow).
fn read_bounded(path: &Path, rel: &str) -> Result<Vec<u8>> {
    let file = fs::File::open(path).map_err(|e| err(format!("output {rel}: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(format!("output {rel}: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(err(format!(
            "output {rel} is larger than {} KiB, the most collected per file",
            MAX_FILE_BYTES >> 10
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("work");
        let dest = dir.path().join("dest");
        fs::create_dir_all(root.join("out/sub")).unwrap();
        fs::create_dir_all(&dest).unwrap();
        fs::write(root.join("result.txt"), "42\n").unwrap();
        fs::write(root.join("out/b.txt"), "b").unwrap();
        fs::write(root.join("out/sub/a.txt"), "a").unwrap();
        (dir, root, dest)
    }

    #[test]
    fn files_and_directories_are_copied_with_sizes_and_digests() {
        let (_dir, root, dest) = setup();
        let got = collect(&root, &["result.txt".into(), "out/".into()], &dest).unwrap();
        let paths: Vec<&str> = got.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(paths, ["result.txt", "out/b.txt", "out/sub/a.txt"]);
        assert_eq!(got[0].size, 3);
        assert_eq!(
            got[0].digest,
            format!("sha256:{}", hex::encode(Sha256::digest(b"42\n")))
        );
        assert_eq!(fs::read_to_string(dest.join("out/sub/a.txt")).unwrap(), "a");
        assert_eq!(
            got[2].location,
            dest.join("out/sub/a.txt").display().to_string()
        );
    }

    #[test]
    fn missing_wrong_kind_and_oversized_outputs_are_errors() {
        let (_dir, root, dest) = setup();
        let e = collect(&root, &["nope.txt".into()], &dest).unwrap_err();
        assert!(matches!(e, Error::Output(_)), "{e:?}");
        assert!(e.to_string().contains("nope.txt was not written"), "{e}");
        let e = collect(&root, &["out".into()], &dest).unwrap_err();
        assert!(e.to_string().contains("declare it as out/"), "{e}");
        let e = collect(&root, &["result.txt/".into()], &dest).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        fs::write(root.join("big"), vec![0u8; MAX_FILE_BYTES as usize + 1]).unwrap();
        let e = collect(&root, &["big".into()], &dest).unwrap_err();
        assert!(e.to_string().contains("larger than 1024 KiB"), "{e}");
        assert!(collect(&root, &["../x".into()], &dest).is_err());
    }

    #[test]
    fn symbolic_links_are_refused() {
        let (dir, root, dest) = setup();
        let secret = dir.path().join("secret");
        fs::write(&secret, "s").unwrap();
        std::os::unix::fs::symlink(&secret, root.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        for declared in ["link", "up/secret", "up/"] {
            let e = collect(&root, &[declared.to_string()], &dest).unwrap_err();
            assert!(e.to_string().contains("symbolic link"), "{declared}: {e}");
        }
        std::os::unix::fs::symlink(&secret, root.join("out/link")).unwrap();
        let e = collect(&root, &["out/".into()], &dest).unwrap_err();
        assert!(e.to_string().contains("out/link is a symbolic link"), "{e}");
        assert!(!dest.join("secret").exists());
    }
}
