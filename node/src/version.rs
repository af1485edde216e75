//! The version of these binaries and the git revision they were built from (see `build.rs`):
//! `meshd --version`, `meshctl version`.

use serde::{Deserialize, Serialize};

/// The package version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision built from (12 hex digits), or `unknown`.
pub const GIT: &str = env!("MESH_BUILD_GIT");

/// Whether tracked files differed from [`GIT`] at build time.
pub const DIRTY: bool = const_str_eq(env!("MESH_BUILD_DIRTY"), "true");

/// What `--version` prints after the program name: `0.1.0 (git 824efc1abcde, dirty)`.
pub const LONG: &str = if DIRTY {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (git ",
        env!("MESH_BUILD_GIT"),
        ", dirty)"
    )
} else {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (git ",
        env!("MESH_BUILD_GIT"),
        ")"
    )
};

/// The version as data: `meshctl version -o json`, and what a node reports of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    pub version: String,
    pub git: String,
    #[serde(default)]
    pub dirty: bool,
}

impl Info {
    /// This binary's.
    pub fn current() -> Self {
        Info {
            version: VERSION.to_string(),
            git: GIT.to_string(),
            dirty: DIRTY,
        }
    }
}

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_the_version_and_the_revision() {
        assert!(LONG.starts_with(VERSION), "{LONG}");
        assert!(LONG.contains(&format!("(git {GIT}")), "{LONG}");
        assert_eq!(LONG.ends_with(", dirty)"), DIRTY, "{LONG}");
        assert!(
            GIT == "unknown" || GIT.chars().all(|c| c.is_ascii_hexdigit()),
            "{GIT}"
        );
    }
}
