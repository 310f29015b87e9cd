//! CSV rows: header checks, ragged rows, invalid UTF-8, BOM, quoted newlines, positions (the
//! line a text editor shows where each record starts, whatever the line endings).

use super::{read_error, Item, SourceError};
use crate::record::{Position, RawRow};
use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, Read};

/// The checked header of a CSV input.
#[derive(Clone, Debug)]
pub struct CsvHeader {
    /// Column names, in order.
    pub names: Vec<String>,
    /// The header as read, for writing the rejects file.
    pub raw: csv::ByteRecord,
    /// The delimiter in use.
    pub delimiter: u8,
    /// The header's line ended in CRLF (or a lone CR): the rejects file ends its lines so.
    pub crlf: bool,
}

/// Counts lines in the bytes on their way to the CSV parser, as a text editor does (a line
/// ends at `\n`, `\r\n` or a lone `\r`), and remembers where each non-empty line starts.
///
/// The parser's own count is of no use for this: it stamps a record with its position before
/// it skips the `\n` of a CRLF and any blank lines, so the record would be placed on the line
/// (or the first blank line) before it. A record always starts at the first byte of a
/// non-empty line at or after that position, and this finds its line.
struct Lines<R> {
    inner: R,
    /// Bytes passed through so far.
    offset: u64,
    /// The 1-based line of the next byte.
    line: u64,
    /// The last byte was `\r` (its line break is counted; a `\n` right after adds none).
    after_cr: bool,
    /// The next byte that is not a line ending starts a non-empty line.
    at_line_start: bool,
    /// (offset, line) of the first byte of each non-empty line the parser may not have reached.
    starts: VecDeque<(u64, u64)>,
    /// The line of the last non-empty line seen.
    last_content_line: u64,
    /// The delimiter: a quote right after it (or a line ending, or at the start) opens a field.
    delimiter: u8,
    /// The last byte of the previous read, if any.
    prev: Option<u8>,
    /// The parser is inside a quoted field (as csv-core decides: a quote opens one only at the
    /// start of a field; inside, `""` is a quote and a lone `"` closes it).
    quote_open: bool,
    /// A quote inside a quoted field whose next byte decides: `"` makes it an escaped quote,
    /// anything else closes the field.
    quote_pending: Option<u64>,
    /// The line of the quote that opened the current quoted field.
    open_line: u64,
    /// The inner reader reported the end of its data.
    eof: bool,
    /// The first line break seen was `\r` (CRLF or a lone CR) rather than `\n`.
    first_break_cr: Option<bool>,
}

impl<R> Lines<R> {
    fn new(inner: R, delimiter: u8) -> Lines<R> {
        Lines {
            inner,
            offset: 0,
            line: 1,
            after_cr: false,
            at_line_start: true,
            starts: VecDeque::new(),
            last_content_line: 1,
            delimiter,
            prev: None,
            quote_open: false,
            quote_pending: None,
            open_line: 1,
            eof: false,
            first_break_cr: None,
        }
    }

    fn content(&mut self, at: u64) {
        if self.at_line_start {
            self.starts.push_back((at, self.line));
            self.last_content_line = self.line;
            self.at_line_start = false;
        }
        self.after_cr = false;
    }

    /// A quote at byte `at`, after the byte `prev` (none at the start of the input).
    fn quote(&mut self, at: u64, prev: Option<u8>) {
        if let Some(pending) = self.quote_pending.take() {
            if pending + 1 == at {
                // `""` inside a quoted field: one quote, the field goes on.
                return;
            }
            // The pending quote closed the field.
            self.quote_open = false;
        }
        if self.quote_open {
            self.quote_pending = Some(at);
        } else if prev.is_none_or(|b| b == self.delimiter || b == b'\n' || b == b'\r') {
            self.quote_open = true;
            self.open_line = self.line;
        }
    }

    /// The input ended inside a quoted field: `Some((line of its opening quote, last non-empty
    /// line))`. Known only once the inner reader reached its end.
    fn unclosed(&self) -> Option<(u64, u64)> {
        (self.eof && self.quote_open && self.quote_pending.is_none())
            .then_some((self.open_line, self.last_content_line.max(self.open_line)))
    }

    fn scan(&mut self, buf: &[u8]) {
        let mut from = 0;
        for end in memchr::memchr3_iter(b'\n', b'\r', b'"', buf) {
            if buf[end] == b'"' {
                self.content(self.offset + from as u64);
                let prev = if end > 0 {
                    Some(buf[end - 1])
                } else {
                    self.prev
                };
                self.quote(self.offset + end as u64, prev);
                from = end + 1;
                continue;
            }
            if end > from {
                self.content(self.offset + from as u64);
            }
            if self.first_break_cr.is_none() {
                self.first_break_cr = Some(buf[end] == b'\r');
            }
            if buf[end] == b'\r' {
                self.line += 1;
                self.after_cr = true;
            } else if !std::mem::take(&mut self.after_cr) {
                self.line += 1;
            }
            self.at_line_start = true;
            from = end + 1;
        }
        if buf.len() > from {
            self.content(self.offset + from as u64);
        }
        if let Some(&last) = buf.last() {
            self.prev = Some(last);
        }
        self.offset += buf.len() as u64;
    }

    /// The line of the record whose parse began at byte `from`: the first non-empty line
    /// starting there or later. Forgets the lines before it.
    fn record_line(&mut self, from: u64) -> Option<u64> {
        while self.starts.front().is_some_and(|(at, _)| *at < from) {
            self.starts.pop_front();
        }
        self.starts.front().map(|(_, line)| *line)
    }
}

impl<R: Read> Read for Lines<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        }
        self.scan(&buf[..n]);
        Ok(n)
    }
}

/// Streams CSV records after checking the header.
pub struct CsvRows {
    reader: csv::Reader<Lines<Box<dyn BufRead + Send>>>,
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

fn opens_unclosed(line: u64) -> String {
    format!("line {line} opens a quote that is never closed")
}

/// "lines 3-5", or "line 3" when the quote is on the last line.
fn line_span(first: u64, last: u64) -> String {
    if last > first {
        format!("lines {first}-{last}")
    } else {
        format!("line {first}")
    }
}

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
            .from_reader(Lines::new(reader, delimiter));
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
        if let Some((first, last)) = reader.get_ref().unclosed() {
            return Err(fmt_err(format!(
                "{}: the rest of the file ({}) became part of the header; close the quote (or remove it) and import again",
                opens_unclosed(first),
                line_span(first, last)
            )));
        }
        // The line an editor shows for the header: blank lines may come before it.
        let header_line = reader.get_mut().record_line(0).unwrap_or(1);
        let crlf = reader.get_ref().first_break_cr.unwrap_or(false);
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
                    "header column {} (line {header_line}) has no name: name it, or remove the column",
                    i + 1
                )));
            }
            if let Some(first) = seen.insert(name.clone(), i + 1) {
                return Err(fmt_err(format!(
                    "header column '{}' appears twice (columns {first} and {}): rename one of them",
                    crate::convert::header::shown_name(&name),
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
                crlf,
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
                        "column '{}' is not valid UTF-8 (bad byte at offset {offset}): save the file as UTF-8, or pass its encoding (--encoding windows-1252, ...)",
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
                    .and_then(|p| self.reader.get_mut().record_line(p.byte()))
                    .unwrap_or(self.last_line + 1);
                self.last_line = line;
                let pos = Position {
                    row: self.row,
                    line,
                };
                // The input ended inside a quoted field: this last record swallowed the lines
                // after the quote, so it is reported rather than sent.
                if let Some((first, last)) = self.reader.get_ref().unclosed() {
                    return Some(Ok(Item::Bad {
                        pos,
                        message: format!(
                            "{}: the rest of the file ({}) became part of this row; close the quote (or remove it) and import again",
                            opens_unclosed(first),
                            line_span(first, last)
                        ),
                        raw: RawRow::CsvBytes(rec),
                    }));
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out one byte per read, so a CRLF is split across reads.
    struct OneByte(Vec<u8>, usize);

    impl Read for OneByte {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.get(self.1), buf.first_mut()) {
                (Some(b), Some(out)) => {
                    *out = *b;
                    self.1 += 1;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    /// The line of every record.
    fn lines_of(content: &[u8]) -> Vec<u64> {
        let reader: Box<dyn BufRead + Send> = Box::new(io::BufReader::with_capacity(
            1,
            OneByte(content.to_vec(), 0),
        ));
        let rows = CsvRows::new(reader, b',', "t").expect("a header");
        rows.map(|item| match item {
            Ok(Item::Row { pos, .. }) | Ok(Item::Bad { pos, .. }) => pos.line,
            Err(e) => panic!("{e}"),
        })
        .collect()
    }

    /// (line, message) of every bad record.
    fn bad_of(content: &[u8]) -> Vec<(u64, String)> {
        let reader: Box<dyn BufRead + Send> = Box::new(io::BufReader::with_capacity(
            1,
            OneByte(content.to_vec(), 0),
        ));
        let rows = CsvRows::new(reader, b',', "t").expect("a header");
        rows.filter_map(|item| match item {
            Ok(Item::Bad { pos, message, .. }) => Some((pos.line, message)),
            Ok(Item::Row { .. }) => None,
            Err(e) => panic!("{e}"),
        })
        .collect()
    }

    #[test]
    fn an_input_that_ends_inside_a_quote_is_found_whatever_the_reads() {
        // Open: an escaped quote keeps the field open.
        let bad = bad_of(b"a,b\n1,x\n2,\"x\"\"\n3,y\n");
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].0, 3);
        assert!(
            bad[0].1.starts_with(
                "line 3 opens a quote that is never closed: the rest of the file (lines 3-4)"
            ),
            "{}",
            bad[0].1
        );
        // The opening quote on a later line of a record that started earlier.
        let bad = bad_of(b"a,b\r\n1,\"x\r\ny\",\"z\r\n");
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].1.starts_with("line 3 opens a quote"), "{}", bad[0].1);
        // Closed, literal, empty quoted fields.
        assert!(bad_of(b"a,b\n1,\"x\"\"\"\n2,5\" \"\n3,\"\"\n4,\"\"\"\"").is_empty());
        assert!(bad_of(b"a,b\n1,\"x\"y\"\n").is_empty());
    }

    #[test]
    fn a_header_that_opens_a_quote_never_closed_is_fatal() {
        let reader: Box<dyn BufRead + Send> = Box::new(io::Cursor::new(b"id,\"n\n1,a\n".to_vec()));
        match CsvRows::new(reader, b',', "t") {
            Err(e) => assert!(e.to_string().contains("line 1 opens a quote"), "{e}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn records_are_placed_on_the_line_an_editor_shows() {
        assert_eq!(lines_of(b"a,b\r\n1,2\r\n\r\n3,4\r\n"), vec![2, 4]);
        assert_eq!(lines_of(b"a,b\n\n1,2\n\"x\ny\",z\n3,4"), vec![3, 4, 6]);
        assert_eq!(lines_of(b"a,b\r1,2\r\r3,4\r"), vec![2, 4]);
        assert_eq!(lines_of(b"a,b\r\n1,\"x\r\n\r\ny\"\r\n3,4\r\n"), vec![2, 5]);
    }
}
