//! `#[serde(with = "nitrosync_shared::hex_bytes")]` for fixed-size keys and hashes: lowercase hex
//! in human-readable formats (the JSON of the admin API and of the CLI's `--json`), a CBOR byte
//! string in the others (the control protocol, unchanged).
//!
//! Reading JSON it also takes an array of integers, the form older parents sent, so a new CLI
//! still reads an old daemon's answers.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use std::fmt;

/// Serializes `bytes` as hex (human-readable formats) or as a byte string.
pub fn serialize<S: Serializer, const N: usize>(bytes: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&data_encoding::HEXLOWER.encode(bytes))
    } else {
        s.serialize_bytes(bytes)
    }
}

/// Deserializes hex (an optional `0x` prefix allowed), a byte string, or an array of integers.
pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
    if d.is_human_readable() {
        d.deserialize_any(BytesVisitor::<N>)
    } else {
        d.deserialize_bytes(BytesVisitor::<N>)
    }
}

struct BytesVisitor<const N: usize>;

impl<const N: usize> BytesVisitor<N> {
    fn exact<E: de::Error>(bytes: &[u8]) -> Result<[u8; N], E> {
        <[u8; N]>::try_from(bytes)
            .map_err(|_| E::invalid_length(bytes.len(), &format!("{N} bytes").as_str()))
    }
}

impl<'de, const N: usize> Visitor<'de> for BytesVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{N} bytes, as {} hex digits or bytes", N * 2)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let digits = v.strip_prefix("0x").unwrap_or(v);
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(digits.as_bytes())
            .map_err(|e| E::custom(format!("not hex: {e}")))?;
        Self::exact(&bytes)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        Self::exact(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = [0u8; N];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(i, &self))?;
        }
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(N + 1, &self));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Key {
        #[serde(with = "super")]
        key: [u8; 4],
    }

    #[derive(serde::Serialize)]
    struct Old {
        #[serde(with = "serde_bytes")]
        key: [u8; 4],
    }

    const KEY: Key = Key {
        key: [0xde, 0xad, 0xbe, 0xef],
    };

    #[test]
    fn cbor_is_the_byte_string_serde_bytes_wrote() {
        let mut cbor = Vec::new();
        ciborium::into_writer(&KEY, &mut cbor).unwrap();
        let mut old = Vec::new();
        ciborium::into_writer(&Old { key: KEY.key }, &mut old).unwrap();
        assert_eq!(cbor, old);
        let back: Key = ciborium::from_reader(cbor.as_slice()).unwrap();
        assert_eq!(back, KEY);
    }

    #[test]
    fn json_is_hex_and_reading_takes_the_old_array_too() {
        assert_eq!(
            serde_json::to_string(&KEY).unwrap(),
            r#"{"key":"deadbeef"}"#
        );
        let old = serde_json::to_string(&Old { key: KEY.key }).unwrap();
        assert_eq!(old, r#"{"key":[222,173,190,239]}"#);
        for text in [r#"{"key":"deadbeef"}"#, r#"{"key":"0xDEADBEEF"}"#, &old] {
            let k: Key = serde_json::from_str(text).unwrap();
            assert_eq!(k, KEY, "{text}");
        }
        for bad in [
            "\"deadbe\"",
            "\"deadbeef00\"",
            "\"xyzw1234\"",
            "[1,2,3]",
            "[1,2,3,4,5]",
            "7",
        ] {
            let text = format!(r#"{{"key":{bad}}}"#);
            assert!(serde_json::from_str::<Key>(&text).is_err(), "{text}");
        }
    }
}
