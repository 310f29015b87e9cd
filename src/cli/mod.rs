//! The command line: the clap types, one file per subcommand, logging, signals, and the
//! dispatch. Each subcommand turns its flags into checked settings of the library
//! ([`crate::config::ImportConfig`], [`crate::sandbox::SandboxConfig`],
//! [`crate::inspect::InspectOptions`], [`crate::verify::VerifyConfig`]) before anything runs: no clap type goes further.
//! Errors end here: printed once, as `error: ...`, with the exit code of [`crate::exit`].

mod alert;
mod docs;
mod import;
mod inspect;
mod inspect_kinds;
mod log;
mod nightly;
mod presets;
mod read;
mod run_log;
mod sandbox;
mod state;
mod sync;
mod verify;

pub use alert::NotifyOnArg;
pub use docs::CompletionsArgs;
pub use import::{ActionArg, ApiArg, EmptyArg, ImportArgs, KindArg, RegionArg};
pub use inspect::InspectArgs;
pub use log::LogFormat;
pub use read::{FormatArg, IdentifyBy, ReadArgs};
pub use sandbox::SandboxArgs;
pub use state::StateArgs;
pub use sync::{Job, JobError, SyncArgs};
pub use verify::VerifyArgs;

use crate::config::ConfigError;
use crate::exit;
use crate::secret::Credentials;
use crate::stop::Stop;
use clap::{Parser, Subcommand};
use std::time::Duration;

/// Load people into Customer.io through the Track API, from CSV or JSONL.
#[derive(Parser, Debug)]
#[command(name = "cio-import", version, after_help = exit::HELP)]
pub struct Cli {
    /// More log detail (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log lines as text (with their time) or as one JSON object per line (log collectors).
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
// Parsed once per process: the size of `import`'s options does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Import people from a CSV or JSONL file (or stdin).
    #[command(after_help = exit::HELP)]
    Import(Box<ImportArgs>),
    /// Run the local Track API sandbox in the foreground.
    Sandbox(SandboxArgs),
    /// Show what a --state ledger knows: people, last runs, rows that failed last time.
    State(StateArgs),
    /// List the built-in mappings for exports of other platforms.
    Presets,
    /// Look at a file before importing it: columns, types, identifier coverage, problems.
    Inspect(InspectArgs),
    /// Run an import job described in a TOML file (for cron); see samples/job.toml.
    #[command(after_help = exit::HELP)]
    Sync(SyncArgs),
    /// Print a shell completion script: `cio-import completions bash > ~/.local/share/bash-completion/completions/cio-import`.
    Completions(CompletionsArgs),
    /// Print the man page (roff): `cio-import man > ~/.local/share/man/man1/cio-import.1`.
    Man,
    /// Read people back through the App API and compare them with the file, attribute by
    /// attribute (needs CUSTOMERIO_APP_API_KEY).
    #[command(after_help = exit::VERIFY_HELP)]
    Verify(VerifyArgs),
}

/// A usage problem of the command line that is not a setting out of range, reported before
/// anything runs.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// A setting the library refuses.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `import` without a file (possible only with `--print-mapping` otherwise).
    #[error("the input file is missing")]
    MissingInput,
    /// `--print-mapping` without a mapping to print.
    #[error("--print-mapping needs --preset NAME or --mapping FILE")]
    PrintMappingWithoutMapping,
    /// A destructive `--action` that may not go on (not confirmed, above `--max-deletes`,
    /// from stdin), or whose preview could not be made: nothing was sent.
    #[error("{0}")]
    Confirmation(String),
    /// `sandbox` with only one of `--site-id` and `--api-key`.
    #[error("give both the site id and the API key to require, or neither to accept any")]
    SandboxCredentials,
    /// A `--notify` URL that cannot be used (shown redacted).
    #[error(transparent)]
    Notify(#[from] crate::report::notify::NotifyError),
    /// `--outage` without its two numbers.
    #[error("--outage START_S LEN_S: two non-negative numbers")]
    Outage,
    /// A `--limit-schedule` that cannot be read.
    #[error(
        "--limit-schedule '{value}': {why}; give SECS:REQ_PER_S steps, e.g. 0:100,20:40,40:100"
    )]
    LimitSchedule {
        /// The schedule given.
        value: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Installs Ctrl-C / SIGTERM handling: the first stops the run gracefully, a second exits now.
fn watch_signals(stop: Stop) {
    tokio::spawn(async move {
        wait_for_signal().await;
        log::say(log::Level::Warn, "\ninterrupted: finishing requests in flight (5 s at most) and writing the reports (Ctrl-C again to quit at once)");
        stop.interrupt();
        wait_for_signal().await;
        log::say(log::Level::Warn, "interrupted again: quitting now");
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

/// Parses the process's arguments; on a mistake (or `--help`, `--version`) prints clap's
/// message and gives the exit code instead.
pub fn parse() -> Result<Cli, u8> {
    Cli::try_parse().map_err(|e| {
        let _ = e.print();
        match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                exit::SUCCESS
            }
            _ => exit::USAGE_OR_IO,
        }
    })
}

/// Runs a parsed command line and returns the exit code.
pub fn run(cli: Cli) -> u8 {
    log::init(cli.verbose, cli.log_format);
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
        let ran = match cli.command {
            Command::Import(args) => import::run(*args, Credentials::from_env()).await,
            Command::Presets => Ok(presets::run()),
            Command::Inspect(args) => inspect::run(&args),
            Command::Sandbox(args) => sandbox::run(args).await,
            Command::State(args) => state::run(&args),
            Command::Sync(args) => sync::run(&args).await,
            Command::Completions(args) => Ok(docs::completions(&args)),
            Command::Man => Ok(docs::man()),
            Command::Verify(args) => verify::run(args).await,
        };
        ran.unwrap_or_else(|e| {
            log::say(log::Level::Error, &format!("error: {e}"));
            exit::USAGE_OR_IO
        })
    });
    // Do not wait for lingering tasks (a slow sandbox request, a blocked stdin read).
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}
