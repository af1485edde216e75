//! A graceful exit (`meshd` on SIGTERM or Ctrl-C): the node takes no new applies or deletes
//! (`503 node shutting down`), withdraws the provider records of the replicas it runs, so the
//! mesh stops counting them at once rather than when they expire, and flushes its store. The
//! workloads keep running: a node restarted with the same data dir re-adopts them and
//! announces them again.

use std::time::Duration;

use super::Mesh;

/// How long a graceful exit may spend withdrawing before the node stops anyway.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

impl Mesh {
    /// Leaves the mesh gracefully (see the module). Bounded by [`LEAVE_TIMEOUT`].
    pub async fn leave(&self) {
        self.inner.owned.close();
        let ids: Vec<_> = match self.node().store().list_desired() {
            Ok(desired) => desired.iter().map(|d| d.spec.id()).collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot list the replicas to withdraw");
                Vec::new()
            }
        };
        let withdraw = async {
            for id in &ids {
                self.withdraw(id).await;
            }
        };
        if tokio::time::timeout(LEAVE_TIMEOUT, withdraw).await.is_err() {
            tracing::warn!("leaving: not every replica was withdrawn within {LEAVE_TIMEOUT:?}");
        }
        if let Err(e) = self.node().store().flush() {
            tracing::error!(error = %e, "leaving: cannot flush the store");
        }
        tracing::info!(
            withdrawn = ids.len(),
            "left the mesh; workloads keep running"
        );
    }
}
