//! The user's signing key. `meshctl` signs every workload record and every delete with it;
//! nodes verify the signature before they store, forward or act on anything. Created on first
//! use (ed25519, mode 0600), at `--key`, else `$MESH_KEY`, else
//! `$XDG_CONFIG_HOME/mesh/user.key` (`~/.config/mesh/user.key`).

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Subcommand;
use libp2p::identity::Keypair;
use serde::Serialize;

use super::output::{print_value, Format};
use crate::identity;

/// File name of the user key under the config directory.
pub const USER_KEY_FILE: &str = "user.key";

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Show the key id (nodes record it as the submitter of what you sign) and where the key is.
    Show,
    /// Create a new key (refuses to replace an existing one without --force).
    Generate {
        /// Replace the existing key (what you applied stays signed by the old one).
        #[arg(long)]
        force: bool,
    },
}

/// Where the user key lives when `--key` and `MESH_KEY` are not set.
pub fn default_path() -> PathBuf {
    dirs::config_dir()
        .unwrap_or_else(|| dirs::home_dir().unwrap_or_default().join(".config"))
        .join("mesh")
        .join(USER_KEY_FILE)
}

/// Loads the user key, creating it on first use (and saying so on stderr, with its path).
pub fn load(path: &Path) -> anyhow::Result<Keypair> {
    let (key, created) = identity::load_or_create_file(path)?;
    if created {
        eprintln!(
            "created your signing key at {} (key id {}): meshctl signs with it, and a meshd run by \
             you without a trust file trusts it; keep it private",
            path.display(),
            key.public().to_peer_id()
        );
    }
    Ok(key)
}

#[derive(Debug, Serialize)]
struct KeyInfo {
    key_id: String,
    path: String,
}

pub fn run(cmd: KeyCommand, path: &Path, fmt: Format) -> anyhow::Result<()> {
    let key = match cmd {
        KeyCommand::Show => load(path)?,
        KeyCommand::Generate { force } => {
            if path.exists() && !force {
                bail!(
                    "{} exists; meshctl key generate --force replaces it (what you applied stays \
                     signed by the old key)",
                    path.display()
                );
            }
            let key = Keypair::generate_ed25519();
            identity::write_key(path, &key)?;
            key
        }
    };
    let info = KeyInfo {
        key_id: key.public().to_peer_id().to_string(),
        path: path.display().to_string(),
    };
    match fmt {
        Format::Table | Format::Wide => {
            println!("key id: {}", info.key_id);
            println!("path:   {}", info.path);
            Ok(())
        }
        _ => print_value(fmt, &info),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn generate_refuses_to_replace_a_key_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user.key");
        let first = load(&path).unwrap();
        let err = run(KeyCommand::Generate { force: false }, &path, Format::Json).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(
            load(&path).unwrap().public().to_peer_id(),
            first.public().to_peer_id()
        );
        run(KeyCommand::Generate { force: true }, &path, Format::Json).unwrap();
        assert_ne!(
            load(&path).unwrap().public().to_peer_id(),
            first.public().to_peer_id()
        );
    }
}
