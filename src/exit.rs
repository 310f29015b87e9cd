//! The process exit codes, documented in one place (README and `--help` list the same), and
//! the one function that chooses a run's code from how it ended.

use crate::report::summary::{Ending, Summary};

/// Every row was sent (or skipped as unchanged).
pub const SUCCESS: u8 = 0;
/// Usage, configuration or I/O error: nothing or not everything could be run.
pub const USAGE_OR_IO: u8 = 1;
/// The run finished, but some rows failed (invalid, rejected, exhausted, not attempted).
pub const ROWS_FAILED: u8 = 2;
/// `verify`: something differs, or someone is missing in Customer.io (the same number as
/// [`ROWS_FAILED`]: the run finished, and some rows did not make it).
pub const DIFFERENCES: u8 = 2;
/// A nightly guard stopped the run (an empty input, `--min-rows`, `--max-change`,
/// `--max-removals`): the same code as failed rows, since both need a person to look.
pub const GUARD: u8 = 2;
/// The run was aborted by a fatal API answer (401/403: credentials or region).
pub const FATAL_API: u8 = 3;
/// The run was interrupted (Ctrl-C / SIGINT / SIGTERM).
pub const INTERRUPTED: u8 = 130;

/// The text `--help` shows after the options.
pub const HELP: &str = "Exit codes:
  0    every row was sent (or skipped as unchanged)
  1    usage, configuration or I/O error
  2    the run finished but some rows (or mirror removals) failed (see the rejects and
       errors files), or a guard stopped it (an empty input, --min-rows, --max-change,
       --max-removals)
  3    aborted by a fatal API error (401/403: check site id, API key and region)
  130  interrupted (Ctrl-C); reports and summary are still written";

/// The text `verify --help` shows after the options.
pub const VERIFY_HELP: &str = "Exit codes:
  0    every person checked matches the source
  1    usage, configuration or I/O error, or some people could not be checked
  2    some attribute differs, or someone is missing in Customer.io (see the differences file)
  3    the App API refused the key (401/403: check CUSTOMERIO_APP_API_KEY and --region)
  130  interrupted (Ctrl-C); the differences found so far are still written";

/// The exit code of an import run: from how it ended and whether every row is accounted for
/// (a count that does not balance is a bug, never a success).
pub fn code(s: &Summary) -> u8 {
    match s.ending {
        _ if !s.accounted => USAGE_OR_IO,
        Ending::Completed if s.failed() > 0 => ROWS_FAILED,
        Ending::Completed if s.mirror.as_ref().is_some_and(|m| m.failed > 0) => ROWS_FAILED,
        Ending::Guarded => GUARD,
        Ending::Completed => SUCCESS,
        Ending::Aborted => USAGE_OR_IO,
        Ending::AbortedByApi => FATAL_API,
        Ending::Interrupted => INTERRUPTED,
    }
}
