//! `cio-import verify FILE`: reads people back through the App API and compares them with the
//! file. It reads the file with the import's own options ([`ReadArgs`], `--empty`,
//! `--drop-unmapped`, checked by the same [`ImportConfig`] builder), so the values compared are
//! those `import` sends; its own options say where to read back from and what to check.

use super::import::{ApiArg, EmptyArg, RegionArg};
use super::read::ReadArgs;
use super::{watch_signals, UsageError};
use crate::config::{self, ConfigError, ImportConfig};
use crate::ledger::Destination;
use crate::report::summary::beside_input;
use crate::secret::{ApiKey, SITE_ID_ENV};
use crate::source::{Format, Input};
use crate::stop::Stop;
use crate::track::app::{self, APP_API_KEY_ENV};
use crate::track::{self, Region};
use crate::verify::{self, VerifyConfig};
use anyhow::anyhow;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Options of `verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The file that was imported (.csv, .tsv, .jsonl, .ndjson, optionally .gz).
    pub input: PathBuf,
    /// How to read it: the same options as `import`.
    #[command(flatten)]
    pub read: ReadArgs,
    /// As for `import`: keep only the columns the mapping names.
    #[arg(long)]
    pub drop_unmapped: bool,
    /// As for `import`: the rows were sent update-only (a person missing is then named as
    /// such: Customer.io changes nothing for someone who does not exist, and answers 200).
    #[arg(long)]
    pub update_only: bool,
    /// As for `import`: what an empty cell did (clear: expect the attribute to be gone or "").
    #[arg(long, value_enum, default_value = "ignore")]
    pub empty: EmptyArg,
    /// As for `import`: the API the rows were sent with. A row `import` finds invalid for it
    /// (a batch operation over 32,000 bytes...) is counted as invalid, not checked.
    #[arg(long, value_enum, default_value = "batch")]
    pub api: ApiArg,
    /// Check this many people drawn at random, 1 or more (default: everyone the file names).
    #[arg(long)]
    pub sample: Option<u64>,
    /// The seed of --sample: the same seed draws the same people (default: printed).
    #[arg(long, requires = "sample")]
    pub seed: Option<u64>,
    /// Check only the people the latest run recorded in this ledger (needs CUSTOMERIO_SITE_ID,
    /// the workspace the import ran against).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Customer.io region of the workspace (App API: api.customer.io or api-eu.customer.io).
    #[arg(long, value_enum, default_value = "us")]
    pub region: RegionArg,
    /// App API base URL instead of the region's, e.g. the sandbox's (http:// only for loopback).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Trust this extra root certificate (PEM).
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Most App API requests per second (the ceiling of the closed-loop rate; the App API's
    /// limit is 10).
    #[arg(long, default_value_t = app::RATE_LIMIT)]
    pub rate: u32,
    /// Retries after the first attempt, for 5xx/timeouts/connection errors (0 to 100).
    #[arg(long, default_value_t = config::DEFAULT_MAX_RETRIES)]
    pub max_retries: usize,
    /// Seconds a request keeps retrying 429s while nothing at all is read (1 to 86400).
    #[arg(long, default_value_t = config::DEFAULT_THROTTLE_BUDGET_S)]
    pub throttle_budget: f64,
    /// Timeout of one request, in seconds.
    #[arg(long, default_value_t = config::DEFAULT_TIMEOUT_S)]
    pub timeout: f64,
    /// First backoff delay in milliseconds.
    #[arg(long, default_value_t = config::DEFAULT_BACKOFF_BASE_MS, hide = true)]
    pub backoff_base_ms: u64,
    /// Largest backoff delay in milliseconds.
    #[arg(long, default_value_t = config::DEFAULT_BACKOFF_CAP_MS, hide = true)]
    pub backoff_cap_ms: u64,
    /// Where the differences go: row, line, identifier, attribute, difference, both values
    /// (default: <input file name>.differences.csv next to the input).
    #[arg(long)]
    pub differences: Option<PathBuf>,
    /// Where the rows that differ go, verbatim, to import again with the same options
    /// (default: <input file name>.differing.<csv|jsonl> next to the input).
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl VerifyArgs {
    fn import_config(
        &self,
        rejects: Option<PathBuf>,
        differences: Option<PathBuf>,
    ) -> Result<ImportConfig, UsageError> {
        let cfg = ImportConfig::builder(Input::from_arg(&self.input))
            .read(self.read.options())
            .drop_unmapped(self.drop_unmapped)
            .clear_empty(self.empty == EmptyArg::Clear)
            .update_only(self.update_only)
            .api(self.api.into())
            .state(self.state.clone())
            .dry_run(true)
            .ca_cert(self.ca_cert.clone())
            .rate(self.rate)
            .max_retries(self.max_retries)
            .throttle_budget_secs(self.throttle_budget)
            .timeout_secs(self.timeout)
            .backoff_base(Duration::from_millis(self.backoff_base_ms))
            .backoff_cap(Duration::from_millis(self.backoff_cap_ms))
            .rejects(rejects)
            .errors(differences)
            .build()
            .map_err(|e| match e {
                // The differences file is the import's errors file under another option.
                ConfigError::ReportPath {
                    option,
                    path,
                    problem,
                } => ConfigError::ReportPath {
                    option: if option == "--errors" {
                        "--differences"
                    } else {
                        option
                    },
                    path,
                    problem: if problem == "that is also the errors file" {
                        "that is also the differences file"
                    } else {
                        problem
                    },
                },
                e => e,
            })?;
        Ok(cfg)
    }

    /// Checked settings; `key` is the App API key, `site_id` the workspace (for `--state`).
    pub fn config(
        &self,
        key: Option<ApiKey>,
        site_id: Option<String>,
    ) -> Result<VerifyConfig, anyhow::Error> {
        if self.sample == Some(0) {
            return Err(anyhow!(
                "--sample 0 checks nobody: give 1 or more people, or leave --sample out to check everyone"
            ));
        }
        let input = Input::from_arg(&self.input);
        let shown = match &input {
            Input::Path(p) => Some(p.clone()),
            Input::Stdin => None,
        };
        let first = self.import_config(None, None)?;
        let ext = match first.format {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        };
        let rejects = self
            .rejects
            .clone()
            .unwrap_or_else(|| beside_input(shown.as_deref(), &format!("differing.{ext}")));
        let differences = self
            .differences
            .clone()
            .unwrap_or_else(|| beside_input(shown.as_deref(), "differences.csv"));
        let import = self.import_config(Some(rejects), Some(differences))?;
        let (app_base, track_base) = match &self.endpoint {
            Some(e) => {
                let url = track::check_endpoint(e).map_err(|m| anyhow!(m))?;
                (url.clone(), url)
            }
            None => {
                let region = Region::from(self.region);
                let parse = |s: &str| reqwest::Url::parse(s).map_err(|e| anyhow!("{s}: {e}"));
                (parse(app::base_url(region))?, parse(region.base_url())?)
            }
        };
        let key = key.ok_or_else(|| {
            anyhow!(
                "no App API key: set {APP_API_KEY_ENV} (Settings > API Credentials > App API Keys in \
Customer.io; the sandbox shows its own)"
            )
        })?;
        let state = match &self.state {
            Some(path) => {
                let site = site_id.ok_or_else(|| {
                    anyhow!(
                        "--state needs {SITE_ID_ENV}: the workspace whose ledger records to check"
                    )
                })?;
                Some((path.clone(), Destination::new(&site, &track_base)))
            }
            None => None,
        };
        Ok(VerifyConfig {
            import,
            app_base,
            key,
            sample: self.sample,
            seed: self.seed.unwrap_or_else(verify::fresh_seed),
            state,
        })
    }
}

/// Runs a verify; the exit code is the run's.
pub(super) async fn run(args: VerifyArgs) -> anyhow::Result<u8> {
    let key = std::env::var(APP_API_KEY_ENV)
        .ok()
        .filter(|k| !k.is_empty())
        .map(ApiKey::new);
    let site = std::env::var(SITE_ID_ENV).ok().filter(|s| !s.is_empty());
    let cfg = args.config(key, site)?;
    if let Some(n) = cfg.sample {
        eprintln!(
            "verify: checking a sample of {n} people (--seed {} draws the same ones again)",
            cfg.seed
        );
    }
    let stop = Stop::new();
    watch_signals(stop.clone());
    let summary = verify::run(cfg, stop).await?;
    eprint!("{}", summary.table());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(summary.exit_code)
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use clap::Parser;

    #[test]
    fn verify_takes_the_import_reading_options() {
        let cli = Cli::try_parse_from([
            "cio-import",
            "verify",
            "people.csv",
            "--identify-by",
            "email",
            "--preset",
            "mailchimp",
            "--sample",
            "10",
            "--seed",
            "7",
        ])
        .expect("parses");
        let Command::Verify(a) = cli.command else {
            panic!("not verify")
        };
        assert_eq!((a.sample, a.seed), (Some(10), Some(7)));
        assert_eq!(a.read.preset.as_deref(), Some("mailchimp"));
        assert!(Cli::try_parse_from(["cio-import", "verify", "p.csv", "--seed", "1"]).is_err());
    }
}
