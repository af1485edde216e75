//! The node's ed25519 identity: created on first start under the data dir (mode 0600) and
//! reused, so the peer id is stable across restarts. Also `node.json`, which tells tools the
//! peer id and the addresses of a running node.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};
use libp2p::identity::Keypair;
use serde::{Deserialize, Serialize};

/// File name of the key under the data dir.
pub const KEY_FILE: &str = "node.key";
/// File name of the node description under the data dir.
pub const NODE_FILE: &str = "node.json";

/// Loads the node key under `dir`, or creates it (readable by the owner only).
pub fn load_or_create(dir: &Path) -> anyhow::Result<Keypair> {
    let (key, created) = load_or_create_file(&dir.join(KEY_FILE))?;
    if created {
        tracing::info!(peer = %key.public().to_peer_id(), "created a new node identity");
    }
    Ok(key)
}

/// Loads an ed25519 key from `path`, or creates it there (mode 0600, written atomically).
/// Returns whether it was created. A key readable by others is refused.
pub fn load_or_create_file(path: &Path) -> anyhow::Result<(Keypair, bool)> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bail!(
                    "{} is readable by others (mode {mode:o}); run chmod 600 on it",
                    path.display()
                );
            }
            let key = Keypair::from_protobuf_encoding(&bytes)
                .with_context(|| format!("{} is not a key file", path.display()))?;
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            write_key(path, &key)?;
            Ok((key, true))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `key` to `path` (mode 0600), replacing what is there atomically.
pub fn write_key(path: &Path, key: &Keypair) -> anyhow::Result<()> {
    let bytes = key.to_protobuf_encoding().context("encoding the key")?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path
        .file_name()
        .map_or_else(|| "key".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// What `DATA_DIR/node.json` holds while the node runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFile {
    pub peer_id: String,
    /// Listen addresses, each ending in `/p2p/<peer id>`.
    pub addresses: Vec<String>,
    pub api_socket: String,
    #[serde(default)]
    pub http: Option<String>,
    pub pid: u32,
}

pub fn write_node_file(dir: &Path, file: &NodeFile) -> anyhow::Result<()> {
    let path = dir.join(NODE_FILE);
    let tmp = dir.join(format!(".{NODE_FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(file)?)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}

pub fn read_node_file(dir: &Path) -> anyhow::Result<NodeFile> {
    let path = dir.join(NODE_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not a node file", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
    }

    #[test]
    fn a_world_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path()).unwrap();
        std::fs::set_permissions(
            dir.path().join(KEY_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(load_or_create(dir.path())
            .unwrap_err()
            .to_string()
            .contains("chmod 600"));
    }
}
