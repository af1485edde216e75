//! Bytes to documents: size and document-count limits, BOM, JSON or YAML, duplicate keys,
//! YAML merge keys (`<<`), and a bounded expansion of anchors and aliases.
//!
//! Values are built by our own seed ([`crate::yaml_value`]) rather than `serde_yaml::Value`'s
//! `Deserialize`, for three reasons: every node is charged against an expansion budget
//! while it is built (serde_yaml's own alias repetition limit allows a quadratic blow-up),
//! duplicate keys are reported at the duplicate rather than at the start of the mapping,
//! and merge keys (which serde_yaml 0.9 leaves as plain `<<` entries) are applied as the
//! mapping is built, so anchored content is merged once per use.

use serde::de::DeserializeSeed;
use serde_yaml::Value;

use crate::error::{Error, ErrorKind};
use crate::node::Result;
use crate::yaml_value::{Budget, ValueSeed};
use crate::Limits;

/// Anchors, aliases and merge keys may expand a file to this many times its size, plus
/// [`EXPANSION_ALLOWANCE`]. Sizes are in budget units: 8 per node plus the bytes of its text,
/// so a file without aliases fits.
pub const EXPANSION_FACTOR: usize = 8;

/// Budget units every file gets on top of [`EXPANSION_FACTOR`] times its size (about 100 000
/// nodes), for small files that reuse anchors a lot.
pub const EXPANSION_ALLOWANCE: usize = 1 << 20;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// One document of a stream; `index` is 1-based and counts every `---` document.
#[derive(Debug)]
pub(crate) struct Document {
    pub(crate) index: usize,
    pub(crate) value: Value,
}

/// Loads every non-empty document of `input`. Fails with [`ErrorKind::Empty`] when there
/// is none.
pub(crate) fn load(input: &[u8], limits: &Limits) -> Result<Vec<Document>> {
    if input.len() > limits.max_bytes {
        return Err(ErrorKind::TooLarge {
            size: input.len(),
            limit: limits.max_bytes,
        }
        .into());
    }
    let input = input.strip_prefix(UTF8_BOM).unwrap_or(input);
    let budget_units = input
        .len()
        .saturating_mul(EXPANSION_FACTOR)
        .saturating_add(EXPANSION_ALLOWANCE);
    let first = input.iter().position(|b| !b.is_ascii_whitespace());
    let Some(first) = first else {
        return Err(ErrorKind::Empty.into());
    };
    let documents = if matches!(input[first], b'{' | b'[') {
        match load_json(input, &Budget::new(budget_units)) {
            Ok(value) => vec![Document { index: 1, value }],
            // Flow-style YAML also starts with `{`; report the JSON error only for input
            // that is JSON beyond doubt.
            Err(json) => match load_yaml(input, limits, &Budget::new(budget_units)) {
                Ok(documents) => documents,
                Err(yaml) if looks_like_json(&input[first..]) => {
                    return Err(if matches!(yaml.kind(), ErrorKind::TooComplex { .. }) {
                        yaml
                    } else {
                        json
                    })
                }
                Err(yaml) => return Err(yaml),
            },
        }
    } else {
        load_yaml(input, limits, &Budget::new(budget_units))?
    };
    let documents: Vec<Document> = documents
        .into_iter()
        .filter(|d| !d.value.is_null())
        .collect();
    if documents.is_empty() {
        return Err(ErrorKind::Empty.into());
    }
    Ok(documents)
}

fn looks_like_json(text: &[u8]) -> bool {
    let next = text[1..].iter().find(|b| !b.is_ascii_whitespace());
    text[0] == b'[' || matches!(next, Some(b'"' | b'}'))
}

fn load_json(input: &[u8], budget: &Budget) -> Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(input);
    let value = ValueSeed::new(budget)
        .deserialize(&mut de)
        .map_err(|e| json_error(&e, budget))?;
    de.end().map_err(|e| json_error(&e, budget))?;
    Ok(value)
}

fn load_yaml(input: &[u8], limits: &Limits, budget: &Budget) -> Result<Vec<Document>> {
    let mut documents = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_slice(input).enumerate() {
        let value = ValueSeed::new(budget)
            .deserialize(de)
            .map_err(|e| yaml_error(&e, budget))?;
        // Empty documents (a trailing `---`) do not count; the size limit bounds them.
        if value.is_null() {
            continue;
        }
        if documents.len() == limits.max_documents {
            return Err(ErrorKind::TooManyDocuments {
                limit: limits.max_documents,
            }
            .into());
        }
        documents.push(Document {
            index: i + 1,
            value,
        });
    }
    Ok(documents)
}

fn yaml_error(err: &serde_yaml::Error, budget: &Budget) -> Error {
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let text = err.to_string();
    // serde_yaml appends " at line L column C"; our error puts the location first.
    let text = text
        .replacen(&format!(" at line {line} column {column}"), "", 1)
        .replace(" column ", ", column ");
    budget.error(line, column, &text)
}

fn json_error(err: &serde_json::Error, budget: &Budget) -> Error {
    let (line, column) = (err.line(), err.column());
    let text = err
        .to_string()
        .replacen(&format!(" at line {line} column {column}"), "", 1);
    budget.error(line, column, &text)
}

#[cfg(test)]
#[path = "yaml_tests.rs"]
mod tests;
