//! The open-file limit. Every connection, listener, store file and engine socket of a node is
//! a file descriptor, and a node with its default 512 connections needs more than the 1024
//! that many systems give a process by default (the soft limit). The hard limit, which an
//! administrator sets (`LimitNOFILE=` in `contrib/meshd.service`), is usually far higher; a
//! process may raise its own soft limit up to it, as Go's runtime does for every program. So
//! `meshd` does so at start, and says what it got.

use std::io;

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// The soft and hard limits on open files, in that order.
pub fn open_files() -> io::Result<(u64, u64)> {
    getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)
}

/// Sets the soft limit on open files to `soft` and the hard one to `hard`. Raising the hard
/// limit needs privilege (`CAP_SYS_RESOURCE`); lowering either, or raising the soft one up to
/// the hard one, does not.
pub fn set_open_files(soft: u64, hard: u64) -> io::Result<()> {
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).map_err(io::Error::from)
}

/// Raises the soft limit on open files to the hard limit; returns the limit now in force.
pub fn raise_open_files() -> io::Result<u64> {
    let (soft, hard) = open_files()?;
    if soft < hard {
        set_open_files(hard, hard)?;
    }
    Ok(open_files()?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let (soft, hard) = open_files().unwrap();
        // Lower the soft limit (allowed to anyone), then raise it back through the function.
        let lowered = soft.saturating_sub(1).max(1);
        set_open_files(lowered, hard).unwrap();
        assert_eq!(open_files().unwrap(), (lowered, hard));
        assert_eq!(raise_open_files().unwrap(), hard);
        assert_eq!(open_files().unwrap(), (hard, hard));
        // Leave the process as it was for the other tests of this binary.
        set_open_files(soft, hard).unwrap();
    }
}
