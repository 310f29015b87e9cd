//! Validated, ready-to-use settings of an import; the engine never sees clap.

use crate::convert::ConvertOptions;
use crate::report::progress::ProgressMode;
use crate::secret::Credentials;
use crate::source::{Format, Input};
use std::path::{Path, PathBuf};
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

/// A setting outside what the tool accepts, found before anything runs. The messages name the
/// command-line option (`--timeout`), the job file key is the same name with `_` for `-`, and
/// the field of [`ImportConfig`] or [`crate::sandbox::SandboxConfig`] is named after it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
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
}

/// Whether two paths name the same existing file (same device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.is_file() && x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
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
    /// overwrite the input or the other report. [`crate::pipeline::run`] calls it before doing
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
        let mut outputs: Vec<(&'static str, &PathBuf)> =
            vec![("--rejects", &self.rejects), ("--errors", &self.errors)];
        if let Some(summary) = &self.summary {
            outputs.push(("--summary", summary));
        }
        for (i, (option, path)) in outputs.iter().enumerate() {
            let r = resolved(path);
            for (other, problem) in &kept {
                if same_file(other, path) || (r.is_some() && r == resolved(other)) {
                    return Err(ConfigError::ReportPath {
                        option,
                        path: path.display().to_string(),
                        problem,
                    });
                }
            }
            for (other_option, other) in &outputs[..i] {
                if r.is_some() && r == resolved(other) {
                    return Err(ConfigError::ReportPath {
                        option,
                        path: path.display().to_string(),
                        problem: match *other_option {
                            "--rejects" => "that is also the rejects file",
                            _ => "that is also the errors file",
                        },
                    });
                }
            }
        }
        Ok(())
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
