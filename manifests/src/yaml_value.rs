//! Building a [`Value`] from any serde deserializer (serde_yaml or serde_json) under an
//! expansion budget, with duplicate keys and YAML merge keys handled as the value is built.
//! The Compose tags `!reset` and `!override` are kept as [`Value::Tagged`]; other tags are
//! refused.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde_yaml::value::{Tag, TaggedValue};
use serde_yaml::{Mapping, Value};

use crate::error::{Error, ErrorKind};
use crate::yaml_tags::COMPOSE_TAGS;

/// Budget units a node costs on top of its scalar text.
const NODE_COST: usize = 8;

/// A failure raised by our own visitor; its message replaces the parser's wording.
#[derive(Debug)]
enum Failure {
    TooComplex(String),
    Syntax(String),
}

/// Expansion budget shared by every document of one file.
#[derive(Debug)]
pub(crate) struct Budget {
    remaining: Cell<usize>,
    failure: RefCell<Option<Failure>>,
}

impl Budget {
    pub(crate) fn new(units: usize) -> Self {
        Self {
            remaining: Cell::new(units),
            failure: RefCell::new(None),
        }
    }

    fn charge<E: de::Error>(&self, units: usize) -> std::result::Result<(), E> {
        match self.remaining.get().checked_sub(units) {
            Some(left) => {
                self.remaining.set(left);
                Ok(())
            }
            None => Err(self.fail(Failure::TooComplex(
                "the document expands to too much data through anchors, aliases or merge keys \
                 (a \"billion laughs\" document?)"
                    .to_string(),
            ))),
        }
    }

    fn fail<E: de::Error>(&self, failure: Failure) -> E {
        let message = match &failure {
            Failure::TooComplex(m) | Failure::Syntax(m) => m.clone(),
        };
        let mut slot = self.failure.borrow_mut();
        if slot.is_none() {
            *slot = Some(failure);
        }
        E::custom(message)
    }

    /// Turns a parser error into ours, preferring the failure our visitor recorded.
    pub(crate) fn error(&self, line: usize, column: usize, text: &str) -> Error {
        let kind = match self.failure.borrow_mut().take() {
            Some(Failure::TooComplex(message)) => ErrorKind::TooComplex {
                line,
                column,
                message,
            },
            Some(Failure::Syntax(message)) => ErrorKind::Syntax {
                line,
                column,
                message,
            },
            None if text.contains("recursion limit exceeded") => ErrorKind::TooComplex {
                line,
                column,
                message: "nesting is deeper than 128 levels".to_string(),
            },
            None if text.contains("repetition limit exceeded") => ErrorKind::TooComplex {
                line,
                column,
                message: "aliases are expanded too many times (a \"billion laughs\" document?)"
                    .to_string(),
            },
            None => ErrorKind::Syntax {
                line,
                column,
                message: text.to_string(),
            },
        };
        kind.into()
    }
}

/// Builds a [`Value`] while charging the budget; with `duplicate_of`, it is a mapping key
/// that must not already be in that mapping.
#[derive(Clone, Copy)]
pub(crate) struct ValueSeed<'b> {
    budget: &'b Budget,
    duplicate_of: Option<&'b Mapping>,
}

impl<'b> ValueSeed<'b> {
    pub(crate) fn new(budget: &'b Budget) -> Self {
        Self {
            budget,
            duplicate_of: None,
        }
    }

    fn leaf<E: de::Error>(self, value: Value, text_len: usize) -> std::result::Result<Value, E> {
        self.budget.charge(NODE_COST.saturating_add(text_len))?;
        self.unique(value)
    }

    fn unique<E: de::Error>(self, key: Value) -> std::result::Result<Value, E> {
        match self.duplicate_of {
            Some(mapping) if mapping.contains_key(&key) => {
                let shown = match &key {
                    Value::String(s) => format!("{s:?}"),
                    other => crate::node::scalar_text(other).unwrap_or_else(|| "(complex)".into()),
                };
                Err(self
                    .budget
                    .fail(Failure::Syntax(format!("duplicate key {shown}"))))
            }
            _ => Ok(key),
        }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Value, E> {
        self.leaf(Value::Bool(v), 0)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Value, E> {
        self.leaf(Value::Number(v.into()), 0)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Value, E> {
        self.leaf(Value::Number(v.into()), 0)
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> std::result::Result<Value, E> {
        match i64::try_from(v) {
            Ok(small) => self.visit_i64(small),
            Err(_) => self.visit_f64(v as f64),
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> std::result::Result<Value, E> {
        match u64::try_from(v) {
            Ok(small) => self.visit_u64(small),
            Err(_) => self.visit_f64(v as f64),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Value, E> {
        self.leaf(Value::Number(v.into()), 0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Value, E> {
        self.leaf(Value::String(v.to_owned()), v.len())
    }

    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Value, E> {
        let len = v.len();
        self.leaf(Value::String(v), len)
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> std::result::Result<Value, E> {
        Err(self.budget.fail(Failure::Syntax(
            "binary values are not supported".to_string(),
        )))
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Value, E> {
        self.leaf(Value::Null, 0)
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<Value, E> {
        self.leaf(Value::Null, 0)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        let value = ValueSeed::new(self.budget).deserialize(d)?;
        self.unique(value)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        self.budget.charge(NODE_COST)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(ValueSeed::new(self.budget))? {
            items.push(item);
        }
        self.unique(Value::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        self.budget.charge(NODE_COST)?;
        let mut mapping = Mapping::new();
        let mut merge: Option<Value> = None;
        loop {
            let seed = ValueSeed {
                budget: self.budget,
                duplicate_of: Some(&mapping),
            };
            let Some(key) = map.next_key_seed(seed)? else {
                break;
            };
            let value = map.next_value_seed(ValueSeed::new(self.budget))?;
            if key.as_str() == Some("<<") {
                if merge.is_some() {
                    return Err(self.budget.fail(Failure::Syntax(
                        "duplicate merge key <<: merge several mappings with <<: [*a, *b]"
                            .to_string(),
                    )));
                }
                merge = Some(value);
            } else {
                mapping.insert(key, value);
            }
        }
        if let Some(merge) = merge {
            apply_merge(&mut mapping, merge).map_err(|f| self.budget.fail(f))?;
        }
        self.unique(Value::Mapping(mapping))
    }

    /// A tagged node. Only the Compose tags `!reset` and `!override` are kept (as
    /// [`Value::Tagged`], resolved by [`crate::yaml_tags`] once the format is known); any
    /// other tag, and a tag on a key, is refused here so that the error has a line.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> std::result::Result<Value, A::Error> {
        let (tag, variant): (String, _) = data.variant()?;
        if !COMPOSE_TAGS.contains(&tag.as_str()) {
            return Err(self.budget.fail(Failure::Syntax(format!(
                "YAML tag !{tag} is not supported (Compose files accept !reset and !override)"
            ))));
        }
        if self.duplicate_of.is_some() {
            return Err(self.budget.fail(Failure::Syntax(format!(
                "YAML tag !{tag} is not supported on a key: tag the value"
            ))));
        }
        self.budget.charge(NODE_COST)?;
        let value = variant.newtype_variant_seed(ValueSeed::new(self.budget))?;
        Ok(Value::Tagged(Box::new(TaggedValue {
            tag: Tag::new(tag),
            value,
        })))
    }
}

/// YAML merge keys (<https://yaml.org/type/merge.html>): keys of the mapping win over merged
/// ones, and earlier merged mappings win over later ones. The merged values were already
/// charged when they were built, so merging moves them without copying.
fn apply_merge(mapping: &mut Mapping, merge: Value) -> std::result::Result<(), Failure> {
    let sources = match merge {
        Value::Mapping(m) => vec![m],
        Value::Sequence(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Mapping(m) => Ok(m),
                _ => Err(merge_error()),
            })
            .collect::<std::result::Result<_, _>>()?,
        _ => return Err(merge_error()),
    };
    for source in sources {
        for (key, value) in source {
            if !mapping.contains_key(&key) {
                mapping.insert(key, value);
            }
        }
    }
    Ok(())
}

fn merge_error() -> Failure {
    Failure::Syntax(
        "the merge key << takes a mapping or a list of mappings (<<: *defaults)".to_string(),
    )
}
