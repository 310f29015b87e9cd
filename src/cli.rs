//! The command line: clap types, turned once into validated settings, and the subcommands' glue.

use crate::config::{self, ConfigError, ImportConfig};
use crate::convert::ConvertOptions;
use crate::exit;
use crate::mapping::Mapping;
use crate::record::IdKind;
use crate::report::progress::ProgressMode;
use crate::sandbox::{self, Sandbox, SandboxConfig, Tls};
use crate::secret::{ApiKey, Credentials};
use crate::source::{self, Format, Input};
use crate::stop::Stop;
use crate::track::{self, Api, Region};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Load people into Customer.io through the Track API, from CSV or JSONL.
#[derive(Parser, Debug)]
#[command(name = "cio-import", version, after_help = exit::HELP)]
pub struct Cli {
    /// More log detail (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Import people from a CSV or JSONL file (or stdin).
    #[command(after_help = exit::HELP)]
    Import(ImportArgs),
    /// Run the local Track API sandbox in the foreground.
    Sandbox(SandboxArgs),
    /// Show what a --state ledger knows: people, last runs, rows that failed last time.
    State {
        /// The ledger file.
        path: PathBuf,
    },
    /// List the built-in mappings for exports of other platforms.
    Presets,
    /// Look at a file before importing it: columns, types, identifier coverage, problems.
    Inspect(InspectArgs),
    /// Run an import job described in a TOML file (for cron); see samples/job.toml.
    #[command(after_help = exit::HELP)]
    Sync {
        /// The job file.
        #[arg(long)]
        config: PathBuf,
    },
}

/// `--format`
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum FormatArg {
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
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

/// `--api`
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ApiArg {
    /// POST /api/v2/batch, many people per request.
    Batch,
    /// PUT /api/v1/customers/{id}, one person per request.
    V1,
}

/// `--region`
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum RegionArg {
    /// track.customer.io
    Us,
    /// track-eu.customer.io
    Eu,
}

/// How to read an input and find the people in it: shared by `import` and `inspect`.
#[derive(Args, Debug)]
pub struct ReadArgs {
    /// The input format (needed for stdin; otherwise taken from the extension).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// CSV delimiter: one character, or `tab`.
    #[arg(long)]
    pub delimiter: Option<String>,
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

/// What [`ReadArgs`] resolve to for one input.
pub struct Reading {
    /// CSV or JSONL.
    pub format: Format,
    /// The CSV delimiter.
    pub delimiter: u8,
    /// The identifier kind.
    pub id_kind: IdKind,
    /// The identifier's column after mapping.
    pub id_column: String,
    /// The mapping, if any.
    pub mapping: Option<Mapping>,
}

impl ReadArgs {
    /// Flags first, then the mapping's options, then the file name.
    pub fn resolve(&self, input: &Input) -> Result<Reading, UsageError> {
        let mapping =
            load_mapping(self.mapping.as_deref(), self.preset.as_deref())?.map(|(_, m)| m);
        let format = source::detect_format(
            input,
            self.format
                .map(|f| match f {
                    FormatArg::Csv => Format::Csv,
                    FormatArg::Jsonl => Format::Jsonl,
                })
                .or(mapping.as_ref().and_then(|m| m.format)),
        )
        .map_err(UsageError)?;
        let delimiter = match (&self.delimiter, mapping.as_ref().and_then(|m| m.delimiter)) {
            (Some(d), _) => parse_delimiter(d)?,
            (None, Some(d)) => d,
            (None, None) => source::default_delimiter(input),
        };
        let (id_kind, id_column) =
            id_choice(self.identify_by, self.id_column.as_ref(), mapping.as_ref());
        Ok(Reading {
            format,
            delimiter,
            id_kind,
            id_column,
            mapping,
        })
    }
}

/// Options of `inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The input file, or - for stdin.
    pub input: PathBuf,
    /// How to read it.
    #[command(flatten)]
    pub read: ReadArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `--empty`
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmptyArg {
    /// Leave empty cells out (Customer.io's "ignore empty values").
    Ignore,
    /// Send them as "" to clear the attribute ("nullify"); an empty created_at is left out.
    Clear,
}

/// Options of `import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The input file (.csv, .tsv, .jsonl, .ndjson, optionally .gz), or - for stdin.
    #[arg(required_unless_present = "print_mapping")]
    pub input: Option<PathBuf>,
    /// How to read it.
    #[command(flatten)]
    pub read: ReadArgs,
    /// Print the mapping (of --preset or --mapping) as a file to start editing from, and exit.
    #[arg(long)]
    pub print_mapping: bool,
    /// Keep only the columns the mapping names.
    #[arg(long)]
    pub drop_unmapped: bool,
    /// Update existing people only (`_update: true`); never create anyone.
    #[arg(long)]
    pub update_only: bool,
    /// What an empty cell does.
    #[arg(long, value_enum, default_value = "ignore")]
    pub empty: EmptyArg,
    /// The API to use.
    #[arg(long, value_enum, default_value = "batch")]
    pub api: ApiArg,
    /// Customer.io region of the workspace.
    #[arg(long, value_enum, default_value = "us")]
    pub region: RegionArg,
    /// Base URL instead of the region's (http:// only for loopback hosts).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Trust this extra root certificate (PEM), e.g. a TLS-inspecting proxy's or the sandbox's.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Start a local sandbox and import into it (no account needed).
    #[arg(long, conflicts_with = "endpoint")]
    pub sandbox: bool,
    /// Requests in flight at most (1 to 1000).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Most requests per second, all workers and retries together: the ceiling of the
    /// closed-loop rate, which follows the server's 429s (0 = no ceiling; at most 100000).
    #[arg(long, default_value_t = 100)]
    pub rate: u32,
    /// Pace at exactly --rate (open loop, every worker paused on a 429), for a known limit.
    #[arg(long)]
    pub fixed_rate: bool,
    /// Seconds a request keeps retrying 429s while nothing at all is acknowledged (1 to 86400).
    #[arg(long, default_value_t = 300.0)]
    pub throttle_budget: f64,
    /// Retries after the first attempt, for 408/429/5xx/timeouts/connection errors (0 to 100).
    #[arg(long, default_value_t = 8)]
    pub max_retries: usize,
    /// Timeout of one request, in seconds (0.001 to 3600).
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Batch request body cap in bytes (1000 to 500000).
    #[arg(long, default_value_t = 500_000)]
    pub batch_bytes: usize,
    /// Cap on operations per batch request (1 to 100000).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Send a partial batch after this many milliseconds without a new row.
    #[arg(long, default_value_t = 250, hide = true)]
    pub flush_ms: u64,
    /// First backoff delay in milliseconds.
    #[arg(long, default_value_t = 500, hide = true)]
    pub backoff_base_ms: u64,
    /// Largest backoff delay in milliseconds.
    #[arg(long, default_value_t = 30_000, hide = true)]
    pub backoff_cap_ms: u64,
    /// Where this run's failed rows go, verbatim; a run without failures removes the file
    /// (default: <input file name>.rejects.<csv|jsonl> next to the input, e.g. customers.csv.rejects.csv; stdin.rejects.* for stdin).
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// Where the reasons go; replaced by each run like --rejects
    /// (default: <input file name>.errors.csv next to the input, e.g. customers.csv.errors.csv; stdin.errors.csv for stdin).
    #[arg(long)]
    pub errors: Option<PathBuf>,
    /// Write the summary as JSON here.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Read, convert and validate everything; send nothing; no credentials needed.
    #[arg(long)]
    pub dry_run: bool,
    /// A local ledger (SQLite): rows unchanged since they were last acknowledged are skipped,
    /// and a killed run resumes where it stopped.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// With --state: send every row anyway and refresh the ledger.
    #[arg(long, requires = "state")]
    pub full: bool,
    /// No progress bar; a status line in the log every 10 seconds instead.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Options of `sandbox`.
#[derive(Args, Debug, Clone)]
pub struct SandboxArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 4567)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Site id to require (default: CUSTOMERIO_SITE_ID; none set = accept any).
    #[arg(long, env = "CUSTOMERIO_SITE_ID", hide_env_values = true)]
    pub site_id: Option<String>,
    /// API key to require (default: CUSTOMERIO_TRACK_API_KEY).
    #[arg(long, env = "CUSTOMERIO_TRACK_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Requests per second before 429 (0 = no limit).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Burst of the rate limit.
    #[arg(long, default_value_t = 10)]
    pub burst: u32,
    /// Send `Retry-After: SECS` with every 429.
    #[arg(long)]
    pub retry_after: Option<u64>,
    /// Latency added to every request (±20% jitter), in ms.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests answered 500/502/503/504 (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Share of requests whose connection is closed without an answer.
    #[arg(long, default_value_t = 0.0)]
    pub reset_rate: f64,
    /// Share of requests answered only after --slow-ms (then 504).
    #[arg(long, default_value_t = 0.0)]
    pub slow_rate: f64,
    /// How slow a slow request is, in ms.
    #[arg(long, default_value_t = 35_000)]
    pub slow_ms: u64,
    /// Answer 503 from START_S seconds after start, for LEN_S seconds.
    #[arg(long, num_args = 2, value_names = ["START_S", "LEN_S"])]
    pub outage: Option<Vec<f64>>,
    /// Share of requests applied, then answered 500.
    #[arg(long, default_value_t = 0.0)]
    pub ambiguous_rate: f64,
    /// Share of batch requests applied, then answered 207 with a cut-off or non-JSON body.
    #[arg(long, default_value_t = 0.0)]
    pub unreadable_207_rate: f64,
    /// Seed for the fault dice.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the people received as JSONL here on exit.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Do not keep people (for very large benchmarks).
    #[arg(long)]
    pub discard: bool,
    /// Answer this identifier as invalid (a 207 entry in a batch, 400 in v1); repeatable.
    #[arg(long = "reject-id")]
    pub reject_ids: Vec<String>,
    /// Fail any whole batch holding this identifier with 400; repeatable.
    #[arg(long = "poison-id")]
    pub poison_ids: Vec<String>,
    /// Serve HTTPS with a fresh self-signed certificate for localhost and 127.0.0.1.
    #[arg(long)]
    pub tls: bool,
    /// Where to write that certificate (PEM).
    #[arg(long, requires = "tls")]
    pub cert_out: Option<PathBuf>,
    /// A limit that changes mid-run: SECS:REQ_PER_S steps, e.g. 0:100,20:40,40:100 (overrides --limit).
    #[arg(long)]
    pub limit_schedule: Option<String>,
    /// Simulated live traffic spending the same quota, in requests per second (Poisson).
    #[arg(long, default_value_t = 0)]
    pub background_rate: u32,
}

/// Parses `--limit-schedule 0:100,20:40,40:100`: start times in seconds, increasing.
fn parse_limit_schedule(s: &str) -> Result<Vec<(Duration, u32)>, UsageError> {
    let bad = |why: &str| {
        UsageError(format!(
            "--limit-schedule '{s}': {why}; give SECS:REQ_PER_S steps, e.g. 0:100,20:40,40:100"
        ))
    };
    let mut steps: Vec<(Duration, u32)> = Vec::new();
    for part in s.split(',') {
        let (at, limit) = part
            .trim()
            .split_once(':')
            .ok_or_else(|| bad(&format!("'{part}' has no ':'")))?;
        let at: f64 = at
            .trim()
            .parse()
            .map_err(|_| bad(&format!("'{at}' is not a number of seconds")))?;
        let limit: u32 = limit
            .trim()
            .parse()
            .map_err(|_| bad(&format!("'{limit}' is not a whole number of requests")))?;
        if !(0.0..=86_400.0).contains(&at) {
            return Err(bad("start times go from 0 to 86400 seconds"));
        }
        let at = Duration::from_secs_f64(at);
        if steps.last().is_some_and(|(prev, _)| *prev >= at) {
            return Err(bad("start times must increase"));
        }
        steps.push((at, limit));
    }
    Ok(steps)
}

/// A usage or configuration problem, reported before anything runs.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl From<ConfigError> for UsageError {
    fn from(e: ConfigError) -> UsageError {
        UsageError(e.to_string())
    }
}

fn parse_delimiter(s: &str) -> Result<u8, UsageError> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        _ => Err(UsageError(format!(
            "--delimiter '{s}': give one ASCII character (e.g. ';') or 'tab'"
        ))),
    }
}

impl SandboxArgs {
    /// The sandbox settings these flags describe.
    pub fn to_config(&self) -> Result<SandboxConfig, UsageError> {
        let credentials =
            match (&self.site_id, &self.api_key) {
                (Some(s), Some(k)) if !s.is_empty() && !k.is_empty() => Some(Credentials {
                    site_id: s.clone(),
                    api_key: ApiKey::new(k.clone()),
                }),
                (None, None) => None,
                _ => return Err(UsageError(
                    "give both the site id and the API key to require, or neither to accept any"
                        .into(),
                )),
            };
        let outage = match self.outage.as_deref() {
            Some([start, len]) => Some((
                config::seconds("--outage", *start, sandbox::OUTAGE_S, "5 10")?,
                config::seconds("--outage", *len, sandbox::OUTAGE_S, "5 10")?,
            )),
            Some(_) => {
                return Err(UsageError(
                    "--outage START_S LEN_S: two non-negative numbers".into(),
                ))
            }
            None => None,
        };
        let cfg = SandboxConfig {
            credentials,
            limit: self.limit,
            burst: self.burst,
            retry_after: self.retry_after,
            latency: Duration::from_millis(self.latency_ms),
            fail_rate: self.fail_rate,
            reset_rate: self.reset_rate,
            slow_rate: self.slow_rate,
            slow: Duration::from_millis(self.slow_ms),
            outage,
            ambiguous_rate: self.ambiguous_rate,
            unreadable_207_rate: self.unreadable_207_rate,
            seed: self.seed,
            store_people: !self.discard,
            log_each_second: true,
            script: Vec::new(),
            reject_ids: self.reject_ids.clone(),
            poison_ids: self.poison_ids.clone(),
            limit_schedule: match &self.limit_schedule {
                Some(s) => parse_limit_schedule(s)?,
                None => Vec::new(),
            },
            background_rate: self.background_rate,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The mapping of `--mapping FILE` or `--preset NAME`, if either: (its text, parsed).
pub fn load_mapping(
    file: Option<&std::path::Path>,
    preset: Option<&str>,
) -> Result<Option<(String, Mapping)>, UsageError> {
    let (text, name) = match (file, preset) {
        (Some(p), _) => (
            std::fs::read_to_string(p)
                .map_err(|e| UsageError(format!("--mapping {}: cannot read: {e}", p.display())))?,
            p.display().to_string(),
        ),
        (None, Some(n)) => {
            let p = crate::mapping::preset(n).ok_or_else(|| {
                let names: Vec<&str> = crate::mapping::PRESETS.iter().map(|p| p.name).collect();
                UsageError(format!(
                    "--preset {n}: no such preset (there are: {})",
                    names.join(", ")
                ))
            })?;
            (p.text.to_string(), format!("preset {}", p.name))
        }
        (None, None) => return Ok(None),
    };
    let m = Mapping::parse(&text, &name).map_err(UsageError)?;
    Ok(Some((text, m)))
}

fn id_choice(
    flag: Option<IdentifyBy>,
    column: Option<&String>,
    mapping: Option<&Mapping>,
) -> (IdKind, String) {
    let kind = match flag {
        Some(IdentifyBy::Id) => IdKind::Id,
        Some(IdentifyBy::Email) => IdKind::Email,
        Some(IdentifyBy::CioId) => IdKind::CioId,
        None => mapping.and_then(|m| m.identify_by).unwrap_or(IdKind::Id),
    };
    let column = match (column, mapping) {
        (Some(c), _) => c.clone(),
        // The mapping's column stands for its identifier kind; --identify-by overrides both.
        (None, Some(m)) if flag.is_none() => m
            .id_column
            .clone()
            .unwrap_or_else(|| kind.as_str().to_string()),
        _ => kind.as_str().to_string(),
    };
    (kind, column)
}

impl ImportArgs {
    /// Validated settings. `endpoint_override` replaces the region/endpoint (for --sandbox).
    pub fn to_config(
        &self,
        credentials: Option<Credentials>,
        endpoint_override: Option<reqwest::Url>,
    ) -> Result<ImportConfig, UsageError> {
        let input_arg = self
            .input
            .as_ref()
            .ok_or_else(|| UsageError("the input file is missing".into()))?;
        let input = Input::from_arg(input_arg);
        let mut reading = self.read.resolve(&input)?;
        match reading.mapping.as_mut() {
            Some(m) => m.drop_unmapped |= self.drop_unmapped,
            None if self.drop_unmapped => {
                return Err(UsageError(
                    "--drop-unmapped needs --mapping or --preset".into(),
                ))
            }
            None => {}
        }
        let endpoint = match (endpoint_override, &self.endpoint) {
            (Some(u), _) => u,
            (None, Some(e)) => track::check_endpoint(e).map_err(UsageError)?,
            (None, None) => {
                let region = match self.region {
                    RegionArg::Us => Region::Us,
                    RegionArg::Eu => Region::Eu,
                };
                track::check_endpoint(region.base_url()).map_err(UsageError)?
            }
        };
        if !self.dry_run && credentials.is_none() {
            return Err(UsageError(format!(
                "no credentials: set {} and {} (Settings > API Credentials in Customer.io), \
or try --sandbox or --dry-run",
                crate::secret::SITE_ID_ENV,
                crate::secret::API_KEY_ENV
            )));
        }
        // Checked before converting: a number such as 1e20 has no Duration (it would panic).
        let timeout = config::seconds("--timeout", self.timeout, config::TIMEOUT_S, "30")?;
        let throttle_budget = config::seconds(
            "--throttle-budget",
            self.throttle_budget,
            config::THROTTLE_BUDGET_S,
            "300",
        )?;
        let mut cfg = ImportConfig::new(input, reading.format, endpoint);
        cfg.delimiter = reading.delimiter;
        cfg.convert = ConvertOptions {
            id_kind: reading.id_kind,
            id_column: reading.id_column,
            api: match self.api {
                ApiArg::Batch => Api::Batch,
                ApiArg::V1 => Api::V1,
            },
            hash: self.state.is_some(),
            mapping: reading.mapping.map(std::sync::Arc::new),
            clear_empty: self.empty == EmptyArg::Clear,
            update_only: self.update_only,
        };
        cfg.state = self.state.clone();
        cfg.full = self.full;
        cfg.credentials = credentials;
        cfg.ca_cert = self.ca_cert.clone();
        cfg.concurrency = self.concurrency;
        cfg.rate = self.rate;
        cfg.fixed_rate = self.fixed_rate;
        cfg.throttle_budget = throttle_budget;
        cfg.max_retries = self.max_retries;
        cfg.timeout = timeout;
        cfg.backoff_base = Duration::from_millis(self.backoff_base_ms);
        cfg.backoff_cap = Duration::from_millis(self.backoff_cap_ms);
        cfg.batch_bytes = self.batch_bytes;
        cfg.batch_size = self.batch_size;
        cfg.flush_after = Duration::from_millis(self.flush_ms);
        if let Some(p) = &self.rejects {
            cfg.rejects = p.clone();
        }
        if let Some(p) = &self.errors {
            cfg.errors = p.clone();
        }
        cfg.summary = self.summary.clone();
        cfg.dry_run = self.dry_run;
        cfg.progress = if !self.quiet && std::io::stderr().is_terminal() {
            ProgressMode::Bar
        } else {
            ProgressMode::Log
        };
        // The same checks pipeline::run makes, here so that the message comes before anything.
        cfg.validate()?;
        Ok(cfg)
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{default},hyper=info,reqwest=info,h2=info,rustls=info"
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Installs Ctrl-C / SIGTERM handling: the first stops the run gracefully, a second exits now.
fn watch_signals(stop: Stop) {
    tokio::spawn(async move {
        wait_for_signal().await;
        eprintln!("\ninterrupted: finishing requests in flight (5 s at most) and writing the reports (Ctrl-C again to quit at once)");
        stop.interrupt();
        wait_for_signal().await;
        eprintln!("interrupted again: quitting now");
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the command line and returns the exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::SUCCESS
                }
                _ => exit::USAGE_OR_IO,
            };
        }
    };
    init_logging(cli.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::USAGE_OR_IO;
        }
    };
    let code = rt.block_on(async move {
        match cli.command {
            Command::Import(args) if args.print_mapping => print_mapping(&args),
            Command::Import(args) => import(args, Credentials::from_env()).await,
            Command::Presets => {
                for p in crate::mapping::PRESETS {
                    let d = Mapping::parse(p.text, p.name)
                        .ok()
                        .and_then(|m| m.description)
                        .unwrap_or_default();
                    println!("{:<10} {d}", p.name);
                }
                println!("\nuse: cio-import import FILE --preset NAME   (or --preset NAME --print-mapping to edit a copy)");
                exit::SUCCESS
            }
            Command::Inspect(args) => crate::inspect::run(&args),
            Command::Sandbox(args) => run_sandbox(args).await,
            Command::State { path } => match crate::ledger::describe(&path) {
                Ok(text) => {
                    print!("{text}");
                    exit::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    exit::USAGE_OR_IO
                }
            },
            Command::Sync { config } => sync(&config).await,
        }
    });
    // Do not wait for lingering tasks (a slow sandbox request, a blocked stdin read).
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}

fn print_mapping(args: &ImportArgs) -> u8 {
    match load_mapping(args.read.mapping.as_deref(), args.read.preset.as_deref()) {
        Ok(Some((text, _))) => {
            print!("{text}");
            exit::SUCCESS
        }
        Ok(None) => {
            eprintln!("error: --print-mapping needs --preset NAME or --mapping FILE");
            exit::USAGE_OR_IO
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE_OR_IO
        }
    }
}

async fn sync(config: &std::path::Path) -> u8 {
    let job = match crate::job::load(config) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE_OR_IO;
        }
    };
    let args = match Cli::try_parse_from(job.to_args(config)) {
        Ok(Cli {
            command: Command::Import(a),
            ..
        }) => a,
        Ok(_) => return exit::USAGE_OR_IO,
        Err(e) => {
            eprintln!("error: {}: {e}", config.display());
            return exit::USAGE_OR_IO;
        }
    };
    let site_var = job
        .site_id_env
        .as_deref()
        .unwrap_or(crate::secret::SITE_ID_ENV);
    let key_var = job
        .api_key_env
        .as_deref()
        .unwrap_or(crate::secret::API_KEY_ENV);
    let credentials = Credentials::from_env_names(site_var, key_var);
    if credentials.is_none() && !args.dry_run && !args.sandbox {
        eprintln!(
            "error: {}: set the variables {site_var} and {key_var} (named in the job file)",
            config.display()
        );
        return exit::USAGE_OR_IO;
    }
    import(args, credentials).await
}

async fn import(args: ImportArgs, env_credentials: Option<Credentials>) -> u8 {
    let stop = Stop::new();
    watch_signals(stop.clone());
    let mut sandbox: Option<Sandbox> = None;
    let (credentials, endpoint) = if args.sandbox {
        let creds = env_credentials.unwrap_or(Credentials {
            site_id: "sandbox-site".into(),
            api_key: ApiKey::new("sandbox-key"),
        });
        let cfg = SandboxConfig {
            credentials: Some(creds.clone()),
            latency: Duration::from_millis(50),
            fail_rate: 0.02,
            ..SandboxConfig::default()
        };
        let bind = SocketAddr::from(([127, 0, 0, 1], 0));
        match Sandbox::start(cfg, bind, None).await {
            Ok(s) => {
                eprintln!(
                    "sandbox: a local stand-in for the Track API at {} (50 ms latency, 100 req/s limit, 2% injected 5xx)",
                    s.url
                );
                let url = reqwest::Url::parse(&s.url).ok();
                sandbox = Some(s);
                (Some(creds), url)
            }
            Err(e) => {
                eprintln!("error: cannot start the sandbox: {e}");
                return exit::USAGE_OR_IO;
            }
        }
    } else {
        (env_credentials, None)
    };
    let cfg = match args.to_config(credentials, endpoint) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE_OR_IO;
        }
    };
    let summary_path = cfg.summary.clone();
    let input_for_save = match &cfg.input {
        Input::Path(p) => Some(p.clone()),
        Input::Stdin => None,
    };
    let mut summary = crate::pipeline::run(cfg, stop).await;
    if let Some(path) = &summary_path {
        if let Err(e) = summary.write_json(path) {
            eprintln!("error: {e}");
            summary.exit_code = summary.exit_code.max(exit::USAGE_OR_IO);
        }
    }
    eprint!("{}", summary.table());
    if let Some(s) = sandbox {
        let path = sandbox::default_save_path(input_for_save.as_deref());
        match s.save_people(&path) {
            Ok(n) => eprintln!("sandbox: {n} people received; saved to {}", path.display()),
            Err(e) => eprintln!(
                "sandbox: could not save the people to {}: {e}",
                path.display()
            ),
        }
        s.shutdown().await;
    }
    summary.exit_code
}

async fn run_sandbox(args: SandboxArgs) -> u8 {
    let cfg = match args.to_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE_OR_IO;
        }
    };
    if cfg.credentials.is_none() {
        eprintln!("sandbox: no credentials set: accepting any (set CUSTOMERIO_SITE_ID and CUSTOMERIO_TRACK_API_KEY, or --site-id/--api-key, to require them)");
    }
    let tls = if args.tls {
        match Tls::generate() {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE_OR_IO;
            }
        }
    } else {
        None
    };
    if let (Some(t), Some(path)) = (&tls, &args.cert_out) {
        if let Err(e) = t.write_cert(path) {
            eprintln!(
                "error: cannot write the certificate to {}: {e}",
                path.display()
            );
            return exit::USAGE_OR_IO;
        }
    }
    let sb = match Sandbox::start(cfg, SocketAddr::new(args.bind, args.port), tls.as_ref()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot listen on {}:{}: {e}", args.bind, args.port);
            return exit::USAGE_OR_IO;
        }
    };
    {
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{}", sb.url);
        let _ = out.flush();
    }
    eprintln!("sandbox: listening on {} (Ctrl-C to stop); stats at {}/__sandbox/stats, people at {}/__sandbox/people", sb.url, sb.url, sb.url);
    wait_for_signal().await;
    let stats = sb.stats();
    eprintln!(
        "sandbox: stopping after {} requests, {} operations, max {} req/s, {} violations",
        stats.requests, stats.operations, stats.max_requests_per_second, stats.violation_count
    );
    if let Some(path) = &args.save {
        match sb.save_people(path) {
            Ok(n) => eprintln!("sandbox: saved {n} people to {}", path.display()),
            Err(e) => eprintln!("sandbox: cannot save people to {}: {e}", path.display()),
        }
    }
    sb.shutdown().await;
    exit::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox_args(extra: &[&str]) -> SandboxArgs {
        let mut argv = vec!["cio-import", "sandbox"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Sandbox(a)) => a,
            other => panic!("not a sandbox command line: {other:?}"),
        }
    }

    #[test]
    fn sandbox_numbers_out_of_range_are_usage_errors_naming_the_flag() {
        for (flag, value) in [
            ("--latency-ms", "18446744073709551615"),
            ("--slow-ms", "18446744073709551615"),
            ("--burst", "0"),
            ("--limit", "4294967295"),
            ("--retry-after", "18446744073709551615"),
            ("--outage", "1e20"),
        ] {
            let mut args = vec![flag, value];
            if flag == "--outage" {
                args.push("1");
            }
            match sandbox_args(&args).to_config() {
                Ok(_) => panic!("{flag} {value} was accepted"),
                Err(e) => assert!(e.0.starts_with(flag) && e.0.contains("give"), "{e}"),
            }
        }
        assert!(sandbox_args(&[]).to_config().is_ok());
    }
}
