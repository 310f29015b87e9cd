//! The rejects file: failed rows verbatim, in the input's format and text encoding (a
//! windows-1252 or UTF-16 input gets its rejects in windows-1252 or UTF-16, so they open as the
//! input did: its byte-order mark, UTF-8's included, and CRLF line ends when its header line
//! ended so), ready to import again.

use super::{clear_stale, create_private, ReportError};
use crate::record::RawRow;
use crate::source::decode::EncodeWriter;
use crate::source::{CsvHeader, TextEncoding};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

enum Sink {
    Csv(Box<csv::Writer<EncodeWriter<File>>>),
    Lines(BufWriter<EncodeWriter<File>>),
}

/// Writes failed rows; the file is created on the first one only.
pub struct RejectsWriter {
    path: PathBuf,
    header: Option<CsvHeader>,
    encoding: TextEncoding,
    sink: Option<Sink>,
}

impl RejectsWriter {
    /// A writer for `path`; `header` is the CSV header (None for JSONL). What an earlier run
    /// left at `path` was cleared before the run started (see [`super::check_writable`]), so
    /// even a killed run leaves only its own failures; [`RejectsWriter::finish`] checks again.
    pub fn new(path: PathBuf, header: Option<CsvHeader>) -> RejectsWriter {
        RejectsWriter {
            path,
            header,
            encoding: TextEncoding::UTF8,
            sink: None,
        }
    }

    /// Writes the file in `encoding` (the input's) instead of UTF-8.
    pub fn encoded(mut self, encoding: TextEncoding) -> RejectsWriter {
        self.encoding = encoding;
        self
    }

    /// Where the file goes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&mut self) -> Result<&mut Sink, ReportError> {
        if self.sink.is_none() {
            let file = create_private(&self.path).map_err(ReportError::at(&self.path))?;
            let file =
                EncodeWriter::new(file, self.encoding).map_err(ReportError::at(&self.path))?;
            let sink = match &self.header {
                Some(h) => {
                    let terminator = if h.crlf {
                        csv::Terminator::CRLF
                    } else {
                        csv::Terminator::Any(b'\n')
                    };
                    let mut w = csv::WriterBuilder::new()
                        .delimiter(h.delimiter)
                        .terminator(terminator)
                        .flexible(true)
                        .from_writer(file);
                    w.write_byte_record(&h.raw)
                        .map_err(|e| csv_io(e, &self.path))?;
                    Sink::Csv(Box::new(w))
                }
                None => Sink::Lines(BufWriter::new(file)),
            };
            self.sink = Some(sink);
        }
        Ok(self.sink.as_mut().expect("sink was just opened"))
    }

    /// Appends one failed row.
    pub fn write(&mut self, raw: &RawRow) -> Result<(), ReportError> {
        let path = self.path.clone();
        let delimiter = self.header.as_ref().map_or(b',', |h| h.delimiter);
        match (self.open()?, raw) {
            (Sink::Csv(w), RawRow::Csv(_) | RawRow::CsvBytes(_)) => {
                if let Some(rec) = raw.csv_bytes() {
                    w.write_byte_record(rec).map_err(|e| csv_io(e, &path))?
                }
            }
            (Sink::Csv(w), RawRow::CsvLine(line)) => {
                // Encoded with the input's delimiter when the row was read: decode it back.
                let mut rec = csv::ByteRecord::new();
                csv::ReaderBuilder::new()
                    .has_headers(false)
                    .delimiter(delimiter)
                    .from_reader(line.as_slice())
                    .read_byte_record(&mut rec)
                    .map_err(|e| csv_io(e, &path))?;
                w.write_byte_record(&rec).map_err(|e| csv_io(e, &path))?
            }
            (Sink::Lines(w), RawRow::Line(line) | RawRow::CsvLine(line)) => {
                w.write_all(line).map_err(ReportError::at(&path))?;
                w.write_all(b"\n").map_err(ReportError::at(&path))?;
            }
            (Sink::Csv(w), RawRow::Line(line)) => {
                // Not produced by the readers; kept total for safety.
                w.write_byte_record(&csv::ByteRecord::from(vec![line.as_slice()]))
                    .map_err(|e| csv_io(e, &path))?
            }
            (Sink::Lines(w), RawRow::Csv(_) | RawRow::CsvBytes(_)) => {
                let joined: Vec<&[u8]> = raw
                    .csv_bytes()
                    .map(|r| r.iter().collect())
                    .unwrap_or_default();
                w.write_all(&joined.join(&b","[..]))
                    .map_err(ReportError::at(&path))?;
                w.write_all(b"\n").map_err(ReportError::at(&path))?;
            }
        }
        Ok(())
    }

    /// Flushes to disk; reports whether a file was written. Without failures, nothing is left
    /// at the path (an earlier run's file there is cleared, or the error says why it cannot be).
    pub fn finish(&mut self) -> Result<bool, ReportError> {
        let path = self.path.clone();
        match self.sink.as_mut() {
            None => clear_stale(&path)
                .map(|_| false)
                .map_err(ReportError::at(&path)),
            Some(Sink::Csv(w)) => {
                w.flush().map_err(ReportError::at(&path))?;
                super::sync_file(w.get_ref().get_ref()).map_err(ReportError::at(&path))?;
                Ok(true)
            }
            Some(Sink::Lines(w)) => {
                w.flush().map_err(ReportError::at(&path))?;
                super::sync_file(w.get_ref().get_ref()).map_err(ReportError::at(&path))?;
                Ok(true)
            }
        }
    }
}

pub(crate) fn csv_io(e: csv::Error, path: &Path) -> ReportError {
    let source = match e.into_kind() {
        csv::ErrorKind::Io(io) => io,
        other => std::io::Error::other(format!("{other:?}")),
    };
    ReportError {
        path: path.display().to_string(),
        source,
    }
}
