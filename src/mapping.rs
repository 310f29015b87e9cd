//! Column mapping for migrations: renames, drops, types, value maps, constants, nested JSON,
//! identifier fallbacks; read from a TOML file (`--mapping`) or a built-in preset (`--preset`).

use crate::record::IdKind;
use crate::timestamp;
use chrono::{NaiveDate, NaiveDateTime};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The type a column is converted to.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// Text as it is (the default for CSV).
    String,
    /// A whole number.
    Integer,
    /// A number.
    Float,
    /// true/false, yes/no, 1/0 (any case).
    Bool,
    /// Unix seconds, from the `created_at` formats or a strftime `format`; a time without a
    /// zone is read in the column's `timezone` (UTC if none).
    Timestamp,
    /// A JSON text parsed into its value.
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnFile {
    rename: Option<String>,
    #[serde(default)]
    drop: bool,
    #[serde(rename = "type")]
    kind: Option<ValueType>,
    format: Option<String>,
    timezone: Option<String>,
    values: Option<BTreeMap<String, toml::Value>>,
    set_when_present: Option<BTreeMap<String, toml::Value>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OptionsFile {
    description: Option<String>,
    identify_by: Option<String>,
    id_column: Option<String>,
    fallback_id_column: Option<String>,
    fallback_identify_by: Option<String>,
    #[serde(default)]
    drop_unmapped: bool,
    rename_unmapped: Option<String>,
    #[serde(default)]
    strip_prefixes: Vec<String>,
    #[serde(default)]
    unnest: Vec<String>,
    flatten: Option<String>,
    delimiter: Option<String>,
    format: Option<String>,
    /// `objects` or `relationships`: what the rows are, unless `--kind` says.
    kind: Option<String>,
    object_id_column: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    options: OptionsFile,
    #[serde(default)]
    columns: BTreeMap<String, ColumnFile>,
    #[serde(default)]
    constants: BTreeMap<String, toml::Value>,
}

/// How one source column becomes an attribute.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The attribute name, or `None` to drop the column.
    pub target: Option<String>,
    /// The conversion, if any.
    pub kind: Option<ValueType>,
    format: Option<String>,
    timezone: Option<chrono_tz::Tz>,
    values: Option<Vec<(String, Value)>>,
    /// Attributes set when the cell is not empty.
    pub set_when_present: Vec<(String, Value)>,
}

/// A parsed mapping.
#[derive(Clone, Debug, Default)]
pub struct Mapping {
    /// A line saying what the mapping is for.
    pub description: Option<String>,
    rules: Vec<(String, Rule)>,
    /// Attributes set on every row.
    pub constants: Vec<(String, Value)>,
    /// The identifier kind the mapping chooses (overridden by `--identify-by`).
    pub identify_by: Option<IdKind>,
    /// The identifier's column after mapping.
    pub id_column: Option<String>,
    /// When the identifier is empty: this column (after mapping) and kind instead.
    pub fallback: Option<(String, IdKind)>,
    /// Keep only mapped columns.
    pub drop_unmapped: bool,
    /// Unmapped names become snake_case.
    pub snake_case_unmapped: bool,
    /// Prefixes removed from unmapped names (`custom_attributes.`).
    pub strip_prefixes: Vec<String>,
    /// JSONL objects whose members are lifted to the top level (`custom_attributes`).
    pub unnest: Vec<String>,
    /// JSONL: flatten nested objects with this separator.
    pub flatten: Option<String>,
    /// The CSV delimiter the source uses.
    pub delimiter: Option<u8>,
    /// The format the source uses.
    pub format: Option<crate::source::Format>,
    /// What the rows are when `--kind` does not say (`kind = "objects"` or
    /// `"relationships"`; people otherwise).
    pub object_kind: Option<crate::convert::ObjectKind>,
    /// The object id's column after mapping, unless `--object-id-column` says.
    pub object_id_column: Option<String>,
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or(1)
}

fn id_kind(s: &str) -> Option<IdKind> {
    match s {
        "id" => Some(IdKind::Id),
        "email" => Some(IdKind::Email),
        "cio_id" => Some(IdKind::CioId),
        _ => None,
    }
}

fn json_of(v: toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl Mapping {
    /// Parses a mapping file; errors name the file, the line and the key.
    pub fn parse(text: &str, name: &str) -> Result<Mapping, String> {
        let file: MappingFile = toml::from_str(text).map_err(|e| format!("{name}: {e}"))?;
        let err =
            |needle: &str, msg: String| format!("{name}, line {}: {msg}", line_of(text, needle));
        let o = file.options;
        let kind_of = |key: &str, v: &Option<String>| -> Result<Option<IdKind>, String> {
            match v {
                None => Ok(None),
                Some(s) => id_kind(s)
                    .map(Some)
                    .ok_or_else(|| err(key, format!("{key} = '{s}': use id, email or cio_id"))),
            }
        };
        let identify_by = kind_of("identify_by", &o.identify_by)?;
        let fallback = match (
            &o.fallback_id_column,
            kind_of("fallback_identify_by", &o.fallback_identify_by)?,
        ) {
            (Some(c), Some(k)) => Some((c.clone(), k)),
            (None, None) => None,
            _ => {
                return Err(err(
                    "fallback",
                    "fallback_id_column and fallback_identify_by go together".into(),
                ))
            }
        };
        let snake_case_unmapped = match o.rename_unmapped.as_deref() {
            None | Some("keep") => false,
            Some("snake_case") => true,
            Some(other) => {
                return Err(err(
                    "rename_unmapped",
                    format!("rename_unmapped = '{other}': use snake_case or keep"),
                ))
            }
        };
        let delimiter = match o.delimiter.as_deref() {
            None => None,
            Some("tab") | Some("\t") => Some(b'\t'),
            Some(d) if d.len() == 1 => Some(d.as_bytes()[0]),
            Some(d) => {
                return Err(err(
                    "delimiter",
                    format!("delimiter = '{d}': one character"),
                ))
            }
        };
        let format = match o.format.as_deref() {
            None => None,
            Some("csv") => Some(crate::source::Format::Csv),
            Some("jsonl") => Some(crate::source::Format::Jsonl),
            Some(f) => return Err(err("format", format!("format = '{f}': csv or jsonl"))),
        };
        let mut rules = Vec::new();
        for (source, c) in file.columns {
            let at = |msg: String| {
                err(
                    &format!("\"{source}\""),
                    format!("column '{source}': {msg}"),
                )
            };
            if c.drop && c.rename.is_some() {
                return Err(at("drop and rename together".into()));
            }
            if (c.format.is_some() || c.timezone.is_some()) && c.kind != Some(ValueType::Timestamp)
            {
                return Err(at("format and timezone need type = \"timestamp\"".into()));
            }
            let timezone = match &c.timezone {
                None => None,
                Some(tz) => Some(tz.parse::<chrono_tz::Tz>().map_err(|_| {
                    at(format!(
                        "timezone '{tz}' is not an IANA name such as UTC or Europe/Paris"
                    ))
                })?),
            };
            let target = if c.drop {
                None
            } else {
                Some(c.rename.clone().unwrap_or_else(|| source.clone()))
            };
            rules.push((
                source.clone(),
                Rule {
                    target,
                    kind: c.kind,
                    format: c.format,
                    timezone,
                    values: c
                        .values
                        .map(|m| m.into_iter().map(|(k, v)| (k, json_of(v))).collect()),
                    set_when_present: c
                        .set_when_present
                        .map(|m| m.into_iter().map(|(k, v)| (k, json_of(v))).collect())
                        .unwrap_or_default(),
                },
            ));
        }
        let object_kind = match o.kind.as_deref() {
            None | Some("people") => None,
            Some("objects") => Some(crate::convert::ObjectKind::Objects),
            Some("relationships") => Some(crate::convert::ObjectKind::Relationships),
            Some(other) => {
                return Err(err(
                    "kind",
                    format!("kind = '{other}': use people, objects or relationships"),
                ))
            }
        };
        Ok(Mapping {
            object_kind,
            object_id_column: o.object_id_column,
            description: o.description,
            rules,
            constants: file
                .constants
                .into_iter()
                .map(|(k, v)| (k, json_of(v)))
                .collect(),
            identify_by,
            id_column: o.id_column,
            fallback,
            drop_unmapped: o.drop_unmapped,
            snake_case_unmapped,
            strip_prefixes: o.strip_prefixes,
            unnest: o.unnest,
            flatten: o.flatten,
            delimiter,
            format,
        })
    }

    /// The rule for a source name: exact match first, then ignoring case.
    pub fn rule(&self, source: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|(s, _)| s == source)
            .or_else(|| {
                self.rules
                    .iter()
                    .find(|(s, _)| s.eq_ignore_ascii_case(source))
            })
            .map(|(_, r)| r)
    }

    /// What an unmapped source name becomes (None: dropped).
    pub fn unmapped_name(&self, source: &str) -> Option<String> {
        if self.drop_unmapped {
            return None;
        }
        let mut name = source;
        for p in &self.strip_prefixes {
            if let Some(rest) = name.strip_prefix(p.as_str()) {
                name = rest;
            }
        }
        Some(if self.snake_case_unmapped {
            snake_case(name)
        } else {
            name.to_string()
        })
    }

    /// The rule for a source name, with unmapped names handled: (target, rule if any).
    pub fn resolve(&self, source: &str) -> (Option<String>, Option<&Rule>) {
        match self.rule(source) {
            Some(r) => (r.target.clone(), Some(r)),
            None => (self.unmapped_name(source), None),
        }
    }
}

/// `First Name` -> `first_name`, `OPTIN_TIME` -> `optin_time`, `lastName` -> `last_name`.
pub fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut prev: Option<char> = None;
    for c in s.chars() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && prev.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit()) {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
        prev = Some(c);
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

impl Rule {
    /// Whether cells need converting (false: keep the text or JSON value as it is).
    pub fn converts(&self) -> bool {
        self.kind.is_some() || self.values.is_some()
    }

    /// Converts a text cell.
    pub fn convert_str(&self, cell: &str) -> Result<Value, String> {
        if let Some(values) = &self.values {
            return values
                .iter()
                .find(|(k, _)| k == cell)
                .or_else(|| {
                    values
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(cell.trim()))
                })
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    let known: Vec<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
                    format!(
                        "'{cell}' is none of the mapped values ({})",
                        known.join(", ")
                    )
                });
        }
        let t = cell.trim();
        match self.kind.unwrap_or(ValueType::String) {
            ValueType::String => Ok(Value::String(cell.to_string())),
            ValueType::Integer => t
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("'{cell}' is not an integer")),
            ValueType::Float => t
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
                .ok_or_else(|| format!("'{cell}' is not a number")),
            ValueType::Bool => parse_bool(t)
                .map(Value::Bool)
                .ok_or_else(|| format!("'{cell}' is not a boolean (true/false, yes/no, 1/0)")),
            ValueType::Timestamp => self.timestamp(t).map(Value::from),
            ValueType::Json => {
                serde_json::from_str(t).map_err(|e| format!("'{cell}' is not JSON: {e}"))
            }
        }
    }

    /// Converts a JSON value (from JSONL).
    pub fn convert_json(&self, v: Value) -> Result<Value, String> {
        match (&v, self.kind) {
            (Value::String(s), _) => self.convert_str(s),
            (_, None) if self.values.is_some() => self.convert_str(&v.to_string()),
            (_, None) | (_, Some(ValueType::Json)) => Ok(v),
            (Value::Number(_), Some(ValueType::Float)) => Ok(v),
            (Value::Number(n), Some(ValueType::Integer)) if n.is_i64() || n.is_u64() => Ok(v),
            (Value::Bool(_), Some(ValueType::Bool)) => Ok(v),
            (Value::Number(n), Some(ValueType::Bool)) => self.convert_str(&n.to_string()),
            (Value::Number(_), Some(ValueType::Timestamp)) => {
                timestamp::parse_json(&v).map(Value::from)
            }
            (other, Some(t)) => Err(format!(
                "a JSON {} cannot be a {t:?}",
                timestamp::json_kind(other)
            )),
        }
    }

    fn timestamp(&self, t: &str) -> Result<i64, String> {
        let Some(fmt) = &self.format else {
            return timestamp::parse_str_in(t, self.timezone);
        };
        let bad = || format!("'{t}' does not match the format '{fmt}'");
        if fmt.contains("%z") || fmt.contains("%:z") {
            return chrono::DateTime::parse_from_str(t, fmt)
                .map(|d| d.timestamp())
                .map_err(|_| bad());
        }
        let naive = NaiveDateTime::parse_from_str(t, fmt)
            .or_else(|_| {
                NaiveDate::parse_from_str(t, fmt)
                    .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
            })
            .map_err(|_| bad())?;
        timestamp::local_seconds(naive, self.timezone, t)
    }
}

/// A built-in preset: name, what it is for, and its mapping text.
pub struct Preset {
    /// The name for `--preset`.
    pub name: &'static str,
    /// The mapping file (TOML).
    pub text: &'static str,
}

/// The built-in presets, each a mapping file shipped in `src/presets/`.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "mailchimp",
        text: include_str!("presets/mailchimp.toml"),
    },
    Preset {
        name: "hubspot",
        text: include_str!("presets/hubspot.toml"),
    },
    Preset {
        name: "braze",
        text: include_str!("presets/braze.toml"),
    },
    Preset {
        name: "klaviyo",
        text: include_str!("presets/klaviyo.toml"),
    },
    Preset {
        name: "intercom",
        text: include_str!("presets/intercom.toml"),
    },
    Preset {
        name: "sendgrid",
        text: include_str!("presets/sendgrid.toml"),
    },
    Preset {
        name: "brevo",
        text: include_str!("presets/brevo.toml"),
    },
    Preset {
        name: "hubspot-companies",
        text: include_str!("presets/hubspot-companies.toml"),
    },
    Preset {
        name: "hubspot-associations",
        text: include_str!("presets/hubspot-associations.toml"),
    },
    Preset {
        name: "intercom-companies",
        text: include_str!("presets/intercom-companies.toml"),
    },
];

/// Finds a preset by name.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// Lifts members of `unnest` objects to the top level, then flattens remaining objects with
/// the separator, if one is set (JSONL).
pub fn reshape(m: &Mapping, members: Vec<(String, Value)>) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::with_capacity(members.len());
    let push = |out: &mut Vec<(String, Value)>, k: String, v: Value| {
        if let Some(slot) = out.iter_mut().find(|(x, _)| *x == k) {
            slot.1 = v;
        } else {
            out.push((k, v));
        }
    };
    for (k, v) in members {
        match v {
            Value::Object(obj) if m.unnest.contains(&k) => {
                for (ik, iv) in obj {
                    push(&mut out, ik, iv);
                }
            }
            Value::Object(obj) if m.flatten.is_some() => {
                let sep = m.flatten.as_deref().unwrap_or(".");
                let mut stack = vec![(k, Value::Object(obj))];
                while let Some((prefix, val)) = stack.pop() {
                    match val {
                        Value::Object(o) => {
                            for (ik, iv) in o.into_iter().rev() {
                                stack.push((format!("{prefix}{sep}{ik}"), iv));
                            }
                        }
                        other => push(&mut out, prefix, other),
                    }
                }
            }
            other => push(&mut out, k, other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_handles_the_usual_export_names() {
        assert_eq!(snake_case("First Name"), "first_name");
        assert_eq!(snake_case("OPTIN_TIME"), "optin_time");
        assert_eq!(snake_case("State / Region"), "state_region");
        assert_eq!(snake_case("lastName"), "last_name");
        assert_eq!(snake_case("Zip Code"), "zip_code");
    }

    #[test]
    fn every_preset_parses() {
        for p in PRESETS {
            let m = Mapping::parse(p.text, p.name).unwrap_or_else(|e| panic!("{e}"));
            assert!(m.description.is_some(), "{}", p.name);
            // An objects preset identifies no people.
            assert!(
                m.identify_by.is_some()
                    || m.object_kind == Some(crate::convert::ObjectKind::Objects),
                "{}",
                p.name
            );
        }
    }

    #[test]
    fn mistakes_name_the_line_and_the_key() {
        let e = Mapping::parse(
            "[columns.\"A\"]\nrename = \"a\"\ntyp = \"bool\"\n",
            "m.toml",
        )
        .unwrap_err();
        assert!(
            e.contains("m.toml") && e.contains("line 3") && e.contains("typ"),
            "{e}"
        );
        let e = Mapping::parse("[columns.\"A\"]\ntype = \"integr\"\n", "m.toml").unwrap_err();
        assert!(e.contains("line 2") && e.contains("integr"), "{e}");
        let e = Mapping::parse(
            "\n[columns.\"When\"]\ntype = \"timestamp\"\ntimezone = \"Mars/Base\"\n",
            "m.toml",
        )
        .unwrap_err();
        assert!(e.contains("line 2") && e.contains("Mars/Base"), "{e}");
    }

    #[test]
    fn cells_convert_or_say_why_not() {
        let m = Mapping::parse(
            r#"
[columns.n]
type = "integer"
[columns.f]
type = "float"
[columns.b]
type = "bool"
[columns.t]
type = "timestamp"
format = "%d-%m-%Y %H:%M"
timezone = "Europe/Paris"
[columns.j]
type = "json"
[columns.c]
values = { SUBSCRIBED = false, UNSUBSCRIBED = true }
"#,
            "m",
        )
        .unwrap();
        let r = |c: &str| m.rule(c).unwrap();
        assert_eq!(r("n").convert_str(" 42 "), Ok(Value::from(42)));
        assert!(r("n")
            .convert_str("4.2")
            .unwrap_err()
            .contains("not an integer"));
        assert_eq!(r("f").convert_str("4.5"), Ok(Value::from(4.5)));
        assert_eq!(r("b").convert_str("Yes"), Ok(Value::Bool(true)));
        assert_eq!(r("b").convert_str("0"), Ok(Value::Bool(false)));
        assert!(r("b").convert_str("maybe").is_err());
        // 14 Nov 2023 23:13 in Paris (UTC+1) is 22:13 UTC.
        assert_eq!(
            r("t").convert_str("14-11-2023 23:13"),
            Ok(Value::from(1_699_999_980))
        );
        assert!(r("t")
            .convert_str("2023-11-14")
            .unwrap_err()
            .contains("format"));
        assert_eq!(r("j").convert_str("[1,2]"), Ok(serde_json::json!([1, 2])));
        assert_eq!(r("c").convert_str("unsubscribed"), Ok(Value::Bool(true)));
        assert!(r("c")
            .convert_str("MAYBE")
            .unwrap_err()
            .contains("SUBSCRIBED"));
        assert_eq!(
            r("N").convert_str("7"),
            Ok(Value::from(7)),
            "column names match ignoring case"
        );
    }
}
