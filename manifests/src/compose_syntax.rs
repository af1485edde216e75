//! The string mini-languages of Compose: shell words (`command: npm run start`), port specs
//! (`127.0.0.1:8080:80/udp`, ranges) and short volume specs (`data:/var/lib/db:ro`).
//! Errors are plain messages; the caller adds the field path.

use mesh_protocol::spec::{Port, PortProtocol};

/// Most ports one port range may expand to.
pub(crate) const MAX_PORT_RANGE: usize = 1024;

/// Splits a command line the way a POSIX shell splits words: whitespace separates,
/// single quotes are literal, double quotes allow `\"`, `\\`, `\$` and `` \` ``, a
/// backslash outside quotes escapes the next character.
pub(crate) fn shell_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".to_string()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote".to_string()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".to_string()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => word.push('\\'),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Parses `[[ip:][host[-range]]:]container[-range][/protocol]`.
pub(crate) fn port_spec(spec: &str) -> Result<Vec<Port>, String> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((rest, proto)) => (rest, protocol(proto)?),
        None => (spec, PortProtocol::Tcp),
    };
    let (host_ip, rest) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (ip, tail) = v6
                .split_once(']')
                .ok_or_else(|| "unterminated [ in an IPv6 address".to_string())?;
            let tail = tail
                .strip_prefix(':')
                .ok_or_else(|| "expected : after the IPv6 address".to_string())?;
            (Some(ip.to_string()), tail)
        }
        None => (None, rest),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match (host_ip, parts.as_slice()) {
        (None, [container]) => (None, None, *container),
        (None, [host, container]) => (None, Some(*host), *container),
        (None, [ip, host, container]) => (Some(ip.to_string()), Some(*host), *container),
        (Some(ip), [host, container]) => (Some(ip), Some(*host), *container),
        _ => {
            return Err(
                "expected [IP:][HOST:]CONTAINER[/PROTOCOL]; write IPv6 addresses in brackets"
                    .to_string(),
            )
        }
    };
    let ip = ip.filter(|ip| !ip.is_empty());
    let container = range(container)?;
    let host = host.filter(|h| !h.is_empty()).map(range).transpose()?;
    let count = container.1 - container.0 + 1;
    if let Some((low, high)) = host {
        let host_count = high - low + 1;
        if host_count != count {
            return Err(format!(
                "host range has {host_count} ports but the container range has {count}"
            ));
        }
    }
    if usize::from(count) > MAX_PORT_RANGE {
        return Err(format!("a range may hold at most {MAX_PORT_RANGE} ports"));
    }
    Ok((0..count)
        .map(|i| Port {
            container_port: container.0 + i,
            host_port: host.map(|(low, _)| low + i),
            host_ip: ip.clone(),
            protocol,
            name: None,
        })
        .collect())
}

pub(crate) fn protocol(text: &str) -> Result<PortProtocol, String> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Ok(PortProtocol::Tcp),
        "udp" => Ok(PortProtocol::Udp),
        "sctp" => Ok(PortProtocol::Sctp),
        _ => Err(format!("unknown protocol {text:?}: use tcp, udp or sctp")),
    }
}

/// `8080` or `8000-8010`: (low, high) with 1 ≤ low ≤ high ≤ 65535.
pub(crate) fn range(text: &str) -> Result<(u16, u16), String> {
    let number = |t: &str| -> Result<u16, String> {
        t.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("invalid port {t:?}: use 1 to 65535"))
    };
    match text.split_once('-') {
        Some((low, high)) => {
            let (low, high) = (number(low)?, number(high)?);
            if low > high {
                return Err(format!("invalid port range {text:?}"));
            }
            Ok((low, high))
        }
        None => number(text).map(|p| (p, p)),
    }
}

/// A short volume spec.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ShortVolume {
    /// `/path`: an anonymous volume.
    Anonymous { target: String },
    /// `./dir:/path`, `/abs:/path`, `~/x:/path`.
    Bind {
        source: String,
        target: String,
        read_only: bool,
    },
    /// `name:/path`.
    Named {
        name: String,
        target: String,
        read_only: bool,
    },
}

const VOLUME_MODES: &[&str] = &[
    "ro",
    "rw",
    "z",
    "Z",
    "nocopy",
    "consistent",
    "cached",
    "delegated",
    "shared",
    "slave",
    "private",
    "rshared",
    "rslave",
    "rprivate",
];

/// Parses `target`, `source:target` or `source:target:mode[,mode]`.
pub(crate) fn volume_spec(spec: &str) -> Result<ShortVolume, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "invalid volume {spec:?}: empty section between colons (an unset variable?)"
        ));
    }
    let (source, target, mode) = match parts.as_slice() {
        [target] => (None, *target, ""),
        [source, target] => (Some(*source), *target, ""),
        [source, target, mode] => (Some(*source), *target, *mode),
        _ => {
            return Err(format!(
                "invalid volume {spec:?}: expected SOURCE:TARGET[:MODE]"
            ))
        }
    };
    if !target.starts_with('/') {
        return Err(format!(
            "invalid volume {spec:?}: the target {target:?} must be an absolute path"
        ));
    }
    let mut read_only = false;
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        if !VOLUME_MODES.contains(&m) {
            return Err(format!("invalid volume {spec:?}: unknown mode {m:?}"));
        }
        read_only |= m == "ro";
    }
    let target = target.to_string();
    Ok(match source {
        None => ShortVolume::Anonymous { target },
        Some(s) if s.starts_with(['/', '.', '~']) => ShortVolume::Bind {
            source: s.to_string(),
            target,
            read_only,
        },
        Some(name) => ShortVolume::Named {
            name: name.to_string(),
            target,
            read_only,
        },
    })
}

#[cfg(test)]
#[path = "compose_syntax_tests.rs"]
mod tests;
