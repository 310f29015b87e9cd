//! `cio-import import FILE`: the import options (declared once, here, for the command line
//! and the `sync` job files alike), their conversion into a checked [`ImportConfig`], and the
//! run itself (with `--sandbox`, a local stand-in started first).

use super::log::{say, Level};
use super::read::ReadArgs;
use super::{watch_signals, UsageError};
use crate::config::{self, ImportConfig};
use crate::confirm::{self, Decision};
use crate::convert::EventOptions;
use crate::exit;
use crate::operation::Action;
use crate::report::progress::ProgressMode;
use crate::run_record::RunRecord;
use crate::sandbox::{self, Sandbox, SandboxConfig};
use crate::secret::{ApiKey, Credentials};
use crate::source::Input;
use crate::stop::Stop;
use crate::track::{Api, Region};
use anyhow::anyhow;
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `--api`
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ApiArg {
    /// POST /api/v2/batch, many people per request.
    Batch,
    /// PUT /api/v1/customers/{id}, one person per request.
    V1,
}

impl From<ApiArg> for Api {
    fn from(a: ApiArg) -> Api {
        match a {
            ApiArg::Batch => Api::Batch,
            ApiArg::V1 => Api::V1,
        }
    }
}

/// `--region`
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum RegionArg {
    /// track.customer.io
    Us,
    /// track-eu.customer.io
    Eu,
}

impl From<RegionArg> for Region {
    fn from(r: RegionArg) -> Region {
        match r {
            RegionArg::Us => Region::Us,
            RegionArg::Eu => Region::Eu,
        }
    }
}

/// `--action`
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionArg {
    /// Create or update people with the file's attributes.
    Identify,
    /// Delete the people the file names (identifiers only; needs --yes).
    Delete,
    /// Suppress them: delete, and refuse their identifiers from now on (needs --yes).
    Suppress,
    /// Lift their suppression (recreates nobody).
    Unsuppress,
}

impl From<ActionArg> for Action {
    fn from(a: ActionArg) -> Action {
        match a {
            ActionArg::Identify => Action::Identify,
            ActionArg::Delete => Action::Delete,
            ActionArg::Suppress => Action::Suppress,
            ActionArg::Unsuppress => Action::Unsuppress,
        }
    }
}

/// `--kind`
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindArg {
    /// Each row is a person and its attributes.
    People,
    /// Each row is an event on a person: its name, time, id and data.
    Events,
    /// Each row is a push device of a person: token, platform, last_used, attributes
    /// (--action delete removes the devices; needs --yes).
    Devices,
    /// Each row merges a secondary person into a primary one (irreversible; needs --yes).
    Merges,
    /// Each row is an object (a company, an account) of --object-type-id and its attributes.
    Objects,
    /// Each row relates a person to an object of --object-type-id, with the relationship's
    /// attributes (a role).
    Relationships,
}

impl KindArg {
    /// The object kind it names, if any.
    pub fn object_kind(self) -> Option<crate::convert::ObjectKind> {
        match self {
            KindArg::Objects => Some(crate::convert::ObjectKind::Objects),
            KindArg::Relationships => Some(crate::convert::ObjectKind::Relationships),
            KindArg::People | KindArg::Events | KindArg::Devices | KindArg::Merges => None,
        }
    }
}

/// `--empty`
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmptyArg {
    /// Leave empty cells out (Customer.io's "ignore empty values").
    Ignore,
    /// Send them as "" to clear the attribute ("nullify"); an empty created_at is left out.
    Clear,
}

/// Options of `import`: the one declaration of the import options. A `sync` job file takes
/// the same options as keys (`rate = 50` for `--rate 50`), read from this declaration, and
/// the command line becomes an [`ImportConfig`] through [`ImportArgs::config`].
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
    /// What each row does to its person. delete, suppress and unsuppress read only the
    /// identifier column (others are ignored); delete and suppress first count the people
    /// they will touch and need --yes (or the count typed on a terminal).
    #[arg(long, value_enum, default_value = "identify")]
    pub action: ActionArg,
    /// What each row is: a person (identify, or --action), an event on a person, an object,
    /// or a person's relationship to an object [default: people, or the preset's].
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// --kind objects|relationships: the object type's id in the workspace (1 for the first
    /// type created; Data & Integrations > Objects).
    #[arg(long)]
    pub object_type_id: Option<String>,
    /// --kind objects|relationships: the column of the object's id, after mapping
    /// [default: object_id, or the preset's].
    #[arg(long)]
    pub object_id_column: Option<String>,
    /// --kind events: the column of the event's name.
    #[arg(long, default_value = crate::convert::event::NAME_COLUMN)]
    pub name_column: String,
    /// --kind events: the column of the event's time (the formats of created_at; to Unix
    /// seconds; an event without one happens when it is received).
    #[arg(long, default_value = crate::convert::event::TIMESTAMP_COLUMN)]
    pub timestamp_column: String,
    /// --kind events: the column of the event's id, used when it holds a ULID (otherwise a
    /// deterministic id is derived, so a re-import adds nothing). Not `id`: that is the
    /// person's.
    #[arg(long, default_value = crate::convert::event::EVENT_ID_COLUMN)]
    pub event_id_column: String,
    /// Confirm a destructive --action (delete, suppress) without being asked.
    #[arg(long)]
    pub yes: bool,
    /// Refuse a destructive --action that would touch more people (or devices) than this.
    #[arg(long, default_value_t = confirm::DEFAULT_MAX_DELETES)]
    pub max_deletes: u64,
    /// --kind merges: refuse a file of more merges than this.
    #[arg(long, default_value_t = confirm::DEFAULT_MAX_MERGES)]
    pub max_merges: u64,
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
    #[arg(long, default_value_t = config::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Most requests per second, all workers and retries together: the ceiling of the
    /// closed-loop rate, which follows the server's 429s (0 = no ceiling; at most 100000).
    #[arg(long, default_value_t = config::DEFAULT_RATE)]
    pub rate: u32,
    /// Pace at exactly --rate (open loop, every worker paused on a 429), for a known limit.
    #[arg(long)]
    pub fixed_rate: bool,
    /// Seconds a request keeps retrying 429s while nothing at all is acknowledged (1 to 86400).
    #[arg(long, default_value_t = config::DEFAULT_THROTTLE_BUDGET_S)]
    pub throttle_budget: f64,
    /// Retries after the first attempt, for 408/429/5xx/timeouts/connection errors (0 to 100).
    #[arg(long, default_value_t = config::DEFAULT_MAX_RETRIES)]
    pub max_retries: usize,
    /// Timeout of one request, in seconds (0.001 to 3600).
    #[arg(long, default_value_t = config::DEFAULT_TIMEOUT_S)]
    pub timeout: f64,
    /// Batch request body cap in bytes (1000 to 500000).
    #[arg(long, default_value_t = config::DEFAULT_BATCH_BYTES)]
    pub batch_bytes: usize,
    /// Cap on operations per batch request (1 to 100000).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Send a partial batch after this many milliseconds without a new row.
    #[arg(long, default_value_t = config::DEFAULT_FLUSH_MS, hide = true)]
    pub flush_ms: u64,
    /// First backoff delay in milliseconds.
    #[arg(long, default_value_t = config::DEFAULT_BACKOFF_BASE_MS, hide = true)]
    pub backoff_base_ms: u64,
    /// Largest backoff delay in milliseconds.
    #[arg(long, default_value_t = config::DEFAULT_BACKOFF_CAP_MS, hide = true)]
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
    /// After the run, POST an alert here (Slack incoming-webhook JSON: `text`, plus the whole
    /// `summary`); see --notify-on. Shown only redacted. Also read from CIO_IMPORT_NOTIFY.
    #[arg(
        long,
        value_name = "URL",
        env = "CIO_IMPORT_NOTIFY",
        hide_env_values = true
    )]
    pub notify: Option<String>,
    /// When to alert: on failure (the run failed, or more rows failed than
    /// --notify-threshold), or always.
    #[arg(long, value_enum, default_value = "failure")]
    pub notify_on: super::NotifyOnArg,
    /// Failed rows tolerated before an alert: a number of rows (10) or a percentage of the
    /// rows read (0.5%) [default: 0, any failed row].
    #[arg(long, value_name = "N|PCT%", value_parser = super::alert::parse_threshold)]
    pub notify_threshold: Option<crate::report::notify::Threshold>,
    /// Seconds one attempt to deliver the alert may take (one retry at most).
    #[arg(long, default_value_t = 5.0, hide = true)]
    pub notify_timeout: f64,
    /// An input without rows (empty, or a header only) is not a failure.
    #[arg(long)]
    pub allow_empty: bool,
    /// Fail (exit 2) when the input has fewer rows; on a regular file, before anything is sent.
    #[arg(long, value_name = "N")]
    pub min_rows: Option<u64>,
    /// With --state: stop (exit 2) before sending anything when more than PCT% of the people
    /// the state file knows for this workspace would change or vanish (a regular file only).
    #[arg(long, value_name = "PCT")]
    pub max_change: Option<f64>,
    /// With --state: people the state file knows who are absent from this complete export are
    /// deleted, suppressed, or get ATTRIBUTE cleared ("", or VALUE), once every row was read.
    /// Needs --yes (or the count typed on a terminal); capped by --max-removals.
    #[arg(long, value_name = "delete|suppress|clear:ATTRIBUTE[=VALUE]")]
    pub mirror: Option<crate::mirror::MirrorMode>,
    /// --mirror: remove nobody when more would go than N people or PCT% of the people known
    /// (default 5%).
    #[arg(long, value_name = "N|PCT%", requires = "mirror")]
    pub max_removals: Option<crate::mirror::RemovalCap>,
    /// With --state: the name of this input's feed; --mirror only removes people this feed
    /// sent (default: the file name without directory, extensions and digits, so dated
    /// exports are one feed: export-2026-11-30.csv is "export").
    #[arg(long, value_name = "NAME", value_parser = crate::feed::parse)]
    pub feed: Option<String>,
    /// With --dry-run and --state: print the preview (the diff) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl ImportArgs {
    /// Checked settings: every flag goes through [`config::ImportConfigBuilder`].
    /// `endpoint_override` replaces the region/endpoint (for `--sandbox`).
    pub fn config(
        &self,
        credentials: Option<Credentials>,
        endpoint_override: Option<reqwest::Url>,
    ) -> Result<ImportConfig, UsageError> {
        let input = self.input.as_ref().ok_or(UsageError::MissingInput)?;
        let builder = ImportConfig::builder(Input::from_arg(input))
            .read(self.read.options())
            .drop_unmapped(self.drop_unmapped)
            .update_only(self.update_only)
            .clear_empty(self.empty == EmptyArg::Clear)
            .action(self.action.into())
            .objects(config::ObjectChoice {
                kind_given: self.kind.is_some(),
                kind: self.kind.and_then(KindArg::object_kind),
                type_id: self.object_type_id.clone(),
                id_column: self.object_id_column.clone(),
            })
            .events((self.kind == Some(KindArg::Events)).then(|| EventOptions {
                name_column: self.name_column.clone(),
                timestamp_column: self.timestamp_column.clone(),
                id_column: self.event_id_column.clone(),
                workspace: String::new(),
            }))
            .devices(self.kind == Some(KindArg::Devices))
            .merges(self.kind == Some(KindArg::Merges))
            .api(self.api.into());
        let builder = match (endpoint_override, &self.endpoint) {
            (Some(url), _) => builder.resolved_endpoint(url),
            (None, Some(e)) => builder.endpoint(e.clone()),
            (None, None) => builder.region(self.region.into()),
        };
        let progress = if !self.quiet && std::io::stderr().is_terminal() && !super::log::json() {
            ProgressMode::Bar
        } else {
            ProgressMode::Log
        };
        let cfg = builder
            .credentials(credentials)
            .ca_cert(self.ca_cert.clone())
            .concurrency(self.concurrency)
            .rate(self.rate)
            .fixed_rate(self.fixed_rate)
            .throttle_budget_secs(self.throttle_budget)
            .max_retries(self.max_retries)
            .timeout_secs(self.timeout)
            .backoff_base(Duration::from_millis(self.backoff_base_ms))
            .backoff_cap(Duration::from_millis(self.backoff_cap_ms))
            .batch_bytes(self.batch_bytes)
            .batch_size(self.batch_size)
            .flush_after(Duration::from_millis(self.flush_ms))
            .rejects(self.rejects.clone())
            .errors(self.errors.clone())
            .summary(self.summary.clone())
            .dry_run(self.dry_run)
            .state(self.state.clone())
            .full(self.full)
            .nightly(crate::guard::Nightly {
                allow_empty: self.allow_empty,
                min_rows: self.min_rows,
                max_change: self.max_change,
                feed: self.feed.clone(),
                mirror: self
                    .mirror
                    .clone()
                    .map(|mode| crate::mirror::MirrorSettings {
                        mode,
                        cap: self.max_removals.unwrap_or_default(),
                        confirmed: if self.yes { u64::MAX } else { 0 },
                    }),
            })
            .progress(progress)
            .build()?;
        Ok(cfg)
    }
}

/// `--print-mapping`: the mapping of `--preset` or `--mapping`, as a file to edit.
fn print_mapping(read: &ReadArgs) -> anyhow::Result<u8> {
    match config::load_mapping(read.mapping_source().as_ref())? {
        Some((text, _)) => {
            print!("{text}");
            Ok(exit::SUCCESS)
        }
        None => Err(UsageError::PrintMappingWithoutMapping.into()),
    }
}

/// Before delete, suppress or unsuppress: counts the people the file names and shows the
/// first few; for a destructive action, refuses (nothing sent) unless `--yes`, the typed
/// count on a terminal, or `--dry-run`, and above `--max-deletes`.
async fn preview_and_confirm(args: &ImportArgs, cfg: &ImportConfig) -> Result<(), UsageError> {
    let action = cfg.convert.action;
    let destructive = confirm::is_destructive(action);
    // Unsuppress needs no confirmation: it is previewed only by a dry run of a file.
    let previewed = destructive || (args.dry_run && matches!(cfg.input, Input::Path(_)));
    if matches!(action, Action::Identify | Action::Event | Action::AddDevice) || !previewed {
        return Ok(());
    }
    let cap = match action {
        Action::Merge => args.max_merges,
        _ => args.max_deletes,
    };
    let preview = {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || confirm::preview(&cfg, cap))
            .await
            .map_err(|e| UsageError::Confirmation(e.to_string()))?
            .map_err(UsageError::Confirmation)?
    };
    say(Level::Info, &preview.describe(&cfg.input.display()));
    if !destructive {
        return Ok(());
    }
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    match confirm::decide(&preview, args.yes, args.dry_run, cap, terminal) {
        Decision::Proceed => Ok(()),
        Decision::Refuse(why) => Err(UsageError::Confirmation(why)),
        Decision::Ask => {
            eprint!(
                "type the number of {} ({}) to {} them, anything else to stop: ",
                preview.noun.1,
                preview.people,
                action.as_str()
            );
            let mut answer = String::new();
            let read = tokio::task::spawn_blocking(move || {
                std::io::stdin().read_line(&mut answer).map(|_| answer)
            })
            .await;
            match read {
                Ok(Ok(a)) if confirm::confirms(&a, preview.people) => Ok(()),
                _ => Err(UsageError::Confirmation(format!(
                    "{} not confirmed: nothing was sent",
                    match action {
                        Action::Merge => "--kind merges".to_string(),
                        _ => format!("--action {}", action.as_str()),
                    }
                ))),
            }
        }
    }
}

/// Before sending events: counts those within the last 72 hours (they may trigger
/// campaigns) and warns on stderr.
async fn warn_recent_events(cfg: &ImportConfig) {
    if cfg.convert.event.is_none() {
        return;
    }
    let counted = {
        let cfg = cfg.clone();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        tokio::task::spawn_blocking(move || crate::convert::event::count_recent(&cfg, now)).await
    };
    match counted {
        Ok(Ok(r)) => {
            if let Some(w) = r.warning(&cfg.input.display()) {
                say(Level::Warn, &w);
            }
        }
        Ok(Err(e)) => say(
            Level::Warn,
            &format!("warning: events within the last 72 hours not counted: {e}"),
        ),
        Err(e) => say(
            Level::Warn,
            &format!("warning: events within the last 72 hours not counted: {e}"),
        ),
    }
}

/// Runs an import (or prints the mapping); the exit code is the run's. With `--notify`, a
/// run that cannot start is alerted too (`job` names it in the alert).
pub(super) async fn run(
    args: ImportArgs,
    env_credentials: Option<Credentials>,
) -> anyhow::Result<u8> {
    if args.print_mapping {
        return print_mapping(&args.read);
    }
    let notifier = super::alert::notifier(&args)?;
    let job = args
        .input
        .as_ref()
        .map(|p| Input::from_arg(p).display())
        .unwrap_or_default();
    let ran = run_import(args, env_credentials, notifier.as_ref()).await;
    if let (Err(e), Some(n)) = (&ran, &notifier) {
        super::alert::not_started(n, &job, &e.to_string()).await;
    }
    ran
}

/// [`run`] once the alert is set up: alerts after the run itself.
async fn run_import(
    args: ImportArgs,
    env_credentials: Option<Credentials>,
    notifier: Option<&crate::report::notify::Notifier>,
) -> anyhow::Result<u8> {
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
        let s = Sandbox::start(cfg, bind, None)
            .await
            .map_err(|e| anyhow!("cannot start the sandbox: {e}"))?;
        say(
            Level::Info,
            &format!(
                "sandbox: a local stand-in for the Track API at {} (50 ms latency, 100 req/s limit, 2% injected 5xx)",
                s.url
            ),
        );
        let url = reqwest::Url::parse(&s.url).ok();
        sandbox = Some(s);
        (Some(creds), url)
    } else {
        (env_credentials, None)
    };
    let mut cfg = args.config(credentials, endpoint)?;
    preview_and_confirm(&args, &cfg).await?;
    let make_record = |cfg: &config::ImportConfig| {
        let mut record = RunRecord::start(cfg);
        record.options.mapping = args.read.mapping_source().map(|m| match m {
            config::MappingSource::Preset(name) => format!("preset:{name}"),
            config::MappingSource::File(path) => path.display().to_string(),
        });
        record.options.notify = notifier.map(|n| n.shown());
        record
    };
    let before = match super::nightly::before_run(&args, &mut cfg, &stop).await {
        Ok(next) => next,
        Err(e) => {
            // A setup error of the nightly checks (an unconfirmed mirror, a preview that
            // failed): the summary says so, never last night's figures.
            if let Some(path) = &cfg.summary {
                let mut no_state = cfg.clone();
                no_state.state = None;
                let s = super::nightly::stopped_before(
                    &no_state,
                    make_record(&cfg),
                    crate::report::summary::Ending::Aborted,
                    e.to_string(),
                );
                if let Err(w) = s.write_json(path) {
                    say(Level::Error, &format!("error: {w}"));
                }
            }
            return Err(e.into());
        }
    };
    let guarded = match before {
        super::nightly::Next::Exit(code) => return Ok(code),
        super::nightly::Next::Guarded(why) => Some(why),
        super::nightly::Next::Run => None,
    };
    let summary_path = cfg.summary.clone();
    let input_for_save = match &cfg.input {
        Input::Path(p) => Some(p.clone()),
        Input::Stdin => None,
    };
    let record = make_record(&cfg);
    if guarded.is_none() {
        warn_recent_events(&cfg).await;
    }
    // The start is logged once the input is open and its header checked: a run that cannot
    // start says why first (then its `aborted` line).
    let mut summary = match guarded {
        Some(why) => {
            super::run_log::started(&record);
            super::nightly::stopped_before(
                &cfg,
                record,
                crate::report::summary::Ending::Guarded,
                why,
            )
        }
        None => crate::engine::run_recorded_then(cfg, stop, record, super::run_log::started).await,
    };
    if let Some(path) = &summary_path {
        if let Err(e) = summary.write_json(path) {
            say(Level::Error, &format!("error: {e}"));
            summary.exit_code = summary.exit_code.max(exit::USAGE_OR_IO);
        }
    }
    super::run_log::finished(&summary);
    if let Some(s) = sandbox {
        let path = sandbox::default_save_path(input_for_save.as_deref());
        match s.save_people(&path) {
            Ok(n) => say(
                Level::Info,
                &format!("sandbox: {n} people received; saved to {}", path.display()),
            ),
            Err(e) => say(
                Level::Warn,
                &format!(
                    "sandbox: could not save the people to {}: {e}",
                    path.display()
                ),
            ),
        }
        s.shutdown().await;
    }
    if let Some(n) = notifier {
        super::alert::after_run(n, &summary).await;
    }
    Ok(summary.exit_code)
}
