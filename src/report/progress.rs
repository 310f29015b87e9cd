//! Progress: an indicatif bar on a terminal, else a status line in the log every 10 seconds.

use crate::tally::Tally;
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// A live bar on stderr.
    Bar,
    /// A status line in the log every 10 seconds (cron, pipes, `--quiet`).
    Log,
}

/// Where the reader is, for the progress display.
#[derive(Clone)]
pub struct InputProgress {
    /// Bytes of the input file read so far.
    pub bytes_read: Arc<AtomicU64>,
    /// The file size, when known.
    pub total_bytes: Option<u64>,
}

fn status(t: &Tally, started: Instant) -> String {
    let g = Tally::get;
    let done = t.done();
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let rate = t.rate();
    let rate = if rate.is_finite() {
        format!("{rate:.1}/s")
    } else {
        "no limit".to_string()
    };
    format!(
        "{} rows done ({:.0}/s): {} sent, {} failed, {} retrying, {} requests, {} 429s, rate {}",
        done,
        done as f64 / secs,
        g(&t.sent),
        t.failed(),
        g(&t.retrying),
        g(&t.requests),
        g(&t.answers_429),
        rate
    )
}

/// Runs until `done` fires, then clears the bar.
pub async fn run(
    mode: ProgressMode,
    tally: Arc<Tally>,
    input: InputProgress,
    mut done: tokio::sync::oneshot::Receiver<()>,
) {
    let started = Instant::now();
    match mode {
        ProgressMode::Bar => {
            let bar = match input.total_bytes {
                Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            };
            let template = if input.total_bytes.is_some() {
                "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} ETA {eta} | {msg}"
            } else {
                "{spinner} [{elapsed_precise}] {bytes} read | {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            loop {
                // The reader runs ahead of the senders by the channel's buffer: show the share
                // of the file whose rows are finished, not merely read.
                let read = Tally::get(&input.bytes_read);
                let rows = Tally::get(&tally.rows).max(1);
                let done_share = (tally.done() as f64 / rows as f64).min(1.0);
                bar.set_position((read as f64 * done_share) as u64);
                bar.set_message(status(&tally, started));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = &mut done => break,
                }
            }
            bar.finish_and_clear();
        }
        ProgressMode::Log => loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(10)) => {
                    let bytes = Tally::get(&input.bytes_read);
                    let of = input.total_bytes.map(|t| format!(" of {}", HumanBytes(t))).unwrap_or_default();
                    tracing::info!("{} ({} read{of})", status(&tally, started), HumanBytes(bytes));
                }
                _ = &mut done => break,
            }
        },
    }
}
