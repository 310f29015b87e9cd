//! Validated, ready-to-use settings of an import; the engine never sees clap.

use crate::convert::ConvertOptions;
use crate::report::progress::ProgressMode;
use crate::secret::Credentials;
use crate::source::{Format, Input};
use std::path::PathBuf;
use std::time::Duration;

/// Everything an import run needs.
#[derive(Clone, Debug)]
pub struct ImportConfig {
    /// File or stdin.
    pub input: Input,
    /// CSV or JSONL.
    pub format: Format,
    /// CSV delimiter.
    pub delimiter: u8,
    /// How rows become people.
    pub convert: ConvertOptions,
    /// The Track API base URL.
    pub endpoint: reqwest::Url,
    /// Site id and key (None only for a dry run).
    pub credentials: Option<Credentials>,
    /// An extra trusted root certificate (PEM).
    pub ca_cert: Option<PathBuf>,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Requests per second for all workers together: the ceiling of the closed-loop rate
    /// (or the fixed rate with `fixed_rate`); 0 = no ceiling.
    pub rate: u32,
    /// Open-loop pacing at exactly `rate` (the behaviour before issue 11).
    pub fixed_rate: bool,
    /// A request retries 429s until nothing at all was acknowledged for this long.
    pub throttle_budget: Duration,
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// Timeout of one request.
    pub timeout: Duration,
    /// First backoff delay.
    pub backoff_base: Duration,
    /// Largest backoff delay.
    pub backoff_cap: Duration,
    /// Batch body cap in bytes.
    pub batch_bytes: usize,
    /// Batch operation count cap.
    pub batch_size: Option<usize>,
    /// A partial batch is sent after this long without a new row.
    pub flush_after: Duration,
    /// The rejects file.
    pub rejects: PathBuf,
    /// The errors file.
    pub errors: PathBuf,
    /// The summary JSON file.
    pub summary: Option<PathBuf>,
    /// Read and validate only.
    pub dry_run: bool,
    /// The ledger (SQLite) for delta syncs and resume.
    pub state: Option<PathBuf>,
    /// Send every row even when the ledger says it is unchanged (and refresh the ledger).
    pub full: bool,
    /// How progress is shown.
    pub progress: ProgressMode,
}

impl ImportConfig {
    /// Settings with the documented defaults, for embedders and tests.
    pub fn new(input: Input, format: Format, endpoint: reqwest::Url) -> ImportConfig {
        let (rejects, errors) = crate::report::summary::default_paths(
            match &input {
                Input::Path(p) => Some(p.as_path()),
                Input::Stdin => None,
            },
            format.extension(),
        );
        ImportConfig {
            input,
            format,
            delimiter: b',',
            convert: ConvertOptions::new(crate::record::IdKind::Id, "id", crate::track::Api::Batch),
            endpoint,
            credentials: None,
            ca_cert: None,
            concurrency: 32,
            rate: 100,
            fixed_rate: false,
            throttle_budget: crate::pipeline::DEFAULT_THROTTLE_BUDGET,
            max_retries: 8,
            timeout: Duration::from_secs(30),
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            batch_bytes: crate::validate::MAX_BATCH_BYTES,
            batch_size: None,
            flush_after: Duration::from_millis(250),
            rejects,
            errors,
            summary: None,
            dry_run: false,
            state: None,
            full: false,
            progress: ProgressMode::Log,
        }
    }
}
