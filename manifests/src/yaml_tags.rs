//! The Compose specification's YAML tags `!reset` and `!override` (compose-spec
//! `13-merge.md`). The loader keeps them as [`Value::Tagged`]; they only mean something
//! where one value is merged over another (`extends`, and YAML merge keys `<<`, where a
//! local key already wins), so everywhere else they are resolved as `docker compose` does
//! within one file: `!reset x` is as if the key (or list item) were absent, and
//! `!override x` is `x`.
//!
//! Other formats have no such tags: a Kubernetes or beemesh.io/v1 document holding one is
//! refused at its path ([`first_tag`]).

use serde_yaml::Value;

use crate::node::Path;

/// `!reset`: the inherited value is dropped and this one ignored.
pub(crate) const RESET: &str = "reset";
/// `!override`: this value replaces the inherited one instead of being merged into it.
pub(crate) const OVERRIDE: &str = "override";
/// The tags the loader keeps; any other tag is a syntax error.
pub(crate) const COMPOSE_TAGS: &[&str] = &[RESET, OVERRIDE];

/// A value seen through its tag.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tagged<'a> {
    /// `!reset …`: the value is ignored.
    Reset,
    /// `!override x`: `x` replaces what it is merged over.
    Override(&'a Value),
    /// An untagged value.
    Plain(&'a Value),
}

impl<'a> Tagged<'a> {
    pub(crate) fn of(value: &'a Value) -> Self {
        match value {
            Value::Tagged(t) if t.tag == RESET => Tagged::Reset,
            Value::Tagged(t) if t.tag == OVERRIDE => Tagged::Override(&t.value),
            other => Tagged::Plain(other),
        }
    }

    /// The value as read within one file: `None` for `!reset`, the inner value for
    /// `!override`.
    pub(crate) fn value(self) -> Option<&'a Value> {
        match self {
            Tagged::Reset => None,
            Tagged::Override(v) | Tagged::Plain(v) => Some(v),
        }
    }
}

/// Resolves every tag of `value` as within one file: `!reset` entries and list items
/// disappear, `!override` is unwrapped. `None` when `value` itself is `!reset`.
pub(crate) fn strip(value: Value) -> Option<Value> {
    match value {
        Value::Tagged(t) if t.tag == RESET => None,
        // The loader only builds the two Compose tags, so this is `!override`.
        Value::Tagged(t) => strip(t.value),
        Value::Sequence(items) => Some(Value::Sequence(
            items.into_iter().filter_map(strip).collect(),
        )),
        Value::Mapping(map) => Some(Value::Mapping(
            map.into_iter()
                .filter_map(|(k, v)| strip(v).map(|v| (k, v)))
                .collect(),
        )),
        other => Some(other),
    }
}

/// Like [`strip`], for a value that must stay (a `!reset` value becomes null).
pub(crate) fn stripped(value: &Value) -> Value {
    strip(value.clone()).unwrap_or(Value::Null)
}

/// The path and tag of the first tagged value in `value`, in document order.
pub(crate) fn first_tag(value: &Value, path: &Path) -> Option<(Path, String)> {
    match value {
        Value::Tagged(t) => Some((path.clone(), t.tag.to_string())),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| first_tag(item, &path.index(i))),
        Value::Mapping(map) => map.iter().find_map(|(k, v)| {
            let key = crate::node::scalar_text(k).unwrap_or_else(|| "?".to_string());
            first_tag(v, &path.key(&key))
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Value {
        let mut docs = crate::yaml::load(text.as_bytes(), &crate::Limits::default())
            .unwrap_or_else(|e| panic!("{e}"));
        docs.remove(0).value
    }

    #[test]
    fn strip_drops_resets_and_unwraps_overrides() {
        let v = load(
            "a: !reset [1]\nb: !override {x: 1, y: !reset 2}\nc: [1, !reset 2, !override 3]\n\
             d: {e: !reset null}\n",
        );
        let want = load("b: {x: 1}\nc: [1, 3]\nd: {}\n");
        assert_eq!(strip(v), Some(want));
        assert_eq!(strip(load("!reset x")), None);
    }

    #[test]
    fn tagged_reads_one_value() {
        let v = load("a: !reset 1\nb: !override 2\nc: 3\n");
        assert!(matches!(Tagged::of(&v["a"]), Tagged::Reset));
        assert_eq!(Tagged::of(&v["b"]).value(), Some(&Value::from(2)));
        assert_eq!(Tagged::of(&v["c"]).value(), Some(&Value::from(3)));
        assert_eq!(Tagged::of(&v["a"]).value(), None);
    }

    #[test]
    fn first_tag_names_the_path() {
        let v = load("spec:\n  containers:\n    - name: a\n      image: !override x\n");
        let (path, tag) = first_tag(&v, &Path::root()).expect("tagged");
        assert_eq!(
            (path.as_str(), tag.as_str()),
            ("spec.containers[0].image", "!override")
        );
        assert!(first_tag(&load("a: [1, {b: 2}]\n"), &Path::root()).is_none());
    }
}
