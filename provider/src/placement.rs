//! Choosing the nodes that run the replicas of a workload. Sans-IO: the node service gathers
//! the candidates (itself and its peers, from heartbeats and node records, with the engine
//! each would pick) and this module ranks them.
//!
//! A candidate qualifies when it has an engine for the workload and enough free CPU and
//! memory for its requests. Qualified candidates are ranked by fewest replicas of this
//! workload already there, then most free CPU, then most free memory, then the entry node
//! itself (no network hop), then peer id (stable). Every candidate not chosen gets a reason.

use mesh_protocol::spec::ResourceAmounts;

/// One node as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCandidate {
    pub peer_id: String,
    pub is_self: bool,
    /// The engine this node would use, or why it cannot run the workload.
    pub engine: Result<String, String>,
    pub cpu_free_millis: u64,
    pub memory_free_bytes: u64,
    /// Replicas of this workload the node already runs.
    pub replicas_here: u32,
}

/// The outcome of ranking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// `(peer id, engine)` of the chosen nodes, best first.
    pub chosen: Vec<(String, String)>,
    /// One line per candidate not chosen, naming it and why.
    pub passed_over: Vec<String>,
    /// Replicas that found no node.
    pub unplaced: u32,
}

fn short(peer: &str) -> &str {
    let n = peer.len();
    &peer[n.saturating_sub(8)..]
}

/// Ranks `candidates` for `replicas` replicas (`None`: one per qualified node, a DaemonSet).
pub fn rank(
    candidates: &[NodeCandidate],
    replicas: Option<u32>,
    needs: ResourceAmounts,
) -> Placement {
    let mut placement = Placement::default();
    let mut qualified: Vec<&NodeCandidate> = Vec::new();
    for c in candidates {
        match &c.engine {
            Err(why) => {
                placement
                    .passed_over
                    .push(format!("{} (…{}): {why}", label(c), short(&c.peer_id)))
            }
            Ok(_) => {
                if let Some(cpu) = needs.cpu_millis.filter(|cpu| *cpu > c.cpu_free_millis) {
                    placement.passed_over.push(format!(
                        "{} (…{}): needs {cpu}m CPU, {}m free",
                        label(c),
                        short(&c.peer_id),
                        c.cpu_free_millis
                    ));
                } else if let Some(mem) = needs.memory_bytes.filter(|m| *m > c.memory_free_bytes) {
                    placement.passed_over.push(format!(
                        "{} (…{}): needs {} MiB memory, {} MiB free",
                        label(c),
                        short(&c.peer_id),
                        mem >> 20,
                        c.memory_free_bytes >> 20
                    ));
                } else {
                    qualified.push(c);
                }
            }
        }
    }
    qualified.sort_by(|a, b| {
        a.replicas_here
            .cmp(&b.replicas_here)
            .then(b.cpu_free_millis.cmp(&a.cpu_free_millis))
            .then(b.memory_free_bytes.cmp(&a.memory_free_bytes))
            .then(b.is_self.cmp(&a.is_self))
            .then(a.peer_id.cmp(&b.peer_id))
    });
    let wanted = replicas.map_or(qualified.len(), |r| r as usize);
    for (i, c) in qualified.iter().enumerate() {
        if i < wanted {
            let engine = c
                .engine
                .clone()
                .expect("qualified candidates have an engine");
            placement.chosen.push((c.peer_id.clone(), engine));
        } else {
            placement.passed_over.push(format!(
                "{} (…{}): capable, not needed ({wanted} replicas went to better-ranked nodes)",
                label(c),
                short(&c.peer_id)
            ));
        }
    }
    placement.unplaced = (wanted.saturating_sub(placement.chosen.len())) as u32;
    placement
}

fn label(c: &NodeCandidate) -> &'static str {
    if c.is_self {
        "this node"
    } else {
        "peer"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, engine: Result<&str, &str>, cpu: u64, here: u32) -> NodeCandidate {
        NodeCandidate {
            peer_id: id.to_string(),
            is_self: id == "self",
            engine: engine.map(str::to_string).map_err(str::to_string),
            cpu_free_millis: cpu,
            memory_free_bytes: 1 << 30,
            replicas_here: here,
        }
    }

    #[test]
    fn prefers_capable_free_and_unloaded_nodes() {
        let nodes = [
            node("self", Ok("mock"), 1000, 0),
            node("peer-b", Ok("mock"), 4000, 0),
            node("peer-c", Err("no engine can run Pod"), 8000, 0),
            node("peer-d", Ok("mock"), 8000, 1),
        ];
        let p = rank(&nodes, Some(2), ResourceAmounts::default());
        assert_eq!(
            p.chosen,
            vec![
                ("peer-b".into(), "mock".into()),
                ("self".into(), "mock".into())
            ]
        );
        assert_eq!(p.unplaced, 0);
        assert_eq!(p.passed_over.len(), 2);
        assert!(p
            .passed_over
            .iter()
            .any(|r| r.contains("no engine can run Pod")));
        assert!(p.passed_over.iter().any(|r| r.contains("not needed")));
    }

    #[test]
    fn places_what_fits_and_says_why() {
        let nodes = [
            node("self", Ok("mock"), 100, 0),
            node("peer-b", Ok("mock"), 4000, 0),
        ];
        let needs = ResourceAmounts {
            cpu_millis: Some(500),
            memory_bytes: None,
        };
        let p = rank(&nodes, Some(3), needs);
        assert_eq!(p.chosen.len(), 1);
        assert_eq!(p.unplaced, 2);
        assert_eq!(
            p.passed_over,
            vec!["this node (…self): needs 500m CPU, 100m free".to_string()]
        );
    }

    #[test]
    fn daemonset_goes_everywhere_capable() {
        let nodes = [
            node("a", Ok("mock"), 1, 0),
            node("b", Ok("podman"), 1, 0),
            node("c", Err("x"), 1, 0),
        ];
        let p = rank(&nodes, None, ResourceAmounts::default());
        assert_eq!(p.chosen.len(), 2);
        assert_eq!(p.unplaced, 0);
    }
}
