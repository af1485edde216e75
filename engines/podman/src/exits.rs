//! Exit codes of this node's containers as Podman reported them at their exit (a `died`
//! event's `containerExitCode`, or the answer to a Job's wait: see `wait`), kept so that
//! `status` can tell that a Job's pod ended without asking Podman again. Just after a
//! container exits, Podman is still busy with its pod and the first inspect waited 95-260 ms
//! in a trace of the engines bench's Job (docs/benchmarks.md); the exit code is known by then.
//!
//! Only a success is answered from here: every main container of a run-to-completion pod
//! exited 0 (its pod has restart policy `Never` or `OnFailure`, so nothing restarts it). A
//! non-zero exit is inspected, for its details (OOM kill, Podman's error).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use mesh_runtime::{Health, InstanceState, InstanceStatus};

use crate::handle::InstanceData;

/// Exits kept at most; the oldest go first. A removed pod's go with it.
const CAPACITY: usize = 4096;

/// Container id → last exit code Podman reported, and whether an earlier one was non-zero (an
/// `OnFailure` restart: then the pod is inspected, for its restart count); shared by the
/// engine's clones.
#[derive(Debug, Default)]
pub(crate) struct Exits {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    codes: HashMap<String, Exit>,
    /// Insertion order, for the bound (an id may be listed after it was forgotten).
    order: VecDeque<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exit {
    last: i32,
    failed_before: bool,
}

impl Exits {
    /// A container exited with `code` (the last report wins: `OnFailure` restarts it).
    pub(crate) fn record(&self, id: &str, code: i32) {
        let mut inner = self.lock();
        let failed_before = inner
            .codes
            .get(id)
            .is_some_and(|e| e.last != 0 || e.failed_before);
        let exit = Exit {
            last: code,
            failed_before,
        };
        if inner.codes.insert(id.to_string(), exit).is_none() {
            inner.order.push_back(id.to_string());
        }
        while inner.codes.len() > CAPACITY {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            inner.codes.remove(&oldest);
        }
    }

    /// Forgets the containers of a removed pod, or of one started again (an update's rollback
    /// restarts the old instance: its earlier exits must not answer for the new run).
    pub(crate) fn forget(&self, ids: &[String]) {
        let mut inner = self.lock();
        for id in ids {
            inner.codes.remove(id);
        }
        let Inner { codes, order } = &mut *inner;
        order.retain(|id| codes.contains_key(id));
    }

    /// The status of a run-to-completion pod whose main containers all exited 0, as Podman
    /// reported; `None` when that is not known (an exit not reported yet, a non-zero
    /// one, a long-running pod, a handle from before the ids were kept).
    pub(crate) fn succeeded(&self, data: &InstanceData) -> Option<InstanceStatus> {
        if !data.job || data.main_ids.is_empty() {
            return None;
        }
        let inner = self.lock();
        let all_zero = data.main_ids.iter().all(|id| {
            inner.codes.get(id)
                == Some(&Exit {
                    last: 0,
                    failed_before: false,
                })
        });
        all_zero.then(|| InstanceStatus {
            state: InstanceState::Exited { code: 0 },
            health: Health::NoCheck,
            restarts: 0,
            detail: format!(
                "pod {}: its {} container(s) exited 0, as Podman reported at the exit",
                data.pod,
                data.main_ids.len()
            ),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(ids: &[&str]) -> InstanceData {
        InstanceData {
            pod: "mesh-job-12345678".into(),
            job: true,
            main_ids: ids.iter().map(|s| s.to_string()).collect(),
            ..InstanceData::default()
        }
    }

    #[test]
    fn a_job_pod_succeeded_once_every_main_container_exited_zero() {
        let exits = Exits::default();
        let data = job(&["a", "b"]);
        assert_eq!(exits.succeeded(&data), None);
        exits.record("a", 0);
        assert_eq!(exits.succeeded(&data), None, "b has not exited");
        exits.record("b", 0);
        let status = exits.succeeded(&data).expect("both exited 0");
        assert_eq!(status.state, InstanceState::Exited { code: 0 });
    }

    #[test]
    fn a_container_that_failed_before_is_left_to_inspection_for_its_restart_count() {
        let exits = Exits::default();
        let data = job(&["a"]);
        exits.record("a", 3);
        assert_eq!(exits.succeeded(&data), None);
        exits.record("a", 0);
        assert_eq!(exits.succeeded(&data), None, "restarted by OnFailure");
        exits.forget(&["a".to_string()]);
        exits.record("a", 0);
        assert!(exits.succeeded(&data).is_some(), "a new run");
    }

    #[test]
    fn long_running_pods_and_old_handles_are_never_answered_from_events() {
        let exits = Exits::default();
        exits.record("a", 0);
        let mut service = job(&["a"]);
        service.job = false;
        assert_eq!(exits.succeeded(&service), None);
        assert_eq!(exits.succeeded(&job(&[])), None);
    }

    #[test]
    fn a_removed_pods_exits_are_forgotten_and_the_map_is_bounded() {
        let exits = Exits::default();
        exits.record("a", 0);
        exits.forget(&["a".to_string()]);
        assert_eq!(exits.succeeded(&job(&["a"])), None);
        for i in 0..CAPACITY + 10 {
            exits.record(&format!("c{i}"), 0);
        }
        let inner = exits.lock();
        assert_eq!(inner.codes.len(), CAPACITY);
        assert!(!inner.codes.contains_key("c0"), "the oldest went first");
        assert!(inner.codes.contains_key(&format!("c{}", CAPACITY + 9)));
        assert_eq!(inner.order.len(), CAPACITY);
    }
}
