//! The leaf types of a row's life: where it came from, who it is about, how it ended.
//! What a converted row becomes is an [`crate::operation::Operation`].

/// Which identifier a person is addressed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdKind {
    /// The application's own user id (`id`).
    Id,
    /// The person's email address.
    Email,
    /// Customer.io's internal id (`cio_id`).
    CioId,
}

impl IdKind {
    /// The name used in v2 `identifiers` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::Id => "id",
            IdKind::Email => "email",
            IdKind::CioId => "cio_id",
        }
    }
}

/// A person's identifier: its kind and value (a `cio_id` without the `cio_` prefix).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identifier {
    /// What kind of identifier this is.
    pub kind: IdKind,
    /// The value as read from the row.
    pub value: String,
}

impl Identifier {
    /// The identifier as it goes in a v1 path, before percent-encoding.
    pub fn v1_path_value(&self) -> String {
        match self.kind {
            IdKind::CioId => format!("cio_{}", self.value),
            _ => self.value.clone(),
        }
    }
}

/// An object (a company, an account...): its object type id (a string-formatted integer,
/// `"1"` for the first type a workspace defines) and its object id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// The object type id, as the v2 `identifiers.object_type_id` carries it.
    pub type_id: String,
    /// The object's id within its type.
    pub id: String,
}

/// The row as it was read, kept so a failed row can be written back verbatim.
#[derive(Clone, Debug)]
pub enum RawRow {
    /// A CSV record of the header's width, valid UTF-8 (checked once, when read).
    Csv(csv::StringRecord),
    /// A CSV record that could not be read as a row (ragged, or not UTF-8).
    CsvBytes(csv::ByteRecord),
    /// A converted CSV record, re-encoded as one CSV line with the input's delimiter: the
    /// compact form a row keeps while it is in flight (one allocation, no field index).
    CsvLine(Vec<u8>),
    /// A JSONL line without its line ending.
    Line(Vec<u8>),
}

impl RawRow {
    /// The CSV fields as bytes, for the two record forms (not for an encoded line).
    pub fn csv_bytes(&self) -> Option<&csv::ByteRecord> {
        match self {
            RawRow::Csv(r) => Some(r.as_byte_record()),
            RawRow::CsvBytes(r) => Some(r),
            RawRow::CsvLine(_) | RawRow::Line(_) => None,
        }
    }
}

/// Where a row came from: its 1-based record number and the 1-based line it starts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// 1-based record number (the CSV header is not a record).
    pub row: u64,
    /// 1-based line where the record starts (the CSV header is line 1).
    pub line: u64,
}

/// The final class of a row. Every row ends in exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// Acknowledged by the API.
    Sent,
    /// Not sent on purpose (unchanged since the last run, or a dry run).
    Skipped,
    /// Failed conversion or validation; never sent.
    Invalid,
    /// The API refused it (a 4xx other than 401/403/408/429, or a 207 entry).
    Rejected,
    /// Retries ran out on 429/5xx/timeouts/connection errors.
    Exhausted,
    /// The run stopped (fatal error or interruption) before it was sent.
    NotAttempted,
}

impl Class {
    /// The name used in reports and the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Sent => "sent",
            Class::Skipped => "skipped",
            Class::Invalid => "invalid",
            Class::Rejected => "rejected",
            Class::Exhausted => "exhausted",
            Class::NotAttempted => "not_attempted",
        }
    }
}

/// What happened to a row that did not make it.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Where it came from.
    pub pos: Position,
    /// Its identifier, when one could be read.
    pub identifier: Option<String>,
    /// Invalid, rejected, exhausted or not attempted.
    pub class: Class,
    /// The last HTTP status seen, if any.
    pub status: Option<u16>,
    /// How many requests carried this row.
    pub attempts: u32,
    /// What went wrong and, where known, how to fix it.
    pub message: String,
    /// The row as read, for the rejects file.
    pub raw: RawRow,
}
