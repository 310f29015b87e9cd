//! JSONL rows: one line per row, blank lines skipped; the converter parses each line.

use super::{read_error, Item, SourceError};
use crate::record::{Position, RawRow};
use std::io::BufRead;

/// Streams non-blank lines with their positions.
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
            if self.line == 1 && body.len() != buf.len() {
                buf.drain(..3);
            }
            let item = Item::Row {
                pos,
                raw: RawRow::Line(buf),
            };
            return Some(Ok(item));
        }
        None
    }
}
