//! Merging an extending service over the service it `extends`, at the YAML value level,
//! before the result is read like any other service. The rules are the Compose
//! specification's (`05-services.md#extends`, `13-merge.md`) as `docker compose` applies
//! them:
//!
//! - mappings are merged key by key, scalars are replaced, sequences are appended;
//! - `command`, `entrypoint`, `healthcheck.test` and `ulimits.*` are replaced;
//! - `environment`, `labels`, `annotations`, `sysctls`, `extra_hosts`, `deploy.labels` and
//!   `build.args`/`labels`/`additional_contexts` are merged as mappings whichever form
//!   (`K=V` list or mapping) each side uses, later keys winning;
//! - `depends_on`, `networks` and `models` are merged as mappings (a list entry of
//!   `depends_on` is `{condition: service_started, required: true}`);
//! - `ports`, `volumes`, `secrets`, `configs` and `devices` are appended, an entry with the
//!   unique key of an earlier one (target, or ip/published/target/protocol for ports)
//!   replacing it; `expose`, `cap_add`, `cap_drop`, `profiles`, `links`, `security_opt`,
//!   `external_links`, `device_cgroup_rules`, `dns`, `dns_opt`, `dns_search`, `tmpfs`,
//!   `env_file` and `label_file` are appended without duplicates (a string counts as a
//!   one-item list where Compose allows one);
//! - `build` as a string is `{context: …}`; `logging` is replaced when the drivers differ;
//! - in the extending service, `!reset` removes the inherited entry, `!override` replaces
//!   it whole, and null keeps it.

use std::collections::HashMap;

use serde_yaml::{Mapping, Value};

use crate::compose_syntax::{volume_spec, ShortVolume};
use crate::node::{describe, scalar_text, Node, Path, Result};
use crate::yaml_tags::{strip, stripped, Tagged};

/// Merges service `over` (its `extends` key already removed) over `base`, the resolved
/// service named `base_name`. `at` is the extending service's path, for errors.
pub(crate) fn merge_service(
    base: Mapping,
    over: &Mapping,
    base_name: &str,
    at: &Path,
) -> Result<Mapping> {
    let merger = Merger { base_name };
    merger.mapping(&[], at, base, over)
}

/// How the values at one key are merged.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Mappings key by key, sequences appended, anything else replaced.
    Default,
    /// The extending value replaces the inherited one.
    Replace,
    /// `K=V` lists or mappings, merged as mappings.
    KeyValue,
    /// Lists of names or mappings keyed by name, merged as mappings; the list form's
    /// entries become `{condition: service_started, required: true}` for `depends_on`.
    Names { depends_on: bool },
    /// Sequences appended; an entry whose key matches an earlier one replaces it. With
    /// `one`, a single string is a one-item list (`dns: 8.8.8.8`).
    Unique {
        key: fn(&Value) -> Option<String>,
        one: bool,
    },
    /// `build: ./dir` is `build: {context: ./dir}`.
    Build,
    /// Options merge only when both sides use the same driver (or one names none).
    Logging,
}

/// The rule for a key path relative to the service (`["healthcheck", "test"]`).
fn rule(keys: &[&str]) -> Rule {
    match keys {
        ["command" | "entrypoint"] | ["healthcheck", "test"] | ["ulimits", _] => Rule::Replace,
        ["environment" | "labels" | "annotations" | "sysctls" | "extra_hosts"]
        | ["deploy", "labels"]
        | ["build", "args" | "labels" | "additional_contexts" | "extra_hosts"] => Rule::KeyValue,
        ["depends_on"] => Rule::Names { depends_on: true },
        ["networks" | "models"] => Rule::Names { depends_on: false },
        ["ports"] => unique(port_key),
        ["volumes"] => unique(volume_key),
        ["devices"] => unique(device_key),
        ["secrets"] => unique(|v| mount_key(v, "/run/secrets")),
        ["configs"] => unique(|v| mount_key(v, "")),
        ["expose"
        | "cap_add"
        | "cap_drop"
        | "profiles"
        | "links"
        | "security_opt"
        | "external_links"
        | "device_cgroup_rules"
        | "dns_opt"] => unique(scalar_text),
        ["dns" | "dns_search" | "tmpfs" | "env_file" | "label_file"] => Rule::Unique {
            key: scalar_text,
            one: true,
        },
        ["build"] => Rule::Build,
        ["logging"] => Rule::Logging,
        _ => Rule::Default,
    }
}

fn unique(key: fn(&Value) -> Option<String>) -> Rule {
    Rule::Unique { key, one: false }
}

struct Merger<'a> {
    base_name: &'a str,
}

impl Merger<'_> {
    /// Merges mapping `over` into `base`, honouring `!reset` and `!override` on its entries.
    fn mapping(
        &self,
        keys: &[&str],
        at: &Path,
        mut base: Mapping,
        over: &Mapping,
    ) -> Result<Mapping> {
        for (key, value) in over {
            let Some(name) = key.as_str() else {
                // Not a valid Compose key: keep it for validation to report.
                base.insert(key.clone(), stripped(value));
                continue;
            };
            match Tagged::of(value) {
                Tagged::Reset => {
                    // Keeps the order of the other entries.
                    base.shift_remove(key);
                }
                Tagged::Override(v) => {
                    base.insert(key.clone(), stripped(v));
                }
                Tagged::Plain(v) => {
                    let merged = match base.get_mut(key) {
                        Some(inherited) => {
                            let path: Vec<&str> = keys.iter().copied().chain([name]).collect();
                            let inherited = std::mem::take(inherited);
                            self.value(&path, &at.key(name), inherited, v)?
                        }
                        None => stripped(v),
                    };
                    base.insert(key.clone(), merged);
                }
            }
        }
        Ok(base)
    }

    /// Merges an untagged `over` into `base` at `keys`.
    fn value(&self, keys: &[&str], at: &Path, base: Value, over: &Value) -> Result<Value> {
        // An empty value (`environment:`) does not clear what is inherited: that is what
        // `!reset` is for.
        if over.is_null() {
            return Ok(base);
        }
        if base.is_null() {
            return Ok(stripped(over));
        }
        match rule(keys) {
            Rule::Replace => Ok(stripped(over)),
            Rule::KeyValue => {
                let base = key_values(&base, at)?;
                let over = key_values(over, at)?;
                Ok(Value::Mapping(flat(base, &over)))
            }
            Rule::Names { depends_on } => {
                let base = names(&base, at, depends_on)?;
                let over = names(over, at, depends_on)?;
                // Entries merge like any mapping: `condition` from one side, `required`
                // from the other.
                Ok(Value::Mapping(self.mapping(keys, at, base, &over)?))
            }
            Rule::Unique { key, one } => {
                let as_list = |v: &Value| match v {
                    Value::Sequence(items) => Some(items.clone()),
                    Value::String(_) if one => Some(vec![v.clone()]),
                    _ => None,
                };
                let (Some(b), Some(o)) = (as_list(&base), as_list(over)) else {
                    return Err(self.mismatch(at, &base, over));
                };
                Ok(Value::Sequence(deduplicate(b, o, key)))
            }
            Rule::Build => {
                let as_map = |v: &Value| match v {
                    Value::String(s) => Ok(Mapping::from_iter([(
                        Value::from("context"),
                        Value::from(s.as_str()),
                    )])),
                    Value::Mapping(m) => Ok(m.clone()),
                    other => Err(self.mismatch(at, &base, other)),
                };
                let (b, o) = (as_map(&base)?, as_map(over)?);
                Ok(Value::Mapping(self.mapping(keys, at, b, &o)?))
            }
            Rule::Logging => {
                let driver =
                    |v: &Value| v.get("driver").and_then(|d| Tagged::of(d).value()).cloned();
                match (driver(&base), driver(over)) {
                    (Some(b), Some(o)) if b != o => Ok(stripped(over)),
                    _ => self.default(keys, at, base, over),
                }
            }
            Rule::Default => self.default(keys, at, base, over),
        }
    }

    fn default(&self, keys: &[&str], at: &Path, base: Value, over: &Value) -> Result<Value> {
        match (base, over) {
            (Value::Mapping(b), Value::Mapping(o)) => {
                Ok(Value::Mapping(self.mapping(keys, at, b, o)?))
            }
            (Value::Sequence(mut b), Value::Sequence(o)) => {
                b.extend(o.iter().cloned().filter_map(strip));
                Ok(Value::Sequence(b))
            }
            (b @ (Value::Mapping(_) | Value::Sequence(_)), o) => Err(self.mismatch(at, &b, o)),
            (_, o) => Ok(stripped(o)),
        }
    }

    fn mismatch(&self, at: &Path, base: &Value, over: &Value) -> crate::error::Error {
        at.err(format!(
            "cannot merge {} into {} inherited from service {}: write it in the same form or \
             replace it with !override",
            describe(over),
            describe(base),
            self.base_name
        ))
    }
}

/// A flat mapping merge: later keys win, `!reset` removes, `!override` is the value.
fn flat(mut base: Mapping, over: &Mapping) -> Mapping {
    for (key, value) in over {
        match Tagged::of(value).value() {
            None => {
                base.shift_remove(key);
            }
            Some(v) => {
                base.insert(key.clone(), stripped(v));
            }
        }
    }
    base
}

/// `environment`-like values as a mapping: `K=V` → `K: V`, `K` → `K: null`.
fn key_values(value: &Value, at: &Path) -> Result<Mapping> {
    as_mapping(value, at, |text| match text.split_once('=') {
        Some((k, v)) => (k.into(), v.into()),
        None => (text.trim().into(), Value::Null),
    })
}

/// `depends_on`-like values as a mapping keyed by name.
fn names(value: &Value, at: &Path, depends_on: bool) -> Result<Mapping> {
    as_mapping(value, at, |name| {
        let entry = if depends_on {
            Value::Mapping(Mapping::from_iter([
                ("condition".into(), "service_started".into()),
                ("required".into(), true.into()),
            ]))
        } else {
            Value::Null
        };
        (name.into(), entry)
    })
}

/// A mapping as it is, or a list turned into one, each item's text becoming an entry through
/// `entry`. A list item's own tag means what it means in one file (`!reset` drops it).
fn as_mapping(
    value: &Value,
    at: &Path,
    entry: impl Fn(String) -> (Value, Value),
) -> Result<Mapping> {
    match value {
        Value::Mapping(m) => Ok(m.clone()),
        Value::Sequence(items) => {
            let mut out = Mapping::new();
            for (i, item) in items.iter().enumerate() {
                let Some(item) = Tagged::of(item).value() else {
                    continue;
                };
                let (k, v) = entry(Node::new(item, at.index(i)).scalar_string()?);
                out.insert(k, v);
            }
            Ok(out)
        }
        other => Err(at.err(format!(
            "expected a list or a mapping, found {}",
            describe(other)
        ))),
    }
}

/// `base` then `over`; an entry whose key was seen replaces the earlier entry in place.
/// Entries without a key (not a form Compose allows) are kept for validation to report.
fn deduplicate(
    base: Vec<Value>,
    over: Vec<Value>,
    key: fn(&Value) -> Option<String>,
) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let items = base.into_iter().chain(over.into_iter().filter_map(strip));
    for item in items {
        match key(&item) {
            Some(k) => match seen.get(&k) {
                Some(&at) => out[at] = item,
                None => {
                    seen.insert(k, out.len());
                    out.push(item);
                }
            },
            None => out.push(item),
        }
    }
    out
}

/// `ip:published:target/protocol` of a port, with Compose's defaults.
fn port_key(port: &Value) -> Option<String> {
    match port {
        Value::Mapping(m) => {
            let field = |k: &str, default: &str| {
                m.get(k)
                    .and_then(scalar_text)
                    .unwrap_or_else(|| default.to_string())
            };
            Some(format!(
                "{}:{}:{}/{}",
                field("host_ip", "0.0.0.0"),
                field("published", ""),
                field("target", ""),
                field("protocol", "tcp")
            ))
        }
        other => scalar_text(other),
    }
}

/// The target path of a volume (`data:/srv:ro` → `/srv`).
fn volume_key(volume: &Value) -> Option<String> {
    match volume {
        Value::String(s) => Some(match volume_spec(s) {
            Ok(
                ShortVolume::Anonymous { target }
                | ShortVolume::Bind { target, .. }
                | ShortVolume::Named { target, .. },
            ) => target,
            // Invalid: the service's own validation reports it.
            Err(_) => s.clone(),
        }),
        Value::Mapping(m) => m.get("target").and_then(scalar_text),
        _ => None,
    }
}

/// The container path of a device (`/dev/a:/dev/b:rwm` → `/dev/b`).
fn device_key(device: &Value) -> Option<String> {
    match device {
        Value::String(s) => Some(s.split(':').nth(1).unwrap_or(s).to_string()),
        Value::Mapping(m) => m.get("target").and_then(scalar_text),
        _ => None,
    }
}

/// Where a secret or config is mounted: its `target`, else `<default dir>/<source>`.
fn mount_key(mount: &Value, dir: &str) -> Option<String> {
    match mount {
        Value::String(s) => Some(format!("{dir}/{s}")),
        Value::Mapping(m) => match m.get("target").and_then(scalar_text) {
            Some(target) => Some(target),
            None => m
                .get("source")
                .and_then(scalar_text)
                .map(|s| format!("{dir}/{s}")),
        },
        _ => None,
    }
}

#[cfg(test)]
#[path = "compose_merge_tests.rs"]
mod tests;
