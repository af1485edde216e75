//! `depends_on` across services: every dependency is a started service, and the
//! dependencies form no cycle (`docker compose` refuses one too: nothing could start first).

use std::collections::HashMap;

use crate::compose_service::Service;
use crate::node::{Result, Warnings};

/// Checks the `depends_on` of the `enabled` services; `skipped` are the services left out
/// by their profiles.
pub(crate) fn check(
    enabled: &[(Service, Warnings)],
    skipped: &[(Service, Warnings)],
) -> Result<()> {
    let index: HashMap<&str, usize> = enabled
        .iter()
        .enumerate()
        .map(|(i, (s, _))| (s.container.name.as_str(), i))
        .collect();
    let profiled: HashMap<&str, &Service> = skipped
        .iter()
        .map(|(s, _)| (s.container.name.as_str(), s))
        .collect();
    for (service, _) in enabled {
        for (dep, path) in service
            .container
            .depends_on
            .iter()
            .zip(&service.dependency_paths)
        {
            if let Some(s) = profiled.get(dep.service.as_str()) {
                return Err(path.err(format!(
                    "service {} is only started with profile(s) {}",
                    dep.service,
                    s.profiles.join(", ")
                )));
            }
            if !index.contains_key(dep.service.as_str()) {
                return Err(path.err(format!("service {:?} is not defined", dep.service)));
            }
        }
    }
    check_cycles(enabled, &index)
}

/// Depth-first search from each service in name order, following dependencies in the
/// order they are written, so the same cycle is always reported. The search keeps its own
/// stack: a hostile file may chain thousands of services.
fn check_cycles(enabled: &[(Service, Warnings)], index: &HashMap<&str, usize>) -> Result<()> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum State {
        New,
        /// On the current search path.
        Open,
        Done,
    }
    let name = |i: usize| enabled[i].0.container.name.as_str();
    let mut order: Vec<usize> = (0..enabled.len()).collect();
    order.sort_by(|a, b| name(*a).cmp(name(*b)));
    let mut state = vec![State::New; enabled.len()];
    for start in order {
        if state[start] != State::New {
            continue;
        }
        state[start] = State::Open;
        // (service, next dependency to follow)
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        while let Some(top) = stack.last_mut() {
            let (node, edge) = *top;
            let service = &enabled[node].0;
            let Some(dep) = service.container.depends_on.get(edge) else {
                state[node] = State::Done;
                stack.pop();
                continue;
            };
            top.1 += 1;
            // `check` has refused dependencies on services that are not started.
            let Some(&next) = index.get(dep.service.as_str()) else {
                continue;
            };
            match state[next] {
                State::New => {
                    state[next] = State::Open;
                    stack.push((next, 0));
                }
                State::Open => {
                    let from = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                    let mut cycle: Vec<&str> =
                        stack[from..].iter().map(|(n, _)| name(*n)).collect();
                    cycle.push(name(next));
                    let message = format!("depends_on forms a cycle: {}", cycle.join(" -> "));
                    return Err(match service.dependency_paths.get(edge) {
                        Some(path) => path.err(message),
                        None => crate::node::Path::root().key("services").err(message),
                    });
                }
                State::Done => {}
            }
        }
    }
    Ok(())
}
