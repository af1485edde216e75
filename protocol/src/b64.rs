//! Bytes as base64 strings in JSON (the local API) and CBOR (peer requests) alike.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD.encode(bytes))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    STANDARD
        .decode(text.as_bytes())
        .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
}

/// The same for `Option<Vec<u8>>`.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => super::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| {
            STANDARD
                .decode(t.as_bytes())
                .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use crate::api::BundledModule;

    #[test]
    fn bundled_bytes_round_trip_as_base64() {
        let m = BundledModule {
            path: "./m.wasm".into(),
            digest: "sha256:00".into(),
            bytes: Some(vec![0, 1, 2, 255]),
            providers: Vec::new(),
        };
        let json = serde_json::to_string(&m).expect("serialises");
        assert!(json.contains("\"AAEC/w==\""), "{json}");
        assert_eq!(
            serde_json::from_str::<BundledModule>(&json).expect("parses"),
            m
        );
        let none = BundledModule {
            bytes: None,
            ..m.clone()
        };
        let json = serde_json::to_string(&none).expect("serialises");
        assert!(!json.contains("bytes"), "{json}");
        assert_eq!(
            serde_json::from_str::<BundledModule>(&json).expect("parses"),
            none
        );
        assert!(
            serde_json::from_str::<BundledModule>(r#"{"path":"p","digest":"d","bytes":"!!"}"#)
                .is_err()
        );
    }
}
