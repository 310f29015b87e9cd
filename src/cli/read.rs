//! The options that say how to read an input and find the people in it, shared by `import`
//! and `inspect`; they become a [`ReadOptions`] (no clap) that [`crate::config`] resolves.

use crate::config::{MappingSource, ReadOptions};
use crate::record::IdKind;
use crate::source::Format;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// `--format`
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum FormatArg {
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Csv => Format::Csv,
            FormatArg::Jsonl => Format::Jsonl,
        }
    }
}

/// `--identify-by`
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum IdentifyBy {
    /// Your application's user id.
    Id,
    /// The email address.
    Email,
    /// Customer.io's own id (with or without the cio_ prefix).
    #[value(name = "cio_id", alias = "cio-id")]
    CioId,
}

impl From<IdentifyBy> for IdKind {
    fn from(i: IdentifyBy) -> IdKind {
        match i {
            IdentifyBy::Id => IdKind::Id,
            IdentifyBy::Email => IdKind::Email,
            IdentifyBy::CioId => IdKind::CioId,
        }
    }
}

/// How to read an input and find the people in it: shared by `import` and `inspect`.
#[derive(Args, Debug)]
pub struct ReadArgs {
    /// The input format (needed for stdin; otherwise taken from the extension).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// CSV delimiter: one character, or `tab` [default: detected from the header: comma,
    /// semicolon, tab or pipe; tab for .tsv].
    #[arg(long)]
    pub delimiter: Option<String>,
    /// The input's text encoding: utf-8, utf-16le, utf-16be, windows-1252, iso-8859-1, or any
    /// WHATWG label [default: UTF-8, or UTF-16 when the file starts with its byte-order mark].
    #[arg(long)]
    pub encoding: Option<String>,
    /// Which identifier addresses people [default: id, or the preset's].
    #[arg(long, value_enum)]
    pub identify_by: Option<IdentifyBy>,
    /// The column holding the identifier, after mapping (default: the --identify-by name).
    #[arg(long)]
    pub id_column: Option<String>,
    /// A mapping file (TOML): renames, drops, types, value maps, constants.
    #[arg(long, conflicts_with = "preset")]
    pub mapping: Option<PathBuf>,
    /// A built-in mapping for another platform's export (see `cio-import presets`).
    #[arg(long)]
    pub preset: Option<String>,
}

impl ReadArgs {
    /// The mapping these flags name, if any.
    pub fn mapping_source(&self) -> Option<MappingSource> {
        match (&self.mapping, &self.preset) {
            (Some(p), _) => Some(MappingSource::File(p.clone())),
            (None, Some(n)) => Some(MappingSource::Preset(n.clone())),
            (None, None) => None,
        }
    }

    /// The same choices in domain types, for [`crate::config`] to check and resolve.
    pub fn options(&self) -> ReadOptions {
        ReadOptions {
            format: self.format.map(Format::from),
            delimiter: self.delimiter.clone(),
            identify_by: self.identify_by.map(IdKind::from),
            id_column: self.id_column.clone(),
            mapping: self.mapping_source(),
            encoding: self.encoding.clone(),
        }
    }
}
