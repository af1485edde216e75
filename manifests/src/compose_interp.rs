//! Compose variable interpolation, as `docker compose` does it: `$VAR`, `${VAR}`,
//! `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`,
//! `${VAR+alt}` and `$$` for a literal `$`. Defaults may nest (`${A:-${B}}`). An unset
//! variable becomes the empty string with a warning.
//!
//! Values come from `ParseOptions::env` only: the node never reads its own environment, so
//! the CLI sends the variables the file uses (see [`referenced_env_vars`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;

use crate::node::{Path, Result, Warnings};

/// Deepest nesting of `${…}` inside defaults.
const MAX_NESTING: usize = 16;

/// Interpolates every string value of a Compose document in place (keys are left alone).
pub(crate) fn interpolate_document(
    doc: &mut Value,
    env: &BTreeMap<String, String>,
    warnings: &mut Warnings,
) -> Result<()> {
    let mut interp = Interpolator {
        env,
        strict: true,
        seen: BTreeSet::new(),
        unset: BTreeMap::new(),
    };
    walk(doc, &Path::root, &mut interp)?;
    for (name, path) in interp.unset {
        warnings.at(
            &path,
            format!("variable {name} is not set: using an empty string"),
        );
    }
    Ok(())
}

/// Names of the variables a Compose file reads: every `${VAR}`/`$VAR` (defaults included)
/// and every `environment` entry written without a value. Empty for other formats or
/// unreadable input, so the CLI can always call it.
pub fn referenced_env_vars(input: &[u8]) -> BTreeSet<String> {
    let Ok(documents) = crate::yaml::load(input, &crate::Limits::default()) else {
        return BTreeSet::new();
    };
    let empty = BTreeMap::new();
    let mut interp = Interpolator {
        env: &empty,
        strict: false,
        seen: BTreeSet::new(),
        unset: BTreeMap::new(),
    };
    for doc in documents {
        let Value::Mapping(top) = &doc.value else {
            continue;
        };
        if top.contains_key("apiVersion") || top.contains_key("kind") {
            continue;
        }
        let Some(Value::Mapping(services)) = top.get("services") else {
            continue;
        };
        let mut value = doc.value.clone();
        // Non-strict interpolation never fails; it only records names.
        let _ = walk(&mut value, &Path::root, &mut interp);
        for service in services.values() {
            let environment = service.get("environment");
            match environment.and_then(|v| crate::yaml_tags::Tagged::of(v).value()) {
                Some(Value::Sequence(items)) => {
                    for item in items.iter().filter_map(Value::as_str) {
                        if !item.contains('=') {
                            interp.seen.insert(item.trim().to_string());
                        }
                    }
                }
                Some(Value::Mapping(map)) => {
                    for (k, v) in map {
                        if let (Some(k), Value::Null) = (k.as_str(), v) {
                            interp.seen.insert(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
    }
    interp.seen.retain(|name| !name.is_empty());
    interp.seen
}

/// Interpolates the strings under `value`. Paths are built only for strings that hold a
/// `$`, so large documents cost no allocation per node.
fn walk(value: &mut Value, path: &dyn Fn() -> Path, interp: &mut Interpolator<'_>) -> Result<()> {
    match value {
        Value::String(s) if s.contains('$') => {
            let at = path();
            *s = interp
                .expand(s, &at, 0)
                .map_err(|message| at.err(message))?;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &|| path().index(i), interp)?;
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = key.as_str().unwrap_or("?");
                walk(item, &|| path().key(key), interp)?;
            }
        }
        // A `!reset` value is ignored, so it is not interpolated (no warning, no
        // `${VAR:?}` error); an `!override` value is.
        Value::Tagged(tagged) if tagged.tag != crate::yaml_tags::RESET => {
            walk(&mut tagged.value, path, interp)?;
        }
        _ => {}
    }
    Ok(())
}

struct Interpolator<'e> {
    env: &'e BTreeMap<String, String>,
    /// `false` when only collecting names: `?` never fails and both branches are read.
    strict: bool,
    seen: BTreeSet<String>,
    unset: BTreeMap<String, Path>,
}

impl Interpolator<'_> {
    fn lookup(&mut self, name: &str) -> Option<String> {
        self.seen.insert(name.to_string());
        self.env.get(name).cloned()
    }

    fn expand(
        &mut self,
        text: &str,
        path: &Path,
        depth: usize,
    ) -> std::result::Result<String, String> {
        if depth > MAX_NESTING {
            return Err(format!(
                "interpolation nested deeper than {MAX_NESTING} levels"
            ));
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            out.push_str(&rest[..dollar]);
            let after = &rest[dollar + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(inner_and_tail) = after.strip_prefix('{') {
                let end = closing_brace(inner_and_tail)
                    .ok_or_else(|| format!("unterminated ${{ in {text:?}"))?;
                out.push_str(&self.braced(&inner_and_tail[..end], path, depth)?);
                rest = &inner_and_tail[end + 1..];
            } else {
                let len = name_len(after);
                if len == 0 {
                    return Err(format!(
                        "invalid interpolation in {text:?}: $ must be followed by a variable \
                         name or {{; write $$ for a literal $"
                    ));
                }
                let name = &after[..len];
                out.push_str(&self.plain(name, path));
                rest = &after[len..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `$NAME` or `${NAME}`: unset is empty, with a warning.
    fn plain(&mut self, name: &str, path: &Path) -> String {
        self.lookup(name).unwrap_or_else(|| {
            self.unset
                .entry(name.to_string())
                .or_insert_with(|| path.clone());
            String::new()
        })
    }

    fn braced(
        &mut self,
        inner: &str,
        path: &Path,
        depth: usize,
    ) -> std::result::Result<String, String> {
        let len = name_len(inner);
        if len == 0 {
            return Err(format!(
                "invalid interpolation ${{{inner}}}: expected a variable name"
            ));
        }
        let (name, op) = inner.split_at(len);
        if op.is_empty() {
            return Ok(self.plain(name, path));
        }
        let value = self.lookup(name);
        let (colon, op) = match op.strip_prefix(':') {
            Some(op) => (true, op),
            None => (false, op),
        };
        // With a colon, an empty value counts as unset.
        let set = value.as_deref().filter(|v| !colon || !v.is_empty());
        let mut chars = op.chars();
        let operator = chars.next();
        let arg = chars.as_str();
        match (operator, set) {
            (Some('-'), Some(v)) => {
                if !self.strict {
                    self.expand(arg, path, depth + 1)?;
                }
                Ok(v.to_string())
            }
            (Some('-'), None) => self.expand(arg, path, depth + 1),
            (Some('?'), Some(v)) => Ok(v.to_string()),
            (Some('?'), None) if !self.strict => Ok(String::new()),
            (Some('?'), None) => Err(format!(
                "required variable {name} is missing a value{}",
                if arg.is_empty() {
                    String::new()
                } else {
                    format!(": {arg}")
                }
            )),
            (Some('+'), Some(_)) => self.expand(arg, path, depth + 1),
            (Some('+'), None) => {
                if !self.strict {
                    self.expand(arg, path, depth + 1)?;
                }
                Ok(String::new())
            }
            _ => Err(format!(
                "invalid interpolation ${{{inner}}}: use ${{VAR}}, ${{VAR:-default}}, \
                 ${{VAR:?error}} or ${{VAR:+alternative}}"
            )),
        }
    }
}

/// Length of the variable name at the start of `text` (`[A-Za-z_][A-Za-z0-9_]*`).
fn name_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    match bytes.first() {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => bytes
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
            .unwrap_or(bytes.len()),
        _ => 0,
    }
}

/// Index of the `}` closing a `${`, skipping nested `${…}`.
fn closing_brace(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
#[path = "compose_interp_tests.rs"]
mod tests;
