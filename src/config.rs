//! Validated, ready-to-use settings of an import, and the checked builder that makes them.
//!
//! The command line (`crate::cli`) and the job files of `sync` describe an import with the
//! same options; both hand them to [`ImportConfigBuilder`] with domain types ([`Api`],
//! [`Region`], [`IdKind`], [`Format`]), and [`ImportConfigBuilder::build`] checks every one of
//! them. The engine gets an [`ImportConfig`] and never sees clap.

use crate::convert::{ConvertOptions, EventOptions, ObjectKind, ObjectOptions};
use crate::mapping::Mapping;
use crate::operation::Action;
use crate::record::IdKind;
use crate::report::progress::ProgressMode;
use crate::secret::Credentials;
use crate::source::{self, Format, Input};
use crate::track::{self, Api, Region};
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    /// Detect the CSV delimiter from the input's first lines; `delimiter` is the fallback
    /// (none given: no `--delimiter`, no mapping `delimiter`, not a `.tsv`).
    pub detect_delimiter: bool,
    /// The input's text encoding (`--encoding`); `None`: UTF-8, or UTF-16 with its byte-order mark.
    pub encoding: Option<&'static encoding_rs::Encoding>,
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
    /// Guards and mirror mode for unattended syncs ([`crate::guard`], [`crate::mirror`]).
    pub nightly: crate::guard::Nightly,
}

/// A setting outside what the tool accepts, found before anything runs. The messages name the
/// command-line option (`--timeout`), the job file key is the same name (with `_` or `-`), and
/// the field of [`ImportConfig`] or [`crate::sandbox::SandboxConfig`] is named after it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A guard or mirror setting that contradicts the others ([`crate::guard::check_settings`]).
    #[error("{0}")]
    Nightly(String),
    /// A number outside the range the option accepts.
    #[error("{option} {value}: out of range: give {range} (e.g. {option} {example})")]
    OutOfRange {
        /// The option, as on the command line (`--timeout`).
        option: &'static str,
        /// The value given, as given where possible.
        value: String,
        /// The accepted range, in words (`a number of seconds between 0.001 and 3600`).
        range: String,
        /// A sensible value to give instead (the default, usually).
        example: &'static str,
    },
    /// A report path that is the input or the other report: writing it would destroy data.
    #[error("{option} {path}: {problem}: give another path")]
    ReportPath {
        /// `--rejects` or `--errors`.
        option: &'static str,
        /// The path given.
        path: String,
        /// What it collides with.
        problem: &'static str,
    },
    /// A delimiter that is neither one ASCII character nor `tab`.
    #[error("--delimiter '{0}': give one ASCII character (e.g. ';') or 'tab'")]
    Delimiter(String),
    /// An `--encoding` that names no encoding (the message lists some that do).
    #[error("{0}")]
    Encoding(String),
    /// A mapping file that cannot be read.
    #[error("--mapping {path}: cannot read: {reason}")]
    MappingUnreadable {
        /// The file.
        path: String,
        /// Why (the system's message).
        reason: String,
    },
    /// A preset name that does not exist.
    #[error("--preset {name}: no such preset (there are: {known})")]
    UnknownPreset {
        /// The name given.
        name: String,
        /// The built-in presets, comma-separated.
        known: String,
    },
    /// A mapping (file or preset) with a mistake; the message names the file, line and fix.
    #[error("{0}")]
    Mapping(String),
    /// The input's format cannot be told (stdin without `--format`, an unknown extension).
    #[error("{0}")]
    Format(String),
    /// An endpoint that is not a URL, or plain HTTP to a host that is not loopback.
    #[error("{0}")]
    Endpoint(String),
    /// `--drop-unmapped` without a mapping to keep the columns of.
    #[error("--drop-unmapped needs --mapping or --preset")]
    DropUnmappedWithoutMapping,
    /// `--full` without a ledger to refresh.
    #[error("--full needs --state: it sends every row anyway and refreshes the ledger")]
    FullWithoutState,
    /// `--update-only` or `--empty clear` with an action that sends no attributes.
    #[error("--action {action} sends no attributes: drop --update-only and --empty clear")]
    AttributesWithoutIdentify {
        /// The action given (`delete`, `suppress`, `unsuppress`).
        action: &'static str,
    },
    /// `--kind events` with `--action delete|suppress|unsuppress`.
    #[error("--kind events sends events: drop --action {action}")]
    EventsWithAction {
        /// The action given.
        action: &'static str,
    },
    /// `--kind devices` with `--action suppress|unsuppress`, or `--kind merges` with any
    /// `--action`.
    #[error("--kind {kind} does not take --action {action}: devices take identify (add) or delete; merges take none")]
    KindWithAction {
        /// The kind given.
        kind: &'static str,
        /// The action given.
        action: &'static str,
    },
    /// `--kind objects|relationships` without `--object-type-id`, or with one that is not an
    /// object type id.
    #[error("{0}")]
    ObjectTypeId(String),
    /// `--kind objects|relationships` with an action other than identify or delete, or with
    /// an option about people's attributes.
    #[error("--kind {kind} {problem}")]
    ObjectsWith {
        /// `objects` or `relationships`.
        kind: &'static str,
        /// What does not go with it, and the fix.
        problem: String,
    },
    /// A run that sends, without credentials.
    #[error(
        "no credentials: set {} and {} (Settings > API Credentials in Customer.io), \
or try --sandbox or --dry-run",
        crate::secret::SITE_ID_ENV,
        crate::secret::API_KEY_ENV
    )]
    NoCredentials,
}

/// A path as the collision checks see it, looked at once: the existing regular file it
/// names (device and inode), and where it resolves to.
struct Seen {
    file: Option<(u64, u64)>,
    resolved: Option<PathBuf>,
}

impl Seen {
    fn of(p: &Path) -> Seen {
        #[cfg(unix)]
        let file = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(p)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| (m.dev(), m.ino()))
        };
        #[cfg(not(unix))]
        let file = None;
        Seen {
            file,
            resolved: resolved(p),
        }
    }

    /// Both name the same existing file, or resolve to the same path.
    fn collides(&self, other: &Seen) -> bool {
        (self.file.is_some() && self.file == other.file) || self.resolves_like(other)
    }

    /// Both resolve to the same path.
    fn resolves_like(&self, other: &Seen) -> bool {
        self.resolved.is_some() && self.resolved == other.resolved
    }
}

/// An inclusive range of whole numbers an option accepts, with its unit and an example.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// The option, as on the command line.
    pub option: &'static str,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
    /// What is counted (`requests`, `milliseconds`).
    pub unit: &'static str,
    /// A value to suggest.
    pub example: &'static str,
}

impl Bounds {
    /// `Ok` when `value` is within the range; the error names the option, the range and a fix.
    pub fn check(&self, value: u128) -> Result<(), ConfigError> {
        if (u128::from(self.min)..=u128::from(self.max)).contains(&value) {
            Ok(())
        } else {
            Err(ConfigError::OutOfRange {
                option: self.option,
                value: value.to_string(),
                range: format!(
                    "a number of {} between {} and {}",
                    self.unit, self.min, self.max
                ),
                example: self.example,
            })
        }
    }

    /// A duration in milliseconds within the range.
    pub fn check_ms(&self, d: Duration) -> Result<(), ConfigError> {
        // Sub-millisecond durations round up so that 0.5 ms is not mistaken for 0.
        let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
        self.check(ms)
    }
}

/// Requests in flight (`--concurrency`).
pub const CONCURRENCY: Bounds = Bounds {
    option: "--concurrency",
    min: 1,
    max: 1_000,
    unit: "requests",
    example: "32",
};
/// Requests per second (`--rate`; 0 = no limit).
pub const RATE: Bounds = Bounds {
    option: "--rate",
    min: 0,
    max: 100_000,
    unit: "requests per second (0 = no limit)",
    example: "100",
};
/// Retries after the first attempt (`--max-retries`).
pub const MAX_RETRIES: Bounds = Bounds {
    option: "--max-retries",
    min: 0,
    max: 100,
    unit: "retries",
    example: "8",
};
/// Batch body cap (`--batch-bytes`).
pub const BATCH_BYTES: Bounds = Bounds {
    option: "--batch-bytes",
    min: 1_000,
    max: crate::validate::MAX_BATCH_BYTES as u64,
    unit: "bytes",
    example: "500000",
};
/// Operations per batch (`--batch-size`).
pub const BATCH_SIZE: Bounds = Bounds {
    option: "--batch-size",
    min: 1,
    max: 100_000,
    unit: "operations",
    example: "1000",
};
/// The first backoff delay (`--backoff-base-ms`).
pub const BACKOFF_BASE_MS: Bounds = Bounds {
    option: "--backoff-base-ms",
    min: 1,
    max: 60_000,
    unit: "milliseconds",
    example: "500",
};
/// The largest backoff delay (`--backoff-cap-ms`; at least the base).
pub const BACKOFF_CAP_MS: Bounds = Bounds {
    option: "--backoff-cap-ms",
    min: 1,
    max: 3_600_000,
    unit: "milliseconds",
    example: "30000",
};
/// How long a partial batch waits for more rows (`--flush-ms`).
pub const FLUSH_MS: Bounds = Bounds {
    option: "--flush-ms",
    min: 1,
    max: 60_000,
    unit: "milliseconds",
    example: "250",
};
/// The request timeout's range in seconds (`--timeout`): (min, max).
pub const TIMEOUT_S: (f64, f64) = (0.001, 3_600.0);
/// `--throttle-budget` in seconds.
pub const THROTTLE_BUDGET_S: (f64, f64) = (1.0, 86_400.0);

/// Seconds given by a user (`--timeout 30`, `--outage 5 10`) as a `Duration`, never panicking:
/// NaN, infinities, negatives and values outside `min..=max` are an [`ConfigError::OutOfRange`].
pub fn seconds(
    option: &'static str,
    value: f64,
    (min, max): (f64, f64),
    example: &'static str,
) -> Result<Duration, ConfigError> {
    let out_of_range = || ConfigError::OutOfRange {
        option,
        value: format!("{value:?}").trim_end_matches(".0").to_string(),
        range: format!("a number of seconds between {min} and {max}"),
        example,
    };
    if !(min..=max).contains(&value) {
        return Err(out_of_range());
    }
    Duration::try_from_secs_f64(value).map_err(|_| out_of_range())
}

/// The path a report would be written to, resolved as far as it exists (for comparisons).
fn resolved(p: &Path) -> Option<PathBuf> {
    match std::fs::canonicalize(p) {
        // Devices (/dev/null) and pipes may be shared: only regular files collide.
        Ok(c) => std::fs::metadata(&c)
            .ok()
            .filter(|m| m.is_file())
            .map(|_| c),
        Err(_) => {
            let parent = match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            Some(std::fs::canonicalize(parent).ok()?.join(p.file_name()?))
        }
    }
}

impl ImportConfig {
    /// Checks every number against the range the tool accepts and that no report would
    /// overwrite the input or the other report. [`crate::engine::run`] calls it before doing
    /// anything, so a configuration built in code gets the same checks as the command line.
    pub fn validate(&self) -> Result<(), ConfigError> {
        CONCURRENCY.check(self.concurrency as u128)?;
        RATE.check(u128::from(self.rate))?;
        MAX_RETRIES.check(self.max_retries as u128)?;
        seconds("--timeout", self.timeout.as_secs_f64(), TIMEOUT_S, "30")?;
        let budget = self.throttle_budget.as_secs_f64();
        seconds("--throttle-budget", budget, THROTTLE_BUDGET_S, "300")?;
        BACKOFF_BASE_MS.check_ms(self.backoff_base)?;
        BACKOFF_CAP_MS.check_ms(self.backoff_cap)?;
        if self.backoff_cap < self.backoff_base {
            return Err(ConfigError::OutOfRange {
                option: "--backoff-cap-ms",
                value: self.backoff_cap.as_millis().to_string(),
                range: format!(
                    "at least --backoff-base-ms ({} ms)",
                    self.backoff_base.as_millis()
                ),
                example: "30000",
            });
        }
        BATCH_BYTES.check(self.batch_bytes as u128)?;
        if let Some(n) = self.batch_size {
            BATCH_SIZE.check(n as u128)?;
        }
        FLUSH_MS.check_ms(self.flush_after)?;
        // What this run writes must never be what it reads or keeps: the input (under any
        // name, or behind standard input: `import - < stdin.rejects.csv`), the state file
        // and its companions, or another of its outputs.
        let input_path = match &self.input {
            Input::Path(p) => p.clone(),
            Input::Stdin => PathBuf::from("/dev/stdin"),
        };
        let mut kept: Vec<(PathBuf, &'static str)> = vec![(
            input_path,
            "that is the file being read (the input, or the file behind standard input)",
        )];
        if let Some(state) = &self.state {
            kept.push((state.clone(), "that is the --state file"));
            for side in ["-wal", "-shm", ".lock"] {
                let mut p = state.clone().into_os_string();
                p.push(side);
                kept.push((
                    PathBuf::from(p),
                    "that is one of the --state file's own files",
                ));
            }
        }
        let kept: Vec<(Seen, &'static str)> =
            kept.iter().map(|(p, why)| (Seen::of(p), *why)).collect();
        let mut outputs: Vec<(&'static str, &PathBuf)> =
            vec![("--rejects", &self.rejects), ("--errors", &self.errors)];
        if let Some(summary) = &self.summary {
            outputs.push(("--summary", summary));
        }
        let mut checked: Vec<(&'static str, Seen)> = Vec::with_capacity(outputs.len());
        for (option, path) in outputs {
            let seen = Seen::of(path);
            let problem = kept
                .iter()
                .find(|(other, _)| other.collides(&seen))
                .map(|(_, problem)| *problem)
                .or_else(|| {
                    checked
                        .iter()
                        .find(|(_, other)| seen.resolves_like(other))
                        .map(|(other_option, _)| match *other_option {
                            "--rejects" => "that is also the rejects file",
                            _ => "that is also the errors file",
                        })
                });
            if let Some(problem) = problem {
                return Err(ConfigError::ReportPath {
                    option,
                    path: path.display().to_string(),
                    problem,
                });
            }
            checked.push((option, seen));
        }
        Ok(())
    }

    /// How the input's bytes are read: the format, the delimiter unless it is to be detected,
    /// and the encoding.
    pub fn dialect(&self) -> source::Dialect {
        source::Dialect {
            format: self.format,
            delimiter: (!self.detect_delimiter).then_some(self.delimiter),
            encoding: self.encoding,
        }
    }

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
            detect_delimiter: false,
            encoding: None,
            convert: ConvertOptions::new(crate::record::IdKind::Id, "id", crate::track::Api::Batch),
            endpoint,
            credentials: None,
            ca_cert: None,
            concurrency: DEFAULT_CONCURRENCY,
            rate: DEFAULT_RATE,
            fixed_rate: false,
            throttle_budget: crate::engine::DEFAULT_THROTTLE_BUDGET,
            max_retries: DEFAULT_MAX_RETRIES,
            timeout: Duration::from_secs_f64(DEFAULT_TIMEOUT_S),
            backoff_base: Duration::from_millis(DEFAULT_BACKOFF_BASE_MS),
            backoff_cap: Duration::from_millis(DEFAULT_BACKOFF_CAP_MS),
            batch_bytes: DEFAULT_BATCH_BYTES,
            batch_size: None,
            flush_after: Duration::from_millis(DEFAULT_FLUSH_MS),
            rejects,
            errors,
            summary: None,
            dry_run: false,
            state: None,
            full: false,
            progress: ProgressMode::Log,
            nightly: crate::guard::Nightly::default(),
        }
    }
}

/// Requests in flight by default (`--concurrency`).
pub const DEFAULT_CONCURRENCY: usize = 32;
/// The rate ceiling by default, in requests per second (`--rate`).
pub const DEFAULT_RATE: u32 = 100;
/// Retries after the first attempt by default (`--max-retries`).
pub const DEFAULT_MAX_RETRIES: usize = 8;
/// The request timeout by default, in seconds (`--timeout`).
pub const DEFAULT_TIMEOUT_S: f64 = 30.0;
/// How long 429s are retried while nothing is acknowledged, by default (`--throttle-budget`).
pub const DEFAULT_THROTTLE_BUDGET_S: f64 = 300.0;
/// The first backoff delay by default (`--backoff-base-ms`).
pub const DEFAULT_BACKOFF_BASE_MS: u64 = 500;
/// The largest backoff delay by default (`--backoff-cap-ms`).
pub const DEFAULT_BACKOFF_CAP_MS: u64 = 30_000;
/// The batch body cap by default (`--batch-bytes`): the API's own.
pub const DEFAULT_BATCH_BYTES: usize = crate::validate::MAX_BATCH_BYTES;
/// How long a partial batch waits for more rows by default (`--flush-ms`).
pub const DEFAULT_FLUSH_MS: u64 = 250;

/// Where a mapping comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MappingSource {
    /// A mapping file (TOML), `--mapping FILE`.
    File(PathBuf),
    /// A built-in mapping, `--preset NAME`.
    Preset(String),
}

/// How to read an input and find the people in it, as chosen (shared by `import` and
/// `inspect`). Anything left `None` comes from the mapping, then from the file name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// CSV or JSONL.
    pub format: Option<Format>,
    /// The CSV delimiter as given: one ASCII character, or `tab`.
    pub delimiter: Option<String>,
    /// Which identifier addresses people.
    pub identify_by: Option<IdKind>,
    /// The identifier's column after mapping.
    pub id_column: Option<String>,
    /// The mapping, if any.
    pub mapping: Option<MappingSource>,
    /// The text encoding as given (`--encoding`): a WHATWG label.
    pub encoding: Option<String>,
}

/// What [`ReadOptions`] resolve to for one input.
#[derive(Clone, Debug)]
pub struct Reading {
    /// CSV or JSONL.
    pub format: Format,
    /// The CSV delimiter.
    pub delimiter: u8,
    /// No delimiter was chosen: detect it from the first lines (`delimiter` is the fallback).
    pub detect_delimiter: bool,
    /// The text encoding chosen, if any.
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// The identifier kind.
    pub id_kind: IdKind,
    /// The identifier's column after mapping.
    pub id_column: String,
    /// The mapping, if any.
    pub mapping: Option<Mapping>,
    /// The mapping's text (the file's, or the preset's), if any.
    pub mapping_text: Option<String>,
}

impl ReadOptions {
    /// The options, then the mapping's, then the file name's: checked and resolved.
    pub fn resolve(&self, input: &Input) -> Result<Reading, ConfigError> {
        let (mapping_text, mapping) = match load_mapping(self.mapping.as_ref())? {
            Some((text, m)) => (Some(text), Some(m)),
            None => (None, None),
        };
        let format = source::detect_format(
            input,
            self.format.or(mapping.as_ref().and_then(|m| m.format)),
        )
        .map_err(ConfigError::Format)?;
        let delimiter = match (&self.delimiter, mapping.as_ref().and_then(|m| m.delimiter)) {
            (Some(d), _) => parse_delimiter(d)?,
            (None, Some(d)) => d,
            (None, None) => source::default_delimiter(input),
        };
        // A `.tsv` stays tab; any other CSV without a chosen delimiter has it detected.
        let detect_delimiter = self.delimiter.is_none()
            && mapping.as_ref().is_none_or(|m| m.delimiter.is_none())
            && delimiter == b',';
        let encoding = match &self.encoding {
            Some(label) => {
                Some(source::decode::encoding_for_label(label).map_err(ConfigError::Encoding)?)
            }
            None => None,
        };
        let (id_kind, id_column) = self.id_choice(mapping.as_ref());
        Ok(Reading {
            format,
            delimiter,
            detect_delimiter,
            encoding,
            id_kind,
            id_column,
            mapping,
            mapping_text,
        })
    }

    /// The identifier kind and column: the options', else the mapping's, else `id`.
    fn id_choice(&self, mapping: Option<&Mapping>) -> (IdKind, String) {
        let kind = self
            .identify_by
            .or_else(|| mapping.and_then(|m| m.identify_by))
            .unwrap_or(IdKind::Id);
        let column = match (&self.id_column, mapping) {
            (Some(c), _) => c.clone(),
            // The mapping's column stands for its identifier kind; `identify_by` overrides both.
            (None, Some(m)) if self.identify_by.is_none() => m
                .id_column
                .clone()
                .unwrap_or_else(|| kind.as_str().to_string()),
            _ => kind.as_str().to_string(),
        };
        (kind, column)
    }
}

/// A delimiter as a user gives it: one ASCII character, or `tab` (also `\t`).
pub fn parse_delimiter(s: &str) -> Result<u8, ConfigError> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        _ => Err(ConfigError::Delimiter(s.to_string())),
    }
}

/// The mapping of a file or a preset, if any: (its text, parsed).
pub fn load_mapping(
    source: Option<&MappingSource>,
) -> Result<Option<(String, Mapping)>, ConfigError> {
    let (text, name) = match source {
        None => return Ok(None),
        Some(MappingSource::File(p)) => (
            std::fs::read_to_string(p).map_err(|e| ConfigError::MappingUnreadable {
                path: p.display().to_string(),
                reason: e.to_string(),
            })?,
            p.display().to_string(),
        ),
        Some(MappingSource::Preset(n)) => {
            let p = crate::mapping::preset(n).ok_or_else(|| ConfigError::UnknownPreset {
                name: n.clone(),
                known: crate::mapping::PRESETS
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
            (p.text.to_string(), format!("preset {}", p.name))
        }
    };
    let m = Mapping::parse(&text, &name).map_err(ConfigError::Mapping)?;
    Ok(Some((text, m)))
}

/// `--kind objects|relationships` as given on the command line (or in a job file), before a
/// preset fills in what it implies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectChoice {
    /// Any `--kind` given at all: a preset's kind applies only when none was.
    pub kind_given: bool,
    /// `--kind objects` or `--kind relationships`.
    pub kind: Option<ObjectKind>,
    /// `--object-type-id`.
    pub type_id: Option<String>,
    /// `--object-id-column` (default: the preset's, else `object_id`).
    pub id_column: Option<String>,
}

impl ObjectChoice {
    /// The object options of the run, if it reads objects or relationships: the options',
    /// else the mapping's kind and object id column (`kind` and `object_id_column` in its
    /// `[options]`), checked.
    fn resolve(
        &self,
        mapping: Option<&Mapping>,
        events: bool,
    ) -> Result<Option<ObjectOptions>, ConfigError> {
        let kind = match (self.kind, self.kind_given || events) {
            (Some(k), _) => Some(k),
            (None, false) => mapping.and_then(|m| m.object_kind),
            (None, true) => None,
        };
        let Some(kind) = kind else {
            if self.type_id.is_some() {
                return Err(ConfigError::ObjectTypeId(
                    "--object-type-id goes with --kind objects or --kind relationships".into(),
                ));
            }
            return Ok(None);
        };
        let name = ObjectOptions::kind_str(kind);
        let type_id = self.type_id.clone().ok_or_else(|| {
            ConfigError::ObjectTypeId(format!(
                "--kind {name} needs --object-type-id N: the id of the object type in your workspace (Data & Integrations > Objects; the first type created is 1)"
            ))
        })?;
        crate::convert::object::check_type_id(&type_id).map_err(ConfigError::ObjectTypeId)?;
        let id_column = self
            .id_column
            .clone()
            .or_else(|| mapping.and_then(|m| m.object_id_column.clone()))
            .unwrap_or_else(|| crate::convert::object::OBJECT_ID_COLUMN.to_string());
        Ok(Some(ObjectOptions {
            kind,
            type_id,
            id_column,
        }))
    }
}

/// Where the requests of an import go.
#[derive(Clone, Debug)]
enum Endpoint {
    /// A Customer.io region's Track API.
    Region(Region),
    /// A base URL as given (checked when built).
    Given(String),
    /// A URL chosen by the program itself (a local sandbox), used as it is.
    Resolved(reqwest::Url),
}

/// Builds an [`ImportConfig`] from what a user chose, checking everything when it builds:
/// the reading options and the mapping, the endpoint, the credentials, every number, and the
/// report paths. Unset options keep the documented defaults (those of `--help`).
///
/// ```
/// use cio_import::config::{ConfigError, ImportConfig};
/// use cio_import::source::Input;
///
/// let built = ImportConfig::builder(Input::Path("customers.csv".into()))
///     .dry_run(true)
///     .rate(1_000_000)
///     .build();
/// assert!(matches!(built, Err(ConfigError::OutOfRange { option: "--rate", .. })));
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ImportConfigBuilder {
    input: Input,
    read: ReadOptions,
    drop_unmapped: bool,
    update_only: bool,
    clear_empty: bool,
    action: Action,
    events: Option<EventOptions>,
    devices: bool,
    merges: bool,
    objects: ObjectChoice,
    api: Api,
    endpoint: Endpoint,
    credentials: Option<Credentials>,
    ca_cert: Option<PathBuf>,
    concurrency: usize,
    rate: u32,
    fixed_rate: bool,
    throttle_budget_s: f64,
    max_retries: usize,
    timeout_s: f64,
    backoff_base: Duration,
    backoff_cap: Duration,
    batch_bytes: usize,
    batch_size: Option<usize>,
    flush_after: Duration,
    rejects: Option<PathBuf>,
    errors: Option<PathBuf>,
    summary: Option<PathBuf>,
    dry_run: bool,
    state: Option<PathBuf>,
    full: bool,
    progress: ProgressMode,
    nightly: crate::guard::Nightly,
}

impl ImportConfig {
    /// A checked builder for an import of `input`, starting from the documented defaults.
    pub fn builder(input: Input) -> ImportConfigBuilder {
        ImportConfigBuilder {
            input,
            read: ReadOptions::default(),
            drop_unmapped: false,
            update_only: false,
            clear_empty: false,
            action: Action::Identify,
            events: None,
            devices: false,
            merges: false,
            objects: ObjectChoice::default(),
            api: Api::Batch,
            endpoint: Endpoint::Region(Region::Us),
            credentials: None,
            ca_cert: None,
            concurrency: DEFAULT_CONCURRENCY,
            rate: DEFAULT_RATE,
            fixed_rate: false,
            throttle_budget_s: DEFAULT_THROTTLE_BUDGET_S,
            max_retries: DEFAULT_MAX_RETRIES,
            timeout_s: DEFAULT_TIMEOUT_S,
            backoff_base: Duration::from_millis(DEFAULT_BACKOFF_BASE_MS),
            backoff_cap: Duration::from_millis(DEFAULT_BACKOFF_CAP_MS),
            batch_bytes: DEFAULT_BATCH_BYTES,
            batch_size: None,
            flush_after: Duration::from_millis(DEFAULT_FLUSH_MS),
            rejects: None,
            errors: None,
            summary: None,
            dry_run: false,
            state: None,
            full: false,
            progress: ProgressMode::Log,
            nightly: crate::guard::Nightly::default(),
        }
    }
}

impl ImportConfigBuilder {
    /// How to read the input and find the people in it.
    pub fn read(mut self, read: ReadOptions) -> Self {
        self.read = read;
        self
    }

    /// Keep only the columns the mapping names (needs a mapping).
    pub fn drop_unmapped(mut self, on: bool) -> Self {
        self.drop_unmapped = on;
        self
    }

    /// Update existing people only (`_update: true`); never create anyone.
    pub fn update_only(mut self, on: bool) -> Self {
        self.update_only = on;
        self
    }

    /// Send empty cells as `""` to clear the attribute, instead of leaving them out.
    pub fn clear_empty(mut self, on: bool) -> Self {
        self.clear_empty = on;
        self
    }

    /// What each row does to its person (default: identify). Delete, suppress and unsuppress
    /// read only the identifier; they take neither `--update-only` nor `--empty clear`.
    pub fn action(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    /// `--kind events`: each row is an event on a person, its name, time and id in these
    /// columns (the workspace of derived ids is filled in from the credentials and the
    /// endpoint). `None` (the default): each row is a person.
    pub fn events(mut self, events: Option<EventOptions>) -> Self {
        self.events = events;
        self
    }

    /// `--kind devices`: each row is a push device of a person (`add_device`; with
    /// `--action delete`, `delete_device`).
    pub fn devices(mut self, on: bool) -> Self {
        self.devices = on;
        self
    }

    /// `--kind merges`: each row merges a secondary person into a primary one. Merges travel
    /// one per request unless `--batch-size` says otherwise (Customer.io does not document
    /// that a batch is applied in order, and a chain A<-B, B<-C must be).
    pub fn merges(mut self, on: bool) -> Self {
        self.merges = on;
        self
    }

    /// `--kind objects|relationships`, `--object-type-id`, `--object-id-column` as given (a
    /// preset may imply the kind and the column: see [`ObjectChoice`]).
    pub fn objects(mut self, objects: ObjectChoice) -> Self {
        self.objects = objects;
        self
    }

    /// The API that carries the people (default: batch).
    pub fn api(mut self, api: Api) -> Self {
        self.api = api;
        self
    }

    /// The workspace's region (default: US); replaces an endpoint set before.
    pub fn region(mut self, region: Region) -> Self {
        self.endpoint = Endpoint::Region(region);
        self
    }

    /// A base URL instead of the region's (https, or http for loopback hosts only).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Endpoint::Given(url.into());
        self
    }

    /// A base URL the program chose itself (a local sandbox's), taken without the checks.
    pub fn resolved_endpoint(mut self, url: reqwest::Url) -> Self {
        self.endpoint = Endpoint::Resolved(url);
        self
    }

    /// Site id and API key (required unless it is a dry run).
    pub fn credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// An extra trusted root certificate (PEM).
    pub fn ca_cert(mut self, path: Option<PathBuf>) -> Self {
        self.ca_cert = path;
        self
    }

    /// Requests in flight at most.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// The ceiling of the closed-loop rate, in requests per second (0 = no ceiling).
    pub fn rate(mut self, per_second: u32) -> Self {
        self.rate = per_second;
        self
    }

    /// Pace at exactly the rate (open loop).
    pub fn fixed_rate(mut self, on: bool) -> Self {
        self.fixed_rate = on;
        self
    }

    /// Seconds a request retries 429s while nothing at all is acknowledged.
    pub fn throttle_budget_secs(mut self, seconds: f64) -> Self {
        self.throttle_budget_s = seconds;
        self
    }

    /// Retries after the first attempt.
    pub fn max_retries(mut self, n: usize) -> Self {
        self.max_retries = n;
        self
    }

    /// Timeout of one request, in seconds.
    pub fn timeout_secs(mut self, seconds: f64) -> Self {
        self.timeout_s = seconds;
        self
    }

    /// The first backoff delay.
    pub fn backoff_base(mut self, d: Duration) -> Self {
        self.backoff_base = d;
        self
    }

    /// The largest backoff delay.
    pub fn backoff_cap(mut self, d: Duration) -> Self {
        self.backoff_cap = d;
        self
    }

    /// The batch body cap in bytes.
    pub fn batch_bytes(mut self, n: usize) -> Self {
        self.batch_bytes = n;
        self
    }

    /// A cap on operations per batch.
    pub fn batch_size(mut self, n: Option<usize>) -> Self {
        self.batch_size = n;
        self
    }

    /// How long a partial batch waits for a new row before it is sent.
    pub fn flush_after(mut self, d: Duration) -> Self {
        self.flush_after = d;
        self
    }

    /// The rejects file (default: named after the input, next to it).
    pub fn rejects(mut self, path: Option<PathBuf>) -> Self {
        self.rejects = path;
        self
    }

    /// The errors file (default: named after the input, next to it).
    pub fn errors(mut self, path: Option<PathBuf>) -> Self {
        self.errors = path;
        self
    }

    /// Where the summary JSON goes, if anywhere.
    pub fn summary(mut self, path: Option<PathBuf>) -> Self {
        self.summary = path;
        self
    }

    /// Read, convert and validate only; send nothing (no credentials needed).
    pub fn dry_run(mut self, on: bool) -> Self {
        self.dry_run = on;
        self
    }

    /// The ledger (SQLite) for delta syncs and resume.
    pub fn state(mut self, path: Option<PathBuf>) -> Self {
        self.state = path;
        self
    }

    /// With a ledger: send every row anyway and refresh it.
    pub fn full(mut self, on: bool) -> Self {
        self.full = on;
        self
    }

    /// How progress is shown.
    pub fn progress(mut self, mode: ProgressMode) -> Self {
        self.progress = mode;
        self
    }

    /// Guards and mirror mode (checked against the rest by [`crate::guard::check_settings`]).
    pub fn nightly(mut self, nightly: crate::guard::Nightly) -> Self {
        self.nightly = nightly;
        self
    }

    /// The settings, once every one of them is checked; the first problem otherwise, naming
    /// the option and the fix.
    pub fn build(self) -> Result<ImportConfig, ConfigError> {
        let reading = self.read.resolve(&self.input)?;
        let mut mapping = reading.mapping;
        match mapping.as_mut() {
            Some(m) => m.drop_unmapped |= self.drop_unmapped,
            None if self.drop_unmapped => return Err(ConfigError::DropUnmappedWithoutMapping),
            None => {}
        }
        let endpoint = match self.endpoint {
            Endpoint::Resolved(url) => url,
            Endpoint::Given(raw) => track::check_endpoint(&raw).map_err(ConfigError::Endpoint)?,
            Endpoint::Region(r) => {
                track::check_endpoint(r.base_url()).map_err(ConfigError::Endpoint)?
            }
        };
        if !self.dry_run && self.credentials.is_none() {
            return Err(ConfigError::NoCredentials);
        }
        if self.full && self.state.is_none() {
            return Err(ConfigError::FullWithoutState);
        }
        if self.events.is_some() && self.action != Action::Identify {
            return Err(ConfigError::EventsWithAction {
                action: self.action.as_str(),
            });
        }
        let object = self
            .objects
            .resolve(mapping.as_ref(), self.events.is_some())?;
        if let Some(o) = &object {
            let kind = o.kind_name();
            if !matches!(self.action, Action::Identify | Action::Delete) {
                return Err(ConfigError::ObjectsWith {
                    kind,
                    problem: format!(
                        "takes --action identify (the default) or delete, not {}",
                        self.action.as_str()
                    ),
                });
            }
            if o.kind == ObjectKind::Objects
                && (self.read.id_column.is_some() || self.read.identify_by.is_some())
            {
                return Err(ConfigError::ObjectsWith {
                    kind,
                    problem: "reads the object id from --object-id-column: drop --id-column and \
--identify-by"
                        .into(),
                });
            }
            if self.update_only || (self.clear_empty && o.kind == ObjectKind::Relationships) {
                return Err(ConfigError::ObjectsWith {
                    kind,
                    problem: "sends no people's attributes: drop --update-only and --empty clear"
                        .into(),
                });
            }
        }
        let action = match (
            self.events.is_some(),
            self.devices,
            self.merges,
            self.action,
        ) {
            (true, ..) => Action::Event,
            (_, true, _, Action::Identify) => Action::AddDevice,
            (_, true, _, Action::Delete) => Action::DeleteDevice,
            (_, true, _, other) => {
                return Err(ConfigError::KindWithAction {
                    kind: "devices",
                    action: other.as_str(),
                })
            }
            (_, _, true, Action::Identify) => Action::Merge,
            (_, _, true, other) => {
                return Err(ConfigError::KindWithAction {
                    kind: "merges",
                    action: other.as_str(),
                })
            }
            (false, false, false, a) => a,
        };
        if action != Action::Identify && (self.update_only || self.clear_empty) {
            return Err(ConfigError::AttributesWithoutIdentify {
                action: action.as_str(),
            });
        }
        // Checked before converting: a number such as 1e20 has no Duration (it would panic).
        let timeout = seconds("--timeout", self.timeout_s, TIMEOUT_S, "30")?;
        let throttle_budget = seconds(
            "--throttle-budget",
            self.throttle_budget_s,
            THROTTLE_BUDGET_S,
            "300",
        )?;
        let mut cfg = ImportConfig::new(self.input, reading.format, endpoint);
        cfg.delimiter = reading.delimiter;
        cfg.detect_delimiter = reading.detect_delimiter;
        cfg.encoding = reading.encoding;
        // Objects are read by their object id column; relationships find their person as
        // people do.
        let (id_kind, id_column) = match &object {
            Some(o) if o.kind == ObjectKind::Objects => (IdKind::Id, o.id_column.clone()),
            _ => (reading.id_kind, reading.id_column),
        };
        cfg.convert = ConvertOptions {
            object,
            id_kind,
            id_column,
            api: self.api,
            hash: self.state.is_some(),
            mapping: mapping.map(Arc::new),
            clear_empty: self.clear_empty,
            update_only: self.update_only,
            action,
            event: self.events.map(|mut ev| {
                let site_id = self
                    .credentials
                    .as_ref()
                    .map(|c| c.site_id.as_str())
                    .unwrap_or("");
                let dest = crate::ledger::Destination::new(site_id, &cfg.endpoint);
                ev.workspace = format!("{}@{}", dest.site_id, dest.host);
                ev
            }),
        };
        cfg.state = self.state;
        cfg.full = self.full;
        cfg.credentials = self.credentials;
        cfg.ca_cert = self.ca_cert;
        cfg.concurrency = self.concurrency;
        cfg.rate = self.rate;
        cfg.fixed_rate = self.fixed_rate;
        cfg.throttle_budget = throttle_budget;
        cfg.max_retries = self.max_retries;
        cfg.timeout = timeout;
        cfg.backoff_base = self.backoff_base;
        cfg.backoff_cap = self.backoff_cap;
        cfg.batch_bytes = self.batch_bytes;
        cfg.batch_size = self.batch_size.or((action == Action::Merge).then_some(1));
        cfg.flush_after = self.flush_after;
        if let Some(p) = self.rejects {
            cfg.rejects = p;
        }
        if let Some(p) = self.errors {
            cfg.errors = p;
        }
        cfg.summary = self.summary;
        cfg.dry_run = self.dry_run;
        cfg.progress = self.progress;
        cfg.nightly = self.nightly;
        crate::guard::check_settings(&cfg).map_err(ConfigError::Nightly)?;
        // The same checks the engine makes before it runs, here so that the message comes
        // before anything is opened.
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg() -> ImportConfig {
        ImportConfig::new(
            Input::Stdin,
            Format::Csv,
            reqwest::Url::parse("http://127.0.0.1:9").expect("a valid URL"),
        )
    }

    #[test]
    fn the_defaults_pass() {
        assert_eq!(cfg().validate(), Ok(()));
    }

    #[test]
    fn each_field_out_of_range_names_its_option() {
        type Set = fn(&mut ImportConfig);
        let cases: Vec<(&str, Set)> = vec![
            ("--concurrency", |c| c.concurrency = 0),
            ("--concurrency", |c| c.concurrency = usize::MAX),
            ("--rate", |c| c.rate = u32::MAX),
            ("--max-retries", |c| c.max_retries = 101),
            ("--timeout", |c| c.timeout = Duration::MAX),
            ("--timeout", |c| c.timeout = Duration::ZERO),
            ("--backoff-base-ms", |c| c.backoff_base = Duration::ZERO),
            ("--backoff-cap-ms", |c| c.backoff_cap = Duration::MAX),
            ("--backoff-cap-ms", |c| {
                c.backoff_cap = Duration::from_millis(1)
            }),
            ("--batch-bytes", |c| c.batch_bytes = 999),
            ("--batch-size", |c| c.batch_size = Some(0)),
            ("--flush-ms", |c| c.flush_after = Duration::from_secs(61)),
        ];
        for (option, set) in cases {
            let mut c = cfg();
            set(&mut c);
            let e = c.validate().expect_err(option);
            assert!(
                matches!(&e, ConfigError::OutOfRange { option: o, .. } if *o == option),
                "{option}: {e}"
            );
            assert!(e.to_string().starts_with(option), "{e}");
        }
    }

    /// A builder for a dry run of `dir/p.csv` (which exists), reports in `dir`.
    fn builder(dir: &Path) -> ImportConfigBuilder {
        let input = dir.join("p.csv");
        std::fs::write(&input, "id\n1\n").expect("a temporary file");
        ImportConfig::builder(Input::Path(input))
            .dry_run(true)
            .rejects(Some(dir.join("r.csv")))
            .errors(Some(dir.join("e.csv")))
    }

    #[test]
    fn the_builder_defaults_are_those_of_new_and_of_the_engine() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let built = builder(dir.path()).build().expect("the defaults pass");
        let new = ImportConfig::new(
            built.input.clone(),
            Format::Csv,
            reqwest::Url::parse(Region::Us.base_url()).expect("a valid URL"),
        );
        assert_eq!(built.endpoint, new.endpoint);
        assert_eq!(
            (built.concurrency, built.rate, built.max_retries),
            (new.concurrency, new.rate, new.max_retries)
        );
        assert_eq!(
            (built.timeout, built.throttle_budget, built.flush_after),
            (new.timeout, new.throttle_budget, new.flush_after)
        );
        assert_eq!(
            (built.backoff_base, built.backoff_cap, built.batch_bytes),
            (new.backoff_base, new.backoff_cap, new.batch_bytes)
        );
        assert_eq!(
            new.throttle_budget,
            Duration::from_secs_f64(DEFAULT_THROTTLE_BUDGET_S)
        );
        assert_eq!((built.format, built.delimiter), (Format::Csv, b','));
        assert_eq!(built.convert.id_column, "id");
    }

    #[test]
    fn the_builder_resolves_what_it_is_given() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let cfg = builder(dir.path())
            .read(ReadOptions {
                delimiter: Some("tab".into()),
                identify_by: Some(IdKind::Email),
                mapping: Some(MappingSource::Preset("mailchimp".into())),
                ..ReadOptions::default()
            })
            .region(Region::Eu)
            .api(Api::V1)
            .state(Some(dir.path().join("s.db")))
            .full(true)
            .timeout_secs(0.5)
            .build()
            .expect("valid settings");
        assert_eq!(cfg.delimiter, b'\t');
        assert_eq!(cfg.convert.id_kind, IdKind::Email);
        assert_eq!(cfg.convert.id_column, "email");
        assert_eq!(cfg.convert.api, Api::V1);
        assert!(cfg.convert.hash && cfg.convert.mapping.is_some() && cfg.full);
        assert_eq!(cfg.endpoint.as_str(), "https://track-eu.customer.io/");
        assert_eq!(cfg.timeout, Duration::from_millis(500));
    }

    #[test]
    fn the_builder_refuses_bad_values_naming_the_option() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let d = dir.path();
        type Change = fn(ImportConfigBuilder, &Path) -> ImportConfigBuilder;
        let cases: Vec<(&str, Change)> = vec![
            ("--rate", |b, _| b.rate(100_001)),
            ("--concurrency", |b, _| b.concurrency(0)),
            ("--timeout", |b, _| b.timeout_secs(f64::NAN)),
            ("--timeout", |b, _| b.timeout_secs(1e20)),
            ("--throttle-budget", |b, _| b.throttle_budget_secs(0.5)),
            ("--batch-size", |b, _| b.batch_size(Some(0))),
            ("--backoff-cap-ms", |b, _| {
                b.backoff_base(Duration::from_secs(5))
                    .backoff_cap(Duration::from_secs(1))
            }),
            ("--delimiter ';;'", |b, _| {
                b.read(ReadOptions {
                    delimiter: Some(";;".into()),
                    ..ReadOptions::default()
                })
            }),
            ("--delimiter 'é'", |b, _| {
                b.read(ReadOptions {
                    delimiter: Some("é".into()),
                    ..ReadOptions::default()
                })
            }),
            ("--preset nope: no such preset (there are: ", |b, _| {
                b.read(ReadOptions {
                    mapping: Some(MappingSource::Preset("nope".into())),
                    ..ReadOptions::default()
                })
            }),
            ("--mapping ", |b, d| {
                b.read(ReadOptions {
                    mapping: Some(MappingSource::File(d.join("missing.toml"))),
                    ..ReadOptions::default()
                })
            }),
            ("--drop-unmapped needs --mapping", |b, _| {
                b.drop_unmapped(true)
            }),
            ("--full needs --state", |b, _| b.full(true)),
            ("--endpoint 'http://example.com'", |b, _| {
                b.endpoint("http://example.com")
            }),
            ("no credentials: set CUSTOMERIO_SITE_ID", |b, _| {
                b.dry_run(false)
            }),
            // Conflicting outputs: a report that is the input, the ledger or another report.
            ("--rejects", |b, d| b.rejects(Some(d.join("p.csv")))),
            ("--errors", |b, d| b.errors(Some(d.join("r.csv")))),
            ("--summary", |b, d| b.summary(Some(d.join("e.csv")))),
            ("--rejects", |b, d| {
                b.state(Some(d.join("s.db")))
                    .rejects(Some(d.join("s.db-wal")))
            }),
        ];
        for (start, change) in cases {
            let e = change(builder(d), d).build().expect_err(start).to_string();
            assert!(e.starts_with(start), "{start}: {e}");
        }
    }

    proptest! {
        #[test]
        fn seconds_from_any_float_never_panic(v in proptest::num::f64::ANY) {
            let r = seconds("--timeout", v, TIMEOUT_S, "30");
            prop_assert_eq!(r.is_ok(), (TIMEOUT_S.0..=TIMEOUT_S.1).contains(&v));
        }

        #[test]
        fn validate_never_panics(
            concurrency in any::<usize>(), rate in any::<u32>(), retries in any::<usize>(),
            t in any::<(u64, u32)>(), base in any::<(u64, u32)>(), cap in any::<(u64, u32)>(),
            flush in any::<(u64, u32)>(), bytes in any::<usize>(), size in any::<Option<usize>>(),
        ) {
            let d = |(s, n): (u64, u32)| Duration::new(s, n % 1_000_000_000);
            let mut c = cfg();
            c.concurrency = concurrency;
            c.rate = rate;
            c.max_retries = retries;
            c.timeout = d(t);
            c.backoff_base = d(base);
            c.backoff_cap = d(cap);
            c.flush_after = d(flush);
            c.batch_bytes = bytes;
            c.batch_size = size;
            let _ = c.validate();
        }
    }
}
