//! CSV rows: header checks, ragged rows, invalid UTF-8, BOM, quoted newlines, positions.

use super::{read_error, Item, SourceError};
use crate::record::{Position, RawRow};
use std::collections::HashMap;
use std::io::BufRead;

/// The checked header of a CSV input.
#[derive(Clone, Debug)]
pub struct CsvHeader {
    /// Column names, in order.
    pub names: Vec<String>,
    /// The header as read, for writing the rejects file.
    pub raw: csv::ByteRecord,
    /// The delimiter in use.
    pub delimiter: u8,
}

/// Streams CSV records after checking the header.
pub struct CsvRows {
    reader: csv::Reader<Box<dyn BufRead + Send>>,
    header: CsvHeader,
    input_name: String,
    row: u64,
    last_line: u64,
    last_size: (usize, usize),
    done: bool,
    spare: Option<csv::ByteRecord>,
    encoder: LineEncoder,
}

/// Encodes one record as a CSV line (quoting only where needed), with csv-core.
struct LineEncoder {
    delimiter: u8,
    scratch: Box<[u8; 4096]>,
}

impl LineEncoder {
    fn encode(&mut self, rec: &csv::StringRecord) -> Vec<u8> {
        use csv_core::WriteResult;
        let mut w = csv_core::WriterBuilder::new()
            .delimiter(self.delimiter)
            .build();
        let mut out = Vec::with_capacity(rec.as_slice().len() + rec.len() + 8);
        for (i, field) in rec.iter().enumerate() {
            if i > 0 {
                let (_, n) = w.delimiter(&mut self.scratch[..]);
                out.extend_from_slice(&self.scratch[..n]);
            }
            let mut input = field.as_bytes();
            loop {
                let (res, nin, nout) = w.field(input, &mut self.scratch[..]);
                out.extend_from_slice(&self.scratch[..nout]);
                input = &input[nin..];
                if res == WriteResult::InputEmpty {
                    break;
                }
            }
        }
        loop {
            let (res, n) = w.finish(&mut self.scratch[..]);
            out.extend_from_slice(&self.scratch[..n]);
            if res == WriteResult::InputEmpty {
                break;
            }
        }
        out
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl CsvRows {
    /// Reads the header; duplicate, empty or non-UTF-8 names are a fatal error.
    pub fn new(
        reader: Box<dyn BufRead + Send>,
        delimiter: u8,
        input_name: &str,
    ) -> Result<CsvRows, SourceError> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(reader);
        let fmt_err = |message: String| SourceError::Format {
            path: input_name.to_string(),
            message,
        };
        let mut raw = csv::ByteRecord::new();
        let got = reader
            .read_byte_record(&mut raw)
            .map_err(|e| match e.into_kind() {
                csv::ErrorKind::Io(io) => read_error(input_name, 1, &io),
                other => fmt_err(format!("cannot read the header: {other:?}")),
            })?;
        if !got {
            return Err(fmt_err(
                "the file is empty: a CSV input needs a header row naming its columns".into(),
            ));
        }
        let mut names = Vec::with_capacity(raw.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, field) in raw.iter().enumerate() {
            let field = if i == 0 {
                field.strip_prefix(BOM).unwrap_or(field)
            } else {
                field
            };
            let name = std::str::from_utf8(field)
                .map_err(|_| {
                    fmt_err(format!(
                        "header column {} is not valid UTF-8: save the file as UTF-8",
                        i + 1
                    ))
                })?
                .to_string();
            if name.trim().is_empty() {
                return Err(fmt_err(format!(
                    "header column {} (line 1) has no name: name it, or remove the column",
                    i + 1
                )));
            }
            if let Some(first) = seen.insert(name.clone(), i + 1) {
                return Err(fmt_err(format!(
                    "header column '{name}' appears twice (columns {first} and {}): rename one of them",
                    i + 1
                )));
            }
            names.push(name);
        }
        // Keep the raw header without the BOM, so the rejects file starts clean.
        let mut clean = csv::ByteRecord::new();
        for (i, f) in raw.iter().enumerate() {
            clean.push_field(if i == 0 {
                f.strip_prefix(BOM).unwrap_or(f)
            } else {
                f
            });
        }
        Ok(CsvRows {
            reader,
            header: CsvHeader {
                names,
                raw: clean,
                delimiter,
            },
            input_name: input_name.to_string(),
            row: 0,
            last_line: 1,
            last_size: (256, 16),
            done: false,
            spare: None,
            encoder: LineEncoder {
                delimiter,
                scratch: Box::new([0; 4096]),
            },
        })
    }

    /// The checked header.
    pub fn header(&self) -> &CsvHeader {
        &self.header
    }

    /// Re-encodes a converted record as one CSV line and keeps the record's buffers for the
    /// next read: a row in flight then holds one small allocation instead of three.
    pub fn compact(&mut self, rec: csv::StringRecord) -> RawRow {
        let line = self.encoder.encode(&rec);
        self.spare = Some(rec.into_byte_record());
        RawRow::CsvLine(line)
    }

    fn classify(&self, pos: Position, rec: csv::ByteRecord) -> Item {
        let want = self.header.names.len();
        if rec.len() != want {
            return Item::Bad {
                pos,
                message: format!(
                    "row has {} fields but the header has {want}: look for an unquoted delimiter or a missing quote",
                    rec.len()
                ),
                raw: RawRow::CsvBytes(rec),
            };
        }
        match csv::StringRecord::from_byte_record(rec) {
            Ok(text) => Item::Row {
                pos,
                raw: RawRow::Csv(text),
            },
            Err(e) => {
                let col = e.utf8_error().field();
                let offset = e.utf8_error().valid_up_to();
                Item::Bad {
                    pos,
                    message: format!(
                        "column '{}' is not valid UTF-8 (bad byte at offset {offset}): save the file as UTF-8",
                        self.header.names.get(col).map(String::as_str).unwrap_or("?")
                    ),
                    raw: RawRow::CsvBytes(e.into_byte_record()),
                }
            }
        }
    }
}

impl Iterator for CsvRows {
    type Item = Result<Item, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        // A recycled record, or one sized like the last row, so it does not grow field by field.
        let mut rec = self
            .spare
            .take()
            .unwrap_or_else(|| csv::ByteRecord::with_capacity(self.last_size.0, self.last_size.1));
        match self.reader.read_byte_record(&mut rec) {
            Ok(false) => {
                self.done = true;
                None
            }
            Ok(true) => {
                self.row += 1;
                self.last_size = (rec.as_slice().len() + 16, rec.len());
                let line = rec
                    .position()
                    .map(|p| p.line())
                    .unwrap_or(self.last_line + 1);
                self.last_line = line;
                let pos = Position {
                    row: self.row,
                    line,
                };
                Some(Ok(self.classify(pos, rec)))
            }
            Err(e) => {
                self.done = true;
                let line = self.last_line;
                Some(Err(match e.into_kind() {
                    csv::ErrorKind::Io(io) => read_error(&self.input_name, line, &io),
                    other => SourceError::Format {
                        path: self.input_name.clone(),
                        message: format!("unreadable CSV after line {line}: {other:?}"),
                    },
                }))
            }
        }
    }
}
