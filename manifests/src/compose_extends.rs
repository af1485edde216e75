//! `extends` within one Compose file, and the file's `!reset`/`!override` tags.
//!
//! Runs on the interpolated document, before anything is validated: each service that
//! `extends` another (`extends: base` or `extends: {service: base}`) becomes the merge of
//! its base (itself resolved first: chains are followed) and its own keys, by the rules of
//! [`crate::compose_merge`]. Afterwards no `extends` key and no tag is left, so the rest of
//! the parser reads plain values. `extends.file` is refused: the mesh reads one file.
//!
//! Chains are followed iteratively and the values copied are counted, so a hostile file
//! (a long chain, or every service extending a big one) fails with an error instead of
//! exhausting the stack or memory.

use std::collections::{BTreeMap, HashMap};

use serde_yaml::{Mapping, Value};

use crate::compose_merge::merge_service;
use crate::node::{check_keys, describe, Node, Path, Result};
use crate::yaml_tags::{strip, Tagged};

/// Most values `extends` may copy from base services, over the whole file. Real files copy
/// a few hundred; this bounds a chain of services each re-copying all of the ones before.
pub(crate) const MAX_EXTENDS_COPIES: usize = 1 << 20;

/// Resolves `extends` in `services`, then every tag of the document.
pub(crate) fn resolve(doc: &mut Value) -> Result<()> {
    if let Value::Mapping(top) = doc {
        if let Some(services) = top.get_mut("services") {
            if let Some(Value::Mapping(map)) = Tagged::of(services).value() {
                let resolved = resolve_services(map)?;
                *services = Value::Mapping(resolved);
            }
        }
    }
    *doc = strip(std::mem::take(doc)).unwrap_or(Value::Null);
    Ok(())
}

/// One service's `extends`: the base's name and where it was written.
struct Extends {
    base: String,
    path: Path,
}

struct Resolver<'a> {
    services: &'a Mapping,
    /// Resolved services (no `extends`, no tags), by name.
    done: BTreeMap<String, Value>,
    /// Values copied so far, against [`MAX_EXTENDS_COPIES`].
    copied: usize,
}

fn resolve_services(services: &Mapping) -> Result<Mapping> {
    let mut resolver = Resolver {
        services,
        done: BTreeMap::new(),
        copied: 0,
    };
    // Sorted, so that of several broken services the same one is always reported.
    let mut names: Vec<&str> = services.keys().filter_map(Value::as_str).collect();
    names.sort_unstable();
    for name in names {
        if resolver.service(name).is_some() {
            resolver.resolve(name)?;
        }
    }
    let mut out = Mapping::new();
    for (key, value) in services {
        let resolved = match key.as_str().and_then(|k| resolver.done.remove(k)) {
            Some(v) => Some(v),
            // `!reset` services, and keys that are not strings (validation reports them).
            None => strip(value.clone()),
        };
        if let Some(v) = resolved {
            out.insert(key.clone(), v);
        }
    }
    Ok(out)
}

impl Resolver<'_> {
    /// Service `name` as written, unless absent or `!reset`.
    fn service(&self, name: &str) -> Option<&Value> {
        self.services.get(name).and_then(|v| Tagged::of(v).value())
    }

    /// Resolves `name` and the services it extends, base first.
    fn resolve(&mut self, name: &str) -> Result<()> {
        let mut chain: Vec<(String, Option<Extends>)> = Vec::new();
        // Position of each service in `chain`: a long chain stays linear.
        let mut positions: HashMap<String, usize> = HashMap::new();
        let mut current = name.to_string();
        while !self.done.contains_key(&current) {
            if let Some(&pos) = positions.get(&current) {
                let mut cycle: Vec<&str> = chain[pos..].iter().map(|(n, _)| n.as_str()).collect();
                cycle.push(&current);
                let closing = chain.last().and_then(|(_, e)| e.as_ref());
                let path = closing.map_or_else(|| Path::root().key("services"), |e| e.path.clone());
                return Err(path.err(format!("extends forms a cycle: {}", cycle.join(" -> "))));
            }
            let extends = self.extends_of(&current)?;
            let next = extends.as_ref().map(|e| e.base.clone());
            positions.insert(current.clone(), chain.len());
            chain.push((current, extends));
            match next {
                Some(base) => current = base,
                None => break,
            }
        }
        for (name, extends) in chain.into_iter().rev() {
            let own = self.service(&name).cloned().unwrap_or(Value::Null);
            let value = match extends {
                None => {
                    let mut value = strip(own).unwrap_or(Value::Null);
                    // `extends:` left empty extends nothing.
                    if let Value::Mapping(m) = &mut value {
                        m.shift_remove("extends");
                    }
                    value
                }
                Some(e) => self.merge(&name, own, &e)?,
            };
            self.done.insert(name, value);
        }
        Ok(())
    }

    /// Reads the `extends` of service `name`; checks that its base exists.
    fn extends_of(&self, name: &str) -> Result<Option<Extends>> {
        let Some(Value::Mapping(service)) = self.service(name) else {
            return Ok(None);
        };
        let at = Path::root().key("services").key(name).key("extends");
        let Some(value) = service.get("extends").and_then(|v| Tagged::of(v).value()) else {
            return Ok(None);
        };
        let (base, path) = match value {
            Value::Null => return Ok(None),
            Value::String(base) => (base.clone(), at),
            Value::Mapping(_) => {
                let stripped = strip(value.clone()).unwrap_or(Value::Null);
                let m = Node::new(&stripped, at).map()?;
                check_keys(&m, &["service", "file"])?;
                if let Some(file) = m.get("file") {
                    let what = match m.get("service").and_then(|s| s.scalar_string().ok()) {
                        Some(base) => format!("service {base}"),
                        None => "the service".to_string(),
                    };
                    return Err(file.err(format!(
                        "other files are not supported; copy {what} from {:?} into this file \
                         (the mesh reads one file)",
                        file.scalar_string().unwrap_or_default()
                    )));
                }
                let service = m.req("service")?;
                (service.non_empty_str()?.to_string(), service.path)
            }
            other => {
                return Err(at.err(format!(
                    "expected a service name or a mapping with service, found {}",
                    describe(other)
                )))
            }
        };
        if self.service(&base).is_none() {
            return Err(path.err(format!("service {base:?} is not defined")));
        }
        Ok(Some(Extends { base, path }))
    }

    /// Merges service `name` (as written) over its resolved base.
    fn merge(&mut self, name: &str, own: Value, extends: &Extends) -> Result<Value> {
        let base = match self.done.get(&extends.base) {
            Some(Value::Mapping(base)) => base.clone(),
            other => {
                return Err(extends.path.err(format!(
                    "cannot extend service {}: expected a mapping, found {}",
                    extends.base,
                    describe(other.unwrap_or(&Value::Null))
                )))
            }
        };
        self.copied = self.copied.saturating_add(count_mapping(&base));
        if self.copied > MAX_EXTENDS_COPIES {
            return Err(extends.path.err(format!(
                "extends copies more than {MAX_EXTENDS_COPIES} values: too many services \
                 extend large services"
            )));
        }
        let Value::Mapping(mut own) = own else {
            // `extends_of` only reads the `extends` of a mapping.
            return Ok(own);
        };
        own.shift_remove("extends");
        let at = Path::root().key("services").key(name);
        merge_service(base, &own, &extends.base, &at).map(Value::Mapping)
    }
}

/// Number of values in `value`, containers included.
fn count(value: &Value) -> usize {
    1 + match value {
        Value::Sequence(items) => items.iter().map(count).sum(),
        Value::Mapping(map) => count_mapping(map),
        Value::Tagged(t) => count(&t.value),
        _ => 0,
    }
}

fn count_mapping(map: &Mapping) -> usize {
    map.iter().map(|(k, v)| count(k) + count(v)).sum()
}
