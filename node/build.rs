//! Records the git revision the binaries are built from, for `meshd --version` and
//! `meshctl version`: `MESH_BUILD_GIT` (12 hex digits, or `unknown` without git or outside a
//! checkout, e.g. a crates tarball) and `MESH_BUILD_DIRTY` (`true` when tracked files differ
//! from that commit). `MESH_GIT_REV=...` at build time overrides both (packagers building from
//! an exported tree).
//!
//! The script reruns when HEAD moves (the HEAD file, the branch's ref, packed-refs) or the
//! index changes, not on every build. "dirty" is as of that run: an edit that git has not yet
//! noticed in the index shows at the next commit, `git add` or `git status`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=MESH_GIT_REV");
    if let Ok(rev) = std::env::var("MESH_GIT_REV") {
        println!("cargo:rustc-env=MESH_BUILD_GIT={rev}");
        println!("cargo:rustc-env=MESH_BUILD_DIRTY=false");
        return;
    }
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    // Only a checkout of this project counts: a tarball unpacked inside some other repository
    // (a home directory under git) has no tracked manifest there.
    let tracked = git(&dir, &["ls-files", "--", "Cargo.toml"]).is_some_and(|s| !s.is_empty());
    let rev = tracked
        .then(|| git(&dir, &["rev-parse", "--short=12", "HEAD"]))
        .flatten();
    let Some(rev) = rev else {
        println!("cargo:rustc-env=MESH_BUILD_GIT=unknown");
        println!("cargo:rustc-env=MESH_BUILD_DIRTY=false");
        return;
    };
    let dirty = git(&dir, &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    println!("cargo:rustc-env=MESH_BUILD_GIT={rev}");
    println!("cargo:rustc-env=MESH_BUILD_DIRTY={dirty}");
    // The files whose change means another revision (git-path resolves worktrees, whose HEAD
    // is their own but whose refs are shared). A missing file would rerun every build: skip.
    let mut watched = vec!["HEAD".to_string(), "index".into(), "packed-refs".into()];
    if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&dir, &["rev-parse", "--git-path", &name]) {
            let path = dir.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
