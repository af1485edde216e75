//! Walking a loaded document by hand: every value carries its field path, so each type
//! error names where it is (`spec.containers[0].ports[1].containerPort: expected an integer,
//! found a string`). Warnings are collected with the same paths.

use std::fmt;

use serde_yaml::{Mapping, Value};

use crate::error::Error;

pub(crate) type Result<T> = std::result::Result<T, Error>;

/// A field path: `spec.containers[0].image`, `metadata.annotations["beemesh.io/x"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Path(String);

impl Path {
    pub(crate) fn root() -> Self {
        Self(String::new())
    }

    /// The path of a mapping entry. Keys that are not plain identifiers are quoted.
    pub(crate) fn key(&self, key: &str) -> Self {
        let plain = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let mut s = self.0.clone();
        if plain {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(key);
        } else {
            s.push_str(&format!("[{key:?}]"));
        }
        Self(s)
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    pub(crate) fn as_str(&self) -> &str {
        if self.0.is_empty() {
            "(document)"
        } else {
            &self.0
        }
    }

    /// An error located at this path.
    pub(crate) fn err(&self, message: impl Into<String>) -> Error {
        Error::invalid(self.as_str(), message)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a value is, for "expected X, found Y" messages.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a decimal number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// True for values that carry no setting: null, false, "", 0, {} and [].
pub(crate) fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Sequence(s) => s.is_empty(),
        Value::Mapping(m) => m.is_empty(),
        Value::Tagged(_) => false,
    }
}

/// A value and where it is.
#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    pub(crate) value: &'a Value,
    pub(crate) path: Path,
}

impl<'a> Node<'a> {
    pub(crate) fn new(value: &'a Value, path: Path) -> Self {
        Self { value, path }
    }

    pub(crate) fn err(&self, message: impl Into<String>) -> Error {
        self.path.err(message)
    }

    fn expected(&self, what: &str) -> Error {
        self.err(format!("expected {what}, found {}", describe(self.value)))
    }

    pub(crate) fn map(&self) -> Result<MapNode<'a>> {
        match self.value {
            Value::Mapping(map) => Ok(MapNode {
                map,
                path: self.path.clone(),
            }),
            _ => Err(self.expected("a mapping")),
        }
    }

    pub(crate) fn seq(&self) -> Result<Vec<Node<'a>>> {
        match self.value {
            Value::Sequence(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| Node::new(v, self.path.index(i)))
                .collect()),
            _ => Err(self.expected("a list")),
        }
    }

    pub(crate) fn str(&self) -> Result<&'a str> {
        match self.value {
            Value::String(s) => Ok(s),
            Value::Number(_) | Value::Bool(_) => Err(self.err(format!(
                "expected a string, found {} (quote it: \"{}\")",
                describe(self.value),
                scalar_text(self.value).unwrap_or_default()
            ))),
            _ => Err(self.expected("a string")),
        }
    }

    /// A non-empty string.
    pub(crate) fn non_empty_str(&self) -> Result<&'a str> {
        let s = self.str()?;
        if s.trim().is_empty() {
            return Err(self.err("must not be empty"));
        }
        Ok(s)
    }

    /// A string, number or boolean written as text (Compose accepts all three).
    pub(crate) fn scalar_string(&self) -> Result<String> {
        scalar_text(self.value).ok_or_else(|| self.expected("a string, number or boolean"))
    }

    pub(crate) fn bool(&self) -> Result<bool> {
        match self.value {
            Value::Bool(b) => Ok(*b),
            _ => Err(self.expected("true or false")),
        }
    }

    /// A boolean, also as the strings `true`/`false` (Compose values after interpolation).
    pub(crate) fn lenient_bool(&self) -> Result<bool> {
        match self.value {
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
            _ => self.bool(),
        }
    }

    pub(crate) fn u64(&self) -> Result<u64> {
        match self.value {
            Value::Number(n) => n.as_u64().ok_or_else(|| {
                self.err(format!("expected a whole number of at least 0, found {n}"))
            }),
            _ => Err(self.expected("an integer")),
        }
    }

    /// An integer, also written as a string (Compose values after interpolation).
    pub(crate) fn lenient_u64(&self) -> Result<u64> {
        match self.value {
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| self.err(format!("expected an integer, found {s:?}"))),
            _ => self.u64(),
        }
    }

    pub(crate) fn u32(&self) -> Result<u32> {
        narrow(self, self.u64()?)
    }

    pub(crate) fn lenient_u32(&self) -> Result<u32> {
        narrow(self, self.lenient_u64()?)
    }

    /// A list of strings.
    pub(crate) fn strings(&self) -> Result<Vec<String>> {
        self.seq()?
            .iter()
            .map(|n| n.str().map(str::to_string))
            .collect()
    }

    /// A string, with null read as the empty string (`key:` with no value).
    pub(crate) fn str_or_empty(&self) -> Result<&'a str> {
        match self.value {
            Value::Null => Ok(""),
            _ => self.str(),
        }
    }
}

fn narrow(node: &Node<'_>, v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| node.err(format!("{v} is too large")))
}

/// The text of a scalar: strings as they are, numbers and booleans as written.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A mapping and where it is.
#[derive(Debug, Clone)]
pub(crate) struct MapNode<'a> {
    pub(crate) map: &'a Mapping,
    pub(crate) path: Path,
}

impl<'a> MapNode<'a> {
    /// The entry `key`, unless absent or null (Kubernetes treats null as unset).
    pub(crate) fn get(&self, key: &str) -> Option<Node<'a>> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(value) => Some(Node::new(value, self.path.key(key))),
        }
    }

    /// The entry `key`, or `<path>.<key>: missing`.
    pub(crate) fn req(&self, key: &str) -> Result<Node<'a>> {
        self.get(key)
            .ok_or_else(|| self.path.key(key).err("missing"))
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Entries in file order; every key must be a string.
    pub(crate) fn entries(&self) -> Result<Vec<(&'a str, Node<'a>)>> {
        self.map
            .iter()
            .map(|(k, v)| match k {
                Value::String(key) => Ok((key.as_str(), Node::new(v, self.path.key(key)))),
                other => Err(self.path.err(format!(
                    "keys must be strings, found {}{}",
                    describe(other),
                    scalar_text(other)
                        .map(|t| format!(" ({t})"))
                        .unwrap_or_default()
                ))),
            })
            .collect()
    }

    /// String keys in file order (non-string keys are skipped).
    pub(crate) fn keys(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.map.keys().filter_map(Value::as_str)
    }
}

/// Warnings of one workload: `<path>: <message>`, deduplicated, in discovery order.
#[derive(Debug, Default)]
pub(crate) struct Warnings(Vec<String>);

impl Warnings {
    pub(crate) fn at(&mut self, path: &Path, message: impl fmt::Display) {
        self.push(format!("{path}: {message}"));
    }

    pub(crate) fn push(&mut self, warning: String) {
        let warning = crate::error::one_line(&warning).into_owned();
        if !self.0.contains(&warning) {
            self.0.push(warning);
        }
    }

    pub(crate) fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// Warns about each field of `map` that is set (not empty) and listed in `fields` with the
/// reason it is not honoured.
pub(crate) fn warn_ignored(map: &MapNode<'_>, fields: &[(&str, &str)], warnings: &mut Warnings) {
    for (field, reason) in fields {
        if let Some(node) = map.get(field) {
            if !is_empty(node.value) {
                warnings.at(&node.path, format!("not honoured: {reason}"));
            }
        }
    }
}

/// Warns about each key of `map` that is not in `known` (a likely typo).
pub(crate) fn warn_unknown(map: &MapNode<'_>, known: &[&[&str]], warnings: &mut Warnings) {
    for key in map.keys() {
        if !known.iter().any(|list| list.contains(&key)) {
            warnings.at(&map.path.key(key), "unknown field, ignored");
        }
    }
}

/// Refuses keys that are neither in `allowed` nor extensions (`x-…`), as the Compose schema
/// does.
pub(crate) fn check_keys(m: &MapNode<'_>, allowed: &[&str]) -> Result<()> {
    for key in m.keys() {
        if !allowed.contains(&key) && !key.starts_with("x-") {
            return Err(m.path.key(key).err("unknown field"));
        }
    }
    if let Some((k, _)) = m.map.iter().find(|(k, _)| !k.is_string()) {
        let shown = scalar_text(k).unwrap_or_else(|| "(complex key)".into());
        return Err(m.path.err(format!("unknown field {shown}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).expect("test YAML parses")
    }

    #[test]
    fn paths_quote_keys_that_are_not_identifiers() {
        let p = Path::root()
            .key("metadata")
            .key("annotations")
            .key("beemesh.io/resources.cpu");
        assert_eq!(
            p.as_str(),
            "metadata.annotations[\"beemesh.io/resources.cpu\"]"
        );
        assert_eq!(
            Path::root()
                .key("spec")
                .key("containers")
                .index(0)
                .key("image")
                .as_str(),
            "spec.containers[0].image"
        );
    }

    #[test]
    fn type_errors_name_the_path_and_what_was_found() {
        let v = yaml("ports: [{containerPort: 80}, {containerPort: web}]");
        let root = Node::new(&v, Path::root()).map().expect("mapping");
        let ports = root.req("ports").and_then(|n| n.seq()).expect("list");
        let err = ports[1]
            .map()
            .and_then(|m| m.req("containerPort"))
            .and_then(|n| n.u64())
            .expect_err("a string is not a port");
        assert_eq!(
            err.to_string(),
            "ports[1].containerPort: expected an integer, found a string"
        );
        let missing = root.req("image").expect_err("absent");
        assert_eq!(missing.to_string(), "image: missing");
    }

    #[test]
    fn numbers_where_strings_are_expected_get_a_quoting_hint() {
        let v = yaml("value: 3");
        let root = Node::new(&v, Path::root()).map().expect("mapping");
        let err = root.req("value").and_then(|n| n.str().map(str::to_string));
        assert_eq!(
            err.expect_err("number").to_string(),
            "value: expected a string, found an integer (quote it: \"3\")"
        );
    }
}
