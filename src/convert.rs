//! From a source row to a validated [`Record`]: identifier, attributes, `created_at`, and the
//! payload written straight to bytes (no per-row map: this is the hot path).

use crate::json_object::{self, Members};
use crate::record::{IdKind, Identifier, Position, RawRow, Record};
use crate::timestamp;
use crate::track::{json_key, Api, PayloadWriter};
use crate::validate::{self, Violation, MAX_ATTRIBUTES, MAX_VALUE_BYTES};
use serde_json::Value;

/// How rows become people.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// Which identifier addresses the person.
    pub id_kind: IdKind,
    /// The column holding it.
    pub id_column: String,
    /// The API the payload is built for.
    pub api: Api,
    /// Compute each row's attribute hash (for the ledger).
    pub hash: bool,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Identifier,
    CreatedAt,
    Plain,
}

#[derive(Debug)]
struct Column {
    name: String,
    key: Vec<u8>,
    role: Role,
    name_problem: Option<Violation>,
}

/// Converts rows of one input. Built once per file: CSV column names are checked and escaped
/// once, not once per row.
#[derive(Debug)]
pub struct Converter {
    opts: ConvertOptions,
    columns: Vec<Column>,
    id_index: Option<usize>,
}

fn invalid(identifier: Option<&str>, field: Option<&str>, message: String) -> Invalid {
    Invalid {
        identifier: identifier.map(str::to_string),
        violation: Violation {
            field: field.map(str::to_string),
            message,
        },
    }
}

impl Converter {
    /// A converter for rows under `header` (CSV) or without one (JSONL).
    pub fn new(opts: ConvertOptions, header: Option<&[String]>) -> Converter {
        let columns: Vec<Column> = header
            .unwrap_or(&[])
            .iter()
            .map(|name| Column {
                name: name.clone(),
                key: json_key(name),
                role: if *name == opts.id_column {
                    Role::Identifier
                } else if name == CREATED_AT {
                    Role::CreatedAt
                } else {
                    Role::Plain
                },
                name_problem: validate::attribute_name(name).err(),
            })
            .collect();
        let id_index = columns.iter().position(|c| c.role == Role::Identifier);
        Converter {
            opts,
            columns,
            id_index,
        }
    }

    /// The options in use.
    pub fn options(&self) -> &ConvertOptions {
        &self.opts
    }

    /// Converts and validates one row; an invalid row comes back with its raw form.
    pub fn convert(&self, pos: Position, raw: RawRow) -> Result<Record, (Invalid, RawRow)> {
        let built = match &raw {
            RawRow::Csv(rec) => self.csv(rec),
            RawRow::Line(line) => self.jsonl(line),
            RawRow::CsvBytes(_) | RawRow::CsvLine(_) => {
                Err(invalid(None, None, "not a readable CSV row".into()))
            }
        };
        match built {
            Ok((identifier, attributes, payload, hash)) => Ok(Record {
                pos,
                identifier,
                attributes,
                payload,
                raw,
                hash,
            }),
            Err(inv) => Err((inv, raw)),
        }
    }

    fn identifier(&self, value: &str) -> Result<Identifier, Invalid> {
        let column = self.opts.id_column.as_str();
        validate::identifier(column, value).map_err(|v| Invalid {
            identifier: Some(value.to_string()),
            violation: v,
        })?;
        let value = match self.opts.id_kind {
            IdKind::CioId => value.strip_prefix("cio_").unwrap_or(value),
            _ => value,
        };
        Ok(Identifier {
            kind: self.opts.id_kind,
            value: value.to_string(),
        })
    }

    fn missing_id(&self) -> Invalid {
        let column = &self.opts.id_column;
        invalid(
            None,
            Some(column),
            format!("identifier '{column}' is missing: add it, or choose another column with --id-column"),
        )
    }

    fn finish(
        &self,
        id: Identifier,
        w: PayloadWriter,
        canon: Option<Canon<'_>>,
    ) -> Result<Built, Invalid> {
        let n = w.attributes();
        if n > MAX_ATTRIBUTES {
            return Err(invalid(
                Some(&id.value),
                None,
                format!("{n} attributes; the Track API takes at most {MAX_ATTRIBUTES} per person: drop columns"),
            ));
        }
        let payload = w.finish();
        if self.opts.api == Api::Batch {
            validate::operation_size(payload.len()).map_err(|v| Invalid {
                identifier: Some(id.value.clone()),
                violation: v,
            })?;
        }
        Ok((id, n, payload, canon.map(Canon::hash)))
    }

    fn csv(&self, rec: &csv::StringRecord) -> Result<Built, Invalid> {
        let field = |i: usize| rec.get(i).unwrap_or_default();
        let id_value = self.id_index.map(field).ok_or_else(|| self.missing_id())?;
        let id = self.identifier(id_value)?;
        let mut w = PayloadWriter::begin(
            self.opts.api,
            &id,
            rec.as_slice().len() + 96 + 16 * rec.len(),
        );
        let mut canon = self.opts.hash.then(Canon::default);
        for (i, col) in self.columns.iter().enumerate() {
            let cell = field(i);
            if cell.is_empty() || col.role == Role::Identifier {
                continue;
            }
            if let Some(p) = &col.name_problem {
                return Err(Invalid {
                    identifier: Some(id.value),
                    violation: p.clone(),
                });
            }
            if col.role == Role::CreatedAt {
                let secs = timestamp::parse_str(cell)
                    .map_err(|m| invalid(Some(&id.value), Some(CREATED_AT), m))?;
                w.key_prepared(&col.key);
                w.int_value(secs);
                if let Some(c) = canon.as_mut() {
                    c.int(&col.name, secs);
                }
                continue;
            }
            if cell.len() > MAX_VALUE_BYTES {
                return Err(value_too_long(&id.value, &col.name, cell.len()));
            }
            w.key_prepared(&col.key);
            w.str_value(cell);
            if let Some(c) = canon.as_mut() {
                c.str(&col.name, cell);
            }
        }
        self.finish(id, w, canon)
    }

    fn jsonl(&self, line: &[u8]) -> Result<Built, Invalid> {
        let fields = parse_object(line)?;
        let id_raw = fields
            .iter()
            .find(|(k, _)| *k == self.opts.id_column)
            .map(|(_, v)| *v)
            .ok_or_else(|| self.missing_id())?;
        let column = self.opts.id_column.as_str();
        let id_value: String = match serde_json::from_str::<Value>(id_raw.get()) {
            Ok(Value::String(s)) => s,
            Ok(Value::Number(n)) => n.to_string(),
            Ok(Value::Null) => String::new(),
            Ok(other) => {
                return Err(invalid(
                    None,
                    Some(column),
                    format!(
                        "identifier '{column}' is a JSON {}: it must be a string or a number",
                        timestamp::json_kind(&other)
                    ),
                ))
            }
            Err(e) => {
                return Err(invalid(
                    None,
                    Some(column),
                    format!("identifier '{column}': {e}"),
                ))
            }
        };
        let id = self.identifier(&id_value)?;
        let mut w = PayloadWriter::begin(self.opts.api, &id, line.len() + 64);
        let mut canon = self.opts.hash.then(Canon::default);
        for (name, value) in &fields {
            let text = value.get();
            if *name == self.opts.id_column || text == "null" {
                continue;
            }
            validate::attribute_name(name).map_err(|v| Invalid {
                identifier: Some(id.value.clone()),
                violation: v,
            })?;
            if name == CREATED_AT {
                let parsed: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                let secs = timestamp::parse_json(&parsed)
                    .map_err(|m| invalid(Some(&id.value), Some(CREATED_AT), m))?;
                w.key(name);
                w.int_value(secs);
                if let Some(c) = canon.as_mut() {
                    c.int(name, secs);
                }
                continue;
            }
            let size = json_object::value_bytes(value, MAX_VALUE_BYTES);
            if size > MAX_VALUE_BYTES {
                return Err(value_too_long(&id.value, name, size));
            }
            w.key(name);
            w.raw_value(text);
            if let Some(c) = canon.as_mut() {
                c.json(name, text);
            }
        }
        self.finish(id, w, canon)
    }
}

/// What a conversion yields: identifier, attribute count, payload, attribute hash.
type Built = (Identifier, usize, Vec<u8>, Option<[u8; 16]>);

/// The canonical form of a row's attributes, for the ledger's hash: sorted by name, each value
/// tagged with its exact type (the string "42" and the number 42 differ; so do 1 and 1.0),
/// nested objects with sorted keys. Independent of column order and JSON spacing.
#[derive(Default)]
struct Canon<'a> {
    buf: Vec<u8>,
    pairs: Vec<(&'a str, std::ops::Range<usize>)>,
}

impl<'a> Canon<'a> {
    fn push(&mut self, name: &'a str, tag: u8, bytes: &[u8]) {
        let start = self.buf.len();
        self.buf.push(tag);
        self.buf
            .extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        self.buf.extend_from_slice(bytes);
        self.pairs.push((name, start..self.buf.len()));
    }

    fn str(&mut self, name: &'a str, s: &str) {
        self.push(name, b's', s.as_bytes());
    }

    fn int(&mut self, name: &'a str, n: i64) {
        self.push(name, b'n', n.to_string().as_bytes());
    }

    fn json(&mut self, name: &'a str, text: &str) {
        let start = self.buf.len();
        match serde_json::from_str::<Value>(text) {
            Ok(v) => canon_json(&v, &mut self.buf),
            Err(_) => self.buf.extend_from_slice(text.as_bytes()),
        }
        self.pairs.push((name, start..self.buf.len()));
    }

    fn hash(mut self) -> [u8; 16] {
        self.pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for (name, range) in &self.pairs {
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update(&self.buf[range.clone()]);
        }
        h.digest128().to_le_bytes()
    }
}

fn canon_json(v: &Value, out: &mut Vec<u8>) {
    let tagged = |tag: u8, bytes: &[u8], out: &mut Vec<u8>| {
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    match v {
        Value::Null => out.push(b'z'),
        Value::Bool(b) => tagged(b'b', &[u8::from(*b)], out),
        Value::Number(n) => tagged(b'n', n.to_string().as_bytes(), out),
        Value::String(s) => tagged(b's', s.as_bytes(), out),
        Value::Array(a) => {
            out.push(b'[');
            out.extend_from_slice(&(a.len() as u64).to_le_bytes());
            for x in a {
                canon_json(x, out);
            }
        }
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
            for (k, x) in entries {
                tagged(b'k', k.as_bytes(), out);
                canon_json(x, out);
            }
        }
    }
}

fn value_too_long(id: &str, name: &str, n: usize) -> Invalid {
    invalid(
        Some(id),
        Some(name),
        format!("value of '{name}' is {n} bytes; the Track API allows at most {MAX_VALUE_BYTES}: shorten it"),
    )
}

/// Parses one JSONL line as an object, with messages that say what the line is instead.
fn parse_object(line: &[u8]) -> Result<Members<'_>, Invalid> {
    json_object::parse(line).map_err(|e| {
        let first = line.iter().find(|b| !b.is_ascii_whitespace()).copied();
        let kind = match first {
            Some(b'[') => Some("an array"),
            Some(b'"') => Some("a string"),
            Some(b't' | b'f') => Some("a boolean"),
            Some(b'n') => Some("null"),
            Some(b'-' | b'0'..=b'9') => Some("a number"),
            _ => None,
        };
        let message = match kind {
            Some(k) if serde_json::from_slice::<Value>(line).is_ok() => {
                format!("line is {k}, not a JSON object: each line must be one {{...}} person")
            }
            _ => format!("line is not valid JSON ({e}): fix or remove it"),
        };
        invalid(None, None, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(api: Api) -> ConvertOptions {
        ConvertOptions {
            id_kind: IdKind::Id,
            id_column: "id".into(),
            api,
            hash: true,
        }
    }
    const POS: Position = Position { row: 1, line: 2 };

    fn csv(api: Api, cells: &[&str]) -> Result<Record, (Invalid, RawRow)> {
        let header: Vec<String> = ["id", "zip", "created_at", "note"]
            .map(String::from)
            .to_vec();
        let c = Converter::new(opts(api), Some(&header));
        c.convert(POS, RawRow::Csv(csv::StringRecord::from(cells.to_vec())))
    }

    fn payload(r: &Record) -> Value {
        serde_json::from_slice(&r.payload).unwrap()
    }

    #[test]
    fn csv_values_stay_strings_and_empty_cells_are_left_out() {
        let r = csv(Api::V1, &["42", "02134", "2023-11-14", ""]).unwrap();
        assert_eq!(r.identifier.value, "42");
        assert_eq!(r.attributes, 2);
        assert_eq!(
            String::from_utf8(r.payload).unwrap(),
            r#"{"zip":"02134","created_at":1699920000}"#
        );
        let r = csv(Api::Batch, &["42", "02134", "", "a \"q\"\n"]).unwrap();
        assert_eq!(
            payload(&r),
            json!({"type":"person","identifiers":{"id":"42"},"action":"identify","attributes":{"zip":"02134","note":"a \"q\"\n"}})
        );
    }

    #[test]
    fn bad_created_at_and_missing_id_are_invalid_with_the_field() {
        let (e, _) = csv(Api::V1, &["42", "1", "last tuesday", ""]).unwrap_err();
        assert_eq!(e.violation.field.as_deref(), Some("created_at"));
        assert!(e.message().contains("accepted:"));
        let (e, _) = csv(Api::V1, &["", "1", "", ""]).unwrap_err();
        assert_eq!(e.violation.field.as_deref(), Some("id"));
    }

    fn jsonl(line: &str) -> Result<Record, (Invalid, RawRow)> {
        Converter::new(opts(Api::V1), None).convert(POS, RawRow::Line(line.as_bytes().to_vec()))
    }

    #[test]
    fn json_keeps_types_and_numbers_as_ids() {
        let r = jsonl(r#"{"id":7,"age":31,"vip":true,"gone":null,"tags":["a", "b"],"created_at":1700000000123,"age":32}"#).unwrap();
        assert_eq!(r.identifier.value, "7");
        assert_eq!(
            payload(&r),
            json!({"age":32,"vip":true,"tags":["a","b"],"created_at":1700000000})
        );
    }

    #[test]
    fn json_lines_that_are_not_objects_say_what_they_are() {
        for (line, needle) in [
            ("[1,2]", "is an array"),
            ("\"s\"", "is a string"),
            ("12", "is a number"),
            ("{\"id\":1,", "not valid JSON"),
            ("{\"id\":1} x", "not valid JSON"),
            ("NaN", "not valid JSON"),
        ] {
            let (e, _) = jsonl(line).unwrap_err();
            assert!(e.message().contains(needle), "{line}: {}", e.message());
        }
        let (e, _) = jsonl(r#"{"id":{"a":1}}"#).unwrap_err();
        assert!(e.message().contains("JSON object"), "{}", e.message());
    }

    #[test]
    fn json_value_sizes_are_measured_decoded() {
        // 500 two-byte characters written as \u escapes: 3000 bytes of text, 1000 decoded.
        let escaped = "\\u00e9".repeat(500);
        assert!(jsonl(&format!(r#"{{"id":"1","v":"{escaped}"}}"#)).is_ok());
        let (e, _) = jsonl(&format!(r#"{{"id":"1","v":"{escaped}x"}}"#)).unwrap_err();
        assert!(e.message().contains("1001 bytes"), "{}", e.message());
    }
}

#[cfg(test)]
mod hash_tests {
    use super::*;

    fn hash_of(header: &[&str], cells: &[&str]) -> [u8; 16] {
        let opts = ConvertOptions {
            id_kind: IdKind::Id,
            id_column: "id".into(),
            api: Api::Batch,
            hash: true,
        };
        let header: Vec<String> = header.iter().map(|s| s.to_string()).collect();
        let c = Converter::new(opts, Some(&header));
        let rec = c.convert(
            Position { row: 1, line: 2 },
            RawRow::Csv(csv::StringRecord::from(cells.to_vec())),
        );
        rec.unwrap().hash.unwrap()
    }

    fn hash_json(line: &str) -> [u8; 16] {
        let opts = ConvertOptions {
            id_kind: IdKind::Id,
            id_column: "id".into(),
            api: Api::Batch,
            hash: true,
        };
        let c = Converter::new(opts, None);
        c.convert(
            Position { row: 1, line: 1 },
            RawRow::Line(line.as_bytes().to_vec()),
        )
        .unwrap()
        .hash
        .unwrap()
    }

    #[test]
    fn the_hash_ignores_column_order_and_spacing_but_not_values_or_types() {
        let a = hash_of(&["id", "a", "b"], &["1", "x", "y"]);
        assert_eq!(a, hash_of(&["b", "id", "a"], &["y", "1", "x"]));
        assert_ne!(a, hash_of(&["id", "a", "b"], &["1", "x", "z"]));
        assert_ne!(a, hash_of(&["id", "a", "c"], &["1", "x", "y"]));
        // Boundaries between names and values cannot be confused.
        assert_ne!(
            hash_of(&["id", "ab"], &["1", "c"]),
            hash_of(&["id", "a"], &["1", "bc"])
        );
        assert_eq!(
            hash_json(r#"{"id":"1","o":{"b":1,"a":[1,"2"]}}"#),
            hash_json(r#"{ "o": {"a": [1, "2"], "b": 1}, "id": "1" }"#)
        );
        assert_ne!(
            hash_json(r#"{"id":"1","n":42}"#),
            hash_json(r#"{"id":"1","n":"42"}"#)
        );
        assert_ne!(
            hash_json(r#"{"id":"1","n":1}"#),
            hash_json(r#"{"id":"1","n":1.0}"#)
        );
        // A CSV string and a JSON string are the same value.
        assert_eq!(
            hash_of(&["id", "n"], &["1", "42"]),
            hash_json(r#"{"id":"1","n":"42"}"#)
        );
    }
}
