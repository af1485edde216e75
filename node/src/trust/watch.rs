//! Reloads the trust file on SIGHUP and when its content changes (checked every
//! [`POLL`]; the file is small, so its bytes are compared rather than its timestamps, which
//! an editor that saves twice in a second would leave unchanged). A file that no longer
//! parses leaves the policy in force and is logged as an error.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Trust;

/// How often the trust file is looked at.
pub const POLL: Duration = Duration::from_secs(1);

fn digest(path: &std::path::Path) -> Option<Vec<u8>> {
    use sha2::{Digest as _, Sha256};
    std::fs::read(path).ok().map(|b| Sha256::digest(b).to_vec())
}

/// Watches the trust file until `shutdown`. Does nothing for a policy without a file.
pub async fn run(trust: Trust, shutdown: CancellationToken) {
    let Some(path) = trust.file().map(std::path::Path::to_path_buf) else {
        return;
    };
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; the trust file is still reloaded when it changes");
            None
        }
    };
    let mut last = digest(&path);
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let why = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                let now = digest(&path);
                if now == last {
                    continue;
                }
                last = now;
                "it changed"
            }
            Some(()) = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => "SIGHUP",
        };
        match trust.reload() {
            Ok(_) => {
                let p = trust.policy();
                tracing::info!(file = %path.display(), keys = p.keys.len(), reason = why, "trust file reloaded");
            }
            Err(e) => tracing::error!(
                error = %e, reason = why,
                "trust file not reloaded; the policy loaded before stays in force"
            ),
        }
    }
}
