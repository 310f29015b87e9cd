//! The alert options of `import` and `sync` (`--notify URL`, `--notify-on`,
//! `--notify-threshold`) turned into a [`Notifier`], and the alert sent after a run (or
//! instead of it, when it could not start). A failed alert is logged; the run's exit code
//! stays the run's.

use super::log::{say, Level};
use super::ImportArgs;
use crate::report::notify::{Notifier, NotifyOn, Reason, Threshold};
use crate::report::summary::Summary;
use clap::ValueEnum;
use std::time::Duration;

/// `--notify-on`
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NotifyOnArg {
    /// When the run failed (aborted, fatal API error, interrupted, could not start) or more
    /// rows failed than --notify-threshold.
    #[default]
    Failure,
    /// After every run.
    Always,
}

/// Parses `--notify-threshold`.
pub(super) fn parse_threshold(s: &str) -> Result<Threshold, String> {
    s.parse()
}

/// The notifier the options ask for (`None` without `--notify`).
pub(super) fn notifier(args: &ImportArgs) -> Result<Option<Notifier>, super::UsageError> {
    let Some(url) = &args.notify else {
        return Ok(None);
    };
    let on = match args.notify_on {
        NotifyOnArg::Failure => NotifyOn::Failure,
        NotifyOnArg::Always => NotifyOn::Always,
    };
    let timeout = if args.notify_timeout.is_finite() && args.notify_timeout > 0.0 {
        Duration::from_secs_f64(args.notify_timeout.min(60.0))
    } else {
        crate::report::notify::DEFAULT_TIMEOUT
    };
    Notifier::new(url, on, args.notify_threshold.unwrap_or_default(), timeout)
        .map(Some)
        .map_err(super::UsageError::Notify)
}

/// After a run: sends the alert if the summary calls for one, and says what happened.
pub(super) async fn after_run(notifier: &Notifier, summary: &Summary) {
    match notifier.after_run(summary).await {
        Ok(None) => {
            tracing::debug!("no alert due (the run succeeded, failed rows within the threshold)")
        }
        Ok(Some(reason)) => {
            let why = match reason {
                Reason::Failed => "the run failed",
                Reason::RowsFailed => "rows (or mirror removals) failed above the threshold",
                Reason::Always => "--notify-on always",
            };
            say(
                Level::Info,
                &format!("alert sent to {} ({why})", notifier.shown()),
            );
        }
        Err(e) => say(Level::Warn, &format!("warning: {e}")),
    }
}

/// A run that could not start: sends the alert (always due) and says what happened.
pub(super) async fn not_started(notifier: &Notifier, job: &str, error: &str) {
    match notifier.not_started(job, error).await {
        Ok(()) => say(
            Level::Info,
            &format!(
                "alert sent to {} (the run could not start)",
                notifier.shown()
            ),
        ),
        Err(e) => say(Level::Warn, &format!("warning: {e}")),
    }
}
