//! Logging: tracing's formatter with timestamps on stderr, as text or (`--log-format json`)
//! one JSON object per line for log collectors; and [`say`], for the messages the commands
//! print to a person (the summary table, the sandbox's lines), which become log events in
//! JSON so that every line of stderr stays one object.

use clap::ValueEnum;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

/// `--log-format`
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Lines for people, each with its time and level.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `message`, fields).
    Json,
}

static JSON: AtomicBool = AtomicBool::new(false);

/// Whether logs are JSON lines.
pub(super) fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Installs the subscriber: `-v` debug, `-vv` trace, RUST_LOG overrides.
pub(super) fn init(verbose: u8, format: LogFormat) {
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => {
            JSON.store(true, Ordering::Relaxed);
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .try_init()
        }
    };
}

/// How much a message to a person matters (its level as a log event).
#[derive(Clone, Copy, Debug)]
pub(super) enum Level {
    /// Information.
    Info,
    /// Something to look at.
    Warn,
    /// A failure.
    Error,
}

/// Prints a message for a person on stderr as it is (text logs), or logs it as one event
/// per message (JSON logs).
pub(super) fn say(level: Level, message: &str) {
    if !json() {
        eprintln!("{}", message.trim_end_matches('\n'));
        return;
    }
    let message = message.trim_end_matches('\n');
    match level {
        Level::Info => tracing::info!("{message}"),
        Level::Warn => tracing::warn!("{message}"),
        Level::Error => tracing::error!("{message}"),
    }
}
