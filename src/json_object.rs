//! Reading a JSON object's members in order, values left as raw JSON text: no map is built,
//! so a row (or an operation) is parsed once and its values copied as they are; and telling
//! which raw values no JSON data can hold (`1e400`, a lone surrogate `"\ud800"`), and why.

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

/// Reads a raw value as data. The error says, for the errors report, what in it cannot be
/// read (a number beyond a 64-bit float, a string with a lone UTF-16 surrogate, nesting too
/// deep) and what to do; it follows the field's name: `'score' is the number 1e400, ...`.
pub fn read(v: &RawValue) -> Result<serde_json::Value, String> {
    let t = v.get();
    serde_json::from_str(t).map_err(|e| match first_unreadable(t) {
        Some(u) => u.message(),
        None if e.to_string().contains("recursion limit") => {
            "is nested more than 128 levels deep, more than can be read: drop the field \
(drop = true in the mapping) or flatten it in the source"
                .to_string()
        }
        None => format!("cannot be read as JSON data ({e}): fix the value in the source"),
    })
}

/// Checks, without building it, that a raw value can be sent as data, with [`read`]'s error.
/// Its syntax was checked when the line was parsed; what is left is a number beyond a 64-bit
/// float and a lone UTF-16 surrogate. Plain strings and short numbers pass at a glance; the
/// rest is scanned once, without recursion (any depth is fine).
pub fn check(v: &RawValue) -> Result<(), String> {
    let t = v.get();
    let plain = match t.as_bytes().first() {
        Some(b'"') => !t.contains('\\'),
        Some(b'-' | b'0'..=b'9') => t.len() < 16 && !t.contains(['e', 'E']),
        Some(b't' | b'f' | b'n') => true,
        _ => false,
    };
    if plain {
        return Ok(());
    }
    first_unreadable(t).map_or(Ok(()), |u| Err(u.message()))
}

/// A part of valid JSON text that no JSON data can hold.
enum Unreadable<'a> {
    /// A number beyond a 64-bit float (`1e400`).
    Number(&'a str),
    /// A lone UTF-16 surrogate escape (`\ud800`).
    Surrogate(&'a str),
}

impl Unreadable<'_> {
    fn message(&self) -> String {
        match self {
            Unreadable::Number(n) => {
                format!("is the number {n}, beyond what a 64-bit float holds: write it as a string")
            }
            Unreadable::Surrogate(s) => format!(
                "holds the escape {s}, a lone UTF-16 surrogate (what is left when an export cuts \
text in the middle of an emoji): repair or remove the broken character in the source"
            ),
        }
    }
}

/// The first number beyond a 64-bit float or lone surrogate escape in valid JSON text.
fn first_unreadable(text: &str) -> Option<Unreadable<'_>> {
    let b = text.as_bytes();
    let hex = |at: usize| {
        text.get(at..at + 4)
            .and_then(|h| u16::from_str_radix(h, 16).ok())
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] != b'\\' {
                        i += 1;
                        continue;
                    }
                    if b.get(i + 1) != Some(&b'u') {
                        i += 2;
                        continue;
                    }
                    let unit = hex(i + 2)?;
                    let escape = &text[i..i + 6];
                    match unit {
                        0xD800..=0xDBFF => {
                            let low = (text.get(i + 6..i + 8) == Some("\\u"))
                                .then(|| hex(i + 8))
                                .flatten();
                            match low {
                                Some(0xDC00..=0xDFFF) => i += 12,
                                _ => return Some(Unreadable::Surrogate(escape)),
                            }
                        }
                        0xDC00..=0xDFFF => return Some(Unreadable::Surrogate(escape)),
                        _ => i += 6,
                    }
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let n = &text[start..i];
                if !n.parse::<f64>().is_ok_and(f64::is_finite) {
                    return Some(Unreadable::Number(n));
                }
            }
            _ => i += 1,
        }
    }
    None
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

    fn raw(t: &str) -> &RawValue {
        serde_json::from_str(t).unwrap()
    }

    #[test]
    fn unreadable_values_are_named_with_the_fix() {
        for ok in [
            r#""plain""#,
            r#""esc\"aped \u00e9 \ud83d\ude00""#,
            "12",
            "-1.5e300",
            "true",
            "null",
            r#"{"a":[1,"\\ud800",{"b":2e10}]}"#,
        ] {
            assert_eq!(check(raw(ok)), Ok(()), "{ok}");
            assert!(read(raw(ok)).is_ok(), "{ok}");
        }
        // Depth is no reason to refuse a value that is sent as it is; reading it into a
        // value for a mapping says why it cannot.
        let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
        assert_eq!(check(raw(&deep)), Ok(()));
        let e = read(raw(&deep)).unwrap_err();
        assert!(e.contains("128 levels") && e.contains("drop"), "{e}");
        for (bad, needle) in [
            ("1e400", "the number 1e400,"),
            ("-1e400", "the number -1e400,"),
            (r#"[1, {"x": 2e999}]"#, "the number 2e999,"),
            (r#""cut \ud800""#, "escape \\ud800, a lone UTF-16 surrogate"),
            (r#""\udc00 alone""#, "escape \\udc00,"),
            (r#""\ud83d\u0041""#, "escape \\ud83d,"),
            (r#"{"k":"\ud83d"}"#, "escape \\ud83d,"),
        ] {
            let e = check(raw(bad)).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
            assert_eq!(read(raw(bad)).unwrap_err(), e, "{bad}");
        }
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
