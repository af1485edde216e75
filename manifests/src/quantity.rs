//! Resource amounts. Kubernetes quantities (`500m`, `0.1`, `2`, `1e3`, `64Mi`, `1Gi`,
//! `100M`) for CPU and memory, plus the `KB`/`MB`/`GB` spellings people write in
//! annotations, and Docker byte sizes (`512m`, `1g`, `100k`: binary units) for Compose.
//!
//! Arithmetic is exact (integers, not floats) and rounds up, as Kubernetes does.

use serde_yaml::Value;

use crate::node::{Node, Result};

/// A quantity could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {input:?}: {why}")]
pub struct QuantityError {
    pub input: String,
    pub why: String,
}

/// Digits kept from a mantissa; more would overflow the exact arithmetic.
const MAX_DIGITS: usize = 30;
/// Largest exponent accepted in `1e3` notation.
const MAX_EXPONENT: i32 = 30;

/// CPU in millicores: `500m` → 500, `0.1` → 100, `2` → 2000, `1e3` → 1 000 000.
pub fn parse_cpu_millis(input: &str) -> std::result::Result<u64, QuantityError> {
    let q = parse_quantity(input, false).map_err(|why| error(input, why))?;
    q.scaled(3).map_err(|why| error(input, why))
}

/// Memory in bytes: `64Mi`, `1Gi`, `100M` (10^8), `4GB` (4·10^9), `512MB`, `1e9`.
/// The milli suffix (`512m` = 0.512 bytes in Kubernetes) is refused as a likely mistake.
pub fn parse_memory_bytes(input: &str) -> std::result::Result<u64, QuantityError> {
    let q = parse_quantity(input, true).map_err(|why| error(input, why))?;
    if q.exp10 < 0 && q.suffix_is_sub_unit {
        return Err(error(
            input,
            "a memory size cannot be a fraction of a byte; write Mi (mebibytes) or M (megabytes)"
                .to_string(),
        ));
    }
    q.scaled(0).map_err(|why| error(input, why))
}

/// Docker/Compose byte sizes: `2048`, `100k`, `512m`, `512M`, `1g`, `1gb`, `1.5GiB`; every
/// unit is binary (k = 1024), as in `docker run --memory`.
pub fn parse_compose_bytes(input: &str) -> std::result::Result<u64, QuantityError> {
    let s = input.trim();
    let number_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (mantissa, frac) = parse_decimal(&s[..number_len]).map_err(|why| error(input, why))?;
    let unit = s[number_len..].trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => {
            return Err(error(
                input,
                "unknown unit (use b, k, m, g, t or p, e.g. 512m)".to_string(),
            ))
        }
    };
    let bytes = mantissa
        .checked_mul(1u128 << shift)
        .map(|v| v / 10u128.pow(frac))
        .ok_or_else(|| error(input, "too large".to_string()))?;
    u64::try_from(bytes).map_err(|_| error(input, "too large".to_string()))
}

/// CPU from a value written as a number (`2`, `0.15`) or a string (`"500m"`).
pub(crate) fn cpu_at(node: &Node<'_>) -> Result<u64> {
    let text = number_or_string(node)?;
    parse_cpu_millis(&text).map_err(|e| node.err(e.to_string()))
}

/// Memory from a Kubernetes quantity written as a number or a string.
pub(crate) fn memory_at(node: &Node<'_>) -> Result<u64> {
    let text = number_or_string(node)?;
    parse_memory_bytes(&text).map_err(|e| node.err(e.to_string()))
}

/// Memory from a Compose size written as a number (bytes) or a string.
pub(crate) fn compose_bytes_at(node: &Node<'_>) -> Result<u64> {
    let text = number_or_string(node)?;
    parse_compose_bytes(&text).map_err(|e| node.err(e.to_string()))
}

fn number_or_string(node: &Node<'_>) -> Result<String> {
    match node.value {
        Value::Number(n) => Ok(n.to_string()),
        _ => node.str().map(str::to_string),
    }
}

fn error(input: &str, why: impl Into<String>) -> QuantityError {
    QuantityError {
        input: input.to_string(),
        why: why.into(),
    }
}

/// mantissa · 10^exp10 · 2^exp2, exactly.
#[derive(Debug)]
struct Quantity {
    mantissa: u128,
    exp10: i32,
    exp2: u32,
    suffix_is_sub_unit: bool,
}

impl Quantity {
    /// The value in units of 10^-target, rounded up.
    fn scaled(&self, target: i32) -> std::result::Result<u64, String> {
        let too_large = || "too large".to_string();
        let base = self
            .mantissa
            .checked_mul(1u128.checked_shl(self.exp2).ok_or_else(too_large)?)
            .ok_or_else(too_large)?;
        let e = self.exp10 + target;
        let value = if e >= 0 {
            let factor = 10u128.checked_pow(e.unsigned_abs()).ok_or_else(too_large)?;
            base.checked_mul(factor).ok_or_else(too_large)?
        } else {
            match 10u128.checked_pow(e.unsigned_abs()) {
                Some(divisor) => base.div_ceil(divisor),
                None => u128::from(base > 0),
            }
        };
        u64::try_from(value).map_err(|_| too_large())
    }
}

/// Parses `<decimal>[suffix]`; `memory` also accepts `KB`, `MB`, `GB`, `TB`, `PB` (decimal)
/// and `KiB`, `MiB`, … (binary).
fn parse_quantity(input: &str, memory: bool) -> std::result::Result<Quantity, String> {
    let s = input.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err("must not be negative".to_string());
    }
    let number_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (mantissa, frac) = parse_decimal(&s[..number_len])?;
    let suffix = &s[number_len..];
    let frac = i32::try_from(frac).map_err(|_| "too many digits".to_string())?;
    let (exp10, exp2) = match suffix_exponents(suffix, memory) {
        Some(found) => found,
        None => {
            let exponent = suffix
                .strip_prefix(['e', 'E'])
                .and_then(|e| e.parse::<i32>().ok())
                .filter(|e| e.abs() <= MAX_EXPONENT)
                .ok_or_else(|| {
                    format!(
                        "unknown suffix {suffix:?} (use m, k, M, G, T, Ki, Mi, Gi, Ti{})",
                        if memory { ", MB or GB" } else { "" }
                    )
                })?;
            (exponent, 0)
        }
    };
    Ok(Quantity {
        mantissa,
        exp10: exp10 - frac,
        exp2,
        suffix_is_sub_unit: matches!(suffix, "m" | "u" | "n"),
    })
}

fn suffix_exponents(suffix: &str, memory: bool) -> Option<(i32, u32)> {
    let found = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ if memory => match suffix {
            "B" => (0, 0),
            "kB" | "KB" => (3, 0),
            "MB" => (6, 0),
            "GB" => (9, 0),
            "TB" => (12, 0),
            "PB" => (15, 0),
            "KiB" => (0, 10),
            "MiB" => (0, 20),
            "GiB" => (0, 30),
            "TiB" => (0, 40),
            _ => return None,
        },
        _ => return None,
    };
    Some(found)
}

/// `12.50` → (1250, 2). At least one digit; at most one dot.
fn parse_decimal(text: &str) -> std::result::Result<(u128, u32), String> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty() && frac.is_empty() {
        return Err("expected a number".to_string());
    }
    if frac.contains('.') {
        return Err("more than one decimal point".to_string());
    }
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > MAX_DIGITS {
        return Err("too many digits".to_string());
    }
    let mantissa = if digits.is_empty() {
        0
    } else {
        digits
            .parse::<u128>()
            .map_err(|_| "expected a number".to_string())?
    };
    let frac_len = u32::try_from(frac.len()).map_err(|_| "too many digits".to_string())?;
    Ok((mantissa, frac_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu() {
        let cases = [
            ("500m", 500),
            ("0.1", 100),
            ("0.15", 150),
            ("2", 2000),
            ("1e3", 1_000_000),
            ("1.5", 1500),
            (".5", 500),
            ("1n", 1),
            ("100u", 1),
            ("0", 0),
            ("+1", 1000),
            ("2k", 2_000_000),
        ];
        for (input, want) in cases {
            assert_eq!(parse_cpu_millis(input), Ok(want), "{input}");
        }
        for bad in [
            "",
            "m",
            "-1",
            "1.2.3",
            "1x",
            "abc",
            "1e99",
            "99999999999999999999999999999999",
        ] {
            assert!(parse_cpu_millis(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_cpu_millis("2 cores").expect_err("bad").to_string(),
            "invalid quantity \"2 cores\": unknown suffix \" cores\" (use m, k, M, G, T, Ki, Mi, Gi, Ti)"
        );
    }

    #[test]
    fn memory() {
        let cases = [
            ("64Mi", 64 << 20),
            ("1Gi", 1 << 30),
            ("100M", 100_000_000),
            ("256M", 256_000_000),
            ("4GB", 4_000_000_000),
            ("512MB", 512_000_000),
            ("1e3", 1000),
            ("1.5Gi", 3 << 29),
            ("2048", 2048),
            ("512MiB", 512 << 20),
            ("1Ei", 1 << 60),
        ];
        for (input, want) in cases {
            assert_eq!(parse_memory_bytes(input), Ok(want), "{input}");
        }
        let milli = parse_memory_bytes("512m").expect_err("fraction of a byte");
        assert!(milli.why.contains("fraction of a byte"), "{milli}");
        assert!(parse_memory_bytes("16Ei").is_err());
        assert!(parse_memory_bytes("1Xi").is_err());
    }

    #[test]
    fn compose_sizes_are_binary() {
        let cases = [
            ("512m", 512 << 20),
            ("512M", 512 << 20),
            ("1g", 1 << 30),
            ("1gb", 1 << 30),
            ("1.5GiB", 3 << 29),
            ("100k", 100 << 10),
            ("2048", 2048),
            ("2048b", 2048),
            ("1 g", 1 << 30),
        ];
        for (input, want) in cases {
            assert_eq!(parse_compose_bytes(input), Ok(want), "{input}");
        }
        for bad in ["", "g", "1x", "-1m", "1e3"] {
            assert!(parse_compose_bytes(bad).is_err(), "{bad}");
        }
    }
}
