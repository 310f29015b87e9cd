//! JSONL rows: one JSON object per line; blank lines skipped, anything else not an object is bad.

use super::{read_error, Fields, Item, SourceError};
use crate::record::{Position, RawRow};
use crate::timestamp::json_kind;
use serde_json::Value;
use std::io::BufRead;

/// Streams JSON objects, one per line.
pub struct JsonlRows {
    reader: Box<dyn BufRead + Send>,
    input_name: String,
    row: u64,
    line: u64,
    done: bool,
}

impl JsonlRows {
    /// Reads `reader` line by line.
    pub fn new(reader: Box<dyn BufRead + Send>, input_name: &str) -> JsonlRows {
        JsonlRows {
            reader,
            input_name: input_name.to_string(),
            row: 0,
            line: 0,
            done: false,
        }
    }
}

impl Iterator for JsonlRows {
    type Item = Result<Item, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let mut buf = Vec::new();
            match self.reader.read_until(b'\n', &mut buf) {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(read_error(&self.input_name, self.line, &e)));
                }
            }
            self.line += 1;
            while matches!(buf.last(), Some(b'\n' | b'\r')) {
                buf.pop();
            }
            let body: &[u8] = if self.line == 1 {
                buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&buf)
            } else {
                &buf
            };
            if body.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            self.row += 1;
            let pos = Position {
                row: self.row,
                line: self.line,
            };
            let parsed: Result<Value, _> = serde_json::from_slice(body);
            let item = match parsed {
                Ok(Value::Object(map)) => Item::Row {
                    pos,
                    raw: RawRow::Line(buf),
                    fields: Fields::Json(map),
                },
                Ok(other) => Item::Bad {
                    pos,
                    message: format!(
                        "line is a JSON {}, not an object: each line must be one {{...}} person",
                        json_kind(&other)
                    ),
                    raw: RawRow::Line(buf),
                },
                Err(e) => Item::Bad {
                    pos,
                    message: format!("line is not valid JSON ({e}): fix or remove it"),
                    raw: RawRow::Line(buf),
                },
            };
            return Some(Ok(item));
        }
        None
    }
}
