//! From a source row to a validated [`Record`]: identifier, attributes, `created_at`, payload.

use crate::record::{IdKind, Identifier, Position, RawRow, Record};
use crate::source::Fields;
use crate::timestamp;
use crate::track::Api;
use crate::validate::{self, Violation};
use serde_json::{Map, Value};

/// How rows become people.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// Which identifier addresses the person.
    pub id_kind: IdKind,
    /// The column holding it.
    pub id_column: String,
    /// The API the payload is built for.
    pub api: Api,
}

/// Why a row cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The identifier, if it could be read.
    pub identifier: Option<String>,
    /// The rule it broke.
    pub violation: Violation,
}

impl Invalid {
    /// The message for the errors report: the field, then what to do.
    pub fn message(&self) -> String {
        match &self.violation.field {
            Some(f) if !self.violation.message.contains(&format!("'{f}'")) => {
                format!("field '{f}': {}", self.violation.message)
            }
            _ => self.violation.message.clone(),
        }
    }
}

/// The attribute converted to Unix seconds.
pub const CREATED_AT: &str = "created_at";

/// Converts and validates one row.
pub fn convert(
    opts: &ConvertOptions,
    header: Option<&[String]>,
    pos: Position,
    raw: RawRow,
    fields: Fields,
) -> Result<Record, (Invalid, RawRow)> {
    match build(opts, header, fields) {
        Ok((identifier, attributes)) => {
            let payload = opts.api.payload(&identifier, &attributes);
            if opts.api == Api::Batch {
                if let Err(v) = validate::operation_size(payload.len()) {
                    let inv = Invalid {
                        identifier: Some(identifier.value),
                        violation: v,
                    };
                    return Err((inv, raw));
                }
            }
            Ok(Record {
                pos,
                identifier,
                attributes,
                payload,
                raw,
            })
        }
        Err(inv) => Err((inv, raw)),
    }
}

fn build(
    opts: &ConvertOptions,
    header: Option<&[String]>,
    fields: Fields,
) -> Result<(Identifier, Map<String, Value>), Invalid> {
    let mut id_value: Option<String> = None;
    let mut id_problem: Option<String> = None;
    let mut attributes = Map::new();
    match fields {
        Fields::Csv(cells) => {
            let names = header.unwrap_or(&[]);
            for (name, cell) in names.iter().zip(cells) {
                if *name == opts.id_column {
                    id_value = Some(cell);
                } else if !cell.is_empty() {
                    attributes.insert(name.clone(), Value::String(cell));
                }
            }
        }
        Fields::Json(map) => {
            for (name, value) in map {
                if name == opts.id_column {
                    match value {
                        Value::String(s) => id_value = Some(s),
                        Value::Number(n) => id_value = Some(n.to_string()),
                        Value::Null => id_value = Some(String::new()),
                        other => {
                            id_problem = Some(format!(
                                "identifier '{}' is a JSON {}: it must be a string or a number",
                                opts.id_column,
                                timestamp::json_kind(&other)
                            ))
                        }
                    }
                } else if !value.is_null() {
                    attributes.insert(name, value);
                }
            }
        }
    }
    let column = opts.id_column.as_str();
    if let Some(message) = id_problem {
        return Err(Invalid {
            identifier: None,
            violation: Violation {
                field: Some(column.to_string()),
                message,
            },
        });
    }
    let value = id_value.ok_or_else(|| Invalid {
        identifier: None,
        violation: Violation {
            field: Some(column.to_string()),
            message: format!(
                "identifier '{column}' is missing: add it, or choose another column with --id-column"
            ),
        },
    })?;
    let invalid = |violation: Violation, id: &str| Invalid {
        identifier: Some(id.to_string()),
        violation,
    };
    validate::identifier(column, &value).map_err(|v| invalid(v, &value))?;
    let value = if opts.id_kind == IdKind::CioId {
        value.strip_prefix("cio_").unwrap_or(&value).to_string()
    } else {
        value
    };
    if let Some(v) = attributes.get_mut(CREATED_AT) {
        match timestamp::parse_json(v) {
            Ok(secs) => *v = Value::from(secs),
            Err(message) => {
                return Err(invalid(
                    Violation {
                        field: Some(CREATED_AT.into()),
                        message,
                    },
                    &value,
                ))
            }
        }
    }
    validate::attributes(&attributes).map_err(|v| invalid(v, &value))?;
    Ok((
        Identifier {
            kind: opts.id_kind,
            value,
        },
        attributes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ConvertOptions {
        ConvertOptions {
            id_kind: IdKind::Id,
            id_column: "id".into(),
            api: Api::V1,
        }
    }
    const POS: Position = Position { row: 1, line: 2 };

    fn csv(cells: &[&str]) -> Result<Record, (Invalid, RawRow)> {
        let header: Vec<String> = ["id", "zip", "created_at", "note"]
            .map(String::from)
            .to_vec();
        let cells = cells.iter().map(|s| s.to_string()).collect();
        convert(
            &opts(),
            Some(&header),
            POS,
            RawRow::Line(vec![]),
            Fields::Csv(cells),
        )
    }

    #[test]
    fn csv_values_stay_strings_and_empty_cells_are_left_out() {
        let r = csv(&["42", "02134", "2023-11-14", ""]).unwrap();
        assert_eq!(r.identifier.value, "42");
        assert_eq!(r.attributes["zip"], Value::String("02134".into()));
        assert_eq!(r.attributes["created_at"], Value::from(1_699_920_000));
        assert!(!r.attributes.contains_key("note"));
        assert!(!r.attributes.contains_key("id"));
        assert_eq!(
            String::from_utf8(r.payload).unwrap(),
            r#"{"zip":"02134","created_at":1699920000}"#
        );
    }

    #[test]
    fn bad_created_at_and_missing_id_are_invalid_with_the_field() {
        let (e, _) = csv(&["42", "1", "last tuesday", ""]).unwrap_err();
        assert_eq!(e.violation.field.as_deref(), Some("created_at"));
        assert!(e.message().contains("accepted:"));
        let (e, _) = csv(&["", "1", "", ""]).unwrap_err();
        assert_eq!(e.violation.field.as_deref(), Some("id"));
    }

    #[test]
    fn json_keeps_types_and_numbers_as_ids() {
        let map: Map<String, Value> = serde_json::from_str(
            r#"{"id":7,"age":31,"vip":true,"gone":null,"created_at":1700000000123}"#,
        )
        .unwrap();
        let r = convert(&opts(), None, POS, RawRow::Line(vec![]), Fields::Json(map)).unwrap();
        assert_eq!(r.identifier.value, "7");
        assert_eq!(r.attributes["age"], Value::from(31));
        assert_eq!(r.attributes["vip"], Value::Bool(true));
        assert_eq!(r.attributes["created_at"], Value::from(1_700_000_000));
        assert!(!r.attributes.contains_key("gone"));
    }
}
