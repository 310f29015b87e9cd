//! Opening the input (file or stdin, plain or gzip, in any text encoding) and streaming its
//! rows with positions. Stdin and other pipes are read by a pump thread, so a stopped run
//! never waits on a stalled producer. [`open_rows`] is the whole way in: it transcodes to
//! UTF-8 while streaming ([`decode`]) and detects a CSV delimiter not given ([`sniff`]).

mod csv_rows;
pub mod decode;
mod digest;
mod jsonl_rows;
pub mod sniff;

pub use csv_rows::{CsvHeader, CsvRows};
pub use decode::TextEncoding;
pub use digest::InputDigest;
pub use jsonl_rows::JsonlRows;

use crate::record::{Position, RawRow};
use crate::stop::Stop;
use encoding_rs::{Encoding, UTF_8};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

/// The input's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma (or `--delimiter`) separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// The extension of files in this format, for default report names.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

/// Where rows come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Standard input (`-`).
    Stdin,
    /// A file.
    Path(PathBuf),
}

impl Input {
    /// From the command-line word: `-` is stdin.
    pub fn from_arg(arg: &Path) -> Input {
        if arg == Path::new("-") {
            Input::Stdin
        } else {
            Input::Path(arg.to_path_buf())
        }
    }

    /// Whether the input can be read twice, once to count and once to send: a regular file
    /// (a path that does not exist answers true: opening it reports that). Stdin, named
    /// pipes and `<(...)` give their bytes once.
    pub fn rereadable(&self) -> bool {
        match self {
            Input::Stdin => false,
            Input::Path(p) => std::fs::metadata(p).map_or(true, |m| m.is_file()),
        }
    }

    /// A name for messages.
    pub fn display(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".to_string(),
            Input::Path(p) => p.display().to_string(),
        }
    }
}

/// An error that stops reading: the file cannot be opened, is not what its name says, or breaks.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Opening or reading failed.
    #[error("{path}: {message}")]
    Io {
        /// The input.
        path: String,
        /// What happened and what to do.
        message: String,
    },
    /// The header or the format cannot be used.
    #[error("{path}: {message}")]
    Format {
        /// The input.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// Decides the format from `--format` or the file name (`.csv`, `.tsv`, `.jsonl`, `.ndjson`, plus `.gz`).
pub fn detect_format(input: &Input, explicit: Option<Format>) -> Result<Format, String> {
    if let Some(f) = explicit {
        return Ok(f);
    }
    let path = match input {
        Input::Stdin => {
            return Err("reading from stdin needs --format csv or --format jsonl".to_string())
        }
        Input::Path(p) => p,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    if name.ends_with(".csv") || name.ends_with(".tsv") || name.ends_with(".txt") {
        Ok(Format::Csv)
    } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
        Ok(Format::Jsonl)
    } else {
        Err(format!(
            "cannot tell the format of {} from its name: pass --format csv or --format jsonl",
            path.display()
        ))
    }
}

/// The default delimiter for a file: tab for `.tsv`, else comma.
pub fn default_delimiter(input: &Input) -> u8 {
    match input {
        Input::Path(p)
            if p.to_string_lossy()
                .to_lowercase()
                .trim_end_matches(".gz")
                .ends_with(".tsv") =>
        {
            b'\t'
        }
        _ => b',',
    }
}

/// Counts the bytes read from the underlying file (compressed bytes for gzip).
/// Hashes them too ([`InputDigest`]), and notes the end of the input.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
    digest: InputDigest,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        if n == 0 && !buf.is_empty() {
            self.digest.end();
        } else {
            self.digest.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// How often a read waiting on a stalled pipe checks whether the run stopped.
const PIPE_POLL: Duration = Duration::from_millis(50);
/// Bytes per read(2) of the pump thread, and chunks it may hold ahead of the reader.
const PIPE_CHUNK: usize = 64 * 1024;
const PIPE_CHUNKS_AHEAD: usize = 4;

/// The reading end of a pipe pumped by its own thread: waits for the producer's next bytes
/// without blocking in read(2), and gives up with an error once the run stops. The pump
/// thread ends at the producer's end of input (or error), or after its next read once this
/// end is dropped; until then it may stay blocked in read(2), harmlessly.
struct Pipe {
    chunks: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
    done: bool,
    /// Where it learns that the run stopped (none: it waits for the producer).
    stop: Option<Stop>,
}

impl Pipe {
    fn spawn(mut inner: Box<dyn Read + Send>, stop: Option<Stop>) -> io::Result<Pipe> {
        let (tx, chunks) = mpsc::sync_channel::<io::Result<Vec<u8>>>(PIPE_CHUNKS_AHEAD);
        std::thread::Builder::new()
            .name("cio-import-pipe".into())
            .spawn(move || loop {
                let mut buf = vec![0; PIPE_CHUNK];
                match inner.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(Ok(buf)).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            })?;
        Ok(Pipe {
            chunks,
            current: Vec::new(),
            at: 0,
            done: false,
            stop,
        })
    }
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at < self.current.len() {
                let n = buf.len().min(self.current.len() - self.at);
                buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            if self.stop.as_ref().is_some_and(Stop::reading_should_stop) {
                return Err(io::Error::other("the run stopped while waiting for input"));
            }
            match self.chunks.recv_timeout(PIPE_POLL) {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.done = true,
            }
        }
    }
}

/// An opened input: a buffered reader of decompressed bytes, and how far into the file it is.
pub struct Opened {
    /// The decompressed bytes.
    pub reader: Box<dyn BufRead + Send>,
    /// The file's size: known for a regular file only (not for stdin, pipes or FIFOs).
    pub total_bytes: Option<u64>,
    /// Bytes of the file (compressed, for gzip) read so far.
    pub bytes_read: Arc<AtomicU64>,
    /// The SHA-256 of those bytes, fed as they are read.
    pub digest: InputDigest,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Opens a file or stdin; gzip is recognised by its magic bytes (and required by a `.gz` name).
/// Stdin and other files that are not regular (pipes, FIFOs) are read through a pump thread.
pub fn open(input: &Input) -> Result<Opened, SourceError> {
    open_until(input, None)
}

/// [`open`], with reads from a pipe giving up once `stop` says reading should stop: from the
/// very first byte, so a producer that stalls before its header does not hold the run.
pub fn open_until(input: &Input, stop: Option<&Stop>) -> Result<Opened, SourceError> {
    let name = input.display();
    let io_err = |e: io::Error| SourceError::Io {
        path: name.clone(),
        message: format!("cannot read: {e}"),
    };
    let count = Arc::new(AtomicU64::new(0));
    let digest = InputDigest::default();
    let pipe = |r: Box<dyn Read + Send>| -> Result<Box<dyn Read + Send>, SourceError> {
        Ok(Box::new(Pipe::spawn(r, stop.cloned()).map_err(io_err)?))
    };
    let (raw, total, named_gz): (Box<dyn Read + Send>, Option<u64>, bool) = match input {
        Input::Stdin => (pipe(Box::new(io::stdin()))?, None, false),
        Input::Path(p) => {
            let f = File::open(p).map_err(|e| SourceError::Io {
                path: name.clone(),
                message: format!("cannot open: {e}"),
            })?;
            let meta = f.metadata().ok();
            let gz = p.to_string_lossy().to_lowercase().ends_with(".gz");
            match meta {
                Some(m) if !m.is_file() => (pipe(Box::new(f))?, None, gz),
                m => (Box::new(f), m.map(|m| m.len()), gz),
            }
        }
    };
    let mut buffered = BufReader::with_capacity(
        256 * 1024,
        Counting {
            inner: raw,
            count: count.clone(),
            digest: digest.clone(),
        },
    );
    let head = buffered.fill_buf().map_err(io_err)?;
    let is_gzip = head.len() >= 2 && head[..2] == GZIP_MAGIC;
    if named_gz && !is_gzip && !head.is_empty() {
        return Err(SourceError::Format {
            path: name,
            message: "the name ends in .gz but the content is not gzip: rename the file or decompress it properly".into(),
        });
    }
    let reader: Box<dyn BufRead + Send> = if is_gzip {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    };
    Ok(Opened {
        reader,
        total_bytes: total,
        bytes_read: count,
        digest,
    })
}

/// How an input's bytes are read: its format, and the delimiter and the encoding as chosen
/// (`None`: detected from the input's first bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dialect {
    /// CSV or JSONL.
    pub format: Format,
    /// The CSV delimiter; `None`: detected from the first lines (comma, semicolon, tab, pipe).
    pub delimiter: Option<u8>,
    /// The text encoding; `None`: UTF-8, or UTF-16 when the input starts with its byte-order
    /// mark (an input whose first block is not UTF-8 stops with the likely encoding).
    pub encoding: Option<&'static Encoding>,
}

/// An input opened and its header read: its rows, and how they are read.
pub struct Source {
    /// The rows.
    pub rows: Rows,
    /// The file's size: known for a regular file only.
    pub total_bytes: Option<u64>,
    /// Bytes of the file (compressed, for gzip) read so far.
    pub bytes_read: Arc<AtomicU64>,
    /// The encoding the input is read in (what the rejects file is written in).
    pub encoding: TextEncoding,
    /// The CSV delimiter in use, and whether it was detected rather than given.
    pub delimiter: Option<(u8, bool)>,
    /// The hash of the bytes as read (see [`InputDigest`]).
    pub digest: InputDigest,
}

/// Opens `input` (see [`open_until`]), reads it in `dialect`'s encoding as UTF-8, detects the
/// delimiter if needed, and reads the CSV header.
pub fn open_rows(
    input: &Input,
    stop: Option<&Stop>,
    dialect: &Dialect,
) -> Result<Source, SourceError> {
    let name = input.display();
    let Opened {
        reader,
        total_bytes,
        bytes_read,
        digest,
    } = open_until(input, stop)?;
    let (mut reader, encoding) = decoded(reader, dialect.encoding, &name)?;
    let delimiter = match (dialect.format, dialect.delimiter) {
        (Format::Jsonl, _) => None,
        (Format::Csv, Some(d)) => Some((d, false)),
        (Format::Csv, None) => {
            // From a pipe (no size known), the header alone: what follows may not be
            // written yet.
            let records = if total_bytes.is_some() {
                sniff::SNIFF_RECORDS
            } else {
                0
            };
            let found = sniff::sniff(&mut reader, records).map_err(|e| read_error(&name, 1, &e))?;
            let d = found.delimiter.unwrap_or_else(|| default_delimiter(input));
            if d != b',' {
                tracing::info!(
                    "{name}: delimiter '{}' detected from the header (pass --delimiter to choose)",
                    sniff::word(d)
                );
            }
            reader = Box::new(io::Cursor::new(found.head).chain(reader));
            Some((d, found.delimiter.is_some()))
        }
    };
    if dialect.format == Format::Csv {
        reader = header_within_cap(reader, &name)?;
    }
    if !encoding.is_utf8() {
        tracing::info!("{name}: read as {}", encoding.label());
    }
    let opened = Opened {
        reader,
        total_bytes,
        bytes_read: bytes_read.clone(),
        digest: digest.clone(),
    };
    let rows = Rows::new(
        opened,
        dialect.format,
        delimiter.map_or(b',', |(d, _)| d),
        &name,
    )?;
    Ok(Source {
        rows,
        total_bytes,
        bytes_read,
        encoding,
        delimiter,
        digest,
    })
}

/// The most bytes a CSV header record may hold before its first line break: a file read in the
/// wrong encoding (UTF-16 as a single-byte one, with no `\n` byte it knows) or that is not CSV
/// would otherwise become one header name of megabytes, in memory and in every message.
pub const HEADER_MAX_BYTES: usize = 1024 * 1024;

/// Checks that the header's first line ends within [`HEADER_MAX_BYTES`]; the bytes read are
/// handed back to be read again.
fn header_within_cap(
    mut reader: Box<dyn BufRead + Send>,
    name: &str,
) -> Result<Box<dyn BufRead + Send>, SourceError> {
    let mut head = Vec::new();
    Read::take(&mut reader, HEADER_MAX_BYTES as u64)
        .read_until(b'\n', &mut head)
        .map_err(|e| read_error(name, 1, &e))?;
    if head.len() >= HEADER_MAX_BYTES && !head.contains(&b'\n') && !head.contains(&b'\r') {
        return Err(SourceError::Format {
            path: name.to_string(),
            message: format!(
                "the header (line 1) runs past {} MiB without a line break: the file is read in \
the wrong encoding (check --encoding, or drop it) or is not a CSV file",
                HEADER_MAX_BYTES / (1024 * 1024)
            ),
        });
    }
    Ok(Box::new(io::Cursor::new(head).chain(reader)))
}

/// `reader` as UTF-8: as it is when it is UTF-8, else through a streaming decoder. A
/// byte-order mark decides over `given`; without either, the first block must be UTF-8.
fn decoded(
    mut reader: Box<dyn BufRead + Send>,
    given: Option<&'static Encoding>,
    name: &str,
) -> Result<(Box<dyn BufRead + Send>, TextEncoding), SourceError> {
    let head = reader.fill_buf().map_err(|e| read_error(name, 1, &e))?;
    let enc = match (decode::bom_of(head), given) {
        // A UTF-8 mark is dropped by the readers themselves (and written again at the top of
        // the rejects, so they open as the input did).
        (Some((e, _)), g) if e == UTF_8 => {
            if g.is_some_and(|g| g != UTF_8) {
                tracing::warn!(
                    "{name}: starts with a UTF-8 byte-order mark: read as UTF-8, not as --encoding"
                );
            }
            return Ok((
                reader,
                TextEncoding {
                    encoding: UTF_8,
                    bom: true,
                },
            ));
        }
        (Some((e, n)), g) => {
            if g.is_some_and(|g| g != e) {
                tracing::warn!(
                    "{name}: starts with a {} byte-order mark: read as {}, not as --encoding",
                    e.name(),
                    e.name()
                );
            }
            reader.consume(n);
            TextEncoding {
                encoding: e,
                bom: true,
            }
        }
        (None, None) => {
            decode::check_utf8(head, false).map_err(|e| SourceError::Format {
                path: name.to_string(),
                message: e.message(),
            })?;
            return Ok((reader, TextEncoding::UTF8));
        }
        (None, Some(e)) if e == UTF_8 => return Ok((reader, TextEncoding::UTF8)),
        (None, Some(e)) => {
            decode::check_not_utf8(head, false, e).map_err(|message| SourceError::Format {
                path: name.to_string(),
                message,
            })?;
            TextEncoding {
                encoding: e,
                bom: false,
            }
        }
    };
    let decoder = decode::DecodeReader::new(reader, enc.encoding);
    Ok((Box::new(BufReader::with_capacity(64 * 1024, decoder)), enc))
}

/// One item read from the input.
#[derive(Debug)]
pub enum Item {
    /// A row to convert: a CSV record of the header's width in valid UTF-8, or a non-blank
    /// JSONL line (whether it holds a JSON object is the converter's to say).
    Row {
        /// Where it is.
        pos: Position,
        /// The row as read.
        raw: RawRow,
    },
    /// A row that cannot be read as one (ragged, not UTF-8).
    Bad {
        /// Where it is.
        pos: Position,
        /// The row as read.
        raw: RawRow,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// A stream of rows from either format.
pub enum Rows {
    /// CSV rows.
    Csv(Box<CsvRows>),
    /// JSONL rows.
    Jsonl(JsonlRows),
}

impl Rows {
    /// Starts reading `opened` as `format`. For CSV this reads and checks the header.
    pub fn new(
        opened: Opened,
        format: Format,
        delimiter: u8,
        input_name: &str,
    ) -> Result<Rows, SourceError> {
        Ok(match format {
            Format::Csv => Rows::Csv(Box::new(CsvRows::new(
                opened.reader,
                delimiter,
                input_name,
            )?)),
            Format::Jsonl => Rows::Jsonl(JsonlRows::new(opened.reader, input_name)),
        })
    }

    /// After a successful conversion: the compact form of a row to keep while it is in flight.
    pub fn compact(&mut self, raw: RawRow) -> RawRow {
        match (self, raw) {
            (Rows::Csv(c), RawRow::Csv(rec)) => c.compact(rec),
            (_, other) => other,
        }
    }

    /// The CSV header, for the rejects file.
    pub fn csv_header(&self) -> Option<&CsvHeader> {
        match self {
            Rows::Csv(c) => Some(c.header()),
            Rows::Jsonl(_) => None,
        }
    }
}

impl Iterator for Rows {
    type Item = Result<Item, SourceError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Rows::Csv(c) => c.next(),
            Rows::Jsonl(j) => j.next(),
        }
    }
}

/// Explains a read error in the words a user needs.
pub(crate) fn read_error(input_name: &str, line: u64, e: &io::Error) -> SourceError {
    let message = match e.kind() {
        io::ErrorKind::UnexpectedEof => format!(
            "the input ends abruptly after line {line} (a truncated gzip file?): rows up to there were read; re-export the file"
        ),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => format!(
            "cannot decode the input after line {line}: {e} (is it really gzip?)"
        ),
        _ => format!("read error after line {line}: {e}"),
    };
    SourceError::Io {
        path: input_name.to_string(),
        message,
    }
}
