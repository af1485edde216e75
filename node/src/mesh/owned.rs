//! Work the node owns. An apply or delete asked for by the local API or a peer runs in the
//! node's task tracker, not in the task of the request: a client that hangs up mid-apply
//! cancels nothing, and the work finishes (and records its outcome) all the same. The
//! request awaits the result by channel.
//!
//! Bounded: a permit is taken before anything is spawned; when none is free the request is
//! answered "busy" (503) at once instead of joining an unbounded backlog.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{oneshot, Semaphore};
use tokio_util::task::TaskTracker;

use super::Error;

/// The owner of long-running operations. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Owner {
    tasks: TaskTracker,
    permits: Arc<Semaphore>,
    limit: usize,
}

impl Owner {
    pub fn new(tasks: TaskTracker, limit: usize) -> Self {
        Self {
            tasks,
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// Runs `work` as the node's own and waits for its result. Dropping the returned future
    /// (the client went away) leaves the work running to its end.
    pub async fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|e| match e {
                tokio::sync::TryAcquireError::Closed => {
                    Error::unavailable("node shutting down: it takes no new work".into())
                }
                tokio::sync::TryAcquireError::NoPermits => Error::Busy(self.limit),
            })?;
        let (tx, rx) = oneshot::channel();
        self.tasks.spawn(async move {
            let result = work.await;
            drop(permit);
            // The requester may have gone; the work is done either way.
            let _ = tx.send(result);
        });
        rx.await.map_err(|_| {
            Error::internal("the operation ended without an answer (node shutting down?)".into())
        })?
    }

    /// Runs `work` as the node's own without waiting for it (the node's reaction to the mesh,
    /// such as removing a replica whose workload was deleted).
    pub fn spawn<F>(&self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(work);
    }

    /// Takes no new work from now on (a graceful exit); work in progress runs to its end.
    pub fn close(&self) {
        self.permits.close();
    }

    /// Whether [`Owner::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.permits.is_closed()
    }

    /// Operations in progress.
    pub fn in_progress(&self) -> usize {
        self.limit - self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn work_outlives_a_dropped_caller_and_a_full_owner_says_busy() {
        let owner = Owner::new(TaskTracker::new(), 1);
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let caller = {
            let owner = owner.clone();
            tokio::spawn(async move {
                owner
                    .run(async move {
                        let _ = release_rx.await;
                        let _ = done_tx.send(());
                        Ok(())
                    })
                    .await
            })
        };
        // Wait until the work holds the only permit, then drop its caller.
        tokio::time::timeout(Duration::from_secs(5), async {
            while owner.in_progress() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        caller.abort();
        let busy = owner.run(async { Ok(()) }).await.unwrap_err();
        assert!(matches!(busy, Error::Busy(_)), "{busy}");
        release_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), done_rx)
            .await
            .expect("the work finished although its caller was dropped")
            .unwrap();
    }
}
