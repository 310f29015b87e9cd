//! The Track API limits, one function per rule, checked before anything is sent.

use serde_json::{Map, Value};

/// Most bytes in an identifier.
pub const MAX_ID_BYTES: usize = 150;
/// Most bytes in an attribute name.
pub const MAX_NAME_BYTES: usize = 150;
/// Most bytes in an attribute value.
pub const MAX_VALUE_BYTES: usize = 1000;
/// Most attributes per person in one call.
pub const MAX_ATTRIBUTES: usize = 300;
/// Most bytes of one operation inside a batch request.
pub const MAX_OPERATION_BYTES: usize = 32_000;
/// Most bytes of one batch request body.
pub const MAX_BATCH_BYTES: usize = 500_000;
/// Most bytes in an event name.
pub const MAX_EVENT_NAME_BYTES: usize = 100;
/// Most bytes of an event's data (its JSON text); in a batch the 32,000 bytes of an
/// operation come first.
pub const MAX_EVENT_DATA_BYTES: usize = 100_000;

/// A broken rule: which field and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The column or attribute concerned, if one.
    pub field: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Violation {
    fn new(field: Option<&str>, message: String) -> Self {
        Violation {
            field: field.map(str::to_string),
            message,
        }
    }
}

/// The identifier must be present, non-empty and at most 150 bytes.
pub fn identifier(column: &str, value: &str) -> Result<(), Violation> {
    if value.trim().is_empty() {
        return Err(Violation::new(
            Some(column),
            format!("identifier column '{column}' is empty: fill it in or drop the row"),
        ));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(Violation::new(
            Some(column),
            format!(
                "identifier in '{column}' is {} bytes; the Track API allows at most {MAX_ID_BYTES}",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// At most 300 attributes.
pub fn attribute_count(attributes: &Map<String, Value>) -> Result<(), Violation> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(Violation::new(
            None,
            format!(
                "{} attributes; the Track API takes at most {MAX_ATTRIBUTES} per person: drop columns",
                attributes.len()
            ),
        ));
    }
    Ok(())
}

/// Attribute names are non-empty and at most 150 bytes.
pub fn attribute_name(name: &str) -> Result<(), Violation> {
    if name.is_empty() {
        return Err(Violation::new(
            Some(name),
            "an attribute has an empty name: name it or drop it".to_string(),
        ));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Violation::new(
            Some(name),
            format!(
                "attribute name is {} bytes; the Track API allows at most {MAX_NAME_BYTES}: rename it",
                name.len()
            ),
        ));
    }
    Ok(())
}

/// The size of a value as the API measures it: a string's bytes, else its JSON text.
pub fn value_bytes(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len(),
        Value::Null => 0,
        other => serde_json::to_string(other)
            .map(|s| s.len())
            .unwrap_or(usize::MAX),
    }
}

/// Values are at most 1000 bytes.
pub fn attribute_value(name: &str, value: &Value) -> Result<(), Violation> {
    let n = value_bytes(value);
    if n > MAX_VALUE_BYTES {
        return Err(Violation::new(
            Some(name),
            format!(
                "value of '{name}' is {n} bytes; the Track API allows at most {MAX_VALUE_BYTES}: shorten it"
            ),
        ));
    }
    Ok(())
}

/// Every rule on a set of attributes.
pub fn attributes(attributes: &Map<String, Value>) -> Result<(), Violation> {
    attribute_count(attributes)?;
    for (name, value) in attributes {
        attribute_name(name)?;
        attribute_value(name, value)?;
    }
    Ok(())
}

/// A batch operation is at most 32,000 bytes.
pub fn operation_size(bytes: usize) -> Result<(), Violation> {
    if bytes > MAX_OPERATION_BYTES {
        return Err(Violation::new(
            None,
            format!(
                "this person's operation is {bytes} bytes; a batch operation may be at most \
{MAX_OPERATION_BYTES}: drop or shorten attributes"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_are_inclusive_and_in_bytes() {
        assert!(identifier("id", &"a".repeat(150)).is_ok());
        assert!(identifier("id", &"a".repeat(151)).is_err());
        assert!(identifier("id", "  ").is_err());
        assert!(attribute_name(&"n".repeat(150)).is_ok());
        assert!(attribute_name(&"n".repeat(151)).is_err());
        // 500 two-byte characters are 1000 bytes; one more byte is over.
        assert!(attribute_value("v", &json!("é".repeat(500))).is_ok());
        assert!(attribute_value("v", &json!(format!("{}a", "é".repeat(500)))).is_err());
        let mut m = Map::new();
        for i in 0..300 {
            m.insert(format!("a{i}"), json!(i));
        }
        assert!(attributes(&m).is_ok());
        m.insert("one_more".into(), json!(1));
        assert!(attributes(&m).is_err());
        assert!(operation_size(32_000).is_ok());
        assert!(operation_size(32_001).is_err());
    }
}
