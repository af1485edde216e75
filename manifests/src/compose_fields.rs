//! The value forms of Compose service fields: commands, `environment` and `labels` as
//! lists or mappings, `depends_on`, `healthcheck`, `restart` and `pull_policy`.

use std::collections::BTreeMap;

use mesh_protocol::spec::{
    Dependency, DependencyCondition, EnvVar, HealthCheck, PullPolicy, RestartPolicy,
};
use serde_yaml::Value;

use crate::compose_syntax::shell_words;
use crate::node::{check_keys, MapNode, Node, Path, Result, Warnings};

/// A command as a string (split like a shell) or a list.
pub(crate) fn words(node: &Node<'_>) -> Result<Vec<String>> {
    match node.value {
        Value::String(s) => shell_words(s).map_err(|e| node.err(e)),
        _ => node.seq()?.iter().map(Node::scalar_string).collect(),
    }
}

/// `environment` as a list (`K=V`, or `K` to pass the caller's value) or a mapping (null
/// passes the caller's value). A variable the caller does not have is left unset.
pub(crate) fn environment(node: &Node<'_>, env: &BTreeMap<String, String>) -> Result<Vec<EnvVar>> {
    let mut pairs: Vec<(String, Option<String>, Path)> = Vec::new();
    match node.value {
        Value::Sequence(_) => {
            for item in node.seq()? {
                let text = item.scalar_string()?;
                match text.split_once('=') {
                    Some((k, v)) => pairs.push((k.to_string(), Some(v.to_string()), item.path)),
                    None => pairs.push((text.trim().to_string(), None, item.path)),
                }
            }
        }
        _ => {
            for (key, value) in node.map()?.entries()? {
                let v = match value.value {
                    Value::Null => None,
                    _ => Some(value.scalar_string()?),
                };
                pairs.push((key.to_string(), v, value.path));
            }
        }
    }
    let mut out: Vec<EnvVar> = Vec::new();
    for (name, value, path) in pairs {
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(path.err(format!("invalid variable name {name:?}")));
        }
        let Some(value) = value.or_else(|| env.get(&name).cloned()) else {
            continue;
        };
        out.retain(|v| v.name != name);
        out.push(EnvVar {
            name,
            value: Some(value),
            value_from: None,
        });
    }
    Ok(out)
}

/// `labels` as a list (`k=v`) or a mapping.
pub(crate) fn labels(node: &Node<'_>) -> Result<Vec<(String, String, Path)>> {
    let mut out = Vec::new();
    match node.value {
        Value::Sequence(_) => {
            for item in node.seq()? {
                let text = item.scalar_string()?;
                let (k, v) = text.split_once('=').unwrap_or((&text, ""));
                let path = item.path.clone();
                out.push((k.to_string(), v.to_string(), path));
            }
        }
        _ => {
            for (key, value) in node.map()?.entries()? {
                let v = match value.value {
                    Value::Null => String::new(),
                    _ => value.scalar_string()?,
                };
                out.push((key.to_string(), v, value.path));
            }
        }
    }
    Ok(out)
}

pub(crate) fn depends_on(node: &Node<'_>) -> Result<Vec<(Dependency, Path)>> {
    if let Value::Sequence(_) = node.value {
        return node
            .seq()?
            .iter()
            .map(|item| {
                let service = item.non_empty_str()?.to_string();
                Ok((
                    Dependency {
                        service,
                        condition: DependencyCondition::ServiceStarted,
                    },
                    item.path.clone(),
                ))
            })
            .collect();
    }
    let mut out = Vec::new();
    for (service, entry) in node.map()?.entries()? {
        let mut condition = DependencyCondition::ServiceStarted;
        if let Value::Mapping(_) = entry.value {
            let m = entry.map()?;
            check_keys(&m, &["condition", "restart", "required"])?;
            if let Some(c) = m.get("condition") {
                condition = match c.str()? {
                    "service_started" => DependencyCondition::ServiceStarted,
                    "service_healthy" => DependencyCondition::ServiceHealthy,
                    "service_completed_successfully" => {
                        DependencyCondition::ServiceCompletedSuccessfully
                    }
                    other => {
                        return Err(c.err(format!(
                            "unknown condition {other:?}: use service_started, service_healthy or \
                         service_completed_successfully"
                        )))
                    }
                };
            }
            for flag in ["restart", "required"] {
                if let Some(n) = m.get(flag) {
                    n.lenient_bool()?;
                }
            }
        } else if !entry.value.is_null() {
            return Err(entry.err("expected a mapping with condition"));
        }
        out.push((
            Dependency {
                service: service.to_string(),
                condition,
            },
            node.path.key(service),
        ));
    }
    Ok(out)
}

pub(crate) fn healthcheck(m: &MapNode<'_>) -> Result<Option<HealthCheck>> {
    check_keys(
        m,
        &[
            "test",
            "interval",
            "timeout",
            "retries",
            "start_period",
            "start_interval",
            "disable",
        ],
    )?;
    let disabled = m
        .get("disable")
        .map(|n| n.lenient_bool())
        .transpose()?
        .unwrap_or(false);
    let test = match (disabled, m.get("test")) {
        (true, _) => vec!["NONE".to_string()],
        (false, None) => return Err(m.path.key("test").err("missing (or set disable: true)")),
        (false, Some(t)) => match t.value {
            Value::String(s) => vec!["CMD-SHELL".to_string(), s.clone()],
            _ => {
                let test = t.strings()?;
                match test.first().map(String::as_str) {
                    Some("CMD" | "CMD-SHELL" | "NONE") => test,
                    _ => return Err(t.err("a list test starts with CMD, CMD-SHELL or NONE")),
                }
            }
        },
    };
    let duration = |field: &str| -> Result<Option<u64>> {
        let Some(n) = m.get(field) else {
            return Ok(None);
        };
        let text = n.scalar_string()?;
        let d = mesh_protocol::duration::parse(&text).map_err(|e| n.err(e.to_string()))?;
        Ok(Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
    };
    Ok(Some(HealthCheck {
        test,
        interval_ms: duration("interval")?,
        timeout_ms: duration("timeout")?,
        retries: m.get("retries").map(|n| n.lenient_u32()).transpose()?,
        start_period_ms: duration("start_period")?,
    }))
}

pub(crate) fn restart(node: &Node<'_>, warnings: &mut Warnings) -> Result<RestartPolicy> {
    let text = match node.value {
        Value::Bool(false) => "no".to_string(),
        _ => node.str()?.to_string(),
    };
    match text.as_str() {
        "no" => Ok(RestartPolicy::Never),
        "always" => Ok(RestartPolicy::Always),
        "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
        "on-failure" => Ok(RestartPolicy::OnFailure),
        other => match other.strip_prefix("on-failure:").map(str::parse::<u32>) {
            Some(Ok(_)) => {
                warnings.at(
                    &node.path,
                    "not honoured: the retry count; it restarts on every failure",
                );
                Ok(RestartPolicy::OnFailure)
            }
            _ => Err(node.err(format!(
                "unknown restart policy {other:?}: use no, always, on-failure[:N] or unless-stopped"
            ))),
        },
    }
}

pub(crate) fn pull_policy(node: &Node<'_>, warnings: &mut Warnings) -> Result<PullPolicy> {
    match node.str()? {
        "always" => Ok(PullPolicy::Always),
        "never" => Ok(PullPolicy::Never),
        "missing" | "if_not_present" => Ok(PullPolicy::IfNotPresent),
        "build" => {
            warnings.at(
                &node.path,
                "not honoured: the mesh does not build images; pulls when missing",
            );
            Ok(PullPolicy::IfNotPresent)
        }
        p if p == "daily" || p == "weekly" || p.starts_with("every_") => {
            warnings.at(
                &node.path,
                "not honoured: periodic refresh; pulls when missing",
            );
            Ok(PullPolicy::IfNotPresent)
        }
        other => Err(node.err(format!(
            "unknown pull policy {other:?}: use always, never, missing or build"
        ))),
    }
}
