//! The import engine: opens what a run needs, wires the stages together and returns the
//! [`Summary`]. Rows flow through one file per stage:
//!
//! ```text
//! (groups)    pre-pass: people with several rows, under --state (crate::groups)
//! read.rs     reader thread: rows -> operations, ledger skip     (bounded channel)
//! batch.rs    packs operations into batch bodies, or passes single ones
//! send.rs     N workers in flight, per-key order (order.rs), paced (pacer.rs), retried
//! outcome.rs  counts, ledger writes, rejects and errors files
//! ```
//!
//! The engine carries [`crate::operation::Operation`]s without knowing their kind and talks to
//! the destination only through [`crate::track::Wire`]: it names no method, path or status.
//! It chooses no exit code either: the summary's [`Ending`] is mapped by [`crate::exit::code`].

mod batch;
mod nightly;
mod order;
mod outcome;
mod pacer;
mod read;
mod send;

pub use outcome::Outcome;
pub use pacer::{Pacer, Pause, DEFAULT_THROTTLE_BUDGET};
pub use send::STOP_GRACE;

use crate::config::{ConfigError, ImportConfig};
use crate::convert::Converter;
use crate::ledger::{self, Ledger, LedgerError};
use crate::operation::Action;
use crate::report::errors::ErrorsWriter;
use crate::report::progress::{self, InputProgress};
use crate::report::rejects::RejectsWriter;
use crate::report::summary::{Ending, Heading, Summary};
use crate::report::ReportError;
use crate::run_record::RunRecord;
use crate::source::{self, Rows, SourceError};
use crate::stop::{Stop, StopState};
use crate::tally::Tally;
use crate::track::{self, ConnectError, Wire};
use backon::ExponentialBuilder;
use read::{Chunk, LedgerCheck, Reader, ReaderEnd, CHUNK_ROWS};
use send::{Courier, Dispatcher};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

/// Why a run could not start: nothing was read or sent.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The settings are out of range or contradict each other.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A report cannot be written where it should go.
    #[error("{0}: the reports go next to the input unless --rejects and --errors say where")]
    Reports(#[source] ReportError),
    /// Ctrl-C or SIGTERM came before the input's first line (a producer that stalls).
    #[error("interrupted before the input's first line arrived")]
    InterruptedBeforeInput,
    /// The input cannot be opened or its header read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The thread that opens the input failed.
    #[error("{0}")]
    Opening(#[from] tokio::task::JoinError),
    /// The destination's client cannot be set up.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The rows cannot be converted as configured (the mapping or the identifier column).
    #[error("{input}: {message}")]
    Converter {
        /// The input's name.
        input: String,
        /// What is wrong.
        message: String,
    },
    /// The state file cannot be opened.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The pre-pass for people with several rows was interrupted.
    #[error(transparent)]
    Groups(#[from] crate::groups::GroupsError),
}

impl StartError {
    /// How a run that could not start ended.
    fn ending(&self) -> Ending {
        match self {
            StartError::InterruptedBeforeInput | StartError::Groups(_) => Ending::Interrupted,
            _ => Ending::Aborted,
        }
    }
}

/// What a run opens before its first row: the input, the destination, the converter and
/// the ledger.
struct Opened {
    rows: Rows,
    input_progress: InputProgress,
    /// The input's hash, fed as it is read.
    digest: source::InputDigest,
    /// `None` for a dry run.
    wire: Option<Arc<dyn Wire>>,
    converter: Converter,
    header: Option<source::CsvHeader>,
    /// The input's encoding: the rejects file is written in it.
    encoding: source::TextEncoding,
    /// Holds the state file's lock until the run ends.
    _ledger: Option<Ledger>,
    lookup: Option<LedgerCheck>,
    ledger_writer: Option<ledger::LedgerWriter>,
    /// People with several rows (a rereadable input under `--state`).
    groups: Option<crate::groups::Groups>,
}

/// Checks the settings and opens everything, in the order whose first failure is reported.
async fn open(
    cfg: &ImportConfig,
    stop: &Stop,
    input_name: &str,
    record: &RunRecord,
) -> Result<Opened, StartError> {
    cfg.validate()?;
    // The reports must be writable before the first row is read: a read-only folder (the
    // default is next to the input) is found now, not at the first failed row.
    for path in [&cfg.rejects, &cfg.errors] {
        crate::report::check_writable(path).map_err(StartError::Reports)?;
    }
    let opened = {
        let input = cfg.input.clone();
        let dialect = cfg.dialect();
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let s = source::open_rows(&input, Some(&stop), &dialect)?;
            let progress = InputProgress {
                bytes_read: s.bytes_read,
                total_bytes: s.total_bytes,
            };
            Ok::<_, SourceError>((s.rows, progress, s.encoding, s.digest))
        })
        .await?
    };
    let (rows, input_progress, encoding, digest) = match opened {
        Ok(x) => x,
        Err(_) if stop.state() == StopState::Interrupted => {
            return Err(StartError::InterruptedBeforeInput)
        }
        Err(e) => return Err(e.into()),
    };
    let wire = if cfg.dry_run {
        None
    } else {
        Some(track::connect(cfg)?)
    };
    let header = rows.csv_header().cloned();
    let converter = Converter::new(
        cfg.convert.clone(),
        header.as_ref().map(|h| h.names.as_slice()),
    )
    .map_err(|message| StartError::Converter {
        input: input_name.to_string(),
        message,
    })?;
    // A dry run never opens the ledger for writing: it records no run and changes nothing
    // (its preview reads the state file read-only: see `crate::preview`).
    let (ledger, lookup, ledger_writer) = match cfg.state.as_ref().filter(|_| !cfg.dry_run) {
        None => (None, None, None),
        Some(path) => {
            let site_id = cfg
                .credentials
                .as_ref()
                .map(|c| c.site_id.as_str())
                .unwrap_or("");
            let dest = ledger::Destination::new(site_id, &cfg.endpoint);
            let mut l = Ledger::open(path, input_name, &dest)?;
            l.set_feed(&crate::feed::of(cfg.nightly.feed.as_deref(), &cfg.input));
            l.record_run(record)?;
            let relationships = cfg
                .convert
                .object
                .as_ref()
                .map(|o| o.kind == crate::convert::ObjectKind::Relationships);
            if relationships == Some(true)
                && cfg.convert.action == crate::operation::Action::Delete
                && !cfg.dry_run
            {
                // A relationship removed by email may be one the ledger knows by id.
                l.forget_relationships_of_other_kinds(cfg.convert.id_kind)?;
            }
            // An object deletion removes no people.
            let removes_people = crate::confirm::is_destructive(cfg.convert.action)
                && cfg.convert.action != Action::DeleteDevice
                && relationships.is_none();
            if removes_people && !cfg.dry_run {
                // With a fallback column, rows may address people by either kind.
                let fallback = cfg
                    .convert
                    .mapping
                    .as_ref()
                    .is_some_and(|m| m.fallback.is_some());
                let keep = match cfg.convert.action {
                    // A merge's sides may each be someone the ledger knows by another kind.
                    Action::Merge => converter.merge_kind(),
                    _ => (!fallback).then_some(cfg.convert.id_kind),
                };
                let n = l.forget_other_kinds(keep)?;
                if n > 0 {
                    tracing::warn!(
                        "{}: forgot {n} people known by another identifier than this list's (a \
{} may remove any of them); the next sync sends them again",
                        path.display(),
                        cfg.convert.action.as_str()
                    );
                }
            }
            let mut lookup = l.lookup()?;
            let writer = {
                let stop = stop.clone();
                l.writer(move |m| stop.local_fatal(m))?
            };
            lookup.claim_through(&writer);
            for note in l.notes() {
                tracing::warn!("{note}");
            }
            let check = LedgerCheck {
                lookup,
                full: cfg.full,
            };
            (Some(l), Some(check), Some(writer))
        }
    };
    let groups = if crate::groups::applies(cfg) {
        let began = Instant::now();
        let (cfg, stop) = (cfg.clone(), stop.clone());
        let groups =
            tokio::task::spawn_blocking(move || crate::groups::prepass(&cfg, &stop)).await??;
        let n = groups.as_ref().map_or(0, |g| g.len());
        tracing::info!(
            "{input_name}: {n} people have several rows (pre-pass {:.2} s); with --state each \
is skipped whole when all their rows are unchanged",
            began.elapsed().as_secs_f64()
        );
        groups
    } else {
        None
    };
    Ok(Opened {
        rows,
        input_progress,
        digest,
        wire,
        converter,
        header,
        encoding,
        _ledger: ledger,
        lookup,
        ledger_writer,
        groups,
    })
}

/// The workers' shared state: the destination, the pacing and the retry schedules.
fn courier(cfg: &ImportConfig, wire: Arc<dyn Wire>, stop: &Stop, tally: &Arc<Tally>) -> Courier {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(cfg.backoff_base)
        .with_max_delay(cfg.backoff_cap)
        .with_max_times(cfg.max_retries);
    // The closed-loop bucket does the real slowing down on 429s, so there the step between
    // 429 retries stays short.
    let throttle_cap = if cfg.fixed_rate {
        cfg.backoff_cap
    } else {
        cfg.backoff_cap.min(Duration::from_secs(2))
    };
    let throttle_backoff = ExponentialBuilder::default()
        .with_min_delay(cfg.backoff_base.min(throttle_cap))
        .with_max_delay(throttle_cap)
        .without_max_times();
    let pacer = if cfg.fixed_rate {
        Pacer::fixed(cfg.rate, cfg.throttle_budget, tally)
    } else {
        Pacer::adaptive(cfg.rate, cfg.throttle_budget, tally.clone())
    };
    Courier {
        wire,
        pacer,
        stop: stop.clone(),
        tally: tally.clone(),
        backoff,
        throttle_backoff,
    }
}

/// Runs one import to the end (or until stopped) and returns its summary, which is also
/// written to `--summary` and printed as a table by the caller. The summary's exit code is
/// chosen by [`crate::exit::code`] from how the run ended.
pub async fn run(cfg: ImportConfig, stop: Stop) -> Summary {
    let record = RunRecord::start(&cfg);
    run_recorded(cfg, stop, record).await
}

/// [`run`], under a run record made by the caller (with [`RunRecord::start`], then completed
/// with what the configuration does not hold: the mapping's source, the alert's URL): the
/// summary, and the ledger's record of the run, carry it with the input's figures and the
/// end time.
pub async fn run_recorded(cfg: ImportConfig, stop: Stop, record: RunRecord) -> Summary {
    run_recorded_then(cfg, stop, record, |_| {}).await
}

/// [`run_recorded`], calling `on_open` once the run is set up (the input open, its header
/// checked, the destination and the ledger ready) and before its first row: where the CLI logs
/// the run's start, so that a run that cannot start says why first.
pub async fn run_recorded_then(
    cfg: ImportConfig,
    stop: Stop,
    mut record: RunRecord,
    on_open: impl FnOnce(&RunRecord),
) -> Summary {
    let started = Instant::now();
    let tally = Arc::new(Tally::default());
    let input_name = cfg.input.display();
    let heading = Heading {
        input: input_name.clone(),
        api: cfg.convert.api.as_str(),
        dry_run: cfg.dry_run,
    };
    let opened = match open(&cfg, &stop, &input_name, &record).await {
        Ok(o) => o,
        Err(e) => {
            let mut s = Summary::of(&tally, &heading, started.elapsed());
            record.finish();
            s.run = Some(record);
            // A zero-byte file has no header to open: it is an empty input, for the guards.
            if matches!(e, StartError::Source(_)) && crate::guard::empty_file(&cfg.input) {
                match cfg.nightly.check_rows(&input_name, 0) {
                    Ok(()) => s.end(Ending::Completed, None),
                    Err(g) => s.end(Ending::Guarded, Some(g.to_string())),
                }
                return s;
            }
            s.end(e.ending(), Some(e.to_string()));
            return s;
        }
    };
    on_open(&record);
    let Opened {
        rows,
        input_progress,
        digest,
        wire,
        converter,
        header,
        encoding,
        _ledger,
        lookup,
        ledger_writer,
        groups,
    } = opened;

    // Regular files never stall, so their rows can travel in chunks; pipes go row by row.
    // Opening the input already told them apart: only a regular file has a known size.
    let input_figures = (
        input_progress.total_bytes,
        input_progress.bytes_read.clone(),
    );
    let chunk_rows = match input_progress.total_bytes {
        Some(_) => CHUNK_ROWS,
        None => 1,
    };

    let (out_tx, out_rx) = mpsc::channel::<Outcome>(4096);
    let reporter = tokio::spawn(outcome::sink(
        out_rx,
        RejectsWriter::new(cfg.rejects.clone(), header).encoded(encoding),
        ErrorsWriter::new(cfg.errors.clone()),
        ledger_writer,
        tally.clone(),
        stop.clone(),
    ));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let progress = tokio::spawn(progress::run(
        cfg.progress,
        tally.clone(),
        input_progress,
        done_rx,
    ));

    let packer = wire
        .as_ref()
        .and_then(|w| w.packer(cfg.batch_bytes, cfg.batch_size));
    let rows_buffered = match (&wire, &packer) {
        (Some(_), None) => cfg.concurrency * 4,
        _ => 4096,
    };
    let (rec_tx, rec_rx) = mpsc::channel::<Chunk>((rows_buffered / chunk_rows).max(4));
    // With --mirror, removals follow the rows through the same channel once reading is done.
    let mirroring = cfg.nightly.mirror.is_some() && !cfg.dry_run && _ledger.is_some();
    let removal_tx = mirroring.then(|| rec_tx.clone());
    let sender = wire.map(|wire| {
        let courier = Arc::new(courier(&cfg, wire, &stop, &tally));
        let d = Dispatcher {
            courier: courier.clone(),
            slots: Arc::new(Semaphore::new(cfg.concurrency)),
            concurrency: cfg.concurrency,
            out: out_tx.clone(),
            order: order::EntityOrder::default(),
        };
        let task = tokio::spawn(batch::batch_all(rec_rx, d, packer, cfg.flush_after));
        (task, courier)
    });
    let reader = Reader {
        rows,
        converter,
        operations: if cfg.dry_run { None } else { Some(rec_tx) },
        chunk_rows,
        ledger: lookup,
        out: out_tx,
        stop: stop.clone(),
        tally: tally.clone(),
        groups,
        note_repeats: cfg.state.is_some()
            && !cfg.input.rereadable()
            && cfg.convert.event.is_none()
            && cfg.convert.action == crate::operation::Action::Identify,
        seen: mirroring.then(crate::mirror::Seen::default),
    };
    let mut reader_end = tokio::task::spawn_blocking(move || reader.run())
        .await
        .unwrap_or_else(|e| ReaderEnd {
            error: Some(SourceError::Io {
                path: input_name.clone(),
                message: format!("the reader failed: {e}"),
            }),
            stopped_at_line: None,
            seen: None,
        });
    let incomplete = match (&reader_end.error, stop.state()) {
        (Some(e), _) => Some(e.to_string()),
        (None, StopState::Running) => None,
        (None, StopState::Interrupted) => Some("interrupted".into()),
        (None, StopState::LocalFatal(m) | StopState::ApiFatal(m)) => Some(m),
    };
    let mut after = nightly::after_read(
        &cfg,
        _ledger.as_ref(),
        &tally,
        nightly::ReadDone {
            input: &input_name,
            incomplete,
            seen: reader_end.seen.take(),
        },
        removal_tx,
    )
    .await;
    let mut throttled_s = 0.0;
    if let Some((s, courier)) = sender {
        if let Err(e) = s.await {
            tracing::error!("the sender failed: {e}");
        }
        throttled_s = courier.pacer.throttled_s();
    }
    let files = reporter.await.unwrap_or(outcome::ReportFiles {
        rejects: None,
        errors: None,
        ledger: None,
    });
    let _ = done_tx.send(());
    let _ = progress.await;

    let mut s = Summary::of(&tally, &heading, started.elapsed());
    s.throttled_s = (throttled_s * 10.0).round() / 10.0;
    s.rejects_file = files.rejects;
    s.errors_file = files.errors;
    s.read_stopped_at_line = reader_end.stopped_at_line;
    let (ending, reason) = match (stop.state(), reader_end.error) {
        (StopState::LocalFatal(m), _) => (Ending::Aborted, Some(m)),
        (StopState::ApiFatal(m), _) => (Ending::AbortedByApi, Some(m)),
        (StopState::Interrupted, _) => (
            Ending::Interrupted,
            Some("interrupted (Ctrl-C)".to_string()),
        ),
        (StopState::Running, Some(e)) => (Ending::Aborted, Some(e.to_string())),
        (StopState::Running, None) => match after.guard.take() {
            Some(why) => (Ending::Guarded, Some(why)),
            None => (Ending::Completed, None),
        },
    };
    if let Some(mut m) = after.mirror.take() {
        nightly::settle(&mut m, &tally);
        s.mirror = Some(m);
    }
    s.end(ending, reason);
    record.input_read(input_figures.0, Tally::get(&input_figures.1), &digest);
    record.finish();
    s.run = Some(record);
    if let Some(w) = files.ledger {
        let json = serde_json::to_string(&s).unwrap_or_default();
        if let Err(e) = w.finish(json, s.exit_code) {
            let path = cfg
                .state
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            // Keep the first reason (it names what failed first); add this one otherwise.
            let reason = s.stop_reason.take().unwrap_or_else(|| {
                format!("cannot write the state file {path}: {e}; free some space, then re-run")
            });
            s.end(Ending::Aborted, Some(reason));
        }
    }
    s
}
