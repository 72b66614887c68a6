//! Redacting, zeroizing holders for variable values, and the JSON the enclave writes to Secrets
//! Manager.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use zeroize::Zeroizing;

/// A variable's value. Zeroized on drop (its whole allocation); `Debug` and `Display` print
/// `[REDACTED]`. Read it with [`expose`](Self::expose).
///
/// Equality is not constant-time: do not compare a value against attacker-chosen input.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    /// Takes ownership of `value` (no copy is made).
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The value itself. Keep what you do with it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (not secret once encrypted: the ciphertext length reveals the total).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretValue {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for SecretValue {
    fn from(value: &str) -> Self {
        Self::new(value.to_owned())
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// An environment: variable names (not secret) to values (secret), sorted by name.
/// `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Variables(BTreeMap<String, SecretValue>);

impl Variables {
    /// Wraps a map. Names are checked by [`seal`](crate::seal) and [`open`](crate::open), not
    /// here.
    pub fn from_map(map: BTreeMap<String, SecretValue>) -> Self {
        Self(map)
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no variables.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, sorted.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The value of one variable.
    pub fn get(&self, name: &str) -> Option<&SecretValue> {
        self.0.get(name)
    }

    /// Names and values, sorted by name.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &SecretValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The underlying map.
    pub fn into_map(self) -> BTreeMap<String, SecretValue> {
        self.0
    }

    /// Sum of the names' and values' lengths, to size buffers without reallocating.
    pub(crate) fn text_len(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

impl FromIterator<(String, SecretValue)> for Variables {
    fn from_iter<I: IntoIterator<Item = (String, SecretValue)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl fmt::Debug for Variables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Variables")
            .field("names", &self.0.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A `std::io::Write` sink whose every buffer, including the ones it outgrows, is zeroized.
pub(crate) struct ZeroizingWriter(Zeroizing<Vec<u8>>);

impl ZeroizingWriter {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self(Zeroizing::new(Vec::with_capacity(capacity)))
    }

    pub(crate) fn into_inner(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

impl std::io::Write for ZeroizingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let needed = self.0.len().saturating_add(buf.len());
        if needed > self.0.capacity() {
            // Grow by hand: `Vec` would free the old buffer without clearing it.
            let mut bigger = Zeroizing::new(Vec::with_capacity(
                needed.max(self.0.capacity().saturating_mul(2)),
            ));
            bigger.extend_from_slice(&self.0);
            self.0 = bigger; // the old buffer is zeroized as it drops
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serializes the values as plain strings. Private, so that `SecretValue` itself never gains a
/// `Serialize` impl that could send it somewhere by accident.
struct ExposedMap<'a>(&'a Variables);

impl Serialize for ExposedMap<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0.iter() {
            map.serialize_entry(k, v.expose())?;
        }
        map.end()
    }
}

/// The wire shape of [`nitrosync_shared::bundle::BundlePlaintext`], borrowing the values
/// instead of copying them into plain `String`s.
pub(crate) struct PlaintextRef<'a>(pub(crate) &'a Variables);

impl Serialize for PlaintextRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("BundlePlaintext", 1)?;
        s.serialize_field("variables", &ExposedMap(self.0))?;
        s.end()
    }
}

/// The wire shape of [`nitrosync_shared::bundle::BundlePlaintext`], decoded straight into
/// zeroizing values. Stricter than the shared type: unknown fields and duplicate names are
/// refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlaintextOwned {
    pub(crate) variables: StrictVariables,
}

pub(crate) struct StrictVariables(pub(crate) Variables);

impl<'de> Deserialize<'de> for StrictVariables {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(VariablesVisitor)
    }
}

struct VariablesVisitor;

impl<'de> Visitor<'de> for VariablesVisitor {
    type Value = StrictVariables;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of variable names to text values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = BTreeMap::new();
        while let Some(name) = access.next_key::<String>()? {
            let value = access.next_value::<WireSecret>()?.0;
            match map.entry(name) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(_) => return Err(de::Error::custom("duplicate variable name")),
            }
        }
        Ok(StrictVariables(Variables(map)))
    }
}

/// A text value decoded into a `SecretValue` with one exact-size allocation.
struct WireSecret(SecretValue);

impl<'de> Deserialize<'de> for WireSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(SecretVisitor)
    }
}

struct SecretVisitor;

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = WireSecret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a text value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(WireSecret(SecretValue::new(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(WireSecret(SecretValue::new(v)))
    }
}

/// The variables as one JSON object: keys sorted (byte order), no whitespace, `serde_json`'s
/// standard string escaping. This is the `SecretString` the enclave writes; the caller checks
/// AWS's 65,536-byte limit.
pub fn render_json(variables: &Variables) -> Zeroizing<Vec<u8>> {
    // `{`, `}`, and per entry two quoted strings, `:` and `,`; escapes may need more, which the
    // writer handles without leaving copies behind.
    let estimate = 2 + variables.text_len() + 6 * variables.len();
    let mut out = ZeroizingWriter::with_capacity(estimate);
    // Serializing strings into memory cannot fail.
    let _ = serde_json::to_writer(&mut out, &ExposedMap(variables));
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn vars(pairs: &[(&str, &str)]) -> Variables {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretValue::from(*v)))
            .collect()
    }

    #[test]
    fn debug_and_display_never_show_values() {
        let v = vars(&[("API_KEY", "hunter2"), ("DB_URL", "postgres://u:pw@h/db")]);
        let dbg = format!(
            "{v:?} {:?} {} {:#?}",
            v.get("API_KEY").unwrap(),
            v.get("DB_URL").unwrap(),
            v
        );
        assert!(dbg.contains("API_KEY") && dbg.contains("DB_URL"), "{dbg}");
        assert!(
            !dbg.contains("hunter2") && !dbg.contains("postgres"),
            "{dbg}"
        );
        assert_eq!(v.get("API_KEY").unwrap().expose(), "hunter2");
        assert_eq!(v.names().collect::<Vec<_>>(), ["API_KEY", "DB_URL"]);
    }

    #[test]
    fn render_json_sorts_escapes_and_is_compact() {
        let v = vars(&[
            ("b", "line\nbreak \"quoted\" back\\slash"),
            ("A", ""),
            ("_u", "é\u{1F600}\u{0001}\t/"),
            ("a", "plain"),
        ]);
        let json = render_json(&v);
        let want = "{\"A\":\"\",\"_u\":\"é\u{1F600}\\u0001\\t/\",\"a\":\"plain\",\"b\":\"line\\nbreak \\\"quoted\\\" back\\\\slash\"}";
        assert_eq!(std::str::from_utf8(&json).unwrap(), want);
        // And it is what a JSON parser reads back.
        let back: BTreeMap<String, String> = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(back["b"], "line\nbreak \"quoted\" back\\slash");
        assert_eq!(&*render_json(&Variables::default()), b"{}");
    }

    #[test]
    fn zeroizing_writer_grows_and_keeps_every_byte() {
        let mut w = ZeroizingWriter::with_capacity(1);
        for i in 0..1000u32 {
            w.write_all(&i.to_be_bytes()).unwrap();
        }
        let out = w.into_inner();
        assert_eq!(out.len(), 4000);
        assert_eq!(&out[3996..], &999u32.to_be_bytes());
    }
}
