//! `sha256:<64 hex>`: the content address of a module.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Prefix of every textual digest.
pub const PREFIX: &str = "sha256:";

/// A SHA-256 digest of module bytes. Parses from and prints as `sha256:<64 lowercase hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// A string that is not `sha256:` followed by 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid module digest {given:?}: expected sha256: followed by 64 lowercase hex digits")]
pub struct ParseError {
    pub given: String,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Digest of everything `reader` yields, without holding it all in memory.
    pub fn of_reader(mut reader: impl std::io::Read) -> std::io::Result<Self> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Self(hasher.finalize().into()))
    }

    /// `sha256:<hex>`. The hex part must be lowercase so that one module has one name.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let err = || ParseError {
            given: text.chars().take(80).collect(),
        };
        let hex_part = text.strip_prefix(PREFIX).ok_or_else(err)?;
        if hex_part.len() != 64
            || !hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(err());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| err())?;
        Ok(Self(out))
    }

    /// The 64 hex digits, without the prefix (file names).
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_near_misses() {
        let d = Digest::of(b"hello");
        let text = d.to_string();
        assert!(text.starts_with("sha256:2cf24dba"));
        assert_eq!(Digest::parse(&text), Ok(d));
        assert!(Digest::parse(&text.to_uppercase()).is_err());
        assert!(Digest::parse(&text[..text.len() - 1]).is_err());
        assert!(Digest::parse(&text.replace("sha256:", "sha512:")).is_err());
        assert!(Digest::parse(&format!("{}g", &text[..text.len() - 1])).is_err());
        let json = serde_json::to_string(&d).expect("serialises");
        assert_eq!(serde_json::from_str::<Digest>(&json).expect("parses"), d);
    }

    #[test]
    fn reader_digest_matches_slice_digest() {
        let bytes = vec![7u8; 200_000];
        let d = Digest::of_reader(&bytes[..]).expect("reads");
        assert_eq!(d, Digest::of(&bytes));
    }
}
