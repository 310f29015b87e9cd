//! The ledger's run history: each run's record (run id, start, the summary with the same
//! run record fields as `--summary`), the trend of its counts, and its failed rows across the
//! last runs, for `cio-import state` (a table) and `cio-import state --json` (for scripts).
//!
//! Ledgers written before runs had a run id get the two columns (`run_uid`, `record`) when a
//! run next opens them; their old runs show their number (`#3`) instead of a run id.

use super::{io, Ledger, LedgerError};
use crate::run_record::RunRecord;
use rusqlite::{params, Connection};
use serde::Serialize;
use std::path::Path;

/// The columns runs gained with run records, and their types.
const RUN_COLUMNS: &[(&str, &str)] = &[("run_uid", "TEXT"), ("record", "TEXT")];

/// How many failed rows of one run `state --json` lists (the count is always whole).
pub const FAILURES_PER_RUN_JSON: usize = 100;
/// How many failed rows of one run the text of `state` lists.
const FAILURES_PER_RUN_TEXT: usize = 10;

/// Adds the run record columns to a ledger that lacks them (an older version's).
pub(super) fn add_run_columns(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    let have = run_columns(conn).map_err(|e| io(path)(e.to_string()))?;
    for (name, ty) in RUN_COLUMNS {
        if !have.iter().any(|c| c == name) {
            conn.execute_batch(&format!("ALTER TABLE runs ADD COLUMN {name} {ty}"))
                .map_err(|e| io(path)(e.to_string()))?;
        }
    }
    Ok(())
}

fn run_columns(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare("SELECT name FROM pragma_table_info('runs')")?;
    let cols = st.query_map([], |r| r.get(0))?.collect();
    cols
}

impl Ledger {
    /// Records this run's record (run id, start, options) on its row at once, so that a run
    /// killed before its end still shows its run id; the summary follows at its end.
    pub fn record_run(&self, record: &RunRecord) -> Result<(), LedgerError> {
        let conn = super::connect(&self.path)?;
        let json = serde_json::to_string(record).unwrap_or_default();
        conn.execute(
            "UPDATE runs SET run_uid = ?1, record = ?2 WHERE id = ?3",
            params![record.run_id, json, self.run_id],
        )
        .map_err(|e| io(&self.path)(e.to_string()))?;
        Ok(())
    }
}

/// A failed row of a run, as recorded.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FailedRow {
    /// The row number (from 1, header excluded).
    pub row: u64,
    /// The line an editor shows.
    pub line: u64,
    /// The person's identifier, when the row had one.
    pub identifier: Option<String>,
    /// `invalid`, `rejected`, `exhausted` or `not_attempted`.
    pub class: String,
    /// The HTTP status, when the API answered.
    pub status: Option<u16>,
    /// Why.
    pub message: String,
}

/// One run of the history.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RunEntry {
    /// The run's number in this ledger.
    pub number: i64,
    /// The run id (a ULID) of the summary; `None` for runs of older versions.
    pub run_id: Option<String>,
    /// When it started, RFC 3339 in UTC.
    pub started_at: String,
    /// When it ended, RFC 3339 in UTC; `None` if it never did (killed).
    pub finished_at: Option<String>,
    /// The input as named.
    pub input: String,
    /// The exit code; `None` if it never ended.
    pub exit_code: Option<u8>,
    /// Rows read.
    pub rows: Option<u64>,
    /// Rows acknowledged.
    pub sent: Option<u64>,
    /// Rows skipped.
    pub skipped: Option<u64>,
    /// Rows that failed (invalid, rejected, exhausted, not attempted).
    pub failed: Option<u64>,
    /// `completed`, `aborted`, `interrupted`, `stopped by a guard`; `running` while a run holds
    /// the state file's lock and this is its run, or `killed` when it never ended.
    pub outcome: String,
    /// Failed rows recorded in the ledger.
    pub failures_total: u64,
    /// The first of them (at most [`FAILURES_PER_RUN_JSON`]).
    pub failures: Vec<FailedRow>,
    /// The summary as written at the end (the same JSON as `--summary`), or the run record
    /// written at the start for a run that never ended.
    pub summary: Option<serde_json::Value>,
}

/// A person whose rows failed in more than one of the runs shown.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Repeated {
    /// The identifier.
    pub identifier: String,
    /// In how many of the runs shown.
    pub runs: u64,
    /// The latest reason.
    pub last_message: String,
}

/// The last runs of a ledger, newest first.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct History {
    /// Runs recorded in all.
    pub runs_total: u64,
    /// The last runs, newest first.
    pub runs: Vec<RunEntry>,
    /// People failing in two runs or more of those shown, most runs first.
    pub repeated_failures: Vec<Repeated>,
}

/// Whether a run holds the lock of the state file at `path` (`PATH.lock`, see
/// [`super::Ledger::open`]). Never creates the lock file.
pub(crate) fn lock_held(path: &Path) -> bool {
    let lock = std::path::PathBuf::from(format!("{}.lock", path.display()));
    match std::fs::File::open(&lock) {
        Ok(f) => matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The last `n` runs of the ledger open as `conn` (read-only is enough).
pub fn history(conn: &Connection, path: &Path, n: usize) -> Result<History, LedgerError> {
    let q = |e: rusqlite::Error| io(path)(e.to_string());
    let cols = run_columns(conn).map_err(q)?;
    let uid = if cols.iter().any(|c| c == "run_uid") {
        "run_uid, record"
    } else {
        "NULL, NULL"
    };
    let runs_total: i64 = conn
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .map_err(q)?;
    let mut st = conn
        .prepare(&format!(
            "SELECT id, started_at, ended_at, input, summary, exit_code, {uid} FROM runs \
             ORDER BY id DESC LIMIT ?1"
        ))
        .map_err(q)?;
    type Row = (
        i64,
        i64,
        Option<i64>,
        String,
        Option<String>,
        Option<i64>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = st
        .query_map([n as i64], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .map_err(q)?
        .collect::<Result<_, _>>()
        .map_err(q)?;
    let mut fail_count = conn
        .prepare("SELECT count(*) FROM failures WHERE run_id = ?1")
        .map_err(q)?;
    let mut fail_rows = conn
        .prepare(
            "SELECT row, line, identifier, class, status, message FROM failures \
             WHERE run_id = ?1 ORDER BY row LIMIT ?2",
        )
        .map_err(q)?;
    let mut runs = Vec::new();
    // While another process holds the state file's lock, its newest unfinished run is going
    // on, not killed.
    let mut running = lock_held(path);
    for (number, start, end, input, summary, code, run_uid, record) in rows {
        let summary: Option<serde_json::Value> =
            summary.and_then(|s| serde_json::from_str(&s).ok());
        let g = |k: &str| summary.as_ref().and_then(|v| v[k].as_u64());
        let (rows, sent, skipped) = (g("rows"), g("sent"), g("skipped"));
        let failed = summary.as_ref().map(|_| {
            ["invalid", "rejected", "exhausted", "not_attempted"]
                .iter()
                .map(|k| g(k).unwrap_or(0))
                .sum()
        });
        let outcome = summary
            .as_ref()
            .and_then(|v| v["outcome"].as_str().map(str::to_string))
            .unwrap_or_else(|| {
                if std::mem::take(&mut running) {
                    "running".to_string()
                } else {
                    "killed".to_string()
                }
            });
        if summary.is_some() {
            // The newest run ended: no older one can be going on.
            running = false;
        }
        let run_id = run_uid.or_else(|| {
            summary
                .as_ref()
                .and_then(|v| v["run_id"].as_str().map(str::to_string))
        });
        let failures_total: i64 = fail_count.query_row([number], |r| r.get(0)).map_err(q)?;
        let failures = fail_rows
            .query_map(params![number, FAILURES_PER_RUN_JSON as i64], |r| {
                Ok(FailedRow {
                    row: r.get::<_, i64>(0)?.max(0) as u64,
                    line: r.get::<_, i64>(1)?.max(0) as u64,
                    identifier: r.get(2)?,
                    class: r.get(3)?,
                    status: r.get::<_, Option<i64>>(4)?.map(|s| s.clamp(0, 999) as u16),
                    message: r.get(5)?,
                })
            })
            .map_err(q)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(q)?;
        let started_at = summary
            .as_ref()
            .and_then(|v| v["started_at"].as_str().map(str::to_string))
            .unwrap_or_else(|| rfc3339(start));
        let finished_at = summary
            .as_ref()
            .and_then(|v| v["finished_at"].as_str().map(str::to_string))
            .or_else(|| end.map(rfc3339));
        let summary = summary.or_else(|| record.and_then(|r| serde_json::from_str(&r).ok()));
        runs.push(RunEntry {
            number,
            run_id,
            started_at,
            finished_at,
            input,
            exit_code: code.map(|c| c.clamp(0, 255) as u8),
            rows,
            sent,
            skipped,
            failed,
            outcome,
            failures_total: failures_total.max(0) as u64,
            failures,
            summary,
        });
    }
    let repeated = match (runs.last(), runs.first()) {
        (Some(oldest), Some(_)) => {
            let mut st = conn
                .prepare(
                    "SELECT identifier, count(DISTINCT run_id) AS n, \
                     (SELECT f2.message FROM failures f2 WHERE f2.identifier = f.identifier \
                      AND f2.run_id >= ?1 ORDER BY f2.run_id DESC, f2.row LIMIT 1) \
                     FROM failures f WHERE run_id >= ?1 AND identifier IS NOT NULL \
                     AND identifier != '' GROUP BY identifier HAVING n > 1 \
                     ORDER BY n DESC, identifier LIMIT 20",
                )
                .map_err(q)?;
            let found = st
                .query_map([oldest.number], |r| {
                    Ok(Repeated {
                        identifier: r.get(0)?,
                        runs: r.get::<_, i64>(1)?.max(0) as u64,
                        last_message: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    })
                })
                .map_err(q)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(q)?;
            found
        }
        _ => Vec::new(),
    };
    Ok(History {
        runs_total: runs_total.max(0) as u64,
        runs,
        repeated_failures: repeated,
    })
}

fn or_dash(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

impl History {
    /// The text of `cio-import state`: the trend table, then the failures run by run.
    pub fn text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "\nlast {} of {} runs, newest first:\n",
            self.runs.len(),
            self.runs_total
        ));
        out.push_str(&format!(
            "  {:<26}  {:<20}  {:>9} {:>9} {:>9} {:>9}  {:<4}  input\n",
            "run", "started (UTC)", "rows", "sent", "skipped", "failed", "exit"
        ));
        for r in &self.runs {
            let id = r.run_id.clone().unwrap_or_else(|| format!("#{}", r.number));
            let start = r.started_at.replace('T', " ");
            let start: String = start.chars().take(19).collect();
            let exit = match r.exit_code {
                Some(c) => c.to_string(),
                None => "-".into(),
            };
            // A mirror's removals are no rows: after the input, as `; mirror delete: ...`.
            let mirror = r
                .summary
                .as_ref()
                .map(crate::mirror::describe_run)
                .unwrap_or_default();
            out.push_str(&format!(
                "  {id:<26}  {start:<20}  {:>9} {:>9} {:>9} {:>9}  {exit:<4}  {}{mirror}{}\n",
                or_dash(r.rows),
                or_dash(r.sent),
                or_dash(r.skipped),
                or_dash(r.failed),
                r.input,
                if r.outcome == "running" {
                    "  (running)"
                } else if r.finished_at.is_none() {
                    "  (did not finish: killed?)"
                } else {
                    ""
                }
            ));
        }
        let failing: Vec<&RunEntry> = self.runs.iter().filter(|r| r.failures_total > 0).collect();
        if failing.is_empty() {
            if !self.runs.is_empty() {
                out.push_str("\nno rows failed in these runs\n");
            }
            return out;
        }
        for r in failing {
            let id = r.run_id.clone().unwrap_or_else(|| format!("#{}", r.number));
            out.push_str(&format!(
                "\nrows that failed in run {id} (#{}): {}\n",
                r.number, r.failures_total
            ));
            for f in r.failures.iter().take(FAILURES_PER_RUN_TEXT) {
                out.push_str(&format!(
                    "  row {} (line {}) {} {}: {}\n",
                    f.row,
                    f.line,
                    f.identifier.as_deref().unwrap_or(""),
                    f.class,
                    f.message
                ));
            }
            if r.failures_total as usize > FAILURES_PER_RUN_TEXT {
                out.push_str(&format!(
                    "  ... and {} more (cio-import state --json lists {} per run; the run's \
errors file has them all)\n",
                    r.failures_total as usize - FAILURES_PER_RUN_TEXT,
                    FAILURES_PER_RUN_JSON
                ));
            }
        }
        if !self.repeated_failures.is_empty() {
            out.push_str("\nfailing again and again:\n");
            for p in &self.repeated_failures {
                out.push_str(&format!(
                    "  {} failed in {} of these runs; last: {}\n",
                    p.identifier, p.runs, p.last_message
                ));
            }
        }
        out
    }
}
