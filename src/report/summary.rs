//! The end-of-run summary: a JSON file for machines and a short table on stderr.

use super::{create_private, ReportError};
use crate::tally::Tally;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How a run ended. The summary's `outcome` and the exit code ([`crate::exit::code`]) are
/// both read from it, so they cannot disagree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ending {
    /// The input was read to its end (some rows may have failed).
    #[default]
    Completed,
    /// Stopped by a local problem: the settings, the input, a report or the state file.
    Aborted,
    /// Stopped by a fatal answer of the destination (credentials, region).
    AbortedByApi,
    /// Stopped by Ctrl-C or SIGTERM.
    Interrupted,
    /// Stopped by a nightly guard (an empty input, `--min-rows`, `--max-change`, the mirror's
    /// `--max-removals` or confirmation): see [`crate::guard`].
    Guarded,
}

impl Ending {
    /// The summary's `outcome`: `completed`, `aborted` or `interrupted`.
    pub fn outcome(self) -> &'static str {
        match self {
            Ending::Completed => "completed",
            Ending::Aborted | Ending::AbortedByApi => "aborted",
            Ending::Interrupted => "interrupted",
            Ending::Guarded => "stopped by a guard",
        }
    }
}

/// What a summary says of a run before any count: its input, its API, whether it is a dry run.
#[derive(Clone, Debug)]
pub struct Heading {
    /// The input file (or `<stdin>`).
    pub input: String,
    /// `batch` or `v1`.
    pub api: &'static str,
    /// Whether nothing is sent on purpose.
    pub dry_run: bool,
}

/// Every figure of a run. `rows = sent + skipped + invalid + rejected + exhausted + not_attempted`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    /// The run's identity, times, input figures, destination and options (flattened:
    /// `run_id`, `started_at`, `finished_at`, `version`, `input_file`, `destination`,
    /// `options`); `None` only for a summary made outside a run.
    #[serde(flatten)]
    pub run: Option<crate::run_record::RunRecord>,
    /// The input file (or `<stdin>`).
    pub input: String,
    /// `batch` or `v1`.
    pub api: String,
    /// Whether nothing was sent on purpose.
    pub dry_run: bool,
    /// Rows read.
    pub rows: u64,
    /// Rows acknowledged by the API.
    pub sent: u64,
    /// Rows not sent on purpose (unchanged, or a dry run).
    pub skipped: u64,
    /// Rows that failed validation.
    pub invalid: u64,
    /// Rows the API refused.
    pub rejected: u64,
    /// Rows whose retries ran out.
    pub exhausted: u64,
    /// Rows not sent because the run stopped.
    pub not_attempted: u64,
    /// HTTP requests, every attempt counted.
    pub requests: u64,
    /// Attempts after the first.
    pub retries: u64,
    /// Person operations in acknowledged batch requests.
    pub operations: u64,
    /// Mean rows per acknowledged batch request.
    pub mean_batch_rows: f64,
    /// Extra requests spent halving refused batches.
    pub bisect_requests: u64,
    /// Answers 429 (too many requests).
    #[serde(rename = "429s")]
    pub answers_429: u64,
    /// Attempts after a 429 (part of `retries`; they do not spend `--max-retries`).
    pub retries_429: u64,
    /// The pacing rate at the end, requests per second (`None`: no limit, or nothing sent).
    pub rate_final: Option<f64>,
    /// The lowest pacing rate of the run (`None`: never limited, or nothing sent).
    pub rate_min: Option<f64>,
    /// Seconds held by `Retry-After` or climbing back after 429 cuts (with `--fixed-rate`:
    /// seconds every worker was paused by 429s).
    pub throttled_s: f64,
    /// Wall time of the run.
    pub elapsed_s: f64,
    /// Rows per second over the run.
    pub rows_per_s: f64,
    /// Whether the accounting identity holds (it always should).
    pub accounted: bool,
    /// `completed`, `aborted` or `interrupted`.
    pub outcome: String,
    /// Why the run stopped early, if it did.
    pub stop_reason: Option<String>,
    /// The last input line read, when reading stopped before the end.
    pub read_stopped_at_line: Option<u64>,
    /// The rejects file, if one was written.
    pub rejects_file: Option<String>,
    /// The errors file, if one was written.
    pub errors_file: Option<String>,
    /// The process exit code.
    pub exit_code: u8,
    /// With `--mirror`: the removals of people absent from the export (they are not rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<crate::mirror::MirrorReport>,
    /// How the run ended (`outcome` and `exit_code` follow from it).
    #[serde(skip)]
    pub ending: Ending,
}

impl Summary {
    /// Fills the counts from a tally.
    pub fn counts_from(t: &Tally) -> Summary {
        let g = Tally::get;
        let batches = g(&t.batches);
        let operations = g(&t.operations);
        let mut s = Summary {
            run: None,
            input: String::new(),
            api: String::new(),
            dry_run: false,
            rows: g(&t.rows),
            sent: g(&t.sent),
            skipped: g(&t.skipped),
            invalid: g(&t.invalid),
            rejected: g(&t.rejected),
            exhausted: g(&t.exhausted),
            not_attempted: g(&t.not_attempted),
            requests: g(&t.requests),
            retries: g(&t.retries),
            operations,
            mean_batch_rows: if batches == 0 {
                0.0
            } else {
                round2(operations as f64 / batches as f64)
            },
            bisect_requests: g(&t.bisect_requests),
            answers_429: g(&t.answers_429),
            retries_429: g(&t.retries_429),
            rate_final: finite_rate(t.rate()),
            rate_min: finite_rate(t.rate_min()),
            throttled_s: 0.0,
            elapsed_s: 0.0,
            rows_per_s: 0.0,
            accounted: false,
            outcome: "completed".into(),
            stop_reason: None,
            read_stopped_at_line: None,
            rejects_file: None,
            errors_file: None,
            exit_code: 0,
            mirror: None,
            ending: Ending::Completed,
        };
        s.accounted =
            s.rows == s.sent + s.skipped + s.invalid + s.rejected + s.exhausted + s.not_attempted;
        s
    }

    /// The counts so far of a run under `heading` that has taken `elapsed`, with its rate.
    pub fn of(t: &Tally, heading: &Heading, elapsed: Duration) -> Summary {
        let mut s = Summary::counts_from(t);
        s.input = heading.input.clone();
        s.api = heading.api.to_string();
        s.dry_run = heading.dry_run;
        s.elapsed_s = elapsed.as_secs_f64();
        s.rows_per_s = if s.elapsed_s > 0.0 {
            (s.rows as f64 / s.elapsed_s).round()
        } else {
            0.0
        };
        s
    }

    /// Says how the run ended and why: sets `outcome`, `stop_reason` and the exit code.
    pub fn end(&mut self, ending: Ending, reason: Option<String>) {
        self.ending = ending;
        self.outcome = ending.outcome().to_string();
        self.stop_reason = reason;
        self.exit_code = crate::exit::code(self);
    }

    /// Rows that did not make it.
    pub fn failed(&self) -> u64 {
        self.invalid + self.rejected + self.exhausted + self.not_attempted
    }

    /// Writes the JSON file (owner-only).
    pub fn write_json(&self, path: &Path) -> Result<(), ReportError> {
        let mut f = create_private(path).map_err(ReportError::at(path))?;
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        f.write_all(text.as_bytes())
            .and_then(|_| f.write_all(b"\n"))
            .and_then(|_| super::sync_file(&f))
            .map_err(ReportError::at(path))
    }

    /// Whether the run stopped before reading a row or sending a request: a setup error (a
    /// missing file, a header without the identifier, a wrong option). Its table would be all
    /// zeros, so [`Summary::table`] gives the reason alone.
    pub fn stopped_before_reading(&self) -> bool {
        self.ending == Ending::Aborted
            && self.rows == 0
            && self.requests == 0
            && self.read_stopped_at_line.is_none()
            && self.stop_reason.is_some()
    }

    /// The human table; for a run stopped before its first row, the reason first and no counts.
    pub fn table(&self) -> String {
        if self.stopped_before_reading() {
            return format!(
                "error: {}
cio-import stopped before reading any row: nothing was sent
",
                self.stop_reason.as_deref().unwrap_or_default()
            );
        }
        let mut out = String::new();
        let line =
            |out: &mut String, k: &str, v: String| out.push_str(&format!("  {k:<15}{v:>12}\n"));
        out.push_str(&format!(
            "cio-import {} ({}{}): {}\n",
            self.outcome,
            self.api,
            if self.dry_run { ", dry run" } else { "" },
            self.input
        ));
        line(&mut out, "rows read", self.rows.to_string());
        line(&mut out, "sent", self.sent.to_string());
        line(&mut out, "skipped", self.skipped.to_string());
        line(&mut out, "invalid", self.invalid.to_string());
        line(&mut out, "rejected", self.rejected.to_string());
        line(&mut out, "exhausted", self.exhausted.to_string());
        line(&mut out, "not attempted", self.not_attempted.to_string());
        line(&mut out, "requests", self.requests.to_string());
        line(&mut out, "retries", self.retries.to_string());
        if self.api == "batch" {
            line(&mut out, "operations", self.operations.to_string());
            line(
                &mut out,
                "mean batch rows",
                format!("{:.1}", self.mean_batch_rows),
            );
            if self.bisect_requests > 0 {
                line(
                    &mut out,
                    "bisect requests",
                    self.bisect_requests.to_string(),
                );
            }
        }
        if !self.dry_run {
            let rate = |r: Option<f64>| r.map_or("no limit".to_string(), |r| format!("{r:.1}/s"));
            line(&mut out, "429s", self.answers_429.to_string());
            line(&mut out, "rate final", rate(self.rate_final));
            line(&mut out, "rate min", rate(self.rate_min));
            line(&mut out, "throttled", format!("{:.1}s", self.throttled_s));
        }
        line(&mut out, "elapsed", format!("{:.2}s", self.elapsed_s));
        line(&mut out, "rows/s", format!("{:.0}", self.rows_per_s));
        out.push_str(&format!(
            "  {} = {} sent + {} skipped + {} invalid + {} rejected + {} exhausted + {} not attempted{}\n",
            self.rows,
            self.sent,
            self.skipped,
            self.invalid,
            self.rejected,
            self.exhausted,
            self.not_attempted,
            if self.accounted { "" } else { "  (MISMATCH: please report this bug)" }
        ));
        if let Some(m) = &self.mirror {
            out.push_str(&m.table());
        }
        if let Some(r) = &self.stop_reason {
            out.push_str(&format!("  stopped: {r}\n"));
        }
        if let Some(l) = self.read_stopped_at_line {
            out.push_str(&format!(
                "  reading stopped after line {l}: rows after it were not read\n"
            ));
        }
        if let Some(p) = &self.rejects_file {
            out.push_str(&format!(
                "  failed rows:   {p}  (fix and import this file as it is)\n"
            ));
        }
        if let Some(p) = &self.errors_file {
            out.push_str(&format!("  why they failed: {p}\n"));
        }
        out
    }
}

/// A pacing rate for the summary: rounded to 0.1; `None` when unlimited or never set.
fn finite_rate(r: f64) -> Option<f64> {
    (r.is_finite() && r > 0.0).then(|| (r * 10.0).round() / 10.0)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A file name without `.gz` and its extension (`jobs/nightly.toml` -> `nightly`), or `stdin`:
/// what a job's reports in its `reports_dir` are named after.
pub fn input_stem(input: Option<&Path>) -> String {
    input
        .and_then(|p| p.file_name())
        .map(|n| {
            let n = n.to_string_lossy().to_string();
            let n = n.strip_suffix(".gz").map(str::to_string).unwrap_or(n);
            match n.rfind('.') {
                Some(i) if i > 0 => n[..i].to_string(),
                _ => n,
            }
        })
        .unwrap_or_else(|| "stdin".to_string())
}

/// The name files that belong to one input start with: its whole file name, extensions kept
/// (`data/customers.csv.gz` -> `customers.csv.gz`), so `customers.csv`, `customers.jsonl`
/// and `customers.csv.gz` never share one; `stdin` for standard input.
pub fn input_name(input: Option<&Path>) -> String {
    input
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "stdin".to_string())
}

/// The path of a file that belongs to one input: `<folder of the input>/<file name>.<suffix>`,
/// so that `a/customers.csv` and `b/customers.csv`, or `customers.csv` and `customers.jsonl`,
/// never share one. Stdin, and inputs that are not regular files (a pipe such as
/// `/dev/fd/63`), have no folder of their own: theirs go in the current folder.
pub fn beside_input(input: Option<&Path>, suffix: &str) -> PathBuf {
    let name = format!("{}.{suffix}", input_name(input));
    let folder = input
        .filter(|p| !std::fs::metadata(p).is_ok_and(|m| !m.is_file()))
        .and_then(Path::parent);
    match folder {
        Some(f) => f.join(name),
        None => PathBuf::from(name),
    }
}

/// Default report paths: `<file name>.rejects.<ext>` and `<file name>.errors.csv`, next to
/// the input (`customers.csv` -> `customers.csv.rejects.csv`); `stdin.rejects.<ext>` and
/// `stdin.errors.csv` in the current folder for stdin.
pub fn default_paths(input: Option<&Path>, ext: &str) -> (PathBuf, PathBuf) {
    (
        beside_input(input, &format!("rejects.{ext}")),
        beside_input(input, "errors.csv"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_report_names_follow_the_input() {
        assert_eq!(
            default_paths(Some(Path::new("data/customers.csv.gz")), "csv"),
            (
                "data/customers.csv.gz.rejects.csv".into(),
                "data/customers.csv.gz.errors.csv".into()
            )
        );
        assert_eq!(
            default_paths(Some(Path::new("customers.csv")), "csv"),
            (
                "customers.csv.rejects.csv".into(),
                "customers.csv.errors.csv".into()
            )
        );
        assert_ne!(
            default_paths(Some(Path::new("a/customers.csv")), "csv"),
            default_paths(Some(Path::new("b/customers.csv")), "csv")
        );
        let csv = default_paths(Some(Path::new("customers.csv")), "csv");
        let jsonl = default_paths(Some(Path::new("customers.jsonl")), "jsonl");
        let gz = default_paths(Some(Path::new("customers.csv.gz")), "csv");
        assert!(csv.1 != jsonl.1 && csv.1 != gz.1 && csv.0 != gz.0);
        assert_eq!(
            default_paths(None, "jsonl"),
            ("stdin.rejects.jsonl".into(), "stdin.errors.csv".into())
        );
        assert_eq!(input_stem(Some(Path::new("jobs/nightly.toml"))), "nightly");
    }
}
