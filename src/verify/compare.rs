//! Comparing one attribute: what the source says (the value `import` sends, after mapping and
//! conversion) against what the workspace holds, as Customer.io stores it.
//!
//! The rules (README, Verify):
//! - Equal JSON values match; numbers match when they are the same number (`1` and `1.0`).
//! - `created_at` is a timestamp: Unix seconds match whether the workspace gives them as a
//!   number or as a string of digits (the App API's examples show `"created_at": "1489014595"`).
//! - An empty value sent by `--empty clear` (`""`) matches an attribute that is absent, null
//!   or `""`: clearing it is what was asked.
//! - Values that differ but read the same as text (`"42"` and `42`, `"true"` and `true`) are a
//!   [`Difference::Type`]: the data arrived, with another type than the source's.
//! - An attribute the workspace does not hold is [`Difference::Absent`]; any other mismatch is
//!   [`Difference::Value`].

use serde_json::Value;

/// The attribute converted to Unix seconds (see [`crate::convert::CREATED_AT`]).
const CREATED_AT: &str = crate::convert::CREATED_AT;

/// How an attribute (or a person) differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Difference {
    /// Another value.
    Value,
    /// The same value as text, another JSON type (`"42"` against `42`).
    Type,
    /// The workspace does not hold the attribute.
    Absent,
    /// The workspace does not hold the person at all.
    MissingPerson,
}

impl Difference {
    /// The name written in the differences file and the JSON summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Difference::Value => "value",
            Difference::Type => "type",
            Difference::Absent => "absent",
            Difference::MissingPerson => "missing_person",
        }
    }
}

/// How `name`'s source value `expected` compares with the workspace's `held` (`None`: the
/// workspace has no such attribute). `None` when they match.
pub fn compare(name: &str, expected: &Value, held: Option<&Value>) -> Option<Difference> {
    let cleared = expected.as_str() == Some("");
    let Some(held) = held.filter(|h| !h.is_null()) else {
        return (!cleared).then_some(Difference::Absent);
    };
    if cleared {
        return (held.as_str() != Some("")).then_some(Difference::Value);
    }
    if same(expected, held) {
        return None;
    }
    if name == CREATED_AT {
        if let (Some(e), Some(h)) = (seconds(expected), seconds(held)) {
            return (e != h).then_some(Difference::Value);
        }
    }
    if as_text(expected) == as_text(held) {
        return Some(Difference::Type);
    }
    Some(Difference::Value)
}

/// Equal as JSON, numbers compared as numbers (at any depth).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| same(p, q)))
        }
        _ => a == b,
    }
}

/// A timestamp's Unix seconds: an integer, or a string of one.
fn seconds(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A value as text: a string as itself, anything else as its JSON.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value as the differences file shows it: JSON, so that `"42"` and `42` can be told apart.
pub fn shown(v: Option<&Value>) -> String {
    v.map(Value::to_string).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_rules_of_the_module_doc() {
        assert_eq!(compare("plan", &json!("pro"), Some(&json!("pro"))), None);
        assert_eq!(compare("n", &json!(1), Some(&json!(1.0))), None);
        assert_eq!(
            compare("plan", &json!("pro"), Some(&json!("free"))),
            Some(Difference::Value)
        );
        assert_eq!(
            compare("n", &json!("42"), Some(&json!(42))),
            Some(Difference::Type)
        );
        assert_eq!(
            compare("vip", &json!(true), Some(&json!("true"))),
            Some(Difference::Type)
        );
        assert_eq!(
            compare("plan", &json!("pro"), None),
            Some(Difference::Absent)
        );
        assert_eq!(
            compare("plan", &json!("pro"), Some(&Value::Null)),
            Some(Difference::Absent)
        );
        // --empty clear
        assert_eq!(compare("plan", &json!(""), None), None);
        assert_eq!(compare("plan", &json!(""), Some(&json!(""))), None);
        assert_eq!(
            compare("plan", &json!(""), Some(&json!("pro"))),
            Some(Difference::Value)
        );
        // created_at: seconds as a number or as digits
        assert_eq!(
            compare(
                "created_at",
                &json!(1_700_000_000),
                Some(&json!("1700000000"))
            ),
            None
        );
        assert_eq!(
            compare(
                "created_at",
                &json!(1_700_000_000),
                Some(&json!(1_600_000_000))
            ),
            Some(Difference::Value)
        );
        // Nested values compare as values.
        assert_eq!(
            compare(
                "o",
                &json!({"a": [1, "x"]}),
                Some(&json!({"a": [1.0, "x"]}))
            ),
            None
        );
        assert_eq!(shown(Some(&json!("42"))), "\"42\"");
        assert_eq!(shown(Some(&json!(42))), "42");
        assert_eq!(shown(None), "");
    }
}
