//! The differences file: one line per attribute that differs (or per person missing), with
//! the row and line of the source, the identifier, the attribute, how it differs, both values
//! (as JSON: `"42"` and `42` can be told apart), when the workspace last set it, and a note
//! naming the likely cause. Created 0600 on the first difference; a run without differences
//! leaves nothing at the path. The rows themselves go to a rejects file
//! ([`crate::report::rejects::RejectsWriter`]), re-importable with the same options.

use crate::record::Position;
use crate::report::{clear_stale, create_private, ReportError};
use std::fs::File;
use std::path::{Path, PathBuf};

/// The header of the differences file.
pub const HEADER: [&str; 9] = [
    "row",
    "line",
    "identifier",
    "attribute",
    "difference",
    "source_value",
    "workspace_value",
    "workspace_updated_at",
    "note",
];

/// One line of the differences file.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    /// Where the row is.
    pub pos: Position,
    /// Who it is about.
    pub identifier: &'a str,
    /// The attribute (empty for a missing person).
    pub attribute: &'a str,
    /// How it differs.
    pub difference: &'a str,
    /// The source's value, as JSON.
    pub source: String,
    /// The workspace's value, as JSON.
    pub workspace: String,
    /// When the workspace last set the attribute (Unix seconds), if the App API said.
    pub updated_at: Option<i64>,
    /// The likely cause, when one is known.
    pub note: String,
}

/// Writes the differences file.
pub struct DifferencesWriter {
    path: PathBuf,
    w: Option<csv::Writer<File>>,
    /// Lines written.
    pub lines: u64,
}

impl DifferencesWriter {
    /// A writer for `path` (nothing is created before the first line).
    pub fn new(path: PathBuf) -> DifferencesWriter {
        DifferencesWriter {
            path,
            w: None,
            lines: 0,
        }
    }

    /// Where the file goes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line.
    pub fn write(&mut self, l: &Line) -> Result<(), ReportError> {
        let path = self.path.clone();
        if self.w.is_none() {
            let f = create_private(&path).map_err(ReportError::at(&path))?;
            let mut w = csv::Writer::from_writer(f);
            w.write_record(HEADER)
                .map_err(|e| crate::report::rejects::csv_io(e, &path))?;
            self.w = Some(w);
        }
        let Some(w) = self.w.as_mut() else {
            return Ok(());
        };
        let (row, line) = (l.pos.row.to_string(), l.pos.line.to_string());
        let updated = l.updated_at.map(|t| t.to_string()).unwrap_or_default();
        w.write_record([
            row.as_str(),
            line.as_str(),
            l.identifier,
            l.attribute,
            l.difference,
            &l.source,
            &l.workspace,
            &updated,
            &l.note,
        ])
        .map_err(|e| crate::report::rejects::csv_io(e, &path))?;
        self.lines += 1;
        Ok(())
    }

    /// Flushes to disk; reports whether a file was written (none: nothing is left at the path).
    pub fn finish(&mut self) -> Result<bool, ReportError> {
        let path = self.path.clone();
        match self.w.as_mut() {
            None => clear_stale(&path)
                .map(|_| false)
                .map_err(ReportError::at(&path)),
            Some(w) => {
                w.flush().map_err(ReportError::at(&path))?;
                crate::report::sync_file(w.get_ref()).map_err(ReportError::at(&path))?;
                Ok(true)
            }
        }
    }
}
