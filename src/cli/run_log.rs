//! The log lines that frame a run: its start (run id, version, input, destination) and its
//! end (outcome, counts, exit code), with the log's timestamp, so that a cron log tells runs
//! apart. In text logs the summary table follows the end line; in JSON logs the lines carry
//! the same as fields (`run_id`, `rows`, `sent`, ...) for the collector to index.

use super::log::json;
use crate::report::summary::Summary;
use crate::run_record::RunRecord;

/// Logs the start of a run: called once its input is open and its header checked, so that a
/// run that cannot start prints its reason first.
pub(super) fn started(r: &RunRecord) {
    let input = r.input_file.path.as_deref().unwrap_or("<stdin>");
    let site = r.destination.site_id.as_deref().unwrap_or("-");
    let message = format!(
        "run {} started: cio-import {}, {input} to site {site} at {}",
        r.run_id, r.version, r.destination.host
    );
    if json() {
        tracing::info!(
            run_id = %r.run_id,
            version = %r.version,
            input = %input,
            host = %r.destination.host,
            site_id = %site,
            dry_run = r.options.dry_run,
            "{message}"
        );
    } else {
        tracing::info!("{message}");
    }
}

/// Logs the end of a run and, in text logs, prints the summary table.
pub(super) fn finished(s: &Summary) {
    let run_id = s.run.as_ref().map(|r| r.run_id.as_str()).unwrap_or("-");
    let message = format!(
        "run {run_id} {}: {} rows, {} sent, {} skipped, {} failed, exit {}",
        s.outcome,
        s.rows,
        s.sent,
        s.skipped,
        s.failed(),
        s.exit_code
    );
    if !json() {
        if s.stopped_before_reading() {
            // A run that could not start: the reason and the hint first, then the end line
            // (kept for cron logs).
            eprint!("{}", s.table());
            tracing::info!("{message}");
        } else {
            tracing::info!("{message}");
            eprint!("{}", s.table());
        }
        return;
    }
    let sha256 = s
        .run
        .as_ref()
        .and_then(|r| r.input_file.sha256.as_deref())
        .unwrap_or("-");
    tracing::info!(
        run_id = %run_id,
        outcome = %s.outcome,
        exit_code = s.exit_code,
        rows = s.rows,
        sent = s.sent,
        skipped = s.skipped,
        failed = s.failed(),
        elapsed_s = s.elapsed_s,
        input_sha256 = %sha256,
        stop_reason = s.stop_reason.as_deref().unwrap_or(""),
        "{message}"
    );
}
