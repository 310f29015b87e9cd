//! Reading a JSON object's members in order, values left as raw JSON text: no map is built,
//! so a row (or an operation) is parsed once and its values copied as they are.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// An object's members in order; a repeated key keeps its last value, as JSON parsers do.
pub type Members<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
        let mut out: Members<'de> = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            match out.iter_mut().find(|(k, _)| *k == key.0) {
                Some(slot) => slot.1 = value,
                None => out.push((key.0, value)),
            }
        }
        Ok(out)
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// A JSON object read as [`Members`], usable as a field of a derived `Deserialize` type.
#[derive(Debug, Default)]
pub struct Object<'a>(pub Members<'a>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Object<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjectVisitor).map(Object)
    }
}

/// Parses `text` as exactly one JSON object (trailing whitespace allowed).
pub fn parse(text: &[u8]) -> serde_json::Result<Members<'_>> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let members = de.deserialize_map(ObjectVisitor)?;
    de.end()?;
    Ok(members)
}

/// The size of a raw JSON value as the Track API counts it: a string's decoded bytes, else
/// its compact JSON text. Exact, but parses only values whose text is near the limit.
pub fn value_bytes(v: &RawValue, limit: usize) -> usize {
    let t = v.get();
    if t.starts_with('"') && !t.contains('\\') {
        return t.len() - 2;
    }
    if t.len() <= limit {
        // Escapes and whitespace only ever make the text longer than what it stands for.
        return t.len().min(limit);
    }
    serde_json::from_str::<serde_json::Value>(t)
        .map(|v| crate::validate::value_bytes(&v))
        .unwrap_or(t.len())
}

/// Whether a raw number stays finite as a 64-bit float (`1e400` does not); true for
/// anything that is not a number.
pub fn number_in_range(v: &RawValue) -> bool {
    let t = v.get();
    let numeric = t.starts_with(|c: char| c == '-' || c.is_ascii_digit());
    !numeric
        || t.len() < 16 && !t.contains(['e', 'E'])
        || t.parse::<f64>().is_ok_and(f64::is_finite)
}

/// Whether a raw value is an integer (what `created_at` and `_timestamp` must be).
pub fn is_integer(v: &RawValue) -> bool {
    let t = v.get();
    let digits = t.strip_prefix('-').unwrap_or(t);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_keep_order_raw_values_and_the_last_duplicate() {
        let m = parse(br#"{"b": [1, 2], "a\"x": "s", "b": {"k": null}}"#).unwrap();
        let got: Vec<(String, String)> = m
            .iter()
            .map(|(k, v)| (k.to_string(), v.get().to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("b".into(), r#"{"k": null}"#.into()),
                ("a\"x".into(), r#""s""#.into())
            ]
        );
        assert!(parse(b"[1]").is_err());
        assert!(parse(b"{} x").is_err());
    }

    #[test]
    fn value_sizes_are_decoded_sizes() {
        let v = |t: &str| value_bytes(serde_json::from_str::<&RawValue>(t).unwrap(), 1000);
        assert_eq!(v(r#""abc""#), 3);
        assert_eq!(v(&format!("\"{}\"", "\\u00e9".repeat(600))), 1200);
        // Short escaped text: its length bounds the decoded size, which is all a check needs.
        assert!(v(&format!("\"{}\"", "\\u00e9".repeat(100))) <= 1000);
        assert_eq!(v("12"), 2);
        assert!(is_integer(
            serde_json::from_str::<&RawValue>("-17").unwrap()
        ));
        assert!(!is_integer(
            serde_json::from_str::<&RawValue>("1.5").unwrap()
        ));
    }
}
