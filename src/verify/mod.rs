//! `verify`: reads people back through Customer.io's App API and compares, attribute by
//! attribute, what the source says with what the workspace holds. A 200 from the Track API
//! does not mean the data is there: an update older than the person's latest `_timestamp` is
//! dropped, an update-only send to someone who does not exist changes nothing, an identify
//! whose identifiers conflict records an "Attribute Update Failure", and anyone can edit a
//! person afterwards. All answer 200; this closes the loop.
//!
//! The input is read with the import's own options and converter, so the values compared are
//! exactly those `import` sends ([`compare`] says how they compare). Two passes over the file
//! ([`select`]: which rows, then the check), each streaming; people are read back 100 at a
//! time ([`fetch`], paced and retried like an import); the differences go to a CSV file
//! ([`report`]) and the rows that differ, verbatim, to a rejects file that re-imports.

pub mod compare;
pub mod fetch;
pub mod report;
pub mod select;

use crate::config::ImportConfig;
use crate::exit;
use crate::ledger::Destination;
use crate::operation::Operation;
use crate::record::IdKind;
use crate::report::rejects::RejectsWriter;
use crate::report::ReportError;
use crate::secret::ApiKey;
use crate::source::Item;
use crate::stop::{Stop, StopState};
use crate::track::app::{AppClient, Held, MAX_IDS};
use compare::Difference;
use fetch::{Calls, FetchError, Fetcher};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

/// Everything a verify run needs.
#[derive(Clone, Debug)]
pub struct VerifyConfig {
    /// How to read the input and convert its rows: the import's settings (a dry run: no
    /// Track API credentials), with its `rate`, `timeout`, `max_retries`, backoff, throttle
    /// budget and `ca_cert` used for the App API, and its `rejects` path for the rows that
    /// differ and its `errors` path for the differences file.
    pub import: ImportConfig,
    /// The App API base (`https://api.customer.io`, `https://api-eu.customer.io`, or
    /// `--endpoint`).
    pub app_base: reqwest::Url,
    /// The App API key (bearer).
    pub key: ApiKey,
    /// Check this many people drawn at random (seeded) instead of everyone.
    pub sample: Option<u64>,
    /// The seed of the sample.
    pub seed: u64,
    /// Check only the people the latest run recorded in this ledger for this destination.
    pub state: Option<(PathBuf, Destination)>,
}

/// A verify run that could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The input cannot be opened or read.
    #[error("{0}")]
    Input(String),
    /// Standard input: it cannot be read twice.
    #[error("verify reads its input twice (which rows, then the check): give a file, not standard input")]
    Stdin,
    /// A named pipe, `<(...)` or a device: its bytes come once.
    #[error("{0}: not a regular file (a pipe, `<(...)` or a device gives its bytes once, and verify reads its input twice: which rows, then the check): save it to a file and give that")]
    NotAFile(String),
    /// A report cannot be written.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The ledger cannot be read.
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// `--state`: the latest run against this workspace recorded nobody and failed nothing.
    #[error("--state {path}: the latest run against {dest} (run {run}) recorded nobody (an update-only or suppressing run records nobody): nothing to check; an older run's people are not checked in its place")]
    LastRunEmpty {
        /// The ledger.
        path: String,
        /// The workspace looked for.
        dest: String,
        /// The run.
        run: i64,
    },
    /// `--state` names a ledger that recorded nobody for this workspace.
    #[error("--state {path}: no run against {dest} recorded anyone: nothing to check (is CUSTOMERIO_SITE_ID the import's, and --endpoint/--region its workspace?)")]
    NothingRecorded {
        /// The ledger.
        path: String,
        /// The workspace looked for.
        dest: String,
    },
    /// The HTTP client cannot be set up.
    #[error(transparent)]
    Connect(#[from] crate::track::ConnectError),
}

/// What a verify run found. Every row read is counted once:
/// `rows = checked + invalid + superseded + not_sampled + not_in_last_run + not_checked`, and
/// every person checked once: `checked = matching + differing + missing`.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct VerifySummary {
    /// The input.
    pub input: String,
    /// Rows read.
    pub rows: u64,
    /// People checked (one row each).
    pub checked: u64,
    /// ... whose every attribute matches.
    pub matching: u64,
    /// ... with at least one attribute that differs.
    pub differing: u64,
    /// ... whom the workspace does not hold.
    pub missing: u64,
    /// Attributes compared.
    pub attributes_compared: u64,
    /// Attributes that differ, by kind (`value`, `type`, `absent`).
    pub differences: HashMap<&'static str, u64>,
    /// Rows that cannot be converted (`import` reports them as invalid): not checked.
    pub invalid: u64,
    /// Rows of someone a later row names again: the later one is checked.
    pub superseded: u64,
    /// Rows left out of the `--sample`.
    pub not_sampled: u64,
    /// Rows of people the last run did not record (`--state`).
    pub not_in_last_run: u64,
    /// Rows that could not be checked (the App API gave up, or the run stopped).
    pub not_checked: u64,
    /// `--sample`: how many people were asked for, and the seed.
    pub sample: Option<u64>,
    /// The seed of the sample (give it again with `--seed` to check the same people).
    pub seed: Option<u64>,
    /// `--state`: the run whose people were checked (always the latest against the workspace).
    pub last_run: Option<i64>,
    /// `--state`: rows that run failed (listed in the differences file as `failed_in_run`;
    /// they are rows of that run, not of this count of rows read).
    pub failed_in_last_run: u64,
    /// The App API calls.
    pub calls: Calls,
    /// Seconds throttled by 429s.
    pub throttled_s: f64,
    /// The differences file, when one was written.
    pub differences_file: Option<String>,
    /// The rows that differ, verbatim (re-importable), when any.
    pub rejects_file: Option<String>,
    /// `completed`, `interrupted`, `aborted` (an error), or `aborted_by_api` (401/403).
    pub outcome: &'static str,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
    /// Seconds the run took.
    pub elapsed_s: f64,
    /// The exit code: 0 everything matches, 2 something differs or is missing, 1 not
    /// everything could be checked (or an error), 3 the App API refused the key, 130
    /// interrupted.
    pub exit_code: u8,
}

impl VerifySummary {
    /// Whether every row is counted once.
    pub fn accounted(&self) -> bool {
        self.rows
            == self.checked
                + self.invalid
                + self.superseded
                + self.not_sampled
                + self.not_in_last_run
                + self.not_checked
            && self.checked == self.matching + self.differing + self.missing
    }

    fn code(&self) -> u8 {
        match self.outcome {
            _ if !self.accounted() => exit::USAGE_OR_IO,
            "interrupted" => exit::INTERRUPTED,
            "aborted_by_api" => exit::FATAL_API,
            "aborted" => exit::USAGE_OR_IO,
            _ if self.not_checked > 0 => exit::USAGE_OR_IO,
            _ if self.differing + self.missing + self.failed_in_last_run > 0 => exit::DIFFERENCES,
            _ => exit::SUCCESS,
        }
    }

    /// The human summary (stderr).
    pub fn table(&self) -> String {
        let mut out = format!("verify {}: {}\n", self.input, self.outcome);
        let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<26}{v}\n"));
        line("rows read", self.rows.to_string());
        let mut checked = self.checked.to_string();
        if let (Some(n), Some(seed)) = (self.sample, self.seed) {
            checked.push_str(&format!(" (sample of {n}, --seed {seed})"));
        }
        if let Some(run) = self.last_run {
            checked.push_str(&format!(" (people of run {run})"));
        }
        line("people checked", checked);
        line("  matching", self.matching.to_string());
        line("  differing", self.differing.to_string());
        line("  missing in Customer.io", self.missing.to_string());
        if let Some(run) = self.last_run.filter(|_| self.failed_in_last_run > 0) {
            line(
                &format!("rows failed in run {run}"),
                format!(
                    "{} (not sent: see the differences file)",
                    self.failed_in_last_run
                ),
            );
        }
        let mut kinds: Vec<_> = self.differences.iter().collect();
        kinds.sort();
        if !kinds.is_empty() {
            let shown: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            line("attributes differing", shown.join(", "));
        }
        for (k, n) in [
            ("invalid rows", self.invalid),
            ("superseded rows", self.superseded),
            ("not sampled", self.not_sampled),
            ("not in the last run", self.not_in_last_run),
            ("not checked", self.not_checked),
        ] {
            if n > 0 {
                line(k, n.to_string());
            }
        }
        line(
            "App API requests",
            format!(
                "{} ({} answered 429, {} retried; {:.1} s throttled)",
                self.calls.requests, self.calls.throttled, self.calls.retries, self.throttled_s
            ),
        );
        if let Some(p) = &self.differences_file {
            line("differences", p.clone());
        }
        if let Some(p) = &self.rejects_file {
            line("rows to re-import", p.clone());
        }
        if let Some(e) = &self.error {
            line("error", e.clone());
        }
        line("elapsed", format!("{:.1} s", self.elapsed_s));
        out
    }
}

/// One row to check: who, what the source says, and the row itself.
struct Expected {
    op: Operation,
    attributes: Map<String, Value>,
    /// The row's `_timestamp`, if it carried one.
    stamp: Option<i64>,
}

/// What the reading thread counted.
#[derive(Default)]
struct ReadCounts {
    rows: u64,
    invalid: u64,
    superseded: u64,
    not_sampled: u64,
    not_in_last_run: u64,
}

impl Expected {
    fn of(op: Operation) -> Expected {
        let mut attributes: Map<String, Value> = serde_json::from_slice(&op.payload)
            .ok()
            .and_then(|v: Value| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .unwrap_or_default();
        attributes.remove("_update");
        let stamp = attributes.remove("_timestamp").and_then(|v| match v {
            Value::String(s) => s.trim().parse().ok(),
            v => v.as_i64(),
        });
        Expected {
            op,
            attributes,
            stamp,
        }
    }
}

/// Consecutive chunks whose read-back gave up (retries or the 429 budget spent) after which
/// the run stops: a total outage then costs a few chunks' retries, not every chunk's, and the
/// rest are counted as not checked.
pub const MAX_FAILED_CHUNKS: u32 = 3;

/// Runs a verify. Errors before the first request are `Err`; anything later ends in the
/// summary (`outcome`, `error`, `exit_code`).
pub async fn run(cfg: VerifyConfig, stop: Stop) -> Result<VerifySummary, VerifyError> {
    let started = Instant::now();
    if matches!(cfg.import.input, crate::source::Input::Stdin) {
        return Err(VerifyError::Stdin);
    }
    if !cfg.import.input.rereadable() {
        return Err(VerifyError::NotAFile(cfg.import.input.display()));
    }
    let mut summary = VerifySummary {
        input: cfg.import.input.display(),
        sample: cfg.sample,
        seed: cfg.sample.map(|_| cfg.seed),
        ..VerifySummary::default()
    };
    let last = match &cfg.state {
        Some((ledger, dest)) => match crate::ledger::last_run(ledger, dest)? {
            Some(last) if last.people.is_empty() && last.failed == 0 => {
                return Err(VerifyError::LastRunEmpty {
                    path: ledger.display().to_string(),
                    dest: dest.to_string(),
                    run: last.run,
                })
            }
            Some(last) => {
                summary.last_run = Some(last.run);
                summary.failed_in_last_run = last.failed;
                Some(last)
            }
            None => {
                return Err(VerifyError::NothingRecorded {
                    path: ledger.display().to_string(),
                    dest: dest.to_string(),
                })
            }
        },
        None => None,
    };
    crate::report::check_writable(&cfg.import.rejects)?;
    crate::report::check_writable(&cfg.import.errors)?;
    let mut differences = report::DifferencesWriter::new(cfg.import.errors.clone());
    // The rows the last run failed: named first, as failed in that run (not checked: the
    // workspace was never told).
    let recorded = match last {
        Some(last) => {
            for f in &last.failures {
                differences.write(&report::Line {
                    pos: crate::record::Position {
                        row: f.row,
                        line: f.line,
                    },
                    identifier: f.identifier.as_deref().unwrap_or(""),
                    attribute: "",
                    difference: "failed_in_run",
                    source: String::new(),
                    workspace: String::new(),
                    updated_at: None,
                    note: format!(
                        "run {} did not send this row ({}): {}",
                        last.run, f.class, f.message
                    ),
                })?;
            }
            Some(last.people)
        }
        None => None,
    };
    let selection = {
        let import = cfg.import.clone();
        let sample = cfg.sample.map(|n| (n, cfg.seed));
        let recorded = recorded.clone();
        let stop = stop.clone();
        // The converter's warnings (a `_timestamp` column) are given once, by the second pass.
        tokio::task::spawn_blocking(move || {
            let quiet = tracing::subscriber::NoSubscriber::default();
            tracing::subscriber::with_default(quiet, || {
                select::select(&import, recorded.as_ref(), sample, &stop)
            })
        })
        .await
        .map_err(|e| VerifyError::Input(e.to_string()))??
    };
    let Some(selection) = selection else {
        // Stopped while choosing the rows: nothing was checked (the last run's failures,
        // already named, stay in the differences file).
        summary.outcome = "interrupted";
        summary.error =
            Some("stopped while reading the input (first pass): nothing checked".into());
        if differences.finish()? {
            summary.differences_file = Some(differences.path().display().to_string());
        }
        summary.elapsed_s = started.elapsed().as_secs_f64();
        summary.exit_code = summary.code();
        return Ok(summary);
    };
    tracing::debug!("verify: {} people to choose from", selection.people);
    let client = AppClient::new(
        &cfg.app_base,
        cfg.key.clone(),
        cfg.import.timeout,
        cfg.import.ca_cert.as_deref(),
    )?;
    let mut fetcher = Fetcher::new(
        client,
        cfg.import.rate,
        cfg.import.throttle_budget,
        cfg.import.max_retries,
        (cfg.import.backoff_base, cfg.import.backoff_cap),
    );
    let mut input = select::Rows::open(&cfg.import, &stop)?;
    // The rows that differ are written as the import's rejects are: the input's header,
    // delimiter and text encoding, so that they re-import as the input did.
    let mut rejects = RejectsWriter::new(cfg.import.rejects.clone(), input.header.clone())
        .encoded(input.encoding);
    // The reading thread sends the rows to check in chunks of 100: memory stays flat.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Expected>>(1);
    let reading_stop = stop.clone();
    let reader = tokio::task::spawn_blocking(move || -> Result<ReadCounts, String> {
        let mut counts = ReadCounts::default();
        let mut chunk: Vec<Expected> = Vec::with_capacity(MAX_IDS);
        while let Some(item) = input.rows.next() {
            if reading_stop.is_stopped() {
                break;
            }
            let item = item.map_err(|e| e.to_string())?;
            counts.rows += 1;
            let (pos, raw) = match item {
                Item::Row { pos, raw } => (pos, raw),
                Item::Bad { .. } => {
                    counts.invalid += 1;
                    continue;
                }
            };
            let Some(op) = input.convert(pos, raw) else {
                counts.invalid += 1;
                continue;
            };
            if recorded
                .as_ref()
                .is_some_and(|r| !r.contains(&op.key().seen_hash()))
            {
                counts.not_in_last_run += 1;
                continue;
            }
            let key = select::person_key(&op);
            if !selection.is_last(key, pos.row) {
                counts.superseded += 1;
                continue;
            }
            if !selection.checks(key, pos.row) {
                counts.not_sampled += 1;
                continue;
            }
            chunk.push(Expected::of(op));
            if chunk.len() >= MAX_IDS {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(MAX_IDS));
                if tx.blocking_send(full).is_err() {
                    return Ok(counts);
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(chunk);
        }
        Ok(counts)
    });
    let mut fatal: Option<(StopState, String)> = None;
    let mut failed_in_a_row = 0u32;
    while let Some(chunk) = rx.recv().await {
        if fatal.is_some() || stop.is_stopped() {
            summary.not_checked += chunk.len() as u64;
            continue;
        }
        match check_chunk(
            chunk,
            &mut fetcher,
            &stop,
            &mut summary,
            &mut differences,
            &mut rejects,
        )
        .await
        {
            Ok(true) => failed_in_a_row = 0,
            Ok(false) => {
                failed_in_a_row += 1;
                if failed_in_a_row >= MAX_FAILED_CHUNKS {
                    let m = format!(
                        "the App API failed {failed_in_a_row} chunks of people in a row ({}): \
stopped; the rest are not checked",
                        summary.error.as_deref().unwrap_or("retries ran out")
                    );
                    fatal = Some((StopState::LocalFatal(m.clone()), m.clone()));
                    summary.error = Some(m.clone());
                    stop.local_fatal(m);
                }
            }
            Err(Stopping::Report(e)) => {
                fatal = Some((StopState::LocalFatal(e.to_string()), e.to_string()));
                stop.local_fatal(e.to_string());
            }
            Err(Stopping::Api(m)) => {
                fatal = Some((StopState::ApiFatal(m.clone()), m.clone()));
                stop.api_fatal(m);
            }
        }
    }
    let counts = reader
        .await
        .map_err(|e| VerifyError::Input(e.to_string()))?;
    match counts {
        Ok(c) => {
            summary.rows = c.rows;
            summary.invalid = c.invalid;
            summary.superseded = c.superseded;
            summary.not_sampled = c.not_sampled;
            summary.not_in_last_run = c.not_in_last_run;
        }
        Err(e) => {
            summary.error = Some(e);
            summary.outcome = "aborted";
        }
    }
    summary.calls = fetcher.calls;
    summary.throttled_s = fetcher.throttled_s();
    if differences.finish()? {
        summary.differences_file = Some(differences.path().display().to_string());
    }
    if rejects.finish()? {
        summary.rejects_file = Some(rejects.path().display().to_string());
    }
    if summary.outcome.is_empty() {
        summary.outcome = match (&fatal, stop.state()) {
            (Some((StopState::ApiFatal(_), _)), _) => "aborted_by_api",
            (Some(_), _) => "aborted",
            (None, StopState::Interrupted) => "interrupted",
            (None, StopState::Running) => "completed",
            (None, _) => "aborted",
        };
    }
    if let Some((_, m)) = fatal {
        summary.error.get_or_insert(m);
    }
    // Rows read after the run stopped were neither checked nor counted elsewhere.
    let counted = summary.checked
        + summary.invalid
        + summary.superseded
        + summary.not_sampled
        + summary.not_in_last_run
        + summary.not_checked;
    if summary.outcome != "completed" && summary.rows > counted {
        summary.not_checked += summary.rows - counted;
    }
    summary.elapsed_s = started.elapsed().as_secs_f64();
    summary.exit_code = summary.code();
    Ok(summary)
}

/// Why checking stopped.
enum Stopping {
    /// A report could not be written.
    Report(ReportError),
    /// The App API refused the key.
    Api(String),
}

/// Reads back the people of one chunk (per identifier kind) and compares them. `Ok(false)`:
/// the App API gave up on all of them (retries or the 429 budget ran out).
async fn check_chunk(
    chunk: Vec<Expected>,
    fetcher: &mut Fetcher,
    stop: &Stop,
    summary: &mut VerifySummary,
    differences: &mut report::DifferencesWriter,
    rejects: &mut RejectsWriter,
) -> Result<bool, Stopping> {
    let mut read_back = false;
    let mut gave_up = false;
    let mut by_kind: HashMap<IdKind, Vec<Expected>> = HashMap::new();
    for e in chunk {
        by_kind.entry(e.op.identifier.kind).or_default().push(e);
    }
    let mut kinds: Vec<IdKind> = by_kind.keys().copied().collect();
    kinds.sort();
    for kind in kinds {
        let people = by_kind.remove(&kind).unwrap_or_default();
        let ids: Vec<String> = people
            .iter()
            .map(|e| e.op.identifier.value.clone())
            .collect();
        let held = match fetcher.people(kind, &ids, stop).await {
            Ok(h) => h,
            Err(FetchError::Fatal(m)) => {
                summary.not_checked += people.len() as u64;
                return Err(Stopping::Api(m));
            }
            Err(FetchError::Stopped) => {
                summary.not_checked += people.len() as u64;
                continue;
            }
            Err(FetchError::GaveUp(m)) => {
                tracing::warn!("{} people not checked: {m}", people.len());
                summary.not_checked += people.len() as u64;
                summary.error.get_or_insert(m);
                gave_up = true;
                continue;
            }
        };
        read_back = true;
        for e in people {
            let found = held.get(&e.op.identifier.value);
            check_person(&e, found, summary, differences).map_err(Stopping::Report)?;
            if !matches!(found.map(|h| differs(&e, h)), Some(false)) {
                rejects.write(&e.op.raw).map_err(Stopping::Report)?;
            }
        }
    }
    Ok(read_back || !gave_up)
}

/// Whether any attribute of `e` differs from `held`.
fn differs(e: &Expected, held: &Held) -> bool {
    e.attributes
        .iter()
        .any(|(k, v)| compare::compare(k, v, held.attributes.get(k)).is_some())
}

/// Compares one person and writes their differences.
fn check_person(
    e: &Expected,
    held: Option<&Held>,
    summary: &mut VerifySummary,
    out: &mut report::DifferencesWriter,
) -> Result<(), ReportError> {
    summary.checked += 1;
    let id = e.op.identifier.value.as_str();
    let Some(held) = held else {
        summary.missing += 1;
        let note = if e.op.conditional {
            "sent update-only (_update): Customer.io changes nothing for someone who does not exist"
        } else {
            "not in the workspace: never created, deleted since, or held under another identifier"
        };
        return out.write(&report::Line {
            pos: e.op.pos,
            identifier: id,
            attribute: "",
            difference: Difference::MissingPerson.as_str(),
            source: String::new(),
            workspace: String::new(),
            updated_at: None,
            note: note.into(),
        });
    };
    let mut any = false;
    for (name, expected) in &e.attributes {
        summary.attributes_compared += 1;
        let got = held.attributes.get(name);
        let Some(d) = compare::compare(name, expected, got) else {
            continue;
        };
        any = true;
        *summary.differences.entry(d.as_str()).or_default() += 1;
        let updated_at = held.timestamps.get(name).copied();
        let note = match (d, e.stamp, updated_at) {
            (Difference::Type, _, _) => {
                "same value as text, another type: check the mapping's types".to_string()
            }
            (_, Some(s), Some(u)) if u > s => format!(
                "the row's _timestamp ({s}) is older than the workspace's value (set at {u}): \
Customer.io drops such an update and answers 200"
            ),
            (_, Some(s), _) => format!(
                "the row carries _timestamp {s}: Customer.io drops an update older than the person's latest"
            ),
            (Difference::Absent, _, _) => "the workspace does not hold this attribute".into(),
            _ => "the workspace holds another value (changed since, or the update was not applied)".into(),
        };
        out.write(&report::Line {
            pos: e.op.pos,
            identifier: id,
            attribute: name,
            difference: d.as_str(),
            source: compare::shown(Some(expected)),
            workspace: compare::shown(got),
            updated_at,
            note,
        })?;
    }
    if any {
        summary.differing += 1;
    } else {
        summary.matching += 1;
    }
    Ok(())
}

/// The seed used when `--sample` is given without `--seed`: from the clock (it is printed, so
/// the same sample can be checked again).
pub fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 % 1_000_000)
        .unwrap_or(1)
}
