//! Name rules: workload, container and volume names are DNS-1123 labels (engines, DNS and
//! the DHT key use them), label keys and values follow Kubernetes, and misspelt keys get a
//! "did you mean" suggestion.

/// Longest DNS-1123 label.
pub const MAX_NAME_LEN: usize = 63;

/// Checks a DNS-1123 label: lowercase letters, digits and `-`, starting and ending with a
/// letter or digit, at most 63 characters. The error says what is wrong.
pub fn check_dns_label(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_string());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "invalid name {name:?}: at most {MAX_NAME_LEN} characters, found {}",
            name.len()
        ));
    }
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let valid_ends = !name.starts_with('-') && !name.ends_with('-');
    if !valid_chars || !valid_ends {
        return Err(format!(
            "invalid name {name:?}: use lowercase letters, digits and '-', starting and ending \
             with a letter or digit{}",
            suggestion(name)
        ));
    }
    Ok(())
}

fn suggestion(name: &str) -> String {
    let fixed = normalize_name(name);
    if fixed.is_empty() || fixed == name {
        String::new()
    } else {
        format!(" (for example {fixed:?})")
    }
}

/// Turns any text (a file stem, a project name) into a valid name: lowercase, runs of other
/// characters become one `-`, trimmed to 63 characters. Empty when nothing usable is left.
pub fn normalize_name(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out = out.trim_matches('-').to_string();
    out.truncate(MAX_NAME_LEN);
    out.trim_end_matches('-').to_string()
}

/// Checks a Kubernetes label or annotation key: an optional DNS-subdomain prefix and `/`,
/// then a name of at most 63 alphanumerics, `-`, `_` and `.`.
pub(crate) fn check_qualified_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let ok = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|part| check_dns_label(part).is_ok());
        if !ok {
            return Err(format!(
                "invalid key {key:?}: the prefix before '/' must be a lowercase DNS name"
            ));
        }
    }
    if name.is_empty() || name.len() > MAX_NAME_LEN || !is_label_text(name) {
        return Err(format!(
            "invalid key {key:?}: the name must be 1 to 63 letters, digits, '-', '_' or '.', \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Checks a Kubernetes label value: empty, or at most 63 letters, digits, `-`, `_` and `.`
/// starting and ending with a letter or digit.
pub(crate) fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || (value.len() <= MAX_NAME_LEN && is_label_text(value)) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value {value:?}: at most 63 letters, digits, '-', '_' or '.', \
             starting and ending with a letter or digit"
        ))
    }
}

fn is_label_text(text: &str) -> bool {
    let bytes = text.as_bytes();
    let inner_ok = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let ends_ok = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    inner_ok && ends_ok
}

/// The candidate closest to `word` by edit distance, when it is close enough to be a typo.
pub(crate) fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let limit = (word.chars().count() / 4).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["web", "a", "vllm-gemma-deployment", "x1-2", &"a".repeat(63)] {
            assert_eq!(check_dns_label(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Web",
            "-web",
            "web-",
            "web_1",
            "vttablet-{{uid}}",
            "a.b",
            &"a".repeat(64),
        ] {
            assert!(check_dns_label(bad).is_err(), "{bad}");
        }
        let msg = check_dns_label("My_App").expect_err("invalid");
        assert!(msg.contains("for example \"my-app\""), "{msg}");
    }

    #[test]
    fn normalizes_file_stems() {
        assert_eq!(normalize_name("awesome-elk"), "awesome-elk");
        assert_eq!(
            normalize_name("My Compose_File.prod"),
            "my-compose-file-prod"
        );
        assert_eq!(normalize_name("--__--"), "");
        assert_eq!(normalize_name(&"ab".repeat(40)).len(), 63);
    }

    #[test]
    fn label_keys_and_values() {
        assert_eq!(check_qualified_key("app"), Ok(()));
        assert_eq!(check_qualified_key("beemesh.io/runtime-engine"), Ok(()));
        assert_eq!(check_qualified_key("discovery.type"), Ok(()));
        assert!(check_qualified_key("Bad Prefix/x").is_err());
        assert!(check_qualified_key("a/").is_err());
        assert_eq!(check_label_value(""), Ok(()));
        assert_eq!(check_label_value("true"), Ok(()));
        assert!(check_label_value("{{keyspace}}").is_err());
    }

    #[test]
    fn suggests_close_keys_only() {
        let known = ["beemesh.io/runtime-engine", "beemesh.io/resources.cpu"];
        assert_eq!(
            closest("beemesh.io/runtime-engin", &known),
            Some("beemesh.io/runtime-engine")
        );
        assert_eq!(closest("beemesh.io/something-else", &known), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
