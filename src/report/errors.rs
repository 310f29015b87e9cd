//! The errors file: one line per failed row with its position, class, status and message.

use super::rejects::csv_io;
use super::{clear_stale, create_private, ReportError};
use crate::record::Failure;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The columns of the errors file.
pub const COLUMNS: [&str; 7] = [
    "row",
    "line",
    "identifier",
    "class",
    "status",
    "attempts",
    "message",
];

/// Writes `row,line,identifier,class,status,attempts,message`; created on the first failure.
pub struct ErrorsWriter {
    path: PathBuf,
    writer: Option<csv::Writer<File>>,
}

impl ErrorsWriter {
    /// A writer for `path`. Like the rejects file, what an earlier run left at `path` was
    /// cleared before the run started (see [`super::check_writable`]);
    /// [`ErrorsWriter::finish`] checks again.
    pub fn new(path: PathBuf) -> ErrorsWriter {
        ErrorsWriter { path, writer: None }
    }

    /// Where the file goes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one failure.
    pub fn write(&mut self, f: &Failure) -> Result<(), ReportError> {
        if self.writer.is_none() {
            let file = create_private(&self.path).map_err(ReportError::at(&self.path))?;
            let mut w = csv::Writer::from_writer(file);
            w.write_record(COLUMNS).map_err(|e| csv_io(e, &self.path))?;
            self.writer = Some(w);
        }
        let w = self.writer.as_mut().expect("writer was just opened");
        let status = f
            .status
            .filter(|s| *s != 0)
            .map(|s| s.to_string())
            .unwrap_or_default();
        w.write_record([
            f.pos.row.to_string().as_str(),
            f.pos.line.to_string().as_str(),
            f.identifier.as_deref().unwrap_or(""),
            f.class.as_str(),
            status.as_str(),
            f.attempts.to_string().as_str(),
            f.message.as_str(),
        ])
        .map_err(|e| csv_io(e, &self.path))
    }

    /// Flushes to disk; reports whether a file was written. Without failures, nothing is left
    /// at the path (an earlier run's file there is cleared, or the error says why it cannot be).
    pub fn finish(&mut self) -> Result<bool, ReportError> {
        match self.writer.as_mut() {
            None => clear_stale(&self.path)
                .map(|_| false)
                .map_err(ReportError::at(&self.path)),
            Some(w) => {
                w.flush().map_err(ReportError::at(&self.path))?;
                super::sync_file(w.get_ref()).map_err(ReportError::at(&self.path))?;
                Ok(true)
            }
        }
    }
}
