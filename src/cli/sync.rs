//! `cio-import sync --config job.toml`: a whole import job in one file, for cron.
//!
//! The keys of a job file are the options of `import` (`rate = 50` is `--rate 50`, `full =
//! true` is `--full`; `_` or `-` alike), found in the one declaration of those options,
//! [`ImportArgs`], so there is no list of keys to keep in step. The file becomes the same
//! command line `import` takes, and is checked by the same rules. Paths (every option whose
//! value is a path) are relative to the job file's folder. Three keys are the job's own:
//! `reports_dir`, `site_id_env` and `api_key_env`.

use super::{Cli, Command, ImportArgs};
use crate::secret::{Credentials, API_KEY_ENV, SITE_ID_ENV};
use clap::builder::ValueHint;
use clap::{Args, CommandFactory, Parser};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Options of `sync`.
#[derive(Args, Debug)]
pub struct SyncArgs {
    /// The job file.
    #[arg(long)]
    pub config: PathBuf,
    /// Preview the job: with its --state, the diff (new, changed, unchanged, to remove);
    /// nothing is sent and no run is recorded.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the preview as JSON on stdout.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
}

/// Where the rejects, errors and summary files go, named after the job file
/// (`nightly.toml` -> `nightly.rejects.csv`, `nightly.errors.csv`, `nightly.summary.json`), so
/// that jobs sharing the folder keep apart; a report named by its own key wins.
const REPORTS_DIR: &str = "reports_dir";
/// The name of the variable holding the site id (default `CUSTOMERIO_SITE_ID`).
const SITE_ID_ENV_KEY: &str = "site_id_env";
/// The name of the variable holding the API key (default `CUSTOMERIO_TRACK_API_KEY`).
const API_KEY_ENV_KEY: &str = "api_key_env";
/// Options of `import` that are no part of a job.
const NOT_IN_JOBS: &[&str] = &["print_mapping", "help", "version"];

/// A job file, turned into an `import` command line.
#[derive(Debug)]
pub struct Job {
    /// The job file.
    pub path: PathBuf,
    /// `cio-import import ...`: the job as a command line.
    pub args: Vec<String>,
    /// The variable holding the site id, if the job names one.
    pub site_id_env: Option<String>,
    /// The variable holding the API key, if the job names one.
    pub api_key_env: Option<String>,
}

/// A job file that cannot be run; every message names the file, and the line where it can.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The file cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The job file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML (the message shows the line and column).
    #[error("{path}: {source}")]
    Toml {
        /// The job file.
        path: String,
        /// The parser's message.
        source: toml::de::Error,
    },
    /// A key that is neither an option of `import` nor one of the job's own.
    #[error(
        "{path}: line {line}: unknown key `{key}`: a job file takes the options of \
`cio-import import` (see its --help; `_` or `-`): {known}"
    )]
    UnknownKey {
        /// The job file.
        path: String,
        /// Where the key is.
        line: usize,
        /// The key.
        key: String,
        /// The keys there are, comma-separated.
        known: String,
    },
    /// A value of the wrong kind for its key.
    #[error("{path}: line {line}: `{key}` {expected}")]
    BadValue {
        /// The job file.
        path: String,
        /// Where the key is.
        line: usize,
        /// The key.
        key: String,
        /// What it takes (`takes true or false`).
        expected: &'static str,
    },
    /// No input file.
    #[error("{path}: no `input`: name the file to import, e.g. input = \"customers.csv\"")]
    NoInput {
        /// The job file.
        path: String,
    },
    /// The options, read as `import`'s command line, are refused (the message names the option).
    #[error("{path}: {}", clap_message(source))]
    Options {
        /// The job file.
        path: String,
        /// The command line parser's complaint.
        source: clap::Error,
    },
    /// The variables named in the job file are not set.
    #[error("{path}: set the variables {site_var} and {key_var} (named in the job file)")]
    NoCredentials {
        /// The job file.
        path: String,
        /// The site id's variable.
        site_var: String,
        /// The API key's variable.
        key_var: String,
    },
}

/// clap's message without its own `error: ` prefix.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    text.strip_prefix("error: ")
        .unwrap_or(&text)
        .trim_end()
        .to_string()
}

/// The line (from 1) of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl Job {
    /// Reads a job file; errors name the file, line and key.
    pub fn load(path: &Path) -> Result<Job, JobError> {
        let text = std::fs::read_to_string(path).map_err(|source| JobError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Job::parse(&text, path)
    }

    /// A job from the text of `job_file`: its keys checked against `import`'s options, paths
    /// resolved against the file's folder, and reports in `reports_dir` named after it.
    pub fn parse(text: &str, job_file: &Path) -> Result<Job, JobError> {
        let path = job_file.display().to_string();
        let table: std::collections::BTreeMap<String, toml::Spanned<toml::Value>> =
            toml::from_str(text).map_err(|source| JobError::Toml {
                path: path.clone(),
                source,
            })?;
        let mut entries: Vec<_> = table.into_iter().collect();
        entries.sort_by_key(|(_, v)| v.span().start);
        let base = job_file.parent().unwrap_or(Path::new("."));
        let resolve = |p: &str| -> String {
            if p == "-" || Path::new(p).is_absolute() {
                p.to_string()
            } else {
                base.join(p).display().to_string()
            }
        };
        let mut cli = Cli::command();
        cli.build();
        let import = cli
            .find_subcommand("import")
            .expect("the import subcommand exists");
        let options: Vec<&clap::Arg> = import
            .get_arguments()
            .filter(|a| !a.is_global_set() && !NOT_IN_JOBS.contains(&a.get_id().as_str()))
            .collect();
        let mut job = Job {
            path: job_file.to_path_buf(),
            args: vec!["cio-import".into(), "import".into()],
            site_id_env: None,
            api_key_env: None,
        };
        let mut input: Option<String> = None;
        let mut format: Option<String> = None;
        let mut reports_dir: Option<String> = None;
        let mut given: HashSet<String> = HashSet::new();
        for (key, value) in entries {
            let line = line_at(text, value.span().start);
            let value = value.into_inner();
            let id = key.replace('-', "_");
            let bad = |expected| JobError::BadValue {
                path: path.clone(),
                line,
                key: key.clone(),
                expected,
            };
            let own = match id.as_str() {
                REPORTS_DIR => Some(&mut reports_dir),
                SITE_ID_ENV_KEY => Some(&mut job.site_id_env),
                API_KEY_ENV_KEY => Some(&mut job.api_key_env),
                _ => None,
            };
            if let Some(slot) = own {
                match value {
                    toml::Value::String(s) => *slot = Some(s),
                    _ => return Err(bad("takes a string")),
                }
                continue;
            }
            let Some(arg) = options.iter().find(|a| a.get_id().as_str() == id) else {
                let mut known: Vec<&str> = options
                    .iter()
                    .filter(|a| !a.is_hide_set())
                    .map(|a| a.get_id().as_str())
                    .collect();
                known.extend([REPORTS_DIR, SITE_ID_ENV_KEY, API_KEY_ENV_KEY]);
                return Err(JobError::UnknownKey {
                    path,
                    line,
                    key,
                    known: known.join(", "),
                });
            };
            given.insert(id.clone());
            if !arg.get_action().takes_values() {
                match value {
                    toml::Value::Boolean(true) => job
                        .args
                        .push(format!("--{}", arg.get_long().unwrap_or(&id))),
                    toml::Value::Boolean(false) => {}
                    _ => return Err(bad("takes true or false")),
                }
                continue;
            }
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                _ => return Err(bad("takes a string or a number")),
            };
            let is_path = matches!(
                arg.get_value_hint(),
                ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath
            );
            let text = if is_path { resolve(&text) } else { text };
            if id == "format" {
                format = Some(text.clone());
            }
            match arg.get_long() {
                Some(long) => job.args.push(format!("--{long}={text}")),
                None => input = Some(text),
            }
        }
        let Some(input) = input else {
            return Err(JobError::NoInput { path });
        };
        if let Some(dir) = reports_dir {
            let dir = PathBuf::from(resolve(&dir));
            let stem = crate::report::summary::input_stem(Some(job_file));
            let ext = match format.as_deref() {
                Some("jsonl") => "jsonl",
                Some(_) => "csv",
                None if input.contains(".jsonl") || input.contains(".ndjson") => "jsonl",
                None => "csv",
            };
            for (option, name) in [
                ("rejects", format!("{stem}.rejects.{ext}")),
                ("errors", format!("{stem}.errors.csv")),
                ("summary", format!("{stem}.summary.json")),
            ] {
                if !given.contains(option) {
                    job.args
                        .push(format!("--{option}={}", dir.join(name).display()));
                }
            }
        }
        if !given.contains("quiet") {
            job.args.push("--quiet".into());
        }
        job.args.push("--".into());
        job.args.push(input);
        Ok(job)
    }

    /// The job's options, parsed and checked as `import`'s command line.
    pub fn import_args(&self) -> Result<ImportArgs, JobError> {
        let options = |source| JobError::Options {
            path: self.path.display().to_string(),
            source,
        };
        match Cli::try_parse_from(&self.args).map(|c| c.command) {
            Ok(Command::Import(a)) => Ok(*a),
            Ok(_) => unreachable!("a job is an import command line"),
            Err(e) => Err(options(e)),
        }
    }
}

/// Runs the job.
pub(super) async fn run(args: &SyncArgs) -> anyhow::Result<u8> {
    let mut job = Job::load(&args.config)?;
    // `sync --dry-run` and `--json` join the job's own options (before the `--` and the input).
    let at = job.args.len().saturating_sub(2);
    for (on, flag) in [(args.dry_run, "--dry-run"), (args.json, "--json")] {
        if on && !job.args.iter().any(|a| a == flag) {
            job.args.insert(at, flag.into());
        }
    }
    let import = job.import_args()?;
    let site_var = job.site_id_env.as_deref().unwrap_or(SITE_ID_ENV);
    let key_var = job.api_key_env.as_deref().unwrap_or(API_KEY_ENV);
    let credentials = Credentials::from_env_names(site_var, key_var);
    if credentials.is_none() && !import.dry_run && !import.sandbox {
        let e = JobError::NoCredentials {
            path: job.path.display().to_string(),
            site_var: site_var.into(),
            key_var: key_var.into(),
        };
        if let Ok(Some(n)) = super::alert::notifier(&import) {
            super::alert::not_started(&n, &job.path.display().to_string(), &e.to_string()).await;
        }
        return Err(e.into());
    }
    super::import::run(import, credentials).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(text: &str) -> Job {
        Job::parse(text, Path::new("/etc/cio/nightly.toml")).expect("a good job")
    }

    #[test]
    fn a_job_becomes_an_import_command_line() {
        let job = job(
            "input = \"data/customers.csv\"\nstate = \"state.db\"\nreports_dir = \"/var/log/cio\"\nrate = 50\nfull = true\n",
        );
        assert_eq!(&job.args[..2], ["cio-import", "import"]);
        assert_eq!(
            job.args.last().map(String::as_str),
            Some("/etc/cio/data/customers.csv")
        );
        let joined = job.args.join(" ");
        assert!(joined.contains("--state=/etc/cio/state.db"), "{joined}");
        assert!(
            joined.contains("--rejects=/var/log/cio/nightly.rejects.csv"),
            "{joined}"
        );
        assert!(
            joined.contains("--rate=50") && joined.contains("--full"),
            "{joined}"
        );
        let args = job.import_args().expect("a valid command line");
        assert_eq!(args.rate, 50);
        assert!(args.full && args.quiet);
        assert_eq!(args.state, Some(PathBuf::from("/etc/cio/state.db")));
    }

    #[test]
    fn every_option_of_import_is_a_key_with_underscores_or_dashes() {
        let args = job(
            "input = \"c.jsonl\"\nidentify_by = \"email\"\nid-column = \"mail\"\nbatch_size = 10\n\
             timeout = 1.5\ndry_run = true\nmapping = \"m.toml\"\nempty = \"clear\"\nsummary = \"s.json\"\n\
             reports_dir = \"r\"\n",
        )
        .import_args()
        .expect("a valid command line");
        assert_eq!(args.read.id_column.as_deref(), Some("mail"));
        assert!(matches!(
            args.read.identify_by,
            Some(super::super::IdentifyBy::Email)
        ));
        assert_eq!(args.batch_size, Some(10));
        assert_eq!(args.timeout, 1.5);
        assert!(args.dry_run);
        assert_eq!(args.read.mapping, Some(PathBuf::from("/etc/cio/m.toml")));
        // A report named by its own key wins over reports_dir; the others go there.
        assert_eq!(args.summary, Some(PathBuf::from("/etc/cio/s.json")));
        assert_eq!(
            args.rejects,
            Some(PathBuf::from("/etc/cio/r/nightly.rejects.jsonl"))
        );
    }

    #[test]
    fn the_sample_job_file_is_a_valid_job() {
        let job = Job::parse(
            include_str!("../../samples/job.toml"),
            Path::new("samples/job.toml"),
        )
        .expect("the sample parses");
        let args = job.import_args().expect("a valid command line");
        assert_eq!(args.input, Some(PathBuf::from("samples/customers.csv")));
        assert_eq!(
            args.summary,
            Some(PathBuf::from("samples/./job.summary.json"))
        );
        assert_eq!(job.site_id_env.as_deref(), Some("CUSTOMERIO_SITE_ID"));
    }

    #[test]
    fn a_value_starting_with_a_dash_stays_a_value() {
        let args = job("input = \"-\"\nformat = \"csv\"\nid_column = \"-id\"\ndelimiter = \"-\"\n")
            .import_args()
            .expect("a valid command line");
        assert_eq!(args.read.id_column.as_deref(), Some("-id"));
        assert_eq!(args.read.delimiter.as_deref(), Some("-"));
        assert_eq!(args.input, Some(PathBuf::from("-")));
    }

    #[test]
    fn mistakes_name_the_line_and_key() {
        let e = Job::parse("input = \"x.csv\"\nrat = 5\n", Path::new("job.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("job.toml") && e.contains("`rat`") && e.contains("line 2"),
            "{e}"
        );
        assert!(e.contains("rate") && e.contains("reports_dir"), "{e}");
        for (text, needle) in [
            (
                "input = \"x.csv\"\n\nfull = \"yes\"\n",
                "line 3: `full` takes true or false",
            ),
            (
                "input = \"x.csv\"\nrate = [1]\n",
                "line 2: `rate` takes a string or a number",
            ),
            (
                "input = \"x.csv\"\nprint_mapping = true\n",
                "unknown key `print_mapping`",
            ),
            ("rate = 5\n", "no `input`"),
            ("input = \"x.csv\"\nrate = \"fast\"\n", "--rate"),
        ] {
            let e = Job::parse(text, Path::new("job.toml"))
                .and_then(|j| j.import_args().map(|_| ()))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("job.toml: ") && e.contains(needle), "{e}");
        }
    }
}
