//! ConfigMap and Secret objects. They are not deployed on their own: they travel with the
//! workloads of the same file (in `WorkloadSpec::config`). Secret `data` is base64-decoded;
//! values that are not UTF-8 text stay base64 and are listed in `binary_keys`.

use std::collections::BTreeMap;

use mesh_protocol::spec::{ConfigKind, ConfigObject};

use crate::meta;
use crate::names::check_qualified_key;
use crate::node::{MapNode, Node, Result};

/// Parses a ConfigMap or Secret.
pub(crate) fn parse(object: &MapNode<'_>, kind: ConfigKind) -> Result<ConfigObject> {
    let meta = meta::parse(object)?;
    let mut out = ConfigObject {
        kind,
        name: meta.name,
        data: BTreeMap::new(),
        binary_keys: Vec::new(),
    };
    let (text_field, encoded_field) = match kind {
        ConfigKind::ConfigMap => ("data", "binaryData"),
        ConfigKind::Secret => ("stringData", "data"),
    };
    // Secret stringData wins over data, as in Kubernetes: read the encoded field first.
    if let Some(node) = object.get(encoded_field) {
        for (key, value) in entries(&node)? {
            let encoded = value.str()?;
            let bytes = decode_base64(encoded).map_err(|why| value.err(why))?;
            match String::from_utf8(bytes) {
                Ok(text) if kind == ConfigKind::Secret => {
                    out.data.insert(key.to_string(), text);
                }
                _ => {
                    out.data.insert(key.to_string(), encoded.trim().to_string());
                    out.binary_keys.push(key.to_string());
                }
            }
        }
    }
    if let Some(node) = object.get(text_field) {
        for (key, value) in entries(&node)? {
            let text = value.str_or_empty()?;
            out.binary_keys.retain(|k| k != key);
            out.data.insert(key.to_string(), text.to_string());
        }
    }
    Ok(out)
}

fn entries<'a>(node: &Node<'a>) -> Result<Vec<(&'a str, Node<'a>)>> {
    let entries = node.map()?.entries()?;
    for (key, value) in &entries {
        let valid = !key.is_empty()
            && key.len() <= 253
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            let why = check_qualified_key(key)
                .err()
                .unwrap_or_else(|| format!("invalid key {key:?}"));
            return Err(value.err(format!("{why}: keys are letters, digits, '-', '_' and '.'")));
        }
    }
    Ok(entries)
}

/// Standard base64 (RFC 4648) with optional padding; whitespace and line breaks are
/// skipped, as `kubectl` does.
pub(crate) fn decode_base64(text: &str) -> std::result::Result<Vec<u8>, String> {
    fn sextet(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let chars: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let body = chars
        .iter()
        .rposition(|b| *b != b'=')
        .map_or(&chars[..0], |last| &chars[..=last]);
    let padding = chars.len() - body.len();
    let unpadded_tail = chars.len() % 4;
    if padding > 2 || (padding > 0 && unpadded_tail != 0) || body.len() % 4 == 1 {
        return Err("invalid base64: wrong length or padding".to_string());
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for (i, c) in body.iter().enumerate() {
        let v = sextet(*c).ok_or_else(|| {
            format!(
                "invalid base64: unexpected character {:?} at {}",
                char::from(*c),
                i + 1
            )
        })?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(decode_base64("aGVsbG8="), Ok(b"hello".to_vec()));
        assert_eq!(decode_base64("aGVsbG8"), Ok(b"hello".to_vec()));
        assert_eq!(decode_base64("aGVs\nbG8h"), Ok(b"hello!".to_vec()));
        assert_eq!(decode_base64(""), Ok(Vec::new()));
        assert_eq!(decode_base64("/+8="), Ok(vec![0xff, 0xef]));
        assert!(decode_base64("a").is_err());
        assert!(decode_base64("aGVsbG8==").is_err());
        assert!(decode_base64("aGV*bG8=").is_err());
        assert!(decode_base64("====").is_err());
    }
}
